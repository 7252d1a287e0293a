"""The validated configuration: frozen objects the rest of seedwatch reads.

``load.py`` builds these from TOML and rejects unknown keys and wrong types with file:line.
Durations are seconds (float); paths are absolute (resolved against the config file).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Location:
    """Where a setting was written, for error messages."""

    path: str
    line: int | None = None


@dataclass(frozen=True)
class StorageConfig:
    url: str  # SQLAlchemy URL; sqlite:///<data_dir>/seedwatch.db by default
    keep: float | None = None  # seconds items are kept; None keeps everything


@dataclass(frozen=True)
class HttpConfig:
    user_agent: str = "seedwatch/0.1 (+https://github.com/seedwatch/seedwatch)"
    connect_timeout: float = 10.0
    deadline: float = 30.0  # total wall-clock seconds per fetch, redirects included
    max_bytes: int = 16 * 1024 * 1024  # decompressed body cap
    max_redirects: int = 5
    allow_networks: tuple[Network, ...] = ()  # non-public networks that may be fetched
    per_host: int = 2  # concurrent requests to one host
    host_gap: float = 1.0  # seconds between requests to one host


@dataclass(frozen=True)
class ScheduleConfig:
    interval: float = 900.0  # default poll interval per feed
    min_interval: float = 300.0  # lower bound for any feed's interval
    max_interval: float = 6 * 3600.0
    max_backoff: float = 24 * 3600.0  # a failing feed is still checked at least this often
    failing_after: int = 3  # consecutive failures before the operator hears of it
    workers: int = 8  # concurrent fetches
    # Processes that parse, normalize and analyse fetched bodies; None: one per CPU core,
    # 0: in the fetching thread (one core, least memory).
    parse_workers: int | None = None
    poll_tick: float = 5.0  # how often the scheduler looks for due feeds
    deliver_tick: float = 2.0  # how often the outbox is looked at
    reload_tick: float = 2.0  # how often config files are checked for edits
    lease: float = 300.0  # seconds a claimed feed or alert stays ours


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    url: str  # secret: never logged
    secret: str | None = None  # webhook signing secret
    rate_limit: int | None = None  # alerts per hour; overflow goes to the next digest
    location: Location | None = None


@dataclass(frozen=True)
class ClassifierConfig:
    seeds: Path
    threshold: float | None = None  # None: the backend's shipped default
    backend: str = "lexical"


@dataclass(frozen=True)
class FeedConfig:
    url: str
    name: str
    interval: float | None = None
    tags: tuple[str, ...] = ()
    location: Location | None = None


@dataclass(frozen=True)
class RuleConfig:
    name: str
    query: str
    channels: tuple[str, ...]
    min_score: float | None = None
    topics: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()  # feed names or URLs
    tags: tuple[str, ...] = ()
    digest: float = 0.0  # seconds; 0 = immediate
    quiet_hours: tuple[time, time] | None = None  # UTC (start, end)
    follow_up_outlets: int | None = None  # alert again when a story reaches this many outlets
    location: Location | None = None


@dataclass(frozen=True)
class WatchlistConfig:
    path: Path
    rules: tuple[RuleConfig, ...] = ()
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (name, variants)


@dataclass(frozen=True)
class MetricsConfig:
    listen: str | None = None  # "127.0.0.1:9464"; None disables the endpoint


@dataclass(frozen=True)
class Config:
    path: Path  # the main config file
    data_dir: Path
    storage: StorageConfig
    http: HttpConfig
    schedule: ScheduleConfig
    classifier: ClassifierConfig
    watchlist_path: Path
    channels: tuple[ChannelConfig, ...] = ()
    operator_channel: str | None = None  # channel name for "feed failing", "rules broken", ...
    feeds: tuple[FeedConfig, ...] = ()
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log_level: str = "INFO"
    files: tuple[Path, ...] = ()  # every file read, for reload-on-edit

    def channel(self, name: str) -> ChannelConfig | None:
        for ch in self.channels:
            if ch.name == name:
                return ch
        return None
