"""Prometheus metrics and the /healthz endpoint, served on a loopback address.

Metric objects live in one registry of our own (not the global default), so tests and several
runtimes in one process do not collide.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.orm import Session

from seedwatch.errors import SeedwatchError
from seedwatch.storage import queries
from seedwatch.storage.feeds import stale_feed_ids

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
POLLS = Counter("seedwatch_polls", "Feed polls by outcome", ["outcome"], registry=REGISTRY)
HTTP_STATUS = Counter(
    "seedwatch_http_responses", "HTTP responses by status class", ["class"], registry=REGISTRY
)
ITEMS = Counter("seedwatch_items", "Items seen by kind (new, duplicate)", ["kind"],
                registry=REGISTRY)
ALERTS = Counter("seedwatch_alert_deliveries", "Alert delivery attempts by result", ["result"],
                 registry=REGISTRY)
STAGE = Histogram("seedwatch_stage_seconds", "Time spent per pipeline stage", ["stage"],
                  registry=REGISTRY)
FEEDS = Gauge("seedwatch_feeds", "Feeds by state (active, failing, gone, stale)", ["state"],
              registry=REGISTRY)
OUTBOX = Gauge("seedwatch_outbox", "Outbox rows by status", ["status"], registry=REGISTRY)
ALERT_STATES = Gauge("seedwatch_alerts", "Alerts by state (pending, dead, sent_last_24h)",
                     ["state"], registry=REGISTRY)
LAST_TICK = Gauge("seedwatch_last_tick_timestamp", "Unix time a scheduler tick last completed",
                  ["tick"], registry=REGISTRY)


GAUGE_REFRESH = 15.0  # seconds between gauge refreshes from the database
_refresh_lock = threading.Lock()
_refreshed_at = float("-inf")


def refresh_gauges(
    sessions: Callable[[], Session], now: datetime, *, min_age: float = 0.0
) -> bool:
    """Set the feed, alert and outbox gauges from the database (``storage.health_summary``).

    Skipped when the last refresh is younger than ``min_age`` seconds, so a poll tick every few
    seconds does not count every table each time. A database that does not answer leaves the
    gauges as they were (``/healthz`` reports it). Returns True when it refreshed.
    """
    global _refreshed_at
    with _refresh_lock:
        if time.monotonic() - _refreshed_at < min_age:
            return False
        _refreshed_at = time.monotonic()
    try:
        with sessions() as s:
            h = queries.health_summary(s, now)
            stale = len(stale_feed_ids(s))
    except SeedwatchError as e:
        log.warning("metrics: gauges not refreshed error=%s", e)
        return False
    FEEDS.labels(state="active").set(h.feeds_active)
    FEEDS.labels(state="failing").set(h.feeds_failing)
    FEEDS.labels(state="gone").set(h.feeds_gone)
    FEEDS.labels(state="stale").set(stale)
    ALERT_STATES.labels(state="pending").set(h.alerts_pending)
    ALERT_STATES.labels(state="dead").set(h.alerts_dead)
    ALERT_STATES.labels(state="sent_last_24h").set(h.alerts_sent_last_24h)
    OUTBOX.labels(status="pending").set(h.alerts_pending)
    OUTBOX.labels(status="dead").set(h.alerts_dead)
    return True


def observe_stage(stage: str, seconds: float) -> None:
    STAGE.labels(stage=stage).observe(seconds)


def serve(listen: str, health: Callable[[], tuple[bool, str]]) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on ``listen`` ("host:port") in a daemon thread."""
    host, _, port = listen.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body = generate_latest(REGISTRY)
                self._reply(200, body, CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                ok, text = health()
                self._reply(200 if ok else 503, text.encode() + b"\n", "text/plain")
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _reply(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics: serving listen=%s", listen)
    return server
