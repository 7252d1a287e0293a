"""Text normalization shared by queries and item text: folding, tokens, stems, skeletons.

Both sides of a match go through the same functions, so whatever they do (even a lossy
transliteration skeleton) only has to be consistent, not linguistically perfect.

    raw text --NFC, casefold, translate--> folded text --TOKEN_RE--> words (+ hyphen parts)
    word --Snowball (by script)--> stem          word --romanize, skeleton--> Latin skeleton
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import Stemmer

# Apostrophes and modifier letters used for the Uzbek o‘ / g‘ (U+02BB) and for elisions; the
# modifier letters are category Lm, so \w would otherwise glue them into words unpredictably.
APOSTROPHES = "'’‘ʻʼ`´′ʹ‛"
# Word-joining hyphens. En and em dashes separate words instead ("Москва—Ташкент" is two words
# next to each other, not one compound).
HYPHENS = "-‐‑‒−﹣－"
SPACE_DASHES = "–—―"


def _build_fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    # Precomposed Latin letters with diacritics fold to their base letters. Cyrillic is left
    # alone on purpose: й, ў, ї are letters of their own, not и/у/і with an accent.
    for start, end in ((0x00C0, 0x024F), (0x1E00, 0x1EFF)):
        for cp in range(start, end + 1):
            ch = chr(cp)
            decomposed = unicodedata.normalize("NFD", ch)
            base = decomposed[0]
            if len(decomposed) > 1 and base.isascii() and base.isalpha():
                table[cp] = base.lower()
    extra = {
        "ё": "е",
        "ı": "i",
        "ø": "o",
        "đ": "d",
        "ł": "l",
        "æ": "ae",
        "œ": "oe",
        "ə": "a",
        "ħ": "h",
        "ŧ": "t",
        "ŀ": "l",
        "ſ": "s",
        "ß": "ss",
    }
    for src, dst in extra.items():
        table[ord(src)] = dst
    for ch in APOSTROPHES:
        table[ord(ch)] = "'"
    for ch in HYPHENS:
        table[ord(ch)] = "-"
    for ch in SPACE_DASHES:
        table[ord(ch)] = " "
    # Combining marks left after NFC (stress accents in Russian, the dot of a casefolded İ) and
    # invisible joiners/soft hyphens inside words are dropped.
    for cp in range(0x0300, 0x0370):
        table[cp] = None
    for cp in (0x00AD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF):
        table[cp] = None
    return table


_FOLD_TABLE = _build_fold_table()

# A word: letters/digits, optionally joined by apostrophes or hyphens to more letters/digits.
# Combining marks and soft hyphens may sit inside a word (they are removed by folding).
_WC = r"(?:[^\W_]|[\u0300-\u036f\u00ad\u200b-\u200d\u2060])"
_JOIN = "[" + re.escape(APOSTROPHES + HYPHENS) + "]"
TOKEN_RE = re.compile(rf"[^\W_]{_WC}*(?:{_JOIN}[^\W_]{_WC}*)*")
# Without combining marks or invisible joiners in the text, TOKEN_RE is exactly this simpler
# pattern, which runs about a third faster (tokenizing is most of what matching costs).
_PLAIN_TOKEN_RE = re.compile(rf"[^\W_]+(?:{_JOIN}[^\W_]+)*")
_IN_WORD_MARKS = re.compile(r"[\u0300-\u036f\u00ad\u200b-\u200d\u2060]")
_HYPHEN_RE = re.compile("[" + re.escape(HYPHENS) + "]")


def tokens(text: str) -> list[str]:
    """``TOKEN_RE.findall(text)``, faster."""
    if _IN_WORD_MARKS.search(text) is None:
        return _PLAIN_TOKEN_RE.findall(text)
    return TOKEN_RE.findall(text)


def token_matches(text: str) -> Iterator[re.Match[str]]:
    """``TOKEN_RE.finditer(text)``, faster."""
    if _IN_WORD_MARKS.search(text) is None:
        return _PLAIN_TOKEN_RE.finditer(text)
    return TOKEN_RE.finditer(text)


_APOS_RE = re.compile("[" + re.escape(APOSTROPHES) + "]")


def fold(text: str) -> str:
    """Case-folded, ё→е, Latin diacritics stripped, quotes/dashes normalized."""
    return unicodedata.normalize("NFC", text).casefold().translate(_FOLD_TABLE)


def _is_cyrillic(ch: str) -> bool:
    return "\u0400" <= ch <= "\u052f" or "\u1c80" <= ch <= "\u1c8f" or "\ua640" <= ch <= "\ua69f"


def script_of(word: str) -> str:
    """'cyrl', 'latn' or '' (digits, other scripts), judged by the first letter."""
    for ch in word:
        if ch.isalpha():
            if _is_cyrillic(ch):
                return "cyrl"
            if ch.isascii() or "\u00c0" <= ch <= "\u024f":
                return "latn"
            return ""
    return ""


def _clean_part(part: str) -> str:
    """One hyphen part of a folded raw token: English possessive 's dropped, apostrophes removed."""
    if "'" in part:
        if part.endswith("'s") and script_of(part) == "latn":
            part = part[:-2]
        part = part.replace("'", "")
    return part


@dataclass(frozen=True)
class RawToken:
    """One word of the source text as folded words: its hyphen parts and their joined form."""

    parts: tuple[str, ...]
    part_spans: tuple[tuple[int, int], ...]  # char offsets of each part within the raw token
    joined: str | None  # set when there are 2+ parts


_RAW_CACHE: dict[str, RawToken] = {}
_CACHE_MAX = 60_000  # entries per cache: bounded memory (see rules/match.py)


def split_raw(raw: str) -> RawToken:
    """Fold one TOKEN_RE match into its parts (cached: vocabularies repeat a lot)."""
    hit = _RAW_CACHE.get(raw)
    if hit is not None:
        return hit
    if _HYPHEN_RE.search(raw) is None:
        word = _clean_part(fold(raw))
        tok = RawToken((word,), ((0, len(raw)),), None) if word else RawToken((), (), None)
    else:
        parts: list[str] = []
        spans: list[tuple[int, int]] = []
        pos = 0
        for piece in _HYPHEN_RE.split(raw):
            word = _clean_part(fold(piece))
            if word:
                parts.append(word)
                spans.append((pos, pos + len(piece)))
            pos += len(piece) + 1
        joined = "".join(parts) if len(parts) > 1 else None
        tok = RawToken(tuple(parts), tuple(spans), joined)
    if len(_RAW_CACHE) >= _CACHE_MAX:
        _RAW_CACHE.clear()
    _RAW_CACHE[raw] = tok
    return tok


def words(text: str) -> list[str]:
    """The folded words of ``text`` in order (hyphen parts separately, no joined forms)."""
    out: list[str] = []
    for m in TOKEN_RE.finditer(unicodedata.normalize("NFC", text)):
        out.extend(split_raw(m.group()).parts)
    return out


_STEMMERS = {"latn": Stemmer.Stemmer("english"), "cyrl": Stemmer.Stemmer("russian")}


@lru_cache(maxsize=_CACHE_MAX)
def stem(word: str) -> str:
    """Snowball stem of a folded word: English for Latin script, Russian for Cyrillic."""
    stemmer = _STEMMERS.get(script_of(word))
    if stemmer is None:
        return word
    result: str = stemmer.stemWord(word)
    return result or word


# Cyrillic (Russian, Kazakh, Kyrgyz, Uzbek, Tajik letters) -> a BGN/PCGN-like Latin spelling.
# ё is already е here (folding); the skeleton makes "yo" and "e" agree instead.
_ROMAN = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ж": "zh",
    "з": "z",
    "и": "i",
    "й": "y",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "shch",
    "ъ": "",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": "yu",
    "я": "ya",
    "ә": "a",
    "ғ": "g",
    "қ": "q",
    "ң": "n",
    "ө": "o",
    "ұ": "u",
    "ү": "u",
    "һ": "h",
    "і": "i",
    "ў": "o",
    "ҳ": "h",
    "ӣ": "i",
    "ҷ": "j",
    "җ": "j",
    "ӯ": "u",
    "ї": "yi",
    "є": "ye",
    "ґ": "g",
    "ј": "j",
    "љ": "lj",
    "њ": "nj",
    "ћ": "c",
    "ђ": "dj",
    "џ": "dzh",
}
_ROMAN_TABLE = str.maketrans(_ROMAN)

# Applied in order to a lower-case Latin spelling; each step merges spellings that news
# outlets use for the same Cyrillic letters (Rakhmon/Rahmon, Zhaparov/Japarov, Yo/Io/E ...).
_SKELETON_STEPS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pat), rep)
    for pat, rep in (
        (r"[^a-z]", ""),
        (r"shch|sch", "sh"),
        (r"dzh|dj|zh", "j"),
        (r"kh", "h"),
        (r"tch", "ch"),
        (r"tz", "ts"),
        (r"ck", "k"),
        (r"q", "k"),
        (r"x", "ks"),
        (r"w", "v"),
        (r"ph", "f"),
        (r"y", "i"),
        (r"(.)\1+", r"\1"),
        (r"io|ie", "e"),
        (r"(.)\1+", r"\1"),
    )
)


@lru_cache(maxsize=_CACHE_MAX)
def skeleton(latin: str) -> str:
    """A lossy Latin key that a romanized Cyrillic word and its news spellings share."""
    s = latin.lower()
    for pat, rep in _SKELETON_STEPS:
        s = pat.sub(rep, s)
    return s


def romanize(word: str) -> str:
    """A folded Cyrillic word spelled in Latin letters (unknown letters dropped)."""
    return word.translate(_ROMAN_TABLE)
