"""An inverted index from 31-bit keys to 32-bit slots, 8 bytes per posting.

Postings live in sorted uint64 arrays (key << 32 | slot), so a key's slots are one slice found
by binary search, in three levels: new postings are appended to a small buffer (sorted when it
is read), which is merged into a middle level when full, and that into the big one when it has
grown; each step is one linear merge, so the big array is rewritten only every ``middle_max``
postings. Nothing is removed one by one: the owner filters dead slots on read and ``rebuild``s
the postings when it renumbers its slots.

A word key (top key bit clear: a name or headline word) on more than ``crowd`` items is no use
to find candidates, so its postings are dropped on the way into the big level and the key is
only remembered as crowded (``find`` counts it as more than ``crowd``) until the next rebuild.
Most postings are of such keys; exact and outlet keys (top bit set) are always kept.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
_LOW = np.uint64(0xFFFFFFFF)
_KEY = ~_LOW
_KEPT_BIT = np.uint64(1 << 63)
_EMPTY: U64 = np.zeros(0, dtype=np.uint64)


def ranges(starts: I64, sizes: I64) -> I64:
    """The indices start..start+size of every (start, size), concatenated."""
    ends = np.cumsum(sizes)
    total = int(ends[-1]) if len(ends) else 0
    out: I64 = np.repeat(starts - (ends - sizes), sizes) + np.arange(total)
    return out


def _merged(into: U64, new: U64) -> U64:
    """Both sorted arrays as one sorted array."""
    out: U64 = np.insert(into, into.searchsorted(new), new)
    return out


def _keys_in(flat: U64) -> U64:
    """The distinct word keys of sorted postings."""
    keys = flat & _KEY
    first = np.empty(len(keys), dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    distinct: U64 = keys[first & ((keys & _KEPT_BIT) == 0)]
    return distinct


class Postings:
    def __init__(self, crowd: int, buffer_size: int = 4096, middle_max: int = 1 << 18) -> None:
        self.crowd = crowd
        self.middle_max = middle_max
        self._big: U64 = _EMPTY
        self._middle: U64 = _EMPTY
        self._buffer: U64 = np.zeros(buffer_size, dtype=np.uint64)
        self._buffered = 0
        self._sorted_upto = 0  # the buffer's first this many postings are sorted
        self._crowded: U64 = _EMPTY  # sorted

    def __len__(self) -> int:
        return len(self._big) + len(self._middle) + self._buffered

    @property
    def nbytes(self) -> int:
        arrays = (self._big, self._middle, self._buffer, self._crowded)
        return sum(int(a.nbytes) for a in arrays)

    def add(self, keys: U64, slot: int) -> None:
        """Post ``slot`` under each of ``keys`` (posting keys: the key in the high 32 bits)."""
        if self._buffered + len(keys) > len(self._buffer):
            self._flush()
            if len(keys) > len(self._buffer):
                self._buffer = np.zeros(len(keys), dtype=np.uint64)
        end = self._buffered + len(keys)
        np.bitwise_or(keys, np.uint64(slot), out=self._buffer[self._buffered : end])
        self._buffered = end

    def find(self, keys: U64) -> Found:
        """The postings of ``keys``, dead ones included."""
        if self._sorted_upto < self._buffered:
            self._buffer[: self._buffered].sort()
            self._sorted_upto = self._buffered
        upper = keys | _LOW
        bounds: list[tuple[U64, I64, I64]] = []
        total: I64 = np.zeros(len(keys), dtype=np.int64)
        for level in (self._big, self._middle, self._buffer[: self._buffered]):
            if len(level):
                lo = level.searchsorted(keys)
                n: I64 = level.searchsorted(upper, side="right") - lo
                bounds.append((level, lo, n))
                total += n
        total[self._is_crowded(keys)] += self.crowd + 1
        return Found(bounds, total)

    def clear(self) -> None:
        self._big = self._middle = self._crowded = _EMPTY
        self._buffered = self._sorted_upto = 0

    def rebuild(self, postings: U64) -> None:
        """Replace everything by ``postings`` (key << 32 | slot, any order; sorted in place).
        Clear before computing them, so that old and new are not held at once."""
        self.clear()
        postings.sort()
        self._big = postings
        del postings  # (the big level is resized in place: no other reference to it)
        self._uncrowded()

    def _is_crowded(self, keys: U64) -> npt.NDArray[np.bool_]:
        crowded = self._crowded
        if not len(crowded):
            return np.zeros(len(keys), dtype=bool)
        at = crowded.searchsorted(keys & _KEY)
        np.minimum(at, len(crowded) - 1, out=at)
        hit: npt.NDArray[np.bool_] = crowded[at] == (keys & _KEY)
        return hit

    def _flush(self) -> None:
        new = self._buffer[: self._buffered]
        new = np.sort(new[~self._is_crowded(new)])
        middle = _merged(self._middle, new)
        self._buffered = self._sorted_upto = 0
        if len(middle) >= self.middle_max:
            # Crowded keys are found and dropped before the merge, and the big array is only
            # edited in place: a merged copy and an uncrowded copy of it held the big level
            # three times over for a moment (about 80 MB at the index's max_items).
            self._middle = _EMPTY
            keys = _keys_in(middle)
            big = self._big
            n = big.searchsorted(keys | _LOW, side="right") - big.searchsorted(keys)
            n += middle.searchsorted(keys | _LOW, side="right") - middle.searchsorted(keys)
            del big  # (resizing in place wants no other reference to it)
            crowded = keys[n > self.crowd]
            if len(crowded):
                middle = middle[~_at(middle, crowded)]
                self._drop_from_big(_at(self._big, crowded))
                self._crowded = np.union1d(self._crowded, crowded)
            self._merge_into_big(middle)
            middle = _EMPTY
        self._middle = middle

    def _uncrowded(self) -> None:
        """Drop the postings of the keys of the big level on more than ``crowd`` items, and
        remember those keys."""
        keys = _keys_in(self._big)
        lo = self._big.searchsorted(keys)
        n = self._big.searchsorted(keys | _LOW, side="right") - lo
        crowded = n > self.crowd
        if crowded.any():
            gone = np.zeros(len(self._big), dtype=bool)
            gone[ranges(lo[crowded].astype(np.int64), n[crowded].astype(np.int64))] = True
            self._drop_from_big(gone)
            self._crowded = keys[crowded]

    # The big level is edited in place, _STEP postings at a time, and resized with realloc
    # (which moves an mmapped block's pages instead of copying them): never held twice.

    def _drop_from_big(self, gone: npt.NDArray[np.bool_]) -> None:
        """Remove the big level's postings where ``gone``. A posting only moves down, so a
        step never overwrites what a later step has still to read."""
        keep = ~gone
        at = 0
        for start in range(0, len(keep), _STEP):
            kept = self._big[start : start + _STEP][keep[start : start + _STEP]]
            self._big[at : at + len(kept)] = kept
            at += len(kept)
        self._resize_big(at)

    def _merge_into_big(self, new: U64) -> None:
        """Merge sorted ``new`` into the big level: its postings move up, the last step first,
        each to its place plus the number of new postings that go before it."""
        n, m = len(self._big), len(new)
        if not m:
            return
        where = self._big.searchsorted(new)  # new[j] goes before big[where[j]]
        self._resize_big(n + m)
        big = self._big
        for start in range((n - 1) // _STEP * _STEP if n else -1, -1, -_STEP):
            old = np.arange(start, min(start + _STEP, n), dtype=np.int64)
            moved = big[start : start + len(old)].copy()
            big[old + where.searchsorted(old, side="right")] = moved
        big[where + np.arange(m, dtype=np.int64)] = new

    def _resize_big(self, size: int) -> None:
        if len(self._big):
            try:
                self._big.resize(size, refcheck=True)  # only when nothing else refers to it
                return
            except ValueError:
                pass
        grown: U64 = np.zeros(size, dtype=np.uint64)
        keep = min(size, len(self._big))
        grown[:keep] = self._big[:keep]
        self._big = grown


_STEP = 1 << 18  # postings moved per step of the in-place edits of the big level


def _at(flat: U64, keys: U64) -> npt.NDArray[np.bool_]:
    """Which postings of sorted ``flat`` are of one of ``keys``."""
    lo = flat.searchsorted(keys)
    n = flat.searchsorted(keys | _LOW, side="right") - lo
    hit = np.zeros(len(flat), dtype=bool)
    hit[ranges(lo.astype(np.int64), n.astype(np.int64))] = True
    return hit


class Found:
    """The result of Postings.find: per key a count, and its slots on demand."""

    __slots__ = ("_bounds", "counts", "total")

    def __init__(self, bounds: list[tuple[U64, I64, I64]], total: I64) -> None:
        self._bounds = bounds
        self.total = total
        self.counts: list[int] = total.tolist()

    def slots(self, which: I64) -> tuple[I64, I64]:
        """The slots of keys number ``which``, concatenated, and for each the position in
        ``which`` of its key."""
        parts: list[I64] = []
        positions: list[I64] = []
        places = np.arange(len(which))
        for level, lo, n in self._bounds:
            part_n = n[which]
            ends = part_n.cumsum()
            if not len(ends) or not ends[-1]:
                continue
            at = (lo[which] - (ends - part_n)).repeat(part_n) + np.arange(int(ends[-1]))
            parts.append((level[at] & _LOW).astype(np.int64))
            positions.append(places.repeat(part_n))
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if len(parts) == 1:
            return parts[0], positions[0]
        return np.concatenate(parts), np.concatenate(positions)
