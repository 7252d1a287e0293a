"""Steady state: one full round over N feeds where 95 % answer 304 and 5 % carry one new item.

    .venv/bin/python bench/steady_state.py --feeds 10000 [--items 2] [--every 20]

Round one (not timed) stores every feed once, so each has its ETag. Then every ``every``-th feed
gets one more item, all feeds are made due, and round two is timed: wall seconds and CPU seconds
of the seedwatch process and its parse workers (fetch, 304 handling, parse/classify/store of
the changed 5 %, schedule writes), with the process's user/system split and its context
switches per feed (thread hand-offs). Also prints peak RSS (the footprint at N feeds) and the
load average. ``--workers`` defaults to the config's default number of fetching threads.
Not a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cold_start import cpu_self_and_children, start_server, write_seedwatch_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--feeds", type=int, default=10000)
    ap.add_argument("--items", type=int, default=2)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--workers", type=int, default=None,
                    help="fetching threads (default: [schedule] workers' default)")
    args = ap.parse_args()

    from sqlalchemy import text

    from seedwatch.config.model import ScheduleConfig
    from seedwatch.poller import poll_due
    from seedwatch.runtime import Runtime

    if args.workers is None:
        args.workers = ScheduleConfig().workers

    server, port = start_server(args.items)
    urls = [f"http://127.0.0.1:{port}/f{i}.xml" for i in range(args.feeds)]
    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtime.start(write_seedwatch_config(urls, Path(tmp), workers=args.workers))
        t0 = time.perf_counter()
        first = 0
        while (r := poll_due(rt)).feeds:
            first += r.new_items
        seed_wall = time.perf_counter() - t0
        print(f"round one done pid={os.getpid()}", file=sys.stderr, flush=True)

        urllib.request.urlopen(f"http://127.0.0.1:{port}/bump/{args.every}").read()
        with rt.sessions() as s:
            s.execute(text("UPDATE feeds SET next_check_at = :t"), {"t": "2000-01-01 00:00:00"})
            s.commit()
        others = {server.pid}
        t0, c0, r0 = time.perf_counter(), cpu_self_and_children(), _usage()
        w0 = _workers_cpu(others)
        polled = new = 0
        while (r := poll_due(rt)).feeds:
            polled += r.feeds
            new += r.new_items
        wall, cpu = time.perf_counter() - t0, cpu_self_and_children() - c0
        workers = _workers_cpu(others) - w0
        cpu += workers
        user, system, switches, forced = (b - a for a, b in zip(r0, _usage(), strict=True))
        rt.close()
    server.terminate()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"steady state: {args.feeds} feeds, 1 in {args.every} with one new item, "
          f"{os.cpu_count()} cores, workers={args.workers}")
    print(f"round one (not timed): {first} items in {seed_wall:.1f} s")
    print(f"round two: polled {polled} feeds, {new} new items: wall {wall:.2f} s, "
          f"cpu {cpu:.2f} s, {polled / wall:.0f} feeds/s")
    print(f"  parse workers {workers:.2f} s; "
          f"this process: user {user:.2f} s, system {system:.2f} s; context switches "
          f"{switches / polled:.1f} voluntary, {forced / polled:.2f} involuntary per feed")
    print(f"peak RSS {peak:.0f} MB; load average after: {load}")


def _workers_cpu(exclude: set[int | None]) -> float:
    """CPU seconds so far of this process's live children but ``exclude`` (the feed server):
    the parse workers, which RUSAGE_CHILDREN counts only once they have exited."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        if child.pid in exclude:
            continue
        try:
            t = child.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def _usage() -> tuple[float, float, int, int]:
    """This process's user and system CPU seconds and its context switches (voluntary ones
    are mostly threads waiting for the GIL, a lock or the network)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime, ru.ru_nvcsw, ru.ru_nivcsw


if __name__ == "__main__":
    main()
