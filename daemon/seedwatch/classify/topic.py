"""One topic's model: its seed documents as sparse blocks, its centroid, its calibration.

Everything works on a batch of texts (``Feats``) at once: the sparse products expand each
text term into the block rows that hold that term and sum with one ``bincount``, so a feed's
items or a calibration pool of thousands cost a handful of numpy calls, not calls per item.
See model.py for what the similarities mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seedwatch.classify.features import BoolArr, Feats, FloatArr, IntArr, Vec, offsets, spans
from seedwatch.classify.seeds import SeedDoc, Topic

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
CENTROID_HALF = 2.5  # seeds beyond two at which the centroid gets half of CENTROID_WEIGHT
CONSENSUS = 1.0
# How much the examples enter the similarity itself (see TopicModel.weigh_examples): the AUC
# with which the descriptions alone pick out the stream items that the examples alone place
# clearly above ordinary news (z >= PICK_Z, the bar of model.PRF_Z). At AGREE_LOW or below the
# descriptions miss what the examples show and the examples count fully; at AGREE_HIGH or above
# they already cover it, and the examples enter through the supervised part only (conventional
# bands: an AUC of 0.7 is acceptable discrimination, 0.9 outstanding).
PICK_Z = 2.0
AGREE_LOW = 0.7
AGREE_HIGH = 0.9
KNN = 3  # nearest seed documents averaged (at most a third of them)
MIN_SPREAD = 0.01
# Supervised part (see _Supervised): a seed shorter than EXAMPLE_CHARS is an example item (a
# k-shot positive or a labelled item) rather than a description of the topic area.
EXAMPLE_CHARS = 1200
SUP_WEIGHT = 2.5  # weight of the supervised score in raw once examples abound
SUP_HALF = 5.0  # examples at which it gets half of SUP_WEIGHT
SUP_NEG_Z = 1.0  # stream items above this (in spreads) are not trusted as negatives
# A weak L2 term and a long budget: with a score of examples the word weights need room to
# grow (the static-vector dims, dense and unit-scale, otherwise carry the whole fit, and they
# say "world news" as much as "security").
SUP_LAMBDA = 1e-3
SUP_ITERS = 1000
SUP_DENSE = 1.0
COUNTER_SUP = 10.0  # a counter-example weighs as much as this many stream negatives
# Neighbour smoothing (see TopicModel.fit_neighbours): a text's raw similarity is lifted by
# NEIGHBOUR_WEIGHT times the mean z of its NEIGHBOURS nearest stream items (BM25 cosine).
NEIGHBOURS = 10
NEIGHBOUR_WEIGHT = 0.5
SAME_TEXT = 0.999  # a stream item this similar is the text itself, not a neighbour
CHUNK = 128  # texts per pass when calibrating: bounds the (texts x block rows) arrays of a refit
# (2,000 stream rows: a refit's peak was 41 MB above the RSS at 512, 17 MB at 128, same time;
# cold start of 10,000 feeds: peak RSS 409 -> 388 MB)
# A block column (stem) held by more than DENSE_MIN_ROWS rows is multiplied as a dense matrix
# (one matmul) instead of expanding its posting list for every text that has it: the few words
# of nearly every news item would otherwise make most of the products. At most DENSE_MAX_COLS
# such columns, most frequent first (2,000 stream rows x 512 float32 = 4 MB).
DENSE_MIN_ROWS = 64
DENSE_MAX_COLS = 512
TERMS = 6


@dataclass(frozen=True)
class Query:
    """A batch of texts seen through one topic's vocabulary: only the entries whose stem is
    a column of the topic (``entry`` points back into the Feats)."""

    n: int
    item: IntArr
    col: IntArr
    val: FloatArr
    entry: IntArr
    dense: Vec | None
    has_dense: BoolArr

    def lex_only(self, items: Sequence[int]) -> Query:
        """The entries of texts ``items`` alone, without the static vectors."""
        chosen = np.zeros(self.n, dtype=bool)
        chosen[list(items)] = True
        mine = chosen[self.item]
        return Query(
            self.n,
            self.item[mine],
            self.col[mine],
            self.val[mine],
            self.entry[mine],
            None,
            self.has_dense,
        )


class _Block:
    """Documents stacked for one pass: row 0 of each document is the whole text, then its
    passages. Term weights are kept by column (stem), so memory grows with the seeds' words,
    not with documents x vocabulary."""

    def __init__(
        self,
        docs: Sequence[tuple[str, tuple[str, ...]]],
        sizes: Sequence[int],
        rows: Feats,
        cols: IntArr,
        n_cols: int,
    ) -> None:
        self.names = [name for name, _ in docs]
        self.passages = [passages for _, passages in docs]
        self.n_rows = rows.n
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.starts = np.cumsum(self.sizes) - self.sizes
        order = np.argsort(cols, kind="stable")
        self.row = rows.item[order]
        self.val = rows.val[order]
        lens = np.bincount(cols, minlength=n_cols)
        self.ptr = offsets(lens)
        self.has_dense = rows.has_dense
        self.dense = rows.dense if rows.dense is not None and rows.has_dense.any() else None
        self._frequent(cols, rows, lens)

    def _frequent(self, cols: IntArr, rows: Feats, lens: IntArr) -> None:
        """The columns of more than DENSE_MIN_ROWS rows as a dense (columns, rows) matrix
        (a batch takes the rows of the columns it has); ``freq_col`` maps a column to its
        place there, -1 for the rest."""
        freq = np.flatnonzero(lens > DENSE_MIN_ROWS)
        freq = freq[np.argsort(-lens[freq], kind="stable")[:DENSE_MAX_COLS]]
        self.freq_col = np.full(len(lens), -1, dtype=np.int64)
        self.freq_col[freq] = np.arange(len(freq), dtype=np.int64)
        self.freq: Vec = np.zeros((len(freq), self.n_rows), dtype=np.float32)
        at = self.freq_col[cols]
        hit = at >= 0
        self.freq[at[hit], rows.item[hit]] = rows.val[hit]

    def _expand(self, col: IntArr, val: FloatArr) -> tuple[IntArr, IntArr, FloatArr]:
        """(entry, block row, product of their weights) for every row holding ``col[entry]``."""
        lo = self.ptr[col]
        lens = self.ptr[col + 1] - lo
        pos = spans(lo, lens)
        rep = np.repeat(np.arange(len(col), dtype=np.int64), lens)
        return rep, self.row[pos], val[rep] * self.val[pos]

    def products(self, q: Query) -> tuple[IntArr, IntArr, FloatArr]:
        """(query entry, block row, product of their weights) for every shared term."""
        return self._expand(q.col, q.val)

    def lex_sims(self, q: Query) -> FloatArr:
        """(texts, rows): the term part of the sims. The frequent columns go through one
        matmul, the rest through their posting lists; the sum is that of all products."""
        at = self.freq_col[q.col]
        rare = at < 0
        item = q.item[rare]
        rep, row, prod = self._expand(q.col[rare], q.val[rare])
        flat = item[rep] * self.n_rows + row
        lex = np.asarray(np.bincount(flat, prod, minlength=q.n * self.n_rows), dtype=np.float64)
        lex = lex.reshape(q.n, self.n_rows)
        if not rare.all():
            hit = ~rare
            used, slot = np.unique(at[hit], return_inverse=True)
            part = np.bincount(q.item[hit] * len(used) + slot, q.val[hit], q.n * len(used))
            lex += part.reshape(q.n, len(used)).astype(np.float32) @ self.freq[used]
        return lex

    def sims(self, q: Query) -> FloatArr:
        """(texts, rows): sim of every text to every row."""
        lex = self.lex_sims(q)
        if self.dense is None or q.dense is None:
            return lex
        both = q.has_dense[:, None] & self.has_dense[None, :]
        dense = (q.dense @ self.dense.T).astype(np.float64)
        out: FloatArr = np.where(both, DENSE_WEIGHT * dense + (1 - DENSE_WEIGHT) * lex, lex)
        return out

    def doc_sims(self, sims: FloatArr) -> FloatArr:
        """(texts, documents): the whole text blended with its best passage."""
        whole = sims[:, self.starts]
        best = whole.copy()
        multi = self.sizes > 1
        if multi.any():
            first = self.starts[multi] + 1
            end = self.starts[multi] + self.sizes[multi]
            # reduceat over [first, end) pairs; the odd results (end..next first) are dropped.
            bounds = np.empty(2 * len(first), dtype=np.int64)
            bounds[0::2], bounds[1::2] = first, end
            padded = np.concatenate([sims, np.zeros((len(sims), 1))], axis=1)
            best[:, multi] = np.maximum.reduceat(padded, bounds, axis=1)[:, 0::2]
        out: FloatArr = (1 - PASSAGE_WEIGHT) * whole + PASSAGE_WEIGHT * best
        return out

    def best_passages(self, sims: FloatArr, docs: IntArr) -> IntArr:
        """For each text (row of ``sims``), the index of the best passage of document
        ``docs[text]``; -1 where that document has no passages."""
        row_doc = np.repeat(np.arange(len(self.sizes)), self.sizes)
        passage = np.ones(self.n_rows, dtype=bool)
        passage[self.starts] = False
        inside = (row_doc[None, :] == docs[:, None]) & passage[None, :]
        best = np.argmax(np.where(inside, sims, -np.inf), axis=1) - self.starts[docs] - 1
        out: IntArr = np.where(self.sizes[docs] > 1, best, -1)
        return out

    def terms(self, q: Query, rows: IntArr) -> list[list[int]]:
        """Per text: the Feats entries that carried most of its overlap with block row
        ``rows[text]``, best first (at most TERMS)."""
        rep, row, prod = self.products(q)
        hit = row == rows[q.item[rep]]
        items, entries, contrib = q.item[rep][hit], q.entry[rep][hit], prod[hit]
        order = np.lexsort((-contrib, items))
        out: list[list[int]] = [[] for _ in range(q.n)]
        for i, e in zip(items[order].tolist(), entries[order].tolist(), strict=True):
            if len(out[i]) < TERMS:
                out[i].append(e)
        return out


def _chunks(f: Feats) -> list[Feats]:
    """``f`` in batches of CHUNK texts, to bound the (texts x block rows) arrays."""
    if f.n <= CHUNK:
        return [f]
    return [f.take(np.arange(a, min(a + CHUNK, f.n))) for a in range(0, f.n, CHUNK)]


def _remap(colmap: IntArr, kept: IntArr) -> IntArr:
    """``colmap`` (stem id -> column) after Stats.prune renumbered the stems (``kept``: old
    id of every new id)."""
    out: IntArr = colmap[kept[kept < len(colmap)]]
    return out


def _query(colmap: IntArr, f: Feats) -> Query:
    """``f`` seen through the columns of ``colmap`` (stem id -> column, -1 for none)."""
    inside = f.sid < len(colmap)
    col = np.full(len(f.sid), -1, dtype=np.int64)
    col[inside] = colmap[f.sid[inside]]
    keep = np.flatnonzero(col >= 0)
    return Query(f.n, f.item[keep], col[keep], f.val[keep], keep, f.dense, f.has_dense)


class StreamIndex:
    """The calibration stream's texts (then the topics' example items) as one block of BM25
    terms, to find a text's nearest stream items (see TopicModel.fit_neighbours). Shared by
    every topic: the neighbours of a batch are found once. Terms only: the static vectors
    place every world-news item near every other."""

    def __init__(self, pool: Feats, n_ids: int) -> None:
        vocab = np.unique(pool.sid)
        self.colmap = np.full(n_ids, -1, dtype=np.int64)
        self.colmap[vocab] = np.arange(len(vocab), dtype=np.int64)
        rows = Feats(
            pool.n, pool.start, pool.item, pool.sid, pool.val, None, np.zeros(pool.n, bool)
        )
        self.block = _Block(
            [("", ())] * pool.n, [1] * pool.n, rows, self.colmap[pool.sid], len(vocab)
        )

    def remap(self, kept: IntArr) -> None:
        """Follow Stats.prune's renumbering (``kept``: old id of every new id)."""
        self.colmap = _remap(self.colmap, kept)

    @property
    def size(self) -> int:
        return self.block.n_rows

    def nearest(self, f: Feats) -> IntArr:
        """(texts, NEIGHBOURS): the stream rows nearest each text, -1 where fewer share a
        word with it. A stream item all but identical to the text is the text itself."""
        parts = []
        for chunk in _chunks(f):
            sims = self.block.sims(_query(self.colmap, chunk))
            sims[sims >= SAME_TEXT] = 0.0
            parts.append(_top_columns(sims, NEIGHBOURS))
        return np.concatenate(parts) if parts else np.zeros((0, NEIGHBOURS), np.int64)


def _top_columns(sims: FloatArr, k: int) -> IntArr:
    """(rows, k): per row of ``sims``, the columns of its k largest positive values, best
    first, -1 where there are fewer."""
    n, m = sims.shape
    # The k-th largest of a sample of the columns is a floor for the k-th largest of the
    # row: only the few values above it need sorting (a select over whole rows costs more).
    sample = sims[:, :: max(1, m // (40 * k))]
    floor = np.zeros(n)
    if sample.shape[1] > k:
        # (a select near the low end is much faster in numpy than one near the high end)
        floor = -np.partition(-sample, k - 1, axis=1)[:, k - 1]
    flat = np.flatnonzero((sims >= floor[:, None]) & (sims > 0))
    rows, cols = np.divmod(flat, m)
    order = np.lexsort((-sims.ravel()[flat], rows))
    rows, cols = rows[order], cols[order]
    rank = np.arange(len(rows)) - offsets(np.bincount(rows, minlength=n))[rows]
    keep = rank < k
    out = np.full((n, k), -1, dtype=np.int64)
    out[rows[keep], rank[keep]] = cols[keep]
    return out


def _auc(values: FloatArr, positive: BoolArr) -> float:
    """ROC-AUC of ``values`` for the split ``positive`` (ties count half)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # 1-based mid-ranks
    n_pos = int(positive.sum())
    n_neg = len(values) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class _Supervised:
    """Logistic regression over [BM25 weights on the topic's stems | static vector]: the seeds
    (and their paragraphs) against ordinary stream items and the counter-examples.

    The stream is unlabelled and holds relevant items too, so only the items the similarity
    already places near ordinary news (z < SUP_NEG_Z) are taken as negatives (the "reliable
    negatives" of learning from positive and unlabelled data).
    """

    def __init__(self, n_cols: int, dims: int) -> None:
        self.w: FloatArr = np.zeros(n_cols, dtype=np.float64)
        self.w_dense: FloatArr = np.zeros(dims, dtype=np.float64)
        self.b = 0.0
        self.mid = 0.0
        self.spread = 1.0

    def fit(self, q: Query, y: FloatArr, weight: FloatArr) -> None:
        weight = weight / float(weight.sum())
        dense = _dense_part(q)
        # Plain gradient descent from zero with a fixed budget: rows are unit-scale, so a
        # step of 1 is stable, and the early stop adds to the L2 term's smoothing.
        for _ in range(SUP_ITERS):
            p = 1.0 / (1.0 + np.exp(-self._linear(q, dense)))
            g = weight * (p - y)
            self.w -= np.bincount(q.col, g[q.item] * q.val, minlength=len(self.w)) + (
                SUP_LAMBDA * self.w
            )
            if dense is not None:
                self.w_dense -= dense.T @ g + SUP_LAMBDA * self.w_dense
            self.b -= float(g.sum())

    def _linear(self, q: Query, dense: FloatArr | None) -> FloatArr:
        out = np.asarray(np.bincount(q.item, self.w[q.col] * q.val, minlength=q.n), np.float64)
        out += self.b
        if dense is not None:
            out += dense @ self.w_dense
        return out

    def values(self, q: Query) -> FloatArr:
        return self._linear(q, _dense_part(q))


def _dense_part(q: Query) -> FloatArr | None:
    """The static vectors as features (zero rows where a text has none)."""
    if q.dense is None:
        return None
    return np.asarray(SUP_DENSE * q.dense * q.has_dense[:, None], dtype=np.float64)


@dataclass(frozen=True)
class Result:
    """A batch through one topic: raw similarity, nearest document and its row sims."""

    raw: FloatArr
    doc: IntArr
    rows: FloatArr
    q: Query


class TopicModel:
    def __init__(
        self,
        topic: Topic,
        doc_feats: dict[str, Feats],
        n_ids: int,
        pseudo: Feats | None = None,
    ) -> None:
        self.name = topic.name
        # Long documents describe the topic area; short ones are example items (k-shot
        # positives, labelled items). Nearest-document similarity is taken against the
        # descriptions only: an example about one event pulls in every other item about that
        # event, relevant or not. Examples teach the supervised part instead. Without any
        # long document every seed is a description.
        profiles = [d for d in topic.seeds if len(d.text) >= EXAMPLE_CHARS]
        near = profiles or list(topic.seeds)
        self.n_near = len(near)
        self.n_examples = len(topic.seeds) - len(profiles) if profiles else len(topic.seeds)
        every = [doc_feats[d.name] for d in (*topic.seeds, *topic.counter)]
        sids = np.concatenate([f.sid for f in every] + ([pseudo.sid] if pseudo else []))
        vocab = np.unique(sids)
        self.n_cols = len(vocab)
        self.colmap = np.full(n_ids, -1, dtype=np.int64)  # stem id -> column
        self.colmap[vocab] = np.arange(self.n_cols, dtype=np.int64)
        self.dims = next((f.dense.shape[1] for f in every if f.dense is not None), 0)
        wholes = [doc_feats[d.name].take([0]) for d in near] + ([pseudo] if pseudo else [])
        self.docs = self._block(near, doc_feats)
        self.counter = self._block(topic.counter, doc_feats) if topic.counter else None
        self.centroid = self._centroid(wholes)
        self.n_docs = len(near) + (pseudo.n if pseudo else 0)
        # When there are both, the similarity is also taken against every seed and the two
        # mixed with weight ``all_weight``: a description that covers the area well gains from
        # leaving the examples out (they are in the supervised part, and taking them in twice
        # pulls the ranking to the events they report), one that only reports a single event
        # (a report without a brief) needs them. weigh_examples measures which it is.
        self.all_docs: _Block | None = None
        self.all_centroid: _Block | None = None
        self.all_weight = 0.5  # until weigh_examples has seen a stream
        self._examples: tuple[_Block, _Block | None, int] | None = None
        if profiles and len(profiles) < len(topic.seeds):
            self.all_docs = self._block(topic.seeds, doc_feats)
            self.all_centroid = self._centroid(
                [doc_feats[d.name].take([0]) for d in topic.seeds] + ([pseudo] if pseudo else [])
            )
            examples = [d for d in topic.seeds if len(d.text) < EXAMPLE_CHARS]
            self._examples = (
                self._block(examples, doc_feats),
                self._centroid([doc_feats[d.name].take([0]) for d in examples]),
                len(examples),
            )
        self.n_all = len(topic.seeds) + (pseudo.n if pseudo else 0)
        self.mid = 0.0
        self.spread = 1.0
        self.anchor = ANCHOR_MIN
        self._seed_feats = [doc_feats[d.name] for d in topic.seeds]
        self._counter_wholes = [doc_feats[d.name].take([0]) for d in topic.counter]
        self.sup: _Supervised | None = None
        self.sup_weight = 0.0
        self.sim_mid = 0.0
        self.sim_spread = 1.0
        self.stream: StreamIndex | None = None
        self.lift: FloatArr = np.zeros(0)

    def remap(self, kept: IntArr) -> None:
        """Follow Stats.prune's renumbering (``kept``: old id of every new id)."""
        self.colmap = _remap(self.colmap, kept)

    def query(self, f: Feats) -> Query:
        return _query(self.colmap, f)

    def _block(self, docs: Sequence[SeedDoc], doc_feats: dict[str, Feats]) -> _Block:
        parts = [doc_feats[d.name] for d in docs]
        rows = Feats.concat(parts)
        return _Block(
            [(d.name, d.passages) for d in docs],
            [p.n for p in parts],
            rows,
            self.colmap[rows.sid],
            self.n_cols,
        )

    def _centroid(self, parts: list[Feats]) -> _Block | None:
        wholes = Feats.concat(parts)
        m = wholes.n
        if m < 2:
            return None
        cols = self.colmap[wholes.sid]
        # Words several seeds share say what the topic is; a word of one seed says what that
        # seed's own event was.
        share = np.bincount(cols, (wholes.val > 0).astype(np.float64), minlength=self.n_cols) / m
        lex = np.bincount(cols, wholes.val, minlength=self.n_cols) / m * share**CONSENSUS
        lex /= max(float(np.linalg.norm(lex)), 1e-9)
        nz = np.flatnonzero(lex)
        dense = None
        has = np.zeros(1, dtype=bool)
        if wholes.dense is not None and wholes.has_dense.any():
            d = wholes.dense[wholes.has_dense].mean(axis=0)
            dense = (d / max(float(np.linalg.norm(d)), 1e-9)).astype(np.float32)[None, :]
            has[0] = True
        row = Feats(
            1,
            np.array([0, len(nz)], dtype=np.int64),
            np.zeros(len(nz), dtype=np.int64),
            nz,
            lex[nz],
            dense,
            has,
        )
        return _Block([("", ())], [1], row, nz, self.n_cols)

    def _sim(
        self, docs: _Block, centroid: _Block | None, n_docs: int, q: Query
    ) -> tuple[FloatArr, IntArr, FloatArr]:
        rows = docs.sims(q)
        sims = docs.doc_sims(rows)
        n = sims.shape[1]
        k = max(1, min(KNN, n // 3))
        top = np.partition(sims, n - k, axis=1)[:, n - k :] if n > k else sims
        value = top.mean(axis=1)
        best_doc = np.argmax(sims, axis=1)
        if centroid is not None:
            # A centroid of two unlike documents is neither; it earns weight with numbers.
            w = CENTROID_WEIGHT * max(0, n_docs - 2) / (n_docs - 2 + CENTROID_HALF)
            value = (1 - w) * value + w * centroid.sims(q)[:, 0]
        return value, best_doc, rows

    def evaluate(self, f: Feats, near: IntArr | None = None) -> Result:
        """Raw similarities of a batch, with what explanations need. ``near``: the batch's
        StreamIndex.nearest, when the caller has it already (it serves every topic)."""
        q = self.query(f)
        value, best_doc, rows = self._sim(self.docs, self.centroid, self.n_docs, q)
        if self.all_docs is not None and self.all_weight > 0:
            other = self._sim(self.all_docs, self.all_centroid, self.n_all, q)[0]
            value = (1 - self.all_weight) * value + self.all_weight * other
        if self.counter is not None:
            neg = self.counter.doc_sims(self.counter.sims(q)).max(axis=1)
            value = value - COUNTER_WEIGHT * np.maximum(0.0, neg)
        if self.sup is not None:
            sup = self.sup.values(q)
            value = (value - self.sim_mid) / self.sim_spread + self.sup_weight * (
                sup - self.sup.mid
            ) / self.sup.spread
        if self.stream is not None:
            near = self.stream.nearest(f) if near is None else near
            value = value + np.where(near >= 0, self.lift[near], 0.0).sum(axis=1) / NEIGHBOURS
        return Result(value, best_doc, rows, q)

    def weigh_examples(self, pool: Feats) -> None:
        """Set ``all_weight`` from how well the descriptions alone rank what the examples
        alone find in the stream ``pool``.

        The examples' own similarity marks the stream items it places clearly above ordinary
        news (z >= PICK_Z); the AUC of the descriptions' similarity on that split says whether
        the descriptions name the area the examples come from (a topic brief: AUC about 0.9)
        or describe something narrower (one meeting's report: about 0.65). Hundreds of stream
        items make the measure steady where a handful of examples would not.
        """
        if self._examples is None or not pool.n:
            return
        block, centroid, n = self._examples
        desc, mine = [], []
        for chunk in _chunks(pool):
            q = self.query(chunk)
            desc.append(self._sim(self.docs, self.centroid, self.n_docs, q)[0])
            mine.append(self._sim(block, centroid, n, q)[0])
        e = np.concatenate(mine)
        mid = float(np.median(e))
        picked = (e - mid) / max(MIN_SPREAD, mid - float(np.quantile(e, 0.16))) >= PICK_Z
        if picked.all() or not picked.any():
            return
        agree = _auc(np.concatenate(desc), picked)
        self.all_weight = float(np.clip((AGREE_HIGH - agree) / (AGREE_HIGH - AGREE_LOW), 0, 1))

    def raws(self, f: Feats, near: IntArr | None = None) -> FloatArr:
        """Raw similarities of a batch of any size, CHUNK texts at a time."""
        parts = []
        at = 0
        for chunk in _chunks(f):
            part = None if near is None else near[at : at + chunk.n]
            parts.append(self.evaluate(chunk, part).raw)
            at += chunk.n
        return np.concatenate(parts) if parts else np.zeros(0)

    def scores(self, raw: FloatArr) -> FloatArr:
        """Calibrated scores in 0..1."""
        u = (raw - self.mid) / self.spread / self.anchor
        with np.errstate(over="ignore"):
            out: FloatArr = 1.0 / (1.0 + np.exp(-U_SLOPE * (u - U_MID)))
        return out

    def calibrate(self, background: Feats, near: IntArr | None = None) -> FloatArr:
        """Fit mid and spread to ``background``; returns its raw similarities."""
        raws = self.raws(background, near)
        if not background.n:
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

    def fit_supervised(self, pool: Feats, raws: FloatArr) -> FloatArr:
        """Learn the supervised part once the topic has example items; then recalibrate.
        Returns the raw similarities of ``pool`` as they now stand."""
        if not self.n_examples or not pool.n:
            return raws
        self.sim_mid, self.sim_spread = self.mid, self.spread
        negatives = np.flatnonzero((raws - self.mid) / self.spread < SUP_NEG_Z)
        pos: list[Feats] = []
        pos_w: list[float] = []
        for doc in self._seed_feats:
            pos.append(doc.take([0]))
            pos_w.append(1.0)
            if doc.n > 2:  # the paragraphs of a long document are item-sized positives
                pos.append(doc.take(np.arange(1, doc.n)))
                pos_w += [1.0 / (doc.n - 1)] * (doc.n - 1)
        # The analyst's own "not like this" outweighs an unlabelled stream item.
        neg_w = [1.0] * len(negatives) + [COUNTER_SUP] * len(self._counter_wholes)
        x = Feats.concat([*pos, pool.take(negatives), *self._counter_wholes])
        n_pos = len(pos_w)
        y = np.r_[np.ones(n_pos), np.zeros(x.n - n_pos)]
        # Both classes weigh the same in the loss, however many stream items there are.
        wp = np.array(pos_w)
        wn = np.array(neg_w)
        weight = np.r_[wp / wp.sum(), wn / wn.sum()] if len(wn) else wp / wp.sum()
        sup = _Supervised(self.n_cols, self.dims)
        sup.fit(self.query(x), y, weight)
        values = np.concatenate([sup.values(self.query(c)) for c in _chunks(pool)])
        sup.mid = float(np.median(values))
        sup.spread = max(MIN_SPREAD, sup.mid - float(np.quantile(values, 0.16)))
        self.sup = sup
        self.sup_weight = SUP_WEIGHT * self.n_examples / (self.n_examples + SUP_HALF)
        return self.calibrate(pool)

    def fit_neighbours(
        self, pool: Feats, raws: FloatArr, stream: StreamIndex, near: IntArr, examples: IntArr
    ) -> None:
        """Smooth scores over the stream (``pool``, indexed as the first rows of ``stream``;
        ``near`` its own nearest rows; ``examples`` the rows of this topic's example items,
        which the index holds after the stream), then recalibrate.

        Items about one story or one kind of event come in groups, and a group shares words
        that no seed has: a terse item whose own words barely touch the seeds is still
        relevant when the stream items that share its words score high, and a loosely
        similar item is less so when they score like ordinary news. Each stream item's z is
        kept; a text's raw similarity is lifted by NEIGHBOUR_WEIGHT times the mean z of its
        NEIGHBOURS nearest stream items (label propagation in one step; a missing neighbour
        counts as ordinary news, z = 0). The topic's examples are neighbours too, labelled
        ones: each counts as a typical clear match (z = the anchor); another topic's examples
        count as ordinary news.
        """
        lift = np.zeros(stream.size)
        lift[: pool.n] = NEIGHBOUR_WEIGHT * (raws - self.mid)  # z, back in raw units
        lift[examples] = NEIGHBOUR_WEIGHT * self.anchor * self.spread
        self.lift = lift
        self.stream = stream
        self.calibrate(pool, near)
