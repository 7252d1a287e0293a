"""Exact verification of candidate pairs: several signals must agree before two items fold.

Pairs are verified in batches (every candidate of every probe in a batch at once): each
candidate token is looked up in its probe's sorted tokens (Fingerprint.lookup), and one
histogram over (pair, part of the candidate, what the token is to the probe) gives all overlaps.
Pairs that cannot pass are dropped by array arithmetic; only the decision for the rest, a
handful of comparisons per pair, runs in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from seedwatch.stories.fingerprint import IS_ENTITY, IS_TERM, IS_TITLE, U32, U64, Fingerprint
from seedwatch.stories.settings import StorySettings

I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ENTITY_TAG = 1  # template keys: entity hash << 1 | 1, headline word hash << 1
Templates = Callable[[int], frozenset[int]]  # outlet -> its template keys


@dataclass(frozen=True)
class Similarity:
    """The signals of one pair; ``reason`` is empty when they do not make one story."""

    terms: float  # Jaccard of lead terms (headline included)
    entities: float  # Jaccard of names and numbers
    shared_entities: int
    headline: float  # share of each headline's words that the other item uses, averaged
    score: float  # terms + entities + headline / 2
    reason: str  # "url" | "content" | "near-duplicate" | "event" | "cross-language" | ""


_NONE = Similarity(0.0, 0.0, 0, 0.0, 0.0, "")
_CASED = frozenset({"latin", "cyrillic", "greek"})
_NO_TEMPLATE: frozenset[int] = frozenset()
URL_MATCH = Similarity(1.0, 1.0, 0, 1.0, 1.0, "url")
CONTENT_MATCH = Similarity(1.0, 1.0, 0, 1.0, 1.0, "content")


@dataclass(frozen=True)
class Others:
    """Candidates in columns; ``tokens`` concatenates their Fingerprint.tokens in order."""

    url_key: U64
    content_key: U64
    source: U32
    language: Sequence[str]
    script: Sequence[str]
    sizes: npt.NDArray[np.uint16]  # (m, 3): names, headline words, other lead words
    tokens: U32

    @cached_property
    def rows(self) -> list[tuple[int, int, int, int, int, int]]:
        """Per candidate as Python ints: URL key, content key, outlet, and its sizes."""
        columns = (self.url_key, self.content_key, self.source, *self.sizes.T)
        return list(zip(*(c.tolist() for c in columns), strict=True))

    @classmethod
    def of(cls, fps: Sequence[Fingerprint]) -> Others:
        return cls(
            url_key=np.array([f.url_key for f in fps], dtype=np.uint64),
            content_key=np.array([f.content_key for f in fps], dtype=np.uint64),
            source=np.array([f.source for f in fps], dtype=np.uint32),
            language=[f.language for f in fps],
            script=[f.script for f in fps],
            sizes=np.array(
                [(f.n_entities, f.n_title, len(f.tokens) - f.n_entities - f.n_title) for f in fps],
                dtype=np.uint16,
            ).reshape(-1, 3),
            tokens=np.concatenate([f.tokens for f in fps]) if fps else np.zeros(0, np.uint32),
        )


def _selector() -> I64:
    """Sums a (pair, part, probe kind bits) histogram into the four overlaps."""
    sel = np.zeros((3, 8, 4), dtype=np.int64)
    for bits in range(8):
        sel[0, bits, 0] = bits & IS_ENTITY > 0  # shared names
        for part in (1, 2):
            sel[part, bits, 1] = bits & IS_TERM > 0  # shared lead words
            sel[part, bits, 2] = bits & IS_TITLE > 0  # probe headline words in its lead
        sel[1, bits, 3] = bits & IS_TERM > 0  # its headline words in the probe's lead
    return sel.reshape(24, 4)


_SELECT = _selector()


def overlaps(probes: Sequence[Fingerprint], owner: I64, others: Others) -> I64:
    """Per pair j (probes[owner[j]] with candidate j of ``others``): shared names, shared lead
    words, the probe's headline words in the candidate's lead, the candidate's headline words
    in the probe's lead."""
    m = len(owner)
    tokens = others.tokens
    if not m or not len(tokens):
        return np.zeros((m, 4), dtype=np.int64)
    sizes = others.sizes
    lengths = [len(fp.lookup) for fp in probes]
    values = np.concatenate([fp.lookup for fp in probes]).astype(np.uint64)
    table = (np.arange(len(probes), dtype=np.uint64).repeat(lengths) << np.uint64(32)) | values
    if not len(table):
        return np.zeros((m, 4), dtype=np.int64)
    kinds = np.concatenate([fp.lookup_kinds for fp in probes])
    pair_of_token = owner.astype(np.uint64).repeat(sizes.sum(axis=1, dtype=np.int64))
    query = (pair_of_token << np.uint64(32)) | tokens
    at = table.searchsorted(query)
    np.minimum(at, len(table) - 1, out=at)
    bits = kinds[at] * (table[at] == query)
    part = np.arange(3 * m).repeat(sizes.ravel())
    hist = np.bincount(part * 8 + bits, minlength=24 * m).reshape(m, 24)
    out: I64 = hist @ _SELECT
    return out


def hopeful(
    probes: Sequence[Fingerprint], owner: I64, others: Others, shared: I64, s: StorySettings
) -> BoolArray:
    """Pairs that may pass: the others fail every rule whatever templates take away."""
    n_title_p = np.array([fp.n_title for fp in probes], dtype=np.int64)[owner]
    n_terms_p = np.array([len(fp.tokens) - fp.n_entities for fp in probes], dtype=np.int64)[owner]
    content_p = np.array([fp.content_key for fp in probes], dtype=np.uint64)[owner]
    url_p = np.array([fp.url_key for fp in probes], dtype=np.uint64)[owner]
    sizes = others.sizes.astype(np.int64)
    n_terms_o = sizes[:, 1] + sizes[:, 2]
    tj = shared[:, 1] / np.maximum(n_terms_p + n_terms_o - shared[:, 1], 1)
    head2 = shared[:, 2] / np.maximum(n_title_p, 1) + shared[:, 3] / np.maximum(sizes[:, 1], 1)
    exact = (content_p == others.content_key) | ((url_p != 0) & (url_p == others.url_key))
    names = shared[:, 0] >= min(s.cross_entity_min, s.script_cross_entity_min)
    words = (tj >= min(s.term_min, s.caseless_term_min)) & (head2 >= 2 * s.headline_min)
    out: BoolArray = exact | names | words | (tj >= s.near_duplicate)
    return out


class _Counts(NamedTuple):
    """Overlaps of the probe with one candidate, template keys already taken out."""

    shared_entities: int
    entity_union: int
    other_entities: int
    shared_terms: int
    other_terms: int
    shared_a: int  # the probe's headline words found in the candidate's lead
    title_a: int
    shared_b: int  # the candidate's headline words found in the probe's lead
    title_b: int


class Probe:
    """One item's fingerprint, the side that decides."""

    __slots__ = ("fp", "n_entities", "n_terms", "n_title", "settings")

    def __init__(self, fp: Fingerprint, settings: StorySettings) -> None:
        self.fp = fp
        self.settings = settings
        self.n_entities = fp.n_entities
        self.n_title = fp.n_title
        self.n_terms = len(fp.tokens) - fp.n_entities

    def similarity(
        self,
        others: Others,
        j: int,
        shared: list[int],
        templates: Templates | None = None,
    ) -> Similarity:
        """The similarity with candidate ``j`` of ``others``, given its overlaps()."""
        a = self.fp
        url_key, content_key, source, n_ent, n_title, n_other = others.rows[j]
        if a.url_key and a.url_key == url_key:
            return URL_MATCH
        if a.content_key == content_key:
            return CONTENT_MATCH
        shared_e, shared_t, shared_a, shared_b = shared
        language, script = others.language[j], others.script[j]
        counts = _Counts(
            shared_entities=shared_e,
            entity_union=self.n_entities + n_ent - shared_e,
            other_entities=n_ent,
            shared_terms=shared_t,
            other_terms=n_title + n_other,
            shared_a=shared_a,
            title_a=self.n_title,
            shared_b=shared_b,
            title_b=n_title,
        )
        sim = self._decide(counts, source, language, script)
        # Template text only takes evidence away: a pair that fails with it counted fails
        # without it, and only a pass needs the (dearer) template check.
        if not sim.reason or templates is None:
            return sim
        own = templates(a.source)
        theirs = templates(source) if source != a.source else _NO_TEMPLATE
        if not own and not theirs:
            return sim
        start = int(others.sizes[:j].sum())
        mine = others.tokens[start : start + n_ent + n_title + n_other].tolist()
        drop_e, drop_a, drop_b = self._template_shares(mine, n_ent, n_title, own, theirs)
        if not (drop_e or drop_a or drop_b):
            return sim
        counts = _Counts(
            shared_entities=shared_e - drop_e,
            entity_union=counts.entity_union,
            other_entities=n_ent,
            shared_terms=shared_t,
            other_terms=n_title + n_other,
            shared_a=shared_a - drop_a,
            title_a=self.n_title - drop_a,
            shared_b=shared_b - drop_b,
            title_b=n_title - drop_b,
        )
        return self._decide(counts, source, language, script)

    def _template_shares(
        self,
        tokens: list[int],
        n_ent: int,
        n_title: int,
        own: frozenset[int],
        theirs: frozenset[int],
    ) -> tuple[int, int, int]:
        """How many shared names, probe headline words and candidate headline words are
        template text of either outlet: names both items carry because their outlets always
        print them are no evidence."""
        fp = self.fp
        ents = set(fp.entities.tolist())
        title = set(fp.title.tolist())
        terms = set(fp.terms.tolist())

        def template(key: int) -> bool:
            return key in own or key in theirs

        drop_e = sum(1 for h in tokens[:n_ent] if h in ents and template(h << 1 | ENTITY_TAG))
        drop_a = sum(1 for h in tokens[n_ent:] if h in title and template(h << 1))
        drop_b = sum(1 for h in tokens[n_ent : n_ent + n_title] if h in terms and template(h << 1))
        return drop_e, drop_a, drop_b

    def _decide(self, c: _Counts, source: int, language: str, script: str) -> Similarity:
        a, s = self.fp, self.settings
        ne = c.shared_entities
        ej = ne / c.entity_union if c.entity_union else 0.0
        if a.script != script:
            return self._cross(ne, ej)
        other_language = a.language != language and "und" not in (a.language, language)
        # Cheap rejection first: most candidates share a name or two and nothing else.
        # Scripts without capitals give names only where Latin brands or digits slip in
        # ("beIN SPORTS", "HD"): those are no evidence of one event.
        caseless = (
            a.script not in _CASED or min(self.n_entities, c.other_entities) < s.caseless_entities
        )
        if not caseless and ne < s.entity_min:
            return _NONE
        union = self.n_terms + c.other_terms - c.shared_terms
        tj = c.shared_terms / union if union else 0.0
        ha = c.shared_a / c.title_a if c.title_a else 0.0
        hb = c.shared_b / c.title_b if c.title_b else 0.0
        head = (ha + hb) / 2
        score = tj + ej + 0.5 * head
        if other_language and tj < s.cross_term_max and a.source != source:
            # Two languages in one script (German, English): stems differ, names do not. Few
            # shared words also tell a real language pair from a misdetected one.
            cross = self._cross(ne, ej, same_script=True)
            if cross.reason:
                return cross
        reason = ""
        if tj >= s.near_duplicate:
            reason = "near-duplicate"
        elif a.source == source and not s.same_outlet_events:
            # One outlet's two different articles are two stories to its readers (and share
            # its template); a re-post under a new URL is caught as a near-duplicate above.
            pass
        elif caseless:
            # Scripts without capitals (Arabic, CJK) give no names: words and headline decide.
            if tj >= s.caseless_term_min and head >= s.headline_min:
                reason = "event"
        elif tj >= s.term_min and head >= s.headline_min and score >= s.score_min:
            reason = "event"
        return Similarity(tj, ej, ne, head, score, reason)

    def _cross(self, ne: int, ej: float, *, same_script: bool = False) -> Similarity:
        # Words never agree across scripts; transliterated names and numbers do. Language tags
        # only add this path: detection confuses neighbours (German taken for English), so
        # one script is always also compared word by word.
        s = self.settings
        if same_script:
            ok = ne >= s.script_cross_entity_min and ej >= s.script_cross_entity_jaccard_min
        else:
            ok = ne >= s.cross_entity_min and ej >= s.cross_entity_jaccard_min
        return Similarity(0.0, ej, ne, 0.0, ej, "cross-language" if ok else "")


def compare(a: Fingerprint, b: Fingerprint, settings: StorySettings) -> Similarity:
    """Whether ``a`` and ``b`` report one story, and how strongly each signal says so."""
    others = Others.of([b])
    shared = overlaps([a], np.zeros(1, dtype=np.int64), others)
    return Probe(a, settings).similarity(others, 0, shared[0].tolist())
