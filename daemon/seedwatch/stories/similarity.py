"""Exact verification of one candidate pair: several signals must agree before two items fold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seedwatch.stories.fingerprint import U32, Fingerprint
from seedwatch.stories.settings import StorySettings


@dataclass(frozen=True)
class Similarity:
    """The signals of one pair; ``reason`` is empty when they do not make one story."""

    terms: float  # Jaccard of lead terms
    entities: float  # Jaccard of names and numbers
    shared_entities: int
    headline: float  # share of each headline's words found in the other item, averaged
    score: float
    reason: str  # "url" | "content" | "near-duplicate" | "event" | "cross-language" | ""


def _shared(a: U32, b: U32) -> int:
    if not a.size or not b.size:
        return 0
    return int(np.intersect1d(a, b, assume_unique=True).size)


def _jaccard(shared: int, a: U32, b: U32) -> float:
    union = a.size + b.size - shared
    return shared / union if union else 0.0


def compare(a: Fingerprint, b: Fingerprint, s: StorySettings) -> Similarity:
    """Whether ``a`` and ``b`` report one story, and how strongly each signal says so."""
    if a.url and a.url == b.url:
        return Similarity(1.0, 1.0, 0, 1.0, 1.0, "url")
    if a.content_hash == b.content_hash:
        return Similarity(1.0, 1.0, 0, 1.0, 1.0, "content")
    nt = _shared(a.terms, b.terms)
    tj = _jaccard(nt, a.terms, b.terms)
    ne = _shared(a.entities, b.entities)
    ej = _jaccard(ne, a.entities, b.entities)
    ha = _shared(a.title, b.terms) / a.title.size if a.title.size else 0.0
    hb = _shared(b.title, a.terms) / b.title.size if b.title.size else 0.0
    head = (ha + hb) / 2
    score = tj + ej + 0.5 * head
    reason = ""
    if a.language != b.language:
        # Stemmed words rarely agree across languages; names and numbers do.
        if ne >= s.cross_entity_min and ej >= s.cross_entity_jaccard_min:
            reason = "cross-language"
    elif tj >= s.near_duplicate:
        reason = "near-duplicate"
    elif min(a.entities.size, b.entities.size) < s.caseless_entities:
        # Scripts without capitals (Arabic, CJK) give no names: words and headline must carry it.
        if tj >= s.caseless_term_min and head >= s.headline_min:
            reason = "event"
    elif (
        tj >= s.term_min
        and ne >= s.entity_min
        and head >= s.headline_min
        and score >= s.score_min
    ):
        reason = "event"
    return Similarity(tj, ej, ne, head, score, reason)
