"""Serve third-party feed files on 127.0.0.1 and poll every one of them through the daemon."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seedwatch.poller import poll_due
from seedwatch.runtime import Runtime
from tests.support.feedserver import FeedServer

HEADER = re.compile(rb"^Header:\s*([A-Za-z-]+):\s*(.*?)\s*$", re.M)


def served_headers(body: bytes) -> dict[str, str]:
    """feedparser's test files fake HTTP headers in their leading comment."""
    head = body[:2000]
    hdrs = {m.group(1).decode(): m.group(2).decode("latin-1") for m in HEADER.finditer(head)}
    hdrs = {("Content-Type" if k.lower() == "content-type" else k): v for k, v in hdrs.items()}
    hdrs.setdefault("Content-Type", "application/xml")
    return hdrs


@dataclass(frozen=True)
class Served:
    name: str  # the feed's name in the config
    url: str
    body: bytes
    headers: dict[str, str]


def serve_files(srv: FeedServer, files: Sequence[Path], prefix: str) -> list[Served]:
    """Each file at /PREFIX/N with the headers its comment asks for; feed names PREFIX+N."""
    out = []
    for i, path in enumerate(files):
        body = path.read_bytes()
        hdrs = served_headers(body)
        srv.add(f"/{prefix}/{i}", body=body, headers=hdrs, content_type=None)
        out.append(Served(f"{prefix}{i}", srv.url(f"/{prefix}/{i}"), body, hdrs))
    return out


def poll_every_feed(rt: Runtime, count: int, *, rounds: int = 200) -> set[int]:
    """Poll passes until ``count`` feeds were polled (a pass claims a bounded batch)."""
    polled: set[int] = set()
    for _ in range(rounds):
        poll_due(rt, on_done=lambda feed, *_: polled.add(feed.id))
        if len(polled) >= count:
            break
    return polled
