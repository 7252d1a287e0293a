"""fastparse: the expat path gives the same Items as feedparser, and falls back when unsure.

The corpus tests run every third-party feed file through both paths. For each file the fast path
accepts, ``normalize_feed`` must give equal Items (every field: key, guid, url, title, text,
published, content hash, author, tags, language) and the feed-level facts ``parse`` keeps must be
equal. On every file, the fast path may only accept or fall back: it never raises. Run with
``-s`` to see how many files take the fast path.
"""

from __future__ import annotations

import contextlib
import importlib
import mimetypes
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from xml.parsers import expat

import pytest
from feedparser.urls import _urljoin
from hypothesis import given, settings
from hypothesis import strategies as st

from seedwatch import fastparse
from seedwatch.errors import ParseError
from seedwatch.normalize import normalize_feed
from seedwatch.parse import parse, prepare, read_document
from seedwatch.textutil import html_to_text
from seedwatch.types import FeedRef, FetchResult, Item, ParsedFeed
from tests.conftest import ROOT, need_corpus
from tests.test_corpus_parse import _headers

FETCHED_AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FEED = FeedRef(id=1, url="http://127.0.0.1/feed", name="fast")
URL = "http://news.example.org/feeds/main.xml"


def fetched(body: bytes | str, content_type: str | None = "application/xml") -> FetchResult:
    data = body.encode("utf-8") if isinstance(body, str) else body
    headers = (("content-type", content_type),) if content_type else ()
    return FetchResult(requested_url=URL, url=URL, status=200, headers=headers, body=data)


def takes_fast_path(result: FetchResult) -> bool:
    headers = dict(result.headers)
    headers.setdefault("content-location", result.url)
    return fastparse.read_feed(*prepare(result.body, headers)) is not None


def items(parsed: ParsedFeed, url: str = URL) -> tuple[Item, ...]:
    return normalize_feed(FEED, parsed, fetched_at=FETCHED_AT, base_url=url)


def assert_same(result: FetchResult) -> ParsedFeed:
    """Both paths agree on ``result``; the fast path's ParsedFeed."""
    slow, fast = parse(result, fast=False), parse(result)
    assert items(fast, result.url) == items(slow, result.url)
    assert feed_facts(fast) == feed_facts(slow)
    return fast


def feed_facts(parsed: ParsedFeed) -> tuple[object, ...]:
    return parsed.title, parsed.link, parsed.language, parsed.ttl_minutes, parsed.warning


RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">
<channel>
  <title>Wire &amp; Co</title>
  <link>http://news.example.org/</link>
  <language>ru-RU</language>
  <ttl>30</ttl>
  <image><title>logo</title><url>/logo.png</url><link>/</link></image>
  <item>
    <title>Heads of CIS security services meet</title>
    <link>/2026/11/cis-meeting?utm_source=rss&amp;a=1</link>
    <guid isPermaLink="false">cis-2026-11-28</guid>
    <description>Short &lt;b&gt;summary&lt;/b&gt; &amp;amp; more</description>
    <content:encoded><![CDATA[<p>The long <em>body</em>.</p><img src="/a.png" alt="A map">
      <p>AT&T &copy2024 &foo; <script>alert(1)</script></p>]]></content:encoded>
    <pubDate>Sat, 28 Nov 2026 09:30:00 +0300</pubDate>
    <category domain="x">security</category><category>CIS</category>
    <dc:creator>Desk</dc:creator>
    <source url="http://agency.example.org/rss">Agency &lt;i&gt;wire&lt;/i&gt;</source>
    <media:content url="http://cdn.example.org/v.mp4"><media:title>clip</media:title></media:content>
  </item>
  <item>
    <title>A &lt;b&gt;bold&lt;/b&gt; title</title>
    <guid>/permalink/2</guid>
    <author>desk@example.org (Desk)</author>
    <dc:date>2026-11-27T10:00:00Z</dc:date>
    <description>&lt;main&gt;x&lt;/main&gt;&lt;summary&gt;y&lt;/summary&gt;
      caf\u00c3\u00a9</description>
  </item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="kk" xml:base="http://blog.example.org/a/">
  <title type="html">Blog &lt;i&gt;x&lt;/i&gt;</title>
  <link href="/" rel="alternate"/>
  <id>urn:feed</id>
  <entry xml:base="posts/">
    <title>Entry one</title>
    <link href="one.html"/>
    <link rel="enclosure" href="one.mp3"/>
    <id>tag:blog.example.org,2026:1</id>
    <updated>2026-11-27T10:00:00+05:00</updated>
    <published>2026-11-26T10:00:00+05:00</published>
    <author><name>Aigerim</name><email>a@example.org</email></author>
    <category term="politics" label="Politics"/>
    <source><title>Elsewhere</title><id>urn:other</id><link href="http://o.example.org/"/>
      <author><name>Other</name></author></source>
    <summary type="text">1 &lt; 2 &amp; so on</summary>
    <content type="html">&lt;p xml:lang="ru"&gt;Body&lt;/p&gt;</content>
  </entry>
  <entry>
    <title type="text">Entry &lt;two&gt;</title>
    <id>/relative/id</id>
    <updated>bogus date</updated>
    <content type="text">plain body</content>
  </entry>
</feed>
"""

RDF = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="http://example.org/"><title>RDF</title><link>http://example.org/</link>
    <items><rdf:Seq><rdf:li resource="http://example.org/1"/></rdf:Seq></items>
  </channel>
  <item rdf:about="http://example.org/1">
    <title>One</title><link>http://example.org/1</link>
    <description>First</description>
    <dc:date>2026-11-27</dc:date><dc:subject>news</dc:subject><dc:language>uz</dc:language>
  </item>
</rdf:RDF>
"""


@pytest.mark.parametrize("doc", [RSS, ATOM, RDF], ids=["rss20", "atom10", "rss10"])
def test_fast_path_reads_the_three_formats_like_feedparser(doc: str) -> None:
    result = fetched(doc)
    assert takes_fast_path(result)
    parsed = assert_same(result)
    assert parsed.items


def test_fast_path_fields() -> None:
    feed = assert_same(fetched(RSS))
    assert (feed.title, feed.language, feed.ttl_minutes) == ("Wire & Co", "ru-RU", 30)
    first, second = feed.items
    assert first.link == "http://news.example.org/2026/11/cis-meeting?utm_source=rss&a=1"
    assert first.guid == "cis-2026-11-28"
    assert first.author == "Desk"
    assert first.tags == ("security", "CIS")
    assert first.published == datetime(2026, 11, 28, 6, 30, tzinfo=UTC)
    assert second.link == "http://news.example.org/permalink/2"  # a permalink guid is the link
    atom = assert_same(fetched(ATOM))
    entry = atom.items[0]
    assert entry.link == "http://blog.example.org/a/posts/one.html"  # nested xml:base
    assert entry.author == "Aigerim (a@example.org)"
    assert entry.language == "kk"


XHTML_BODY = "<xhtml:body xmlns:xhtml='http://www.w3.org/1999/xhtml'>b</xhtml:body>"
GEO = "<georss:point xmlns:georss='http://www.georss.org/georss'>1 2</georss:point>"


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        (RSS.replace("</channel>", ""), "not well-formed"),
        (RSS.replace("<item>", f"<item>{XHTML_BODY}", 1), "xhtml:body"),
        (ATOM.replace('type="text">plain', 'type="xhtml">plain'), "XHTML content"),
        (ATOM.replace('<summary type="text">', '<summary type="text" mode="escaped">'), "mode"),
        ("<html><body>no feed</body></html>", "unknown root"),
        ("<opml version='2.0'><body/></opml>", "unknown root"),
        (RSS.replace("<title>Heads", "<title><b>Heads</b>"), "markup in a text element"),
        (RSS.replace("<item>", "<item><links>x</links>", 1), "element named like a field"),
        (RSS.replace("</item>", f"{GEO}</item>", 1), "handler not transcribed"),
    ],
)
def test_falls_back_to_feedparser(doc: str, why: str) -> None:
    result = fetched(doc)
    assert not takes_fast_path(result), why
    with contextlib.suppress(ParseError):
        parse(result)  # whatever feedparser makes of it


def test_hardening_runs_before_the_fast_path() -> None:
    bomb = RSS.replace(
        '<?xml version="1.0" encoding="utf-8"?>',
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>',
    ).replace("<title>Heads", "<title>&b;Heads")
    result = fetched(bomb)
    # The DTD is gone before either parser sees the body, so "&b;" is an undefined entity:
    # expat rejects the document and feedparser's loose parser keeps the reference as text.
    assert not takes_fast_path(result)
    assert "aaaa" not in parse(result).items[0].title


def test_legacy_encodings_and_mislabelled_utf8() -> None:
    cyrillic = RSS.replace('encoding="utf-8"', 'encoding="windows-1251"')
    cyrillic = cyrillic.replace("Heads of CIS", "Главы СНГ").replace("caf\u00c3\u00a9", "")
    result = fetched(cyrillic.encode("cp1251"), content_type=None)
    assert takes_fast_path(result)
    assert assert_same(result).items[0].title == "Главы СНГ security services meet"
    # text/xml without a charset is us-ascii by RFC 3023: feedparser notes the override.
    utf8 = fetched(RSS.replace("Heads of CIS", "Главы СНГ"), content_type="text/xml")
    assert takes_fast_path(utf8)
    assert "CharacterEncodingOverride" in (assert_same(utf8).warning or "")
    unknown = fetched(RSS.replace('encoding="utf-8"', 'encoding="no-such-codec"'))
    assert takes_fast_path(unknown)  # feedparser falls back to UTF-8 and says so; so do we
    assert "no-such-codec" in (assert_same(unknown).warning or "")


def test_read_document_without_fast_runs_feedparser() -> None:
    slow = read_document(RSS.encode(), {"content-type": "application/xml"}, fast=False)
    fast = read_document(RSS.encode(), {"content-type": "application/xml"})
    assert type(slow).__name__ == "FeedParserDict"
    assert isinstance(fast, dict) and type(fast) is dict
    assert [e["id"] for e in slow["entries"]] == [e["id"] for e in fast["entries"]]


def test_generated_bench_feeds_take_the_fast_path() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        cold_start = importlib.import_module("cold_start")
    finally:
        sys.path.remove(str(ROOT / "bench"))
    for number in range(5):
        result = fetched(cold_start.make_feed(number, 20), content_type="application/rss+xml")
        assert takes_fast_path(result)
        assert len(assert_same(result).items) == 20


# Pieces of the HTML feeds put in descriptions: tags the sanitizer keeps, drops, empties or
# rewrites, entities it keeps or breaks, comments, stray "<" and "&".
HTML_PIECES = [
    "<p>", "</p>", "<br>", "</br>", "<br/>", '<img alt="pic" src="/a.png">', "<img alt='y'/>",
    "<script>", "</script>", "<b>", "</b>", "<div/>", "<main>", "</main>", "<title>", "</title>",
    "&amp;", "&foo;", "&copy", "&copy;", "&#150;", "&#x2019;", "AT&T", " < ", ">", "word", " ",
    "\n", "<!-- c -->", '<a href="u?a=1&b=2">', "</a>", "<A HREF='x'>", "<ul><li>", "</li>",
    "<span class=x>", "</span>", "<pre>", "</pre>", '<h2 id="a">', "</h2>", "<figure>",
    "<figcaption>", "</figcaption>", "</figure>", "<noscript>", "</noscript>", "<iframe src=x>",
    "</iframe>", "&lt;p&gt;", "&lt;/p&gt;", "&nbsp;", "&apos;", "<p/>", "<input value=3>",
    "<font color=red>", "</font>", "<o:p>", "<hr>", "&#0;", "\u00e9", "\u2019", "<em", 'x="y">',
    "<table><tr><td>", "</td></tr></table>", "<style>", "</style>", "<svg>", "</svg>", "<q>",
    "<!--more-->", "<!--[if mso]><x>y</x><![endif]-->", "<!-- a -- b -->", "<!-->", "<!---->",
    "<picture>", "</picture>", "<mark>", "<object>", "<summary>", "<nav>", "<meta x=1>",
    "&u=1", "&uiState=2", "&a.b", "&copy2024", "&notit", "&&", "&#12", "&amp", "&AMP;",
    "<template>", "</template>", "<head>", "<applet>", "</applet>", "<math>", "<wbr>",
    "<script>var a = 1;</script>", "<style>p {color: red}</style>", "<SCRIPT src=x></SCRIPT >",
    '<script type="application/ld+json">{"a": "b>c"}</script>', "<script>if (a<b) x()</script>",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(HTML_PIECES), max_size=25))
def test_unsanitized_html_has_the_sanitized_plain_text(pieces: list[str]) -> None:
    html = "".join(pieces)
    base, kind = "http://news.example.org/a/", "text/html"
    expected = html_to_text(fastparse._feedparser_html(html, base, kind))
    assert html_to_text(fastparse._sanitized(html, base, kind)) == expected


BASES = [
    "http://h/", "http://h", "https://h.example.org/a/b", "http://h/a/b/", "http://h/a/b?q=1",
    "http://h/a//b", "http://h/a/./b", "http://h/a/../b", "", "http://h:80/x/y.xml#f",
    "HTTP://H/x", "ftp://h/x/", "http://[::1]/a", "http://h/a;p/b", "http://h/\u00e9/", "tag:x",
]  # fmt: skip
URIS = [
    "x", "/x", "x/y", "./x", "../x", "x/../y", "//o/x", "x?q", "x#f", "?q", "#f", "http://o/p",
    "https://o/p?a=1&b=2#f", "http://o/p?", "http://o/p#", "http://o", "HTTP://o/p", "tag:b,2:1",
    "urn:uuid:1-2", "mailto:a@b", "javascript:x", "http:x", "ftp://o/x", "x y", "x;p", "a:b/c",
    "x//y", "bench-0-1", "%7Ex", "\u00e9", "http://o/\u00e9", "http://o:8080/p", "http:///x",
    "file:x", "x/", "/",
]  # fmt: skip


@pytest.mark.parametrize("base", BASES)
def test_uri_shortcuts_resolve_like_feedparser(base: str) -> None:
    for uri in URIS:
        assert fastparse._join(base, uri) == _urljoin(base, uri), uri


# ---------------------------------------------------------------------------------------------
# Corpus parity


@dataclass
class Parity:
    files: int = 0
    fast: int = 0
    items: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


def _result(root: Path, path: Path, with_headers: bool) -> FetchResult:
    data = path.read_bytes()
    headers = _headers(data) if with_headers else ()
    if with_headers and not any(name == "content-type" for name, _ in headers):
        headers += (("content-type", mimetypes.guess_type(path.name)[0] or "text/plain"),)
    url = f"http://127.0.0.1/corpus/{path.relative_to(root).as_posix()}"
    return FetchResult(requested_url=url, url=url, status=200, headers=headers, body=data)


def _accepted(result: FetchResult, report: Parity) -> bool:
    headers = dict(result.headers)
    headers.setdefault("content-location", result.url)
    try:
        fastparse._read(*prepare(result.body, headers))
    except fastparse.Fallback as e:
        report.fallbacks[str(e).split(":")[0]] += 1
        return False
    except expat.ExpatError:
        report.fallbacks["not well-formed"] += 1
        return False
    except Exception as e:  # read_feed would hide it: here it is a bug to fix
        report.crashes.append(f"{result.url}: {type(e).__name__}: {e}")
        return False
    return True


def _outcome(result: FetchResult, fast: bool) -> ParsedFeed | str:
    try:
        return parse(result, fast=fast)
    except ParseError as e:
        return f"ParseError: {e}"


def _diff(expected: tuple[Item, ...], got: tuple[Item, ...]) -> str:
    if len(expected) != len(got):
        return f"{len(expected)} items via feedparser, {len(got)} via fastparse"
    for one, two in zip(expected, got, strict=True):
        if one != two:
            fields = [f for f in one.__dataclass_fields__ if getattr(one, f) != getattr(two, f)]
            return f"item {one.guid or one.url}: {fields}"
    return ""


def check_corpus(root: Path, *, with_headers: bool) -> Parity:
    report = Parity()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        result = _result(root, path, with_headers)
        report.files += 1
        if not _accepted(result, report):
            continue
        report.fast += 1
        slow, fast = _outcome(result, fast=False), _outcome(result, fast=True)
        if isinstance(slow, str) or isinstance(fast, str):
            if slow != fast:
                report.mismatches.append(f"{result.url}: {slow!r} vs {fast!r}"[:300])
            continue
        expected, got = items(slow, result.url), items(fast, result.url)
        report.items += len(got)
        problem = _diff(expected, got)
        if not problem and feed_facts(slow) != feed_facts(fast):
            problem = f"feed facts {feed_facts(slow)} vs {feed_facts(fast)}"
        if problem:
            report.mismatches.append(f"{result.url}: {problem}"[:300])
    return report


def _show(name: str, report: Parity, record: Callable[[str, object], None]) -> None:
    print(
        f"\n[fastparse {name}] files={report.files} fast_path={report.fast} "
        f"items_compared={report.items} fallbacks={dict(report.fallbacks.most_common())}"
    )
    record(f"{name}.files", report.files)
    record(f"{name}.fast_path", report.fast)


@pytest.mark.slow
def test_realworld_feeds_parity(record_property: Callable[[str, object], None]) -> None:
    root = need_corpus("realworld-feeds")
    report = check_corpus(root, with_headers=False)
    _show("realworld-feeds", report, record_property)
    assert report.crashes == []
    assert report.mismatches == []
    # 199 of 229 when this was written; the rest are not XML, not well-formed or use elements we
    # leave to feedparser. Fewer means a regression in what the fast path accepts.
    assert report.fast >= 195
    assert report.items > 5_000


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["feedparser-tests", "w3c-feedvalidator"])
def test_test_suites_accepted_with_parity_or_fall_back(
    corpus: str, record_property: Callable[[str, object], None]
) -> None:
    root = need_corpus(corpus)
    report = check_corpus(root, with_headers=corpus == "feedparser-tests")
    _show(corpus, report, record_property)
    assert report.crashes == []
    assert report.mismatches == []
    assert report.fast > 500
