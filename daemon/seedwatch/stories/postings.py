"""An inverted index from 32-bit keys to 32-bit slots, 8 bytes per posting.

Postings live in one sorted uint64 array (key << 32 | slot), so a key's slots are one slice
found by binary search. New postings wait in a small dict and are merged in batches (one linear
pass). Nothing is removed one by one: the owner filters dead slots on read and calls ``remap``
when it renumbers its slots, which drops the dead ones.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
_LOW = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


class Postings:
    def __init__(self, merge_at: int = 1 << 16) -> None:
        self.merge_at = merge_at
        self._sorted: U64 = np.zeros(0, dtype=np.uint64)
        self._pending: dict[int, list[int]] = {}
        self._waiting = 0

    def __len__(self) -> int:
        return len(self._sorted) + self._waiting

    @property
    def nbytes(self) -> int:
        return int(self._sorted.nbytes)

    def add(self, keys: list[int], slot: int) -> None:
        """Post ``slot`` under each of ``keys`` (posting keys: the key in the high 32 bits)."""
        pending = self._pending
        for key in keys:
            got = pending.get(key)
            if got is None:
                pending[key] = [slot]
            else:
                got.append(slot)
        self._waiting += len(keys)
        if self._waiting >= self.merge_at:
            self.merge()

    def merge(self) -> None:
        if not self._waiting:
            return
        keys: list[int] = []
        for key, got in self._pending.items():
            keys.extend([key | slot for slot in got])
        new = np.array(keys, dtype=np.uint64)
        new.sort()
        self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, new), new)
        self._pending.clear()
        self._waiting = 0

    def bounds(self, keys: U64) -> tuple[I64, I64]:
        """Where each key's merged postings start, and how many there are."""
        flat = self._sorted
        lo = flat.searchsorted(keys)
        n: I64 = flat.searchsorted(keys | _LOW, side="right") - lo
        return lo, n

    def waiting(self, key: int) -> list[int] | None:
        """The slots of ``key`` not merged yet."""
        return self._pending.get(key)

    def slots(self, lo: I64, n: I64) -> I64:
        """The merged slots of the ranges ``bounds`` gave, concatenated."""
        ends = np.cumsum(n)
        at = np.repeat(lo - (ends - n), n) + np.arange(int(ends[-1]) if len(ends) else 0)
        found: I64 = (self._sorted[at] & _LOW).astype(np.int64)
        return found

    def remap(self, new_slot: I64) -> None:
        """Renumber slots by ``new_slot[old]``; postings of slots mapped to -1 are dropped."""
        self.merge()
        flat = self._sorted
        old = (flat & _LOW).astype(np.int64)
        moved = new_slot[old]
        keep = moved >= 0
        self._sorted = (flat[keep] & ~_LOW) | moved[keep].astype(np.uint64)
