"""parse and harden_xml: plain values in, ParsedFeed out; hostile XML neutralized."""

from __future__ import annotations

import contextlib
import json
import re
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seedwatch.parse as parse_mod
from seedwatch.errors import ParseError
from seedwatch.parse import harden_xml, parse
from seedwatch.types import FetchResult
from tests.support.feedserver import FeedServer

URL = "http://news.example.org/feeds/rss.xml"


def fetched(
    body: bytes | str, *, content_type: str | None = None, url: str = URL, **headers: str
) -> FetchResult:
    data = body.encode("utf-8") if isinstance(body, str) else body
    hdrs = [(k.replace("_", "-").lower(), v) for k, v in headers.items()]
    if content_type:
        hdrs.append(("content-type", content_type))
    return FetchResult(requested_url=url, url=url, status=200, headers=tuple(hdrs), body=data)


RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
  <title>Central Asia wire</title>
  <link>http://news.example.org/</link>
  <language>ru-RU</language>
  <ttl>{ttl}</ttl>
  <item>
    <title>Heads of CIS security services meet</title>
    <link>/2026/11/cis-meeting?utm_source=rss</link>
    <guid isPermaLink="false">cis-2026-11-28</guid>
    <description>Short &lt;b&gt;summary&lt;/b&gt;</description>
    <content:encoded><![CDATA[<p>The long <em>body</em> of the story.</p>]]></content:encoded>
    <pubDate>Sat, 28 Nov 2026 09:30:00 +0300</pubDate>
    <category>security</category>
    <category>CIS</category>
    <author>desk@example.org (Desk)</author>
  </item>
  <item>
    <title>Dated in 1800</title>
    <guid>old</guid>
    <pubDate>Mon, 01 Jan 1800 00:00:00 GMT</pubDate>
  </item>
</channel>
</rss>
"""


def test_rss_fields_dates_tags_ttl_and_language() -> None:
    feed = parse(fetched(RSS.format(ttl="30"), content_type="application/rss+xml"))
    assert feed.title == "Central Asia wire"
    assert feed.language == "ru-RU"
    assert feed.ttl_minutes == 30
    assert feed.warning is None
    first, second = feed.items
    assert first.guid == "cis-2026-11-28"
    # relative links resolve against the URL we fetched
    assert first.link == "http://news.example.org/2026/11/cis-meeting?utm_source=rss"
    assert first.published == datetime(2026, 11, 28, 6, 30, tzinfo=UTC)
    assert first.published.tzinfo is not None
    assert first.tags == ("security", "CIS")
    assert "long <em>body</em>" in first.content
    assert "summary" in first.summary
    assert first.language == "ru-RU"  # the feed's, when the entry has none
    assert second.published is None  # year 1800 is garbage, not a date


@pytest.mark.parametrize("ttl", ["soon", "-5", "", "99999999999"])
def test_garbage_ttl_is_none(ttl: str) -> None:
    feed = parse(fetched(RSS.format(ttl=ttl), content_type="application/rss+xml"))
    assert feed.ttl_minutes is None
    assert len(feed.items) == 2


def test_plain_text_title_is_escaped_so_angle_brackets_stay_text() -> None:
    atom = """<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
<entry><title type="text">a &lt;b&gt; c &amp; d</title><id>urn:x:1</id>
<summary type="html">&lt;p&gt;para&lt;/p&gt;</summary>
<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">
<p>x</p><p>longer text</p></div></content>
<updated>2026-11-28T10:00:00Z</updated></entry></feed>"""
    (item,) = parse(fetched(atom, content_type="application/atom+xml")).items
    assert item.title == "a &lt;b&gt; c &amp; d"
    assert item.summary == "<p>para</p>"
    assert "longer text" in item.content
    assert item.updated == datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert item.published is None


def test_json_feed() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON wire",
        "items": [
            {
                "id": "1",
                "url": "https://example.org/a",
                "title": "Hello",
                "content_html": "<p>Body</p>",
                "date_published": "2026-11-27T08:00:00+05:00",
                "tags": ["kz"],
            }
        ],
    }
    feed = parse(fetched(json.dumps(doc), content_type="application/feed+json"))
    (item,) = feed.items
    assert (feed.title, item.guid, item.link, item.tags) == (
        "JSON wire",
        "1",
        "https://example.org/a",
        ("kz",),
    )
    assert item.published == datetime(2026, 11, 27, 3, tzinfo=UTC)


def test_json_feed_plain_text_relative_url_and_junk_items() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1",
        "language": "kk",
        "items": [
            {"id": 7, "url": "/p/7", "content_text": "a < b", "author": {"name": "Aigerim"}},
            "not an item",
            {"id": None, "title": "no id", "date_published": "yesterday"},
        ],
    }
    feed = parse(fetched(json.dumps(doc)))
    first, second = feed.items
    assert (first.guid, first.link, first.content) == (
        "7",
        "http://news.example.org/p/7",
        "a &lt; b",
    )
    assert (first.author, first.language) == ("Aigerim", "kk")
    assert (second.guid, second.published) == (None, None)


def test_json_that_is_not_a_feed_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse(fetched(b'{"version": "https://jsonfeed.org/version/1.1", "items": 3}'))
    with pytest.raises(ParseError):
        parse(fetched(b"[" * 100_000))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        b"<!doctype html><html><head><title>Not a feed</title></head><body><p>hi</p></body></html>",
        b"\x00\xff\xfe garbage \x89PNG",
        b'{"not": "a feed"}',
        b"<rss><channel><title>broken",
    ],
)
def test_not_a_feed_raises_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse(fetched(body, content_type="text/html"))
    assert info.value.message


def test_parse_error_carries_feedparser_reason_and_a_redacted_url() -> None:
    secret_url = "http://user:hunter2@example.org/feed?token=abc"
    with pytest.raises(ParseError) as info:
        parse(fetched(b"<html><body>login</body></html>", url=secret_url))
    assert "hunter2" not in str(info.value) and "token" not in str(info.value)


def test_bozo_feed_with_entries_parses_with_warning() -> None:
    body = "<rss><channel><item><title>AT&T & friends</title><guid>1</guid></item></channel></rss>"
    feed = parse(fetched(body, content_type="application/rss+xml"))
    assert feed.warning
    (item,) = feed.items
    assert item.title.startswith("AT&amp;T")


def test_entries_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_mod, "MAX_ENTRIES", 3)
    items = "".join(f"<item><title>t{n}</title></item>" for n in range(10))
    feed = parse(fetched(f"<rss version='2.0'><channel>{items}</channel></rss>"))
    assert [i.title for i in feed.items] == ["t0", "t1", "t2"]
    assert feed.warning is not None and "10 entries" in feed.warning


def test_text_fields_are_capped_at_one_megabyte() -> None:
    big = "word " * 300_000  # 1.5 MB
    body = (
        "<rss version='2.0'><channel><item><guid>1</guid>"
        f"<description>{big}</description></item></channel></rss>"
    )
    (item,) = parse(fetched(body, content_type="application/rss+xml")).items
    assert len(item.summary) == parse_mod.MAX_FIELD_CHARS


def test_a_body_that_names_a_file_is_never_opened(tmp_path: Path) -> None:
    # feedparser.parse(bytes) would open a path; we hand it a stream.
    path = tmp_path / "feed.xml"
    path.write_text(RSS.format(ttl="5"))
    with pytest.raises(ParseError):
        parse(fetched(str(path).encode()))


def test_content_location_header_is_the_base_for_relative_links() -> None:
    body = "<rss version='2.0'><channel><item><guid>g</guid><link>x/y</link></item></channel></rss>"
    result = fetched(
        body, content_type="application/rss+xml", content_location="https://cdn.example.net/a/b"
    )
    (item,) = parse(result).items
    assert item.link == "https://cdn.example.net/a/x/y"


# ---------------------------------------------------------------------------------------------
# Hostile XML


def quadratic_blowup(entity_chars: int = 50_000, refs: int = 2_000) -> bytes:
    # The shape measured in issue 6: one ~50 KB entity referenced thousands of times; 112 KB
    # on the wire, ~100 MB once expanded by feedparser 6.0.14's loose parser.
    description = "&blowup;" * refs
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<!DOCTYPE rss [\n<!ENTITY blowup "{"x" * entity_chars}">\n]>\n'
        "<rss version='2.0'><channel><title>q</title><item><guid>1</guid><title>bomb</title>"
        f"<description>{description}</description></item></channel></rss>"
    ).encode()


def test_quadratic_blowup_is_neutralized_small_output_small_memory() -> None:
    body = quadratic_blowup(refs=7_750)
    assert 100_000 < len(body) < 120_000
    tracemalloc.start()
    try:
        feed = parse(fetched(body, content_type="application/rss+xml"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (item,) = feed.items
    assert item.title == "bomb"
    assert len(item.summary) < 2 * len(body)
    assert "x" * 1000 not in item.summary
    assert peak < 50_000_000  # expanded it would be 387 MB of text alone


def test_billion_laughs_is_harmless() -> None:
    lol = ['<!ENTITY lol "lol">']
    for n in range(1, 10):
        lol.append(f'<!ENTITY lol{n} "{("&lol%s;" % ("" if n == 1 else n - 1)) * 10}">')
    body = (
        f"<?xml version='1.0'?>\n<!DOCTYPE lolz [\n{chr(10).join(lol)}\n]>\n"
        "<rss version='2.0'><channel><item><guid>1</guid><title>&lol9;</title>"
        "<description>&lol9;&lol9;</description></item></channel></rss>"
    ).encode()
    (item,) = parse(fetched(body, content_type="application/rss+xml")).items
    assert "lollol" not in item.title + item.summary
    assert len(item.title) < 100


def test_xxe_system_entity_does_not_leak_local_files() -> None:
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>\n'
        b"<rss version='2.0'><channel><title>&xxe;</title><item><guid>1</guid>"
        b"<title>leak &xxe;</title><description>&xxe;</description></item></channel></rss>"
    )
    feed = parse(fetched(body, content_type="application/rss+xml"))
    (item,) = feed.items
    everything = feed.title + item.title + item.summary + item.content
    assert "root:" not in everything
    assert "/bin/" not in everything


def test_no_external_dtd_or_entity_is_ever_fetched(feed_server: FeedServer) -> None:
    dtd, ent = feed_server.url("/evil.dtd"), feed_server.url("/evil.ent")
    feed_server.add(
        "/evil.dtd", body=b'<!ENTITY leak "fetched">', content_type="application/xml-dtd"
    )
    feed_server.add("/evil.ent", body=b"fetched", content_type="text/plain")
    for doctype in (
        f'<!DOCTYPE rss SYSTEM "{dtd}">',
        f'<!DOCTYPE rss PUBLIC "-//Evil//DTD//EN" "{dtd}">',
        f'<!DOCTYPE rss [ <!ENTITY % p SYSTEM "{dtd}"> %p; <!ENTITY e SYSTEM "{ent}"> ]>',
    ):
        body = (
            f"<?xml version='1.0'?>\n{doctype}\n<rss version='2.0'><channel><item><guid>1</guid>"
            "<title>&leak;&e;</title></item></channel></rss>"
        )
        (item,) = parse(fetched(body, content_type="application/rss+xml")).items
        assert "fetched" not in item.title
    assert feed_server.requests == []


def test_entity_declarations_hidden_in_a_prolog_comment_are_removed() -> None:
    # feedparser's loose parser reads <!ENTITY> lines anywhere before the first "<\w", even
    # inside a comment, as long as it sees exactly one DOCTYPE there.
    body = (
        '<?xml version="1.0"?>\n<!DOCTYPE rss>\n<!--\n<!ENTITY big "' + "y" * 50_000 + '">\n-->\n'
        "<rss version='2.0'><channel><item><guid>1</guid><description>"
        + "&big;" * 2_000
        + "</description></item></channel></rss>"
    ).encode()
    hardened = harden_xml(body)
    assert b"ENTITY" not in hardened and b"DOCTYPE" not in hardened
    (item,) = parse(fetched(body, content_type="application/rss+xml")).items
    assert "y" * 100 not in item.summary


def test_entities_past_a_non_ascii_root_cannot_reach_feedparsers_loose_parser() -> None:
    # feedparser's "<\w" is ASCII-only, so its idea of the prolog runs past "<é...>".
    body = (
        "<élément>\n<!DOCTYPE x>\n<!ENTITY big '" + "z" * 50_000 + "'>\n"
        "<rss version='2.0'><channel><item><guid>1</guid><description>"
        + "&big;" * 2_000
        + "</description></item></channel></rss></élément>"
    ).encode()
    assert b"<!ENTITY" not in harden_xml(body)
    (item,) = parse(fetched(body, content_type="application/rss+xml")).items
    assert "z" * 100 not in item.summary


def test_entity_declarations_split_to_reassemble_are_removed() -> None:
    body = b"<!DOCTYPE r [ ]><!EN<!ENTITY x 'y'>TITY big 'zzzz'>\n<rss/>"
    assert b"ENTITY" not in harden_xml(body).upper()


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_hardening_keeps_unicode_encodings_intact(codec: str) -> None:
    declared = codec.replace("-sig", "").replace("-le", "").replace("-be", "")
    text = (
        f'<?xml version="1.0" encoding="{declared}"?>\n'
        '<!DOCTYPE rss [ <!ENTITY big "AAAA"> ]>\n'
        "<rss version='2.0'><channel><item><guid>1</guid><title>Қазақстан — Ўзбекистон</title>"
        "<description>x&big;y</description></item></channel></rss>"
    )
    body = text.encode(codec)
    hardened = harden_xml(body)
    assert hardened != body
    decoded = hardened.decode(codec)
    assert "ENTITY" not in decoded and "Қазақстан — Ўзбекистон" in decoded
    (item,) = parse(fetched(body)).items
    assert item.title == "Қазақстан — Ўзбекистон"
    assert "AAAA" not in item.summary


def test_hardening_is_byte_exact_for_legacy_encodings() -> None:
    text = (
        '<?xml version="1.0" encoding="windows-1251"?>\n<!DOCTYPE rss [ <!ENTITY e "E"> ]>\n'
        "<rss version='2.0'><channel><item><guid>1</guid><title>Новости Бишкека</title>"
        "</item></channel></rss>"
    )
    body = text.encode("cp1251")
    hardened = harden_xml(body)
    assert hardened.endswith(body[body.index(b"<rss") :])
    (item,) = parse(fetched(body, content_type="application/xml")).items
    assert item.title == "Новости Бишкека"


def test_http_charset_utf16_without_bom_is_hardened() -> None:
    text = (
        "\n<!DOCTYPE rss [ <!ENTITY big 'ZZZZ'> ]>\n"
        "<rss version='2.0'><channel><item><guid>1</guid><title>&big;</title></item>"
        "</channel></rss>"
    )
    body = b"x\x00" + text.encode("utf-16-le")
    assert "ZZZZ" not in harden_xml(body, "utf-16le").decode("utf-16-le")


def test_documents_without_declarations_are_returned_untouched() -> None:
    body = RSS.format(ttl="1").encode()
    assert harden_xml(body) is body
    assert harden_xml(b"") == b""
    json_body = b'{"version": "https://jsonfeed.org/version/1", "items": []}'
    assert harden_xml(json_body) is json_body


def test_lowercase_doctype_and_undefined_entities_do_not_break_parsing() -> None:
    body = (
        "<!doctype rss [<!entity e 'E'>]><rss version='2.0'><channel><item><guid>1</guid>"
        "<title>a &nbsp; &undefined; b</title></item></channel></rss>"
    )
    hardened = harden_xml(body.encode())
    assert b"entity" not in hardened.lower()
    (item,) = parse(fetched(body)).items
    assert item.title.startswith("a")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2_000))
def test_parse_raises_only_parse_error_on_random_bytes(body: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse(fetched(body))


_PROLOG = st.sampled_from(
    [
        "<?xml version='1.0'?>",
        "<!DOCTYPE rss [",
        "<!ENTITY a 'b'>",
        "<!ENTITY % p SYSTEM 'http://x/'>",
        "]>",
        "<!--",
        "-->",
        "'",
        '"',
        "<rss>",
        "<item><title>&a;</title></item>",
        "\n",
        "<!doctype x>",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PROLOG, max_size=12), st.sampled_from(["utf-8", "utf-16", "utf-16-be", "utf-32"]))
def test_harden_never_leaves_a_declaration_before_the_root(parts: list[str], codec: str) -> None:
    body = "".join(parts).encode(codec)
    text = harden_xml(body).decode(codec, "replace")
    first_element = re.search(r"<[A-Za-z]", text)
    root = first_element.start() if first_element else len(text)
    assert "<!ENTITY" not in text[:root].upper()
    assert "<!DOCTYPE" not in text[:root].upper()
