"""An in-memory index of the items seen within the story window.

Lookup is two-step: exact keys (canonical URL, content hash) by dict, then candidates that share
a rare key token (a name, a number or a headline word) through an inverted index, of which at
most ``max_candidates`` (most shared keys first) are verified exactly by similarity.compare.
Everything is removed again when it leaves the window, so memory follows the window, not the
history.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from seedwatch.stories.fingerprint import Fingerprint, fingerprint
from seedwatch.stories.settings import StorySettings
from seedwatch.stories.similarity import ENTITY_TAG, Probe, Similarity
from seedwatch.stories.templates import FeedTemplates
from seedwatch.types import Item

log = logging.getLogger(__name__)


DUPLICATE_REASONS = frozenset({"url", "content", "near-duplicate"})


@dataclass(frozen=True)
class StoryMatch:
    """The story an item joins, the item that tied it there, and why."""

    story_id: int
    similarity: Similarity
    matched: Fingerprint

    @property
    def duplicate(self) -> bool:
        """A copy of ``matched`` (same article), rather than another report of the event."""
        return self.similarity.reason in DUPLICATE_REASONS


@dataclass(frozen=True)
class _Entry:
    fp: Fingerprint
    story_id: int
    keys: tuple[int, ...]


class StoryIndex:
    """Near-duplicate and same-event lookup over a sliding time window. Not thread-safe."""

    def __init__(self, settings: StorySettings | None = None) -> None:
        self.settings = settings or StorySettings()
        s = self.settings
        self._templates = FeedTemplates(s.template_min_items, s.template_share)
        self._entries: dict[int, _Entry] = {}
        self._by_url: dict[str, int] = {}
        self._by_hash: dict[str, int] = {}
        self._postings: dict[int, set[int]] = {}
        self._heap: list[tuple[float, int]] = []
        self._seq = 0
        self._last: tuple[Item, Fingerprint] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def fingerprint(self, item: Item) -> Fingerprint:
        # find() then add() on the same item is the daemon's pattern: tokenize once.
        last = self._last
        if last is not None and last[0] is item:
            return last[1]
        fp = fingerprint(item, self.settings)
        self._last = (item, fp)
        return fp

    def find(self, item: Item) -> int | None:
        """The story of a near-duplicate or same-event item within the window, else None."""
        found = self.match(self.fingerprint(item))
        return found.story_id if found else None

    def match(self, fp: Fingerprint) -> StoryMatch | None:
        """Like find, for a fingerprint, with the signals that decided it."""
        for seq in (
            self._by_url.get(fp.url) if fp.url else None,
            self._by_hash.get(fp.content_hash),
        ):
            if seq is not None and self._in_window(self._entries[seq].fp, fp):
                entry = self._entries[seq]
                sim = Probe(fp, self.settings, self._templates).compare(entry.fp)
                return StoryMatch(entry.story_id, sim, entry.fp)
        best: StoryMatch | None = None
        probe: Probe | None = None
        for seq in self._candidates(fp):
            entry = self._entries[seq]
            if not self._in_window(entry.fp, fp):
                continue
            probe = probe or Probe(fp, self.settings, self._templates)
            sim = probe.compare(entry.fp)
            if sim.reason and (best is None or sim.score > best.similarity.score):
                best = StoryMatch(entry.story_id, sim, entry.fp)
        return best

    def add(self, item: Item, story_id: int) -> None:
        """Remember ``item`` as a member of ``story_id``."""
        self.add_fingerprint(self.fingerprint(item), story_id)

    def add_fingerprint(self, fp: Fingerprint, story_id: int) -> None:
        """Remember a fingerprint (the daemon rebuilding the index at start)."""
        self._seq += 1
        seq = self._seq
        keys = self._keys(fp)
        self._entries[seq] = _Entry(fp, story_id, keys)
        if fp.url:
            self._by_url[fp.url] = seq
        self._by_hash[fp.content_hash] = seq
        for key in keys:
            self._postings.setdefault(key, set()).add(seq)
        self._templates.add(fp.source, keys)
        heapq.heappush(self._heap, (fp.published, seq))

    def expire(self, now: datetime) -> int:
        """Forget items published more than the window before ``now``; how many were dropped."""
        cutoff = now.timestamp() - self.settings.window
        dropped = 0
        heap = self._heap
        while heap and heap[0][0] < cutoff:
            _, seq = heapq.heappop(heap)
            entry = self._entries.pop(seq)
            fp = entry.fp
            if fp.url and self._by_url.get(fp.url) == seq:
                del self._by_url[fp.url]
            if self._by_hash.get(fp.content_hash) == seq:
                del self._by_hash[fp.content_hash]
            for key in entry.keys:
                posting = self._postings[key]
                posting.discard(seq)
                if not posting:
                    del self._postings[key]
            self._templates.remove(fp.source, entry.keys)
            dropped += 1
        if dropped:
            log.debug("story index expired %d items, %d left", dropped, len(self._entries))
        return dropped

    def _in_window(self, a: Fingerprint, b: Fingerprint) -> bool:
        return abs(a.published - b.published) <= self.settings.window

    @staticmethod
    def _keys(fp: Fingerprint) -> tuple[int, ...]:
        # Names, numbers and headline words: what two reports of one event share anyway
        # (compare() wants a shared name and headline words the other item also uses).
        ents: list[int] = ((fp.entities.astype(np.int64) << 1) | ENTITY_TAG).tolist()
        heads: list[int] = (fp.title.astype(np.int64) << 1).tolist()
        return tuple(dict.fromkeys(ents + heads))

    def _candidates(self, fp: Fingerprint) -> list[int]:
        counts: Counter[int] = Counter()
        limit = self.settings.max_postings
        for key in self._keys(fp):
            posting = self._postings.get(key)
            if posting and len(posting) <= limit:
                counts.update(posting)
        least = self.settings.min_shared_keys
        return [seq for seq, n in counts.most_common(self.settings.max_candidates) if n >= least]
