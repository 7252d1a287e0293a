"""An inverted index from 32-bit keys to 32-bit slots, 8 bytes per posting.

Postings live in sorted uint64 arrays (key << 32 | slot), so a key's slots are one slice found
by binary search, in three levels: new postings are appended to a small buffer (sorted when it
is read), which is merged into a middle level when full, and that into the big one when it has
grown; each step is one linear merge, so the big array is rewritten only every ``middle_max``
postings. Nothing is removed one by one: the owner filters dead slots on read and calls
``remap`` when it renumbers its slots, which drops the dead ones.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
_LOW = np.uint64(0xFFFFFFFF)
_EMPTY: U64 = np.zeros(0, dtype=np.uint64)


def _merged(into: U64, new: U64) -> U64:
    """Both sorted arrays as one sorted array."""
    out: U64 = np.insert(into, into.searchsorted(new), new)
    return out


class Postings:
    def __init__(self, buffer_size: int = 4096, middle_max: int = 1 << 18) -> None:
        self.middle_max = middle_max
        self._big: U64 = _EMPTY
        self._middle: U64 = _EMPTY
        self._buffer: U64 = np.zeros(buffer_size, dtype=np.uint64)
        self._buffered = 0
        self._sorted_upto = 0  # the buffer's first this many postings are sorted

    def __len__(self) -> int:
        return len(self._big) + len(self._middle) + self._buffered

    @property
    def nbytes(self) -> int:
        return int(self._big.nbytes + self._middle.nbytes + self._buffer.nbytes)

    def add(self, keys: U64, slot: int) -> None:
        """Post ``slot`` under each of ``keys`` (posting keys: the key in the high 32 bits)."""
        if self._buffered + len(keys) > len(self._buffer):
            self._flush()
            if len(keys) > len(self._buffer):
                self._buffer = np.zeros(len(keys), dtype=np.uint64)
        end = self._buffered + len(keys)
        np.bitwise_or(keys, np.uint64(slot), out=self._buffer[self._buffered : end])
        self._buffered = end

    def _flush(self) -> None:
        middle = _merged(self._middle, np.sort(self._buffer[: self._buffered]))
        self._buffered = self._sorted_upto = 0
        if len(middle) >= self.middle_max:
            self._big, middle = _merged(self._big, middle), _EMPTY
        self._middle = middle

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
        return Found(bounds, total)

    def remap(self, new_slot: I64) -> None:
        """Renumber slots by ``new_slot[old]``; postings of slots mapped to -1 are dropped."""
        self._flush()
        flat = _merged(self._big, self._middle)
        moved = new_slot[(flat & _LOW).astype(np.int64)]
        keep = moved >= 0
        self._big, self._middle = (flat[keep] & ~_LOW) | moved[keep].astype(np.uint64), _EMPTY


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
