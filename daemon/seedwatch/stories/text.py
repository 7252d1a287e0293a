"""Turn plain text into the hashed token sets that story matching compares.

Three views of one text:
- terms: stemmed content words (stopwords and short tokens dropped), the vocabulary of the story;
- entities: capitalized words not opening a sentence, and numbers: places, people, dates and
  amounts are what two reports of one event share even when every sentence is rewritten. They
  are folded to Latin letters without diacritics and cut to a prefix, so "Tehran"/"Teheran" do
  not match but "Путин"/"Putin", "Putin's"/"Putina" do, which gives a cheap cross-language hook;
- title terms.
Hashes are crc32 so that a fingerprint is the same in every process (str.__hash__ is salted).
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from functools import lru_cache

import Stemmer

_STEMMER_NAMES = {
    "ar": "arabic",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "nl": "dutch",
    "no": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "tr": "turkish",
    "hi": "hindi",
    "fa": "persian",
    # Kazakh, Kyrgyz, Uzbek and Ukrainian have no Snowball stemmer; their Cyrillic words
    # go through unstemmed, which only costs recall.
}

# Short function-word lists: only the words frequent enough to make two unrelated texts look
# alike. Content words are left to the entity and agreement checks.
_STOPWORDS_RAW = """
the a an and or but if of to in on at by for with from as is are was were be been being has have
had do does did not no this that these those it its he she they them his her their we our you
your i me my who whom which what when where why how all any both each more most other some such
than too very can will just said says say also after before over under about into out up down
off again then once here there would could should may might must shall new one two three first
last year years time week day days people told according per cent percent while during since
mr mrs ms monday tuesday wednesday thursday friday saturday sunday news reuters ap afp
der die das und oder aber wenn von zu im in am an auf bei mit aus als ist sind war waren sein
hat haben hatte wird werden wurde wurden nicht kein keine dies diese dieser dieses es er sie wir
ihr ich du man den dem des ein eine einer eines einem einen auch noch nach vor über unter um für
durch gegen ohne bis so wie was wer wo nur schon sehr mehr jahr jahre jahren sagte heute
el la los las un una unos unas y o pero si de del a en con por para como es son fue fueron ser
ha han había no este esta estos estas ese esa eso lo le les se su sus al que qué más muy ya
también sobre entre hasta desde años año dijo según
le la les un une des et ou mais si de du en dans sur par pour avec comme est sont était été être
a ont avait ne pas ce cette ces il elle ils elles nous vous je se sa son ses leur qui que plus
très aussi après avant au aux
i oraz lub ale jeśli z ze do w we na przy przez dla jak jest są był była było być ma mają nie
to ten ta te tego tej tym się jego jej ich który która które co już też tylko po od roku lat
il lo gli e o ma se di da in con su per come è sono era stato essere ha hanno non questo questa
che più anche dopo
ve veya ama eğer bir bu şu o da de ile için gibi olarak olan daha çok en ki ne mi
и или но если в во на с со к ко по за из от до для как что это этот эта эти тот та те он она
они мы вы я его ее её их не ни же ли бы был была было были быть есть уже также только так еще
ещё при о об про после перед над под между чтобы который которая которые которых году года лет
сообщил сообщила заявил заявила отметил отметила риа новости тасс интерфакс
"""
STOPWORDS = frozenset(_STOPWORDS_RAW.split())

_WORD = re.compile(r"\w+", re.UNICODE)

# Russian-style transliteration, plus the Kazakh, Kyrgyz, Ukrainian and Uzbek Cyrillic letters.
_CYRILLIC_TABLE = (
    "а=a б=b в=v г=g д=d е=e ё=e ж=zh з=z и=i й=i к=k л=l м=m н=n о=o п=p р=r с=s т=t "
    "у=u ф=f х=kh ц=ts ч=ch ш=sh щ=shch ъ= ы=y ь= э=e ю=yu я=ya і=i ї=i є=e ў=u қ=k ғ=g "
    "ү=u ұ=u ң=n ө=o һ=h ә=a"
)
_CYRILLIC = dict(pair.split("=") for pair in _CYRILLIC_TABLE.split(" "))


_FOLD = (("dzh", "j"), ("zh", "j"), ("kh", "h"), ("y", "i"), ("w", "v"), ("ck", "k"))


@lru_cache(maxsize=64)
def _stemmer(language: str) -> Stemmer.Stemmer | None:
    name = _STEMMER_NAMES.get(language)
    return Stemmer.Stemmer(name) if name else None


def stable_hash(token: str) -> int:
    return zlib.crc32(token.encode("utf-8"))


@lru_cache(maxsize=65_536)
def latin_key(word: str, prefix: int) -> str:
    """Lower-case Latin skeleton of a word: transliterated, without diacritics, cut short."""
    low = word.lower()
    out = "".join(_CYRILLIC.get(ch, ch) for ch in low)
    out = unicodedata.normalize("NFKD", out)
    out = "".join(ch for ch in out if not unicodedata.combining(ch))
    # English and Russian spell one name differently (Kyrgyz/Киргиз, Jalal/Джалал, Kharkiv/
    # Харків); fold the common pairs so that both sides land on one key.
    for a, b in _FOLD:
        out = out.replace(a, b)
    return out[:prefix]


def words(text: str) -> list[str]:
    return _WORD.findall(text)


# Stems of Latin-script words are folded (no diacritics) and cut to this many letters. The
# language tag is often wrong (German with few umlauts is detected as English, Turkish as
# Uzbek), and then two stemmers disagree on the same word; a common prefix still agrees
# ("bahnhöfen"/"bahnhof", "zügen"/"zug"). Measured in bench/eval_stories.py: 6 beats 5 and 7.
TERM_PREFIX = 6


@lru_cache(maxsize=32_768)
def _fold_cut(stem: str) -> str:
    if stem.isascii():
        return stem[:TERM_PREFIX]
    if not _LATIN_WORD.match(stem):
        return stem
    out = unicodedata.normalize("NFKD", stem)
    return "".join(ch for ch in out if not unicodedata.combining(ch))[:TERM_PREFIX]


_LATIN_WORD = re.compile(r"^[A-Za-z\u00c0-\u024f\u1e00-\u1eff]+$")


def terms(text: str, language: str) -> list[str]:
    """Distinct stemmed lower-case content words; stopwords and one- or two-letter words out."""
    kept = {
        t
        for t in _WORD.findall(text.lower())
        if len(t) > 2 and t not in STOPWORDS and not t.isdigit()
    }
    stemmer = _stemmer(language)
    stems = stemmer.stemWords(list(kept)) if stemmer else list(kept)
    return list({_fold_cut(t) for t in stems})


def _upper_class() -> str:
    """A regex character class of every upper-case letter in the BMP (re has no \\p{Lu})."""
    ranges: list[str] = []
    start = prev = -2
    for code in range(0x10000):
        if chr(code).isupper():
            if code != prev + 1:
                if start >= 0:
                    ranges.append(_range(start, prev))
                start = code
            prev = code
    ranges.append(_range(start, prev))
    return "[" + "".join(ranges) + "]"


def _range(a: int, b: int) -> str:
    return re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"


# A capitalized word or a number of 2+ digits (single digits are everywhere; longer ones are
# dates, counts, amounts); ``pre`` catches a sentence end right before, where a capital says
# nothing.
_ENTITY = re.compile(
    r"(?P<pre>[.!?:;\"«»“”„\n]\s*)?(?<!\w)(?:(?P<num>\d{2,})|(?P<cap>"
    + _upper_class()
    + r"\w+))(?!\w)"
)


def entities(text: str, prefix: int) -> list[str]:
    """Latin keys of proper-noun-like words and of numbers, in order of appearance."""
    out: list[str] = []
    for m in _ENTITY.finditer(text):
        num = m.group("num")
        if num is not None:
            out.append(num.lstrip("0") or "0")
            continue
        if m.group("pre") is not None or m.start() == 0:
            continue
        tok = m.group("cap")
        if tok.lower() not in STOPWORDS:
            out.append(latin_key(tok, prefix))
    return out


_SCRIPTS = (
    ("latin", re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]")),
    ("cyrillic", re.compile(r"[\u0400-\u052f]")),
    ("arabic", re.compile(r"[\u0600-\u06ff\u0750-\u077f]")),
    ("greek", re.compile(r"[\u0370-\u03ff]")),
    ("cjk", re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")),
)


def script(sample: str) -> str:
    """The dominant script of ``sample``: latin, cyrillic, arabic, greek, cjk or other."""
    counts = [(len(rx.findall(sample)), name) for name, rx in _SCRIPTS]
    n, name = max(counts)
    return name if n else "other"
