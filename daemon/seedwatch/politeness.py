"""Be a polite client: few concurrent requests to one host, and a pause between them.

Many feeds often live on one host (a news site's per-section feeds); a worker pool polling them
all at once looks like an attack and gets the daemon banned. ``HostLimiter`` is shared by the
workers: each fetch runs inside ``limiter.slot(url)``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit


def host_key(url: str) -> str:
    """The host a URL names, lower-cased, without a trailing dot; "" when it names none."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").lower()


_SWEEP_AT = 256


@dataclass
class _HostState:
    # On the limiter's lock: a slot freed wakes one waiter for this host, not every waiter
    # of every host (they would all wake to find nothing for them).
    freed: threading.Condition
    active: int = 0
    waiting: int = 0
    next_start: float = float("-inf")  # clock time before which no new request may start


class HostLimiter:
    """At most ``per_host`` requests in flight per host, starts ``gap`` seconds apart."""

    def __init__(
        self,
        per_host: int,
        gap: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        if gap < 0:
            raise ValueError("gap must not be negative")
        self.per_host = per_host
        self.gap = gap
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._hosts: dict[str, _HostState] = {}

    def slot(self, url: str) -> contextlib.AbstractContextManager[None]:
        """Block until a slot for the URL's host is free and its gap has passed; hold it inside."""
        return self._slot(host_key(url))

    @contextlib.contextmanager
    def _slot(self, host: str) -> Iterator[None]:
        wait = self._acquire(host)
        try:
            if wait > 0:
                self._sleep(wait)
            yield
        finally:
            self._release(host)

    def _acquire(self, host: str) -> float:
        with self._lock:
            state = self._hosts.get(host)
            if state is None:
                state = self._hosts[host] = _HostState(threading.Condition(self._lock))
            while state.active >= self.per_host:
                state.waiting += 1
                try:
                    state.freed.wait()
                finally:
                    state.waiting -= 1
            now = self._clock()
            # Reserve the start time now, so waiters released together are spaced by ``gap``
            # instead of all sleeping until the same instant.
            start = max(now, state.next_start)
            state.next_start = start + self.gap
            state.active += 1
            return start - now

    def _release(self, host: str) -> None:
        with self._lock:
            state = self._hosts[host]
            state.active -= 1
            if state.waiting:
                state.freed.notify()
            if len(self._hosts) > _SWEEP_AT:
                # Forget idle hosts whose gap has passed so a long run over many hosts stays small.
                now = self._clock()
                idle = [
                    h
                    for h, s in self._hosts.items()
                    if not s.active and not s.waiting and s.next_start <= now
                ]
                for name in idle:
                    del self._hosts[name]

    def in_flight(self, url: str) -> int:
        """Requests holding a slot for the URL's host right now (for status and metrics)."""
        with self._lock:
            state = self._hosts.get(host_key(url))
            return state.active if state else 0
