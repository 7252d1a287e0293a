"""The stream-dependent half of the text features: document frequencies, BM25, word vectors.

``Stats`` holds document frequencies per stem (a background prior plus what the stream has
shown) and per static-table word; ``featurize`` turns a batch of analyses into ``Feats``, the
unit-normalized BM25 weights and static vectors of every text, as flat numpy arrays (one pass
for the whole batch instead of numpy calls per item).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt

from seedwatch.classify.analysis import Analysis
from seedwatch.classify.static import StaticTable
from seedwatch.classify.text import CYRILLIC, stems

IntArr = npt.NDArray[np.int64]
FloatArr = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]
Vec = npt.NDArray[np.float32]

K1 = 1.2
RU_MIN_STREAM = 50  # Russian stream texts before Russian document frequencies are trusted
# Stems known from the stream alone (no background prior) kept at most: the vocabulary of news
# grows without end (names, typos), so beyond this the rarest are forgotten, down to half. A
# forgotten stem counts as unseen again, which for a word seen a few times among hundreds of
# thousands of texts moves its IDF by about one.
STEM_CAP = 40_000
UNSEEN, UNSEEN_CYR = 0, 1  # ids of the stems the statistics do not hold


def offsets(lens: IntArr) -> IntArr:
    """0, lens[0], lens[0] + lens[1], ...: where each of consecutive runs starts, and the end."""
    out = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=out[1:])
    return out


def spans(lo: IntArr, lens: IntArr) -> IntArr:
    """lo[i], lo[i] + 1, ..., lo[i] + lens[i] - 1 for every i, concatenated."""
    ends = np.cumsum(lens)
    total = int(ends[-1]) if len(ends) else 0
    return np.repeat(lo - (ends - lens), lens) + np.arange(total, dtype=np.int64)


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


class Stats:
    """Document frequencies: a background prior plus what the stream has shown.

    Stems get dense ids (a dict and parallel arrays) so a batch's IDFs are one numpy
    expression. Ids below ``n_fixed`` (the two "unseen" ids and the prior's stems) are never
    forgotten; the rest are pruned beyond STEM_CAP, which renumbers them (see prune).
    """

    def __init__(self, table: StaticTable | None) -> None:
        prior = _prior(table) if table is not None else {}
        self.prior_n = float(table.ndocs) if table is not None else 0.0
        self.stream_n = 0
        self.stream_n_cyr = 0  # stream documents with Cyrillic words
        self.stems: list[str] = ["", "", *prior]
        self.ids: dict[str, int] = {s: i for i, s in enumerate(self.stems) if i > 1}
        self.n_fixed = len(self.stems)
        size = max(1024, 2 * self.n_fixed)
        self.prior_df = np.zeros(size, dtype=np.float64)
        self.prior_df[2 : self.n_fixed] = list(prior.values())
        self.stream_df = np.zeros(size, dtype=np.float64)
        self.cyr = np.zeros(size, dtype=bool)
        self.cyr[UNSEEN_CYR] = True
        self.cyr[2 : self.n_fixed] = [CYRILLIC.search(s) is not None for s in prior]
        self.word_df = np.zeros(len(table.words) if table is not None else 0, dtype=np.float64)

    def copy(self) -> Stats:
        new = Stats.__new__(Stats)
        new.__dict__.update(self.__dict__)
        new.stems, new.ids = list(self.stems), dict(self.ids)
        for name in ("prior_df", "stream_df", "cyr", "word_df"):
            setattr(new, name, getattr(self, name).copy())
        return new

    @property
    def size(self) -> int:
        return len(self.stems)

    def lookup(self, analyses: Sequence[Analysis], *, add: bool) -> IntArr:
        """Ids of every stem of ``analyses``, concatenated. Unknown stems are added when
        ``add``, else they get the "unseen" id of their script."""
        joined = " ".join(a.stems for a in analyses if a.stems)
        flat = joined.split(" ") if joined else []
        ids = np.fromiter(map(self.ids.get, flat, repeat(-1)), dtype=np.int64, count=len(flat))
        missing = np.flatnonzero(ids < 0)
        if not missing.size:
            return ids
        # Cyrillic stems close each text's list (see Analysis).
        lens = np.fromiter((a.n_stems for a in analyses), dtype=np.int64, count=len(analyses))
        n_cyr = np.fromiter((a.n_cyr for a in analyses), dtype=np.int64, count=len(analyses))
        ends = np.cumsum(lens)
        text = np.searchsorted(ends, missing, side="right")
        cyr = (ends[text] - missing <= n_cyr[text]).tolist()
        if not add:
            ids[missing] = cyr
            return ids
        get = self.ids.get
        for j, is_cyr in zip(missing.tolist(), cyr, strict=True):
            # A stem new to the statistics may occur in several texts of the batch.
            known = get(flat[j])
            ids[j] = known if known is not None else self._new(flat[j], is_cyr)
        return ids

    def _new(self, stem: str, cyr: bool) -> int:
        i = len(self.stems)
        if i == len(self.stream_df):
            grow = len(self.stream_df)
            self.prior_df = np.r_[self.prior_df, np.zeros(grow)]
            self.stream_df = np.r_[self.stream_df, np.zeros(grow)]
            self.cyr = np.r_[self.cyr, np.zeros(grow, dtype=bool)]
        self.stems.append(stem)
        self.ids[stem] = i
        self.cyr[i] = cyr
        return i

    def add(self, analyses: Sequence[Analysis]) -> None:
        """Count ``analyses`` as stream documents."""
        ids = self.lookup(analyses, add=True)
        uniq, counts = np.unique(ids, return_counts=True)
        self.stream_df[uniq] += counts
        self.stream_n += len(analyses)
        self.stream_n_cyr += sum(1 for a in analyses if a.n_cyr)
        if self.word_df.size:
            rows = np.frombuffer(b"".join(a.words for a in analyses), dtype=np.int32)
            uniq, counts = np.unique(rows, return_counts=True)
            self.word_df[uniq] += counts

    def idf(self, ids: IntArr) -> FloatArr:
        # The prior is English; a Russian word is rare or common among Russian texts only.
        # While the stream has shown only a few Russian texts, every Russian word counts as
        # rare (as an English word unseen in the background would). With none at all, Russian
        # seed words stay light: no item can match them, they would only dilute the English.
        n_lat = self.prior_n + self.stream_n - self.stream_n_cyr
        n: FloatArr | float = n_lat
        if self.stream_n_cyr == 0 or self.stream_n_cyr >= RU_MIN_STREAM:
            n = np.where(self.cyr[ids], float(self.stream_n_cyr), n_lat)
        d = self.prior_df[ids] + self.stream_df[ids]
        out: FloatArr = np.where(np.greater(n, 0), np.log((np.add(n, 1.0)) / (d + 0.5)), 1.0)
        return out

    def word_idf(self, table: StaticTable) -> FloatArr:
        """IDF of every table word, for the static vectors."""
        n = self.prior_n + self.stream_n
        out: FloatArr = np.log((n + 1.0) / (table.df + self.word_df + 0.5))
        return out

    def over_cap(self) -> bool:
        return self.size - self.n_fixed > STEM_CAP

    def prune(self, pinned: IntArr) -> IntArr:
        """Forget the rarest stream-only stems (not ``pinned``) down to STEM_CAP / 2; returns
        the old id of every kept stem, in new-id order (ids are renumbered)."""
        df = self.stream_df[: self.size]
        free = np.ones(self.size, dtype=bool)
        free[: self.n_fixed] = False
        free[pinned] = False
        # The bar: the df of the (STEM_CAP / 2)-th most frequent free stem; singletons go anyway.
        ranked = np.sort(df[free])
        at = len(ranked) - STEM_CAP // 2 - 1
        bar = max(1.0, float(ranked[at])) if at >= 0 else 1.0
        kept = np.flatnonzero(~free | (df > bar))
        self.stems = [self.stems[i] for i in kept.tolist()]
        self.ids = {s: i for i, s in enumerate(self.stems) if i > 1}
        for name in ("prior_df", "stream_df", "cyr"):
            old = getattr(self, name)
            new = np.zeros_like(old)
            new[: len(kept)] = old[kept]
            setattr(self, name, new)
        return kept


@dataclass(frozen=True)
class Feats:
    """Features of a batch of texts. Entries (one per distinct stem of a text) are grouped
    by text: text i owns entries start[i]:start[i + 1]."""

    n: int
    start: IntArr
    item: IntArr  # text of each entry
    sid: IntArr  # stem id (Stats) of each entry
    val: FloatArr  # unit-normalized BM25 weight
    dense: Vec | None  # (n, dims) unit rows (zero where not has_dense); None without a table
    has_dense: BoolArr

    def take(self, idx: IntArr | Sequence[int]) -> Feats:
        """The texts ``idx``, in that order."""
        rows = np.asarray(idx, dtype=np.int64)
        lens = self.start[rows + 1] - self.start[rows]
        pos = spans(self.start[rows], lens)
        return Feats(
            n=len(rows),
            start=offsets(lens),
            item=np.repeat(np.arange(len(rows), dtype=np.int64), lens),
            sid=self.sid[pos],
            val=self.val[pos],
            dense=None if self.dense is None else self.dense[rows],
            has_dense=self.has_dense[rows],
        )

    @staticmethod
    def concat(parts: Sequence[Feats]) -> Feats:
        offsets = np.cumsum([0] + [p.n for p in parts])
        entries = np.cumsum([0] + [len(p.sid) for p in parts])
        dense = [p.dense for p in parts if p.dense is not None]
        return Feats(
            n=int(offsets[-1]),
            start=np.concatenate(
                [*(p.start[:-1] + e for p, e in zip(parts, entries, strict=False)), entries[-1:]]
            ).astype(np.int64),
            item=np.concatenate([p.item + o for p, o in zip(parts, offsets, strict=False)]),
            sid=np.concatenate([p.sid for p in parts]),
            val=np.concatenate([p.val for p in parts]),
            dense=np.concatenate(dense) if len(dense) == len(parts) and dense else None,
            has_dense=np.concatenate([p.has_dense for p in parts]),
        )


def featurize(
    analyses: Sequence[Analysis],
    stats: Stats,
    *,
    table: StaticTable | None,
    word_idf: FloatArr | None,
    add: bool,
) -> Feats:
    """BM25 weights (IDF from ``stats``) and, with a table, IDF-weighted static vectors."""
    n = len(analyses)
    lens = np.fromiter((a.n_stems for a in analyses), dtype=np.int64, count=n)
    start = offsets(lens)
    item = np.repeat(np.arange(n, dtype=np.int64), lens)
    sid = stats.lookup(analyses, add=add)
    tf = np.frombuffer(b"".join(a.tf for a in analyses), dtype=np.uint16).astype(np.float64)
    length = np.maximum(np.bincount(item, tf, minlength=n), 1.0)
    norm_len = 0.25 + 0.75 * length / 60.0
    w = tf * (K1 + 1) / (tf + K1 * norm_len[item]) * stats.idf(sid)
    norm = np.sqrt(np.bincount(item, w * w, minlength=n))
    norm[norm == 0] = 1.0
    has_dense = np.zeros(n, dtype=bool)
    dense = None
    if table is not None and word_idf is not None:
        dense = _dense(analyses, table, word_idf, has_dense)
    return Feats(n, start, item, sid, w / norm[item], dense, has_dense)


def _dense(
    analyses: Sequence[Analysis], table: StaticTable, word_idf: FloatArr, has: BoolArr
) -> Vec:
    """Unit IDF-weighted sums of the texts' word vectors; sets ``has`` where there is one."""
    vectors = table.vectors
    out = np.zeros((len(analyses), vectors.shape[1]), dtype=np.float32)
    rows = [i for i, a in enumerate(analyses) if a.dense]
    if not rows:
        return out
    chosen = [analyses[i] for i in rows]
    lens = np.fromiter((len(a.word_tf) // 2 for a in chosen), dtype=np.int64, count=len(chosen))
    wid = np.frombuffer(b"".join(a.words for a in chosen), dtype=np.int32)
    wtf = np.frombuffer(b"".join(a.word_tf for a in chosen), dtype=np.uint16)
    weights = (wtf * word_idf[wid]).astype(np.float32)
    sums = np.add.reduceat(vectors[wid] * weights[:, None], np.cumsum(lens) - lens, axis=0)
    sums *= table.scale
    norms = np.linalg.norm(sums, axis=1)
    ok = norms > 0
    idx = np.asarray(rows, dtype=np.int64)[ok]
    out[idx] = sums[ok] / norms[ok, None]
    has[idx] = True
    return out
