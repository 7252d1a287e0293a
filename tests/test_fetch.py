"""fetch against a real HTTP server on loopback: conditional GET, redirects, caps, deadline."""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import itertools
import shutil
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from seedwatch.config.model import HttpConfig
from seedwatch.errors import (
    BlockedAddressError,
    DeadlineError,
    FetchError,
    GoneError,
    HTTPStatusError,
    RedirectError,
    TooLargeError,
)
from seedwatch.fetch import (
    RETRY_AFTER_CAP,
    _inflate,
    describe_network_error,
    fetch,
    make_session,
    parse_retry_after,
)
from seedwatch.netguard import AddressPolicy, GuardedAdapter
from seedwatch.types import FeedRef, FetchResult
from tests.support.feedserver import FeedServer, rss

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
FEED = rss([{"title": "Chiefs of CIS security services meet", "guid": "1"}])
CAP = 1_000_000


def http_config(**kw: object) -> HttpConfig:
    base: dict[str, object] = {"allow_networks": LOOPBACK, "deadline": 10.0, "max_bytes": CAP}
    base.update(kw)
    return HttpConfig(**base)  # type: ignore[arg-type]


def get(url: str, http: HttpConfig | None = None, **feed: object) -> FetchResult:
    http = http or http_config()
    with make_session(http) as session:
        return fetch(session, FeedRef(1, url, "test", **feed), http)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def srv() -> Iterator[FeedServer]:
    # One server for the module: each FeedServer costs half a second to shut down.
    with FeedServer() as server:
        yield server


def redirect(srv: FeedServer, path: str, to: str, status: int = 301) -> None:
    srv.add(path, status=status, headers={"Location": to}, content_type=None)


# --- conditional GET ---------------------------------------------------------------------


def test_etag_round_trip(srv: FeedServer) -> None:
    srv.add("/feed.xml", body=FEED, headers={"ETag": '"v1"'})
    http = http_config()
    with make_session(http) as session:
        first = fetch(session, FeedRef(1, srv.url("/feed.xml"), "f"), http)
        assert first.status == 200
        assert first.body == FEED.encode()
        assert first.etag == '"v1"'
        assert first.body_hash == hashlib.sha256(FEED.encode()).hexdigest()
        assert first.header("ETag") == '"v1"'
        assert ("etag", '"v1"') in first.headers

        ref = FeedRef(1, srv.url("/feed.xml"), "f", etag=first.etag)
        second = fetch(session, ref, http)
        assert second.not_modified
        assert second.status == 304
        assert second.body == b""
        assert second.etag == '"v1"'
        assert srv.requests[-1].headers["if-none-match"] == '"v1"'

        forced = fetch(session, ref, http, force=True)
        assert forced.status == 200
        assert forced.body == FEED.encode()
        assert "if-none-match" not in srv.requests[-1].headers


def test_last_modified_round_trip(srv: FeedServer) -> None:
    stamp = "Wed, 21 Oct 2026 07:28:00 GMT"
    srv.add("/lm.xml", body=FEED, headers={"Last-Modified": stamp})
    first = get(srv.url("/lm.xml"))
    assert first.last_modified == stamp and first.etag is None
    second = get(srv.url("/lm.xml"), last_modified=first.last_modified)
    assert second.not_modified and second.body == b""
    assert second.last_modified == stamp
    assert srv.requests[-1].headers["if-modified-since"] == stamp


def test_request_headers(srv: FeedServer) -> None:
    srv.add("/feed.xml", body=FEED)
    get(srv.url("/feed.xml"), http_config(user_agent="seedwatch-test/9"))
    sent = srv.requests[-1].headers
    assert sent["user-agent"] == "seedwatch-test/9"
    assert "application/rss+xml" in sent["accept"]
    assert sent["accept-encoding"] == "gzip, deflate"
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def test_environment_proxy_is_ignored(srv: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy would pick the address for us; it must neither be used nor break fetching.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    srv.add("/feed.xml", body=FEED)
    assert get(srv.url("/feed.xml")).status == 200


def test_explicit_proxy_is_refused(srv: FeedServer) -> None:
    srv.add("/feed.xml", body=FEED)
    http = http_config()
    with make_session(http) as session:
        session.proxies = {"http": "http://127.0.0.1:9"}
        with pytest.raises(BlockedAddressError, match="prox"):
            fetch(session, FeedRef(1, srv.url("/feed.xml"), "f"), http)


# --- redirects ---------------------------------------------------------------------------


def test_permanent_redirect_chain_sets_permanent_url(srv: FeedServer) -> None:
    redirect(srv, "/a", "/b", 301)
    redirect(srv, "/b", srv.url("/c"), 308)
    srv.add("/c", body=FEED, headers={"ETag": '"c"'})
    res = get(srv.url("/a"))
    assert res.status == 200
    assert res.requested_url == srv.url("/a")
    assert res.url == srv.url("/c")
    assert res.permanent_url == srv.url("/c")
    assert res.etag == '"c"'
    assert res.body == FEED.encode()


@pytest.mark.parametrize("temporary", [302, 303, 307])
def test_temporary_hop_clears_permanent_url(srv: FeedServer, temporary: int) -> None:
    redirect(srv, "/a", "/b", 301)
    redirect(srv, "/b", "/c", temporary)
    srv.add("/c", body=FEED)
    res = get(srv.url("/a"))
    assert res.url == srv.url("/c")
    assert res.permanent_url is None


def test_no_redirect_no_permanent_url(srv: FeedServer) -> None:
    srv.add("/c", body=FEED)
    assert get(srv.url("/c")).permanent_url is None


def test_redirect_then_not_modified(srv: FeedServer) -> None:
    redirect(srv, "/old", "/new", 301)
    srv.add("/new", body=FEED, headers={"ETag": '"n"'})
    res = get(srv.url("/old"), etag='"n"')
    assert res.not_modified and res.url == srv.url("/new")
    assert res.permanent_url == srv.url("/new")


def test_redirect_loop(srv: FeedServer) -> None:
    redirect(srv, "/x", "/y", 302)
    redirect(srv, "/y", "/x", 302)
    with pytest.raises(RedirectError, match="loop"):
        get(srv.url("/x"))
    assert srv.hits("/x") == 1


def test_five_redirects_allowed_six_refused(srv: FeedServer) -> None:
    for i in range(6):
        redirect(srv, f"/r{i}", f"/r{i + 1}", 302)
    srv.add("/r6", body=FEED)
    assert get(srv.url("/r1")).url == srv.url("/r6")  # five hops
    with pytest.raises(RedirectError, match="more than 5 redirects"):
        get(srv.url("/r0"))  # six hops
    assert srv.hits("/r6") == 1


def test_redirect_without_location(srv: FeedServer) -> None:
    srv.add("/nowhere", status=302, content_type=None)
    with pytest.raises(RedirectError, match="Location"):
        get(srv.url("/nowhere"))


def test_relative_location_resolved(srv: FeedServer) -> None:
    redirect(srv, "/dir/a", "../other/feed.xml", 302)
    srv.add("/other/feed.xml", body=FEED)
    assert get(srv.url("/dir/a")).url == srv.url("/other/feed.xml")


def test_redirect_to_blocked_address_refused() -> None:
    only_first = HttpConfig(allow_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    with FeedServer() as good, FeedServer(host="127.0.0.2") as forbidden:
        forbidden.add("/secret", body=b"internal data")
        good.add("/feed.xml", body=FEED)
        redirect(good, "/jump", forbidden.url("/secret"), 302)
        assert get(good.url("/feed.xml"), only_first).status == 200
        with pytest.raises(BlockedAddressError, match=r"non-public addresses \(127\.0\.0\.2\)"):
            get(good.url("/jump"), only_first)
        with pytest.raises(BlockedAddressError):
            get(forbidden.url("/secret"), only_first)
        assert forbidden.requests == []


def test_default_config_blocks_loopback(srv: FeedServer) -> None:
    srv.add("/local.xml", body=FEED)
    url = f"http://localhost:{srv.port}/local.xml"
    with pytest.raises(BlockedAddressError, match="non-public"):
        get(url, HttpConfig())
    assert srv.hits("/local.xml") == 0


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_GET",
        "ftp://example.org/feed.xml",
        "data:text/xml,<rss/>",
        "javascript:alert(1)",
        "dict://127.0.0.1:11211/stat",
        "example.org/feed.xml",
    ],
)
def test_scheme_refused(url: str) -> None:
    with pytest.raises(BlockedAddressError, match="scheme"):
        get(url)


def test_redirect_to_file_scheme_refused(srv: FeedServer) -> None:
    redirect(srv, "/evil", "file:///etc/passwd", 302)
    with pytest.raises(BlockedAddressError, match="scheme 'file'"):
        get(srv.url("/evil"))


# --- byte caps ---------------------------------------------------------------------------


def gzip_bomb(size: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts = [comp.compress(block) for _ in range(size >> 20)]
    parts.append(comp.flush())
    return b"".join(parts)


def test_gzip_body_decoded(srv: FeedServer) -> None:
    srv.add("/g", body=gzip.compress(FEED.encode()), headers={"Content-Encoding": "gzip"})
    res = get(srv.url("/g"))
    assert res.body == FEED.encode()
    assert res.body_hash == hashlib.sha256(FEED.encode()).hexdigest()


def test_gzip_bomb_refused(srv: FeedServer) -> None:
    bomb = gzip_bomb(64 << 20)  # 64 MiB of zeros in ~64 KB
    assert len(bomb) < CAP
    srv.add("/bomb", body=bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(TooLargeError, match="decodes to more than"):
        get(srv.url("/bomb"))


def test_gzip_bomb_behind_redirect_refused(srv: FeedServer) -> None:
    srv.add("/bomb", body=gzip_bomb(16 << 20), headers={"Content-Encoding": "gzip"})
    redirect(srv, "/innocent", "/bomb", 302)
    with pytest.raises(TooLargeError):
        get(srv.url("/innocent"))


def test_stacked_gzip_decoded(srv: FeedServer) -> None:
    twice = gzip.compress(gzip.compress(FEED.encode()))
    srv.add("/gg", body=twice, headers={"Content-Encoding": "gzip, gzip"})
    assert get(srv.url("/gg")).body == FEED.encode()


def test_stacked_gzip_bomb_refused(srv: FeedServer) -> None:
    # The outer layer is small; the inner layer is the bomb. Each layer has its own cap.
    srv.add(
        "/gg", body=gzip.compress(gzip_bomb(64 << 20)), headers={"Content-Encoding": "gzip, gzip"}
    )
    with pytest.raises(TooLargeError):
        get(srv.url("/gg"))


def test_too_many_stacked_encodings_refused(srv: FeedServer) -> None:
    body = FEED.encode()
    for _ in range(5):
        body = gzip.compress(body)
    srv.add("/g5", body=body, headers={"Content-Encoding": ", ".join(["gzip"] * 5)})
    with pytest.raises(FetchError, match="stacked"):
        get(srv.url("/g5"))


def test_gzip_multi_member_decoded(srv: FeedServer) -> None:
    half = len(FEED) // 2
    body = gzip.compress(FEED[:half].encode()) + gzip.compress(FEED[half:].encode())
    srv.add("/mm", body=body, headers={"Content-Encoding": "gzip"})
    assert get(srv.url("/mm")).body == FEED.encode()


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_decoded(srv: FeedServer, wbits: int) -> None:
    comp = zlib.compressobj(6, zlib.DEFLATED, wbits)
    srv.add(
        "/d",
        body=comp.compress(FEED.encode()) + comp.flush(),
        headers={"Content-Encoding": "deflate"},
    )
    assert get(srv.url("/d")).body == FEED.encode()


def test_deflate_bomb_refused(srv: FeedServer) -> None:
    comp = zlib.compressobj(9)
    bomb = b"".join(comp.compress(b"\0" * (1 << 20)) for _ in range(32)) + comp.flush()
    srv.add("/db", body=bomb, headers={"Content-Encoding": "deflate"})
    with pytest.raises(TooLargeError):
        get(srv.url("/db"))


def test_corrupt_gzip_is_fetch_error(srv: FeedServer) -> None:
    srv.add("/bad", body=b"\x1f\x8bnot gzip at all", headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="corrupt gzip"):
        get(srv.url("/bad"))


def test_unknown_encoding_is_fetch_error(srv: FeedServer) -> None:
    srv.add("/br", body=b"xx", headers={"Content-Encoding": "br"})
    with pytest.raises(FetchError, match="unsupported Content-Encoding 'br'"):
        get(srv.url("/br"))


def test_oversize_body_with_length_refused(srv: FeedServer) -> None:
    srv.add("/big", body=b"x" * (CAP + 1))
    with pytest.raises(TooLargeError, match="Content-Length"):
        get(srv.url("/big"))


def test_body_at_cap_accepted(srv: FeedServer) -> None:
    srv.add("/exact", body=b"x" * CAP)
    assert len(get(srv.url("/exact")).body) == CAP


def test_oversize_body_without_length_refused(srv: FeedServer) -> None:
    def endless(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "application/rss+xml")
        req.send_header("Connection", "close")
        req.end_headers()
        try:
            for _ in range(64):  # 4 MiB, more than the cap, then give up
                req.wfile.write(b"y" * 65536)
        except OSError:
            pass
        req.close_connection = True

    srv.add("/endless", handler=endless)
    with pytest.raises(TooLargeError, match="on the wire"):
        get(srv.url("/endless"))


# --- deadline ----------------------------------------------------------------------------


def drip(head: bytes, unit: bytes, every: float, count: int) -> Callable[..., None]:
    def handler(req: BaseHTTPRequestHandler) -> None:
        req.close_connection = True
        try:
            req.wfile.write(head)
            for _ in range(count):
                time.sleep(every)
                req.wfile.write(unit)
        except OSError:
            pass

    return handler


def test_dripping_body_cut_at_deadline(srv: FeedServer) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 1000\r\n\r\n"
    # A byte every 0.3 s: no single read ever times out, only the total deadline can stop it.
    srv.add("/drip", handler=drip(head, b"<", 0.3, 100))
    started = time.monotonic()
    with pytest.raises(DeadlineError, match=r"within 1\.5 s"):
        get(srv.url("/drip"), http_config(deadline=1.5))
    assert time.monotonic() - started < 20  # it stopped; the server would drip for 30 s


def test_dripping_headers_cut_at_deadline(srv: FeedServer) -> None:
    srv.add("/hdrip", handler=drip(b"HTTP/1.1 200 OK\r\n", b"X-A: b\r\n", 0.2, 90))
    with pytest.raises(DeadlineError):
        get(srv.url("/hdrip"), http_config(deadline=1.5))


def test_deadline_spans_redirect_hops(srv: FeedServer) -> None:
    def slow_redirect(req: BaseHTTPRequestHandler) -> None:
        time.sleep(0.6)
        req.send_response(302)
        req.send_header("Location", "/slow" + str(int(req.path[5:] or 0) + 1))
        req.send_header("Content-Length", "0")
        req.end_headers()

    for i in range(6):
        srv.add(f"/slow{i}" if i else "/slow", handler=slow_redirect)
    # Each hop is fast enough on its own; together they pass the deadline.
    with pytest.raises(DeadlineError):
        get(srv.url("/slow"), http_config(deadline=1.5, max_redirects=5))


def test_deadlines_share_one_watchdog_thread(srv: FeedServer) -> None:
    srv.add("/wd.xml", body=FEED)
    http = http_config()
    with make_session(http) as session:
        for _ in range(20):
            fetch(session, FeedRef(1, srv.url("/wd.xml"), "f"), http)
    names = [t.name for t in threading.enumerate()]
    assert names.count("fetch-deadlines") == 1
    assert not any(isinstance(t, threading.Timer) for t in threading.enumerate())


# --- keep-alive ----------------------------------------------------------------------------


def answer(ports: list[int], hang_up_after: int | None = None) -> Callable[..., None]:
    """A handler noting each request's connection (client port); 304 for ETag "v1", else 200.
    With ``hang_up_after``, a connection's later requests get no answer: the server closed
    the idle connection just as the client reused it."""

    def handler(req: BaseHTTPRequestHandler) -> None:
        served = getattr(req, "served", 0)
        req.served = served + 1  # type: ignore[attr-defined]
        if hang_up_after is not None and served >= hang_up_after:
            req.close_connection = True
            return
        ports.append(req.client_address[1])
        fresh = req.headers.get("If-None-Match") != '"v1"'
        body = FEED.encode() if fresh else b""
        req.send_response(200 if fresh else 304)
        req.send_header("ETag", '"v1"')
        if fresh:
            req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    return handler


def test_connection_is_reused_across_fetches_of_a_host(srv: FeedServer) -> None:
    ports: list[int] = []
    srv.add("/ka.xml", handler=answer(ports))
    srv.add("/ka-404", status=404, body=b"gone fishing")
    http = http_config()
    with make_session(http) as session:
        ref = FeedRef(1, srv.url("/ka.xml"), "f", etag='"v1"')
        statuses = [fetch(session, ref, http, force=i % 3 == 0).status for i in range(9)]
        with pytest.raises(HTTPStatusError):
            fetch(session, FeedRef(2, srv.url("/ka-404"), "g"), http)
        assert fetch(session, ref, http).status == 304
    assert statuses == [200, 304, 304] * 3
    assert len(set(ports[:9])) == 1  # 304s and 200s on one connection
    # The 404's body was never read (it could take the server forever): that one closed.
    assert ports[9] != ports[0]


def test_reused_connection_closed_by_the_server_is_retried_once(srv: FeedServer) -> None:
    ports: list[int] = []
    srv.add("/ka-hangup.xml", handler=answer(ports, hang_up_after=1))
    http = http_config()
    with make_session(http) as session:
        ref = FeedRef(1, srv.url("/ka-hangup.xml"), "f", etag='"v1"')
        assert [fetch(session, ref, http).status for _ in range(3)] == [304] * 3
    assert len(set(ports)) == 3  # each reuse met a hang-up and went on on a fresh connection


def test_connection_closed_right_after_its_answer_is_not_reused(srv: FeedServer) -> None:
    """A server that closes each connection after answering, without saying so: the next
    fetch, a moment later, finds it closed (urllib3's check on reuse, or, when the close
    arrives just after that check, a failure before any answer and the one retry) and goes
    on on a fresh connection."""
    ports: list[int] = []
    plain = answer(ports)

    def answer_and_close(req: BaseHTTPRequestHandler) -> None:
        plain(req)
        req.wfile.flush()
        req.close_connection = True  # no "Connection: close" header was sent

    srv.add("/close-after.xml", handler=answer_and_close)
    http = http_config()
    with make_session(http) as session:
        ref = FeedRef(1, srv.url("/close-after.xml"), "f", etag='"v1"')
        assert [fetch(session, ref, http).status for _ in range(3)] == [304] * 3
    assert len(set(ports)) == 3


# --- error statuses ----------------------------------------------------------------------


def test_404(srv: FeedServer) -> None:
    with pytest.raises(HTTPStatusError) as info:
        get(srv.url("/missing"))
    assert info.value.status == 404
    assert info.value.retry_after is None
    assert "HTTP 404 Not Found" in str(info.value)


def test_500(srv: FeedServer) -> None:
    srv.add("/err", status=500, body=b"oops")
    with pytest.raises(HTTPStatusError) as info:
        get(srv.url("/err"))
    assert info.value.status == 500
    assert not isinstance(info.value, GoneError)


def test_410_is_gone(srv: FeedServer) -> None:
    srv.add("/gone", status=410)
    with pytest.raises(GoneError) as info:
        get(srv.url("/gone"))
    assert info.value.status == 410


def test_gone_behind_redirect(srv: FeedServer) -> None:
    srv.add("/gone", status=410)
    redirect(srv, "/moved", "/gone", 301)
    with pytest.raises(GoneError) as info:
        get(srv.url("/moved"))
    assert info.value.url == srv.url("/gone")


def _http_date(delta: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + delta, usegmt=True)


@pytest.mark.parametrize(
    ("status", "header", "low", "high"),
    [
        (429, "120", 120.0, 120.0),
        (503, "0", 0.0, 0.0),
        (429, _http_date(timedelta(hours=1)), 3000.0, 3601.0),
        (503, _http_date(timedelta(days=-3)), 0.0, 0.0),
        (429, "9" * 40, RETRY_AFTER_CAP, RETRY_AFTER_CAP),
        (503, _http_date(timedelta(days=400)), RETRY_AFTER_CAP, RETRY_AFTER_CAP),
    ],
)
def test_retry_after(srv: FeedServer, status: int, header: str, low: float, high: float) -> None:
    srv.add("/busy", status=status, headers={"Retry-After": header})
    with pytest.raises(HTTPStatusError) as info:
        get(srv.url("/busy"))
    assert info.value.status == status
    assert info.value.retry_after is not None
    assert low <= info.value.retry_after <= high


@pytest.mark.parametrize("header", ["soon", "-5", "1.5e3", "Mon, 99 Foo 2026", ""])
def test_retry_after_garbage(srv: FeedServer, header: str) -> None:
    srv.add("/busy", status=429, headers={"Retry-After": header})
    with pytest.raises(HTTPStatusError) as info:
        get(srv.url("/busy"))
    assert info.value.retry_after is None


# --- network errors and redaction ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused() -> None:
    url = f"http://user:hunter2@127.0.0.1:{free_port()}/feed?token=s3cret"
    with pytest.raises(FetchError, match="connection refused") as info:
        get(url)
    text = str(info.value)
    assert "hunter2" not in text and "s3cret" not in text and "user" not in text
    # The error urllib3 raised is kept as the cause, with the OS's inside it.
    cause = info.value.__cause__
    assert isinstance(cause, NewConnectionError)
    assert isinstance(cause.__cause__, ConnectionRefusedError)


def test_dns_failure() -> None:
    with pytest.raises(FetchError, match="DNS lookup failed"):
        get("http://seedwatch-test.invalid/feed.xml")


def test_invalid_url() -> None:
    with pytest.raises(FetchError):
        get("http://[::1/feed")
    with pytest.raises(FetchError, match="no host"):
        get("http:///feed.xml")


def test_status_error_redacts_secrets(srv: FeedServer) -> None:
    srv.add("/private", status=403)
    url = srv.url("/private").replace("//", "//alice:pw123@") + "?key=abc"
    with pytest.raises(HTTPStatusError) as info:
        get(url)
    assert "pw123" not in str(info.value) and "abc" not in str(info.value)
    assert info.value.url == srv.url("/private")
    # userinfo still works as credentials
    assert srv.requests[-1].headers["authorization"].startswith("Basic ")


# --- parse_retry_after --------------------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("30", 30.0),
        (" 30 ", 30.0),
        ("0", 0.0),
        ("Sat, 28 Nov 2026 12:01:00 GMT", 60.0),
        ("Sat, 28 Nov 2026 11:00:00 GMT", 0.0),
        ("Saturday, 28-Nov-26 12:00:30 GMT", 30.0),  # RFC 850, obsolete but legal
        ("Sat Nov 28 12:00:10 2026", 10.0),  # asctime
        ("Fri, 31 Dec 9999 23:59:59 GMT", 3600.0),
        ("99999999999999999999", 3600.0),
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("٣", None),  # non-ASCII digit
        ("Sat, 28 Nov 2026 25:61:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW, cap=3600.0) == expected


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=10**30))
def test_parse_retry_after_seconds(n: int) -> None:
    assert parse_retry_after(str(n), NOW, cap=RETRY_AFTER_CAP) == min(float(n), RETRY_AFTER_CAP)


@settings(deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(9999, 1, 1),
        timezones=st.just(UTC),
    )
)
def test_parse_retry_after_dates(when: datetime) -> None:
    got = parse_retry_after(format_datetime(when, usegmt=True), NOW, cap=RETRY_AFTER_CAP)
    want = max(0.0, min((when.replace(microsecond=0) - NOW).total_seconds(), RETRY_AFTER_CAP))
    assert got == want


@settings(deadline=None)
@given(st.text(max_size=60))
def test_parse_retry_after_never_raises(text: str) -> None:
    got = parse_retry_after(text, NOW, cap=100.0)
    assert got is None or 0.0 <= got <= 100.0


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with make_session(http_config()) as s:
        yield s


def test_session_shape(session: requests.Session) -> None:
    assert session.trust_env is False
    assert session.headers["Accept-Encoding"] == "gzip, deflate"
    assert session.max_redirects == 5


# --- DNS answers mixing public and private addresses, end to end ----------------------------


def stub_resolver(*addresses: str) -> Callable[..., list[Any]]:
    def getaddrinfo(host: str, port: int, *args: object) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return getaddrinfo


def guarded_session(http: HttpConfig, resolver: Callable[..., list[Any]]) -> requests.Session:
    session = make_session(http)
    adapter = GuardedAdapter(AddressPolicy(http.allow_networks, resolver=resolver))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def test_mixed_dns_answer_connects_only_to_allowed(srv: FeedServer) -> None:
    srv.add("/mixed.xml", body=FEED)
    http = HttpConfig(allow_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    # A trap listening on the forbidden address, same port: it must never see a connection.
    with socket.socket() as trap:
        trap.bind(("127.0.0.2", srv.port))
        trap.listen(1)
        trap.setblocking(False)
        resolver = stub_resolver("127.0.0.2", "127.0.0.1")
        with guarded_session(http, resolver) as session:
            url = f"http://feeds.example:{srv.port}/mixed.xml"
            res = fetch(session, FeedRef(1, url, "m"), http)
        assert res.body == FEED.encode()
        with pytest.raises(BlockingIOError):
            trap.accept()
    assert srv.requests[-1].headers["host"] == f"feeds.example:{srv.port}"


def test_private_only_dns_answer_refused(srv: FeedServer) -> None:
    http = HttpConfig(allow_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    with guarded_session(http, stub_resolver("127.0.0.2", "10.0.0.1")) as session:
        url = f"http://rebind.example:{srv.port}/feed.xml?token=abc"
        with pytest.raises(BlockedAddressError) as info:
            fetch(session, FeedRef(1, url, "r"), http)
    assert info.value.url == f"http://rebind.example:{srv.port}/feed.xml"
    assert "10.0.0.1" in str(info.value) and "abc" not in str(info.value)


def test_session_usable_after_refused_body(srv: FeedServer) -> None:
    srv.add("/fine.xml", body=FEED)
    http = http_config()
    with make_session(http) as session:
        srv.add("/bomb2", body=gzip_bomb(8 << 20), headers={"Content-Encoding": "gzip"})
        with pytest.raises(TooLargeError):
            fetch(session, FeedRef(1, srv.url("/bomb2"), "b"), http)
        assert fetch(session, FeedRef(1, srv.url("/fine.xml"), "f"), http).body == FEED.encode()


# --- TLS through the guarded connection ------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str, list[str]]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate for "localhost" only."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    sni: list[str] = []
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def remember(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
        sni.append(name or "")

    ctx.sni_callback = remember

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = FEED.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], str(cert), sni
    finally:
        server.shutdown()
        server.server_close()


def test_https_verifies_hostname_and_sends_sni(tls_server: tuple[int, str, list[str]]) -> None:
    port, cafile, sni = tls_server
    http = http_config()
    with make_session(http) as session:
        session.verify = cafile
        res = fetch(session, FeedRef(1, f"https://localhost:{port}/feed", "t"), http)
    assert res.body == FEED.encode()
    assert sni[-1] == "localhost"


def test_https_hostname_mismatch_refused(tls_server: tuple[int, str, list[str]]) -> None:
    port, cafile, _ = tls_server
    http = http_config()
    with make_session(http) as session:
        session.verify = cafile
        # The certificate names "localhost", not the IP address.
        with pytest.raises(FetchError, match="TLS certificate not accepted"):
            fetch(session, FeedRef(1, f"https://127.0.0.1:{port}/feed", "t"), http)


def test_https_untrusted_certificate_refused(tls_server: tuple[int, str, list[str]]) -> None:
    port, _, _ = tls_server
    with pytest.raises(FetchError, match="TLS certificate not accepted") as info:
        get(f"https://localhost:{port}/feed?key=zz")
    assert "zz" not in str(info.value)


def test_https_guard_applies(tls_server: tuple[int, str, list[str]]) -> None:
    port, _, _ = tls_server
    with pytest.raises(BlockedAddressError):
        get(f"https://localhost:{port}/feed", HttpConfig())


@pytest.mark.parametrize(
    "host",
    [
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f.1",
        "017700000001",
        "127.1",
        "0",
        "localhost",
    ],
)
def test_loopback_spellings_refused(host: str) -> None:
    with pytest.raises(BlockedAddressError, match="non-public"):
        get(f"http://{host}:8080/feed.xml", HttpConfig())


# --- streaming decoder ------------------------------------------------------------------------


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(deadline=None)
@given(
    st.binary(max_size=4000),
    st.lists(st.integers(min_value=0), max_size=8),
    st.sampled_from(["gzip", "deflate-zlib", "deflate-raw"]),
)
def test_inflate_any_chunking(data: bytes, cuts: list[int], kind: str) -> None:
    if kind == "gzip":
        packed, enc = gzip.compress(data), "gzip"
    else:
        wbits = zlib.MAX_WBITS if kind == "deflate-zlib" else -zlib.MAX_WBITS
        comp = zlib.compressobj(6, zlib.DEFLATED, wbits)
        packed, enc = comp.compress(data) + comp.flush(), "deflate"
    out = b"".join(_inflate(split(packed, cuts), enc, "http://x/", 10_000))
    assert out == data


@settings(deadline=None)
@given(st.binary(min_size=1, max_size=300), st.sampled_from(["gzip", "deflate"]))
def test_inflate_garbage_is_fetch_error(data: bytes, enc: str) -> None:
    try:
        out = b"".join(_inflate([data], enc, "http://x/", 1000))
    except FetchError:
        return
    assert len(out) <= 1000


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=200_000))
def test_inflate_cap_is_exact(cap: int) -> None:
    packed = gzip.compress(b"a" * 100_000)
    if cap >= 100_000:
        assert len(b"".join(_inflate([packed], "gzip", "http://x/", cap))) == 100_000
    else:
        with pytest.raises(TooLargeError):
            b"".join(_inflate([packed], "gzip", "http://x/", cap))


def test_retry_after_date_is_read_against_server_clock(srv: FeedServer) -> None:
    # The server's clock is a day behind ours; its Retry-After date is 10 minutes after its Date.
    server_now = datetime.now(UTC) - timedelta(days=1)

    def skewed(req: BaseHTTPRequestHandler) -> None:
        req.send_response_only(503)
        req.send_header("Date", format_datetime(server_now, usegmt=True))
        req.send_header("Retry-After", _http_date(timedelta(days=-1, minutes=10)))
        req.send_header("Content-Length", "0")
        req.end_headers()

    srv.add("/skewed", handler=skewed)
    with pytest.raises(HTTPStatusError) as info:
        get(srv.url("/skewed"))
    assert info.value.retry_after is not None
    assert 500 <= info.value.retry_after <= 601


def test_server_hangs_up_without_answer(srv: FeedServer) -> None:
    def hang_up(req: BaseHTTPRequestHandler) -> None:
        req.close_connection = True

    srv.add("/hangup", handler=hang_up)
    with pytest.raises(FetchError, match="closed the connection without answering"):
        get(srv.url("/hangup"))


def wrapped(inner: BaseException) -> requests.ConnectionError:
    """The chain requests builds: its ConnectionError caused by urllib3's, caused by the OS's."""
    try:
        try:
            raise inner
        except BaseException as e:
            raise ProtocolError("Connection aborted.", e) from e
    except ProtocolError as e:
        return requests.ConnectionError(e)


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        (ConnectionResetError(104, "Connection reset by peer"), "connection reset by peer"),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (socket.gaierror(-2, "Name or service not known"), "DNS lookup failed"),
        (TimeoutError("timed out"), "timed out"),
        (OSError(101, "Network is unreachable"), "network error: Network is unreachable"),
        (RuntimeError("http://u:p@h/?token=x"), "network error (ConnectionError)"),
    ],
)
def test_describe_network_error(inner: BaseException, message: str) -> None:
    assert describe_network_error(wrapped(inner)) == message
    # fetch talks to urllib3 directly: the same chain without requests' wrapper.
    outer = wrapped(inner).args[0]
    assert isinstance(outer, ProtocolError)
    want = "network error (ProtocolError)" if isinstance(inner, RuntimeError) else message
    assert describe_network_error(outer) == want


def _raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as e:
            raise outer from e
    except BaseException as e:
        return e


@pytest.mark.parametrize(
    ("error", "message"),
    [
        # urllib3's NewConnectionError is a ConnectTimeoutError subclass: its cause decides.
        (
            _raised_from(NewConnectionError(None, "failed"), ConnectionRefusedError(111, "x")),
            "connection refused",
        ),
        (_raised_from(ConnectTimeoutError(None, "slow"), TimeoutError()), "connect timed out"),
        (ReadTimeoutError(None, "/", "read timed out"), "timed out"),  # type: ignore[arg-type]
        (LocationParseError("http://[::1/"), "invalid URL"),
    ],
)
def test_describe_urllib3_errors(error: BaseException, message: str) -> None:
    assert describe_network_error(error) == message
