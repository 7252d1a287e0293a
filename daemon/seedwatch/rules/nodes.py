"""The syntax tree of a watch-rule query, as ``parse_query`` returns it.

Columns are 1-based positions in the query text, kept so compile errors can point at a term.
"""

from __future__ import annotations

from dataclasses import dataclass

FIELDS = ("title", "text", "url", "feed", "tag")
DEFAULT_FIELDS = ("title", "text")


@dataclass(frozen=True)
class Word:
    """A bare word as written (without ``=`` / ``*``); may fold into several tokens."""

    text: str
    exact: bool = False
    prefix: bool = False
    column: int = 1


@dataclass(frozen=True)
class Phrase:
    """A quoted phrase: its tokens must be consecutive; ``exact`` for ``="..."``."""

    text: str
    exact: bool = False
    column: int = 1


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]
    column: int = 1


@dataclass(frozen=True)
class Or:
    """Any of the children; ``alias`` names the alias group when this came from expanding one."""

    children: tuple[Node, ...]
    column: int = 1
    alias: str | None = None


@dataclass(frozen=True)
class Not:
    child: Node
    column: int = 1


@dataclass(frozen=True)
class Near:
    """``left NEAR/n right``: at most ``distance`` words between the two, in either order."""

    left: Node
    right: Node
    distance: int
    column: int = 1


@dataclass(frozen=True)
class Scope:
    """``field:child``: the child only looks at that field (an inner scope wins)."""

    field: str
    child: Node
    column: int = 1


Node = Word | Phrase | And | Or | Not | Near | Scope


def matches_without_terms(node: Node) -> bool:
    """Would the query match an item that contains none of its terms (e.g. ``NOT x``)?"""
    if isinstance(node, Word | Phrase | Near):
        return False
    if isinstance(node, Not):
        return not matches_without_terms(node.child)
    if isinstance(node, And):
        return all(matches_without_terms(c) for c in node.children)
    if isinstance(node, Or):
        return any(matches_without_terms(c) for c in node.children)
    return matches_without_terms(node.child)


def is_positional(node: Node) -> bool:
    """Can the node stand on a side of NEAR (it yields word positions)?"""
    if isinstance(node, Word | Phrase | Near):
        return True
    if isinstance(node, Or):
        return all(is_positional(c) for c in node.children)
    if isinstance(node, Scope):
        return is_positional(node.child)
    return False


def to_text(node: Node) -> str:
    """The node written back as query syntax (fully parenthesised), for messages and tests."""
    if isinstance(node, Word):
        return ("=" if node.exact else "") + node.text + ("*" if node.prefix else "")
    if isinstance(node, Phrase):
        return ("=" if node.exact else "") + '"' + node.text + '"'
    if isinstance(node, And):
        return "(" + " AND ".join(to_text(c) for c in node.children) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(to_text(c) for c in node.children) + ")"
    if isinstance(node, Not):
        return "NOT " + to_text(node.child)
    if isinstance(node, Near):
        return f"({to_text(node.left)} NEAR/{node.distance} {to_text(node.right)})"
    return f"{node.field}:{to_text(node.child)}"
