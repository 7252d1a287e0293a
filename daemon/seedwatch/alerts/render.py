"""Render an AlertMessage for a channel: subject, plain text, HTML and Markdown.

Everything that came from a feed (title, snippet, feed and outlet names, link) is untrusted:
single-line fields lose every control and line-separator character (including the encoded
forms a hostile title can smuggle through, such as ``%0d%0a`` or ``&#13;``), and each format
escapes for its own reader. The alert id travels in every rendering so receivers can
deduplicate repeats of an at-least-once delivery.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from seedwatch.alerts.digest import ENTRY_PREFIX, digest_entries
from seedwatch.types import AlertMessage

SUBJECT_MAX = 200
FIELD_MAX = 300
SNIPPET_MAX = 600

# Control characters as their percent-encoded UTF-8 forms: C0, DEL, C1 (U+0080..U+009F as
# c2 80..c2 9f) and U+2028/U+2029 (e2 80 a8/a9). ``%25`` before one of them is a double
# encoding of the same thing.
_PERCENT_CONTROL = re.compile(
    r"%(?:25)*(?:[01][0-9a-f]|7f|c2%(?:25)*[89][0-9a-f]|e2%(?:25)*80%(?:25)*a[89])", re.I
)
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_SPACES = re.compile(r"\s+")


def _strip_controls(text: str, *, keep_newlines: bool = False) -> str:
    out = []
    for ch in text:
        if keep_newlines and ch == "\n":
            out.append(ch)
        elif unicodedata.category(ch) in _DROP_CATEGORIES or ch.isspace():
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _decode_smuggled(text: str) -> str:
    """Turn encoded control characters into real ones so the stripping sees them."""
    # Entities can hide percent forms and vice versa; a few rounds reach a fixed point.
    for _ in range(4):
        decoded = _PERCENT_CONTROL.sub(" ", html.unescape(text))
        if decoded == text:
            break
        text = decoded
    return text


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 2 // 3:
        cut = cut[:space]
    return cut.rstrip() + "…"


def one_line(text: str, *, limit: int = FIELD_MAX) -> str:
    """``text`` as one line without control characters, whitespace collapsed, length-capped."""
    clean = _strip_controls(_decode_smuggled(text))
    # Stripping can expose a new encoded form (``%0%0dd``); repeat until nothing changes.
    while True:
        again = _strip_controls(_decode_smuggled(clean))
        if again == clean:
            break
        clean = again
    return _cap(_SPACES.sub(" ", clean).strip(), limit)


def _multi_line(text: str) -> str:
    """Plain text that may keep its line breaks (operator notices), without other controls."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [
        _SPACES.sub(" ", ln).strip() for ln in _strip_controls(text, keep_newlines=True).split("\n")
    ]
    return "\n".join(lines).strip()


def subject(msg: AlertMessage) -> str:
    """The one-line subject/title: safe for a mail header, a chat title, a log line."""
    title = one_line(msg.title, limit=SUBJECT_MAX) or "(untitled)"
    if msg.kind == "operator":
        text = f"[seedwatch] operator: {title}"
    elif msg.kind == "follow_up":
        outlets = dict(msg.extra).get("outlets", "")
        rule = one_line(msg.rule, limit=60)
        text = f"[seedwatch] {rule}: now {one_line(outlets, limit=6)} outlets: {title}"
    else:
        text = f"[seedwatch] {one_line(msg.rule, limit=60)}: {title}"
    # The prefix parts are clean already; capping again keeps the whole under the limit.
    return _cap(text, SUBJECT_MAX)


# --- snippets and highlighting -------------------------------------------------------------


def _term_pattern(term: str) -> str | None:
    words = [w for w in re.split(r"\W+", term.strip().rstrip("*")) if w]
    if not words:
        return None
    parts = []
    for word in words:
        # ё and е are one letter to a Russian reader (and to the rule matcher).
        parts.append("".join("[её]" if ch in "её" else re.escape(ch) for ch in word.lower()))
    # Phrases match across punctuation; the last word may carry an ending (stems, prefixes).
    return r"(?<!\w)" + r"\W+".join(parts) + r"\w*"


def _terms_regex(terms: Iterable[str]) -> re.Pattern[str] | None:
    patterns = {p for t in terms if (p := _term_pattern(t))}
    if not patterns:
        return None
    # Longest first so a phrase wins over one of its words.
    ordered = sorted(patterns, key=len, reverse=True)
    return re.compile("|".join(f"(?:{p})" for p in ordered), re.IGNORECASE)


def segments(text: str, terms: Sequence[str]) -> list[tuple[str, bool]]:
    """``text`` split into (piece, is_match) runs for the renderers to mark up."""
    rx = _terms_regex(terms)
    if rx is None or not text:
        return [(text, False)] if text else []
    out: list[tuple[str, bool]] = []
    pos = 0
    for m in rx.finditer(text):
        if m.end() == m.start():
            continue
        if m.start() > pos:
            out.append((text[pos : m.start()], False))
        out.append((m.group(0), True))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def snippet(text: str, terms: Sequence[str], *, width: int = 240) -> str:
    """A plain-text window of about ``width`` characters around the first matched term."""
    flat = _SPACES.sub(" ", _strip_controls(text)).strip()
    if len(flat) <= width:
        return flat
    rx = _terms_regex(terms)
    m = rx.search(flat) if rx else None
    if m is None:
        return _cap(flat, width)
    # The term sits about a third in, so the reader sees what leads up to it.
    start = max(0, m.start() - max(0, width - (m.end() - m.start())) // 3)
    end = min(len(flat), start + width)
    start = max(0, min(start, end - width))
    piece = flat[start:end]
    if start > 0:
        space = piece.find(" ")
        if 0 <= space < min(20, m.start() - start):
            piece = piece[space + 1 :]
        piece = "…" + piece
    if end < len(flat):
        space = piece.rfind(" ")
        if space > len(piece) - 20 and space > m.end() - start:
            piece = piece[:space]
        piece = piece + "…"
    return piece


def _snippet_text(msg: AlertMessage) -> str:
    if len(msg.snippet) > SNIPPET_MAX:
        return snippet(msg.snippet, msg.terms, width=SNIPPET_MAX)
    return _SPACES.sub(" ", _strip_controls(msg.snippet)).strip()


# --- the facts every rendering carries -----------------------------------------------------


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def safe_link(url: str | None) -> str | None:
    """The article link if it is an http(s) URL, with characters that break markup encoded."""
    if not url:
        return None
    # Not one_line: entity or percent decoding would change the URL (``&copy=`` is a query).
    url = _strip_controls(url).strip()
    if len(url) > 2000 or " " in url:
        return None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    if scheme not in ("http", "https"):
        return None  # javascript:, data:, file: ... never become a link
    return quote(url, safe="/:?#[]@!$&'*+,;=%-._~")


def _facts(msg: AlertMessage) -> list[tuple[str, str]]:
    """(label, plain value) pairs, values already one line and capped."""
    facts: list[tuple[str, str]] = [("Rule", one_line(msg.rule))]
    if msg.kind != "operator":
        facts.append(("Feed", one_line(msg.feed) or "?"))
        facts.append(("Published", _iso(msg.published)))
        score = f"{msg.score:.2f}"
        if msg.topic:
            score += f" (topic: {one_line(msg.topic, limit=80)})"
        facts.append(("Score", score))
        if msg.nearest_seed:
            facts.append(("Nearest seed", one_line(msg.nearest_seed, limit=120)))
        if msg.terms:
            facts.append(("Matched", ", ".join(one_line(t, limit=60) for t in msg.terms)))
        if msg.also_reported_by:
            outlets = ", ".join(one_line(o, limit=60) for o in msg.also_reported_by[:20])
            if len(msg.also_reported_by) > 20:
                outlets += f" and {len(msg.also_reported_by) - 20} more"
            facts.append(("Also reported by", outlets))
    return facts


def _alert_id(msg: AlertMessage) -> str:
    return one_line(msg.id, limit=100)


def _digest_items(msg: AlertMessage) -> list[AlertMessage]:
    """A digest's entries as the alerts they were (for rendering each one)."""
    items = []
    for entry in digest_entries(msg):
        try:
            published = datetime.fromisoformat(str(entry.get("published")))
        except ValueError:
            published = msg.published
        items.append(
            AlertMessage(
                id=str(entry.get("id", "")),
                rule=str(entry.get("rule", "")),
                channel=msg.channel,
                title=str(entry.get("title", "")),
                url=entry.get("url") if isinstance(entry.get("url"), str) else None,
                feed=str(entry.get("feed", "")),
                published=published,
                created=msg.created,
                score=float(entry.get("score") or 0.0),
                topic=str(entry.get("topic", "")),
                terms=tuple(str(t) for t in entry.get("terms") or ()),
                snippet=str(entry.get("snippet", "")),
                nearest_seed=(str(entry["nearest_seed"]) if entry.get("nearest_seed") else None),
                story_id=entry["story_id"] if isinstance(entry.get("story_id"), int) else None,
                also_reported_by=tuple(str(o) for o in entry.get("also_reported_by") or ()),
            )
        )
    return items


def _text_body(msg: AlertMessage) -> list[str]:
    lines = [one_line(msg.title) or "(untitled)"]
    link = safe_link(msg.url)
    if link:
        lines.append(link)
    lines.append("")
    lines.extend(f"{label}: {value}" for label, value in _facts(msg))
    snip = _snippet_text(msg)
    if snip:
        lines.append("")
        lines.append("".join(f"[[{p}]]" if hit else p for p, hit in segments(snip, msg.terms)))
    return lines


def render_text(msg: AlertMessage) -> str:
    """Plain text; matched terms wrapped in [[...]]."""
    lines = [subject(msg), ""]
    if msg.kind == "operator":
        lines.append(_multi_line(msg.snippet))
    elif msg.kind == "digest":
        for item in _digest_items(msg):
            lines.extend(_text_body(item))
            lines.extend([f"Alert id: {_alert_id(item)}", "", "-" * 40, ""])
    else:
        lines.extend(_text_body(msg))
    lines.extend(["", f"X-Seedwatch-Alert-Id: {_alert_id(msg)}"])
    return "\n".join(lines) + "\n"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _html_body(msg: AlertMessage) -> list[str]:
    parts = []
    title = _esc(one_line(msg.title) or "(untitled)")
    link = safe_link(msg.url)
    if link:
        parts.append(f'<p><a href="{_esc(link)}">{title}</a><br><small>{_esc(link)}</small></p>')
    else:
        parts.append(f"<p><strong>{title}</strong></p>")
    snip = _snippet_text(msg)
    if snip:
        body = "".join(
            f"<mark>{_esc(p)}</mark>" if hit else _esc(p) for p, hit in segments(snip, msg.terms)
        )
        parts.append(f"<blockquote>{body}</blockquote>")
    rows = "".join(
        f'<tr><th align="left">{_esc(label)}</th><td>{_esc(value)}</td></tr>'
        for label, value in _facts(msg)
    )
    parts.append(f"<table>{rows}</table>")
    return parts


def render_html(msg: AlertMessage) -> str:
    """An HTML fragment for mail; every value escaped, matched terms in <mark>."""
    parts = [f"<h3>{_esc(subject(msg))}</h3>"]
    if msg.kind == "operator":
        lines = _multi_line(msg.snippet).split("\n")
        parts.append("<p>" + "<br>".join(_esc(ln) for ln in lines) + "</p>")
    elif msg.kind == "digest":
        for item in _digest_items(msg):
            parts.extend(_html_body(item))
            parts.append(f"<p><small>Alert id: {_esc(_alert_id(item))}</small></p><hr>")
    else:
        parts.extend(_html_body(msg))
    parts.append(f"<p><small>X-Seedwatch-Alert-Id: {_esc(_alert_id(msg))}</small></p>")
    return "\n".join(parts) + "\n"


# CommonMark lets any ASCII punctuation be backslash-escaped; <, > and & become entities
# instead because python-markdown (Apprise's converter) does not honour \< and would pass a
# tag through.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~=])")


def escape_markdown(text: str) -> str:
    """``text`` with every Markdown metacharacter neutralised."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _markdown_body(msg: AlertMessage) -> list[str]:
    md = escape_markdown
    title = md(one_line(msg.title) or "(untitled)")
    link = safe_link(msg.url)
    # Parentheses are percent-encoded in the link so they cannot close the target early.
    target = link.replace("(", "%28").replace(")", "%29") if link else None
    lines = [f"[{title}]({target})" if target else title]
    snip = _snippet_text(msg)
    if snip:
        marked = "".join(f"**{md(p)}**" if hit else md(p) for p, hit in segments(snip, msg.terms))
        lines.extend(["", "> " + marked])
    lines.append("")
    lines.extend(f"- {md(label)}: {md(value)}" for label, value in _facts(msg))
    return lines


def render_markdown(msg: AlertMessage) -> str:
    """Markdown for chats; feed text escaped, matched terms in **bold**."""
    md = escape_markdown
    lines = [f"**{md(subject(msg))}**", ""]
    if msg.kind == "operator":
        lines.extend(md(ln) for ln in _multi_line(msg.snippet).split("\n"))
    elif msg.kind == "digest":
        for item in _digest_items(msg):
            lines.extend(_markdown_body(item))
            lines.extend([f"- Alert id: {md(_alert_id(item))}", "", "\\-\\-\\-", ""])
    else:
        lines.extend(_markdown_body(msg))
    lines.extend(["", f"X\\-Seedwatch\\-Alert\\-Id: {md(_alert_id(msg))}"])
    return "\n".join(lines) + "\n"


def alert_payload(msg: AlertMessage) -> dict[str, Any]:
    """The alert as a JSON-ready dict (JSONL lines, webhook bodies); ``id`` first."""
    payload: dict[str, Any] = {
        "id": msg.id,
        "kind": msg.kind,
        "rule": msg.rule,
        "channel": msg.channel,
        "subject": subject(msg),
        "title": msg.title,
        "url": msg.url,
        "feed": msg.feed,
        "published": _iso(msg.published),
        "created": _iso(msg.created),
        "score": msg.score,
        "topic": msg.topic,
        "nearest_seed": msg.nearest_seed,
        "terms": list(msg.terms),
        "snippet": msg.snippet,
        "story": msg.story_id,  # kept for receivers written against round 1
        "story_id": msg.story_id,
        "also_reported_by": list(msg.also_reported_by),
        "extra": {k: v for k, v in msg.extra if not k.startswith(ENTRY_PREFIX)},
    }
    if msg.kind == "digest":
        payload["entries"] = digest_entries(msg)
    return payload
