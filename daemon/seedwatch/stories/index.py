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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from itertools import accumulate
from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

from seedwatch.stories.fingerprint import (
    CONTENT,
    ENTITY,
    OUTLET,
    TITLE,
    U32,
    URL,
    Fingerprint,
    fingerprint,
    posting_keys,
)
from seedwatch.stories.postings import Found, Postings, ranges
from seedwatch.stories.settings import StorySettings
from seedwatch.stories.similarity import (
    CONTENT_MATCH,
    ENTITY_TAG,
    URL_MATCH,
    Others,
    Probe,
    Similarity,
    hopeful,
    overlaps,
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
        ("sizes", "<u2", (3,)),  # entities, headline words, other lead words
        ("language", "<u2"),
        ("script", "u1"),
    ]
)
_MIN_ROWS = 1024
_MIN_TOKENS = 16 * 1024
_MIN_DEAD = 256  # dead slots worth a compaction of a small index
_CHUNK = 1 << 14  # items per step of compaction and posting rebuilds
_GROW = 1.125  # growing is in place (see _grow_tokens): little slack is needed,
_MAX_STEP = 4 << 20  # and at most this many bytes at a time (numpy zeroes, so touches, it)

_NO_SLOTS: I64 = np.zeros(0, dtype=np.int64)
_LOW32 = 0xFFFFFFFF
_KEY_TAGS = np.array([ENTITY_TAG, 0], dtype=np.uint64)  # template keys: names, headline words


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
        self._postings = Postings(crowd=2 * s.max_postings)
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
        return self.match_many([fp])[0]

    def match_many(self, fps: Sequence[Fingerprint]) -> list[StoryMatch | None]:
        """``match`` for each of ``fps`` against the index as it is: they do not see each
        other (as a poll's new items do not: they are added after the commit). One call per
        batch shares the array work between the items."""
        out: list[StoryMatch | None] = [None] * len(fps)
        if not fps:
            return out
        s = self.settings
        sizes = [len(fp.keys) for fp in fps]
        bounds = list(accumulate(sizes, initial=0))
        found = self._postings.find(np.concatenate([fp.keys for fp in fps]))
        counts = found.counts
        # Per fingerprint the keys are: content hash, URL (if any), names and headline words,
        # outlet. Exact keys first; then the rare names and headline words give candidates.
        key_owner = np.arange(len(fps)).repeat(sizes)
        rare = (found.total > 0) & (found.total <= s.max_postings)
        not_words = [b - 1 for b in bounds[1:]]
        for p, fp in enumerate(fps):
            base = bounds[p]
            not_words.extend(range(base, base + fp.n_exact))
            if counts[base] or (fp.url_key and counts[base + 1]):
                out[p] = self._exact(fp, found, base)
                if out[p] is not None:
                    not_words.extend(range(base, bounds[p + 1]))
        rare[not_words] = False
        enough = np.bincount(key_owner[rare], minlength=len(fps)) >= s.min_shared_keys
        which = np.flatnonzero(rare & enough[key_owner])
        if not len(which):
            return out
        owner, slots = self._candidates(found, which, key_owner[which])
        rows = self._rows[slots]
        published = np.array([fp.published for fp in fps])[owner]
        near = np.abs(rows["published"] - published) <= s.window
        rows, owner = rows[near], owner[near]
        others = self._others(rows)
        shared = overlaps(fps, owner, others)
        keep = np.flatnonzero(hopeful(fps, owner, others, shared, s))
        best: dict[int, tuple[int, Similarity]] = {}
        probes: dict[int, Probe] = {}
        templates = cache(self._templates.keys)  # for this batch
        pairs = zip(keep.tolist(), owner[keep].tolist(), shared[keep].tolist(), strict=True)
        for j, p, pair in pairs:
            probe = probes.get(p)
            if probe is None:
                probe = probes[p] = Probe(fps[p], s)
            sim = probe.similarity(others, j, pair, templates)
            if sim.reason and (p not in best or sim.score > best[p][1].score):
                best[p] = (j, sim)
        for p, (j, sim) in best.items():
            out[p] = StoryMatch(int(rows["story"][j]), sim, int(rows["url"][j]))
        return out

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
            (fp.n_entities, fp.n_title, size - fp.n_entities - fp.n_title),
            self._code(fp.language),
            self._code(fp.script),
        )
        self._postings.add(fp.keys, slot)
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

    def _exact(self, fp: Fingerprint, found: Found, base: int) -> StoryMatch | None:
        # keys[base] is the content hash's, keys[base + 1] the URL's (when there is one).
        counts = found.counts
        for i, key, field in ((1, fp.url_key, "url"), (0, fp.content_key, "content")):
            if not key or not counts[base + i]:
                continue
            rows = self._rows[found.slots(np.array([base + i]))[0]]
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

    def _candidates(self, found: Found, which: I64, owners: I64) -> tuple[I64, I64]:
        """(probe, slot) pairs sharing at least min_shared_keys of the rare keys ``which``
        (owners: whose key each is), sorted by probe, then most shared keys, then newest first,
        at most max_candidates per probe.

        The keys are names, numbers and headline words: what two reports of one event share
        anyway (verification wants a shared name and headline words the other item also uses).
        A key counts as rare by its postings, dead ones included (at most a quarter are dead).
        """
        s = self.settings
        flat, pos = found.slots(which)
        owner = owners[pos]
        alive = self._rows["story"][flat] >= 0
        pairs = (owner[alive] << 32) | flat[alive]
        if not len(pairs):
            return _NO_SLOTS, _NO_SLOTS
        pairs.sort()
        new = np.empty(len(pairs), dtype=bool)
        new[0] = True
        np.not_equal(pairs[1:], pairs[:-1], out=new[1:])
        first = np.flatnonzero(new)
        shared = np.empty(len(first), dtype=np.int64)
        np.subtract(first[1:], first[:-1], out=shared[:-1])
        shared[-1] = len(pairs) - first[-1]
        enough = shared >= s.min_shared_keys
        pairs, shared = pairs[first[enough]], shared[enough]
        owner, slots = pairs >> 32, pairs & _LOW32
        order = np.lexsort((-slots, -shared, owner))  # ties: the newest first
        owner, slots = owner[order], slots[order]
        rank = np.arange(len(owner)) - owner.searchsorted(owner)
        top = rank < s.max_candidates
        return owner[top], slots[top]

    def _others(self, rows: npt.NDArray[np.void]) -> Others:
        names = self._names
        sizes = rows["sizes"]
        at = ranges(rows["offset"].astype(np.int64), sizes.sum(axis=1, dtype=np.int64))
        return Others(
            url_key=rows["url"],
            content_key=rows["content"],
            source=rows["source"],
            language=[names[c] for c in rows["language"].tolist()],
            script=[names[c] for c in rows["script"].tolist()],
            sizes=sizes,
            tokens=self._tokens[at],
        )

    def _keys_of(self, outlet: int) -> tuple[U64, I64]:
        """Template keys of the outlet's live items, distinct, and on how many items each
        (see templates.py). Counted _CHUNK items at a time: one outlet may hold most of the
        index, and all its keys at once (with their int64 positions) were several times the
        token arena's share of it."""
        found = self._postings.find(posting_keys(np.array([outlet], dtype=np.uint64), OUTLET, 1))
        slots = found.slots(np.zeros(1, dtype=np.int64))[0]
        rows = self._rows
        slots = slots[(rows["story"][slots] >= 0) & (rows["source"][slots] == outlet)]
        keys: U64 = np.zeros(0, dtype=np.uint64)
        counts: I64 = np.zeros(0, dtype=np.int64)
        for start in range(0, len(slots), _CHUNK):
            part = rows[slots[start : start + _CHUNK]]
            sizes = part["sizes"][:, :2]  # names, headline words
            at = ranges(part["offset"].astype(np.int64), sizes.sum(axis=1, dtype=np.int64))
            tags = np.repeat(np.tile(_KEY_TAGS, len(part)), sizes.ravel())
            new, n = np.unique((self._tokens[at].astype(np.uint64) << np.uint64(1)) | tags,
                               return_counts=True)
            keys, where = np.unique(np.concatenate((keys, new)), return_inverse=True)
            counts = np.bincount(where, np.concatenate((counts, n))).astype(np.int64)
        return keys, counts

    def _postings_of_all(self) -> U64:
        """The postings (key << 32 | slot) of every item in slots 0..used.

        Built _CHUNK items at a time into one array: done over all items at once, the int64
        temporaries (token positions, kinds, slots per token) came to several times its size."""
        rows = self._rows[: self._used]
        words = rows["sizes"][:, :2].sum(axis=1, dtype=np.int64)  # names, headline words
        has_url = rows["url"] != 0
        out: U64 = np.empty(int(words.sum()) + 2 * len(rows) + int(has_url.sum()), np.uint64)
        at = 0
        for start in range(0, len(rows), _CHUNK):
            part = self._item_postings(start, min(start + _CHUNK, len(rows)))
            out[at : at + len(part)] = part
            at += len(part)
        return out

    def _item_postings(self, start: int, stop: int) -> U64:
        rows = self._rows[start:stop]
        slots = np.arange(start, stop, dtype=np.uint64)
        words = rows["sizes"][:, :2]  # names, headline words
        n_words = words.sum(axis=1, dtype=np.int64)
        tokens = self._tokens[ranges(rows["offset"].astype(np.int64), n_words)]
        kinds = np.tile(np.array([ENTITY, TITLE], dtype=np.uint64), len(rows))
        has_url = rows["url"] != 0
        return np.concatenate(
            (
                posting_keys(tokens.astype(np.uint64), kinds.repeat(words.ravel()))
                | slots.repeat(n_words),
                posting_keys(rows["content"], CONTENT, 1) | slots,
                posting_keys(rows["url"][has_url], URL, 1) | slots[has_url],
                posting_keys(rows["source"].astype(np.uint64), OUTLET, 1) | slots,
            )
        )

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
                self._grow_rows(_grown_size(self._rows, self._used + 1))
            if self._tokens_used + size > len(self._tokens):
                self._grow_tokens(_grown_size(self._tokens, self._tokens_used + size))
        return self._used

    # Grown in place (ndarray.resize: realloc, which moves an mmapped block's pages with
    # mremap instead of copying them), so the old and the new array are never both resident:
    # a copy held the token arena twice, about 200 MB at max_items. The call must be made on
    # the attribute itself (refcheck counts references); when a view is alive, it copies.

    def _grow_rows(self, size: int) -> None:
        try:
            self._rows.resize(size, refcheck=True)
        except ValueError:
            self._rows = _grown(self._rows, size)

    def _grow_tokens(self, size: int) -> None:
        try:
            self._tokens.resize(size, refcheck=True)
        except ValueError:
            self._tokens = _grown(self._tokens, size)

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
        """Move the live items together (rows, tokens, postings) and renumber their slots.

        In place, _CHUNK items at a time, in slot order: an item only moves down (to a lower
        slot and offset), so a chunk never overwrites what a later one has still to read, and
        no second copy of the arrays is held. The arrays then shrink to what is kept."""
        self._postings.clear()
        live = np.flatnonzero(self._rows["story"][: self._used] >= 0)
        rows, tokens = self._rows, self._tokens
        at = 0
        for start in range(0, len(live), _CHUNK):
            kept = rows[live[start : start + _CHUNK]]
            sizes = kept["sizes"].sum(axis=1, dtype=np.int64)
            moved = tokens[ranges(kept["offset"].astype(np.int64), sizes)]
            kept["offset"] = at + np.cumsum(sizes) - sizes
            rows[start : start + len(kept)] = kept
            tokens[at : at + len(moved)] = moved
            at += len(moved)
        self._used, self._tokens_used = len(live), at
        del rows, tokens
        self._grow_rows(max(_MIN_ROWS, int(self._used * _GROW)))
        self._grow_tokens(max(_MIN_TOKENS, int(at * _GROW)))
        self._postings.rebuild(self._postings_of_all())


def _grown_size(array: npt.NDArray[np.generic], need: int) -> int:
    """A new length for ``array`` with room for ``need`` elements and a little more."""
    step = min(int(len(array) * (_GROW - 1)), _MAX_STEP // array.itemsize)
    return max(need, len(array) + max(step, 1))


def _grown(array: _A, size: int) -> _A:
    """A copy of ``array`` grown (or cut) to ``size``: when it cannot be resized in place."""
    out = np.zeros(size, dtype=array.dtype)
    keep = min(size, len(array))
    out[:keep] = array[:keep]
    return cast(_A, out)
