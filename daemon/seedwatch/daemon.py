"""`seedwatch run`: the long-running service.

APScheduler 3.x runs local ticks only (poll, reload, watchdog, prune); what is due lives in the
database, so a crash or restart loses nothing. SIGTERM/SIGINT stop it (in-flight feeds finish
or are left due, never half-stored); SIGHUP, or any edit of the config, watchlist or seeds,
reloads without a restart.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from seedwatch import metrics
from seedwatch.alerts.deliver import deliver_due
from seedwatch.alerts.schedule import digest_rule_names
from seedwatch.clock import Clock
from seedwatch.errors import FeedError, SeedwatchError
from seedwatch.notify import Notifier
from seedwatch.poller import poll_due
from seedwatch.runtime import Runtime
from seedwatch.storage import queries
from seedwatch.storage.db import ping
from seedwatch.storage.leases import release_own_leases
from seedwatch.storage.prune import prune
from seedwatch.types import FeedRef, StoreOutcome

log = logging.getLogger(__name__)

# How long SIGTERM waits for in-flight work before leaving it to the leases.
STOP_GRACE = 5.0
# Retention runs hourly; it does nothing without [storage] keep.
PRUNE_EVERY = 3600.0
# Each progress report during start-up buys this many more seconds from systemd's start timeout.
START_EXTEND = 60.0
# A daemon that made no progress for this long is reported unhealthy (watchdog, /healthz).
STUCK_AFTER = 600.0


@dataclass
class Health:
    last_progress: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def progress(self) -> None:
        with self.lock:
            self.last_progress = time.monotonic()

    def stuck_for(self) -> float:
        with self.lock:
            return time.monotonic() - self.last_progress


class Daemon:
    def __init__(self, rt: Runtime, notifier: Notifier | None = None) -> None:
        self.rt = rt
        self.notifier = notifier or Notifier()
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self.health = Health()
        self.busy = threading.Event()  # set while a poll tick runs
        # Delivery runs in its own thread, woken as soon as a store created alerts, so an
        # alert does not wait for the next tick (fetch-to-channel latency).
        self.wake_delivery = threading.Event()
        self.abandoned = False
        self.rng = random.Random()
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )

    # -- ticks ----------------------------------------------------------------------------

    def poll_tick(self) -> None:
        self.busy.set()
        try:
            report = poll_due(self.rt, stop=self.stop, on_done=self._feed_done)
            if report.feeds:
                log.info(
                    "tick: poll feeds=%d ok=%d failed=%d new=%d alerts=%d",
                    report.feeds, report.ok, report.failed, report.new_items, report.alerts,
                )
            self.rt.expire_stories()
        except Exception:
            log.exception("tick: poll failed")
        finally:
            self.busy.clear()
        self.health.progress()
        metrics.LAST_TICK.labels(tick="poll").set_to_current_time()

    def _feed_done(self, feed: FeedRef, res: StoreOutcome | None, err: FeedError | None) -> None:
        self.health.progress()
        if res is not None and res.alerts:
            self.wake_delivery.set()

    def delivery_loop(self) -> None:
        interval = self.rt.config.schedule.deliver_tick
        while not self.stop.is_set():
            self.deliver_tick()
            self.wake_delivery.wait(timeout=interval)
            self.wake_delivery.clear()

    def prune_tick(self) -> None:
        keep = self.rt.config.storage.keep
        if keep is None:
            return
        try:
            with self.rt.sessions() as s:
                report = prune(s, self.rt.clock.now(), keep, lock=self.rt.write_lock)
            if report.items or report.alerts or report.stories:
                log.info("tick: prune items=%d alerts=%d stories=%d",
                         report.items, report.alerts, report.stories)
        except Exception:
            log.exception("tick: prune failed")

    def deliver_tick(self) -> None:
        try:
            deliver_due(
                self.rt.sessions,
                self.rt.channels,
                now=self.rt.clock.now(),
                owner=self.rt.owner,
                lease=self.rt.config.schedule.lease,
                rng=self.rng,
                operator_channel=self.rt.config.operator_channel,
                digest_rules=digest_rule_names([r.config for r in self.rt.watchlist.rules]),
            )
        except Exception:
            log.exception("tick: deliver failed")
        metrics.LAST_TICK.labels(tick="deliver").set_to_current_time()

    def reload_tick(self) -> None:
        try:
            parts = self.rt.changed()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                parts = {"config", "watchlist", "seeds"}
            if parts:
                log.info("reload: files changed parts=%s", ",".join(sorted(parts)))
                self.rt.reload(parts)
        except Exception:
            log.exception("tick: reload failed")

    def healthy(self) -> tuple[bool, str]:
        if not ping(self.rt.engine):
            return False, "database does not answer"
        stuck = self.health.stuck_for()
        if stuck > STUCK_AFTER:
            return False, f"scheduler made no progress for {stuck:.0f}s"
        return True, "ok"

    def watchdog_tick(self) -> None:
        ok, why = self.healthy()
        if ok:
            self.notifier.watchdog()
        else:
            # No ping: systemd's WatchdogSec restarts us, which is the point.
            log.error("watchdog: not pinging status=%s", why)

    # -- lifecycle ------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload_requested.set()
        else:
            self.stop.set()

    def _rebuild_story_index(self) -> None:
        """Rebuild the story index before polling (a story must not alert twice because a
        restart forgot it), telling systemd it is making progress: after a busy day this
        takes longer than the default start timeout."""
        t0 = last = time.monotonic()
        self.notifier.extend_timeout(START_EXTEND, "rebuilding the story index")

        def progress(count: int) -> None:
            nonlocal last
            if time.monotonic() - last >= START_EXTEND / 4:
                last = time.monotonic()
                self.notifier.extend_timeout(
                    START_EXTEND, f"rebuilding the story index: {count} items"
                )

        count = self.rt.rebuild_story_index(progress)
        log.info("start: story index rebuilt items=%d seconds=%.1f",
                 count, time.monotonic() - t0)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        cfg = self.rt.config
        with self.rt.write_lock, self.rt.sessions() as s:
            released = queries.release_dead_leases(s)
            s.commit()
        if released:
            log.info("start: released leases of a previous run count=%d", released)
        self._rebuild_story_index()
        if cfg.metrics.listen:
            metrics.serve(cfg.metrics.listen, self.healthy)
        sched = cfg.schedule
        # The first poll runs now rather than one interval later.
        self.scheduler.add_job(self.poll_tick, "interval", seconds=sched.poll_tick,
                               id="poll", next_run_time=self.rt.clock.now())
        self.scheduler.add_job(self.reload_tick, "interval", seconds=sched.reload_tick,
                               id="reload")
        self.scheduler.add_job(self.prune_tick, "interval", seconds=PRUNE_EVERY, id="prune")
        wd = self.notifier.watchdog_interval() or 10.0
        self.scheduler.add_job(self.watchdog_tick, "interval", seconds=wd, id="watchdog")
        self.scheduler.start()
        delivery = threading.Thread(target=self.delivery_loop, name="deliver", daemon=True)
        delivery.start()
        self.notifier.ready(f"polling {len(cfg.feeds)} configured feeds")
        log.info("start: running feeds=%d rules=%d owner=%s",
                 len(cfg.feeds), len(self.rt.watchlist.rules), self.rt.owner)
        while not self.stop.wait(0.25):
            if self.reload_requested.is_set():
                self.reload_tick()
        log.info("stop: signal received, finishing in-flight work")
        self.notifier.stopping()
        self.scheduler.shutdown(wait=False)
        self.wake_delivery.set()
        deadline = time.monotonic() + STOP_GRACE
        while self.busy.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        delivery.join(timeout=max(deadline - time.monotonic(), 0.1))
        try:
            # Other daemons may take this one's claimed feeds and alerts at once.
            with self.rt.write_lock, self.rt.sessions() as s:
                release_own_leases(s, owner=self.rt.owner)
        except SeedwatchError as e:
            log.warning("stop: could not release leases: %s", e)
        if self.busy.is_set():
            # A fetch still running holds nothing half-stored: its transaction has not begun
            # or rolls back, and its lease makes the feed due again after restart.
            log.warning("stop: leaving in-flight feeds to their leases")
            self.abandoned = True  # the caller exits without joining the worker threads
            return 0
        self.rt.close()
        log.info("stop: done")
        return 0


def run_daemon(config_path: Path, *, clock: Clock | None = None) -> int:
    rt = Runtime.start(config_path, clock=clock)
    daemon = Daemon(rt)
    code = daemon.run()
    if daemon.abandoned:
        logging.shutdown()
        os._exit(code)
    return code
