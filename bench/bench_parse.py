"""Parse speed: items/s of parse() and parse()+normalize_feed, fastparse vs feedparser, one run.

    .venv/bin/python bench/bench_parse.py [--feeds 100] [--items 50] [--rounds 3] [--no-corpus]

Two inputs: bench/cold_start.py's generated feeds (make_feed: RSS 2.0, escaped-HTML bodies) and
../shared/corpora/realworld-feeds (200 live captures, 45 MB; skipped when absent). Each input is
run ``--rounds`` times, the two paths alternating within a round so that both see the same
machine load; the best round of each counts. CPU time of this process (time.process_time), not
wall time: the machine may be shared. Prints the load average before and after. A benchmark,
not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from seedwatch.errors import ParseError
from seedwatch.fastparse import read_feed
from seedwatch.normalize import normalize_feed
from seedwatch.parse import parse, prepare
from seedwatch.types import FeedRef, FetchResult, ParsedFeed

sys.path.insert(0, str(Path(__file__).resolve().parent))
# bench/ is not a package: cold_start is imported from beside this file.
from cold_start import ROOT, make_feed

CORPUS = ROOT.parent / "shared" / "corpora" / "realworld-feeds"
FEED = FeedRef(id=1, url="http://bench.invalid/", name="bench")
FETCHED_AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _result(url: str, body: bytes, content_type: str | None) -> FetchResult:
    headers = (("content-type", content_type),) if content_type else ()
    return FetchResult(requested_url=url, url=url, status=200, headers=headers, body=body)


def generated(feeds: int, items: int) -> list[FetchResult]:
    return [
        _result(f"http://bench.invalid/f{n}.xml", make_feed(n, items), "application/rss+xml")
        for n in range(feeds)
    ]


def realworld() -> list[FetchResult]:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".json")
    return [_result(f"http://127.0.0.1/{p.name}", p.read_bytes(), None) for p in files]


def fast_share(results: list[FetchResult]) -> int:
    """How many documents the fast path reads (the rest fall back to feedparser)."""
    count = 0
    for result in results:
        headers = {"content-location": result.url, **dict(result.headers)}
        count += read_feed(*prepare(result.body, headers)) is not None
    return count


@dataclass
class Run:
    items: int = 0
    parse_cpu: float = float("inf")
    total_cpu: float = float("inf")


def _once(results: list[FetchResult], fast: bool) -> tuple[int, float, float]:
    parsed: list[tuple[FetchResult, ParsedFeed]] = []
    started = time.process_time()
    for result in results:
        try:
            parsed.append((result, parse(result, fast=fast)))
        except ParseError:
            continue
    parse_cpu = time.process_time() - started
    count = 0
    for result, feed in parsed:
        count += len(normalize_feed(FEED, feed, fetched_at=FETCHED_AT, base_url=result.url))
    return count, parse_cpu, time.process_time() - started


def measure(results: list[FetchResult], rounds: int) -> dict[bool, Run]:
    runs = {False: Run(), True: Run()}
    for _ in range(rounds):
        for fast in (False, True):
            count, parse_cpu, total_cpu = _once(results, fast)
            run = runs[fast]
            run.items = count
            run.parse_cpu = min(run.parse_cpu, parse_cpu)
            run.total_cpu = min(run.total_cpu, total_cpu)
    return runs


def report(name: str, results: list[FetchResult], rounds: int) -> None:
    runs = measure(results, rounds)
    slow, fast = runs[False], runs[True]
    print(f"\n{name}: {len(results)} documents, {fast_share(results)} on the fast path")
    print(f"  {'path':<11}{'items':>8}{'parse items/s':>16}{'parse+normalize items/s':>26}")
    for label, run in (("feedparser", slow), ("fastparse", fast)):
        parse_rate, total_rate = run.items / run.parse_cpu, run.items / run.total_cpu
        print(f"  {label:<11}{run.items:>8}{parse_rate:>16,.0f}{total_rate:>26,.0f}")
    print(
        f"  speed-up: parse x{slow.parse_cpu / fast.parse_cpu:.1f}, "
        f"parse+normalize x{slow.total_cpu / fast.total_cpu:.1f} "
        f"(CPU per item: parse {fast.parse_cpu / fast.items * 1e6:.0f} vs "
        f"{slow.parse_cpu / slow.items * 1e6:.0f} us, normalize "
        f"{(fast.total_cpu - fast.parse_cpu) / fast.items * 1e6:.0f} us)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--feeds", type=int, default=100, help="generated feeds")
    ap.add_argument("--items", type=int, default=50, help="items per generated feed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-corpus", action="store_true", help="skip the real-world corpus")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    report(f"generated ({args.feeds} x {args.items})", generated(args.feeds, args.items),
           args.rounds)  # fmt: skip
    if not CORPUS.exists():
        print(f"\nrealworld-feeds: {CORPUS} is absent, skipped")
    elif not args.no_corpus:
        report("realworld-feeds", realworld(), max(1, args.rounds - 1))
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
