"""`seedwatch backtest`: what a watchlist would have alerted on among stored items.

    stored items (since) --stored score/topic--> Watchlist.match --group by (rule, story)--> lines

Nothing is scored again (the stored score and topic are used, as min_score and topics saw them
then) and nothing is sent or written: the outbox is not touched. One line per (rule, story),
as alerts go out (one per rule, story and channel), with the story's outlets and the terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy.orm import Session, sessionmaker

from seedwatch.alerts.render import one_line
from seedwatch.config import load_watchlist
from seedwatch.config.model import Config, WatchlistConfig
from seedwatch.rules import compile_watchlist
from seedwatch.storage.backtest_reads import stored_items_since


@dataclass
class _Hit:
    """One (rule, story) the watchlist would alert on."""

    rule: str
    story: int | None
    headline: str
    first: datetime
    channels: tuple[str, ...]
    items: int = 0
    score: float = 0.0
    outlets: dict[str, None] = field(default_factory=dict)
    terms: dict[str, None] = field(default_factory=dict)
    links: dict[str, None] = field(default_factory=dict)


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def run_backtest(
    config: Config,
    sessions: sessionmaker[Session],
    *,
    since: float,
    rule: str | None,
    watchlist_path: Path | None,
    out: TextIO,
    now: datetime,
) -> int:
    """Print what the watchlist (``watchlist_path``, else the configured one) would have
    alerted on among items stored in the last ``since`` seconds. Exit code: 0, or 1 when
    ``rule`` names no rule. A broken watchlist raises ConfigError (with file:line:column)."""
    path = watchlist_path or config.watchlist_path
    wl_cfg = load_watchlist(path)
    if rule is not None:
        chosen = tuple(r for r in wl_cfg.rules if r.name == rule)
        if not chosen:
            names = ", ".join(r.name for r in wl_cfg.rules) or "none"
            print(f"backtest: no rule named {rule!r} in {path} (rules: {names})", file=out)
            return 1
        wl_cfg = WatchlistConfig(path=wl_cfg.path, rules=chosen, aliases=wl_cfg.aliases)
    watchlist = compile_watchlist(wl_cfg)
    unknown = sorted(
        {c for r in wl_cfg.rules for c in r.channels} - {c.name for c in config.channels}
    )
    start = now - timedelta(seconds=since)

    hits: dict[tuple[str, int], _Hit] = {}
    story_outlets: dict[int, dict[str, None]] = {}  # every feed seen carrying the story
    checked = 0
    with sessions() as s:
        for stored in stored_items_since(s, start):
            checked += 1
            if stored.story_id is not None:
                story_outlets.setdefault(stored.story_id, {})[stored.feed_name] = None
            matches = watchlist.match(
                stored.item,
                stored.score,
                feed_name=stored.feed_name,
                feed_url=stored.feed_url,
                feed_tags=stored.feed_tags,
            )
            for m in matches:
                # Items without a story alert on their own, as storage would give them one.
                key = (m.rule, stored.story_id if stored.story_id is not None else -stored.id)
                hit = hits.get(key)
                if hit is None:
                    hit = hits[key] = _Hit(
                        rule=m.rule,
                        story=stored.story_id,
                        headline=stored.headline,
                        first=stored.item.published,
                        channels=m.channels,
                    )
                hit.items += 1
                hit.first = min(hit.first, stored.item.published)
                hit.score = max(hit.score, stored.score.score)
                hit.outlets[stored.feed_name] = None
                hit.terms.update(dict.fromkeys(m.terms))
                if stored.item.url:
                    hit.links.setdefault(stored.item.url, None)

    print(
        f"backtest: {checked} stored item(s) since {_when(start)} UTC, "
        f"{len(wl_cfg.rules)} rule(s) from {path}; nothing is sent",
        file=out,
    )
    if unknown:
        print(f"note: rules name channels not in the config: {', '.join(unknown)}", file=out)
    alerts = 0
    for r in wl_cfg.rules:
        found = sorted(
            (h for h in hits.values() if h.rule == r.name), key=lambda h: (h.first, h.story or 0)
        )
        print(f"\nrule {r.name}: {len(found)} stor{'y' if len(found) == 1 else 'ies'}", file=out)
        for h in found:
            alerts += len(h.channels)
            story = f"story {h.story}" if h.story is not None else "no story"
            print(
                f"  {_when(h.first)}  {one_line(h.headline, limit=100)}  "
                f"({story}, {h.items} item(s), score {h.score:.2f})",
                file=out,
            )
            others = [o for o in story_outlets.get(h.story or 0, {}) if o not in h.outlets]
            outlets = ", ".join(one_line(o, limit=60) for o in h.outlets)
            if others:
                outlets += "; also reported by " + ", ".join(one_line(o, limit=60) for o in others)
            print(f"      outlets: {outlets}", file=out)
            print(f"      matched: {', '.join(one_line(t, limit=60) for t in h.terms)}", file=out)
            if h.links:
                print(f"      link: {one_line(next(iter(h.links)), limit=300)}", file=out)
    print(
        f"\n{len(hits)} (rule, story) pair(s); {alerts} alert(s) would be queued "
        "(one per rule, story and channel)",
        file=out,
    )
    return 0
