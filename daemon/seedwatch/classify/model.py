"""Score items against seed topics: BM25 term overlap plus static word vectors, calibrated.

For each topic the raw similarity of an item is

    raw = 1/2 * max over seed documents of sim(item, doc) + 1/2 * sim(item, topic centroid)
          - COUNTER_WEIGHT * max over counter-examples of sim(item, counter)

where sim mixes a dense cosine (IDF-weighted mean of static word vectors, doc and best passage)
with a BM25 cosine over stems. The raw value is turned into a z-score against how ordinary news
scores on the same topic (the shipped background sample, then the observed stream), and the z
into 0..1 with a fixed logistic, so the shipped threshold means "this far above ordinary news"
whatever the number of seeds.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from seedwatch.classify.seeds import SeedDoc, SeedSet, Topic
from seedwatch.classify.static import StaticTable, load_table
from seedwatch.classify.text import STOP_EN, STOP_RU, stems, words
from seedwatch.errors import SeedError
from seedwatch.types import Score

log = logging.getLogger(__name__)

Vec = npt.NDArray[np.float32]

BACKENDS = ("lexical", "words")
DEFAULT_THRESHOLD = 0.5
# z (in background spreads above the background median) that maps to score 0.5, and the
# logistic slope; fixed constants so that the score means the same for every seed set.
Z_MID = 1.0
Z_SLOPE = 1.2
DENSE_WEIGHT = 0.3  # share of the dense cosine in sim when both sides have word vectors
COUNTER_WEIGHT = 0.5
PASSAGE_WEIGHT = 0.5  # share of the best passage (vs the whole document) in a document's sim
CENTROID_WEIGHT = 1.0  # share of the topic centroid (vs the nearest document) in raw
TITLE_REPEAT = 2
CONSENSUS = 1.0
KNN = 3  # nearest seed documents averaged (at most a third of them)
K1 = 1.2
MIN_SPREAD = 0.01
STREAM_CAP = 2000  # observed items kept for calibration
REFIT_EVERY = 500


@dataclass(frozen=True)
class Features:
    """What scoring needs of one text."""

    lex: dict[str, float]  # stem -> unit-normalized BM25 weight
    dense: Vec | None  # unit vector, None when too few words are in the table
    surface: dict[str, str]  # stem -> first surface word, for explanations


@dataclass
class _Part:
    """A seed document (or the centroid) prepared for fast scoring."""

    name: str
    passages: tuple[str, ...]
    lex: Vec  # (1 + n_passages, n_cols): row 0 the whole document
    dense: Vec | None  # (1 + n_passages, dims)


class _Stats:
    """Document frequencies: a background prior plus what the stream has shown."""

    def __init__(self, table: StaticTable | None) -> None:
        self.prior: dict[str, float] = {}
        self.prior_n = 0.0
        if table is not None:
            self.prior_n = float(table.ndocs)
            for w, d in zip(table.words, table.df.tolist(), strict=True):
                for s in stems([w]):
                    self.prior[s] = max(self.prior.get(s, 0.0), d)
        self.stream: Counter[str] = Counter()
        self.stream_n = 0

    def idf(self, stem: str) -> float:
        n = self.prior_n + self.stream_n
        d = self.prior.get(stem, 0.0) + self.stream.get(stem, 0)
        return math.log((n + 1.0) / (d + 0.5)) if n else 1.0


class Classifier:
    """Scores items against the topics of a SeedSet; see the module docstring."""

    def __init__(
        self, seeds: SeedSet, *, threshold: float, backend: str, table: StaticTable | None
    ) -> None:
        self.seeds = seeds
        self.threshold = threshold
        self.backend = backend
        self._table = table
        self._stats = _Stats(table)
        self._stream_texts: list[tuple[str, str]] = []
        self._since_refit = 0
        self._background: list[tuple[str, str]] = (
            [("", t) for t in table.background] if table is not None else []
        )
        self._widf: npt.NDArray[np.float64] | None = None
        self._word_df: Counter[str] = Counter()
        self._fit()

    @classmethod
    def build(
        cls, seeds: SeedSet, *, threshold: float | None = None, backend: str = "lexical"
    ) -> Classifier:
        """Prepare ``seeds`` for scoring. backend: "lexical" (terms + static word vectors,
        the default) or "words" (terms only)."""
        if backend not in BACKENDS:
            raise SeedError(f"unknown classifier backend {backend!r}; known: {', '.join(BACKENDS)}")
        if not seeds.topics:
            raise SeedError("no seed topic to score against")
        table = load_table() if backend == "lexical" else None
        return cls(
            seeds,
            threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
            backend=backend,
            table=table,
        )

    # -- features -------------------------------------------------------------------------

    def features(self, title: str, text: str) -> Features:
        # The title states the subject; counting it twice is the usual field boost.
        toks = words(title) * TITLE_REPEAT + words(text)
        counts: Counter[str] = Counter()
        surface: dict[str, str] = {}
        for w, s in zip(*_stem_pairs(toks), strict=True):
            counts[s] += 1
            surface.setdefault(s, w)
        length = sum(counts.values()) or 1
        norm_len = 0.25 + 0.75 * length / 60.0
        lex = {
            s: (tf * (K1 + 1) / (tf + K1 * norm_len)) * self._stats.idf(s)
            for s, tf in counts.items()
        }
        n = math.sqrt(sum(v * v for v in lex.values())) or 1.0
        lex = {s: v / n for s, v in lex.items()}
        return Features(lex, self._dense(toks), surface)

    def _dense(self, toks: Sequence[str]) -> Vec | None:
        if self._table is None or self._widf is None:
            return None
        index = self._table.index
        content = [w for w in toks if len(w) > 2 and w not in STOP_EN and w not in STOP_RU]
        ids = [index[w] for w in content if w in index]
        if len(ids) < 2 or len(ids) < 0.3 * len(content):
            return None
        arr = np.fromiter(ids, dtype=np.int64, count=len(ids))
        weights = self._widf[arr].astype(np.float32)
        vec = weights @ self._table.vectors[arr]
        norm = float(np.linalg.norm(vec))
        return (vec / norm).astype(np.float32) if norm > 0 else None

    # -- fitting --------------------------------------------------------------------------

    def _fit(self) -> None:
        """(Re)build the topic matrices and calibration from the current statistics."""
        if self._table is not None:
            n = self._stats.prior_n + self._stats.stream_n
            self._widf = np.array(
                [
                    math.log((n + 1.0) / (self._table.df[i] + self._word_df.get(w, 0) + 0.5))
                    for i, w in enumerate(self._table.words)
                ],
                dtype=np.float64,
            )
        pool = (
            self._stream_texts
            if len(self._stream_texts) >= 200
            else (self._background + self._stream_texts)
        )
        self._topics = [_TopicModel(t, self) for t in self.seeds.topics]
        feats = [self.features(t, x) for t, x in pool]
        for tm in self._topics:
            tm.calibrate(feats)

    def observe(self, title: str, text: str) -> None:
        """Learn document frequencies and the background score spread from the stream."""
        self._observe(title, text)
        self._since_refit += 1
        if self._since_refit >= REFIT_EVERY or self._stats.stream_n == 200:
            self._fit()
            self._since_refit = 0

    def observe_many(self, items: Iterable[tuple[str, str]]) -> None:
        """observe() each (title, text) then refit once: for batches such as ``seedwatch score``."""
        for title, text in items:
            self._observe(title, text)
        self._since_refit = 0
        self._fit()

    def _observe(self, title: str, text: str) -> None:
        toks = words(title) + words(text)
        self._stats.stream.update(set(_stem_pairs(toks)[1]))
        self._stats.stream_n += 1
        self._word_df.update(set(toks))
        self._stream_texts.append((title, text))
        if len(self._stream_texts) > STREAM_CAP:
            del self._stream_texts[: len(self._stream_texts) - STREAM_CAP]

    # -- scoring --------------------------------------------------------------------------

    def score(self, title: str, text: str) -> Score:
        f = self.features(title, text)
        best: Score | None = None
        for tm in self._topics:
            s = tm.score(f, self.threshold)
            if best is None or s.score > best.score:
                best = s
        assert best is not None  # build() refuses an empty SeedSet
        return best


def _stem_pairs(toks: Sequence[str]) -> tuple[list[str], list[str]]:
    """(surface words, stems) for the content words of ``toks``, aligned."""
    kept = [w for w in toks if len(w) >= 2 and w not in STOP_EN and w not in STOP_RU]
    return kept, stems(kept)


class _TopicModel:
    def __init__(self, topic: Topic, clf: Classifier) -> None:
        self.name = topic.name
        docs = [
            (d, clf.features("", d.text), [clf.features("", p) for p in d.passages])
            for d in topic.seeds
        ]
        counters = [
            (d, clf.features("", d.text), [clf.features("", p) for p in d.passages])
            for d in topic.counter
        ]
        vocab: dict[str, int] = {}
        for _, whole, parts in docs + counters:
            for f in [whole, *parts]:
                for s in f.lex:
                    vocab.setdefault(s, len(vocab))
        self.vocab = vocab
        self.parts = [self._part(d, whole, parts) for d, whole, parts in docs]
        self.counter = [self._part(d, whole, parts) for d, whole, parts in counters]
        self.centroid = self._centroid([whole for _, whole, _ in docs])
        self.mid = 0.0
        self.spread = 1.0

    def _lex_rows(self, feats: Sequence[Features]) -> Vec:
        m = np.zeros((len(feats), len(self.vocab)), dtype=np.float32)
        for r, f in enumerate(feats):
            for s, v in f.lex.items():
                m[r, self.vocab[s]] = v
        return m

    def _dense_rows(self, feats: Sequence[Features]) -> Vec | None:
        if feats[0].dense is None:
            return None
        dims = feats[0].dense.shape[0]
        return np.stack(
            [f.dense if f.dense is not None else np.zeros(dims, np.float32) for f in feats]
        )

    def _part(self, doc: SeedDoc, whole: Features, parts: list[Features]) -> _Part:
        feats = [whole, *parts]
        return _Part(doc.name, doc.passages, self._lex_rows(feats), self._dense_rows(feats))

    def _centroid(self, wholes: list[Features]) -> _Part | None:
        if len(wholes) < 2:
            return None
        rows = self._lex_rows(wholes)
        # Words several seeds share say what the topic is; a word of one seed says what that
        # seed's own event was.
        share = (rows > 0).mean(axis=0, keepdims=True) ** CONSENSUS
        lex = rows.mean(axis=0, keepdims=True) * share
        lex /= max(float(np.linalg.norm(lex)), 1e-9)
        dense_list = [f.dense for f in wholes if f.dense is not None]
        dense = None
        if dense_list:
            d = np.mean(dense_list, axis=0, keepdims=True).astype(np.float32)
            dense = d / max(float(np.linalg.norm(d)), 1e-9)
        return _Part("", (), lex, dense)

    def _item_lex(self, f: Features) -> tuple[npt.NDArray[np.int64], Vec]:
        cols = [(self.vocab[s], v) for s, v in f.lex.items() if s in self.vocab]
        if not cols:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        idx, val = zip(*cols, strict=True)
        return np.array(idx, np.int64), np.array(val, np.float32)

    @staticmethod
    def _sims(part: _Part, f: Features, idx: npt.NDArray[np.int64], val: Vec) -> Vec:
        """sim of the item to each row of ``part`` (row 0: whole document)."""
        lex = part.lex[:, idx] @ val if len(idx) else np.zeros(part.lex.shape[0], np.float32)
        if part.dense is None or f.dense is None:
            return lex.astype(np.float32)
        dense = part.dense @ f.dense
        has = np.abs(part.dense).sum(axis=1) > 0
        mixed = DENSE_WEIGHT * dense + (1 - DENSE_WEIGHT) * lex
        return np.where(has, mixed, lex).astype(np.float32)

    @staticmethod
    def _doc_sim(sims: Vec) -> tuple[float, int]:
        if sims.shape[0] == 1:
            return float(sims[0]), -1
        best = int(np.argmax(sims[1:]))
        return (
            (1 - PASSAGE_WEIGHT) * float(sims[0]) + PASSAGE_WEIGHT * float(sims[1 + best]),
            best,
        )

    def raw(self, f: Features) -> tuple[float, int, int]:
        """(raw similarity, index of the nearest seed document, its nearest passage)."""
        idx, val = self._item_lex(f)
        sims = [self._doc_sim(self._sims(part, f, idx, val)) for part in self.parts]
        order = sorted(range(len(sims)), key=lambda i: -sims[i][0])
        best_doc, best_pass = order[0], sims[order[0]][1]
        top = order[: max(1, min(KNN, len(order) // 3))]
        value = sum(sims[i][0] for i in top) / len(top)
        if self.centroid is not None:
            # A centroid of two unlike documents is neither; it earns weight with numbers.
            n = len(self.parts)
            w = CENTROID_WEIGHT * max(0, n - 2) / (n + 3)
            value = (1 - w) * value + w * float(self._sims(self.centroid, f, idx, val)[0])
        if self.counter:
            neg = max(self._doc_sim(self._sims(p, f, idx, val))[0] for p in self.counter)
            value -= COUNTER_WEIGHT * max(0.0, neg)
        return value, best_doc, best_pass

    def calibrate(self, background: Sequence[Features]) -> None:
        if not background:
            return
        raws = np.array([self.raw(f)[0] for f in background])
        self.mid = float(np.median(raws))
        # The lower half of the spread: relevant items sit in the upper tail of a stream and
        # would inflate any two-sided measure.
        self.spread = max(MIN_SPREAD, self.mid - float(np.quantile(raws, 0.16)))

    def score(self, f: Features, threshold: float) -> Score:
        raw, doc_i, pass_i = self.raw(f)
        z = (raw - self.mid) / self.spread
        value = 1.0 / (1.0 + math.exp(-Z_SLOPE * (z - Z_MID)))
        part = self.parts[doc_i]
        passage = (
            part.passages[pass_i] if pass_i >= 0 else (part.passages[0] if part.passages else None)
        )
        return Score(
            score=round(value, 6),
            topic=self.name,
            relevant=value >= threshold,
            nearest_seed=part.name,
            passage=passage,
            terms=self._terms(f, part),
        )

    def _terms(self, f: Features, part: _Part, top: int = 6) -> tuple[str, ...]:
        row = part.lex[0]
        contrib = [
            (v * float(row[self.vocab[s]]), s)
            for s, v in f.lex.items()
            if s in self.vocab and row[self.vocab[s]] > 0
        ]
        contrib.sort(reverse=True)
        return tuple(f.surface.get(s, s) for _, s in contrib[:top])
