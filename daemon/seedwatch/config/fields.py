"""Table-driven validation: each TOML table is a list of Field(name, check, default).

A check turns the raw TOML value into the model's value or raises ConfigError; ``Source``
supplies file and line for every message and collects errors so ``seedwatch check`` can list
them all instead of stopping at the first.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedwatch.config.model import Location, Network
from seedwatch.config.tomlpos import Positions, scan
from seedwatch.config.units import parse_duration, parse_hours, parse_size, type_name
from seedwatch.errors import ConfigError

KeyPath = tuple[str | int, ...]
Check = Callable[[Any, "Source", KeyPath], Any]

REQUIRED: Any = object()  # a Field default meaning "must be written"


@dataclass(frozen=True)
class Field:
    name: str
    check: Check
    default: Any = None
    doc: str = ""


class Source:
    """One parsed TOML file: its data, key positions and the errors found in it."""

    def __init__(self, path: Path, errors: list[ConfigError]) -> None:
        self.path = path
        self.errors = errors
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read: {e.strerror or e}", path=str(path)) from e
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise ConfigError("not valid UTF-8", path=str(path), line=line) from e
        try:
            self.data: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise toml_error(e, path) from e
        self.positions: Positions = scan(text)

    def location(self, keypath: KeyPath) -> Location:
        return Location(str(self.path), self.positions.line(keypath))

    def error(self, keypath: KeyPath, message: str, *, hint: str | None = None) -> ConfigError:
        at = self.positions.at(keypath)
        return ConfigError(
            message,
            path=str(self.path),
            line=at[0] if at else None,
            column=at[1] if at else None,
            key=dotted(keypath),
            hint=hint,
        )

    def fail(self, keypath: KeyPath, message: str, *, hint: str | None = None) -> None:
        self.errors.append(self.error(keypath, message, hint=hint))

    def take(self, table: Any, fields: Sequence[Field], keypath: KeyPath) -> dict[str, Any]:
        """Checked values for ``fields`` from ``table``; bad keys become collected errors."""
        out: dict[str, Any] = {}
        if not isinstance(table, dict):
            self.fail(keypath, f"expected a table, got {type_name(table)}")
            return {f.name: None if f.default is REQUIRED else f.default for f in fields}
        known = {f.name: f for f in fields}
        for key in table:
            if key not in known:
                self.unknown(keypath, key, list(known))
        for f in fields:
            if f.name not in table:
                if f.default is REQUIRED:
                    self.fail(keypath, f"missing required key {f.name!r}")
                out[f.name] = None if f.default is REQUIRED else f.default
                continue
            try:
                out[f.name] = f.check(table[f.name], self, (*keypath, f.name))
            except ConfigError as e:
                self.errors.append(e)
                out[f.name] = None if f.default is REQUIRED else f.default
        return out

    def unknown(self, keypath: KeyPath, key: str, known: Sequence[str]) -> None:
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(known)
        self.fail((*keypath, key), "unknown key", hint=hint)


def toml_error(e: tomllib.TOMLDecodeError, path: Path) -> ConfigError:
    """tomllib's message ends '(at line L, column C)'; keep L and C as structured fields."""
    text = str(e)
    m = re.search(r"\(at line (\d+), column (\d+)\)\s*$", text)
    if m:
        return ConfigError(
            "TOML syntax error: " + text[: m.start()].strip(),
            path=str(path),
            line=int(m.group(1)),
            column=int(m.group(2)),
        )
    m = re.search(r"\(at end of document\)\s*$", text)
    message = text[: m.start()].strip() + " at end of document" if m else text
    return ConfigError("TOML syntax error: " + message, path=str(path))


def dotted(keypath: KeyPath) -> str:
    out = ""
    for part in keypath:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            bare = re.fullmatch(r"[A-Za-z0-9_-]+", part) is not None
            piece = part if bare else '"' + part.replace('"', '\\"') + '"'
            out += ("." if out else "") + piece
    return out


# -- checks ------------------------------------------------------------------------------------
def _expect(kind: str, ok: bool, value: Any, src: Source, kp: KeyPath) -> None:
    if not ok:
        raise src.error(kp, f"expected {kind}, got {type_name(value)}")


def string(value: Any, src: Source, kp: KeyPath) -> str:
    _expect("a string", isinstance(value, str), value, src, kp)
    return str(value)


def nonempty(value: Any, src: Source, kp: KeyPath) -> str:
    text = string(value, src, kp)
    if not text.strip():
        raise src.error(kp, "must not be empty")
    return text


def secret(value: Any, src: Source, kp: KeyPath) -> str:
    """A string whose value never appears in a message (type errors only name the key)."""
    _expect("a string", isinstance(value, str), value, src, kp)
    return str(value)


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(value: Any, src: Source, kp: KeyPath) -> int:
        _expect(
            "an integer", isinstance(value, int) and not isinstance(value, bool), value, src, kp
        )
        _bounds(value, lo, hi, src, kp)
        return int(value)

    return check


def number(lo: float | None = None, hi: float | None = None) -> Check:
    def check(value: Any, src: Source, kp: KeyPath) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        _expect("a number", ok, value, src, kp)
        if not math.isfinite(value):
            raise src.error(kp, "must be a finite number")
        _bounds(value, lo, hi, src, kp)
        return float(value)

    return check


def _bounds(value: float, lo: float | None, hi: float | None, src: Source, kp: KeyPath) -> None:
    if lo is not None and value < lo:
        raise src.error(kp, f"{value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise src.error(kp, f"{value} is above the maximum {hi}")


def duration(positive: bool = False) -> Check:
    def check(value: Any, src: Source, kp: KeyPath) -> float:
        seconds = parse_duration(value, where=src.location(kp), key=dotted(kp))
        if positive and seconds <= 0:
            raise src.error(kp, "must be longer than zero seconds")
        return seconds

    return check


def size(value: Any, src: Source, kp: KeyPath) -> int:
    return parse_size(value, where=src.location(kp), key=dotted(kp))


def hours(value: Any, src: Source, kp: KeyPath) -> Any:
    return parse_hours(value, where=src.location(kp), key=dotted(kp))


def string_list(item: Check = nonempty) -> Check:
    def check(value: Any, src: Source, kp: KeyPath) -> tuple[Any, ...]:
        _expect("an array", isinstance(value, list), value, src, kp)
        return tuple(item(v, src, (*kp, i)) for i, v in enumerate(value))

    return check


_TAG = re.compile(r"[^\s,/]+")


def tag(value: Any, src: Source, kp: KeyPath) -> str:
    text = string(value, src, kp)
    if not _TAG.fullmatch(text):
        # OPML export writes tags as a comma-separated, slash-delimited category list.
        raise src.error(
            kp,
            f"tag {text!r} must be one word without spaces, ',' or '/'",
            hint='use "-" between words, e.g. "central-asia"',
        )
    return text.lower()


def network(value: Any, src: Source, kp: KeyPath) -> Network:
    text = string(value, src, kp)
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as e:
        raise src.error(
            kp,
            f"{text!r} is not a network in CIDR form",
            hint='e.g. "127.0.0.0/8", "10.1.2.0/24" or "::1/128"',
        ) from e


def path_beside(value: Any, src: Source, kp: KeyPath) -> Path:
    """A path; relative ones are relative to the folder of the file that names them."""
    text = nonempty(value, src, kp)
    return (src.path.parent / Path(text).expanduser()).resolve()


def choice(options: Sequence[str], *, upper: bool = False) -> Check:
    def check(value: Any, src: Source, kp: KeyPath) -> str:
        text = string(value, src, kp)
        norm = text.upper() if upper else text
        if norm not in options:
            close = difflib.get_close_matches(norm, list(options), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "one of " + ", ".join(options)
            raise src.error(kp, f"{text!r} is not allowed", hint=hint)
        return norm

    return check


def names_hint(name: str, names: Sequence[str], what: str = "channels") -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"defined {what}: " + (", ".join(names) if names else "none")
