"""Latency: from a fetch completing to the alert line in a jsonl:// channel, with a real daemon.

    .venv/bin/python bench/latency.py [--feeds 10] [--seconds 40] [--deliver-tick 2]

Runs `seedwatch run` as a subprocess (default ticks unless --deliver-tick/--poll-tick given)
against feeds served from this process; every response carries one new item that matches the
watch rule. The server notes when it finished sending each item; this script watches the JSONL
file and notes when each alert line appears. Prints p50/p95/max over all items that alerted,
and the load average. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from cold_start import WORDS  # noqa: E402

SENT: dict[str, float] = {}
LOCK = threading.Lock()
COUNTER = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with LOCK:
            COUNTER[0] += 1
            n = COUNTER[0]
        rng = random.Random(n)
        tag = f"lat{n:06d}"
        words = " ".join(rng.choice(WORDS) for _ in range(40))
        body = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Latency {self.path}</title><link>http://bench.invalid/</link>"
            "<description>d</description>"
            f"<item><title>Militants attack border post {tag}</title>"
            f"<link>http://bench.invalid/{tag}</link><guid>{tag}</guid>"
            f"<description>Terrorism: militants crossed the border. {tag} {words}"
            "</description></item></channel></rss>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        with LOCK:
            SENT[tag] = time.time()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--feeds", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--deliver-tick", type=float, default=None)
    ap.add_argument("--poll-tick", type=float, default=None)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    ticks = ""
    if args.deliver_tick is not None:
        ticks += f'deliver_tick = "{args.deliver_tick:g}s"\n'
    if args.poll_tick is not None:
        ticks += f'poll_tick = "{args.poll_tick:g}s"\n'
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        feeds = "\n".join(
            f'[[feed]]\nurl = "http://127.0.0.1:{port}/f{i}.xml"\nname = "f{i}"\n'
            for i in range(args.feeds)
        )
        alerts = work / "alerts.jsonl"
        (work / "seedwatch.toml").write_text(f"""
data_dir = "{work}"
[storage]
url = "sqlite:///{work / 'sw.db'}"
[http]
allow_networks = ["127.0.0.0/8"]
host_gap = 0
per_host = 16
[schedule]
interval = "1s"
min_interval = "1s"
{ticks}
[classifier]
seeds = "{ROOT / 'seeds'}"
[channel.jsonl]
url = "jsonl://{alerts}"
{feeds}
""")
        (work / "watchlist.toml").write_text(
            "[[rule]]\nname = \"sec\"\nquery = 'militants AND border'\nchannels = [\"jsonl\"]\n"
        )
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("NOTIFY_SOCKET", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "seedwatch", "run", "--config", str(work / "seedwatch.toml")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        seen: dict[str, float] = {}
        offset = 0
        end = time.monotonic() + args.seconds
        try:
            while time.monotonic() < end:
                if alerts.exists():
                    with alerts.open("rb") as fh:
                        fh.seek(offset)
                        chunk = fh.read()
                    now = time.time()
                    cut = chunk.rfind(b"\n") + 1
                    offset += cut
                    for line in chunk[:cut].splitlines():
                        title = json.loads(line).get("title", "")
                        seen.setdefault(title.rsplit(" ", 1)[-1], now)
                time.sleep(0.005)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            srv.shutdown()
    lat = sorted(seen[t] - SENT[t] for t in seen if t in SENT)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    tick = args.deliver_tick if args.deliver_tick is not None else 2.0
    if len(lat) < 2:
        print(f"too few alerts ({len(lat)}) to measure")
        return
    p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
    print(f"latency fetch-complete -> jsonl alert line, deliver_tick={tick:g}s, "
          f"{len(lat)} alerts of {len(SENT)} items served")
    print(f"p50 {statistics.median(lat):.3f} s  p95 {p95:.3f} s  max {lat[-1]:.3f} s  "
          f"(load {load})")


if __name__ == "__main__":
    main()
