"""Score items against seed topics: BM25 term overlap plus static word vectors, calibrated.

For one topic, sim(item, doc) mixes the cosine of IDF-weighted static word vectors (a table
derived from all-MiniLM-L6-v2, see static.py) with a BM25 cosine over stems, each for the whole
document and its best passage. The raw similarity is

    raw = (1 - w) * mean of the nearest seed documents' sims + w * sim(item, topic centroid)
          - COUNTER_WEIGHT * nearest counter-example's sim

where the centroid weights words that several seeds share, and w grows with the number of
seeds. Once the classifier has seen a stream (observe), the stream items that stand far above
ordinary news join the centroid as pseudo-examples (pseudo-relevance feedback), fewer as the
analyst's own seeds grow. Calibration is in topic.py.

Scoring runs in two halves: ``analyze(title, text)`` (analysis.py) is pure and runs anywhere,
e.g. in a worker process; ``score_many``/``observe_analyzed`` apply the stream statistics to a
batch of analyses in the daemon.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from seedwatch.classify.analysis import Analysis, analyze, analyze_with_text
from seedwatch.classify.features import Feats, FloatArr, IntArr, Stats, featurize
from seedwatch.classify.seeds import SeedSet
from seedwatch.classify.static import StaticTable, load_table
from seedwatch.classify.topic import EXAMPLE_CHARS, Result, StreamIndex, TopicModel
from seedwatch.errors import SeedError
from seedwatch.types import Score

log = logging.getLogger(__name__)

BACKENDS = ("lexical", "words", "semantic")
DEFAULT_THRESHOLD = 0.5
PRF_DOCS = 40  # stream items taken as pseudo-examples at most
PRF_PER_SEED = 2  # pseudo-examples fewer for each seed the analyst gave
PRF_Z = 2.0  # how far above ordinary news (in spreads) a stream item must be to be taken
STREAM_CAP = 2000  # observed items kept (analysed) for calibration
# Refits (topic models and calibration against the kept stream items) happen when the stream
# reaches FIRST_REFIT items, then each time it doubles, then every REFIT_MAX items: a cold
# start of 500,000 items refits ~30 times instead of 500, and the calibration still follows
# the stream where it changes fast (the first thousands of items).
FIRST_REFIT = 200
REFIT_MAX = 20_000

_BACKGROUND: dict[int, tuple[StaticTable, tuple[Analysis, ...]]] = {}


def _background(table: StaticTable) -> tuple[Analysis, ...]:
    """The table's sample of ordinary news, analysed once per table (read-only after)."""
    hit = _BACKGROUND.get(id(table))
    if hit is not None and hit[0] is table:
        return hit[1]
    out = tuple(analyze_with_text("", t) for t in table.background)
    _BACKGROUND[id(table)] = (table, out)
    return out


class Classifier:
    """Scores items against the topics of a SeedSet; see the module docstring.

    Not thread-safe: score and observe from one thread (they share the statistics).
    """

    def __init__(
        self, seeds: SeedSet, *, threshold: float, backend: str, table: StaticTable | None
    ) -> None:
        self.seeds = seeds
        self.threshold = threshold
        self.backend = backend
        self._table = table
        self._stats = Stats(table)
        self._stream: deque[Analysis] = deque(maxlen=STREAM_CAP)
        self._next_refit = FIRST_REFIT
        self._background = _background(table) if table is not None else ()
        self._word_idf: FloatArr | None = None
        self._seed_analyses: dict[str, Analysis] = {}
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
        new._stats = self._stats.copy()
        new._stream = deque(self._stream, maxlen=STREAM_CAP)
        new._background = self._background
        new._word_idf = None
        new._seed_analyses = {}
        new._refit()
        return new

    def _carry(self, new: Classifier) -> None:
        """Hook for subclasses: hand what rebuild() must keep (a loaded model) to ``new``."""

    @property
    def analyzer(self) -> Callable[[str, str], Analysis]:
        """The pure analysis this backend needs, ``(title, text) -> Analysis``: a module-level
        function, so it pickles by name into a worker process."""
        return analyze

    # -- features -------------------------------------------------------------------------

    def _featurize(self, analyses: Sequence[Analysis], *, add: bool) -> Feats:
        return featurize(
            analyses,
            self._stats,
            table=self._table,
            word_idf=self._word_idf,
            add=add,
        )

    def _doc_feats(self) -> dict[str, Feats]:
        """Features of every seed and counter document: the whole text, then its passages."""
        docs = [d for t in self.seeds.topics for d in (*t.seeds, *t.counter)]
        texts = [t for d in docs for t in (d.text, *d.passages)]
        cache = self._seed_analyses
        for t in texts:
            if t not in cache:
                cache[t] = analyze("", t)
        feats = self._featurize([cache[t] for t in texts], add=True)
        out: dict[str, Feats] = {}
        at = 0
        for d in docs:
            out[d.name] = feats.take(np.arange(at, at + 1 + len(d.passages)))
            at += 1 + len(d.passages)
        return out

    # -- fitting --------------------------------------------------------------------------

    def _fit(self) -> None:
        """(Re)build the topic models and calibration from the current statistics."""
        if self._table is not None:
            self._word_idf = self._stats.word_idf(self._table)
        stream = list(self._stream)
        from_stream = len(stream) >= FIRST_REFIT
        pool = self._featurize(stream if from_stream else [*self._background, *stream], add=True)
        doc_feats = self._doc_feats()
        # Neighbour smoothing, like the feedback, only once the pool is the real stream. The
        # topics' example items join the index after the stream rows: neighbours whose
        # relevance is known (see TopicModel.fit_neighbours).
        examples = [
            [doc_feats[d.name].take([0]) for d in t.seeds if len(d.text) < EXAMPLE_CHARS]
            for t in self.seeds.topics
        ]
        index = None
        if from_stream:
            rows = Feats.concat([pool, *(f for own in examples for f in own)])
            index = StreamIndex(rows, self._stats.size)
        near = index.nearest(pool) if index is not None else None
        topics: list[TopicModel] = []
        at = pool.n
        for topic, own in zip(self.seeds.topics, examples, strict=True):
            tm = TopicModel(topic, doc_feats, self._stats.size)
            tm.weigh_examples(pool)
            raws = tm.calibrate(pool)
            if from_stream and PRF_DOCS:
                # Pseudo-relevance feedback: the stream items far above ordinary news are
                # probably relevant; taking them into the centroid widens its vocabulary.
                z = (raws - tm.mid) / tm.spread
                # They stand in for examples the analyst has not given: fewer as seeds grow.
                wanted = max(0, PRF_DOCS - PRF_PER_SEED * tm.n_near)
                top = [int(i) for i in np.argsort(-z)[:wanted] if z[i] >= PRF_Z]
                if top:
                    weight = tm.all_weight  # measured on the analyst's seeds alone
                    tm = TopicModel(topic, doc_feats, self._stats.size, pseudo=pool.take(top))
                    tm.all_weight = weight
                    raws = tm.calibrate(pool)
            raws = tm.fit_supervised(pool, raws)
            if index is not None and near is not None:
                tm.fit_neighbours(pool, raws, index, near, np.arange(at, at + len(own)))
            at += len(own)
            topics.append(tm)
        # One assignment: a score() running meanwhile sees the old models or the new ones.
        self._topics, self._index = topics, index

    def _refit(self) -> None:
        self._fit()
        n = self._stats.stream_n
        self._next_refit = FIRST_REFIT if n < FIRST_REFIT else min(2 * n, n + REFIT_MAX)

    # -- learning from the stream ---------------------------------------------------------

    def observe_analyzed(self, analyses: Sequence[Analysis]) -> None:
        """Learn document frequencies and the background score spread from stream items
        (a feed's new items at a time); refits on the schedule of FIRST_REFIT/REFIT_MAX."""
        if not analyses:
            return
        self._learn(analyses)
        if self._stats.stream_n >= self._next_refit:
            self._refit()

    def observe(self, title: str, text: str) -> None:
        self.observe_analyzed([self.analyzer(title, text)])

    def observe_many(self, items: Iterable[tuple[str, str]]) -> None:
        """observe() each (title, text) then refit once: for batches such as ``seedwatch score``."""
        self.observe_all([self.analyzer(title, text) for title, text in items])

    def observe_all(self, analyses: Sequence[Analysis]) -> None:
        """observe_analyzed() a whole batch, then refit once whatever the schedule says."""
        self._learn(analyses)
        self._refit()

    def _learn(self, analyses: Sequence[Analysis]) -> None:
        stats = self._stats
        stats.add(analyses)
        # Kept for refits, without their explanations.
        self._stream.extend(a._replace(surface="") for a in analyses)
        if stats.over_cap():
            pinned = np.unique(
                np.concatenate([np.flatnonzero(t.colmap >= 0) for t in self._topics])
            )
            kept = stats.prune(pinned)
            for tm in self._topics:
                tm.remap(kept)
            if self._index is not None:
                self._index.remap(kept)

    # -- scoring --------------------------------------------------------------------------

    def score(self, title: str, text: str) -> Score:
        return self.score_many([self.analyzer(title, text)])[0]

    def score_analyzed(self, analysis: Analysis) -> Score:
        return self.score_many([analysis])[0]

    def score_many(self, analyses: Sequence[Analysis]) -> list[Score]:
        """Scores of a batch (one feed's items, say), in order; the best topic for each."""
        if not analyses:
            return []
        feats = self._featurize(analyses, add=False)
        near = self._near(feats)
        results = [tm.evaluate(feats, near) for tm in self._topics]
        values = [tm.scores(r.raw).tolist() for tm, r in zip(self._topics, results, strict=True)]
        best = [0] * len(analyses)
        for t in range(1, len(values)):
            for i in range(len(analyses)):
                if round(values[t][i], 6) > round(values[best[i]][i], 6):
                    best[i] = t
        out: list[Score | None] = [None] * len(analyses)
        for t, (tm, r) in enumerate(zip(self._topics, results, strict=True)):
            items = [i for i, b in enumerate(best) if b == t]
            if items:
                for i, s in zip(
                    items, self._explain(tm, r, items, feats, analyses, values[t]), strict=True
                ):
                    out[i] = s
        return [s for s in out if s is not None]

    def topic_scores(self, analyses: Sequence[Analysis]) -> list[list[float]]:
        """Per topic (in seed order), every analysis's calibrated score for that topic."""
        feats = self._featurize(analyses, add=False)
        near = self._near(feats)
        return [tm.scores(tm.evaluate(feats, near).raw).tolist() for tm in self._topics]

    def _near(self, feats: Feats) -> IntArr | None:
        """The batch's nearest stream items, found once for every topic."""
        return self._index.nearest(feats) if self._index is not None else None

    def _explain(
        self,
        tm: TopicModel,
        r: Result,
        items: list[int],
        feats: Feats,
        analyses: Sequence[Analysis],
        values: list[float],
    ) -> list[Score]:
        docs = tm.docs
        terms = docs.terms(r.q.lex_only(items), docs.starts[r.doc])
        idx = np.asarray(items, dtype=np.int64)
        best = docs.best_passages(r.rows[idx], r.doc[idx]).tolist()
        out = []
        for i, pass_i in zip(items, best, strict=True):
            doc_i = int(r.doc[i])
            passages = docs.passages[doc_i]
            passage = passages[pass_i] if pass_i >= 0 else (passages[0] if passages else None)
            words = analyses[i].surface_list()
            start = int(feats.start[i])
            value = round(values[i], 6)
            out.append(
                Score(
                    score=value,
                    topic=tm.name,
                    relevant=value >= self.threshold,
                    nearest_seed=docs.names[doc_i],
                    passage=passage,
                    terms=tuple(words[e - start] for e in terms[i]),
                )
            )
        return out
