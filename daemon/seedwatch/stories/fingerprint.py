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
_KEPT = frozenset({URL, CONTENT, OUTLET})


def posting_keys(values: U64, kinds: U64 | int) -> U64:
    """The posting keys of 32- or 64-bit values, shifted into the high half of a uint64."""
    folded = (values ^ (values >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    mixed = (folded * _MIX + np.asarray(kinds, dtype=np.uint64)) & np.uint64(0x7FFFFFFF)
    if isinstance(kinds, int) and kinds in _KEPT:
        mixed = mixed | np.uint64(0x80000000)
    keys: U64 = mixed << np.uint64(32)
    return keys


def word_kinds(n_entities: int, n_title: int) -> U64:
    """The kinds of the name and headline word keys of one item."""
    return np.repeat(np.array([ENTITY, TITLE], dtype=np.uint64), (n_entities, n_title))


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
    ents = _hashes(
        text.entities(item.title, s.entity_prefix) + text.entities(lead, s.entity_prefix)
    )
    title = _hashes(title_terms)
    source = _source(item)
    url_key = exact_key(item.url) if item.url else 0
    content_key = exact_key(item.content_hash)
    exact = [posting_keys(np.array([content_key], dtype=np.uint64), CONTENT)]
    if url_key:
        exact.append(posting_keys(np.array([url_key], dtype=np.uint64), URL))
    # The smallest hashes are a consistent sample: two copies of one long text keep the same
    # words, so their overlap still shows while the index stays small per item.
    other = np.setdiff1d(_hashes(text.terms(lead, lang)), title, assume_unique=True)
    other = other[: s.max_lead_terms]
    tokens = np.concatenate((ents, title, other))
    n_keys = len(ents) + len(title)
    lookup, at = np.unique(tokens, return_inverse=True)
    kinds = np.zeros(len(lookup), dtype=np.uint8)
    parts = np.array([IS_ENTITY, IS_TERM | IS_TITLE, IS_TERM], dtype=np.uint8)
    np.bitwise_or.at(kinds, at, np.repeat(parts, (len(ents), len(title), len(other))))
    return Fingerprint(
        url_key=url_key,
        content_key=content_key,
        published=item.published.timestamp(),
        language=lang,
        script=text.script(item.title[:200] + " " + lead[:200]),
        feed_id=item.feed_id,
        source=source,
        tokens=tokens,
        n_entities=len(ents),
        n_title=len(title),
        keys=np.concatenate(
            (
                *exact,
                posting_keys(tokens[:n_keys].astype(np.uint64), word_kinds(len(ents), len(title))),
                posting_keys(np.array([source], dtype=np.uint64), OUTLET),
            )
        ),
        lookup=lookup.astype(np.uint32),
        lookup_kinds=kinds,
    )
