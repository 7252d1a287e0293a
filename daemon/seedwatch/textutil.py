"""Plain-text helpers shared by the pure stages: HTML to text, Unicode cleanup, language by script.

Everything here is total: any ``str`` in (lone surrogates, NULs, broken markup included), valid
UTF-8-encodable text out, never an exception.
"""

from __future__ import annotations

import re
import unicodedata
from html import unescape
from html.parser import HTMLParser

# C0/C1 controls except tab and newline, lone surrogates, and the two non-characters that
# some XML and database layers reject. Tabs become spaces later when whitespace collapses.
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"[^\S\n]+")
_ANY_WS = re.compile(r"\s+")

# Elements whose content is never readable text.
_SKIP = frozenset({"script", "style", "template", "noscript", "head", "title"})
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody",
        "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "wbr"})

# Feeds often escape HTML twice; a first pass then leaves tags as text.
_LEFTOVER_TAG = re.compile(
    r"</?(?:p|br|div|span|a|b|i|em|strong|img|ul|ol|li|h[1-6]|table|tr|td|blockquote|script"
    r"|style|iframe|figure|pre|code)\b[^<>]{0,500}>",
    re.IGNORECASE,
)
# Tags that must never survive as text, even in plain text that a careless renderer might
# paste into HTML: the opening "<" is replaced by a look-alike.
_DANGEROUS_TAG = re.compile(
    r"<(?=\s*/?\s*(?:script|style|iframe|object|embed|svg|math|frame|meta|link|base)"
    r"|\s*!|\s*\?)",
    re.IGNORECASE,
)


def clean_text(text: str) -> str:
    """``text`` without control characters, lone surrogates or non-characters, in NFC."""
    text = _BAD_CHARS.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))
    text = unicodedata.normalize("NFC", text)
    # NFC of valid text never yields controls, but keep the invariant explicit and cheap.
    return _BAD_CHARS.sub("", text)


def collapse_lines(text: str) -> str:
    """Runs of spaces become one space; blank lines go; each line is stripped."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def one_line(text: str) -> str:
    """All whitespace, newlines included, collapsed to single spaces."""
    return _ANY_WS.sub(" ", text).strip()


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            if tag not in _VOID:
                self._skip_depth += 1
        elif tag in _BLOCK:
            self.parts.append("\n")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and not self._skip_depth:
                self.parts.append(f" {alt} ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <script/> opens nothing; treat every self-closing tag as void.
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


_TAG_FALLBACK = re.compile(r"<[^>]*>")
_SKIP_FALLBACK = re.compile(
    r"<(script|style|template|noscript)\b.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL
)


def _one_pass(html: str) -> str:
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
        return "".join(parser.parts)
    except Exception:  # html.parser still has crash paths on odd "<!" markup
        stripped = _TAG_FALLBACK.sub(" ", _SKIP_FALLBACK.sub(" ", html))
        return unescape(stripped)


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML fragment (or plain text): never raises.

    Entities are decoded, block elements become line breaks, scripts and styles vanish,
    whitespace collapses, control characters and lone surrogates go, and the result is NFC.
    """
    text = clean_text(html)
    if "<" not in text and "&" not in text:
        return collapse_lines(text)
    text = _one_pass(text)
    for _ in range(2):
        if len(_LEFTOVER_TAG.findall(text, 0, 200_000)) < 2 and not _LEFTOVER_TAG.match(
            text.lstrip()
        ):
            break
        text = _one_pass(text)
    text = _DANGEROUS_TAG.sub("\u2039", text)
    return collapse_lines(clean_text(text))


# ---------------------------------------------------------------------------------------------
# Language by script and a few distinctive letters or words.

_CYRILLIC_LANGS = frozenset(
    {"ru", "kk", "ky", "uk", "be", "bg", "mk", "sr", "tg", "mn", "tt", "ba"}
)
_KK_ONLY = frozenset("әұһіӘҰҺІ")
_KK_UZ = frozenset("ғқҒҚ")
_UZ_ONLY = frozenset("ўҳЎҲ")
_KY = frozenset("ңөүҢӨҮ")
_UK_ONLY = frozenset("їєґЇЄҐ")
_UZ_LATIN_STRONG = re.compile(r"[OoGg][\u02bb\u02bc]")
_UZ_LATIN_WEAK = re.compile(r"\b[a-z]*[og]['`\u2018\u2019][a-z]", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+")
_EN_STOP = frozenset(
    re.findall(
        r"\w+",
        "the of and to in is for on with that by as at from was are be it an this has have said "
        "will its after over not but who new into than more their been were his her they",
    )
)
_UZ_STOP = frozenset(
    re.findall(r"\S+", "va bilan uchun ham bu esa emas yil haqida boʻyicha boʻlib")
)
_HINT = re.compile(r"^([A-Za-z]{2,3})(?:[-_].*)?$")


def normalize_hint(hint: str | None) -> str | None:
    """The primary subtag of a language tag ("en-US" -> "en"), or None when it is not one."""
    if not hint:
        return None
    match = _HINT.match(hint.strip())
    return match.group(1).lower() if match else None


# Letter ranges per script; approximate (a few symbols fall inside) but counted in C, not per
# character in Python, which matters for 1 MB item bodies.
_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(ranges))
    for name, ranges in (
        ("latin", r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]"),
        ("cyrillic", r"[\u0400-\u0482\u048a-\u052f]"),
        ("greek", r"[\u0370-\u03ff]"),
        ("hebrew", r"[\u05d0-\u05ea]"),
        ("arabic", r"[\u0620-\u064a\u066e-\u06d3\u0750-\u077f]"),
        ("armenian", r"[\u0531-\u0587]"),
        ("georgian", r"[\u10a0-\u10ff]"),
        ("thai", r"[\u0e01-\u0e4e]"),
        ("kana", r"[\u3040-\u30ff]"),
        ("hangul", r"[\uac00-\ud7af\u1100-\u11ff]"),
        ("han", r"[\u3400-\u4dbf\u4e00-\u9fff]"),
    )
)
# Any letter of the scripts after Latin and Cyrillic: most news is neither, and counting each
# script is a pass over the sample, so the rare ones are counted only when one is present.
_OTHER_SCRIPT = re.compile(
    "[" + "".join(pattern.pattern[1:-1] for _, pattern in _SCRIPTS[2:]) + "]"
)
_ASCII_LETTER = re.compile(r"[A-Za-z]")
SAMPLE_CHARS = 4_000


_SCRIPT_LANG = {
    "greek": "el",
    "hebrew": "he",
    "armenian": "hy",
    "georgian": "ka",
    "thai": "th",
    "hangul": "ko",
    "kana": "ja",
}


def _script_counts(sample: str) -> dict[str, int]:
    """Letters per script (in _SCRIPTS order, which breaks ties)."""
    if sample.isascii():
        return {"latin": len(_ASCII_LETTER.findall(sample))}
    scripts = _SCRIPTS if _OTHER_SCRIPT.search(sample) else _SCRIPTS[:2]
    return {name: len(pattern.findall(sample)) for name, pattern in scripts}


def _cyrillic_language(text: str, letters: int, hint: str | None) -> str:
    def share(chars: frozenset[str]) -> int:
        return sum(text.count(ch) for ch in chars)

    # One stray letter in a long Russian text (a quoted name) must not flip it: 1 % or more.
    def enough(count: int) -> bool:
        return count > 0 and count * 100 >= letters

    uz, kk, kk_uz, ky, uk = (share(s) for s in (_UZ_ONLY, _KK_ONLY, _KK_UZ, _KY, _UK_ONLY))
    if enough(uz) and uz >= kk:
        return "uz"
    if enough(uk) and kk_uz == 0 and uk >= share(frozenset("әұһӘҰҺ")):
        return "uk"
    if enough(kk + kk_uz):
        return "kk"
    if enough(ky):
        return "ky"
    # No distinctive letter: a short text may still be Kazakh or Kyrgyz written without them.
    if hint in _CYRILLIC_LANGS and letters < 200:
        return hint
    return "ru"


def detect_language(text: str, hint: str | None = None) -> str:
    """A BCP-47 primary tag for ``text``: en, ru, kk, ky, uz, ... or the hint, or "und"."""
    hint = normalize_hint(hint)
    sample = text[:SAMPLE_CHARS]
    script, letters = max(_script_counts(sample).items(), key=lambda kv: kv[1])
    if not letters:
        return hint or "und"
    if script == "cyrillic":
        return _cyrillic_language(sample, letters, hint)
    if script == "latin":
        lowered = sample.lower()
        words = _WORD.findall(lowered)
        english = sum(map(_EN_STOP.__contains__, words))
        uzbek = sum(map(_UZ_STOP.__contains__, words))
        # "o'clock" is English; Uzbek writes oʻ/gʻ (U+02BB) or, sloppily, o'/g' in most words.
        weak = len(_UZ_LATIN_WEAK.findall(sample))
        if _UZ_LATIN_STRONG.search(sample) or uzbek >= 2 or (weak >= 2 and weak > english):
            return "uz"
        ascii_letters = letters if sample.isascii() else len(_ASCII_LETTER.findall(sample))
        if ascii_letters >= 0.97 * letters and english and english * 25 >= len(words):
            return "en"
        if hint and hint not in _CYRILLIC_LANGS:
            return hint
        return "und"
    if script in _SCRIPT_LANG:
        return _SCRIPT_LANG[script]
    if script == "arabic":
        return hint if hint in {"ar", "fa", "ur", "ps", "ug", "ku", "sd"} else "ar"
    if script == "han":
        return hint if hint in {"zh", "ja", "ko"} else "zh"
    return hint or "und"
