"""HostLimiter with an injected clock: the gap between requests and the per-host limit."""

from __future__ import annotations

import threading

import pytest

from seedwatch.politeness import HostLimiter, host_key


class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def limiter(per_host: int = 2, gap: float = 1.0) -> tuple[HostLimiter, FakeClock]:
    clock = FakeClock()
    return HostLimiter(per_host, gap, clock=clock, sleep=clock.sleep), clock


def test_first_request_does_not_wait() -> None:
    lim, clock = limiter()
    with lim.slot("https://example.org/feed"):
        pass
    assert clock.sleeps == []


def test_gap_between_requests_to_one_host() -> None:
    lim, clock = limiter(gap=2.0)
    starts = []
    for path in ("a", "b", "c"):
        with lim.slot(f"https://example.org/{path}"):
            starts.append(clock.now)
    assert starts == [1000.0, 1002.0, 1004.0]
    assert clock.sleeps == [2.0, 2.0]


def test_gap_counts_time_already_passed() -> None:
    lim, clock = limiter(gap=2.0)
    with lim.slot("https://example.org/a"):
        pass
    clock.now += 1.5
    with lim.slot("https://example.org/b"):
        pass
    assert clock.sleeps == [pytest.approx(0.5)]
    clock.now += 10
    with lim.slot("https://example.org/c"):
        pass
    assert len(clock.sleeps) == 1


def test_other_hosts_do_not_wait() -> None:
    lim, clock = limiter(gap=5.0)
    with lim.slot("https://a.example/"), lim.slot("https://b.example/"):
        pass
    with lim.slot("https://c.example/"):
        pass
    assert clock.sleeps == []


def test_host_is_case_insensitive_and_ignores_port_and_userinfo() -> None:
    assert host_key("https://User:pw@Example.ORG.:8443/x?y") == "example.org"
    lim, clock = limiter(gap=3.0)
    with lim.slot("http://EXAMPLE.org/"):
        pass
    with lim.slot("https://example.org:8443/"):
        pass
    assert clock.sleeps == [3.0]


def test_reserved_starts_spread_out_concurrent_waiters() -> None:
    # Two slots taken back to back: the second is scheduled one gap later, not at the same time.
    lim, clock = limiter(per_host=3, gap=1.0)
    with lim.slot("https://example.org/a"), lim.slot("https://example.org/b"):
        assert clock.sleeps == [1.0]
        with lim.slot("https://example.org/c"):
            assert clock.sleeps == [1.0, 1.0]
            assert lim.in_flight("https://example.org/") == 3


def test_per_host_limit_blocks_until_release() -> None:
    lim, _clock = limiter(per_host=2, gap=0.0)
    url = "https://example.org/feed"
    entered = threading.Event()
    release_first = threading.Event()

    first = lim.slot(url)
    second = lim.slot(url)
    first.__enter__()
    second.__enter__()
    assert lim.in_flight(url) == 2

    def third() -> None:
        with lim.slot(url):
            entered.set()
            release_first.wait(5)

    t = threading.Thread(target=third, daemon=True)
    t.start()
    t.join(0.2)
    assert not entered.is_set()  # both slots are held
    with lim.slot("https://other.example/"):  # another host is not held up
        pass
    first.__exit__(None, None, None)
    assert entered.wait(5)
    assert lim.in_flight(url) == 2
    release_first.set()
    t.join(5)
    second.__exit__(None, None, None)
    assert lim.in_flight(url) == 0


def test_slot_released_on_error() -> None:
    lim, _clock = limiter(per_host=1, gap=0.0)
    with pytest.raises(RuntimeError), lim.slot("https://example.org/"):
        raise RuntimeError("boom")
    assert lim.in_flight("https://example.org/") == 0
    with lim.slot("https://example.org/"):  # would block forever if the slot leaked
        assert lim.in_flight("https://example.org/") == 1


def test_many_threads_never_exceed_limit() -> None:
    lim, _clock = limiter(per_host=2, gap=0.0)
    url = "https://busy.example/"
    lock = threading.Lock()
    active = 0
    peak = 0

    def worker() -> None:
        nonlocal active, peak
        for _ in range(20):
            with lim.slot(url):
                with lock:
                    active += 1
                    peak = max(peak, active)
                with lock:
                    active -= 1

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak <= 2
    assert lim.in_flight(url) == 0


def test_idle_hosts_are_forgotten() -> None:
    lim, clock = limiter(gap=1.0)
    for i in range(300):
        with lim.slot(f"https://h{i}.example/"):
            pass
    clock.now += 5
    with lim.slot("https://last.example/"):
        pass
    assert len(lim._hosts) < 10


def test_a_host_with_waiters_is_not_forgotten() -> None:
    lim, clock = limiter(per_host=1, gap=0.0)
    url = "https://held.example/"
    held = lim.slot(url)
    held.__enter__()
    entered = threading.Event()

    def waiter() -> None:
        with lim.slot(url):
            entered.set()

    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    t.join(0.2)
    clock.now += 5
    for i in range(300):  # enough hosts to sweep the idle ones
        with lim.slot(f"https://h{i}.example/"):
            pass
    assert not entered.is_set()
    held.__exit__(None, None, None)
    assert entered.wait(5)
    t.join(5)
    assert lim.in_flight(url) == 0


@pytest.mark.parametrize(("per_host", "gap"), [(0, 1.0), (1, -1.0)])
def test_bad_arguments(per_host: int, gap: float) -> None:
    with pytest.raises(ValueError):
        HostLimiter(per_host, gap)
