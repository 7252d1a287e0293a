"""Durations ("15m", "1h30m", 900), byte sizes ("16MB") and UTC hour ranges ("22:00-07:00")."""

from __future__ import annotations

import math
import re
from datetime import time

from seedwatch.config.model import Location
from seedwatch.errors import ConfigError

# Longer than any sane poll interval or retention, short enough to stay a finite float that
# datetime arithmetic accepts (timedelta tops out near 2.7 million years).
MAX_SECONDS = 100 * 365 * 86400.0

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d|w)", re.ASCII)
_NUMBER = re.compile(r"\s*[0-9]+(?:\.[0-9]+)?\s*", re.ASCII)

_SIZES = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", re.ASCII)

_HHMM = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*", re.ASCII)


def _error(
    message: str, where: Location | None, key: str | None, hint: str | None = None
) -> ConfigError:
    return ConfigError(
        message,
        path=where.path if where else None,
        line=where.line if where else None,
        key=key,
        hint=hint,
    )


def parse_duration(
    value: str | int | float, *, where: Location | None = None, key: str | None = None
) -> float:
    """Seconds from 900, 900.5, "900", "90s", "15m", "1h30m", "7d", "2w" or "250ms".

    Raises only ConfigError, naming ``where`` and ``key``, for anything else (negative, not
    finite, unknown unit, longer than a century).
    """
    hint = 'seconds as a number, or a string such as "90s", "15m", "1h30m", "7d"'
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _error(f"expected a duration, got {type_name(value)}", where, key, hint)
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            seconds = 0.0
            pos = 0
            for m in _PART.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if not text or pos != len(text):
                raise _error(f"{_short(value)} is not a duration", where, key, hint)
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise _error(f"{_short(value)} is not a duration of zero or more seconds", where, key, hint)
    if seconds > MAX_SECONDS:
        raise _error(f"{_short(value)} is longer than 100 years", where, key)
    return seconds


def parse_size(value: object, *, where: Location | None = None, key: str | None = None) -> int:
    """Bytes from 16777216, "16MB", "512 KiB", "1G". K/M/G are binary (1024) multiples."""
    hint = 'bytes as an integer, or a string such as "512KB", "16MB", "1GB"'
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _error(f"expected a size, got {type_name(value)}", where, key, hint)
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE.fullmatch(value)
        unit = m.group(2).lower() if m else ""
        if m is None or unit not in _SIZES:
            raise _error(f"{_short(value)} is not a size", where, key, hint)
        number = float(m.group(1))
        if not math.isfinite(number) or number * _SIZES[unit] > 2**62:
            raise _error(f"{_short(value)} is too large", where, key)
        size = int(number * _SIZES[unit])
    if size <= 0:
        raise _error(f"{_short(str(value))} must be more than zero bytes", where, key)
    return size


def parse_hours(
    value: object, *, where: Location | None = None, key: str | None = None
) -> tuple[time, time]:
    """("22:00-07:00") -> (time(22), time(7)), in UTC; a range may wrap past midnight."""
    hint = 'a UTC range such as "22:00-07:00"'
    if not isinstance(value, str):
        raise _error(f"expected a string, got {type_name(value)}", where, key, hint)
    halves = value.split("-")
    ends: list[time] = []
    for half in halves if len(halves) == 2 else []:
        m = _HHMM.fullmatch(half)
        if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            break
        ends.append(time(int(m.group(1)), int(m.group(2))))
    if len(ends) != 2:
        raise _error(f"{_short(value)} is not an hour range", where, key, hint)
    if ends[0] == ends[1]:
        raise _error(f"{_short(value)} is an empty range (start equals end)", where, key, hint)
    return ends[0], ends[1]


def type_name(value: object) -> str:
    """The TOML name of a parsed value's type, for 'expected X, got Y' messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time" if hasattr(value, "isoformat") else type(value).__name__


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
