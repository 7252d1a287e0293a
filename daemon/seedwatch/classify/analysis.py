"""The pure half of scoring: what the classifier needs of one text, before any stream state.

``analyze(title, text)`` tokenizes, stems and looks words up in the static table; it depends on
nothing the daemon learns, so it runs in worker processes and its result crosses the process
boundary (a small tuple of strings and ints). Document frequencies, BM25 weights and word
vectors are applied later, in the daemon, by ``Classifier.score_many``/``observe_analyzed``.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import NamedTuple

from seedwatch.classify.static import TABLE_PATH, load_index
from seedwatch.classify.text import STOP_EN, STOP_RU, stem_info, words

TITLE_REPEAT = 2  # the title states the subject; counting it twice is the usual field boost
DENSE_MIN_WORDS = 2  # known words a text needs for a static vector
DENSE_MIN_SHARE = 0.3  # share of its content words the table must know
MAX_COUNT = 65_535  # counts saturate at uint16 (BM25 has long saturated by then)


class Analysis(NamedTuple):
    """One text, analysed, in a compact form that pickles and unpickles fast (a few strings
    and byte strings rather than tuples of small objects).

    Stems are distinct, Latin first, then the ``n_cyr`` Cyrillic ones; counts are native
    uint16 (saturating), table rows native int32, as numpy reads them with frombuffer.
    """

    stems: str  # the stems, joined by spaces (no stem holds one)
    tf: bytes  # occurrences of each stem (the title counted TITLE_REPEAT times)
    surface: str  # first surface word of each stem, joined by spaces, for explanations
    n_cyr: int
    words: bytes  # distinct static-table rows of the content words
    word_tf: bytes  # their occurrences
    dense: bool  # enough known words for a static vector
    text: str = ""  # the text itself, only for backends that embed it (analyze_with_text)

    @property
    def n_stems(self) -> int:
        return len(self.tf) // 2

    def stem_list(self) -> list[str]:
        return self.stems.split(" ") if self.stems else []

    def surface_list(self) -> list[str]:
        return self.surface.split(" ") if self.surface else self.stem_list()


def analyze(title: str, text: str) -> Analysis:
    """The analysis of one item; a module-level function, so it pickles by name."""
    return _analyze(words(title) * TITLE_REPEAT + words(text), "")


def analyze_with_text(title: str, text: str) -> Analysis:
    """analyze() keeping "title. text" too: for the semantic backend, which embeds it."""
    return _analyze(
        words(title) * TITLE_REPEAT + words(text), f"{title}. {text}" if title else text
    )


def _analyze(toks: list[str], keep: str) -> Analysis:
    index = load_index(TABLE_PATH)  # positional, as load_table calls it: one cached copy
    counts: dict[str, int] = {}
    surface: dict[str, str] = {}
    cyr: list[str] = []
    known: dict[int, int] = {}
    n_content = n_known = 0
    for w in toks:
        if len(w) < 2 or w in STOP_EN or w in STOP_RU:
            continue
        s, is_cyr = stem_info(w)
        if s in counts:
            counts[s] += 1
        else:
            counts[s] = 1
            surface[s] = w
            if is_cyr:
                cyr.append(s)
        if len(w) > 2:
            n_content += 1
            i = index.get(w)
            if i is not None:
                n_known += 1
                known[i] = known.get(i, 0) + 1
    if cyr:
        cyr_set = set(cyr)
        order = [s for s in counts if s not in cyr_set] + cyr
    else:
        order = list(counts)
    return Analysis(
        stems=" ".join(order),
        tf=_counts(counts[s] for s in order),
        surface=" ".join(surface[s] for s in order),
        n_cyr=len(cyr),
        words=array("i", known).tobytes(),
        word_tf=_counts(known.values()),
        dense=n_known >= DENSE_MIN_WORDS and n_known >= DENSE_MIN_SHARE * n_content,
        text=keep,
    )


def _counts(values: Iterable[int]) -> bytes:
    return array("H", [min(v, MAX_COUNT) for v in values]).tobytes()
