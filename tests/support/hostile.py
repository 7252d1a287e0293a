"""The hostile-server set (issue 6): each case is a route on a loopback FeedServer plus what
seedwatch must make of it. Used by tests/test_hostile.py and, in a child process, by its
peak-memory test (``python -m tests.support.hostile DIR`` prints the child's peak RSS)."""

from __future__ import annotations

import gzip
import json
import resource
import sys
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.support.feedserver import FeedServer, rss

MB = 1024 * 1024
RU_TITLE = "Совещание руководителей спецслужб СНГ"
ZH_TITLE = "獨立國協安全會議"
HEALTHY_TITLE = "healthy feed still stored"
# Gaps in parse.py found here (reported to its owner; tests/test_hostile.py keeps them xfail):


@dataclass(frozen=True)
class Case:
    name: str
    error: str | None  # substring of the error recorded against the feed; None: it must store
    title: str | None = None  # a title that must be stored exactly (encodings)
    max_items: int | None = None
    forbid: str | None = None  # text that must appear in no stored item (XXE)


def _rss_bytes(title: str, *, encoding: str = "utf-8", declare: bool = True) -> bytes:
    head = f'<?xml version="1.0" encoding="{encoding}"?>\n' if declare else ""
    doc = (f'{head}<rss version="2.0"><channel><title>{title}</title>'
           f"<link>http://example.org/</link><description>d</description>"
           # Each document its own page: the same page in two feeds is stored once.
           f"<item><title>{title}</title><guid isPermaLink=\"false\">{encoding}-{declare}</guid>"
           f"<description>{title}: текст</description>"
           f"</item></channel></rss>")
    return doc.encode(encoding, "strict") if encoding != "utf-8" else doc.encode()


def _bomb(n: int = 200 * MB, *, wbits: int = 31, fill: bytes = b"\0") -> bytes:
    """``n`` bytes of ``fill`` compressed (gzip by default), built a megabyte at a time."""
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    chunk = fill * MB
    parts = [comp.compress(chunk) for _ in range(n // MB)]
    parts.append(comp.flush())
    return b"".join(parts)


def _drip(req: BaseHTTPRequestHandler) -> None:
    req.send_response(200)
    req.send_header("Content-Type", "application/rss+xml")
    req.send_header("Content-Length", "100000")
    req.end_headers()
    try:
        for _ in range(200):
            req.wfile.write(b" ")
            req.wfile.flush()
            time.sleep(0.5)
    except OSError:
        pass  # the client gave up: that is the point


def _entity_doc(decl: str, use: str, title: str) -> bytes:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE rss [{decl}]>\n<rss version="2.0"><channel>'
            f"<title>t</title><link>http://example.org/</link><description>d</description>"
            f"<item><title>{title}</title><guid>e1</guid><description>{use}</description></item>"
            f"</channel></rss>").encode()


def build(srv: FeedServer, forbidden: FeedServer) -> list[tuple[str, Case]]:
    """Register every hostile route on ``srv``; returns (url, case) including the healthy feed.
    ``forbidden`` runs on an address outside allow_networks."""
    out: list[tuple[str, Case]] = []

    def add(path: str, case: Case, **kw: object) -> None:
        srv.add(path, **kw)  # type: ignore[arg-type]
        out.append((srv.url(path), case))

    feed_ct = {"Content-Type": "application/rss+xml"}
    add("/healthy", Case("healthy", None, title=HEALTHY_TITLE), body=rss(
        [{"title": HEALTHY_TITLE, "guid": "h1", "description": "fine"}]))
    bomb = _bomb()
    srv.add("/bomb-target", body=bomb, headers={**feed_ct, "Content-Encoding": "gzip"},
            content_type=None)
    add("/gzip-bomb", Case("gzip bomb", "decodes to more than"), body=bomb,
        headers={**feed_ct, "Content-Encoding": "gzip"}, content_type=None)
    add("/deflate-bomb", Case("deflate bomb", "decodes to more than"),
        body=_bomb(200 * MB, wbits=15, fill=b"<"),
        headers={**feed_ct, "Content-Encoding": "deflate"}, content_type=None)
    add("/stacked", Case("stacked gzip, gzip bomb", "decodes to more than"),
        body=gzip.compress(_bomb(100 * MB)),
        headers={**feed_ct, "Content-Encoding": "gzip, gzip"}, content_type=None)
    add("/stacked-many", Case("many stacked encodings", "stacked Content-Encodings"),
        body=gzip.compress(gzip.compress(gzip.compress(gzip.compress(_rss_bytes("x"))))),
        headers={**feed_ct, "Content-Encoding": "gzip, gzip, gzip, gzip"}, content_type=None)
    add("/redirect-bomb", Case("bomb behind a redirect", "decodes to more than"),
        status=302, headers={"Location": "/bomb-target"}, content_type=None)
    add("/drip", Case("dripping server", "within"), handler=_drip)
    srv.add("/loop-b", status=302, headers={"Location": "/loop-a"}, content_type=None)
    add("/loop-a", Case("redirect loop", "redirect loop"), status=302,
        headers={"Location": "/loop-b"}, content_type=None)
    for i in range(6):
        srv.add(f"/hop{i}", status=301, headers={"Location": f"/hop{i + 1}"}, content_type=None)
    srv.add("/hop6", body=rss([{"title": "too far", "guid": "far"}]))
    out.append((srv.url("/hop0"), Case("6 redirects", "more than 5 redirects")))
    forbidden.add("/secret", body=rss([{"title": "internal secret", "guid": "s"}]))
    add("/to-forbidden", Case("redirect to 127.0.0.2", "127.0.0.2"), status=302,
        headers={"Location": forbidden.url("/secret")}, content_type=None)
    add("/to-file", Case("redirect to file:", "scheme 'file' is not allowed"), status=302,
        headers={"Location": "file:///etc/passwd"}, content_type=None)
    add("/to-gopher", Case("redirect to gopher:", "scheme 'gopher' is not allowed"), status=301,
        headers={"Location": "gopher://127.0.0.1:70/1"}, content_type=None)
    add("/quadratic", Case("quadratic blowup", None, max_items=1),
        body=_entity_doc(f'<!ENTITY a "{"x" * 50_000}">', "&a;" * 20_000, "quadratic"))
    laughs = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10))
    add("/laughs", Case("billion laughs", None, max_items=1),
        body=_entity_doc(laughs, "&lol9;", "laughs"))
    add("/xxe", Case("XXE", None, max_items=1, forbid="root:"),
        body=_entity_doc('<!ENTITY xxe SYSTEM "file:///etc/passwd">', "&xxe;", "xxe"))
    many = rss([{"title": f"n{i}", "guid": f"n{i}"} for i in range(20_000)])
    add("/many", Case("20 000 entries", None, max_items=5_000), body=many)
    add("/field-20mb", Case("20 MB single field", "cap"), body=rss(
        [{"title": "big", "guid": "big", "description": "y" * (20 * MB)}]))
    add("/field-12mb", Case("12 MB single field under the cap", None, max_items=1), body=rss(
        [{"title": "big", "guid": "big12", "description": "z" * (12 * MB)}]))
    add("/field-12mb-b", Case("another 12 MB field at the same time", None, max_items=1),
        body=rss([{"title": "big b", "guid": "big12b", "description": "w" * (12 * MB)}]))
    add("/bad-utf8", Case("invalid UTF-8", None, max_items=1),
        body=_rss_bytes("broken") .replace(b"broken", b"bro\xff\xfeken", 1),
        headers={"Content-Type": "application/rss+xml; charset=utf-8"}, content_type=None)
    for codec in ("koi8-r", "cp1251"):
        add(f"/{codec}", Case(f"{codec} undeclared", None, title=RU_TITLE),
            body=_rss_bytes(RU_TITLE, encoding=codec, declare=False),
            headers={"Content-Type": "application/xml"}, content_type=None)
    add("/big5", Case("big5 undeclared", None, title=ZH_TITLE),
        body=_rss_bytes(ZH_TITLE, encoding="big5", declare=False),
        headers={"Content-Type": "application/xml"}, content_type=None)
    utf16 = ("\ufeff" + _rss_bytes(RU_TITLE).decode().replace('encoding="utf-8"',
                                                             'encoding="utf-16"'))
    add("/utf16", Case("UTF-16 vs HTTP charset", None, title=RU_TITLE),
        body=utf16.encode("utf-16-le"),
        headers={"Content-Type": "application/rss+xml; charset=iso-8859-1"}, content_type=None)
    return out


def config_for(tmp: Path, cases: list[tuple[str, Case]]) -> Path:
    from tests.support.pollkit import FeedSpec, write_poll_config

    return write_poll_config(
        tmp, [FeedSpec(c.name, url) for url, c in cases], allow='"127.0.0.1/32"', workers=4,
    )


def poll_once(cfg: Path) -> dict[str, object]:
    """Poll every feed of ``cfg`` once; per-feed errors and item counts, and the peak RSS."""
    from seedwatch.poller import poll_due
    from tests.support.pollkit import start, status

    rt = start(cfg)
    try:
        report = poll_due(rt)
        rows = status(rt)
    finally:
        rt.close()
    return {
        "feeds": report.feeds,
        "errors": {n: r.last_error for n, r in rows.items()},
        "items": {n: r.items for n, r in rows.items()},
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


if __name__ == "__main__":
    # The child of the peak-memory test: only the daemon side runs here, the servers (and the
    # bombs they hold) live in the parent.
    print(json.dumps(poll_once(Path(sys.argv[1]))))
