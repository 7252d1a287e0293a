"""Compiled rule trees, evaluated over the term hits of one item.

A hit (and every span a node yields) is ``(field, start, end, pieces)``: word positions within
one field, inclusive, and the position ranges to highlight. ``eval`` returns the spans that
made the node true, ``[]`` for "true with nothing to show" (a satisfied NOT), or ``None`` for
false.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Protocol

Span = tuple[int, int, int, tuple[tuple[int, int], ...]]


class Hits(Protocol):
    """Where each atom was found; a plain ``dict[int, list[Span]]`` will do. Matching passes a
    lazy one that builds an atom's spans only when a rule asks for it."""

    def get(self, atom: int, /) -> list[Span] | None: ...


# Fields as bit positions; the order is also the order matched terms are reported in.
FIELD_BITS = {"title": 0, "text": 1, "url": 2, "feed": 3, "tag": 4}
ALL_FIELDS = tuple(FIELD_BITS)


def mask_of(*fields: str) -> int:
    m = 0
    for f in fields:
        m |= 1 << FIELD_BITS[f]
    return m


class CNode:
    __slots__ = ()

    def eval(self, hits: Hits) -> list[Span] | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def atoms(self) -> set[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def required(self) -> frozenset[int]:
        """Atoms that occur in every item the node is true for (a subset test against the
        item's atoms, in C, rules most woken rules out)."""
        if isinstance(self, CAtom):
            return frozenset({self.atom})
        if isinstance(self, CSeq):
            return frozenset().union(*(e.required() for e in self.elements))
        if isinstance(self, CAnd):
            return frozenset().union(*(c.required() for c in self.children))
        if isinstance(self, CNear):
            return self.left.required() | self.right.required()
        if isinstance(self, COr):
            return frozenset.intersection(*(c.required() for c in self.children))
        return frozenset()  # NOT: absence is what it wants

    def possible(self, present: set[int]) -> bool:  # pragma: no cover - abstract
        """Could the node be true, given only which atoms occur somewhere in the item? A cheap
        necessary condition (no positions, no fields) that spares most evaluations."""
        raise NotImplementedError

    def fields(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def trigger(self) -> Trigger | None:
        """Atoms of which at least one is hit whenever this node is true (None: no such set,
        e.g. a NOT). Only rules whose trigger was hit are evaluated for an item."""
        raise NotImplementedError  # pragma: no cover - abstract


# (atoms, rarity): rarity is a guess of how seldom the atoms occur (longer words are rarer);
# an AND is triggered by its rarest child, so common words do not wake the rule.
Trigger = tuple[frozenset[int], int]


def _best(triggers: list[Trigger | None]) -> Trigger | None:
    usable = [t for t in triggers if t is not None]
    if not usable:
        return None
    return max(usable, key=lambda t: (t[1], -len(t[0])))


def _union(triggers: list[Trigger | None]) -> Trigger | None:
    if any(t is None for t in triggers):
        return None
    known = [t for t in triggers if t is not None]
    return frozenset().union(*(t[0] for t in known)), min(t[1] for t in known)


class CAtom(CNode):
    """One word matcher (stem / exact form / prefix / transliteration) in the given fields."""

    __slots__ = ("atom", "mask", "rarity")

    def __init__(self, atom: int, mask: int, rarity: int = 0) -> None:
        self.atom = atom
        self.mask = mask
        self.rarity = rarity

    def trigger(self) -> Trigger | None:
        return frozenset({self.atom}), self.rarity

    def eval(self, hits: Hits) -> list[Span] | None:
        found = hits.get(self.atom)
        if not found:
            return None
        mask = self.mask
        out = [sp for sp in found if (mask >> sp[0]) & 1]
        return out or None

    def atoms(self) -> set[int]:
        return {self.atom}

    def possible(self, present: set[int]) -> bool:
        return self.atom in present

    def fields(self) -> int:
        return self.mask


class CSeq(CNode):
    """Consecutive elements (a phrase, or the parts of a hyphenated word)."""

    __slots__ = ("elements",)

    def __init__(self, elements: tuple[CNode, ...]) -> None:
        self.elements = elements

    def eval(self, hits: Hits) -> list[Span] | None:
        current = self.elements[0].eval(hits)
        if not current:
            return None
        for element in self.elements[1:]:
            nxt = element.eval(hits)
            if not nxt:
                return None
            by_start: dict[tuple[int, int], list[int]] = {}
            for f, s, e, _ in nxt:
                by_start.setdefault((f, s), []).append(e)
            current = [
                (f, s, e2, ((s, e2),))
                for f, s, e, _ in current
                for e2 in by_start.get((f, e + 1), ())
            ]
            if not current:
                return None
        return current

    def atoms(self) -> set[int]:
        return set().union(*(e.atoms() for e in self.elements))

    def possible(self, present: set[int]) -> bool:
        return all(e.possible(present) for e in self.elements)

    def trigger(self) -> Trigger | None:
        return _best([e.trigger() for e in self.elements])

    def fields(self) -> int:
        m = 0
        for e in self.elements:
            m |= e.fields()
        return m


class COr(CNode):
    __slots__ = ("children",)

    def __init__(self, children: tuple[CNode, ...]) -> None:
        self.children = children

    def eval(self, hits: Hits) -> list[Span] | None:
        # Every branch is evaluated (no short cut) so all matched terms get highlighted.
        out: list[Span] | None = None
        for child in self.children:
            res = child.eval(hits)
            if res is not None:
                out = res if out is None else out + res
        if out and len(self.children) > 1:
            out = list(dict.fromkeys(out))
        return out

    def atoms(self) -> set[int]:
        return set().union(*(c.atoms() for c in self.children))

    def possible(self, present: set[int]) -> bool:
        return any(c.possible(present) for c in self.children)

    def trigger(self) -> Trigger | None:
        return _union([c.trigger() for c in self.children])

    def fields(self) -> int:
        m = 0
        for c in self.children:
            m |= c.fields()
        return m


class CAnd(CNode):
    __slots__ = ("children",)

    def __init__(self, children: tuple[CNode, ...]) -> None:
        self.children = children

    def eval(self, hits: Hits) -> list[Span] | None:
        out: list[Span] = []
        for child in self.children:
            res = child.eval(hits)
            if res is None:
                return None
            out += res
        return out

    def atoms(self) -> set[int]:
        return set().union(*(c.atoms() for c in self.children))

    def possible(self, present: set[int]) -> bool:
        return all(c.possible(present) for c in self.children)

    def trigger(self) -> Trigger | None:
        return _best([c.trigger() for c in self.children])

    def fields(self) -> int:
        m = 0
        for c in self.children:
            m |= c.fields()
        return m


class CNot(CNode):
    __slots__ = ("child",)

    def __init__(self, child: CNode) -> None:
        self.child = child

    def eval(self, hits: Hits) -> list[Span] | None:
        return [] if self.child.eval(hits) is None else None

    def atoms(self) -> set[int]:
        return self.child.atoms()

    def possible(self, present: set[int]) -> bool:
        return True  # absence is what a NOT wants; only evaluation can tell

    def trigger(self) -> Trigger | None:
        return None

    def fields(self) -> int:
        return self.child.fields()


class CNear(CNode):
    """Two positional nodes in the same field with at most ``distance`` words between them."""

    __slots__ = ("distance", "left", "right")

    def __init__(self, left: CNode, right: CNode, distance: int) -> None:
        self.left = left
        self.right = right
        self.distance = distance

    def eval(self, hits: Hits) -> list[Span] | None:
        lefts = self.left.eval(hits)
        if not lefts:
            return None
        rights = self.right.eval(hits)
        if not rights:
            return None
        n = self.distance
        by_field: dict[int, list[Span]] = {}
        for sp in rights:
            by_field.setdefault(sp[0], []).append(sp)
        index: dict[int, tuple[list[int], list[Span], int]] = {}
        for f, spans in by_field.items():
            spans.sort()
            longest = max(sp[2] - sp[1] for sp in spans)
            index[f] = ([sp[1] for sp in spans], spans, longest)
        out: list[Span] = []
        for f, ls, le, lp in lefts:
            entry = index.get(f)
            if entry is None:
                continue
            starts, spans, longest = entry
            lo = bisect_left(starts, ls - n - 1 - longest)
            hi = bisect_right(starts, le + n + 1)
            for _, rs, re_, rp in spans[lo:hi]:
                if re_ < ls:
                    gap = ls - re_ - 1
                elif rs > le:
                    gap = rs - le - 1
                else:
                    continue  # overlapping: one word cannot be near itself
                if gap <= n:
                    out.append((f, min(ls, rs), max(le, re_), lp + rp))
        return out or None

    def atoms(self) -> set[int]:
        return self.left.atoms() | self.right.atoms()

    def possible(self, present: set[int]) -> bool:
        return self.left.possible(present) and self.right.possible(present)

    def trigger(self) -> Trigger | None:
        return _best([self.left.trigger(), self.right.trigger()])

    def fields(self) -> int:
        return self.left.fields() | self.right.fields()
