"""fastparse: well-formed RSS 2.0 / Atom 1.0 / RSS 1.0 read with expat, no feedparser machinery.

feedparser reads a well-formed document with its "strict" parser: expat through xml.sax, then a
state machine (``feedparser.mixin``) that turns elements into a result dict, and an sgmllib-based
HTML sanitizer over every HTML field. The state machine and the sanitizer are most of its cost.
``read_feed`` runs the same state machine, transcribed handler by handler for the elements that
decide the fields ``parse`` reads (title, link, id, summary, content, dates, author, tags,
language), straight on pyexpat, and skips the sanitizer for HTML whose plain text the sanitizer
cannot change (only tags it keeps, only entities it keeps; see ``_sanitized``). Its result has
the shape of feedparser's, so ``parse`` turns both into ``ParsedFeed`` with the same code.

Anything else raises ``Fallback`` inside and makes ``read_feed`` return None, and the caller
runs feedparser: a document expat rejects, an element feedparser has a handler for that is not
transcribed here, markup inside a text element, base64 content, a DTD, an encoding feedparser
would have to guess. Falling back is always correct, only slower.

Pure: bytes and headers in, plain dicts out; no I/O, no global state.
"""

from __future__ import annotations

import contextlib
import html.entities
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import uses_relative
from xml.parsers import expat

from feedparser.api import replace_doctype
from feedparser.datetimes import _parse_date
from feedparser.encodings import convert_to_utf8
from feedparser.html import _BaseHTMLProcessor, _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.sanitizer import _HTMLSanitizer, _sanitize_html
from feedparser.urls import _urljoin, make_safe_absolute_uri, resolve_relative_uris

# The plain-text parity argument is about html_to_text: its tag classes decide which tags matter.
from seedwatch.textutil import _BLOCK, _SKIP, _VOID

__all__ = ["read_feed"]

Doc = dict[str, Any]

log = logging.getLogger(__name__)


class Fallback(Exception):
    """The document needs feedparser; the message says why (tests and benchmarks count them)."""


# ---------------------------------------------------------------------------------------------
# Plain text that the HTML sanitizer would not change.

# Tags whose handling changes the plain text between the two routes: the sanitizer drops the
# content of script/applet/style and rewrites svg/math; it drops other unknown tags but keeps
# their text, which differs from html_to_text only for the tags html_to_text gives a meaning
# (line breaks, skipped content, alt text). Any other tag, kept or dropped, reads the same.
_ACCEPTABLE = frozenset(_HTMLSanitizer.acceptable_elements)
_TEXT_CHANGING_TAGS = frozenset({"script", "applet", "style", "svg", "math"}) | (
    (_BLOCK | _SKIP | _VOID | {"img"}) - _ACCEPTABLE
)
# Entities the sanitizer writes back unchanged (html.py, _BaseHTMLProcessor.handle_entityref).
_KEPT_ENTITIES = frozenset(html.entities.name2codepoint) | {"apos"}
# html.unescape also expands these legacy names without a ";" ("&copy2024"), the sanitizer does
# not ("&amp;copy2024"): an "&name" starting with one of them reads differently.
_LEGACY_PREFIX = re.compile(
    "|".join(sorted((n for n in html.entities.html5 if not n.endswith(";")), key=len)[::-1])
)
_ATTR = r"""\s+[A-Za-z_:][-A-Za-z0-9_:.]*(?:\s*=\s*(?:"[^"<>]*"|'[^'<>]*'|[^\s"'<>=`]+))?"""
_COMMENT = r"!--(?:(?!--)[^\x00])*--"  # both parsers end it at the first "-->"
_TAG = re.compile(
    rf"<(?:[A-Za-z][A-Za-z0-9]*(?:{_ATTR})*\s*/?|/[A-Za-z][A-Za-z0-9]*\s*|{_COMMENT})>"
)
_TAG_NAME = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)")
# Outside tags: any "<" left, or an "&" that starts neither a reference, a name, nor plain text.
_LOOSE = re.compile(r"<|&(?!#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z]|\s|$)")
_ENTITY = re.compile(r"&([A-Za-z][-.A-Za-z0-9]*)(;?)")
# The sanitizer drops end tags of void elements ("</br>"), which html.parser reads as breaks.
_VOID_END = re.compile(
    rf"</(?:{'|'.join(sorted(_BaseHTMLProcessor.elements_no_end_tag))})\b", re.IGNORECASE
)
# Script and style blocks of plain text vanish on both routes (html.parser skips their content,
# the sanitizer drops it); with "<" or "&" inside, sgmllib may read markup there.
_CODE_BLOCK = re.compile(r"<(script|style)\b[^<>]*>[^<&]*</\1\s*>", re.IGNORECASE)
# The sanitizer writes void elements self-closing, and html_to_text reads no alt text from a
# self-closing <img/>: the same rewrite here keeps the plain text the same.
_IMG = re.compile(r"(<img\b[^<>]*?)\s*/?>", re.IGNORECASE)


def _same_entities(text: str) -> bool:
    """True when every "&name" in ``text`` reads the same before and after the sanitizer."""
    for name, semicolon in _ENTITY.findall(text):
        if (name not in _KEPT_ENTITIES) if semicolon else bool(_LEGACY_PREFIX.match(name)):
            return False
    return True


def _feedparser_html(value: str, base: str, content_type: str) -> str:
    """What feedparser makes of an HTML field: relative URIs resolved, then sanitized."""
    resolved = resolve_relative_uris(value, base, "utf-8", content_type)
    return str(_sanitize_html(resolved, "utf-8", content_type))


def _sanitized(value: str, base: str, content_type: str) -> str:
    """``value`` as feedparser leaves it, or as it is when the plain text would be the same."""
    if "<" not in value and "&" not in value:
        return value
    html = _CODE_BLOCK.sub("", value)
    outside = _TAG.sub(" ", html)
    if (
        _LOOSE.search(outside)
        or _VOID_END.search(html)
        or any(name.lower() in _TEXT_CHANGING_TAGS for name in _TAG_NAME.findall(html))
        or ("&" in outside and not _same_entities(outside))
    ):
        return _feedparser_html(value, base, content_type)
    return _IMG.sub(r"\1 />", html)


# ---------------------------------------------------------------------------------------------
# The state machine: feedparser.mixin._FeedParserMixin and namespaces/*.py, transcribed.

_M = _FeedParserMixin
_MATCH_NS = {k.lower(): v for k, v in _M.namespaces.items()}
_HTML_TYPES = frozenset(_M.html_types)
_RELATIVE = frozenset(_M.can_be_relative_uri)
_DANGEROUS = frozenset(_M.can_contain_dangerous_markup)
_ROOTS = frozenset({"rss", "feed", "rdf:rdf"})
_MATHML = "http://www.w3.org/1998/Math/MathML"
_SVG = "http://www.w3.org/2000/svg"
_ITUNES = "http://www.itunes.com/"
_LINK_ENTITY = re.compile("&([A-Za-z0-9_]+);")
# Copied from feedparser.mixin._sync_author_detail.
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"""
    r"""([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
# Entry and feed keys that ``parse`` reads, or whose presence steers the state machine: an
# element without a handler is stored under its own name, so one of these names means trouble.
_WATCHED_KEYS = frozenset(
    {
        "id", "link", "links", "title", "title_detail", "summary", "summary_detail", "content",
        "author", "authors", "author_detail", "tags", "language", "published_parsed",
        "updated_parsed", "image", "textinput", "guidislink",
    }
)  # fmt: skip
# Elements whose popped value someone reads (parse, or a handler here); the others are popped
# without feedparser's costly steps, since nothing looks at their value.
_READ_VALUES = frozenset(
    {
        "title", "link", "id", "description", "summary", "content", "author", "language", "ttl",
        "href", "published", "updated", "category", "tags", "itunes_keywords", "media_keywords",
    }
)  # fmt: skip
_TAG_VALUES = frozenset({"category", "tags", "itunes_keywords", "media_keywords"})


def _map_content_type(content_type: str) -> str:
    return str(_M.map_content_type(content_type))


# Shapes of URI whose urljoin result is known without running urljoin (most links, guids and
# ids in feeds): absolute http(s) URLs it returns unchanged (no empty query or fragment, no
# ";params", plain ASCII host); URIs of a non-hierarchical scheme ("tag:", "urn:"), returned
# unchanged; plain relative paths (no dot segments, no "//", no query) against a plain base,
# which only get appended to the base's directory.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.:-]+(?:/[^?#;\s]*)?(?:\?[^#\s]+)?(?:#\S+)?")
_OPAQUE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(?!/)\S*")
_PLAIN_BASE = re.compile(r"(https?://[A-Za-z0-9.:-]+)((?:/[^?#;\s/]+)*/?)(?:[?#]\S*)?")
_PLAIN_PATH = re.compile(r"/?[A-Za-z0-9_~!$&'()*+,=@%-][A-Za-z0-9._~!$&'()*+,=@%/-]*")


def _join(base: str, uri: str) -> str:
    """feedparser's resolve_uri: ``uri`` resolved against ``base``."""
    if _PLAIN_URL.fullmatch(uri):
        return uri
    opaque = _OPAQUE.fullmatch(uri)
    if opaque and opaque.group(1).lower() not in uses_relative:
        return uri
    plain = _PLAIN_BASE.fullmatch(base) if _PLAIN_PATH.fullmatch(uri) else None
    if plain and "//" not in uri and "/./" not in f"/{uri}/" and "/../" not in f"/{uri}/":
        site, path = plain.groups()
        if "/./" in f"{path}/" or "/../" in f"{path}/":
            return str(_urljoin(base, uri))
        if uri.startswith("/"):
            return site + uri
        return site + path[: path.rfind("/") + 1] + uri if path else f"{site}/{uri}"
    return str(_urljoin(base or "", uri))


_C1 = re.compile("[\x80-\x9f]")


def _fix_text(output: str) -> str:
    """feedparser's last steps on every text value: undo UTF-8 read as latin-1, map cp1252."""
    if output.isascii():
        return output
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        output = output.encode("iso-8859-1").decode("utf-8")
    # translate() with a dict is slow on long text: only when there is something to map.
    return output.translate(_cp1252) if _C1.search(output) else output


class _Reader:
    """One document's parse state; the attribute names follow feedparser's."""

    def __init__(self, baseuri: str, baselang: str | None) -> None:
        self.feeddata: Doc = {}
        self.entries: list[Doc] = []
        self.depth_map: list[dict[str, int]] = []
        self.version = ""
        self.namespaces_in_use: dict[str, str] = {}
        self.namespacemap: dict[str | None, str] = {}
        self.infeed = self.inentry = self.incontent = self.insource = 0
        self.sourcedata: Doc = {}
        self.inimage = self.intextinput = 0
        self.inauthor = self.incontributor = self.inpublisher = 0
        self.contentparams: Doc = {}
        self.summary_key: str | None = None
        self.elementstack: list[list[Any]] = []
        self.basestack: list[str] = []
        self.langstack: list[str | None] = []
        self.title_depth = -1
        self.depth = 0
        self.has_content = 0
        self.guidislink = False
        self.baseuri = baseuri
        self.lang = baselang
        if baselang:
            self.feeddata["language"] = baselang.replace("_", "-")
        self.names: dict[str, tuple[str, str, bool, Start | None]] = {}
        self.bases: dict[tuple[str, str], str] = {}
        self.settled: set[str] = set()  # bases that make_safe_absolute_uri leaves as they are

    # -- expat callbacks ----------------------------------------------------------------------

    def start_namespace(self, prefix: str | None, uri: str) -> None:
        if not uri:
            return
        self.names.clear()  # element names depend on the prefixes in use
        lower = uri.lower()
        if not self.version:
            if (prefix, lower) == (None, "http://my.netscape.com/rdf/simple/0.9/"):
                self.version = "rss090"
            elif lower == "http://purl.org/rss/1.0/":
                self.version = "rss10"
            elif lower == "http://www.w3.org/2005/atom":
                self.version = "atom10"
        if "backend.userland.com/rss" in lower:
            uri = lower = "http://backend.userland.com/rss"
        if lower in _MATCH_NS:
            self.namespacemap[prefix] = _MATCH_NS[lower]
            self.namespaces_in_use[_MATCH_NS[lower]] = uri
        else:
            self.namespaces_in_use[prefix or ""] = uri

    def _name(self, raw: str) -> tuple[str, str, bool, Start | None]:
        """feedparser's tag for expat's "uri local", its handler name, whether it is unprefixed,
        and its start handler; Fallback for an element this module does not transcribe.

        The tag as strict.py's startElementNS makes it, the name as mixin.unknown_starttag does.
        """
        namespace, _, local = raw.rpartition(" ")
        if local.lower() in ("math", "svg") and namespace in (_MATHML, _SVG):
            raise Fallback("inline MathML or SVG")  # feedparser gives them an xmlns attribute
        lower = namespace.lower()
        if "backend.userland.com/rss" in lower:
            namespace = lower = "http://backend.userland.com/rss"
        prefix = _MATCH_NS.get(lower)
        tag = local.lower()
        if prefix:
            tag = prefix.lower() + ":" + tag
        elif namespace:
            for declared, value in self.namespaces_in_use.items():
                if declared and value == namespace:
                    tag = declared + ":" + tag
                    break
        tag = tag.lower()
        given, _, suffix = tag.rpartition(":")
        mapped = self.namespacemap.get(given, given)
        name = f"{mapped}_{suffix}" if mapped else suffix
        handler = _START.get(name)
        if handler is None and name in _ALL_HANDLERS and name not in _END:
            raise Fallback(f"element feedparser handles and we do not: {name}")
        if handler is None and name in _WATCHED_KEYS:
            raise Fallback(f"unhandled element named like a field: {name}")
        found = (tag, name, not mapped, handler)
        self.names[raw] = found
        return found

    @staticmethod
    def _attrs(attrs: dict[str, str]) -> dict[str, str]:
        """The attributes as strict.py and _normalize_attributes hand them to the handlers."""
        out: dict[str, str] = {}
        qnames: list[tuple[str, str]] = []
        for key, value in attrs.items():
            ans, _, alocal = key.rpartition(" ")
            prefix = _MATCH_NS.get(ans.lower(), "")
            out[(prefix + ":" + alocal if prefix else alocal).lower()] = value
            qnames.append((alocal.lower(), value))
        for key, value in qnames:
            out[key] = value
        # _normalize_attributes: rel and type values are compared lower-cased everywhere.
        for key in ("rel", "type"):
            if key in out:
                out[key] = out[key].lower()
        return out

    def start(self, raw: str, attrs: dict[str, str]) -> None:
        tag, name, unprefixed, handler = self.names.get(raw) or self._name(raw)
        self.depth += 1
        lang = self.lang
        if attrs:
            attrs_d = self._attrs(attrs)
            base = attrs_d.get("xml:base", attrs_d.get("base")) or self.baseuri
            self.baseuri = self._next_base(self.baseuri, base)
            given = attrs_d.get("xml:lang", attrs_d.get("lang"))
            if given is not None:
                lang = given or None  # xml:lang="" switches the language off
            if lang and tag in ("feed", "rss", "rdf:RDF"):
                self.feeddata["language"] = lang.replace("_", "-")
            self.lang = lang
        else:
            attrs_d = {}
            if self.baseuri not in self.settled:
                self.baseuri = self._next_base(self.baseuri, self.baseuri)
        self.basestack.append(self.baseuri)
        self.langstack.append(lang)
        if self.incontent:
            raise Fallback(f"markup inside a text element: <{tag}>")
        if unprefixed:
            if tag not in ("title", "link", "description", "name"):
                self.intextinput = 0
            if tag not in ("title", "link", "description", "url", "href", "width", "height"):
                self.inimage = 0
        if self.depth == 1 and tag not in _ROOTS:
            raise Fallback(f"not a feed: root element <{tag}>")
        if handler is not None:
            handler(self, attrs_d)
        elif not attrs_d:  # with attributes, feedparser stores them under the name: unread
            self.push(name, 1)

    def _next_base(self, current: str, wanted: str) -> str:
        key = (current, wanted)
        found = self.bases.get(key)
        if found is None:
            if current:
                found = make_safe_absolute_uri(current, wanted) or current
            else:
                found = _urljoin(current, wanted)
            self.bases[key] = found = str(found)
            if found == current == wanted:
                self.settled.add(found)
        return found

    def end(self, raw: str) -> None:
        name = (self.names.get(raw) or self._name(raw))[1]
        handler = _END.get(name)
        if handler is not None:
            handler(self)
        else:
            self.pop(name)
        if self.basestack:
            self.basestack.pop()
            if self.basestack and self.basestack[-1]:
                self.baseuri = self.basestack[-1]
        if self.langstack:
            self.langstack.pop()
            if self.langstack:
                self.lang = self.langstack[-1]
        self.depth -= 1

    def data(self, text: str) -> None:
        if self.elementstack:
            self.elementstack[-1][2].append(text)

    # -- mixin ---------------------------------------------------------------------------------

    def push(self, element: str, expecting_text: int) -> None:
        self.elementstack.append([element, expecting_text, []])

    def pop(self, element: str, strip_whitespace: bool = True) -> str | None:
        stack = self.elementstack
        if not stack or stack[-1][0] != element:
            return None
        element, expecting_text, pieces = stack.pop()
        output = "".join(pieces)
        if strip_whitespace:
            output = output.strip()
        if not expecting_text or element not in _READ_VALUES:
            return output  # nobody reads the value: feedparser's costly steps are skipped
        params = self.contentparams
        if element in _RELATIVE and output and (element != "id" or self.guidislink):
            output = _join(self.baseuri, output)
        plain = params.get("type") == "text/plain" and not self.version.startswith("atom")
        if plain and _M.looks_like_html(output):
            params["type"] = "text/html"
        kind = params.get("type", "text/html")  # mapped by push_content already
        if kind in _HTML_TYPES and element in _DANGEROUS and output:
            if self.inentry:
                output = _sanitized(output, self.baseuri, kind)
            elif element == "title":  # the one feed-level field read; feedparser's treatment
                output = _feedparser_html(output, self.baseuri, kind)
        output = _fix_text(output)
        if element in _TAG_VALUES:
            return output
        if element == "title" and -1 < self.title_depth <= self.depth:
            return output
        self._store(element, output)
        return output

    def _store(self, element: str, output: str) -> None:
        if self.inentry and not self.insource:
            entry = self.entries[-1]
            if element == "content":
                entry.setdefault("content", []).append(self._detail(output))
            elif element == "link":
                if not self.inimage:
                    if "&" in output:
                        output = _LINK_ENTITY.sub(r"&\g<1>", output.replace("&amp;", "&"))
                    entry["link"] = output
                    if output and not entry.get("links"):
                        raise Fallback("link text without a links list")
            else:
                if element == "description":
                    element = "summary"
                depths = self.depth_map[-1]
                old = depths.get(element)
                if old is None or self.depth <= old:
                    depths[element] = self.depth
                    entry[element] = output
                if self.incontent:
                    entry[element + "_detail"] = self._detail(output)
        elif self.infeed or self.insource:
            context = self._get_context()
            if element == "description":
                element = "subtitle"
            context[element] = output
            if element == "link":
                context["link"] = _LINK_ENTITY.sub(r"&\g<1>", output)
                if not context.get("links"):
                    raise Fallback("link text without a links list")
            elif self.incontent:
                context[element + "_detail"] = self._detail(output)

    def _detail(self, value: str) -> Doc:
        return {**self.contentparams, "value": value}

    def push_content(self, tag: str, attrs_d: Mapping[str, str], default: str, text: int) -> None:
        self.incontent += 1
        if self.lang:
            self.lang = self.lang.replace("_", "-")
        kind = _map_content_type(attrs_d.get("type", default))
        if "mode" in attrs_d or not kind.startswith("text/") or kind.endswith("xml"):
            raise Fallback(f"base64, XML or mode content: <{tag}> {kind!r}")
        self.contentparams = {"type": kind, "language": self.lang, "base": self.baseuri}
        self.push(tag, text)

    def pop_content(self, tag: str) -> str | None:
        value = self.pop(tag)
        self.incontent -= 1
        self.contentparams = {}
        return value

    def _get_context(self) -> Doc:
        if self.insource:
            return self.sourcedata
        if self.inimage and "image" in self.feeddata:
            return self.feeddata["image"]  # type: ignore[no-any-return]
        if self.intextinput:
            return self.feeddata["textinput"]  # type: ignore[no-any-return]
        if self.inentry:
            return self.entries[-1]
        return self.feeddata

    def _save(self, key: str, value: Any, overwrite: bool = False) -> None:
        context = self._get_context()
        if overwrite:
            context[key] = value
        else:
            context.setdefault(key, value)

    def _add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        tags = self._get_context().setdefault("tags", [])
        if not term and not scheme and not label:
            return
        value = {"term": term, "scheme": scheme, "label": label}
        if value not in tags:
            tags.append(value)

    def _save_author(self, key: str, value: str | None, prefix: str = "author") -> None:
        context = self._get_context()
        context.setdefault(prefix + "_detail", {})[key] = value
        self._sync_author_detail()
        context.setdefault("authors", [{}])
        context["authors"][-1][key] = value

    def _sync_author_detail(self, key: str = "author") -> None:
        context = self._get_context()
        detail = context.get(key + "s", [{}])[-1]
        if detail:
            name, email = detail.get("name"), detail.get("email")
            if name and email:
                context[key] = f"{name} ({email})"
            elif name:
                context[key] = name
            elif email:
                context[key] = email
            return
        author, email = context.get(key), None
        if not author:
            return
        match = _EMAIL.search(author)
        if match:
            email = match.group(0)
            author = author.replace(email, "").replace("()", "").replace("<>", "")
            author = author.replace("&lt;&gt;", "").strip()
            if author and author[0] == "(":
                author = author[1:]
            if author and author[-1] == ")":
                author = author[:-1]
            author = author.strip()
        if author or email:
            context.setdefault(key + "_detail", detail)
        if author:
            detail["name"] = author
        if email:
            detail["email"] = email


# ---------------------------------------------------------------------------------------------
# Handlers (feedparser/namespaces/_base.py and friends), by feedparser's element name.

Start = Callable[[_Reader, dict[str, str]], None]
End = Callable[[_Reader], None]


def _start_rss(r: _Reader, attrs: dict[str, str]) -> None:
    if not r.version or not r.version.startswith("rss"):
        version = attrs.get("version", "")
        known = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
        r.version = known.get(version) or ("rss20" if version.startswith("2.") else "rss")


def _start_feed(r: _Reader, attrs: dict[str, str]) -> None:
    r.infeed = 1
    if not r.version:
        known = {"0.1": "atom01", "0.2": "atom02", "0.3": "atom03"}
        r.version = known.get(attrs.get("version", ""), "atom")


def _start_channel(r: _Reader, attrs: dict[str, str]) -> None:
    r.infeed = 1
    _cdf_common(attrs)


def _cdf_common(attrs: dict[str, str]) -> None:
    if "lastmod" in attrs or "href" in attrs:
        raise Fallback("CDF attributes")


def _end_channel(r: _Reader) -> None:
    r.infeed = 0


def _start_item(r: _Reader, attrs: dict[str, str]) -> None:
    r.entries.append({})
    r.depth_map.append({})
    r.push("item", 0)
    r.inentry = 1
    r.guidislink = False
    r.title_depth = -1
    about = attrs.get(r.namespacemap.get("rdf", "rdf") + ":about")
    if about:
        r._get_context()["id"] = about
    _cdf_common(attrs)


def _end_item(r: _Reader) -> None:
    r.pop("item")
    r.inentry = 0
    r.has_content = 0


def _start_image(r: _Reader, attrs: dict[str, str]) -> None:
    if r.inentry:
        raise Fallback("image inside an entry")
    r._get_context().setdefault("image", {})
    r.inimage = 1
    r.title_depth = -1
    r.push("image", 0)


def _end_image(r: _Reader) -> None:
    r.pop("image")
    r.inimage = 0


def _start_textinput(r: _Reader, attrs: dict[str, str]) -> None:
    if r.inentry:
        raise Fallback("textinput inside an entry")
    r._get_context().setdefault("textinput", {})
    r.intextinput = 1
    r.title_depth = -1
    r.push("textinput", 0)


def _end_textinput(r: _Reader) -> None:
    r.pop("textinput")
    r.intextinput = 0


def _start_author(r: _Reader, attrs: dict[str, str]) -> None:
    r.inauthor = 1
    r.push("author", 1)
    r._get_context().setdefault("authors", []).append({})


def _end_author(r: _Reader) -> None:
    r.pop("author")
    r.inauthor = 0
    r._sync_author_detail()


def _start_contributor(r: _Reader, attrs: dict[str, str]) -> None:
    r.incontributor = 1
    r._get_context().setdefault("contributors", []).append({})
    r.push("contributor", 0)


def _end_contributor(r: _Reader) -> None:
    r.pop("contributor")
    r.incontributor = 0


def _save_person(r: _Reader, key: str, value: str | None) -> None:
    if r.inpublisher:
        r._save_author(key, value, "publisher")
    elif r.inauthor:
        r._save_author(key, value)
    elif r.incontributor:
        r._get_context().setdefault("contributors", [{}])[-1][key] = value


def _pusher(element: str, expecting_text: int) -> Start:
    def start(r: _Reader, attrs: dict[str, str]) -> None:
        r.push(element, expecting_text)

    return start


def _popper(element: str) -> End:
    def end(r: _Reader) -> None:
        r.pop(element)

    return end


def _end_name(r: _Reader) -> None:
    value = r.pop("name")
    if r.inpublisher or r.inauthor or r.incontributor:
        _save_person(r, "name", value)
    elif r.intextinput:
        r._get_context()["name"] = value


def _end_email(r: _Reader) -> None:
    _save_person(r, "email", r.pop("email"))


def _end_url(r: _Reader) -> None:
    value = r.pop("href")
    if r.inauthor:
        r._save_author("href", value)
    elif r.incontributor:
        r._get_context().setdefault("contributors", [{}])[-1]["href"] = value


def _content_starter(element: str, default: str) -> Start:
    def start(r: _Reader, attrs: dict[str, str]) -> None:
        r.push_content(element, attrs, default, 1)

    return start


def _content_ender(element: str) -> End:
    def end(r: _Reader) -> None:
        r.pop_content(element)

    return end


def _start_publisher(r: _Reader, attrs: dict[str, str]) -> None:
    r.push("publisher", 1)


def _end_webmaster(r: _Reader) -> None:
    r.pop("publisher")  # its _sync_author_detail("publisher") touches publisher keys only


def _start_itunes_owner(r: _Reader, attrs: dict[str, str]) -> None:
    r.inpublisher = 1
    r.push("publisher", 0)


def _end_itunes_owner(r: _Reader) -> None:
    r.pop("publisher")
    r.inpublisher = 0


def _date_ender(element: str, key: str) -> End:
    def end(r: _Reader) -> None:
        value = r.pop(element)
        if r.inentry:
            r._save(key, _parse_date(value), overwrite=True)

    return end


def _start_category(r: _Reader, attrs: dict[str, str]) -> None:
    r._add_tag(attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label"))
    r.push("category", 1)


def _start_media_category(r: _Reader, attrs: dict[str, str]) -> None:
    attrs.setdefault("scheme", "http://search.yahoo.com/mrss/category_schema")
    _start_category(r, attrs)


def _start_itunes_category(r: _Reader, attrs: dict[str, str]) -> None:
    r._add_tag(attrs.get("text"), _ITUNES, None)
    r.push("category", 1)


def _end_category(r: _Reader) -> None:
    value = r.pop("category")
    if not value:
        return
    tags = r._get_context()["tags"]
    if tags and not tags[-1]["term"]:
        tags[-1]["term"] = value
    else:
        r._add_tag(value, None, None)


def _keywords_ender(element: str, scheme: str | None) -> End:
    def end(r: _Reader) -> None:
        value = r.pop(element)
        if value is None:
            raise Fallback(f"{element} with attributes")  # feedparser crashes on it
        for term in value.split(","):
            if term.strip():
                r._add_tag(term.strip(), scheme, None)

    return end


def _end_tags(r: _Reader) -> None:
    for term in (r.pop("tags") or "").split(","):
        r._add_tag(term.strip(), None, None)


def _start_link(r: _Reader, attrs: dict[str, str]) -> None:
    attrs.setdefault("rel", "alternate")
    attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
    context = r._get_context()
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if href:
        attrs.pop("url", None)
        attrs.pop("uri", None)
        attrs["href"] = href
    if "href" in attrs:
        attrs["href"] = _join(r.baseuri, attrs["href"])
    context.setdefault("links", [])
    if not (r.inentry and r.inimage):
        context["links"].append(attrs)
    if "href" in attrs:
        if attrs.get("rel") == "alternate" and _map_content_type(attrs["type"]) in _HTML_TYPES:
            context["link"] = attrs["href"]
    else:
        r.push("link", r.infeed or r.inentry or r.insource)


def _start_enclosure(r: _Reader, attrs: dict[str, str]) -> None:
    r._get_context().setdefault("links", []).append({"rel": "enclosure"})


def _start_guid(r: _Reader, attrs: dict[str, str]) -> None:
    r.guidislink = attrs.get("ispermalink", "true") == "true"
    r.push("id", 1)


def _end_guid(r: _Reader) -> None:
    value = r.pop("id")
    r._save("guidislink", r.guidislink and "link" not in r._get_context())
    if r.guidislink:
        r._save("link", value)


def _start_title(r: _Reader, attrs: dict[str, str]) -> None:
    r.push_content("title", attrs, "text/plain", r.infeed or r.inentry or r.insource)


def _end_title(r: _Reader) -> None:
    if r.pop_content("title"):
        r.title_depth = r.depth


def _end_media_title(r: _Reader) -> None:
    depth = r.title_depth
    _end_title(r)
    r.title_depth = depth


def _start_description(r: _Reader, attrs: dict[str, str]) -> None:
    if "summary" in r._get_context() and not r.has_content:
        r.summary_key = "content"
        _start_content(r, attrs)
    else:
        r.push_content("description", attrs, "text/html", r.infeed or r.inentry or r.insource)


def _end_description(r: _Reader) -> None:
    if r.summary_key == "content":
        _end_content(r)
    else:
        r.pop_content("description")
    r.summary_key = None


def _start_summary(r: _Reader, attrs: dict[str, str]) -> None:
    if "summary" in r._get_context() and not r.has_content:
        r.summary_key = "content"
        _start_content(r, attrs)
    else:
        r.summary_key = "summary"
        r.push_content("summary", attrs, "text/plain", 1)


def _end_summary(r: _Reader) -> None:
    if r.summary_key == "content":
        _end_content(r)
    else:
        r.pop_content(r.summary_key or "summary")
    r.summary_key = None


def _start_content(r: _Reader, attrs: dict[str, str]) -> None:
    r.has_content = 1
    if attrs.get("src"):
        raise Fallback("out-of-line content (src)")
    r.push_content("content", attrs, "text/plain", 1)
    r.push("content", 1)  # feedparser pushes twice here; the second entry stays on the stack


def _start_content_encoded(r: _Reader, attrs: dict[str, str]) -> None:
    r.has_content = 1
    r.push_content("content", attrs, "text/html", 1)


def _end_content(r: _Reader) -> None:
    to_summary = _map_content_type(r.contentparams.get("type", "")) in {"text/plain"} | _HTML_TYPES
    value = r.pop_content("content")
    if to_summary:
        r._save("summary", value)


def _start_language(r: _Reader, attrs: dict[str, str]) -> None:
    r.push("language", 1)


def _end_language(r: _Reader) -> None:
    r.lang = r.pop("language")


def _start_itunes_image(r: _Reader, attrs: dict[str, str]) -> None:
    r.push("itunes_image", 0)
    href = attrs.get("href") or attrs.get("url")
    if href:
        r._get_context()["image"] = {"href": href}


def _start_media_thumbnail(r: _Reader, attrs: dict[str, str]) -> None:
    r.push("url", 1)


def _start_source(r: _Reader, attrs: dict[str, str]) -> None:
    if "url" in attrs:
        r.sourcedata["href"] = attrs["url"]
    r.push("source", 1)
    r.insource = 1
    r.title_depth = -1


def _end_source(r: _Reader) -> None:
    r.insource = 0
    r.pop("source")  # the source's name: feedparser keeps it in entry["source"], unread
    r.sourcedata = {}


def _start_cc_license(r: _Reader, attrs: dict[str, str]) -> None:
    r._get_context().setdefault("links", []).append({"rel": "license"})


def _end_creativecommons_license(r: _Reader) -> None:
    r.pop("license")
    r._get_context().setdefault("links", []).append({"rel": "license"})


def _start_nothing(r: _Reader, attrs: dict[str, str]) -> None:
    pass


def _end_nothing(r: _Reader) -> None:
    pass


_START: dict[str, Start] = {
    "rss": _start_rss,
    "feed": _start_feed,
    "channel": _start_channel,
    "item": _start_item,
    "entry": _start_item,
    "image": _start_image,
    "textinput": _start_textinput,
    "author": _start_author,
    "managingeditor": _start_author,
    "dc_author": _start_author,
    "dc_creator": _start_author,
    "itunes_author": _start_author,
    "contributor": _start_contributor,
    "name": _pusher("name", 0),
    "itunes_name": _pusher("name", 0),
    "email": _pusher("email", 0),
    "itunes_email": _pusher("email", 0),
    "url": _pusher("href", 1),
    "uri": _pusher("href", 1),
    "homepage": _pusher("href", 1),
    "width": _pusher("width", 0),
    "height": _pusher("height", 0),
    "subtitle": _content_starter("subtitle", "text/plain"),
    "tagline": _content_starter("subtitle", "text/plain"),
    "itunes_subtitle": _content_starter("subtitle", "text/plain"),
    "rights": _content_starter("rights", "text/plain"),
    "copyright": _content_starter("rights", "text/plain"),
    "dc_rights": _content_starter("rights", "text/plain"),
    "info": _content_starter("info", "text/plain"),
    "feedburner_browserfriendly": _content_starter("info", "text/plain"),
    "webmaster": _start_publisher,
    "dc_publisher": _start_publisher,
    "itunes_owner": _start_itunes_owner,
    "published": _pusher("published", 1),
    "issued": _pusher("published", 1),
    "pubdate": _pusher("published", 1),
    "dcterms_issued": _pusher("published", 1),
    "updated": _pusher("updated", 1),
    "modified": _pusher("updated", 1),
    "lastbuilddate": _pusher("updated", 1),
    "dc_date": _pusher("updated", 1),
    "dcterms_modified": _pusher("updated", 1),
    "created": _pusher("created", 1),
    "dcterms_created": _pusher("created", 1),
    "expirationdate": _pusher("expired", 1),
    "category": _start_category,
    "keywords": _start_category,
    "dc_subject": _start_category,
    "media_category": _start_media_category,
    "itunes_category": _start_itunes_category,
    "tags": _pusher("tags", 1),
    "link": _start_link,
    "enclosure": _start_enclosure,
    "cloud": _start_nothing,
    "source": _start_source,
    "cc_license": _start_cc_license,
    "creativecommons_license": _pusher("license", 1),
    "guid": _start_guid,
    "id": _start_guid,
    "title": _start_title,
    "dc_title": _start_title,
    "media_title": _start_title,
    "description": _start_description,
    "dc_description": _start_description,
    "media_description": _start_description,
    "summary": _start_summary,
    "itunes_summary": _start_summary,
    "content": _start_content,
    "content_encoded": _start_content_encoded,
    "fullitem": _start_content_encoded,
    "language": _start_language,
    "dc_language": _start_language,
    "generator": _pusher("generator", 1),
    "itunes_image": _start_itunes_image,
    "itunes_link": _start_itunes_image,
    "media_group": _start_nothing,
    "media_content": _start_nothing,
    "media_thumbnail": _start_media_thumbnail,
    "media_credit": _pusher("credit", 1),
    "media_rating": _pusher("rating", 1),
    "media_restriction": _pusher("restriction", 1),
    "media_license": _pusher("license", 1),
    "media_player": _pusher("media_player", 0),
}

_END: dict[str, End] = {
    "rss": _end_nothing,
    "feed": _end_channel,
    "channel": _end_channel,
    "item": _end_item,
    "entry": _end_item,
    "image": _end_image,
    "textinput": _end_textinput,
    "author": _end_author,
    "managingeditor": _end_author,
    "dc_author": _end_author,
    "dc_creator": _end_author,
    "itunes_author": _end_author,
    "contributor": _end_contributor,
    "name": _end_name,
    "itunes_name": _end_name,
    "email": _end_email,
    "itunes_email": _end_email,
    "url": _end_url,
    "uri": _end_url,
    "homepage": _end_url,
    "width": _popper("width"),
    "height": _popper("height"),
    "subtitle": _content_ender("subtitle"),
    "tagline": _content_ender("subtitle"),
    "itunes_subtitle": _content_ender("subtitle"),
    "rights": _content_ender("rights"),
    "copyright": _content_ender("rights"),
    "dc_rights": _content_ender("rights"),
    "info": _content_ender("info"),
    "feedburner_browserfriendly": _content_ender("info"),
    "webmaster": _end_webmaster,
    "dc_publisher": _end_webmaster,
    "itunes_owner": _end_itunes_owner,
    "published": _date_ender("published", "published_parsed"),
    "issued": _date_ender("published", "published_parsed"),
    "pubdate": _date_ender("published", "published_parsed"),
    "dcterms_issued": _date_ender("published", "published_parsed"),
    "updated": _date_ender("updated", "updated_parsed"),
    "modified": _date_ender("updated", "updated_parsed"),
    "lastbuilddate": _date_ender("updated", "updated_parsed"),
    "dc_date": _date_ender("updated", "updated_parsed"),
    "dcterms_modified": _date_ender("updated", "updated_parsed"),
    "created": _popper("created"),
    "dcterms_created": _popper("created"),
    "expirationdate": _popper("expired"),
    "category": _end_category,
    "keywords": _end_category,
    "dc_subject": _end_category,
    "media_category": _end_category,
    "itunes_category": _end_category,
    "itunes_keywords": _keywords_ender("itunes_keywords", _ITUNES),
    "media_keywords": _keywords_ender("media_keywords", None),
    "tags": _end_tags,
    "link": _popper("link"),
    "enclosure": _popper("enclosure"),
    "cloud": _popper("cloud"),
    "source": _end_source,
    "cc_license": _popper("cc_license"),
    "creativecommons_license": _end_creativecommons_license,
    "guid": _end_guid,
    "id": _end_guid,
    "title": _end_title,
    "dc_title": _end_title,
    "media_title": _end_media_title,
    "description": _end_description,
    "dc_description": _end_description,
    "media_description": _end_description,
    "summary": _end_summary,
    "itunes_summary": _end_summary,
    "content": _end_content,
    "content_encoded": _end_content,
    "fullitem": _end_content,
    "language": _end_language,
    "dc_language": _end_language,
    "generator": _popper("generator"),
    "itunes_image": _popper("itunes_image"),
    "itunes_link": _popper("itunes_image"),
    "itunes_block": _popper("itunes_block"),
    "itunes_explicit": _popper("itunes_explicit"),
    "media_group": _popper("media_group"),
    "media_content": _popper("media_content"),
    "media_thumbnail": _popper("url"),
    "media_credit": _popper("credit"),
    "media_rating": _popper("rating"),
    "media_restriction": _popper("restriction"),
    "media_license": _popper("license"),
    "media_player": _popper("media_player"),
}

# Every element name feedparser has a handler for: one of these without a transcription here
# means the document goes to feedparser.
_ALL_HANDLERS = frozenset(
    n.split("_", 2)[2] for n in dir(_FeedParserMixin) if n.startswith(("_start_", "_end_"))
)


# ---------------------------------------------------------------------------------------------
# Entry point


def _refuse_dtd(*_: object) -> None:
    raise Fallback("DTD or entity declaration")


def read_feed(body: bytes, headers: Mapping[str, str]) -> Doc | None:
    """feedparser's result dict for ``body`` (hardened), or None when feedparser must read it.

    ``headers`` are the lower-cased response headers ``parse`` hands to feedparser (content
    type, content location, content language). The dict has the keys ``parse`` reads: ``feed``,
    ``entries``, ``version``, ``bozo``, ``bozo_exception``.
    """
    try:
        return _read(body, headers)
    except (Fallback, expat.ExpatError):
        return None
    except Exception as e:  # a case this transcription misses: feedparser still reads it
        log.debug("fastparse fell back on %s: %s", type(e).__name__, e)
        return None


def _read(body: bytes, headers: Mapping[str, str]) -> Doc:
    result: Doc = {"bozo": False, "entries": [], "feed": {}, "headers": dict(headers)}
    data = convert_to_utf8(result["headers"], body, result)
    if not result.get("encoding"):
        raise Fallback("encoding unknown")
    version, data, entities = replace_doctype(data)
    if entities or version:
        raise Fallback("document type declaration")
    location = headers.get("content-location", "")
    baseuri = make_safe_absolute_uri("", location) or make_safe_absolute_uri(location) or ""
    reader = _Reader(str(baseuri), headers.get("content-language"))
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    parser.StartNamespaceDeclHandler = reader.start_namespace
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.Parse(data, True)
    if not reader.entries:
        raise Fallback("no entries")
    result["feed"] = reader.feeddata
    result["entries"] = reader.entries
    result["version"] = reader.version
    return result
