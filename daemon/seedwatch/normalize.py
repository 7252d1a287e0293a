"""normalize: ParsedItem -> Item. Canonical URL, plain text, UTC dates, language, stable key.

Pure and total: whatever strings feedparser handed over, ``normalize`` returns an ``Item`` whose
strings are NUL-free, surrogate-free text (so they encode to UTF-8) and never raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote_plus, urljoin, urlsplit, urlunsplit

from seedwatch.textutil import (
    clean_text,
    collapse_lines,
    detect_language,
    html_to_text,
    one_line,
)
from seedwatch.types import FeedRef, Item, ParsedFeed, ParsedItem

__all__ = [
    "canonical_url",
    "content_hash",
    "detect_language",
    "html_to_text",
    "normalize",
    "normalize_feed",
]

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 2_000
MAX_GUID_CHARS = 2_048
MAX_URL_CHARS = 8_192
MAX_TAGS = 64
MAX_TAG_CHARS = 200
# A feed may date an item a little ahead (clock skew, time zones typed wrong); more than this is
# a wrong date, and a future date would pin the item to the top of every list.
FUTURE_SLACK = timedelta(days=1)

_TRACKING_EXACT = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "ysclid",
        "_openstat", "mc_cid", "mc_eid", "ref_src", "ref_url", "igshid", "igsh", "_hsenc",
        "_hsmi", "__hstc", "__hssc", "__hsfp", "hsctatracking", "mkt_tok", "oly_anon_id",
        "oly_enc_id", "vero_id", "vero_conv", "twclid", "ttclid", "srsltid", "_ga", "_gl",
    }
)  # fmt: skip
_TRACKING_PREFIXES = ("utm_", "pk_campaign", "pk_kwd", "pk_source", "pk_medium")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP_PREFIXES = ("http://", "https://")
_URL_JUNK = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_HOST_OK = re.compile(r"^[^\s/?#@\[\]\\%<>\"'`^{}|]+$")
# RFC 3986 reserved + unreserved, plus "%" so that existing escapes survive (idempotence).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = "/%:@!$&'()*+,;=-._~?"


def _is_tracking(name: str) -> bool:
    name = name.lower()
    return name in _TRACKING_EXACT or name.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str, base: str | None = None) -> str | None:
    """The http(s) URL in canonical form, or None when it is not one.

    Lower-case scheme and host, no default port, no userinfo, no fragment, no tracking
    parameters, remaining query parameters sorted; relative URLs resolved against ``base``.
    Idempotent and total: ``canonical_url(canonical_url(u)) == canonical_url(u)``.
    """
    try:
        return _canonical_url(url, base)
    except (ValueError, UnicodeError):
        return None


def _canonical_url(url: str, base: str | None) -> str | None:
    url = _URL_JUNK.sub("", url.strip()) if url else ""
    if not url or len(url) > MAX_URL_CHARS:
        return None
    if base:
        base = _URL_JUNK.sub("", base.strip())
        url = urljoin(base, url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    elif not _HOST_OK.match(host):
        return None
    elif not host.isascii():
        # Not IDNA-2003 encodable: the lower-cased Unicode form is still canonical.
        with contextlib.suppress(UnicodeError):
            host = host.encode("idna").decode("ascii").lower()
    port = parts.port  # raises ValueError on garbage, caught above
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    pairs = [p for p in parts.query.split("&") if p]
    kept = sorted(
        (quote(p, safe=_QUERY_SAFE) for p in pairs if not _is_tracking(_param_name(p))),
    )
    return urlunsplit((scheme, netloc, path, "&".join(kept), ""))


def _param_name(pair: str) -> str:
    return unquote_plus(pair.split("=", 1)[0]).strip()


def content_hash(title: str, text: str) -> str:
    """sha256 hex over case-folded, whitespace-collapsed title and text."""
    norm_title = one_line(clean_text(title)).casefold()
    norm_text = one_line(clean_text(text)).casefold()
    data = f"{norm_title}\n{norm_text}".encode("utf-8", "replace")
    return hashlib.sha256(data).hexdigest()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _plain_line(text: str | None, limit: int) -> str:
    return one_line(html_to_text(text or ""))[:limit]


def _tags(raw: tuple[str, ...]) -> tuple[str, ...]:
    kept: list[str] = []
    folded: set[str] = set()
    for tag in raw[: MAX_TAGS * 4]:
        clean = _plain_line(tag, MAX_TAG_CHARS)
        if clean and clean.casefold() not in folded:
            kept.append(clean)
            folded.add(clean.casefold())
        if len(kept) >= MAX_TAGS:
            break
    return tuple(kept)


def _item_key(guid: str | None, url: str | None, title: str, date: datetime | None, h: str) -> str:
    if guid:
        return _sha("guid:" + guid)
    if url:
        return _sha("url:" + url)
    # Never the fetch time: the key must be the same on every poll of the same document.
    stamp = date.isoformat() if date else ""
    return _sha("title:" + (title or "#" + h) + stamp)


def normalize(
    feed: FeedRef, entry: ParsedItem, *, fetched_at: datetime, base_url: str | None = None
) -> Item:
    """One parsed entry as an ``Item``: plain text, canonical URL, UTC dates, a stable key."""
    fetched = _as_utc(fetched_at) or datetime(1970, 1, 1, tzinfo=UTC)
    title = _plain_line(entry.title, MAX_TITLE_CHARS)
    body_html = entry.content if len(entry.content or "") >= len(entry.summary or "") else ""
    text = html_to_text(body_html or "") or html_to_text(entry.summary or "")
    guid = one_line(clean_text(entry.guid or ""))[:MAX_GUID_CHARS] or None
    url = canonical_url(entry.link, base_url) if entry.link else None
    if url is None and entry.link is None and guid and guid.lower().startswith(_HTTP_PREFIXES):
        # An RSS guid that is an absolute URL is the item's address when no <link> was given.
        url = canonical_url(guid)
    h = content_hash(title, text)
    original_date = _as_utc(entry.published) or _as_utc(entry.updated)
    published = original_date or fetched
    if published > fetched + FUTURE_SLACK:
        published = fetched
    author = _plain_line(entry.author, 500) or None
    hint = entry.language
    return Item(
        feed_id=feed.id,
        key=_item_key(guid, url, title, original_date, h),
        guid=guid,
        url=url,
        title=title,
        text=collapse_lines(text),
        published=published,
        content_hash=h,
        author=author,
        tags=_tags(entry.tags),
        language=detect_language(f"{title}\n{text[:5000]}", hint),
    )


def normalize_feed(
    feed: FeedRef, parsed: ParsedFeed, *, fetched_at: datetime, base_url: str | None = None
) -> tuple[Item, ...]:
    """Every entry normalized, in document order, without exact duplicates within the document.

    A later entry is an exact duplicate of an earlier one when it has the same key (same GUID,
    or same URL when GUID-less), or the same canonical URL (or the same lack of one) together
    with the same content hash over a non-empty title or text. The first one wins: feeds list
    newest first, and the store's (feed, key) uniqueness would reject the second anyway.
    """
    items: list[Item] = []
    keys: set[str] = set()
    seen_content: set[tuple[str | None, str]] = set()
    empty = content_hash("", "")
    for entry in parsed.items:
        hint_entry = entry
        if entry.language is None and parsed.language:
            hint_entry = _with_language(entry, parsed.language)
        item = normalize(feed, hint_entry, fetched_at=fetched_at, base_url=base_url)
        content_id = (item.url, item.content_hash)
        if item.key in keys or (item.content_hash != empty and content_id in seen_content):
            log.debug("exact duplicate dropped feed=%s item=%s", feed.id, item.key[:12])
            continue
        keys.add(item.key)
        seen_content.add(content_id)
        items.append(item)
    return tuple(items)


def _with_language(entry: ParsedItem, language: str) -> ParsedItem:
    return replace(entry, language=language)
