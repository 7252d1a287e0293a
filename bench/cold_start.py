"""Cold start: N feeds x M items on 127.0.0.1, all stored, scored and matched; vs `reader`.

    .venv/bin/python bench/cold_start.py --feeds 1000 --items 50 [--parse-workers N] [--only X]

Feeds are generated on request from their number (deterministic, nothing held in memory), by a
server in a separate process. Each contender runs in its own subprocess, one after the other, so
its peak RSS and CPU are its own: seedwatch (Runtime + poll_due until nothing is due, SQLite)
and reader (update_feeds(workers=8), SQLite). ``--parse-workers`` sets seedwatch's
[schedule] parse_workers (default: one per core; 0 parses in the fetching threads). Prints
items/s, wall, CPU (the contender's process plus its worker processes), peak RSS (the
contender's process, and the largest worker's), the ratio, and the load average (the machine
may be shared). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent

# The most frequent words of the generated items: some security words, most not.
WORDS = (
    'security', 'service', 'border', 'police', 'ministry', 'government', 'election',
    'minister', 'president', 'summit', 'cooperation', 'militants', 'attack', 'terrorism',
    'extremism', 'agreement', 'trade', 'economy', 'bank', 'market', 'oil', 'gas', 'pipeline',
    'harvest', 'football', 'match', 'festival', 'culture', 'weather', 'storm', 'Kazakhstan',
    'Kyrgyzstan', 'Tajikistan', 'Uzbekistan', 'Turkmenistan', 'Russia', 'Moscow', 'Astana',
    'Bishkek', 'Tashkent', 'Dushanbe', 'intelligence', 'agency', 'officials', 'said', 'report',
    'week', 'talks', 'delegation',
)


def _vocabulary(size: int = 20_000) -> tuple[list[str], list[float]]:
    """WORDS, then made-up words, with Zipf weights (word k has weight 1/k), as news text has:
    a few words in every item, most in few. A 50-word vocabulary would make every item share
    every word with every other, a case no news stream has and one that the classifier's and
    the story index's candidate searches pay for in full."""
    rng = random.Random(0)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    made: list[str] = []
    seen = set(WORDS)
    while len(made) < size - len(WORDS):
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            made.append(word)
    vocab = list(WORDS) + made
    cum, total = [], 0.0
    for k in range(1, len(vocab) + 1):
        total += 1.0 / k
        cum.append(total)
    return vocab, cum


VOCAB, CUM_WEIGHTS = _vocabulary()


def make_feed(feed_no: int, items: int, extra: int = 0) -> bytes:
    """Feed ``feed_no``'s document: ``items`` entries (+ ``extra`` newer ones), always the same."""
    rng = random.Random(feed_no)
    parts = ['<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
             f"<title>Bench feed {feed_no}</title><link>http://bench.invalid/{feed_no}/</link>",
             "<description>generated</description>"]
    for i in range(items + extra):
        title = " ".join(rng.choices(VOCAB, cum_weights=CUM_WEIGHTS, k=9)).capitalize()
        body = " ".join(rng.choices(VOCAB, cum_weights=CUM_WEIGHTS, k=60))
        parts.append(
            f"<item><title>{title} {feed_no}-{i}</title>"
            f"<link>http://bench.invalid/{feed_no}/{i}</link>"
            f"<guid>bench-{feed_no}-{i}</guid><pubDate>Fri, 27 Nov 2026 "
            f"{i % 24:02d}:{feed_no % 60:02d}:00 GMT</pubDate>"
            f"<description>&lt;p&gt;{body}&lt;/p&gt;</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    n_items = 50
    # feed number -> extra items (steady_state.py bumps some feeds for round two)
    extra: ClassVar[dict[int, int]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path
        if path.startswith("/bump/"):  # /bump/<k>: every k-th feed gets one more item
            k = int(path.split("/")[2])
            _Handler.extra = {0: 1} if k <= 0 else {-k: 1}
            self._send(200, b"ok", None)
            return
        try:
            feed = int(path.removeprefix("/f").removesuffix(".xml"))
        except ValueError:
            self._send(404, b"", None)
            return
        extra = 0
        if _Handler.extra:
            k = -next(iter(_Handler.extra))
            extra = 1 if k > 0 and feed % k == 0 else 0
        etag = f'"{feed}-{extra}"'
        if self.headers.get("If-None-Match") == etag:
            self._send(304, b"", etag)
            return
        self._send(200, make_feed(feed, _Handler.n_items, extra), etag)

    def _send(self, status: int, body: bytes, etag: str | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/rss+xml")
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)


def serve(n_items: int, port_q: multiprocessing.Queue[int]) -> None:
    _Handler.n_items = n_items
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    port_q.put(srv.server_address[1])
    srv.serve_forever()


def start_server(n_items: int) -> tuple[multiprocessing.Process, int]:
    q: multiprocessing.Queue[int] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=serve, args=(n_items, q), daemon=True)
    proc.start()
    return proc, q.get(timeout=60)


def write_seedwatch_config(
    urls: list[str], workdir: Path, *, workers: int = 8, parse_workers: int | None = None
) -> Path:
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
workers = {workers}
{"" if parse_workers is None else f"parse_workers = {parse_workers}"}
interval = "300s"
min_interval = "1s"
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
    return cfg


def cpu_self_and_children() -> float:
    ru, rc = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime


def run_seedwatch(urls: list[str], workdir: Path, parse_workers: int | None) -> dict[str, float]:
    from seedwatch.poller import poll_due
    from seedwatch.runtime import Runtime

    rt = Runtime.start(write_seedwatch_config(urls, workdir, parse_workers=parse_workers))
    t0, c0 = time.perf_counter(), cpu_self_and_children()
    total = 0
    while True:
        report = poll_due(rt)
        total += report.new_items
        if report.feeds == 0:
            break
    workers_mb = workers_peak_mb()
    rt.close()  # waits for the worker processes, so that their CPU is counted
    wall, cpu = time.perf_counter() - t0, cpu_self_and_children() - c0
    return {"items": total, "wall": wall, "cpu": cpu, "worker_peak_mb": workers_mb}


def workers_peak_mb() -> float:
    """The largest peak RSS (VmHWM) among this process's live children: the parse workers.

    Not RUSAGE_CHILDREN: its ru_maxrss keeps the pre-exec size of a spawned child, which is
    this whole process at the moment of the fork."""
    import psutil

    peaks = [0.0]
    for child in psutil.Process().children():
        try:
            status = Path(f"/proc/{child.pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def run_reader(urls: list[str], workdir: Path, parse_workers: int | None) -> dict[str, float]:
    from reader import make_reader

    r = make_reader(str(workdir / "reader.sqlite"))
    for u in urls:
        r.add_feed(u)
    t0, c0 = time.perf_counter(), cpu_self_and_children()
    r.update_feeds(workers=8)
    wall, cpu = time.perf_counter() - t0, cpu_self_and_children() - c0
    items = r.get_entry_counts().total or 0
    r.close()
    return {"items": float(items), "wall": wall, "cpu": cpu}


def child(which: str, urls_file: str, workdir: str, parse_workers: str) -> None:
    urls = json.loads(Path(urls_file).read_text())
    fn = run_seedwatch if which == "seedwatch" else run_reader
    out = fn(urls, Path(workdir), None if parse_workers == "auto" else int(parse_workers))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.setdefault("worker_peak_mb", 0.0)
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--parse-workers", default="auto",
                    help="seedwatch's [schedule] parse_workers (default: one per core)")
    ap.add_argument("--only", choices=["seedwatch", "reader"], default=None)
    ap.add_argument("_child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        child(*args._child)
        return
    server, port = start_server(args.items)
    urls = [f"http://127.0.0.1:{port}/f{i}.xml" for i in range(args.feeds)]
    results: dict[str, dict[str, float]] = {}
    loads: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        urls_file = Path(tmp) / "urls.json"
        urls_file.write_text(json.dumps(urls))
        for which in ("seedwatch", "reader"):
            if args.only and which != args.only:
                continue
            work = Path(tmp) / which
            work.mkdir()
            proc = subprocess.run(
                [sys.executable, __file__, which, str(urls_file), str(work),
                 args.parse_workers],
                capture_output=True, text=True,
            )
            loads[which] = " ".join(f"{x:.1f}" for x in os.getloadavg())
            if proc.returncode != 0:
                print(f"{which} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            results[which] = json.loads(proc.stdout.strip().splitlines()[-1])
    server.terminate()
    mode = f"parse_workers={args.parse_workers}"
    print(f"cold start: {args.feeds} feeds x {args.items} items on 127.0.0.1, seedwatch {mode}, "
          f"{os.cpu_count()} cores")
    print(f"{'':10} {'items':>8} {'wall s':>8} {'cpu s':>8} {'items/s':>9} {'items/cpu-s':>11} "
          f"{'peak MB':>8} {'worker MB':>9}  load after")
    for name, r in results.items():
        print(f"{name:10} {r['items']:8.0f} {r['wall']:8.2f} {r['cpu']:8.2f} "
              f"{r['items'] / r['wall']:9.0f} {r['items'] / max(r['cpu'], 1e-9):11.0f} "
              f"{r['peak_rss_mb']:8.0f} {r['worker_peak_mb']:9.0f}  {loads[name]}")
    if len(results) == 2:
        sw, rd = results["seedwatch"], results["reader"]
        ratio = (sw["items"] / sw["wall"]) / (rd["items"] / rd["wall"])
        print(f"ratio seedwatch/reader items per second: {ratio:.2f}")


if __name__ == "__main__":
    main()
