"""Score items against seed topics: BM25 term overlap plus static word vectors, calibrated.

For one topic, sim(item, doc) mixes the cosine of IDF-weighted static word vectors (a table
derived from all-MiniLM-L6-v2, see static.py) with a BM25 cosine over stems, each for the whole
document and its best passage. The raw similarity is

    raw = (1 - w) * mean of the nearest seed documents' sims + w * sim(item, topic centroid)
          - COUNTER_WEIGHT * nearest counter-example's sim

where the centroid weights words that several seeds share, and w grows with the number of
seeds. Once the classifier has seen a stream (observe), the stream items that stand far above
ordinary news join the centroid as pseudo-examples (pseudo-relevance feedback), fewer as the
analyst's own seeds grow. Calibration is in the constants below.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from seedwatch.classify.seeds import SeedSet, Topic
from seedwatch.classify.static import StaticTable, load_table
from seedwatch.classify.text import CYRILLIC as _CYRILLIC
from seedwatch.classify.text import STOP_EN, STOP_RU, stems, words
from seedwatch.errors import SeedError
from seedwatch.types import Score

log = logging.getLogger(__name__)

Vec = npt.NDArray[np.float32]

BACKENDS = ("lexical", "words", "semantic")
DEFAULT_THRESHOLD = 0.5
# Calibration. z = (raw - median of ordinary news) / its lower-half spread; the anchor is the
# median z of the ANCHOR_TOP best-matching items seen (at least ANCHOR_MIN); u = z / anchor is
# 0 for ordinary news and about 1 for a typical clear match, and score = logistic(u) with 0.5
# at U_MID. Fixed constants: the same threshold means the same for every seed set.
ANCHOR_TOP = 20
ANCHOR_MIN = 4.0
U_MID = 0.3
U_SLOPE = 8.0
DENSE_WEIGHT = 0.3  # share of the dense cosine in sim when both sides have word vectors
COUNTER_WEIGHT = 0.5
PASSAGE_WEIGHT = 0.5  # share of the best passage (vs the whole document) in a document's sim
CENTROID_WEIGHT = 0.8  # share of the topic centroid (vs the nearest document) in raw
TITLE_REPEAT = 2
CENTROID_HALF = 2.5  # seeds beyond two at which the centroid gets half of CENTROID_WEIGHT
CONSENSUS = 1.0
PRF_DOCS = 40  # stream items taken as pseudo-examples at most
PRF_PER_SEED = 2  # pseudo-examples fewer for each seed the analyst gave
PRF_Z = 2.0  # how far above ordinary news (in spreads) a stream item must be to be taken
KNN = 3  # nearest seed documents averaged (at most a third of them)
K1 = 1.2
MIN_SPREAD = 0.01
STREAM_CAP = 2000  # observed items kept for calibration
REFIT_EVERY = 1000
RU_MIN_STREAM = 50  # Russian stream texts before Russian document frequencies are trusted
# Supervised part (see _Supervised): a seed shorter than EXAMPLE_CHARS is an example item (a
# k-shot positive or a labelled item) rather than a description of the topic area.
EXAMPLE_CHARS = 1200
SUP_WEIGHT = 2.5  # weight of the supervised score in raw once examples abound
SUP_HALF = 5.0  # examples at which it gets half of SUP_WEIGHT
SUP_NEG_Z = 1.0  # stream items above this (in spreads) are not trusted as negatives
SUP_LAMBDA = 1e-2
SUP_ITERS = 300
SUP_DENSE = 1.0
COUNTER_SUP = 10.0  # a counter-example weighs as much as this many stream negatives


@dataclass(frozen=True)
class Features:
    """What scoring needs of one text."""

    lex: dict[str, float]  # stem -> unit-normalized BM25 weight
    dense: Vec | None  # unit vector, None when too few words are in the table
    surface: dict[str, str]  # stem -> first surface word, for explanations


class _Block:
    """Documents stacked for one pass: row 0 of each document is the whole text, then its
    passages. Term weights are kept by column (stem), so memory grows with the seeds' words,
    not with documents x vocabulary."""

    def __init__(
        self,
        names: Sequence[str],
        passages: Sequence[tuple[str, ...]],
        rows: Sequence[Sequence[Features]],
        vocab: dict[str, int],
    ) -> None:
        self.names = list(names)
        self.passages = list(passages)
        flat = [f for doc in rows for f in doc]
        self.n_rows = len(flat)
        self.starts = np.cumsum([0] + [len(doc) for doc in rows[:-1]]).astype(np.int64)
        self.sizes = np.array([len(doc) for doc in rows], dtype=np.int64)
        cols: list[list[tuple[int, float]]] = [[] for _ in vocab]
        for r, f in enumerate(flat):
            for stem, v in f.lex.items():
                cols[vocab[stem]].append((r, v))
        self.ptr = np.cumsum([0] + [len(c) for c in cols]).astype(np.int64)
        self.row = np.array([r for c in cols for r, _ in c], dtype=np.int64)
        self.val = np.array([v for c in cols for _, v in c], dtype=np.float32)
        dims = next((f.dense.shape[0] for f in flat if f.dense is not None), 0)
        self.dense: Vec | None = None
        self.has_dense = np.zeros(self.n_rows, dtype=bool)
        if dims:
            self.dense = np.zeros((self.n_rows, dims), dtype=np.float32)
            for r, f in enumerate(flat):
                if f.dense is not None:
                    self.dense[r] = f.dense
                    self.has_dense[r] = True

    def row_sims(self, f: Features, idx: npt.NDArray[np.int64], val: Vec) -> Vec:
        """sim of the item to every row."""
        lex = np.zeros(self.n_rows, dtype=np.float32)
        for c, v in zip(idx.tolist(), val.tolist(), strict=True):
            a, b = self.ptr[c], self.ptr[c + 1]
            lex[self.row[a:b]] += self.val[a:b] * v
        if self.dense is None or f.dense is None:
            return lex
        mixed = DENSE_WEIGHT * (self.dense @ f.dense) + (1 - DENSE_WEIGHT) * lex
        return np.where(self.has_dense, mixed, lex).astype(np.float32)

    def doc_sims(self, sims: Vec) -> Vec:
        """Per document: the whole text blended with its best passage."""
        whole = sims[self.starts]
        best = whole.copy()
        multi = self.sizes > 1
        if multi.any():
            first = self.starts[multi] + 1
            end = self.starts[multi] + self.sizes[multi]
            # reduceat over [first, end) pairs; the odd results (end..next first) are dropped.
            bounds = np.empty(2 * len(first), dtype=np.int64)
            bounds[0::2], bounds[1::2] = first, end
            padded = np.append(sims, np.float32(0.0))
            best[multi] = np.maximum.reduceat(padded, bounds)[0::2]
        return ((1 - PASSAGE_WEIGHT) * whole + PASSAGE_WEIGHT * best).astype(np.float32)

    def best_passage(self, sims: Vec, doc: int) -> int:
        a = int(self.starts[doc])
        size = int(self.sizes[doc])
        return int(np.argmax(sims[a + 1 : a + size])) if size > 1 else -1


_PRIORS: dict[int, tuple[StaticTable, dict[str, float]]] = {}


def _prior(table: StaticTable) -> dict[str, float]:
    """Background document frequency per stem; computed once per table (read-only after)."""
    hit = _PRIORS.get(id(table))
    if hit is not None and hit[0] is table:
        return hit[1]
    prior: dict[str, float] = {}
    for w, d in zip(table.words, table.df.tolist(), strict=True):
        for s in stems([w]):
            prior[s] = max(prior.get(s, 0.0), d)
    _PRIORS[id(table)] = (table, prior)
    return prior


class _Stats:
    """Document frequencies: a background prior plus what the stream has shown."""

    def __init__(self, table: StaticTable | None) -> None:
        self.prior: dict[str, float] = _prior(table) if table is not None else {}
        self.prior_n = float(table.ndocs) if table is not None else 0.0
        self.stream: Counter[str] = Counter()
        self.stream_n = 0
        self.stream_n_cyr = 0  # stream documents with Cyrillic words

    def add(self, doc_stems: set[str]) -> None:
        self.stream.update(doc_stems)
        self.stream_n += 1
        if any(_CYRILLIC.search(s) for s in doc_stems):
            self.stream_n_cyr += 1

    def idf(self, stem: str) -> float:
        # The prior is English; a Russian word is rare or common among Russian texts only.
        # While the stream has shown only a few Russian texts, every Russian word counts as
        # rare (as an English word unseen in the background would). With none at all, Russian
        # seed words stay light: no item can match them, they would only dilute the English.
        if _CYRILLIC.search(stem) and (
            self.stream_n_cyr == 0 or self.stream_n_cyr >= RU_MIN_STREAM
        ):
            n = float(self.stream_n_cyr)
        else:
            n = self.prior_n + self.stream_n - self.stream_n_cyr
        d = self.prior.get(stem, 0.0) + self.stream.get(stem, 0)
        return math.log((n + 1.0) / (d + 0.5)) if n > 0 else 1.0


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
        if backend == "semantic":
            from seedwatch.classify.semantic import SemanticClassifier

            return SemanticClassifier.load(seeds, threshold=threshold)
        table = load_table() if backend == "lexical" else None
        return cls(
            seeds,
            threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
            backend=backend,
            table=table,
        )

    def rebuild(self, seeds: SeedSet, *, threshold: float | None = None) -> Classifier:
        """A classifier for edited seeds that keeps what this one learned from the stream."""
        new = type(self).__new__(type(self))
        self._carry(new)
        new.seeds = seeds
        new.threshold = self.threshold if threshold is None else threshold
        new.backend = self.backend
        new._table = self._table
        new._stats = self._stats
        new._stream_texts = list(self._stream_texts)
        new._since_refit = 0
        new._background = self._background
        new._widf = None
        new._word_df = Counter(self._word_df)
        new._fit()
        return new

    def _carry(self, new: Classifier) -> None:
        """Hook for subclasses: hand what rebuild() must keep (a loaded model) to ``new``."""

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
        feats = [self.features(t, x) for t, x in pool]
        topics: list[_TopicModel] = []
        for topic in self.seeds.topics:
            tm = _TopicModel(topic, self)
            raws = tm.calibrate(feats)
            if pool is self._stream_texts and PRF_DOCS:
                # Pseudo-relevance feedback: the stream items far above ordinary news are
                # taken as extra examples for the topic centroid (never as nearest seed).
                z = (raws - tm.mid) / tm.spread
                # They stand in for examples the analyst has not given: fewer as seeds grow.
                wanted = max(0, PRF_DOCS - PRF_PER_SEED * tm.n_near)
                top = [int(i) for i in np.argsort(-z)[:wanted] if z[i] >= PRF_Z]
                if top:
                    tm = _TopicModel(topic, self, pseudo=[feats[i] for i in top])
                    raws = tm.calibrate(feats)
            tm.fit_supervised(feats, raws)
            topics.append(tm)
        # One assignment: a score() running meanwhile sees the old models or the new ones.
        self._topics = topics

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
        self._stats.add(set(_stem_pairs(toks)[1]))
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


class _Supervised:
    """Logistic regression over [BM25 weights on the topic's stems | static vector]: the seeds
    (and their paragraphs) against ordinary stream items and the counter-examples.

    The stream is unlabelled and holds relevant items too, so only the items the similarity
    already places near ordinary news (z < SUP_NEG_Z) are taken as negatives (the "reliable
    negatives" of learning from positive and unlabelled data).
    """

    def __init__(self, dims: int) -> None:
        self.dims = dims
        self.w: Vec = np.zeros(dims, dtype=np.float32)
        self.b = 0.0
        self.mid = 0.0
        self.spread = 1.0

    def fit(self, x: Vec, y: npt.NDArray[np.float32], weight: npt.NDArray[np.float32]) -> None:
        weight = weight / float(weight.sum())
        w = np.zeros(x.shape[1], dtype=np.float32)
        b = 0.0
        # Plain gradient descent from zero with a fixed budget: rows are unit-scale, so a
        # step of 1 is stable, and the early stop adds to the L2 term's smoothing.
        for _ in range(SUP_ITERS):
            p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
            g = (weight * (p - y)).astype(np.float32)
            w -= (x.T @ g + SUP_LAMBDA * w).astype(np.float32)
            b -= float(g.sum())
        self.w, self.b = w, b

    def value(self, x: Vec) -> npt.NDArray[np.float64]:
        return (x @ self.w + self.b).astype(np.float64)

    def one(self, idx: npt.NDArray[np.int64], val: Vec, dense: Vec | None, n_lex: int) -> float:
        """value() of one item from its sparse stem weights, without building a row."""
        out = self.b + float(self.w[idx] @ val) if idx.size else self.b
        if dense is not None and self.dims > n_lex:
            out += SUP_DENSE * float(self.w[n_lex:] @ dense)
        return out


class _TopicModel:
    def __init__(self, topic: Topic, clf: Classifier, pseudo: Sequence[Features] = ()) -> None:
        self.name = topic.name
        self.clf = clf
        # Long documents describe the topic area; short ones are example items (k-shot
        # positives, labelled items). Nearest-document similarity is taken against the
        # descriptions only: an example about one event pulls in every other item about that
        # event, relevant or not. Examples teach the supervised part instead. Without any
        # long document every seed is a description.
        profiles = [d for d in topic.seeds if len(d.text) >= EXAMPLE_CHARS]
        near = profiles or list(topic.seeds)
        self.n_near = len(near)
        self.n_examples = len(topic.seeds) - len(profiles) if profiles else len(topic.seeds)
        feats = {
            d.name: [clf.features("", d.text), *(clf.features("", p) for p in d.passages)]
            for d in (*topic.seeds, *topic.counter)
        }
        docs = [feats[d.name] for d in near]
        counters = [feats[d.name] for d in topic.counter]
        vocab: dict[str, int] = {}
        for f in [f for doc in feats.values() for f in doc] + list(pseudo):
            for stem in f.lex:
                vocab.setdefault(stem, len(vocab))
        self.vocab = vocab
        self.docs = _Block([d.name for d in near], [d.passages for d in near], docs, vocab)
        self.counter = (
            _Block(
                [d.name for d in topic.counter],
                [d.passages for d in topic.counter],
                counters,
                vocab,
            )
            if counters
            else None
        )
        self.centroid = self._centroid([doc[0] for doc in docs] + list(pseudo))
        self.n_docs = len(docs) + len(pseudo)
        # When there are both, the similarity is also taken against every seed and the two
        # averaged: a description that covers the area well gains from leaving the examples
        # out, one that only reports a single event (a report without a brief) needs them.
        self.all_docs: _Block | None = None
        self.all_centroid: _Block | None = None
        if profiles and len(profiles) < len(topic.seeds):
            every = [feats[d.name] for d in topic.seeds]
            self.all_docs = _Block(
                [d.name for d in topic.seeds], [d.passages for d in topic.seeds], every, vocab
            )
            self.all_centroid = self._centroid([doc[0] for doc in every] + list(pseudo))
        self.n_all = len(topic.seeds) + len(pseudo)
        self.mid = 0.0
        self.spread = 1.0
        self.anchor = ANCHOR_MIN
        self._seed_feats = [feats[d.name] for d in topic.seeds]
        self._counter_feats = counters
        self.sup: _Supervised | None = None
        self.sup_weight = 0.0
        self.sim_mid = 0.0
        self.sim_spread = 1.0

    def _matrix(self, fs: Sequence[Features]) -> Vec:
        dims = self.clf._table.vectors.shape[1] if self.clf._table is not None else 0
        x = np.zeros((len(fs), len(self.vocab) + dims), dtype=np.float32)
        for r, f in enumerate(fs):
            for stem, v in f.lex.items():
                c = self.vocab.get(stem)
                if c is not None:
                    x[r, c] = v
            if dims and f.dense is not None:
                x[r, len(self.vocab) :] = SUP_DENSE * f.dense
        return x

    def fit_supervised(self, pool: Sequence[Features], raws: npt.NDArray[np.float64]) -> None:
        """Learn the supervised part once the topic has example items; then recalibrate."""
        if not self.n_examples or not len(pool):
            return
        self.sim_mid, self.sim_spread = self.mid, self.spread
        negatives = [
            f
            for f, r in zip(pool, raws.tolist(), strict=True)
            if (r - self.mid) / self.spread < SUP_NEG_Z
        ]
        pos: list[Features] = []
        pos_w: list[float] = []
        for doc in self._seed_feats:
            pos.append(doc[0])
            pos_w.append(1.0)
            if len(doc) > 2:  # the paragraphs of a long document are item-sized positives
                pos += doc[1:]
                pos_w += [1.0 / (len(doc) - 1)] * (len(doc) - 1)
        neg_w = [1.0] * len(negatives)
        for doc in self._counter_feats:
            # The analyst's own "not like this" outweighs an unlabelled stream item.
            negatives.append(doc[0])
            neg_w.append(COUNTER_SUP)
        x = self._matrix(pos + negatives)
        y = np.r_[np.ones(len(pos)), np.zeros(len(negatives))].astype(np.float32)
        # Both classes weigh the same in the loss, however many stream items there are.
        wp = np.array(pos_w, dtype=np.float32)
        wn = np.array(neg_w, dtype=np.float32)
        weight = np.r_[wp / wp.sum(), wn / wn.sum()].astype(np.float32)
        sup = _Supervised(x.shape[1])
        sup.fit(x, y, weight)
        values = sup.value(self._matrix(pool))
        sup.mid = float(np.median(values))
        sup.spread = max(MIN_SPREAD, sup.mid - float(np.quantile(values, 0.16)))
        self.sup = sup
        self.sup_weight = SUP_WEIGHT * self.n_examples / (self.n_examples + SUP_HALF)
        self.calibrate(pool)

    def _centroid(self, wholes: list[Features]) -> _Block | None:
        if len(wholes) < 2:
            return None
        rows = np.zeros((len(wholes), len(self.vocab)), dtype=np.float32)
        for r, f in enumerate(wholes):
            for stem, v in f.lex.items():
                rows[r, self.vocab[stem]] = v
        # Words several seeds share say what the topic is; a word of one seed says what that
        # seed's own event was.
        share = (rows > 0).mean(axis=0) ** CONSENSUS
        lex = rows.mean(axis=0) * share
        lex /= max(float(np.linalg.norm(lex)), 1e-9)
        dense_list = [f.dense for f in wholes if f.dense is not None]
        dense = None
        if dense_list:
            d = np.mean(dense_list, axis=0).astype(np.float32)
            dense = d / max(float(np.linalg.norm(d)), 1e-9)
        inv = {i: stem for stem, i in self.vocab.items()}
        feat = Features({inv[int(i)]: float(lex[i]) for i in np.flatnonzero(lex)}, dense, {})
        return _Block([""], [()], [[feat]], self.vocab)

    def _item_lex(self, f: Features) -> tuple[npt.NDArray[np.int64], Vec]:
        cols = [(self.vocab[s], v) for s, v in f.lex.items() if s in self.vocab]
        if not cols:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        idx, val = zip(*cols, strict=True)
        return np.array(idx, np.int64), np.array(val, np.float32)

    def _sim(
        self,
        docs: _Block,
        centroid: _Block | None,
        n_docs: int,
        f: Features,
        idx: npt.NDArray[np.int64],
        val: Vec,
    ) -> tuple[float, int, Vec]:
        rows = docs.row_sims(f, idx, val)
        sims = docs.doc_sims(rows)
        n = len(sims)
        k = max(1, min(KNN, n // 3))
        top = np.argpartition(-sims, k - 1)[:k] if n > k else np.arange(n)
        best_doc = int(np.argmax(sims))
        value = float(sims[top].mean())
        if centroid is not None:
            # A centroid of two unlike documents is neither; it earns weight with numbers.
            w = CENTROID_WEIGHT * max(0, n_docs - 2) / (n_docs - 2 + CENTROID_HALF)
            c = float(centroid.row_sims(f, idx, val)[0])
            value = (1 - w) * value + w * c
        return value, best_doc, rows

    def raw(self, f: Features) -> tuple[float, int, Vec]:
        """(raw similarity, index of the nearest seed document, the item's row sims)."""
        idx, val = self._item_lex(f)
        value, best_doc, rows = self._sim(self.docs, self.centroid, self.n_docs, f, idx, val)
        if self.all_docs is not None:
            other = self._sim(self.all_docs, self.all_centroid, self.n_all, f, idx, val)[0]
            value = 0.5 * (value + other)
        if self.counter is not None:
            neg = float(self.counter.doc_sims(self.counter.row_sims(f, idx, val)).max())
            value -= COUNTER_WEIGHT * max(0.0, neg)
        if self.sup is not None:
            sup = self.sup.one(idx, val, f.dense, len(self.vocab))
            value = (value - self.sim_mid) / self.sim_spread + self.sup_weight * (
                sup - self.sup.mid
            ) / self.sup.spread
        return value, best_doc, rows

    def calibrate(self, background: Sequence[Features]) -> npt.NDArray[np.float64]:
        """Fit mid and spread to ``background``; returns its raw similarities."""
        raws = np.array([self.raw(f)[0] for f in background], dtype=np.float64)
        if not background:
            return raws
        self.mid = float(np.median(raws))
        # The lower half of the spread: relevant items sit in the upper tail of a stream and
        # would inflate any two-sided measure.
        self.spread = max(MIN_SPREAD, self.mid - float(np.quantile(raws, 0.16)))
        # The second anchor: how far the best-matching items of the stream stand out. How
        # far apart the two sit differs by language and seed count; scoring relative to
        # both keeps the threshold's meaning. A floor keeps a stream without any relevant
        # item from pulling the bar down to its own noise.
        z = np.sort((raws - self.mid) / self.spread)[::-1]
        self.anchor = max(ANCHOR_MIN, float(np.median(z[:ANCHOR_TOP])))
        return raws

    def score(self, f: Features, threshold: float) -> Score:
        raw, doc_i, rows = self.raw(f)
        u = (raw - self.mid) / self.spread / self.anchor
        value = 1.0 / (1.0 + math.exp(-U_SLOPE * (u - U_MID)))
        passages = self.docs.passages[doc_i]
        pass_i = self.docs.best_passage(rows, doc_i)
        passage = passages[pass_i] if pass_i >= 0 else (passages[0] if passages else None)
        value = round(value, 6)
        return Score(
            score=value,
            topic=self.name,
            relevant=value >= threshold,
            nearest_seed=self.docs.names[doc_i],
            passage=passage,
            terms=self._terms(f, doc_i),
        )

    def _terms(self, f: Features, doc: int, top: int = 6) -> tuple[str, ...]:
        """The item's words that carried most of the overlap with seed document ``doc``."""
        row = int(self.docs.starts[doc])
        contrib = []
        for stem, v in f.lex.items():
            c = self.vocab.get(stem)
            if c is None:
                continue
            a, b = self.docs.ptr[c], self.docs.ptr[c + 1]
            hit = np.flatnonzero(self.docs.row[a:b] == row)
            if hit.size:
                contrib.append((v * float(self.docs.val[a + hit[0]]), stem))
        contrib.sort(reverse=True)
        return tuple(f.surface.get(s, s) for _, s in contrib[:top])
