"""Words and names an outlet puts on most of its items: its template, not the news.

Counted per outlet (the URL's host), not per feed: an agency's several feeds share one template.
A police press office heads every report "POL-S: ... - Zeugen gesucht / Polizeipräsidium
Stuttgart", RIA opens each with "МОСКВА, 4 дек - РИА Новости", a wire adds the same dateline and
credits. Two different events from one template share all of that, so a key that a feed carries
on a large share of its items in the window stops counting as evidence for that feed. Counted
over the window (added and expired with the items), so memory follows the window.
"""

from __future__ import annotations

from collections.abc import Iterable

_SHIFT = 34  # keys are 33-bit (32-bit hash + tag); the outlet goes above them


class FeedTemplates:
    """Per outlet ("feed" below: the fingerprint's source): items in the window, and how many
    of them carry each key."""

    def __init__(self, min_items: int, share: float) -> None:
        self.min_items = min_items
        self.share = share
        self._items: dict[int, int] = {}
        self._counts: dict[int, int] = {}

    def add(self, feed: int, keys: Iterable[int]) -> None:
        self._items[feed] = self._items.get(feed, 0) + 1
        counts = self._counts
        base = feed << _SHIFT
        for key in keys:
            k = base | key
            counts[k] = counts.get(k, 0) + 1

    def remove(self, feed: int, keys: Iterable[int]) -> None:
        left = self._items[feed] - 1
        if left:
            self._items[feed] = left
        else:
            del self._items[feed]
        counts = self._counts
        base = feed << _SHIFT
        for key in keys:
            k = base | key
            n = counts[k] - 1
            if n:
                counts[k] = n
            else:
                del counts[k]

    def threshold(self, feed: int) -> int:
        """Items of ``feed`` that must carry a key for it to be template; 0: too few items."""
        items = self._items.get(feed, 0)
        if items < self.min_items:
            return 0
        return max(3, int(items * self.share + 0.999))

    def count(self, feed: int, key: int) -> int:
        return self._counts.get((feed << _SHIFT) | key, 0)

    def template_keys(self, feed: int, keys: Iterable[int]) -> set[int]:
        """Those of ``keys`` that are part of ``feed``'s template."""
        need = self.threshold(feed)
        if not need:
            return set()
        counts = self._counts
        base = feed << _SHIFT
        return {k for k in keys if counts.get(base | k, 0) >= need}

    def __len__(self) -> int:
        return len(self._counts)
