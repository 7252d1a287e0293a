"""The pure half of scoring: what the classifier needs of one text, before any stream state.

``analyze(title, text)`` tokenizes, stems and looks words up in the static table; it depends on
nothing the daemon learns, so it runs in worker processes and its result crosses the process
boundary (a small tuple of strings and ints). Document frequencies, BM25 weights and word
vectors are applied later, in the daemon, by ``Classifier.score_many``/``observe_analyzed``.
"""

from __future__ import annotations

from typing import NamedTuple

from seedwatch.classify.static import load_index
from seedwatch.classify.text import STOP_EN, STOP_RU, stem_info, words

TITLE_REPEAT = 2  # the title states the subject; counting it twice is the usual field boost
DENSE_MIN_WORDS = 2  # known words a text needs for a static vector
DENSE_MIN_SHARE = 0.3  # share of its content words the table must know


class Analysis(NamedTuple):
    """One text, analysed. Stems are distinct, Latin first, then the ``n_cyr`` Cyrillic ones."""

    stems: tuple[str, ...]
    tf: tuple[int, ...]  # occurrences of each stem (title counted TITLE_REPEAT times)
    surface: tuple[str, ...]  # first surface word of each stem, for explanations
    n_cyr: int
    words: tuple[int, ...]  # distinct static-table rows of the content words
    word_tf: tuple[int, ...]  # their occurrences
    dense: bool  # enough known words for a static vector
    text: str = ""  # the text itself, only for backends that embed it (analyze_with_text)


def analyze(title: str, text: str) -> Analysis:
    """The analysis of one item; a module-level function, so it pickles by name."""
    return _analyze(words(title) * TITLE_REPEAT + words(text), "")


def analyze_with_text(title: str, text: str) -> Analysis:
    """analyze() keeping "title. text" too: for the semantic backend, which embeds it."""
    return _analyze(
        words(title) * TITLE_REPEAT + words(text), f"{title}. {text}" if title else text
    )


def _analyze(toks: list[str], keep: str) -> Analysis:
    index = load_index()
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
        stems=tuple(order),
        tf=tuple(counts[s] for s in order),
        surface=tuple(surface[s] for s in order),
        n_cyr=len(cyr),
        words=tuple(known),
        word_tf=tuple(known.values()),
        dense=n_known >= DENSE_MIN_WORDS and n_known >= DENSE_MIN_SHARE * n_content,
        text=keep,
    )
