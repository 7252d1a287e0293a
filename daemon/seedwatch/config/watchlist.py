"""Read watchlist.toml: [[rule]] tables and an [aliases] table of NAME = ["variant", ...].

The query text is carried as written (the rules package parses it); each rule keeps the line of
its query so a syntax error there can be reported as file:line:column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from seedwatch.config import fields as F
from seedwatch.config.fields import REQUIRED, Field, KeyPath, Source
from seedwatch.config.model import Config, Location, RuleConfig, WatchlistConfig
from seedwatch.errors import ConfigError

_ALIAS_NAME = re.compile(r"[^\W\d][\w-]*")


def _digest(value: Any, src: Source, kp: KeyPath) -> float:
    if isinstance(value, str) and value.strip().lower() == "immediate":
        return 0.0
    return F.duration()(value, src, kp)  # type: ignore[no-any-return]


RULE_FIELDS = (
    Field("name", F.nonempty, REQUIRED),
    Field("query", F.nonempty, REQUIRED),
    Field("channels", F.string_list(), REQUIRED),
    Field("min_score", F.number(0.0, 1.0), None),
    Field("topics", F.string_list(), ()),
    Field("feeds", F.string_list(), ()),
    Field("tags", F.string_list(F.tag), ()),
    Field("digest", _digest, 0.0),
    Field("quiet_hours", F.hours, None),
    Field("follow_up_outlets", F.integer(2, 1000), None),
)


def load_watchlist(path: Path) -> WatchlistConfig:
    """The validated watchlist; the first error raises, the rest ride along as notes."""
    watchlist, errors = check_watchlist(path)
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(str(other))
        raise first
    assert watchlist is not None
    return watchlist


def check_watchlist(path: Path) -> tuple[WatchlistConfig | None, list[ConfigError]]:
    """The watchlist (None when any error was found) and every error found in it."""
    path = Path(path).resolve()
    errors: list[ConfigError] = []
    try:
        src = Source(path, errors)
    except ConfigError as e:
        return None, [e]
    for key in src.data:
        if key not in ("rule", "aliases"):
            src.unknown((), key, ["rule", "aliases"])
    aliases = _aliases(src.data.get("aliases", {}), src)
    rules: list[RuleConfig] = []
    names: dict[str, int | None] = {}
    raw = src.data.get("rule", [])
    if not isinstance(raw, list):
        src.fail(("rule",), "expected [[rule]] tables", hint="write each rule as [[rule]]")
        raw = []
    for i, table in enumerate(raw):
        kp: KeyPath = ("rule", i)
        before = len(errors)
        v = src.take(table, RULE_FIELDS, kp)
        if len(errors) > before:
            continue
        if v["name"] in names:
            src.fail(
                (*kp, "name"),
                f"duplicate rule name {v['name']!r}, first at line {names[v['name']]}",
            )
            continue
        names[v["name"]] = src.positions.line((*kp, "name"))
        if not v["channels"]:
            src.fail((*kp, "channels"), "a rule needs at least one channel")
            continue
        query_line = src.positions.exact_line((*kp, "query")) or src.positions.line(kp)
        rules.append(
            RuleConfig(
                name=v["name"],
                query=v["query"],
                channels=tuple(dict.fromkeys(v["channels"])),
                min_score=v["min_score"],
                topics=v["topics"],
                feeds=v["feeds"],
                tags=v["tags"],
                digest=v["digest"],
                quiet_hours=v["quiet_hours"],
                follow_up_outlets=v["follow_up_outlets"],
                location=Location(str(path), query_line),
            )
        )
    if errors:
        errors.sort(key=lambda e: (e.line or 0, e.column or 0))
        return None, errors
    return WatchlistConfig(path=path, rules=tuple(rules), aliases=aliases), errors


def _aliases(raw: Any, src: Source) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(raw, dict):
        src.fail(("aliases",), 'expected a table of NAME = ["variant", ...]')
        return ()
    out: list[tuple[str, tuple[str, ...]]] = []
    for name, variants in raw.items():
        kp: KeyPath = ("aliases", name)
        if not _ALIAS_NAME.fullmatch(name):
            src.fail(
                kp,
                "an alias name is one word of letters, digits, '_' or '-'",
                hint="use it in queries the same way as a word",
            )
            continue
        try:
            values = F.string_list()(variants, src, kp)
        except ConfigError as e:
            src.errors.append(e)
            continue
        if not values:
            src.fail(kp, "an alias needs at least one variant")
            continue
        out.append((name, tuple(dict.fromkeys(values))))
    return tuple(out)


def check_rule_channels(config: Config, watchlist: WatchlistConfig) -> list[ConfigError]:
    """One error per rule channel that the main config does not define."""
    defined = [c.name for c in config.channels]
    errors: list[ConfigError] = []
    for rule in watchlist.rules:
        for name in rule.channels:
            if name not in defined:
                errors.append(
                    ConfigError(
                        f"rule {rule.name!r} sends to channel {name!r}, which {config.path.name} "
                        "does not define",
                        path=rule.location.path if rule.location else str(watchlist.path),
                        line=rule.location.line if rule.location else None,
                        key="channels",
                        hint=F.names_hint(name, defined),
                    )
                )
    return errors
