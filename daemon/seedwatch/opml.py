"""OPML in and out: ``seedwatch feeds import FILE.opml`` and ``seedwatch feeds export``.

Import is tolerant because real OPML exports are often not well-formed XML (plenaryapp's
Russia.opml has ``text="Газета "Коммерсантъ". Главное"``). A strict expat parse runs first; when
it fails, a small tag scanner recovers the outlines, reading an attribute value up to the quote
that is followed by another attribute or the end of the tag. libxml2's recover mode was tried
and drops that outline entirely, losing the feed.

Nested category outlines and the OPML 2.0 ``category`` attribute become tags. No DTD or entity
declaration is accepted: OPML never needs one, and refusing them keeps entity expansion (and any
external fetch) out of the picture.
"""

from __future__ import annotations

import bisect
import html
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

from seedwatch.config.model import FeedConfig, Location
from seedwatch.errors import ConfigError, redact_url

log = logging.getLogger(__name__)


@dataclass
class _Outline:
    attrs: dict[str, str]
    line: int
    children: list[_Outline] = field(default_factory=list)


def parse_opml(data: bytes, *, source: str) -> list[FeedConfig]:
    """The feeds of an OPML document in document order; a repeated URL adds its tags only.

    Raises ConfigError naming ``source`` and the line when the input is not OPML at all.
    Outlines whose xmlUrl is not http(s) are skipped with a warning.
    """
    declared = re.search(rb"<!(?:DOCTYPE|ENTITY)", data)
    if declared:
        raise ConfigError(
            "OPML with a DOCTYPE or ENTITY declaration is refused",
            path=source,
            line=data[: declared.start()].count(b"\n") + 1,
        )
    try:
        root, roots = _strict(data)
    except expat.ExpatError as e:
        line = int(e.lineno)
        roots = _recover(data)
        if not any(_walk(roots)):
            raise ConfigError(
                f"not well-formed XML: {expat.ErrorString(e.code)}",
                path=source,
                line=line,
                column=int(e.offset) + 1,
            ) from e
        log.warning(
            "opml source=%s line=%d: strict XML parse failed (%s); recovered the outlines",
            source,
            line,
            expat.ErrorString(e.code),
        )
    else:
        if root != "opml":
            raise ConfigError(f"the root element is <{root}>, not <opml>", path=source, line=1)
    feeds: dict[str, FeedConfig] = {}
    for outline, path in _walk(roots):
        feed = _feed(outline, path, source)
        if feed is None:
            continue
        first = feeds.get(feed.url)
        if first is None:
            feeds[feed.url] = feed
        else:
            # The same feed filed under two folders: one feed carrying both folders' tags.
            tags = tuple(dict.fromkeys((*first.tags, *feed.tags)))
            feeds[feed.url] = replace(first, tags=tags)
    return list(feeds.values())


def to_opml(feeds: Sequence[FeedConfig], *, title: str = "seedwatch feeds") -> str:
    """OPML 2.0: feeds grouped in folders by their first tag, every tag in ``category``."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"  <head>\n    <title>{html.escape(title, quote=False)}</title>\n  </head>",
        "  <body>",
    ]
    folders: dict[str, list[FeedConfig]] = {}
    for feed in feeds:
        folders.setdefault(feed.tags[0] if feed.tags else "", []).append(feed)
    for folder, members in folders.items():
        indent = "    "
        if folder:
            out.append(f"    <outline text={quoteattr(folder)} title={quoteattr(folder)}>")
            indent = "      "
        for feed in members:
            attrs = [
                ("type", "rss"),
                ("text", feed.name),
                ("title", feed.name),
                ("xmlUrl", feed.url),
            ]
            if feed.tags:
                attrs.append(("category", ",".join(feed.tags)))
            joined = " ".join(f"{k}={_attr(v)}" for k, v in attrs)
            out.append(f"{indent}<outline {joined}/>")
        if folder:
            out.append("    </outline>")
    out += ["  </body>", "</opml>", ""]
    return "\n".join(out)


def _attr(value: str) -> str:
    # Control characters are not allowed in XML 1.0 at all; newlines would be normalized away.
    clean = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", value)
    return quoteattr(clean, {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


# -- strict ------------------------------------------------------------------------------------
def _strict(data: bytes) -> tuple[str, list[_Outline]]:
    """The root element's name and the outlines inside <body>."""
    parser = expat.ParserCreate()
    roots: list[_Outline] = []
    stack: list[_Outline] = []
    state: dict[str, str | int] = {"root": "", "in_body": 0}

    def start(name: str, attrs: dict[str, str]) -> None:
        local = name.rsplit(":", 1)[-1].lower()
        if not state["root"]:
            state["root"] = local
        if local == "body":
            state["in_body"] = 1
        if local == "outline" and state["in_body"]:
            node = _Outline(dict(attrs), parser.CurrentLineNumber)
            (stack[-1].children if stack else roots).append(node)
            stack.append(node)

    def end(name: str) -> None:
        local = name.rsplit(":", 1)[-1].lower()
        if local == "outline" and stack:
            stack.pop()
        elif local == "body":
            state["in_body"] = 0

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    # Never resolve external entities or fetch a DTD (expat does not unless told to).
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.Parse(data, True)
    return str(state["root"]), roots


# -- recovery ----------------------------------------------------------------------------------
_TAG = re.compile(r"<(/?)([A-Za-z_][\w:.-]*)")
_SKIP = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>", re.DOTALL)
_NAME = re.compile(r"\s*([A-Za-z_][\w:.-]*)\s*=\s*")
_AFTER_VALUE = re.compile(r"(?:\s*/?>|\s+[A-Za-z_][\w:.-]*\s*=)")


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    m = re.match(
        rb"\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)", data.lstrip(b"\xef\xbb\xbf")
    )
    encoding = m.group(1).decode("ascii") if m else "utf-8"
    try:
        return data.decode(encoding, errors="replace").lstrip("\ufeff")
    except LookupError:
        return data.decode("utf-8", errors="replace").lstrip("\ufeff")


def _recover(data: bytes) -> list[_Outline]:
    text = _SKIP.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), _decode(data))
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    roots: list[_Outline] = []
    stack: list[_Outline] = []
    in_body = False
    pos = 0
    while True:
        m = _TAG.search(text, pos)
        if m is None:
            break
        closing, name = m.group(1) == "/", m.group(2).rsplit(":", 1)[-1].lower()
        attrs, pos, self_closing = _attributes(text, m.end())
        if name == "body":
            in_body = not closing
        elif name == "outline" and in_body:
            if closing:
                if stack:
                    stack.pop()
                continue
            node = _Outline(attrs, bisect.bisect_left(newlines, m.start()) + 1)
            (stack[-1].children if stack else roots).append(node)
            if not self_closing:
                stack.append(node)
    return roots


def _attributes(text: str, i: int) -> tuple[dict[str, str], int, bool]:
    """Attributes from ``text[i:]`` up to the end of the tag, tolerating stray quotes."""
    attrs: dict[str, str] = {}
    while i < len(text):
        end = re.match(r"\s*(/?)>", text[i:])
        if end:
            return attrs, i + end.end(), end.group(1) == "/"
        m = _NAME.match(text, i)
        if m is None:
            # Garbage inside the tag: skip to the next '>' and keep what we have.
            close = text.find(">", i)
            return attrs, (len(text) if close == -1 else close + 1), text[close - 1 : close] == "/"
        i = m.end()
        quote = text[i : i + 1]
        if quote not in ('"', "'"):
            v = re.match(r"[^\s>]*", text[i:])
            value = v.group(0) if v else ""
            i += len(value)
        else:
            j = i + 1
            while True:
                k = text.find(quote, j)
                if k == -1:
                    k = len(text)
                    break
                if _AFTER_VALUE.match(text, k + 1) or k + 1 >= len(text):
                    break
                j = k + 1
            value = text[i + 1 : k]
            i = k + 1
        attrs[m.group(1).rsplit(":", 1)[-1]] = html.unescape(value)
    return attrs, i, False


# -- outlines to feeds -------------------------------------------------------------------------
def _walk(
    nodes: list[_Outline], path: tuple[str, ...] = ()
) -> Iterator[tuple[_Outline, tuple[str, ...]]]:
    for node in nodes:
        if _get(node, "xmlUrl"):
            yield node, path
        label = _get(node, "title") or _get(node, "text")
        sub = (*path, label) if label and not _get(node, "xmlUrl") else path
        yield from _walk(node.children, sub)


def _get(node: _Outline, name: str) -> str:
    # Exporters disagree on case (xmlUrl, xmlurl, XMLURL).
    for key, value in node.attrs.items():
        if key.lower() == name.lower():
            return value.strip()
    return ""


def _redacted(url: str) -> str:
    # errors.redact_url raises ValueError on a port out of range (urlsplit's .port).
    try:
        return redact_url(url)
    except ValueError:
        return "<unparseable url>"


def _slug(label: str) -> str:
    return re.sub(r"\s+", "-", re.sub(r"[,/]", " ", label).strip()).lower()


def _feed(node: _Outline, path: tuple[str, ...], source: str) -> FeedConfig | None:
    url = _get(node, "xmlUrl")
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        _ = parts.port
    except ValueError:
        ok = False
    if not ok:
        log.warning(
            "opml source=%s line=%d url=%s: not an http(s) feed URL, skipped",
            source,
            node.line,
            _redacted(url),
        )
        return None
    tags = [_slug(p) for p in path]
    for category in _get(node, "category").split(","):
        tags += [_slug(seg) for seg in category.split("/")]
    name = _get(node, "title") or _get(node, "text") or (parts.hostname or url)
    return FeedConfig(
        url=url,
        name=re.sub(r"\s+", " ", name),
        tags=tuple(dict.fromkeys(t for t in tags if t)),
        location=Location(source, node.line),
    )
