"""Where each key of a TOML document was written: tomllib gives values but no positions.

The scanner runs only on text that tomllib has already accepted, so it can trust the syntax and
stay small. It maps key paths to (line, column), both 1-based. A path is a tuple of table keys,
with an int for an entry of an array of tables or of an array value::

    [[feed]]            -> ("feed", 0)
    url = "..."         -> ("feed", 0, "url")
    [channel.log]       -> ("channel", "log")
    tags = ["a", "b"]   -> ("feed", 0, "tags"), ("feed", 0, "tags", 0), ("feed", 0, "tags", 1)

Good enough for hand-written files: repeated [[tables]], dotted keys, inline tables, multi-line
arrays and strings. Nested arrays of tables resolve to the latest entry of each parent.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

Path_ = tuple[str | int, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class Positions:
    """Lookup of key paths to (line, column); falls back to the closest written ancestor."""

    def __init__(self, table: dict[Path_, tuple[int, int]]) -> None:
        self._table = table

    def at(self, path: Sequence[str | int]) -> tuple[int, int] | None:
        key = tuple(path)
        while key:
            hit = self._table.get(key)
            if hit is not None:
                return hit
            key = key[:-1]
        return None

    def line(self, path: Sequence[str | int]) -> int | None:
        hit = self.at(path)
        return hit[0] if hit else None

    def exact_line(self, path: Sequence[str | int]) -> int | None:
        hit = self._table.get(tuple(path))
        return hit[0] if hit else None


def scan(text: str) -> Positions:
    """Positions of every table header, key and array element in ``text`` (valid TOML)."""
    scanner = _Scanner(text)
    try:
        scanner.document()
    except (IndexError, ValueError) as e:  # pragma: no cover - tomllib accepted the text
        # Positions are a courtesy for error messages; a scanner gap must never hide the
        # real error, so keep what was found so far.
        log.debug("toml position scan stopped early: %s", e)
    return Positions(scanner.found)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.line_start = 0
        self.found: dict[Path_, tuple[int, int]] = {}
        self.array_len: dict[Path_, int] = {}  # array-of-tables path -> entries so far
        self.array_paths: set[tuple[str, ...]] = set()

    # -- low level -------------------------------------------------------------------------
    def peek(self, n: int = 0) -> str:
        j = self.i + n
        return self.s[j] if j < len(self.s) else ""

    def advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.i >= len(self.s):
                return
            if self.s[self.i] == "\n":
                self.line += 1
                self.line_start = self.i + 1
            self.i += 1

    def pos(self) -> tuple[int, int]:
        return (self.line, self.i - self.line_start + 1)

    def record(self, path: Path_, at: tuple[int, int]) -> None:
        self.found.setdefault(path, at)

    def skip_blank(self, newlines: bool) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.advance()
            else:
                return

    def skip_line(self) -> None:
        while self.i < len(self.s) and self.s[self.i] != "\n":
            self.advance()

    # -- pieces ----------------------------------------------------------------------------
    def string(self) -> str:
        q = self.peek()
        if self.s.startswith(q * 3, self.i):
            self.advance(3)
            end = self.s.find(q * 3, self.i)
            # A closing run may hold up to two extra quotes that belong to the content.
            while end != -1 and self.s.startswith(q, end + 3):
                end += 1
            body = self.s[self.i : end]
            self.advance(end + 3 - self.i)
            return body
        self.advance()
        out = []
        while self.i < len(self.s) and self.s[self.i] != q:
            if q == '"' and self.s[self.i] == "\\":
                out.append(self.s[self.i : self.i + 2])
                self.advance(2)
                continue
            out.append(self.s[self.i])
            self.advance()
        self.advance()
        text = "".join(out)
        if q == '"':
            with contextlib.suppress(UnicodeDecodeError):
                text = text.encode("latin-1", "backslashreplace").decode("unicode_escape")
        return text

    def key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            c = self.peek()
            if c in "\"'":
                parts.append(self.string())
            else:
                start = self.i
                while self.peek() in _BARE and self.peek() != "":
                    self.advance()
                parts.append(self.s[start : self.i])
            self.skip_blank(newlines=False)
            if self.peek() == ".":
                self.advance()
                continue
            return tuple(parts)

    def resolve(self, key: tuple[str, ...]) -> Path_:
        """Insert the current index after every prefix that is an array of tables."""
        out: list[str | int] = []
        for n, part in enumerate(key):
            out.append(part)
            prefix = key[: n + 1]
            if prefix in self.array_paths and n < len(key) - 1:
                out.append(self.array_len[tuple(self.resolve(prefix))] - 1)
        return tuple(out)

    def value(self, path: Path_) -> None:
        self.skip_blank(newlines=False)
        c = self.peek()
        if c in "\"'":
            self.string()
        elif c == "[":
            self.advance()
            idx = 0
            while True:
                self.skip_blank(newlines=True)
                if self.peek() in ("]", ""):
                    self.advance()
                    return
                self.record((*path, idx), self.pos())
                self.value((*path, idx))
                self.skip_blank(newlines=True)
                if self.peek() == ",":
                    self.advance()
                idx += 1
        elif c == "{":
            self.advance()
            while True:
                self.skip_blank(newlines=False)
                if self.peek() in ("}", ""):
                    self.advance()
                    return
                at = self.pos()
                sub = (*path, *self.key())
                self.record(sub, at)
                self.advance()  # '='
                self.value(sub)
                self.skip_blank(newlines=False)
                if self.peek() == ",":
                    self.advance()
        else:
            while self.peek() not in ("", ",", "]", "}", "\n", "#"):
                self.advance()

    # -- document --------------------------------------------------------------------------
    def document(self) -> None:
        current: Path_ = ()
        while True:
            self.skip_blank(newlines=True)
            if self.i >= len(self.s):
                return
            at = self.pos()
            if self.s.startswith("[[", self.i):
                self.advance(2)
                key = self.key()
                self.advance(2)
                parent = self.resolve((*key[:-1], ""))[:-1] if len(key) > 1 else ()
                full = (*parent, key[-1])
                self.array_paths.add(key)
                n = self.array_len.get(full, 0)
                self.array_len[full] = n + 1
                self.record(full, at)
                current = (*full, n)
                self.record(current, at)
                self.skip_line()
            elif self.peek() == "[":
                self.advance()
                key = self.key()
                self.advance()
                current = self.resolve(key)
                # [a.b.c] also defines a and a.b implicitly; point them here if nothing else did.
                for n in range(1, len(current) + 1):
                    self.record(current[:n], at)
                self.skip_line()
            else:
                key = self.key()
                path = (*current, *key)
                for n in range(len(current) + 1, len(path) + 1):
                    self.record(path[:n], at)  # a.b.c = 1 defines a and a.b too
                self.advance()  # '='
                self.value(path)
                self.skip_line()
