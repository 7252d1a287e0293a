"""Words and names an outlet puts on most of its items: its template, not the news.

Counted per outlet (the URL's host), not per feed: an agency's several feeds share one template.
A police press office heads every report "POL-S: ... - Zeugen gesucht / Polizeipräsidium
Stuttgart", RIA opens each with "МОСКВА, 4 дек - РИА Новости", a wire adds the same dateline and
credits. Two different events from one template share all of that, so a key that an outlet
carries on a large share of its items in the window stops counting as evidence for that outlet.

Counts per (outlet, key) would cost more memory than the rest of the index, so a template is
computed from the outlet's items when it is asked for, and kept until the outlet has changed by
more than a quarter of its items (what an outlet prints on most items changes slowly).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
_NONE: frozenset[int] = frozenset()


class OutletTemplates:
    """Per outlet: items in the window, and its template keys (cached)."""

    def __init__(
        self, min_items: int, share: float, keys_of: Callable[[int], tuple[U64, I64]]
    ) -> None:
        self.min_items = min_items
        self.share = share
        # outlet -> the distinct keys of its items in the window, and on how many items each
        self._keys_of = keys_of
        self._items: dict[int, int] = {}
        self._changes: dict[int, int] = {}  # since its template was computed
        self._cache: dict[int, frozenset[int]] = {}

    def added(self, outlet: int) -> None:
        self._items[outlet] = self._items.get(outlet, 0) + 1
        self._changes[outlet] = self._changes.get(outlet, 0) + 1

    def removed(self, outlet: int, count: int) -> None:
        left = self._items[outlet] - count
        if left:
            self._items[outlet] = left
            self._changes[outlet] = self._changes.get(outlet, 0) + count
        else:
            del self._items[outlet]
            self._changes.pop(outlet, None)
            self._cache.pop(outlet, None)

    def threshold(self, outlet: int) -> int:
        """Items of ``outlet`` that must carry a key for it to be template; 0: too few items."""
        items = self._items.get(outlet, 0)
        if items < self.min_items:
            return 0
        return max(3, int(items * self.share + 0.999))

    def keys(self, outlet: int) -> frozenset[int]:
        """The template keys of ``outlet``: entity hash << 1 | 1, headline word hash << 1."""
        need = self.threshold(outlet)
        if not need:
            return _NONE
        cached = self._cache.get(outlet)
        if cached is not None and self._changes.get(outlet, 0) <= self._items[outlet] // 4:
            return cached
        keys, counts = self._keys_of(outlet)
        found = frozenset(keys[counts >= need].tolist())
        self._cache[outlet] = found
        self._changes[outlet] = 0
        return found
