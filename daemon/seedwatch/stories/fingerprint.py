"""What the story index keeps per item: small, pure, recomputable from the stored item."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

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
    script: str  # dominant script of the headline and lead: latin, cyrillic, arabic, ...
    feed_id: int
    source: int  # the outlet: crc32 of the URL's host (or of the feed id when there is no URL)
    terms: U32 = field(default_factory=lambda: _EMPTY)  # stemmed lead words
    entities: U32 = field(default_factory=lambda: _EMPTY)  # Latin keys of names and numbers
    title: U32 = field(default_factory=lambda: _EMPTY)  # stemmed headline words

    @property
    def nbytes(self) -> int:
        return int(self.terms.nbytes + self.entities.nbytes + self.title.nbytes)


def _hashes(tokens: list[str]) -> U32:
    if not tokens:
        return _EMPTY
    unique = set(tokens)
    hashed = np.fromiter((text.stable_hash(t) for t in unique), dtype=np.uint32, count=len(unique))
    hashed.sort()
    return hashed


_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "gov", "ac", "edu", "mil"})


def _source(item: Item) -> int:
    """The outlet: the registrable part of the host (realty.ria.ru and ria.ru are one)."""
    host = urlsplit(item.url).hostname if item.url else None
    if host:
        labels = host.split(".")
        keep = 3 if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL else 2
        return text.stable_hash(".".join(labels[-keep:]))
    return text.stable_hash(f"feed:{item.feed_id}")


def fingerprint(item: Item, settings: StorySettings | None = None) -> Fingerprint:
    """The fingerprint of ``item``; pure, same value in every process."""
    s = settings or StorySettings()
    lang = (item.language or "und").lower()
    lead = item.text[: s.lead_chars]
    title_terms = text.terms(item.title, lang)
    lead_terms = text.terms(lead, lang)
    ents = text.entities(item.title, s.entity_prefix) + text.entities(lead, s.entity_prefix)
    return Fingerprint(
        url=item.url,
        content_hash=item.content_hash,
        published=item.published.timestamp(),
        language=lang,
        script=text.script(item.title[:200] + " " + lead[:200]),
        feed_id=item.feed_id,
        source=_source(item),
        terms=_hashes(title_terms + lead_terms),
        entities=_hashes(ents),
        title=_hashes(title_terms),
    )
