from __future__ import annotations

import html.parser
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedwatch.alerts import render
from seedwatch.types import AlertMessage

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def make_msg(**kw: object) -> AlertMessage:
    base = AlertMessage(
        id="alrt-0001",
        rule="cis-security",
        channel="mail",
        title="CIS security chiefs meet in Ashgabat",
        url="https://example.org/news/1?x=1&y=2",
        feed="nCa News",
        published=datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
        created=NOW,
        score=0.7349,
        topic="security",
        terms=("CIS", "спецслужб"),
        snippet="Heads of CIS security services (руководители спецслужб СНГ) met on Friday.",
        nearest_seed="nca-cis-chiefs",
        story_id=42,
        also_reported_by=("TASS", "Kun.uz"),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _bad(ch: str) -> bool:
    return unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


# --- subject -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "Hello\r\nBcc: victim@example.org",
        "Hello\nBcc: victim@example.org",
        "Hello%0d%0aBcc: victim@example.org",
        "Hello%0D%0ABcc: victim@example.org",
        "Hello%250d%250aBcc: victim@example.org",
        "Hello&#13;&#10;Bcc: victim@example.org",
        "Hello&#x0d;&#x0A;Bcc: victim@example.org",
        "Hello&NewLine;Bcc: victim@example.org",
        "Hello&amp;#13;&amp;#10;Bcc: victim@example.org",
        "Hello\u2028Bcc: victim@example.org",
        "Hello\u2029Bcc: victim@example.org",
        "Hello%e2%80%a8Bcc: victim@example.org",
        "Hello\x85Bcc: victim@example.org",
        "Hello%c2%85Bcc: victim@example.org",
        "Hello\x0bBcc:\x0cvictim@example.org\x00",
    ],
)
def test_subject_removes_raw_and_encoded_line_breaks(title: str) -> None:
    subj = render.subject(make_msg(title=title))
    assert not any(_bad(ch) for ch in subj)
    assert "\r" not in subj and "\n" not in subj
    assert "%0" not in subj.lower() and "&#" not in subj and "&NewLine" not in subj
    assert subj.startswith("[seedwatch] cis-security: Hello")
    assert "Bcc: victim@example.org" in subj  # kept as harmless text on the same line


def test_subject_is_capped_and_keeps_prefix() -> None:
    subj = render.subject(make_msg(title="word " * 200))
    assert len(subj) <= render.SUBJECT_MAX
    assert subj.endswith("…")
    assert subj.startswith("[seedwatch] cis-security: word")


def test_subject_for_empty_title_and_operator_kind() -> None:
    assert render.subject(make_msg(title=" \r\n ")).endswith("(untitled)")
    op = render.subject(make_msg(kind="operator", title="feed X failing"))
    assert op == "[seedwatch] operator: feed X failing"


@settings(max_examples=300, deadline=None)
@given(title=st.text(), rule=st.text(max_size=80))
def test_subject_never_contains_control_characters(title: str, rule: str) -> None:
    subj = render.subject(make_msg(title=title, rule=rule))
    assert not any(_bad(ch) for ch in subj)
    assert len(subj) <= render.SUBJECT_MAX
    assert subj == subj.strip()


@settings(max_examples=200, deadline=None)
@given(
    title=st.lists(
        st.sampled_from(["%0d", "%0a", "%25", "&#13;", "&#10;", "&amp;", "\r", "\n", "a", "0", "d"])
    ).map("".join)
)
def test_subject_survives_nested_encodings(title: str) -> None:
    subj = render.subject(make_msg(title=title))
    assert not any(_bad(ch) for ch in subj)
    assert "%0d" not in subj.lower() and "%0a" not in subj.lower()
    assert "&#13;" not in subj and "&#10;" not in subj


# --- escaping per format --------------------------------------------------------------------

HOSTILE = make_msg(
    title='<img src=x onerror="alert(1)"> & *bold* [link](javascript:alert(1))',
    snippet="Before <script>alert('x')</script> CIS after _under_ `code` # heading",
    feed="Feed <b>&amp;",
    also_reported_by=("<i>Outlet</i>",),
)


class _TagCollector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs.extend(v or "" for k, v in attrs if k == "href")


def test_html_escapes_everything_from_the_feed() -> None:
    out = render.render_html(HOSTILE)
    parser = _TagCollector()
    parser.feed(out)
    assert set(parser.tags) <= {"h3", "p", "a", "br", "small", "blockquote", "mark", "table"} | {
        "tr",
        "th",
        "td",
    }
    assert "script" not in parser.tags and "img" not in parser.tags and "i" not in parser.tags
    assert "&lt;script&gt;" in out
    assert "<mark>CIS</mark>" in out
    assert parser.hrefs == ["https://example.org/news/1?x=1&y=2"]


def test_html_never_links_a_non_http_url() -> None:
    out = render.render_html(make_msg(url="javascript:alert(1)"))
    assert "href" not in out and "javascript" not in out


def test_markdown_escapes_metacharacters_and_bolds_terms() -> None:
    out = render.render_markdown(HOSTILE)
    assert "<script>" not in out and "<img" not in out and "<i>" not in out
    assert "&lt;script&gt;" in out
    assert "\\*bold\\*" in out
    assert "\\[link\\]\\(javascript:alert\\(1\\)\\)" in out
    assert "\\_under\\_" in out and "\\`code\\`" in out and "\\# heading" in out
    assert "**CIS**" in out
    assert "(https://example.org/news/1?x=1&y=2)" in out


def test_markdown_link_target_cannot_be_closed_early() -> None:
    out = render.render_markdown(make_msg(url="https://example.org/a_(b)?q=<x>"))
    assert "(https://example.org/a_%28b%29?q=%3Cx%3E)" in out


def test_text_carries_the_reason_and_the_id() -> None:
    out = render.render_text(make_msg())
    for needle in (
        "Rule: cis-security",
        "Feed: nCa News",
        "Published: 2026-11-28T09:30:00Z",
        "Score: 0.73 (topic: security)",
        "Nearest seed: nca-cis-chiefs",
        "Also reported by: TASS, Kun.uz",
        "https://example.org/news/1?x=1&y=2",
        "[[CIS]]",
        "[[спецслужб]]",
        "X-Seedwatch-Alert-Id: alrt-0001",
    ):
        assert needle in out, needle


def test_published_is_rendered_in_utc() -> None:
    from datetime import timezone

    almaty = timezone(timedelta(hours=5))
    msg = make_msg(published=datetime(2026, 11, 28, 14, 30, tzinfo=almaty))
    assert "Published: 2026-11-28T09:30:00Z" in render.render_text(msg)


def test_operator_notice_keeps_lines_but_escapes() -> None:
    msg = make_msg(kind="operator", title="rules broken", snippet="line one\nline <two>\r\n")
    out = render.render_html(msg)
    assert "line one<br>line &lt;two&gt;" in out
    assert "Score" not in out


def test_alert_payload_is_json_ready_with_id_first() -> None:
    payload = render.alert_payload(make_msg())
    assert next(iter(payload)) == "id"
    assert payload["published"] == "2026-11-28T09:30:00Z"
    assert payload["also_reported_by"] == ["TASS", "Kun.uz"]
    # Receivers (and tests/test_crash_safety.py) group repeats by story.
    assert payload["story_id"] == 42 and payload["nearest_seed"] == "nca-cis-chiefs"


# --- snippets and highlighting --------------------------------------------------------------


def test_snippet_centres_on_the_first_matched_term() -> None:
    text = "filler " * 200 + "Mirziyoyev met Tokayev in Tashkent. " + "tail " * 200
    out = render.snippet(text, ["Tokayev", "Mirziyoyev"], width=120)
    assert "Mirziyoyev" in out
    assert out.startswith("…") and out.endswith("…")
    assert len(out) <= 122


def test_snippet_without_match_takes_the_start() -> None:
    text = "alpha beta " * 100
    out = render.snippet(text, ["zeta"], width=50)
    assert out.startswith("alpha beta") and len(out) <= 50


def test_snippet_short_text_is_returned_whole_and_flat() -> None:
    assert render.snippet("a\r\nb\tc", ["b"]) == "a b c"


def test_highlight_matches_word_forms_yo_and_phrases_across_punctuation() -> None:
    segs = render.segments(
        "Террористов задержали. Её ёлка! Shanghai - Cooperation",
        ["террорист", "ее", "shanghai cooperation"],
    )
    hits = [p for p, hit in segs if hit]
    assert hits == ["Террористов", "Её", "Shanghai - Cooperation"]
    assert "".join(p for p, _ in segs).startswith("Террористов задержали.")


def test_highlight_does_not_match_inside_words() -> None:
    hits = [p for p, hit in render.segments("Discussion of CIS and ACISx", ["cis"]) if hit]
    assert hits == ["CIS"]


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400), terms=st.lists(st.text(max_size=20), max_size=4))
def test_snippet_and_segments_never_raise(text: str, terms: list[str]) -> None:
    segs = render.segments(text, terms)
    assert "".join(p for p, _ in segs) == text
    out = render.snippet(text, terms, width=60)
    assert len(out) <= 62


# --- digests -------------------------------------------------------------------------------


def test_digest_renders_every_entry_escaped_with_its_id() -> None:
    from seedwatch.alerts.digest import digest_entries, make_digest

    first = make_msg(id="a-1", title="First <b>story</b>", url="https://example.org/1")
    second = make_msg(
        id="a-2",
        title="Second *story*",
        url="https://example.org/2",
        published=datetime(2026, 11, 28, 11, 0, tzinfo=UTC),
    )
    digest = make_digest("mail", [first, second], now=NOW)
    assert digest.kind == "digest" and digest.title == "2 alerts"
    assert [e["id"] for e in digest_entries(digest)] == ["a-2", "a-1"]  # newest first
    assert make_digest("mail", [second, first], now=NOW).id == digest.id  # stable id

    text = render.render_text(digest)
    assert "Alert id: a-1" in text and "Alert id: a-2" in text
    assert text.index("Second") < text.index("First")
    assert f"X-Seedwatch-Alert-Id: {digest.id}" in text
    assert render.subject(digest) == "[seedwatch] cis-security: 2 alerts"

    out = render.render_html(digest)
    assert "First &lt;b&gt;story&lt;/b&gt;" in out and "<b>story" not in out
    assert 'href="https://example.org/2"' in out and "<mark>CIS</mark>" in out

    md = render.render_markdown(digest)
    assert "Second \\*story\\*" in md and "a\\-1" in md

    payload = render.alert_payload(digest)
    assert [e["id"] for e in payload["entries"]] == ["a-2", "a-1"]
    assert not any(k.startswith("entry.") for k in payload["extra"])


def test_follow_up_subject_says_how_many_outlets_now() -> None:
    msg = make_msg(kind="follow_up", extra=(("attempts", "0"), ("outlets", "5")))
    assert render.subject(msg).startswith("[seedwatch] cis-security: now 5 outlets: ")
