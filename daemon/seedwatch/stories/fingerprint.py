"""What the story index keeps per item: small, pure, recomputable from the stored item.

``fingerprint`` is the pure analysis step: it may run in a worker process (the result is a
small picklable value) and is handed to StoryIndex.match / add_fingerprint in the main one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from seedwatch.stories import text
from seedwatch.stories.settings import StorySettings
from seedwatch.types import Item

U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
_EMPTY: U32 = np.zeros(0, dtype=np.uint32)
_NO_KEYS: U64 = np.zeros(0, dtype=np.uint64)
_NO_KINDS: U8 = np.zeros(0, dtype=np.uint8)
# What a token is to an item, as bits of Fingerprint.lookup_kinds.
IS_ENTITY, IS_TERM, IS_TITLE = 1, 2, 4

# Posting keys of the index (postings.py): a value mixed with its kind into 31 bits, so that
# kinds rarely collide (collisions only add candidates that verification rejects; exact keys
# are checked against the 64-bit values the index keeps). The top bit tells names and headline
# words (clear: the index drops the postings of those on too many items) from exact and outlet
# keys (set: always kept).
_MIX = np.uint64(0x9E3779B1)
ENTITY, TITLE, URL, CONTENT, OUTLET = (k * 0x7F4A7C15 & 0x7FFFFFFF for k in range(1, 6))


def posting_keys(values: U64, kinds: U64 | int, kept: U64 | int = 0) -> U64:
    """The posting keys of 32- or 64-bit values, shifted into the high half of a uint64;
    ``kept`` is 1 for exact and outlet keys, 0 for names and headline words."""
    folded = (values ^ (values >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    mixed = (folded * _MIX + np.asarray(kinds, dtype=np.uint64)) & np.uint64(0x7FFFFFFF)
    keys: U64 = (mixed | (np.asarray(kept, dtype=np.uint64) << np.uint64(31))) << np.uint64(32)
    return keys


def exact_key(value: str) -> int:
    """A 64-bit key of a URL or content hash (the index keeps this, not the string)."""
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "big")


@dataclass(frozen=True, eq=False, slots=True)
class Fingerprint:
    """Hashed token sets of one item (crc32 values), plus its exact keys.

    ``tokens`` is one array, the way the index stores it: entities | headline words | the
    other lead words, each part sorted and unique, the last part capped (settings.max_lead_terms).
    """

    url_key: int  # exact_key(url); 0 without a URL
    content_key: int  # exact_key(content_hash)
    published: float  # POSIX seconds
    language: str
    script: str  # dominant script of the headline and lead: latin, cyrillic, arabic, ...
    feed_id: int
    source: int  # the outlet: crc32 of the URL's host (or of the feed id when there is no URL)
    tokens: U32 = field(default_factory=lambda: _EMPTY)
    n_entities: int = 0
    n_title: int = 0
    # Posting keys (see posting_keys): the content hash's, the URL's when there is one, one per
    # name and headline word, and last the outlet's (for its template); the index looks them
    # up in one pass and posts the item under all of them.
    keys: U64 = field(default_factory=lambda: _NO_KEYS)
    # The probe side of verification (similarity.Probe), computed here rather than in the
    # main process: every distinct token, sorted, and the IS_* bits of what it is here.
    lookup: U32 = field(default_factory=lambda: _EMPTY)
    lookup_kinds: U8 = field(default_factory=lambda: _NO_KINDS)

    @property
    def n_exact(self) -> int:
        """How many of ``keys`` are exact keys (content hash, URL)."""
        return 2 if self.url_key else 1

    @property
    def entities(self) -> U32:
        """Latin keys of names and numbers."""
        return self.tokens[: self.n_entities]

    @property
    def title(self) -> U32:
        """Stemmed headline words."""
        return self.tokens[self.n_entities : self.n_entities + self.n_title]

    @property
    def terms(self) -> U32:
        """Stemmed lead words, the headline's included (headline first, then the rest)."""
        return self.tokens[self.n_entities :]

    @property
    def nbytes(self) -> int:
        return int(self.tokens.nbytes)


def _hashes(tokens: list[str]) -> list[int]:
    """Sorted distinct crc32 values of ``tokens`` (Python ints: these lists are short)."""
    return sorted({text.stable_hash(t) for t in tokens})


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
    ents = _hashes(
        text.entities(item.title, s.entity_prefix) + text.entities(lead, s.entity_prefix)
    )
    title = _hashes(text.terms(item.title, lang))
    # The smallest hashes are a consistent sample: two copies of one long text keep the same
    # words, so their overlap still shows while the index stays small per item.
    in_title = set(title)
    other = [h for h in _hashes(text.terms(lead, lang)) if h not in in_title][: s.max_lead_terms]
    kinds = dict.fromkeys(ents, IS_ENTITY)
    for words, bits in ((title, IS_TERM | IS_TITLE), (other, IS_TERM)):
        for h in words:
            kinds[h] = kinds.get(h, 0) | bits
    lookup = sorted(kinds)
    source = _source(item)
    url_key = exact_key(item.url) if item.url else 0
    content_key = exact_key(item.content_hash)
    exact = [content_key, url_key] if url_key else [content_key]
    keyed = [*exact, *ents, *title, source]
    key_kinds = [CONTENT, URL][: len(exact)] + [ENTITY] * len(ents) + [TITLE] * len(title)
    return Fingerprint(
        url_key=url_key,
        content_key=content_key,
        published=item.published.timestamp(),
        language=lang,
        script=text.script(item.title[:200] + " " + lead[:200]),
        feed_id=item.feed_id,
        source=source,
        tokens=np.array(ents + title + other, dtype=np.uint32),
        n_entities=len(ents),
        n_title=len(title),
        keys=posting_keys(
            np.array(keyed, dtype=np.uint64),
            np.array([*key_kinds, OUTLET], dtype=np.uint64),
            np.array([1] * len(exact) + [0] * (len(keyed) - len(exact) - 1) + [1], np.uint64),
        ),
        lookup=np.array(lookup, dtype=np.uint32),
        lookup_kinds=np.array([kinds[h] for h in lookup], dtype=np.uint8),
    )
