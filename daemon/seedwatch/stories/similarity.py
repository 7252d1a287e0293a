"""Exact verification of candidate pairs: several signals must agree before two items fold.

One probe is compared with all its candidates at once: the overlaps are counted with a few
numpy calls over the candidates' concatenated tokens, and only the decision, a handful of
comparisons per candidate, runs in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from seedwatch.stories.fingerprint import U32, Fingerprint
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

    url_key: Sequence[int]
    content_key: Sequence[int]
    source: Sequence[int]
    language: Sequence[str]
    script: Sequence[str]
    n_entities: I64
    n_title: I64
    n_other: I64
    tokens: U32

    @classmethod
    def of(cls, fps: Sequence[Fingerprint]) -> Others:
        n_ent = np.array([f.n_entities for f in fps], dtype=np.int64)
        n_title = np.array([f.n_title for f in fps], dtype=np.int64)
        sizes = np.array([len(f.tokens) for f in fps], dtype=np.int64)
        return cls(
            url_key=[f.url_key for f in fps],
            content_key=[f.content_key for f in fps],
            source=[f.source for f in fps],
            language=[f.language for f in fps],
            script=[f.script for f in fps],
            n_entities=n_ent,
            n_title=n_title,
            n_other=sizes - n_ent - n_title,
            tokens=np.concatenate([f.tokens for f in fps]) if fps else np.zeros(0, np.uint32),
        )


def _member(values: U32, sorted_set: U32) -> BoolArray:
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_set, values)
    np.minimum(at, len(sorted_set) - 1, out=at)
    hit: BoolArray = sorted_set[at] == values
    return hit


@dataclass(frozen=True)
class _Counts:
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
    """One item's fingerprint, compared with many candidates in one pass."""

    __slots__ = ("entities", "fp", "settings", "terms", "title")

    def __init__(self, fp: Fingerprint, settings: StorySettings) -> None:
        self.fp = fp
        self.settings = settings
        self.entities = fp.entities
        self.title = fp.title
        self.terms = np.sort(fp.terms)

    def compare(self, others: Others, templates: Templates | None = None) -> list[Similarity]:
        """The similarity of the probe with each of ``others``, in order."""
        a = self.fp
        m = len(others.source)
        n_ent, n_title = others.n_entities, others.n_title
        sizes = n_ent + n_title + others.n_other
        starts = np.cumsum(sizes) - sizes
        tokens = others.tokens
        seg = np.repeat(np.arange(m), sizes)
        pos = np.arange(len(tokens)) - starts[seg]
        is_ent = pos < n_ent[seg]
        is_term = ~is_ent
        in_ents = _member(tokens, self.entities) & is_ent
        in_terms = _member(tokens, self.terms) & is_term
        in_title = _member(tokens, self.title) & is_term
        is_title = is_term & (pos < (n_ent + n_title)[seg])
        shared_e = np.bincount(seg[in_ents], minlength=m).tolist()
        shared_t = np.bincount(seg[in_terms], minlength=m).tolist()
        shared_a = np.bincount(seg[in_title], minlength=m).tolist()
        shared_b = np.bincount(seg[in_terms & is_title], minlength=m).tolist()
        n_e, n_h = n_ent.tolist(), n_title.tolist()
        n_t = (n_title + others.n_other).tolist()
        out: list[Similarity] = []
        for j in range(m):
            if a.url_key and a.url_key == others.url_key[j]:
                out.append(URL_MATCH)
                continue
            if a.content_key == others.content_key[j]:
                out.append(CONTENT_MATCH)
                continue
            source, language, script = others.source[j], others.language[j], others.script[j]
            counts = _Counts(
                shared_entities=shared_e[j],
                entity_union=len(self.entities) + n_e[j] - shared_e[j],
                other_entities=n_e[j],
                shared_terms=shared_t[j],
                other_terms=n_t[j],
                shared_a=shared_a[j],
                title_a=len(self.title),
                shared_b=shared_b[j],
                title_b=n_h[j],
            )
            sim = self._decide(counts, source, language, script)
            # Template text only takes evidence away: a pair that fails with it counted fails
            # without it, and only a pass needs the (dearer) template check.
            tpl = self._templates(templates, source) if sim.reason else _NO_TEMPLATE
            if tpl:
                start = int(starts[j])
                drop_e, drop_a, drop_b = self._template_shares(
                    tokens[start : start + int(sizes[j])].tolist(), n_e[j], n_h[j], tpl
                )
                if drop_e or drop_a or drop_b:
                    counts = replace(
                        counts,
                        shared_entities=counts.shared_entities - drop_e,
                        shared_a=counts.shared_a - drop_a,
                        title_a=counts.title_a - drop_a,
                        shared_b=counts.shared_b - drop_b,
                        title_b=counts.title_b - drop_b,
                    )
                    sim = self._decide(counts, source, language, script)
            out.append(sim)
        return out

    def _templates(self, templates: Templates | None, source: int) -> frozenset[int]:
        if templates is None:
            return _NO_TEMPLATE
        own = templates(self.fp.source)
        return own if source == self.fp.source else own | templates(source)

    def _template_shares(
        self, tokens: list[int], n_ent: int, n_title: int, tpl: frozenset[int]
    ) -> tuple[int, int, int]:
        """How many shared names, probe headline words and candidate headline words are
        template text of either outlet: names both items carry because their outlets always
        print them are no evidence."""
        ents = set(self.entities.tolist())
        title = set(self.title.tolist())
        terms = set(self.terms.tolist())
        drop_e = sum(1 for h in tokens[:n_ent] if h in ents and (h << 1 | ENTITY_TAG) in tpl)
        drop_a = sum(1 for h in tokens[n_ent:] if h in title and h << 1 in tpl)
        drop_b = sum(1 for h in tokens[n_ent : n_ent + n_title] if h in terms and h << 1 in tpl)
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
            a.script not in _CASED
            or min(len(self.entities), c.other_entities) < s.caseless_entities
        )
        if not caseless and ne < s.entity_min:
            return _NONE
        union = len(self.terms) + c.other_terms - c.shared_terms
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
    return Probe(a, settings).compare(Others.of([b]))[0]
