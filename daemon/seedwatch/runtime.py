"""Everything a running seedwatch holds, built from the config and swapped whole on reload.

A reload builds the new pieces first and only then replaces the old ones, so an edit with an
error leaves the last good watchlist, seeds and channels running (the error is logged with its
file and line, kept for ``seedwatch status``, and sent once to the operator channel).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from seedwatch.alerts.channels import Channel, build_channels
from seedwatch.classify import Classifier, load_seeds
from seedwatch.clock import Clock, SystemClock
from seedwatch.config import load_config, load_watchlist
from seedwatch.config.load import check_rule_channels
from seedwatch.config.model import Config
from seedwatch.errors import SeedwatchError
from seedwatch.parallel import PreparePool, default_workers
from seedwatch.politeness import HostLimiter
from seedwatch.rules import Watchlist, compile_watchlist
from seedwatch.storage import queries
from seedwatch.storage.common import chunks
from seedwatch.storage.db import make_sessionmaker, open_database
from seedwatch.stories import StoryIndex, StorySettings
from seedwatch.types import FeedRef, Item

log = logging.getLogger(__name__)

WATCHLIST_ERROR = "watchlist_error"
SEEDS_ERROR = "seeds_error"
CONFIG_ERROR = "config_error"
# Stored items per fingerprinting task when the story index is rebuilt at start.
REBUILD_BATCH = 1000


def owner_id() -> str:
    """Who holds a lease: host and pid, so a restarted daemon can tell its dead self's leases."""
    return f"{socket.gethostname()}:{os.getpid()}"


def file_stamp(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of every file under ``paths``: changes when any file is edited."""
    out: list[tuple[str, int, int]] = []
    for path in paths:
        candidates: Iterator[Path] = iter([path])
        if path.is_dir():
            candidates = (p for p in sorted(path.rglob("*")) if p.is_file())
        for p in candidates:
            try:
                st = p.stat()
            except OSError:
                out.append((str(p), -1, -1))
                continue
            out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


def build_watchlist(config: Config) -> Watchlist:
    """Load and compile the watchlist, checking every rule's channels exist."""
    wl_cfg = load_watchlist(config.watchlist_path)
    problems = check_rule_channels(config, wl_cfg)
    if problems:
        raise problems[0]
    return compile_watchlist(wl_cfg)


@dataclass
class Runtime:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    classifier: Classifier
    watchlist: Watchlist
    channels: dict[str, Channel]
    limiter: HostLimiter
    stories: StoryIndex
    clock: Clock = field(default_factory=SystemClock)
    owner: str = field(default_factory=owner_id)
    rng: random.Random = field(default_factory=random.Random)
    # SQLite allows one writer; a process-wide lock around the short write transactions avoids
    # "database is locked" under the worker pool, and keeps story lookup + index update atomic.
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    stamps: dict[str, tuple[tuple[str, int, int], ...]] = field(default_factory=dict)
    # Parses in worker processes; inline (workers=0) unless start() sets it from the config.
    prepare_pool: PreparePool = field(default_factory=lambda: PreparePool(0))
    # The fetching threads live as long as the runtime: each keeps its requests Session, and
    # with it the open connections, from one poll pass to the next.
    _fetchers: tuple[int, ThreadPoolExecutor] | None = field(default=None, init=False, repr=False)
    # [[feed]] intervals by "name:..." and "url:...", for the config they were read from.
    _intervals: tuple[Config, dict[str, float]] | None = field(
        default=None, init=False, repr=False
    )

    @classmethod
    def start(cls, config_path: Path, *, clock: Clock | None = None) -> Runtime:
        config = load_config(config_path)
        engine = open_database(config.storage.url)
        sessions = make_sessionmaker(engine)
        rt = cls(
            config=config,
            engine=engine,
            sessions=sessions,
            classifier=Classifier.build(
                load_seeds(config.classifier.seeds),
                threshold=config.classifier.threshold,
                backend=config.classifier.backend,
            ),
            watchlist=build_watchlist(config),
            channels=build_channels(config.channels, config.http),
            limiter=HostLimiter(config.http.per_host, config.http.host_gap),
            stories=StoryIndex(StorySettings()),
            clock=clock or SystemClock(),
            prepare_pool=PreparePool(
                default_workers()
                if config.schedule.parse_workers is None
                else config.schedule.parse_workers
            ),
        )
        rt.stamps = rt._current_stamps()
        with rt.sessions() as s:
            queries.sync_config_feeds(
                s, config.feeds, rt.clock.now(), default_interval=config.schedule.interval
            )
            s.commit()
        return rt

    def configured_interval(self, feed: FeedRef) -> float | None:
        """The interval the config writes for this very feed; it wins over the observed rate.

        Looked up in a table built once per config (a reload swaps the config): scanning
        every [[feed]] per poll is quadratic in the number of feeds."""
        cached = self._intervals
        if cached is None or cached[0] is not self.config:
            table: dict[str, float] = {}
            for f in self.config.feeds:
                if f.interval is not None:
                    table.setdefault(f"name:{f.name}", f.interval)
                    table.setdefault(f"url:{f.url}", f.interval)
            cached = self._intervals = (self.config, table)
        table = cached[1]
        return table.get(f"name:{feed.name}", table.get(f"url:{feed.url}"))

    def fetchers(self) -> ThreadPoolExecutor:
        """The pool of ``[schedule] workers`` fetching threads (a new one after a reload
        changes the number). Only the poll pass, one at a time, uses it."""
        n = self.config.schedule.workers
        current = self._fetchers
        if current is None or current[0] != n:
            if current is not None:
                current[1].shutdown(wait=False)
            current = (n, ThreadPoolExecutor(max_workers=n, thread_name_prefix="poll"))
            self._fetchers = current
        return current[1]

    def close(self) -> None:
        if self._fetchers is not None:
            self._fetchers[1].shutdown(wait=True, cancel_futures=True)
            self._fetchers = None
        self.prepare_pool.close()
        self.engine.dispose()

    def rebuild_story_index(self, progress: Callable[[int], None] | None = None) -> int:
        """Refill the in-memory story index from the last window's items (after a start), so a
        restart does not forget which stories are open. The fingerprints are computed in the
        parse workers; ``progress`` is called with the running count after each batch."""
        index = StoryIndex(self.stories.settings)
        since = self.clock.now() - timedelta(seconds=index.settings.window)
        count = 0
        story_ids: deque[list[int]] = deque()

        def batches(rows: Iterable[tuple[Item, int]]) -> Iterator[list[Item]]:
            for part in chunks(rows, REBUILD_BATCH):
                story_ids.append([sid for _, sid in part])
                yield [item for item, _ in part]

        with self.sessions() as s:
            rows = queries.recent_items_with_stories(s, since)
            for prints in self.prepare_pool.fingerprints(batches(rows), index.settings):
                for fp, story_id in zip(prints, story_ids.popleft(), strict=True):
                    index.add_fingerprint(fp, story_id)
                count += len(prints)
                if progress is not None:
                    progress(count)
        with self.write_lock:
            self.stories = index
        return count

    def expire_stories(self) -> int:
        with self.write_lock:
            return self.stories.expire(self.clock.now())

    # -- reload ---------------------------------------------------------------------------

    def _current_stamps(self) -> dict[str, tuple[tuple[str, int, int], ...]]:
        # feeds.toml is read when present, so its creation after start counts as an edit too.
        config_files = {*self.config.files, self.config.path.parent / "feeds.toml"}
        return {
            "config": file_stamp(sorted(config_files)),
            "watchlist": file_stamp([self.config.watchlist_path]),
            "seeds": file_stamp([self.config.classifier.seeds]),
        }

    def changed(self) -> set[str]:
        """Which of config / watchlist / seeds were edited since the last (re)load."""
        now = self._current_stamps()
        return {k for k, v in now.items() if self.stamps.get(k) != v}

    def reload(self, parts: set[str] | None = None) -> list[SeedwatchError]:
        """Re-read what changed (everything when ``parts`` is None). Returns the errors seen;
        on an error the previous object stays in use."""
        parts = {"config", "watchlist", "seeds"} if parts is None else parts
        errors: list[SeedwatchError] = []
        new_stamps = self._current_stamps()
        config = self.config
        if "config" in parts:
            try:
                config = load_config(self.config.path)
                if config.storage.url != self.config.storage.url:
                    log.warning("reload: storage.url changed; it takes effect at the next restart")
                channels = build_channels(config.channels, config.http)
                with self.write_lock, self.sessions() as s:
                    queries.sync_config_feeds(
                        s, config.feeds, self.clock.now(),
                        default_interval=config.schedule.interval,
                    )
                    s.commit()
                self.channels = channels
                self.limiter = HostLimiter(config.http.per_host, config.http.host_gap)
                self.config = config
                self._set_error(CONFIG_ERROR, None)
                log.info("reload: config reloaded feeds=%d", len(config.feeds))
            except SeedwatchError as e:
                errors.append(e)
                self._report(CONFIG_ERROR, e)
            parts = parts | {"watchlist", "seeds"}  # their paths may have moved
        if "watchlist" in parts:
            try:
                self.watchlist = build_watchlist(self.config)
                self._set_error(WATCHLIST_ERROR, None)
                log.info("reload: watchlist reloaded rules=%d", len(self.watchlist.rules))
            except SeedwatchError as e:
                errors.append(e)
                self._report(WATCHLIST_ERROR, e)
        if "seeds" in parts:
            try:
                seeds = load_seeds(self.config.classifier.seeds)
                if self.config.classifier.backend == self.classifier.backend:
                    # Keeps the statistics learnt from the stream since start.
                    classifier = self.classifier.rebuild(
                        seeds, threshold=self.config.classifier.threshold
                    )
                else:
                    classifier = Classifier.build(
                        seeds,
                        threshold=self.config.classifier.threshold,
                        backend=self.config.classifier.backend,
                    )
                self.classifier = classifier
                self._set_error(SEEDS_ERROR, None)
                log.info("reload: seeds reloaded")
            except SeedwatchError as e:
                errors.append(e)
                self._report(SEEDS_ERROR, e)
        self.stamps = new_stamps
        return errors

    def _set_error(self, key: str, text: str | None) -> None:
        with self.write_lock, self.sessions() as s:
            if queries.get_state(s, key) != text:
                queries.set_state(s, key, text or "", self.clock.now())
                s.commit()

    def _report(self, key: str, err: SeedwatchError) -> None:
        """Log an edit's error, keep it for `status`, and tell the operator once per error."""
        text = str(err)
        log.error("reload: %s kept the last good version: %s", key.replace("_error", ""), text)
        self._set_error(key, text)
        op = self.config.operator_channel
        if not op:
            return
        with self.write_lock, self.sessions() as s:
            queries.enqueue_operator_alert(
                s,
                channel=op,
                kind=key,
                key=text,
                title=f"seedwatch: {key.replace('_', ' ')}",
                body=f"The edit was not applied; the last good version keeps running.\n{text}",
                now=self.clock.now(),
            )
            s.commit()
