"""End-to-end ingest benchmark: seedwatch vs the `reader` library, side by side in one run.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/ingest.py --feeds 500 --items 50

Serves N generated RSS feeds (M items each) from a separate process on 127.0.0.1, then runs
each contender in its own subprocess (so peak RSS is its own): seedwatch fetches, parses,
normalizes, scores, matches and stores every item (SQLite); reader updates the same feeds into
its own SQLite file. Prints items/s, wall time, CPU time and peak RSS for both, and the ratio.
This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = (
    'security', 'service', 'border', 'police', 'ministry', 'government', 'election',
    'minister', 'president', 'summit', 'cooperation', 'militants', 'attack', 'terrorism',
    'extremism', 'agreement', 'trade', 'economy', 'bank', 'market', 'oil', 'gas', 'pipeline',
    'harvest', 'football', 'match', 'festival', 'culture', 'weather', 'storm', 'Kazakhstan',
    'Kyrgyzstan', 'Tajikistan', 'Uzbekistan', 'Turkmenistan', 'Russia', 'Moscow', 'Astana',
    'Bishkek', 'Tashkent', 'Dushanbe', 'intelligence', 'agency', 'officials', 'said', 'report',
    'week', 'talks', 'delegation',
)


def make_feed(feed_no: int, items: int, rng: random.Random) -> bytes:
    parts = ['<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
             f"<title>Bench feed {feed_no}</title><link>http://bench.invalid/{feed_no}/</link>",
             "<description>generated</description>"]
    for i in range(items):
        title = " ".join(rng.choice(WORDS) for _ in range(9)).capitalize()
        body = " ".join(rng.choice(WORDS) for _ in range(60))
        parts.append(
            f"<item><title>{title}</title><link>http://bench.invalid/{feed_no}/{i}</link>"
            f"<guid>bench-{feed_no}-{i}</guid><pubDate>Fri, 27 Nov 2026 "
            f"{i % 24:02d}:{feed_no % 60:02d}:00 GMT</pubDate>"
            f"<description>&lt;p&gt;{body}&lt;/p&gt;</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def serve(n_feeds: int, n_items: int, port_q: multiprocessing.Queue[int]) -> None:
    from seedwatch.demo.server import FeedServer

    rng = random.Random(7)
    srv = FeedServer()
    for f in range(n_feeds):
        srv.add(f"/f{f}.xml", body=make_feed(f, n_items, rng))
    srv.__enter__()
    port_q.put(srv.port)
    while True:
        time.sleep(3600)


def run_seedwatch(urls: list[str], workdir: Path) -> dict[str, float]:
    from seedwatch.poller import poll_due
    from seedwatch.runtime import Runtime

    feeds = "\n".join(f'[[feed]]\nurl = "{u}"\nname = "f{i}"\n' for i, u in enumerate(urls))
    cfg = workdir / "seedwatch.toml"
    cfg.write_text(f"""
data_dir = "{workdir}"
[storage]
url = "sqlite:///{workdir / 'sw.db'}"
[http]
allow_networks = ["127.0.0.0/8"]
host_gap = 0
per_host = 64
[schedule]
workers = 8
[classifier]
seeds = "{ROOT / 'seeds'}"
[channel.jsonl]
url = "jsonl://{workdir / 'alerts.jsonl'}"
{feeds}
""")
    (workdir / "watchlist.toml").write_text(
        '[[rule]]\nname = "sec"\nquery = \'terrorism AND (border OR militants)\'\n'
        'channels = ["jsonl"]\n'
    )
    rt = Runtime.start(cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    total = 0
    while True:
        report = poll_due(rt, all_feeds=False)
        total += report.new_items
        if report.feeds == 0:
            break
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rt.close()
    return {"items": total, "wall": wall, "cpu": cpu}


def run_reader(urls: list[str], workdir: Path) -> dict[str, float]:
    from reader import make_reader

    r = make_reader(str(workdir / "reader.sqlite"))
    for u in urls:
        r.add_feed(u)
    t0, c0 = time.perf_counter(), time.process_time()
    r.update_feeds(workers=8)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    items = r.get_entry_counts().total or 0
    r.close()
    return {"items": float(items), "wall": wall, "cpu": cpu}


def child(which: str, urls_file: str, workdir: str) -> None:
    urls = json.loads(Path(urls_file).read_text())
    fn = run_seedwatch if which == "seedwatch" else run_reader
    out = fn(urls, Path(workdir))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--feeds", type=int, default=500)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--only", choices=["seedwatch", "reader"], default=None)
    ap.add_argument("_child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        child(*args._child)
        return
    q: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(args.feeds, args.items, q), daemon=True)
    server.start()
    port = q.get(timeout=120)
    urls = [f"http://127.0.0.1:{port}/f{i}.xml" for i in range(args.feeds)]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        urls_file = Path(tmp) / "urls.json"
        urls_file.write_text(json.dumps(urls))
        for which in ("seedwatch", "reader"):
            if args.only and which != args.only:
                continue
            work = Path(tmp) / which
            work.mkdir()
            proc = subprocess.run(
                [sys.executable, __file__, which, str(urls_file), str(work)],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                print(f"{which} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            results[which] = json.loads(proc.stdout.strip().splitlines()[-1])
    server.terminate()
    print(f"{args.feeds} feeds x {args.items} items, served from a separate process on 127.0.0.1")
    print(f"{'':10} {'items':>8} {'wall s':>8} {'cpu s':>8} {'items/s':>9} {'peak MB':>8}")
    for name, r in results.items():
        print(f"{name:10} {r['items']:8.0f} {r['wall']:8.2f} {r['cpu']:8.2f} "
              f"{r['items'] / r['wall']:9.0f} {r['peak_rss_mb']:8.0f}")
    if len(results) == 2:
        sw, rd = results["seedwatch"], results["reader"]
        ratio = (sw["items"] / sw["wall"]) / (rd["items"] / rd["wall"])
        print(f"ratio seedwatch/reader items per second: {ratio:.2f}")


if __name__ == "__main__":
    main()
