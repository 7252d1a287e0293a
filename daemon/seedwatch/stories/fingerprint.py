"""What the story index keeps per item: small, pure, recomputable from the stored item."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from seedwatch.stories import text
from seedwatch.stories.settings import StorySettings
from seedwatch.types import Item

U32 = npt.NDArray[np.uint32]
_EMPTY: U32 = np.zeros(0, dtype=np.uint32)


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """Hashed token sets of one item (sorted unique uint32), plus its exact keys."""

    url: str | None
    content_hash: str
    published: float  # POSIX seconds
    language: str
    feed_id: int
    terms: U32 = field(default_factory=lambda: _EMPTY)  # stemmed lead words
    entities: U32 = field(default_factory=lambda: _EMPTY)  # Latin keys of names and numbers
    title: U32 = field(default_factory=lambda: _EMPTY)  # stemmed headline words

    @property
    def nbytes(self) -> int:
        return int(self.terms.nbytes + self.entities.nbytes + self.title.nbytes)


def _hashes(tokens: list[str]) -> U32:
    if not tokens:
        return _EMPTY
    return np.unique(np.fromiter((text.stable_hash(t) for t in tokens), dtype=np.uint32))


def fingerprint(item: Item, settings: StorySettings | None = None) -> Fingerprint:
    """The fingerprint of ``item``; pure, same value in every process."""
    s = settings or StorySettings()
    lang = (item.language or "und").lower()
    lead = item.text[: s.lead_chars]
    title_words = text.words(item.title)
    title_terms = text.terms(title_words, lang)
    lead_terms = text.terms(text.words(lead), lang)
    ents = text.entities(item.title, s.entity_prefix) + text.entities(lead, s.entity_prefix)
    return Fingerprint(
        url=item.url,
        content_hash=item.content_hash,
        published=item.published.timestamp(),
        language=lang,
        feed_id=item.feed_id,
        terms=_hashes(title_terms + lead_terms),
        entities=_hashes(ents),
        title=_hashes(title_terms),
    )
