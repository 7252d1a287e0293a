"""parse: FetchResult -> ParsedFeed, with feedparser reading bytes we fetched ourselves.

feedparser never fetches here: it gets a BytesIO (a bare ``bytes`` argument that happens to name
a file would be opened as a path), and ``harden_xml`` removes every DOCTYPE and entity declaration
first, so no external entity, external DTD, billion-laughs or quadratic-blowup entity reaches
either of feedparser's parsers. The same hardened bytes go to ``fastparse``, which reads most
well-formed feeds into the same result dict without feedparser's machinery (see its docstring).
"""

from __future__ import annotations

import calendar
import html
import io
import json
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import charset_normalizer
import feedparser

from seedwatch.errors import ParseError, redact_url
from seedwatch.fastparse import read_feed
from seedwatch.types import FetchResult, ParsedFeed, ParsedItem

__all__ = [
    "MAX_ENTRIES",
    "MAX_FIELD_CHARS",
    "harden_xml",
    "parse",
    "prepare",
    "read_document",
    "run_feedparser",
]

log = logging.getLogger(__name__)

MAX_ENTRIES = 5_000
MAX_FIELD_CHARS = 1_000_000
MAX_TTL_MINUTES = 60 * 24 * 366
# Dates outside this window are typos or epoch garbage, not publication dates.
MIN_YEAR, MAX_YEAR = 1970, 2200

# ---------------------------------------------------------------------------------------------
# harden_xml

_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", ""),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)
# "<" as the first character in each wide encoding, without a BOM (XML 1.0 appendix F).
_WIDE_STARTS: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)
_DECL_WORDS = re.compile(r"<!\s*(?:doctype|entity|element|attlist|notation)|<!\[", re.IGNORECASE)
_FP_ENTITY = re.compile(r"<!\s*entity[^>]*>?", re.IGNORECASE)
_NAME_START = re.compile(r"[A-Za-z_:\u00c0-\U0010ffff]")


def _sniff(body: bytes) -> tuple[str, int]:
    """(codec, BOM length) for a wide Unicode encoding, or ("", n) for ASCII-compatible ones."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec, len(bom)
    stripped = body.lstrip(b" \t\r\n")
    for start, codec in _WIDE_STARTS:
        if stripped.startswith(start):
            return codec, 0
    # Leading whitespace in UTF-16/32 shows up as NULs next to the whitespace bytes.
    head = body[:64]
    if head[:1] in (b" ", b"\t", b"\r", b"\n") and b"\x00" in head:
        if head.startswith(b" \x00\x00\x00") or head.startswith(b"\n\x00\x00\x00"):
            return "utf-32-le", 0
        if head[1:2] == b"\x00":
            return "utf-16-le", 0
    if head.startswith(b"\x00") and b"\x00\x00\x00" not in head[:8]:
        return "utf-16-be", 0
    return "", 0


def _skip_literal(text: str, i: int) -> int:
    """Index after the quoted literal starting at ``text[i]``, or len(text)."""
    end = text.find(text[i], i + 1)
    return len(text) if end < 0 else end + 1


def _declaration_end(text: str, i: int) -> int:
    """Index after the markup declaration at ``text[i] == '<'`` (``<!DOCTYPE x [ ... ]>`` too).

    Quoted literals, comments and processing instructions inside an internal subset are
    skipped whole, so a ">" or "]" inside them does not end the declaration early.
    """
    n = len(text)
    j = i + 2
    depth = 0
    while j < n:
        ch = text[j]
        if ch in "\"'":
            j = _skip_literal(text, j)
            continue
        if ch == "<" and text.startswith("<!--", j):
            end = text.find("-->", j + 4)
            j = n if end < 0 else end + 3
            continue
        if ch == "<" and text.startswith("<?", j):
            end = text.find("?>", j + 2)
            j = n if end < 0 else end + 2
            continue
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif ch == ">" and depth == 0:
            return j + 1
        j += 1
    return n


def _harden_text(text: str) -> str | None:
    """The text with no DTD, declaration or comment before the root element.

    None when the prolog (comments included) mentions no declaration: then nothing changes.
    """
    n = len(text)
    kept: list[str] = []
    i = 0
    root = n
    while i < n:
        lt = text.find("<", i)
        if lt < 0:
            break
        nxt = text[lt + 1 : lt + 2]
        if text.startswith("<!--", lt):
            end = text.find("-->", lt + 4)
            kept.append(text[i:lt])
            i = n if end < 0 else end + 3
        elif nxt == "?":
            end = text.find("?>", lt + 2)
            stop = n if end < 0 else end + 2
            kept.append(text[i:stop])
            i = stop
        elif nxt == "!":
            kept.append(text[i:lt])
            i = _declaration_end(text, lt)
        elif _NAME_START.match(nxt):
            root = lt
            break
        else:
            kept.append(text[i : lt + 1])
            i = lt + 1
    if not _DECL_WORDS.search(text, 0, max(root, _fp_head_end(text))):
        return None
    return _strip_fp_head_entities("".join(kept) + text[i:])


def _fp_head_end(text: str) -> int:
    # feedparser's loose parser takes entity declarations from everything before the first
    # "<\w" (sanitizer.replace_doctype), comments included, and "\w" there is ASCII only: with
    # a root element named in non-ASCII letters that region reaches past our prolog.
    match = re.search(r"<[A-Za-z0-9_]", text)
    return match.start() + 1 if match else len(text)


def _strip_fp_head_entities(text: str) -> str:
    end = _fp_head_end(text)
    head = text[:end]
    # Until nothing is left: removing "<!ENTITY x>" from "<!EN<!ENTITY x>TITY" makes a new one.
    while _FP_ENTITY.search(head):
        head = _FP_ENTITY.sub("", head)
    return head + text[end:]


_WIDE_CODECS = {
    "utf-16": "utf-16-be",  # RFC 2781: big-endian when there is no BOM
    "utf-16be": "utf-16-be",
    "utf-16le": "utf-16-le",
    "ucs-2": "utf-16-be",
    "utf-32": "utf-32-be",
    "utf-32be": "utf-32-be",
    "utf-32le": "utf-32-le",
    "ucs-4": "utf-32-be",
}


def _candidates(body: bytes, charset: str | None) -> list[tuple[str, int]]:
    codec, bom = _sniff(body)
    if bom or codec:
        return [(codec, bom)]
    wide = _WIDE_CODECS.get((charset or "").strip().lower().replace("_", "-"))
    if wide:
        return [(wide, 0)]
    found: list[tuple[str, int]] = [("", 0)]
    if b"\x00" in body:
        # NULs in an "ASCII" body: some decoder (feedparser tries several) may read it as
        # UTF-16/32, so look for declarations in those readings as well.
        for name in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            found.extend((name, off) for off in range(4 if "32" in name else 2))
    return found


def _rewrite(body: bytes, codec: str, offset: int) -> bytes | None:
    text = body[offset:].decode(codec, "replace") if codec else body.decode("latin-1")
    if not _DECL_WORDS.search(text):
        return None
    hardened = _harden_text(text)
    if hardened is None:
        return None
    if codec:
        return body[:offset] + hardened.encode(codec, "surrogatepass")
    return hardened.encode("latin-1")


def harden_xml(body: bytes, charset: str | None = None) -> bytes:
    """``body`` without DOCTYPE, entity declarations or prolog comments, in its own encoding.

    Returns ``body`` unchanged (the same object) when its prolog declares nothing. The
    encoding is found the way XML does (BOM, the HTTP ``charset`` when it names UTF-16/32, the
    first characters): ASCII-compatible encodings are rewritten byte for byte through latin-1,
    so legacy multi-byte encodings are never re-encoded; UTF-16/32 go through their codec.
    """
    for codec, offset in _candidates(body, charset):
        rewritten = _rewrite(body, codec, offset)
        if rewritten is not None:
            body = rewritten
    return body


# ---------------------------------------------------------------------------------------------
# parse


def _response_headers(result: FetchResult) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name in ("content-type", "content-location", "content-language", "last-modified", "etag"):
        value = result.header(name)
        if value is not None:
            headers[name] = value
    # Relative links in the feed resolve against where we actually got it from.
    headers.setdefault("content-location", result.url)
    return headers


_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)


_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=", re.IGNORECASE)


def _charset_for(body: bytes, content_type: str) -> str | None:
    """The charset feedparser should be told, when what the server said is wrong or missing.

    A byte-order mark names the encoding beyond doubt, so it wins over an HTTP charset that
    contradicts it. A body that declares nothing (no BOM, no HTTP charset, no XML encoding)
    and is not UTF-8 is usually a legacy Cyrillic or CJK page (cp1251, koi8-r, big5, ...):
    feedparser would read it as windows-1252 and store garble, so its encoding is detected.
    """
    for bom, bom_codec in _BOMS:  # harden_xml's table: "" there means UTF-8
        if body.startswith(bom):
            codec = bom_codec or "utf-8"
            declared = _CHARSET.search(content_type)
            if declared and declared.group(1).lower().replace("_", "-") != codec:
                return codec
            return None
    if _CHARSET.search(content_type) or _XML_ENCODING.match(body[:512]):
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return None
    best = charset_normalizer.from_bytes(body[:65536]).best()
    return best.encoding if best is not None else None


def prepare(body: bytes, headers: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
    """The hardened ``body`` and the lower-cased headers both parsers get (charset fixed)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    charset = _charset_for(body, content_type)
    if charset is not None:
        base = content_type.split(";", 1)[0].strip() or "application/xml"
        lowered["content-type"] = f"{base}; charset={charset}"
    match = _CHARSET.search(lowered.get("content-type", ""))
    return harden_xml(body, match.group(1) if match else None), lowered


def run_feedparser(body: bytes, headers: Mapping[str, str]) -> Any:
    """feedparser's result dict for the hardened ``body``; never touches network or disk."""
    return read_document(body, headers, fast=False)


def read_document(body: bytes, headers: Mapping[str, str], *, fast: bool = True) -> Any:
    """feedparser's result dict, from fastparse when it can read the document, else feedparser.

    ``fast=False`` always runs feedparser (the reference the fast path is tested against).
    """
    hardened, lowered = prepare(body, headers)
    doc = read_feed(hardened, lowered) if fast else None
    if doc is None:
        doc = feedparser.parse(io.BytesIO(hardened), response_headers=lowered)
    return doc


def _text(value: object) -> str:
    if not isinstance(value, str):
        return ""
    return value[:MAX_FIELD_CHARS]


def _as_html(detail: object, value: str) -> str:
    """Field text as HTML: feedparser's text/plain values are escaped so "<" stays text."""
    kind = detail.get("type") if isinstance(detail, Mapping) else None
    return html.escape(value, quote=False) if kind == "text/plain" else value


def _date(value: object) -> datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        # feedparser's *_parsed are UTC; timegm does not care about the out-of-range day numbers
        # that datetime(...) rejects, and fromtimestamp range-checks for us.
        stamp = calendar.timegm(value)
        moment = datetime.fromtimestamp(stamp, tz=UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return None
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        return None
    return moment


def _ttl(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        minutes = int(value.strip())
    except ValueError:
        return None
    return minutes if 0 < minutes <= MAX_TTL_MINUTES else None


def _optional(value: object) -> str | None:
    text = _text(value).strip()
    return text or None


def _entry_language(entry: Mapping[str, Any]) -> str | None:
    for key in ("language", "title_detail", "summary_detail"):
        value = entry.get(key)
        if isinstance(value, Mapping):
            value = value.get("language")
        if isinstance(value, str) and value.strip():
            return value.strip()[:35]
    return None


def _item(entry: Mapping[str, Any], feed_language: str | None) -> ParsedItem:
    contents = entry.get("content") or []
    content, content_detail = "", None
    for part in contents if isinstance(contents, list) else []:
        value = _text(part.get("value")) if isinstance(part, Mapping) else ""
        if len(value) > len(content):
            content, content_detail = value, part
    tags = []
    for tag in entry.get("tags") or []:
        if isinstance(tag, Mapping):
            term = _optional(tag.get("term")) or _optional(tag.get("label"))
            if term:
                tags.append(term)
    return ParsedItem(
        guid=_optional(entry.get("id")),
        link=_optional(entry.get("link")),
        title=_as_html(entry.get("title_detail"), _text(entry.get("title"))),
        summary=_as_html(entry.get("summary_detail"), _text(entry.get("summary"))),
        content=_as_html(content_detail, content),
        published=_date(entry.get("published_parsed")),
        # FeedParserDict maps a missing updated_parsed to published_parsed (with a
        # DeprecationWarning, feedparser issue 310); its "in" does not: we want the real value.
        updated=_date(entry.get("updated_parsed") if "updated_parsed" in entry else None),
        author=_optional(entry.get("author")),
        tags=tuple(tags[:256]),
        language=_entry_language(entry) or feed_language,
    )


# ---------------------------------------------------------------------------------------------
# JSON Feed: feedparser 6.0.x has no JSON support (it arrives in a later major), so we read it.

_JSONFEED_VERSION = "https://jsonfeed.org/version/"


def _looks_like_json(body: bytes, content_type: str | None) -> bool:
    start = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return start == b"{" or (start == b"[" and "json" in (content_type or "").lower())


def _json_date(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return moment if MIN_YEAR <= moment.year <= MAX_YEAR else None


def _json_str(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    return _optional(value)


def _json_author(item: Mapping[str, Any]) -> str | None:
    authors = item.get("authors")
    candidates = authors if isinstance(authors, list) else [item.get("author")]
    for author in candidates:
        if isinstance(author, Mapping) and _json_str(author.get("name")):
            return _json_str(author.get("name"))
    return None


def _json_item(item: Mapping[str, Any], base: str, feed_language: str | None) -> ParsedItem:
    html_body = _text(item.get("content_html"))
    plain_body = _text(item.get("content_text"))
    content = html_body or html.escape(plain_body, quote=False)
    link = _json_str(item.get("url")) or _json_str(item.get("external_url"))
    tags = item.get("tags")
    return ParsedItem(
        guid=_json_str(item.get("id")),
        link=urljoin(base, link) if link else None,
        title=html.escape(_text(item.get("title")), quote=False),
        summary=html.escape(_text(item.get("summary")), quote=False),
        content=content,
        published=_json_date(item.get("date_published")),
        updated=_json_date(item.get("date_modified")),
        author=_json_author(item),
        tags=tuple(t[:1000] for t in (tags if isinstance(tags, list) else []) if _json_str(t))[
            :256
        ],
        language=_json_str(item.get("language")) or feed_language,
    )


def _parse_json(result: FetchResult, base: str) -> ParsedFeed | None:
    """The JSON Feed in ``result.body``, or None when the body is not one."""
    try:
        doc = json.loads(result.body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(_JSONFEED_VERSION):
        return None
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):
        raise ParseError(result.url, "JSON Feed without an items list")
    entries = [i for i in raw_items if isinstance(i, Mapping)]
    warning = None
    if len(entries) > MAX_ENTRIES:
        warning = f"{len(entries)} entries, only the first {MAX_ENTRIES} kept"
        entries = entries[:MAX_ENTRIES]
    language = _json_str(doc.get("language"))
    return ParsedFeed(
        title=_text(doc.get("title")).strip(),
        link=_json_str(doc.get("home_page_url")),
        language=language[:35] if language else None,
        ttl_minutes=None,
        items=tuple(_json_item(i, base, language) for i in entries),
        warning=warning,
    )


def parse(result: FetchResult, *, fast: bool = True) -> ParsedFeed:
    """The feed in ``result.body``; ParseError when nothing feed-like can be read from it.

    Well-formed RSS 2.0, Atom 1.0 and RSS 1.0 documents are read by ``fastparse`` (expat, 6x
    faster on bench/cold_start.py's feeds), everything else by feedparser; the Items that
    normalize makes of either are the same. ``fast=False`` forces feedparser.
    """
    if not result.body.strip():
        raise ParseError(result.url, "empty document")
    headers = _response_headers(result)
    if _looks_like_json(result.body, result.header("content-type")):
        parsed = _parse_json(result, headers["content-location"])
        if parsed is not None:
            return parsed
    try:
        doc = read_document(result.body, headers, fast=fast)
    except Exception as e:  # feedparser has no exception contract
        raise ParseError(result.url, f"feedparser failed: {type(e).__name__}: {e}") from e
    entries = list(doc.get("entries") or [])
    bozo = doc.get("bozo_exception") if doc.get("bozo") else None
    if isinstance(bozo, feedparser.NonXMLContentType) and result.header("content-type") is None:
        # Our own doing: we pass Content-Location for relative links, and feedparser then
        # complains that the (absent) headers lack a Content-Type. Not a fault of the feed.
        bozo = None
    reason = f"{type(bozo).__name__}: {bozo}"[:500] if bozo is not None else None
    if not entries and (reason or not doc.get("version")):
        raise ParseError(result.url, reason or "not a feed (no RSS, Atom, RDF or JSON Feed found)")
    warning = reason
    if len(entries) > MAX_ENTRIES:
        log.warning(
            "feed=%s entries=%d truncated to %d", redact_url(result.url), len(entries), MAX_ENTRIES
        )
        note = f"{len(entries)} entries, only the first {MAX_ENTRIES} kept"
        warning = f"{warning}; {note}" if warning else note
        entries = entries[:MAX_ENTRIES]
    meta = doc.get("feed") or {}
    language = _optional(meta.get("language"))
    language = language[:35] if language else None
    return ParsedFeed(
        title=_text(meta.get("title")).strip(),
        link=_optional(meta.get("link")),
        language=language,
        ttl_minutes=_ttl(meta.get("ttl")),
        items=tuple(_item(entry, language) for entry in entries),
        warning=warning,
    )
