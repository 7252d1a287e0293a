"""normalize: canonical URLs, plain text, dates, language, keys and in-document duplicates."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedwatch.normalize import (
    canonical_url,
    content_hash,
    detect_language,
    html_to_text,
    normalize,
    normalize_feed,
)
from seedwatch.types import FeedRef, ParsedFeed, ParsedItem

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FEED = FeedRef(id=3, url="https://news.example.org/rss", name="wire")


def entry(**kw: object) -> ParsedItem:
    values: dict[str, object] = {
        "guid": None,
        "link": None,
        "title": "",
        "summary": "",
        "content": "",
        "published": None,
        "updated": None,
    }
    values.update(kw)
    return ParsedItem(**values)  # type: ignore[arg-type]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# canonical_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.COM:80/a?b=2&a=1#frag", "http://example.com/a?a=1&b=2"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        (
            "https://e.org/n?utm_source=rss&utm_medium=feed&id=5&fbclid=X&gclid=Y&yclid=Z"
            "&_openstat=o&mc_cid=1&mc_eid=2&ref_src=twsrc&igshid=i&UTM_Campaign=c",
            "https://e.org/n?id=5",
        ),
        ("https://user:secret@example.com/p", "https://example.com/p"),
        ("https://example.com/a b/ж", "https://example.com/a%20b/%D0%B6"),
        (
            "https://пример.рф/новости",
            "https://xn--e1afmkfd.xn--p1ai/%D0%BD%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8",
        ),
        ("  https://example.com/x\n", "https://example.com/x"),
        ("https://[::1]:443/x", "https://[::1]/x"),
        ("https://example.com./x?", "https://example.com/x"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "mailto:a@b.c",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "gopher://example.com/",
        "/relative/without/base",
        "//example.com/protocol-relative-without-base",
        "http://",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "http://example.com:port/",
        "",
    ],
)
def test_canonical_url_rejects(url: str) -> None:
    assert canonical_url(url) is None


def test_canonical_url_resolves_relative_against_base() -> None:
    base = "https://news.example.org/section/index.html"
    assert canonical_url("../a?utm_term=x", base) == "https://news.example.org/a"
    assert canonical_url("//cdn.example.net/x", base) == "https://cdn.example.net/x"
    assert canonical_url("story", base) == "https://news.example.org/section/story"


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=60)))
def test_canonical_url_is_total_and_idempotent(url: str, base: str | None) -> None:
    once = canonical_url(url, base)
    if once is not None:
        assert once.startswith(("http://", "https://"))
        assert canonical_url(once) == once
        once.encode("ascii")  # fully escaped; hosts in punycode


_URLISH = st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}/{path}?{query}",
    st.sampled_from(["http", "HTTPS", "https", "Http"]),
    st.from_regex(r"[A-Za-z0-9.-]{1,20}(:[0-9]{1,5})?", fullmatch=True),
    st.text(max_size=30),
    st.text(max_size=40),
)


@settings(max_examples=500, deadline=None)
@given(_URLISH)
def test_canonical_url_idempotent_on_url_shaped_input(url: str) -> None:
    once = canonical_url(url)
    if once is not None:
        assert canonical_url(once) == once
        assert "utm_" not in once.split("?", 1)[-1].lower().split("=")[0]


# ---------------------------------------------------------------------------------------------
# html_to_text


def test_html_to_text_blocks_entities_scripts() -> None:
    html = (
        "<div><h1>Title</h1><p>One&nbsp;&amp; two&#8212;three</p><script>alert('x')</script>"
        "<style>p{color:red}</style><ul><li>a</li><li>b</li></ul>tail<br>end</div>"
    )
    assert html_to_text(html) == "Title\nOne & two—three\na\nb\ntail\nend"


def test_html_to_text_double_escaped_html_and_controls() -> None:
    assert html_to_text("&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt;&lt;/p&gt;") == "Hello world"
    assert html_to_text("a\x00b\x07c\ud800d  \t e") == "abcd e"
    assert html_to_text("e\u0301") == "\u00e9"  # NFC


def test_html_to_text_never_emits_script_even_from_escaped_text() -> None:
    out = html_to_text("&lt;script&gt;alert(1)&lt;/script&gt; and &amp;lt;script&amp;gt;")
    assert "<script" not in out.lower()


def test_html_to_text_survives_markup_that_crashes_html_parser() -> None:
    # html.parser raised on some "<![" marked sections in older Pythons; we must not.
    assert "x" in html_to_text("<![if !supportLists]>x<![endif]><!x")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_html_to_text_is_total_and_safe(html: str) -> None:
    out = html_to_text(html)
    assert "<script" not in out.lower()
    assert "\x00" not in out
    out.encode("utf-8")


_TAGGY = st.lists(
    st.sampled_from(
        ["<script>", "</script>", "<p>", "&lt;", "script", "&gt;", "<", "!", "<![CDATA[", "]]>",
         "&amp;", "<style", ">", "<!--", "-->", "x", " ", "<scr", "ipt>", "&#60;", "&#x3c;"]
    ),
    max_size=25,
).map("".join)  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(_TAGGY)
def test_html_to_text_never_emits_script_on_tag_soup(html: str) -> None:
    assert "<script" not in html_to_text(html).lower()


# ---------------------------------------------------------------------------------------------
# content_hash, detect_language


def test_content_hash_ignores_case_and_whitespace() -> None:
    assert content_hash("Breaking  News", "Line one\nline  two") == content_hash(
        "breaking news", "LINE ONE line two"
    )
    assert content_hash("a", "b") != content_hash("a", "c")


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        (
            "The heads of security services met in Dushanbe on Friday to discuss the border.",
            None,
            "en",
        ),
        (
            "Главы спецслужб стран СНГ встретились в Душанбе и обсудили ситуацию на границе.",
            None,
            "ru",
        ),
        ("Қазақстан Республикасының Ұлттық қауіпсіздік комитеті мәлімдеме жасады.", None, "kk"),
        (
            "Кыргызстандын Улуттук коопсуздук мамлекеттик комитети билдирүү таратты, өкмөт"
            " чогулду.",
            None,
            "ky",
        ),
        ("Oʻzbekiston Davlat xavfsizlik xizmati bayonot berdi.", None, "uz"),
        ("Ўзбекистон Давлат хавфсизлик хизмати баёнот берди ва ҳужжат тайёрлади.", None, "uz"),
        ("Tokayev Astana", None, "und"),
        ("Tokayev Astana", "en-US", "en"),
        ("", "ru", "ru"),
        ("12345 !!!", None, "und"),
        ("Саммит", "kk", "kk"),
        ("Ελληνικά νέα σήμερα", None, "el"),
    ],
)
def test_detect_language(text: str, hint: str | None, expected: str) -> None:
    assert detect_language(text, hint) == expected


def test_detect_language_one_kazakh_name_in_a_long_russian_text_stays_russian() -> None:
    text = "Делегация из Қазақстан прибыла. " + "Встреча прошла в Москве и была долгой. " * 20
    assert detect_language(text) == "ru"


# ---------------------------------------------------------------------------------------------
# normalize


def test_normalize_full_item() -> None:
    published = datetime(2026, 11, 28, 9, 30, tzinfo=timezone(timedelta(hours=3)))
    item = normalize(
        FEED,
        entry(
            guid="  cis-1 ",
            link="/2026/cis?utm_source=rss&id=1",
            title="Heads of <b>CIS</b> security &amp; intelligence",
            summary="<p>short</p>",
            content="<p>Long body text.</p><script>x()</script>",
            published=published,
            author="Desk &lt;desk@example.org&gt;",
            tags=("Security", "security", " <i>CIS</i> ", ""),
            language="en",
        ),
        fetched_at=NOW,
        base_url="https://news.example.org/rss",
    )
    assert item.feed_id == 3
    assert item.guid == "cis-1"
    assert item.key == sha("guid:cis-1")
    assert item.url == "https://news.example.org/2026/cis?id=1"
    assert item.title == "Heads of CIS security & intelligence"
    assert item.text == "Long body text."
    assert item.published == datetime(2026, 11, 28, 6, 30, tzinfo=UTC)
    assert item.published.tzinfo == UTC
    assert item.author == "Desk <desk@example.org>"
    assert item.tags == ("Security", "CIS")
    assert item.language == "en"
    assert item.content_hash == content_hash(item.title, item.text)


def test_summary_is_used_when_content_is_empty() -> None:
    item = normalize(FEED, entry(guid="g", summary="<p>only summary</p>"), fetched_at=NOW)
    assert item.text == "only summary"


def test_keys_fall_back_to_url_then_title_and_date() -> None:
    by_url = normalize(FEED, entry(link="https://e.org/a?utm_medium=x"), fetched_at=NOW)
    assert by_url.key == sha("url:https://e.org/a")
    dated = datetime(2026, 1, 2, tzinfo=UTC)
    by_title = normalize(FEED, entry(title="Hello", published=dated), fetched_at=NOW)
    assert by_title.key == sha("title:Hello" + dated.isoformat())
    # The fetch time is never part of a key: a second poll gives the same key.
    undated = entry(title="Hello")
    later = NOW + timedelta(hours=5)
    assert (
        normalize(FEED, undated, fetched_at=NOW).key
        == normalize(FEED, undated, fetched_at=later).key
    )


def test_published_falls_back_to_updated_then_fetch_time_and_is_clamped() -> None:
    updated = datetime(2026, 11, 1, tzinfo=UTC)
    assert normalize(FEED, entry(guid="a", updated=updated), fetched_at=NOW).published == updated
    assert normalize(FEED, entry(guid="b"), fetched_at=NOW).published == NOW
    soon = NOW + timedelta(hours=20)
    assert normalize(FEED, entry(guid="c", published=soon), fetched_at=NOW).published == soon
    far = NOW + timedelta(days=400)
    assert normalize(FEED, entry(guid="d", published=far), fetched_at=NOW).published == NOW
    naive = datetime(2026, 5, 5, 5, 5)
    assert normalize(
        FEED, entry(guid="e", published=naive), fetched_at=NOW
    ).published == naive.replace(tzinfo=UTC)


def test_guid_that_is_a_url_becomes_the_url_when_there_is_no_link() -> None:
    item = normalize(FEED, entry(guid="https://e.org/story/9?fbclid=1"), fetched_at=NOW)
    assert item.url == "https://e.org/story/9"
    assert item.key == sha("guid:https://e.org/story/9?fbclid=1")
    opaque = normalize(FEED, entry(guid="cis-1"), fetched_at=NOW, base_url="https://e.org/rss")
    assert opaque.url is None


def test_language_hint_and_detection() -> None:
    ru = normalize(
        FEED, entry(guid="r", title="Совещание глав спецслужб СНГ прошло в Москве"), fetched_at=NOW
    )
    assert ru.language == "ru"
    hinted = normalize(FEED, entry(guid="h", title="12:00", language="uz-Latn"), fetched_at=NOW)
    assert hinted.language == "uz"


_TEXT = st.text(max_size=120)
_DATES = st.one_of(
    st.none(),
    st.datetimes(
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-12)), timezone(timedelta(hours=14))]
        )
    ),
    st.datetimes(),
)


@settings(max_examples=400, deadline=None)
@given(
    st.builds(
        ParsedItem,
        guid=st.one_of(st.none(), _TEXT),
        link=st.one_of(st.none(), _TEXT),
        title=_TEXT,
        summary=_TEXT,
        content=_TEXT,
        published=_DATES,
        updated=_DATES,
        author=st.one_of(st.none(), _TEXT),
        tags=st.lists(_TEXT, max_size=5).map(tuple),
        language=st.one_of(st.none(), _TEXT),
    ),
    st.one_of(st.none(), _TEXT),
)
def test_normalize_never_raises_and_emits_clean_text(parsed: ParsedItem, base: str | None) -> None:
    item = normalize(FEED, parsed, fetched_at=NOW, base_url=base)
    strings = [item.key, item.title, item.text, item.content_hash, item.language]
    strings += [item.guid or "", item.url or "", item.author or "", *item.tags]
    for value in strings:
        assert "\x00" not in value
        value.encode("utf-8")
    assert item.published.tzinfo is not None
    assert item.published <= NOW + timedelta(days=1)
    assert "<script" not in item.text.lower() and "<script" not in item.title.lower()


# ---------------------------------------------------------------------------------------------
# normalize_feed: exact duplicates within one document


def feed_of(*items: ParsedItem, language: str | None = None) -> ParsedFeed:
    return ParsedFeed(title="t", link=None, language=language, ttl_minutes=None, items=items)


def test_normalize_feed_drops_exact_duplicates_only() -> None:
    doc = feed_of(
        entry(guid="1", title="A", link="https://e.org/a"),
        entry(guid="1", title="A again, same guid", link="https://e.org/a2"),
        entry(guid="2", title="A", link="https://e.org/a?utm_source=x"),  # same url + content
        entry(guid="3", title="A", link="https://e.org/other"),  # same text, other url: kept
        entry(guid="4", title="B", link="https://e.org/a"),  # same url, other text: kept
        entry(link="https://e.org/c", title="C"),
        entry(link="https://e.org/c#comments", title="C, edited"),  # same url key
        entry(guid="5"),  # empty items are never "the same content"
        entry(guid="6"),
    )
    items = normalize_feed(FEED, doc, fetched_at=NOW)
    assert [i.guid for i in items] == ["1", "3", "4", None, "5", "6"]
    assert [i.title for i in items][:4] == ["A", "A", "B", "C"]


def test_normalize_feed_passes_the_feed_language_as_hint() -> None:
    doc = feed_of(entry(guid="1", title="2026"), language="kk-KZ")
    (item,) = normalize_feed(FEED, doc, fetched_at=NOW)
    assert item.language == "kk"
