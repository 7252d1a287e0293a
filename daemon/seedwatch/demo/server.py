"""A real HTTP server on 127.0.0.1 serving registered documents: the demo's feeds, and the
tests' (tests/support/feedserver.py re-exports it).

    with FeedServer() as srv:
        srv.add("/feed.xml", body=b"<rss>...", headers={"ETag": '"v1"'})
        srv.add("/slow", handler=lambda req: ...)   # full control
        srv.url("/feed.xml")  -> "http://127.0.0.1:PORT/feed.xml"
        srv.requests            # every request seen: (method, path, headers dict)

Conditional GET is honoured for static routes: a matching If-None-Match or If-Modified-Since
gets 304, so tests can exercise the real client path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Without it every response waits ~40 ms on Nagle + delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.seen.append(
                SeenRequest("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
            )
            route = srv.routes.get(self.path) or srv.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self._send(404, b"not found", {"Content-Type": "text/plain"})
            return
        if route.handler is not None:
            route.handler(self)
            return
        etag = route.headers.get("ETag")
        lastmod = route.headers.get("Last-Modified")
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if route.status == 200 and (
            (etag is not None and inm == etag) or (etag is None and lastmod and ims == lastmod)
        ):
            self._send(304, b"", {k: v for k, v in route.headers.items() if k != "Content-Type"})
            return
        self._send(route.status, route.body, route.headers)

    do_HEAD = do_GET

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status != 304:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.seen: list[SeenRequest] = []
        self.lock = threading.Lock()


class FeedServer:
    """Serve registered routes on ``host`` (127.0.0.1 by default) on an ephemeral port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._srv = _Server(host)
        self.host = host
        self.port = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add(
        self,
        path: str,
        *,
        body: bytes | str = b"",
        status: int = 200,
        headers: dict[str, str] | None = None,
        handler: Callable[[BaseHTTPRequestHandler], None] | None = None,
        content_type: str | None = "application/rss+xml; charset=utf-8",
    ) -> None:
        hdrs = dict(headers or {})
        if content_type and "Content-Type" not in hdrs and handler is None:
            hdrs["Content-Type"] = content_type
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self._srv.lock:
            self._srv.routes[path] = Route(status, data, hdrs, handler)

    def remove(self, path: str) -> None:
        with self._srv.lock:
            self._srv.routes.pop(path, None)

    @property
    def requests(self) -> list[SeenRequest]:
        with self._srv.lock:
            return list(self._srv.seen)

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)


def rss(items: list[dict[str, str]], *, title: str = "Test feed", extra: str = "") -> str:
    """A small RSS 2.0 document; each item dict may hold title, link, guid, description, pubDate."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{title}</title><link>http://example.org/</link><description>t</description>",
        extra,
    ]
    for it in items:
        parts.append("<item>")
        for tag in ("title", "link", "guid", "description", "pubDate", "category"):
            if tag in it:
                parts.append(f"<{tag}>{it[tag]}</{tag}>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts)
