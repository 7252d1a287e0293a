"""OPML import (strict, recovered, refused) and export round trip."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seedwatch.config.model import FeedConfig
from seedwatch.errors import ConfigError
from seedwatch.opml import parse_opml, to_opml
from tests.conftest import need_corpus


def plain(feeds: list[FeedConfig]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(f.url, f.name, f.tags) for f in feeds]


def test_derived_cis_opml_has_56_feeds() -> None:
    path = need_corpus("opml", "DERIVED_cis_central_asia_from_yavuz.opml")
    feeds = parse_opml(path.read_bytes(), source=str(path))
    assert len(feeds) == 56
    first = feeds[0]
    assert (first.url, first.name, first.tags) == (
        "http://tengrinews.kz/news.rss",
        "Tengri News",
        ("kazakhstan",),
    )
    assert first.location is not None and first.location.line == 6
    vesti = next(f for f in feeds if f.name == "Vesti.kg")
    assert vesti.url.endswith("option=com_k2&view=itemlist&format=feed")  # &amp; decoded
    assert {f.tags[0] for f in feeds} >= {"kyrgyzstan", "uzbekistan", "russian-federation"}


def test_russia_opml_recovered_from_unescaped_quote() -> None:
    path = need_corpus("opml", "plenaryapp-awesome-rss-feeds", "Russia.opml")
    data = path.read_bytes()
    with pytest.raises(ElementTree.ParseError):  # it really is broken
        ElementTree.fromstring(data)
    feeds = parse_opml(data, source=str(path))
    assert len(feeds) == 13
    kommersant = next(f for f in feeds if "kommersant" in f.url)
    assert kommersant.url == "https://www.kommersant.ru/RSS/main.xml"
    assert kommersant.name == 'Газета "Коммерсантъ". Главное'
    assert kommersant.location is not None and kommersant.location.line == 20
    assert feeds[-1].url == "https://www.pravdareport.com/export.xml"  # after the broken line
    assert all(f.tags == ("russia",) for f in feeds)


def test_nested_categories_and_category_attribute_become_tags() -> None:
    data = b"""<?xml version="1.0"?>
<opml version="2.0"><head><title>t</title></head><body>
  <outline text="Central Asia">
    <outline title="Kyrgyz Republic" text="ignored when title is set">
      <outline type="rss" text="AKIpress" xmlUrl="https://akipress.example/rss"
               category="/EN,/News/Daily"/>
    </outline>
    <outline type="rss" xmlUrl="https://ca.example/feed"/>
  </outline>
  <outline type="rss" text="Top level" xmlUrl="https://top.example/rss">
    <outline type="rss" text="Child of a feed" xmlUrl="https://child.example/rss"/>
  </outline>
</body></opml>"""
    assert plain(parse_opml(data, source="t.opml")) == [
        (
            "https://akipress.example/rss",
            "AKIpress",
            ("central-asia", "kyrgyz-republic", "en", "news", "daily"),
        ),
        ("https://ca.example/feed", "ca.example", ("central-asia",)),
        ("https://top.example/rss", "Top level", ()),
        ("https://child.example/rss", "Child of a feed", ()),
    ]


def test_round_trip() -> None:
    feeds = [
        FeedConfig("https://a.example/rss?x=1&y=<2>", 'A "quoted" & <odd> name', tags=("ru", "kz")),
        FeedConfig("http://b.example/feed", "Б — кириллица", tags=("en", "central-asia")),
        FeedConfig("https://c.example/atom", "no tags"),
        FeedConfig("https://d.example/rss", "second ru", tags=("ru",)),
    ]
    text = to_opml(feeds, title="mine & yours")
    root = ElementTree.fromstring(text.encode())  # well-formed for a strict parser too
    assert root.get("version") == "2.0"
    assert root.findtext("head/title") == "mine & yours"
    back = parse_opml(text.encode(), source="export")
    assert sorted(plain(back)) == sorted(plain(feeds))


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1).filter(lambda s: s.strip() and "\r" not in s),
            st.lists(st.from_regex(r"[a-zа-я0-9-]{1,8}", fullmatch=True), max_size=3, unique=True),
        ),
        max_size=5,
    )
)
def test_round_trip_property(items: list[tuple[str, list[str]]]) -> None:
    feeds = [
        FeedConfig(f"https://h{i}.example/rss", " ".join(name.split()), tags=tuple(tags))
        for i, (name, tags) in enumerate(items)
        if " ".join(name.split()) and "".join(ch for ch in name if ord(ch) >= 32 or ch in "\n\t")
    ]
    back = parse_opml(to_opml(feeds).encode(), source="p")
    clean = {
        f.url: "".join(ch for ch in f.name if ord(ch) >= 32 or ch in "\t\n").strip() for f in feeds
    }
    assert sorted((f.url, f.tags) for f in back) == sorted((f.url, f.tags) for f in feeds)
    for f in back:
        assert f.name == (" ".join(clean[f.url].split()) or f.url.split("/")[2])


def test_skips_non_http_and_duplicates() -> None:
    data = b"""<opml version="1.0"><body>
<outline xmlUrl="file:///etc/passwd"/>
<outline xmlUrl="https://a.example/rss" text="A"/>
<outline text="Folder"><outline xmlUrl="https://a.example/rss" text="again"/></outline>
<outline xmlUrl="https://bad.example:99999/rss"/>
</body></opml>"""
    assert plain(parse_opml(data, source="s")) == [("https://a.example/rss", "A", ("folder",))]


def test_bare_ampersand_is_recovered() -> None:
    data = b'<opml><body><outline text="Q" xmlUrl="https://q.example/?a=1&b=2"/></body></opml>'
    assert plain(parse_opml(data, source="s")) == [("https://q.example/?a=1&b=2", "Q", ())]


def test_cp1251_declared_encoding_recovered() -> None:
    data = (
        '<?xml version="1.0" encoding="windows-1251"?>\n<opml><body>\n'
        '<outline text="Газета "Новая"" xmlUrl="https://n.example/rss"/>\n</body></opml>'
    ).encode("cp1251")
    [feed] = parse_opml(data, source="s")
    assert feed.name == 'Газета "Новая"' and feed.location is not None and feed.location.line == 3


def test_unrecoverable_input_names_source_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_opml(b"<opml>\n<body>\n<<<<\n", source="x.opml")
    assert info.value.path == "x.opml" and info.value.line == 3
    with pytest.raises(ConfigError, match="not <opml>"):
        parse_opml(b"<rss><channel/></rss>", source="feed.xml")
    with pytest.raises(ConfigError):
        parse_opml(b"", source="empty")


def test_entity_declarations_refused() -> None:
    data = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>
<opml><body><outline text="&b;" xmlUrl="https://x.example/rss"/></body></opml>"""
    with pytest.raises(ConfigError) as info:
        parse_opml(data, source="bomb.opml")
    assert info.value.line == 2


def test_valid_empty_opml_is_empty() -> None:
    assert parse_opml(b'<opml version="2.0"><head/><body/></opml>', source="e") == []


@given(st.binary(max_size=300))
def test_parse_opml_raises_only_config_error(data: bytes) -> None:
    try:
        feeds = parse_opml(b"<opml><body>" + data, source="fuzz")
    except ConfigError as e:
        assert e.path == "fuzz"
        return
    assert all(f.url.startswith(("http://", "https://")) for f in feeds)
