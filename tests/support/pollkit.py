"""Helpers for the polling tests: a movable clock, a config with every knob in reach, and
reading back what the poller recorded."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from seedwatch.alerts.deliver import deliver_due
from seedwatch.runtime import Runtime
from seedwatch.storage import queries
from seedwatch.storage.reads import FeedStatusRow
from tests.support.daemon import SEEDS, read_jsonl

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    at: datetime = T0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> datetime:
        with self.lock:
            return self.at

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.at += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        with self.lock:
            self.at = when


@dataclass(frozen=True)
class FeedSpec:
    name: str
    url: str
    interval: str | None = None  # None: the schedule's default and the adaptive rate


def write_poll_config(
    tmp: Path,
    feeds: Sequence[FeedSpec],
    *,
    allow: str = '"127.0.0.0/8"',
    http: str = "",
    schedule: str = "",
    workers: int = 4,
) -> Path:
    """A config for poller tests: no watch rules, an operator JSONL channel."""
    tables = []
    for f in feeds:
        line = f'[[feed]]\nurl = "{f.url}"\nname = "{f.name}"\n'
        if f.interval is not None:
            line += f'interval = "{f.interval}"\n'
        tables.append(line)
    (tmp / "watchlist.toml").write_text("", encoding="utf-8")
    cfg = tmp / "seedwatch.toml"
    cfg.write_text(
        f"""\
data_dir = "{tmp}"
operator_channel = "ops"

[storage]
url = "sqlite:///{tmp / 'seedwatch.db'}"

[http]
allow_networks = [{allow}]
host_gap = 0
deadline = 3
connect_timeout = 2
{http}

[schedule]
workers = {workers}
lease = "20s"
{schedule}

[classifier]
seeds = "{SEEDS}"

[channel.ops]
url = "jsonl://{tmp / 'operator.jsonl'}"

{"".join(tables)}
""",
        encoding="utf-8",
    )
    return cfg


def start(cfg: Path, clock: FakeClock | None = None) -> Runtime:
    rt = Runtime.start(cfg, clock=clock or FakeClock())
    rt.rng = random.Random(7)
    return rt


def status(rt: Runtime) -> dict[str, FeedStatusRow]:
    with rt.sessions() as s:
        return {r.name: r for r in queries.feed_status(s, rt.clock.now())}


def operator_alerts(rt: Runtime, tmp: Path) -> list[dict[str, object]]:
    """Deliver what is due to the JSONL operator channel and return everything it received."""
    deliver_due(
        rt.sessions, rt.channels, now=rt.clock.now(), owner=rt.owner, lease=30,
        rng=random.Random(1), operator_channel=rt.config.operator_channel,
    )
    return read_jsonl(tmp / "operator.jsonl")
