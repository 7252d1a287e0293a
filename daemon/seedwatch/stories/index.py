"""An in-memory index of the items seen within the story window.

Lookup is two-step: exact keys (canonical URL, content hash), then candidates that share a rare
key token (a name, a number or a headline word) through an inverted index, of which at most
``max_candidates`` (most shared keys first) are verified exactly by similarity.Probe.

Memory is a few flat arrays, no Python object per item: one fixed-size row per item (a numpy
record), its tokens in one uint32 arena, and 8-byte postings (postings.py). Expired items are
only marked dead; once a quarter of the slots are dead, the live ones are moved together and
renumbered. Memory follows the window, and ``max_items`` bounds it when the window holds more.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

from seedwatch.stories.fingerprint import OUTLET, U32, Fingerprint, fingerprint, posting_key
from seedwatch.stories.postings import Postings
from seedwatch.stories.settings import StorySettings
from seedwatch.stories.similarity import (
    CONTENT_MATCH,
    ENTITY_TAG,
    URL_MATCH,
    Others,
    Probe,
    Similarity,
)
from seedwatch.stories.templates import OutletTemplates
from seedwatch.types import Item

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

_A = TypeVar("_A", bound=npt.NDArray[np.generic])

DUPLICATE_REASONS = frozenset({"url", "content", "near-duplicate"})

_ROW = np.dtype(
    [
        ("published", "<f8"),
        ("story", "<i8"),  # -1: dead (expired), the slot waits for compaction
        ("url", "<u8"),
        ("content", "<u8"),
        ("source", "<u4"),
        ("offset", "<u4"),  # into the token arena: entities | title | other lead words
        ("n_entities", "<u2"),
        ("n_title", "<u2"),
        ("n_other", "<u2"),
        ("language", "<u2"),
        ("script", "u1"),
    ]
)
_MIN_ROWS = 1024
_MIN_TOKENS = 16 * 1024
_MIN_DEAD = 256  # dead slots worth a compaction of a small index
_GROW = 1.5

_NO_SLOTS: I64 = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class StoryMatch:
    """The story an item joins, why, and the exact URL key of the item that tied it there."""

    story_id: int
    similarity: Similarity
    url_key: int  # fingerprint.exact_key of the matched item's URL; 0: it had none

    @property
    def duplicate(self) -> bool:
        """A copy of the matched item (same article), rather than another report of the event."""
        return self.similarity.reason in DUPLICATE_REASONS


class StoryIndex:
    """Near-duplicate and same-event lookup over a sliding time window. Not thread-safe.

    The main-process API is ``match(fp)`` and ``add_fingerprint(fp, story_id)``, for
    fingerprints computed anywhere (fingerprint.fingerprint is pure); ``find(item)`` and
    ``add(item, story_id)`` compute the fingerprint here.
    """

    def __init__(self, settings: StorySettings | None = None) -> None:
        self.settings = settings or StorySettings()
        s = self.settings
        self._rows = np.zeros(_MIN_ROWS, dtype=_ROW)
        self._tokens: U32 = np.zeros(_MIN_TOKENS, dtype=np.uint32)
        self._used = 0  # slots handed out, live and dead
        self._tokens_used = 0
        self._live = 0
        self._oldest = math.inf  # no live item was published before this
        self._postings = Postings()
        self._templates = OutletTemplates(s.template_min_items, s.template_share, self._keys_of)
        self._codes: dict[str, int] = {}
        self._names: list[str] = []
        self._last: tuple[Item, Fingerprint] | None = None

    def __len__(self) -> int:
        return self._live

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays in use (rows, tokens, postings)."""
        rows = self._used * self._rows.itemsize
        return rows + self._tokens_used * 4 + self._postings.nbytes

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

    def add(self, item: Item, story_id: int) -> None:
        """Remember ``item`` as a member of ``story_id``."""
        self.add_fingerprint(self.fingerprint(item), story_id)

    def match(self, fp: Fingerprint) -> StoryMatch | None:
        """Like find, for a fingerprint, with the signals that decided it."""
        lo, n = self._postings.bounds(fp.keys)
        counts = n.tolist()
        waiting = self._postings.waiting
        extra: dict[int, list[int]] = {}
        for i, key in enumerate(fp.keys.tolist()):
            got = waiting(key)
            if got:
                extra[i] = got
                counts[i] += len(got)
        exact = self._exact(fp, lo, n, counts, extra)
        if exact is not None:
            return exact
        slots = self._candidates(fp, lo, n, counts, extra)
        if not len(slots):
            return None
        rows = self._rows[slots]
        near = np.abs(rows["published"] - fp.published) <= self.settings.window
        if not near.all():
            rows = rows[near]
            if not len(rows):
                return None
        sims = Probe(fp, self.settings).compare(self._others(rows), self._templates.keys)
        best = -1
        for j, sim in enumerate(sims):
            if sim.reason and (best < 0 or sim.score > sims[best].score):
                best = j
        if best < 0:
            return None
        row = rows[best]
        return StoryMatch(int(row["story"]), sims[best], int(row["url"]))

    def add_fingerprint(self, fp: Fingerprint, story_id: int) -> None:
        """Remember a fingerprint as a member of ``story_id``."""
        if self._live >= self.settings.max_items:
            self._evict(max(1, self.settings.max_items // 64))
        size = len(fp.tokens)
        slot = self._claim(size)
        offset = self._tokens_used
        self._tokens[offset : offset + size] = fp.tokens
        self._tokens_used += size
        self._used += 1
        self._rows[slot] = (
            fp.published,
            story_id,
            fp.url_key,
            fp.content_key,
            fp.source,
            offset,
            fp.n_entities,
            fp.n_title,
            size - fp.n_entities - fp.n_title,
            self._code(fp.language),
            self._code(fp.script),
        )
        keys = fp.keys.tolist()
        keys.append(posting_key(fp.source, OUTLET))
        self._postings.add(keys, slot)
        self._templates.added(fp.source)
        self._live += 1
        self._oldest = min(self._oldest, fp.published)

    def expire(self, now: datetime) -> int:
        """Forget items published more than the window before ``now``; how many were dropped."""
        cutoff = now.timestamp() - self.settings.window
        if cutoff <= self._oldest:
            return 0
        rows = self._rows[: self._used]
        live = rows["story"] >= 0
        dropped = self._kill(np.flatnonzero(live & (rows["published"] < cutoff)))
        left = rows["published"][rows["story"] >= 0]
        self._oldest = float(left.min()) if len(left) else math.inf
        if dropped:
            log.debug("story index expired %d items, %d left", dropped, self._live)
            if self._used - self._live > max(self._live // 4, _MIN_DEAD):
                self._compact()
        return dropped

    # -- lookups ------------------------------------------------------------------------------

    def _slots(self, lo: I64, n: I64, which: list[int], extra: dict[int, list[int]]) -> I64:
        """The slots posted under keys number ``which`` of a lookup, dead ones included."""
        found = self._postings.slots(lo[which], n[which])
        late = [slot for i in which for slot in extra.get(i, ())]
        return np.concatenate((found, np.array(late, dtype=np.int64))) if late else found

    def _exact(
        self, fp: Fingerprint, lo: I64, n: I64, counts: list[int], extra: dict[int, list[int]]
    ) -> StoryMatch | None:
        # keys[0] is the content hash's, keys[1] the URL's (when there is one): URL first.
        for i, key, field in ((1, fp.url_key, "url"), (0, fp.content_key, "content")):
            if not key or not counts[i]:
                continue
            rows = self._rows[self._slots(lo, n, [i], extra)]
            hits = np.flatnonzero((rows["story"] >= 0) & (rows[field] == key))
            if not len(hits):
                continue
            row = rows[hits[-1]]  # the latest copy
            if abs(float(row["published"]) - fp.published) > self.settings.window:
                continue
            same_url = fp.url_key and int(row["url"]) == fp.url_key
            sim = URL_MATCH if same_url else CONTENT_MATCH
            return StoryMatch(int(row["story"]), sim, int(row["url"]))
        return None

    def _candidates(
        self, fp: Fingerprint, lo: I64, n: I64, counts: list[int], extra: dict[int, list[int]]
    ) -> I64:
        """Slots sharing at least min_shared_keys rare keys with ``fp``, most shared first.

        Names, numbers and headline words: what two reports of one event share anyway
        (verification wants a shared name and headline words the other item also uses). A key
        counts as rare by its postings, dead ones included (at most a quarter are dead).
        """
        s = self.settings
        rare = [i for i in range(fp.n_exact, len(counts)) if 0 < counts[i] <= s.max_postings]
        if len(rare) < s.min_shared_keys:
            return _NO_SLOTS
        flat = self._slots(lo, n, rare, extra)
        flat = flat[self._rows["story"][flat] >= 0]
        flat.sort()
        first = np.flatnonzero(np.diff(flat, prepend=-1))
        shared = np.diff(first, append=len(flat))
        enough = shared >= s.min_shared_keys
        slots, shared = flat[first[enough]], shared[enough]
        order = np.lexsort((-slots, -shared))[: s.max_candidates]  # ties: the newest first
        chosen: I64 = slots[order]
        return chosen

    def _others(self, rows: npt.NDArray[np.void]) -> Others:
        n_ent = rows["n_entities"].astype(np.int64)
        n_title = rows["n_title"].astype(np.int64)
        n_other = rows["n_other"].astype(np.int64)
        names = self._names
        at = _ranges(rows["offset"].astype(np.int64), n_ent + n_title + n_other)
        return Others(
            url_key=rows["url"].tolist(),
            content_key=rows["content"].tolist(),
            source=rows["source"].tolist(),
            language=[names[c] for c in rows["language"].tolist()],
            script=[names[c] for c in rows["script"].tolist()],
            n_entities=n_ent,
            n_title=n_title,
            n_other=n_other,
            tokens=self._tokens[at],
        )

    def _keys_of(self, outlet: int) -> U64:
        """Template keys of the outlet's live items, concatenated (see templates.py)."""
        key = posting_key(outlet, OUTLET)
        lo, n = self._postings.bounds(np.array([key], dtype=np.uint64))
        rows = self._rows[self._slots(lo, n, [0], {0: self._postings.waiting(key) or []})]
        rows = rows[(rows["story"] >= 0) & (rows["source"] == outlet)]
        n_ent = rows["n_entities"].astype(np.int64)
        sizes = n_ent + rows["n_title"]
        at = _ranges(rows["offset"].astype(np.int64), sizes)
        is_entity = (np.arange(len(at)) - np.repeat(np.cumsum(sizes) - sizes, sizes)) < np.repeat(
            n_ent, sizes
        )
        keys: U64 = (self._tokens[at].astype(np.uint64) << np.uint64(1)) | (
            is_entity.astype(np.uint64) * np.uint64(ENTITY_TAG)
        )
        return keys

    # -- storage ------------------------------------------------------------------------------

    def _code(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self._names)
            self._names.append(name)
        return code

    def _claim(self, size: int) -> int:
        """A free slot, with room for ``size`` tokens behind the arena's end."""
        if self._used == len(self._rows) or self._tokens_used + size > len(self._tokens):
            if self._used - self._live > self._used // 4:
                self._compact()
            if self._used == len(self._rows):
                self._rows = _grown(self._rows, int(len(self._rows) * _GROW))
            if self._tokens_used + size > len(self._tokens):
                need = max(int(len(self._tokens) * _GROW), self._tokens_used + size)
                self._tokens = _grown(self._tokens, need)
        return self._used

    def _kill(self, slots: I64) -> int:
        if not len(slots):
            return 0
        rows = self._rows
        rows["story"][slots] = -1
        self._live -= len(slots)
        outlets, counts = np.unique(rows["source"][slots], return_counts=True)
        for outlet, count in zip(outlets.tolist(), counts.tolist(), strict=True):
            self._templates.removed(outlet, count)
        return len(slots)

    def _evict(self, count: int) -> None:
        """Drop the ``count`` oldest items (the max_items bound)."""
        published = self._rows["published"][: self._used].copy()
        published[self._rows["story"][: self._used] < 0] = math.inf
        count = min(count, self._live)
        self._kill(np.argpartition(published, count - 1)[:count])
        log.debug("story index at max_items: dropped the %d oldest items", count)

    def _compact(self) -> None:
        """Move the live items together (rows, tokens, postings) and renumber their slots."""
        rows = self._rows[: self._used]
        live = rows["story"] >= 0
        new_slot = np.full(len(rows), -1, dtype=np.int64)
        new_slot[live] = np.arange(int(live.sum()))
        kept = rows[live]
        sizes = (
            kept["n_entities"].astype(np.int64) + kept["n_title"] + kept["n_other"]
        ).astype(np.int64)
        tokens = self._tokens[_ranges(kept["offset"].astype(np.int64), sizes)]
        kept["offset"] = np.cumsum(sizes) - sizes
        self._rows = np.zeros(max(_MIN_ROWS, int(len(kept) * _GROW)), dtype=_ROW)
        self._rows[: len(kept)] = kept
        self._tokens = np.zeros(max(_MIN_TOKENS, int(len(tokens) * _GROW)), dtype=np.uint32)
        self._tokens[: len(tokens)] = tokens
        self._used, self._tokens_used = len(kept), len(tokens)
        self._postings.remap(new_slot)


def _ranges(starts: I64, sizes: I64) -> I64:
    """The indices start..start+size of every (start, size), concatenated."""
    ends = np.cumsum(sizes)
    total = int(ends[-1]) if len(ends) else 0
    out: I64 = np.repeat(starts - (ends - sizes), sizes) + np.arange(total)
    return out


def _grown(array: _A, size: int) -> _A:
    out = np.zeros(size, dtype=array.dtype)
    out[: len(array)] = array
    return cast(_A, out)
