"""Fetch one feed over HTTP: the only stage that talks to the network.

    FeedRef --fetch--> FetchResult (bytes + what the server said) | FetchError subclass

Every server is presumed hostile. We follow redirects ourselves (each hop re-checked: scheme,
address guard, hop count, loops), stream the body with caps on raw and decompressed bytes
(decoding Content-Encoding ourselves, so a gzip bomb never becomes more than ~cap bytes), and
enforce one wall-clock deadline over all hops: a watchdog shuts the sockets down when it
passes, because a read timeout alone does not stop a server that drips a byte a second.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import socket
import ssl
import threading
import time
import weakref
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.client import HTTPException, RemoteDisconnected
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import _basic_auth_str
from requests.utils import get_auth_from_url
from urllib3 import BaseHTTPResponse, HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, LocationValueError, NewConnectionError
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import Timeout

from .config.model import HttpConfig
from .errors import (
    BlockedAddressError,
    DeadlineError,
    FetchError,
    GoneError,
    HTTPStatusError,
    RedirectError,
    TooLargeError,
    redact_url,
)
from .netguard import AddressPolicy, GuardedAdapter, watch_sockets
from .types import FeedRef, FetchResult

log = logging.getLogger(__name__)

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/feed+json;q=0.9, application/json;q=0.8, application/xml;q=0.8, "
    "text/xml;q=0.8, */*;q=0.5"
)
RETRY_AFTER_CAP = 7 * 24 * 3600.0
ALLOWED_SCHEMES = frozenset({"http", "https"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_CHUNK = 64 * 1024
_SLACK = 0.05  # seconds: timer and socket timeouts do not fire at the same instant
_MIN_IDLE = 1.0  # seconds: the shortest sleep of the deadline watchdog with nothing to watch
_MAX_ENCODINGS = 3  # "gzip, gzip" is legal; a hundred stacked layers is an attack


def make_session(http: HttpConfig) -> requests.Session:
    """A Session whose every connection passes the address guard of ``http.allow_networks``."""
    session = requests.Session()
    # Environment proxies (HTTP_PROXY, ...) would connect on our behalf and bypass the guard;
    # .netrc credentials must not leak to arbitrary feed hosts either.
    session.trust_env = False
    session.proxies = {}
    session.max_redirects = http.max_redirects
    # A cookie jar shared by every feed is state a hostile server can grow and other hosts'
    # feeds never need; polling stays stateless.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    session.headers.clear()
    session.headers.update(
        {
            "User-Agent": http.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip, deflate",
        }
    )
    adapter = GuardedAdapter(AddressPolicy(tuple(http.allow_networks)), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def parse_retry_after(value: str | None, now: datetime, *, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 §10.2.3), or None when unusable.

    delta-seconds or an HTTP-date; a date in the past means 0; anything above ``cap`` (a
    server asking for a year's silence) is ``cap``; garbage is None.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        # Past 15 digits it is absurd anyway; int() of thousands of digits is slow or refused.
        return cap if len(text) > 15 else min(float(int(text)), cap)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:
        delta = (when - now).total_seconds()
    except OverflowError:
        return cap
    return max(0.0, min(delta, cap))


def fetch(
    session: requests.Session, feed: FeedRef, http: HttpConfig, *, force: bool = False
) -> FetchResult:
    """GET the feed, conditionally unless ``force``; raise a FetchError subclass on failure."""
    started = time.monotonic()
    deadline = _Deadline(http.deadline)
    try:
        with watch_sockets(deadline.watch):
            result = _fetch(session, feed, http, force, deadline, started)
    finally:
        deadline.cancel()
    if log.isEnabledFor(logging.DEBUG):  # redacting the URL costs even when nothing logs
        log.debug(
            "fetched feed=%s url=%s status=%s bytes=%d",
            feed.id,
            redact_url(result.url),
            result.status,
            len(result.body),
        )
    return result


def _fetch(
    session: requests.Session,
    feed: FeedRef,
    http: HttpConfig,
    force: bool,
    deadline: _Deadline,
    started: float,
) -> FetchResult:
    headers: dict[str, str] = {}
    if not force:
        if feed.etag:
            headers["If-None-Match"] = feed.etag
        if feed.last_modified:
            headers["If-Modified-Since"] = feed.last_modified
    url = feed.url
    seen = {_loop_key(url)}
    hops = 0
    permanent = True
    while True:
        _check_scheme(url)
        resp = _send(session, url, headers, http, deadline)
        try:
            status = resp.status
            if status in _REDIRECTS:
                hops += 1
                permanent = permanent and status in _PERMANENT
                url = _next_hop(url, resp, hops, http.max_redirects, seen)
                continue
            moved = url if hops and permanent else None
            if status == 304:
                return FetchResult(
                    requested_url=feed.url,
                    url=url,
                    status=status,
                    headers=_headers(resp),
                    body=b"",
                    etag=resp.headers.get("ETag") or feed.etag,
                    last_modified=resp.headers.get("Last-Modified") or feed.last_modified,
                    permanent_url=moved,
                    not_modified=True,
                    elapsed=time.monotonic() - started,
                )
            if status >= 400 or not 200 <= status < 300:
                raise _status_error(url, resp)
            body = _read_body(resp, url, http, deadline)
            return FetchResult(
                requested_url=feed.url,
                url=url,
                status=status,
                headers=_headers(resp),
                body=body,
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
                permanent_url=moved,
                body_hash=hashlib.sha256(body).hexdigest(),
                elapsed=time.monotonic() - started,
            )
        finally:
            _release(resp, deadline)


def _release(resp: BaseHTTPResponse, deadline: _Deadline) -> None:
    """Give the connection back to the session's pool when the answer has ended cleanly (a
    304, an empty body, a body read to its end), so that the next fetch from the host skips
    the TCP and TLS handshakes; otherwise close it. Reading even a short rest could wait on
    a server that never sends it, so nothing more is read."""
    if not deadline.expired:
        if resp.length_remaining == 0:
            with contextlib.suppress(Urllib3Error, OSError, HTTPException):
                resp.read(decode_content=False)  # marks it complete: urllib3 pools it
        if resp.connection is None and deadline.last is not None:  # pooled
            _pooled.add(deadline.last)
    _close(resp)


def _check_scheme(url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise FetchError(url, "invalid URL") from e
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = scheme[:20] or "none"
        raise BlockedAddressError(url, f"scheme {shown!r} is not allowed (http and https only)")
    try:
        host = parts.hostname
    except ValueError as e:
        raise FetchError(url, "invalid URL") from e
    if not host:
        raise FetchError(url, "invalid URL: no host")


def _loop_key(url: str) -> str:
    # Fragments never reach the server, so they cannot break a loop.
    return url.split("#", 1)[0]


def _next_hop(url: str, resp: BaseHTTPResponse, hops: int, limit: int, seen: set[str]) -> str:
    location = resp.headers.get("Location")
    if not location or not location.strip():
        raise RedirectError(url, f"status {resp.status} without a Location header")
    if hops > limit:
        raise RedirectError(url, f"more than {limit} redirects")
    try:
        # Location is raw bytes decoded as latin-1 by http.client; servers that send UTF-8 in
        # it are common enough to undo that (requests does the same).
        target = location.strip().encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        target = location.strip()
    try:
        nxt = urljoin(url, target)
    except ValueError as e:
        raise RedirectError(url, "redirect to an invalid URL") from e
    key = _loop_key(nxt)
    if key in seen:
        raise RedirectError(url, f"redirect loop after {hops} redirects")
    seen.add(key)
    return nxt


def _send(
    session: requests.Session,
    url: str,
    headers: dict[str, str],
    http: HttpConfig,
    deadline: _Deadline,
) -> BaseHTTPResponse:
    retried = False
    while True:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise DeadlineError(url, f"no complete answer within {http.deadline:g} s")
        timeout = Timeout(connect=min(http.connect_timeout, remaining), read=remaining)
        try:
            resp = _get(session, url, headers, timeout)
            break
        except BlockedAddressError as e:
            raise BlockedAddressError(url, e.message) from e
        except LocationValueError as e:  # a ValueError, but also one of urllib3's
            raise FetchError(url, "invalid URL") from e
        except (requests.RequestException, Urllib3Error, OSError, HTTPException) as e:
            if deadline.passed():
                raise DeadlineError(url, f"no complete answer within {http.deadline:g} s") from e
            if not retried and _lost_pooled_connection(deadline, e):
                # The server closed the idle connection as we reused it: what a fresh
                # connection would have avoided, so one more try (browsers do the same).
                retried = True
                continue
            raise FetchError(url, describe_network_error(e)) from e
        except (ValueError, UnicodeError) as e:
            raise FetchError(url, "invalid URL") from e
    if deadline.expired:
        # The watchdog's shutdown reads as EOF, which http.client may take for the end of
        # the headers: whatever arrived is truncated.
        _close(resp)
        raise DeadlineError(url, f"no complete answer within {http.deadline:g} s")
    return resp


def _get(
    session: requests.Session, url: str, headers: dict[str, str], timeout: Timeout
) -> BaseHTTPResponse:
    """``session.get(url, allow_redirects=False, stream=True).raw``, straight through the
    urllib3 pool of the session's adapter. The URL is prepared as requests prepares it (IDNA,
    percent-encoding, its errors) and userinfo still becomes Basic credentials; what else
    Session.request and HTTPAdapter.send add (environment settings, cookies, hooks, a
    Response around urllib3's) is all off or unused for us, and cost half of a 304's CPU.
    Errors are urllib3's own (no retries: each is raised as it happened)."""
    req = requests.PreparedRequest()
    req.url, path = _prepared_url(url)
    sent = {k: v if isinstance(v, str) else v.decode("latin-1") for k, v in session.headers.items()}
    sent.update(headers)
    if "@" in url:
        user, password = get_auth_from_url(url)
        if user or password:
            sent["Authorization"] = _basic_auth_str(user, password)
    adapter = session.get_adapter(url)
    if not isinstance(adapter, HTTPAdapter):
        raise TypeError(f"fetch needs an HTTPAdapter, not {type(adapter).__name__}")
    verify = True if session.verify is None else session.verify
    # The pool for the URL's host, with requests' TLS settings (CA bundle, client cert).
    if session.proxies:  # our sessions have none; the guarded adapter refuses them here
        pool = adapter.get_connection_with_tls_context(
            req, verify, proxies=session.proxies, cert=session.cert
        )
    else:  # the same, without matching the URL against an empty proxy table
        host, pool_kwargs = adapter.build_connection_pool_key_attributes(req, verify, session.cert)
        pool = adapter.poolmanager.connection_from_host(**host, pool_kwargs=pool_kwargs)
    adapter.cert_verify(pool, url, verify, session.cert)  # type: ignore[no-untyped-call]
    if not isinstance(pool, HTTPConnectionPool):
        raise TypeError(f"not an HTTP connection pool: {type(pool).__name__}")
    return pool.urlopen(
        "GET",
        path,
        headers=sent,
        redirect=False,
        assert_same_host=False,
        preload_content=False,
        decode_content=False,
        retries=False,
        timeout=timeout,
    )


@functools.lru_cache(maxsize=1 << 15)
def _prepared_url(url: str) -> tuple[str, str]:
    """The URL as requests sends it, and its path and query: ``PreparedRequest.prepare_url``
    is a tenth of a 304's CPU and a feed's URL rarely changes, so it is done once per URL
    (the cache holds more URLs than a daemon has feeds: a round over them all still hits).
    Raises what prepare_url raises (errors are not cached)."""
    req = requests.PreparedRequest()
    req.prepare_url(url, None)
    assert req.url is not None
    return req.url, req.path_url


def _close(resp: BaseHTTPResponse) -> None:
    # As requests' Response.close: close what is still open (a connection still held is
    # closed, not reused), then hand the connection object back to its pool.
    resp.close()
    resp.release_conn()


# Sockets that carried a whole answer and went back to a pool. A request that fails on one
# before any answer met a server closing the idle connection just as we reused it.
_pooled: weakref.WeakSet[socket.socket] = weakref.WeakSet()
_HUNG_UP = (RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def _lost_pooled_connection(deadline: _Deadline, exc: BaseException) -> bool:
    sock = deadline.last
    if sock is None or sock not in _pooled:
        return False
    _pooled.discard(sock)
    return any(isinstance(e, _HUNG_UP) for e in _causes(exc))


def _status_error(url: str, resp: BaseHTTPResponse) -> HTTPStatusError:
    status = resp.status
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error" if status >= 400 else "unexpected status"
    retry_after = parse_retry_after(
        resp.headers.get("Retry-After"), _server_now(resp), cap=RETRY_AFTER_CAP
    )
    cls = GoneError if status == 410 else HTTPStatusError
    return cls(url, status, f"HTTP {status} {phrase}", retry_after=retry_after)


def _server_now(resp: BaseHTTPResponse) -> datetime:
    # An HTTP-date in Retry-After is meant against the server's own clock (its Date header),
    # which keeps a skewed server clock from turning "in 60 s" into hours or into nothing.
    try:
        date = parsedate_to_datetime(resp.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError, OverflowError):
        return datetime.now(UTC)
    return date if date.tzinfo else date.replace(tzinfo=UTC)


def _headers(resp: BaseHTTPResponse) -> tuple[tuple[str, str], ...]:
    return tuple((k.lower(), v) for k, v in resp.headers.iteritems())


def _read_body(resp: BaseHTTPResponse, url: str, http: HttpConfig, deadline: _Deadline) -> bytes:
    cap = http.max_bytes
    length = resp.headers.get("Content-Length", "").strip()
    if length.isdigit() and int(length) > cap:
        raise TooLargeError(url, f"Content-Length {length} exceeds the {cap}-byte cap")
    encodings = _content_encodings(url, resp.headers.get("Content-Encoding"))
    body = bytearray()
    try:
        chunks: Iterable[bytes] = _raw_chunks(resp, url, cap, deadline, http.deadline)
        for enc in reversed(encodings):
            chunks = _inflate(chunks, enc, url, cap)
        for chunk in chunks:
            body += chunk
            if len(body) > cap:
                raise TooLargeError(url, f"body exceeds the {cap}-byte cap")
    # Reading the raw stream raises urllib3's own errors (ProtocolError, ReadTimeoutError),
    # which share no base with requests'.
    except (
        requests.RequestException,
        Urllib3Error,
        OSError,
        HTTPException,
    ) as e:
        if deadline.passed():
            raise DeadlineError(url, f"body not complete within {http.deadline:g} s") from e
        raise FetchError(url, "connection broken while reading the body") from e
    if deadline.expired:  # the watchdog's shutdown may have cut the body short
        raise DeadlineError(url, f"body not complete within {http.deadline:g} s")
    return bytes(body)


def _raw_chunks(
    resp: BaseHTTPResponse, url: str, cap: int, deadline: _Deadline, total: float
) -> Iterator[bytes]:
    received = 0
    for chunk in resp.stream(_CHUNK, decode_content=False):
        received += len(chunk)
        if received > cap:
            raise TooLargeError(url, f"more than {cap} bytes on the wire")
        if deadline.remaining() <= 0:
            raise DeadlineError(url, f"body not complete within {total:g} s")
        yield chunk


def _content_encodings(url: str, header: str | None) -> list[str]:
    if not header:
        return []
    encodings = [e.strip().lower() for e in header.split(",")]
    encodings = [e for e in encodings if e and e != "identity"]
    for enc in encodings:
        if enc not in ("gzip", "x-gzip", "deflate"):
            raise FetchError(url, f"unsupported Content-Encoding {enc[:30]!r}")
    if len(encodings) > _MAX_ENCODINGS:
        raise FetchError(url, f"{len(encodings)} stacked Content-Encodings")
    return encodings


def _inflate(chunks: Iterable[bytes], enc: str, url: str, cap: int) -> Iterator[bytes]:
    """Decode one Content-Encoding layer as a stream, never holding more than a chunk of output.

    Each layer has its own cap: with "gzip, gzip" the middle layer could be the bomb.
    """
    gzip = enc in ("gzip", "x-gzip")
    d: zlib._Decompress | None = None
    members = 0
    produced = 0
    pending = b""
    for chunk in chunks:
        data = pending + chunk
        pending = b""
        while data:
            if d is not None and d.eof:
                if not gzip:
                    data = b""  # bytes after the end of a deflate stream carry nothing
                    break
                d = None  # gzip allows several members, one after the other (RFC 1952 §2.2)
            if d is None:
                if not gzip and len(data) < 2:
                    pending = data  # need two bytes to tell zlib-wrapped from raw deflate
                    break
                d = zlib.decompressobj(_wbits(gzip, data))
                members += 1
            try:
                out = d.decompress(data, _CHUNK)
            except zlib.error as e:
                if gzip and members > 1:
                    # Trailing padding after the last member (some servers add NULs).
                    data = b""
                    break
                raise FetchError(url, f"corrupt {enc} body") from e
            data = d.unused_data if d.eof else d.unconsumed_tail
            if out:
                produced += len(out)
                if produced > cap:
                    raise TooLargeError(url, f"{enc} body decodes to more than {cap} bytes")
                yield out
    if d is not None and not d.eof:
        # A truncated stream: keep what decoded (as browsers do); the parser judges the rest.
        try:
            tail = d.flush()
        except zlib.error as e:
            raise FetchError(url, f"corrupt {enc} body") from e
        produced += len(tail)
        if produced > cap:
            raise TooLargeError(url, f"{enc} body decodes to more than {cap} bytes")
        if tail:
            yield tail


def _wbits(gzip: bool, head: bytes) -> int:
    if gzip:
        return 16 + zlib.MAX_WBITS
    # "deflate" should be zlib-wrapped (RFC 9110 §8.4.1.2) but many servers send raw deflate.
    cmf, flg = head[0], head[1]
    if cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0:
        return zlib.MAX_WBITS
    return -zlib.MAX_WBITS


class _Deadline:
    """One wall-clock budget for a whole fetch; when it runs out, its sockets are shut down."""

    def __init__(self, seconds: float) -> None:
        self.expires = time.monotonic() + max(seconds, 0.0)
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: dict[int, socket.socket] = {}
        self.last: socket.socket | None = None  # the socket the latest request went out on
        _watchdog.watch(self, max(seconds, 0.0))

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def passed(self) -> bool:
        # A read timeout bounded by the deadline can fire a hair before the watchdog thread
        # runs; either one means the budget is spent.
        return self.expired or self.remaining() < _SLACK

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self.last = sock
            if self.expired:
                _shutdown(sock)
            else:
                self._sockets[id(sock)] = sock

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            socks = list(self._sockets.values())
        for sock in socks:
            _shutdown(sock)

    def cancel(self) -> None:
        _watchdog.forget(self)
        with self._lock:
            self._sockets.clear()
            self.last = None


class _Watchdog:
    """One thread for the deadlines of every fetch in the process (a thread started per fetch
    cost a tenth of a 304's CPU). It sleeps until the earliest live deadline and expires
    what has passed. With nothing live it sleeps for the shortest budget it has seen (at
    least a second), so a deadline set meanwhile mostly falls due after it wakes: most
    fetches never wake it; a shorter one does."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._live: set[_Deadline] = set()
        self._wake_at = float("inf")
        self._shortest = float("inf")
        self._thread: threading.Thread | None = None

    def watch(self, deadline: _Deadline, seconds: float) -> None:
        with self._cond:
            self._live.add(deadline)
            self._shortest = min(self._shortest, seconds)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fetch-deadlines", daemon=True
                )
                self._thread.start()
            elif deadline.expires < self._wake_at:
                self._cond.notify()

    def forget(self, deadline: _Deadline) -> None:
        with self._cond:
            self._live.discard(deadline)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [d for d in self._live if d.expires <= now]
                self._live.difference_update(due)
                if not due:
                    idle = now + max(self._shortest, _MIN_IDLE)  # never a busy loop
                    self._wake_at = min((d.expires for d in self._live), default=idle)
                    self._cond.wait(self._wake_at - now)
                    continue
            for d in due:
                d.expire()


def _new_watchdog() -> None:
    global _watchdog
    _watchdog = _Watchdog()


_watchdog = _Watchdog()
# A forked child has no watchdog thread (and maybe a lock held by a thread it lacks).
os.register_at_fork(after_in_child=_new_watchdog)


def _shutdown(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: the latter also tears down the TLS object
    # under a thread that may be reading from it; we only need the blocked recv to return.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and every error inside it, outermost first."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    chain: list[BaseException] = []
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        chain.append(e)
        # requests and urllib3 keep the inner error in args or .reason as often as in the chain.
        for nxt in (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return chain


def describe_network_error(exc: BaseException) -> str:
    """A short message for a network failure, without the URL (requests puts it, query and
    all, into its messages)."""
    chain = _causes(exc)
    for e in chain:
        if isinstance(e, socket.gaierror):
            return "DNS lookup failed"
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS certificate not accepted: {_clean(e.verify_message or 'verify failed')}"
        if isinstance(e, ssl.SSLError):
            return f"TLS error: {_clean(str(e.reason or 'handshake failed'))}"
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, RemoteDisconnected):  # a ConnectionResetError subclass: test first
            return "server closed the connection without answering"
        if isinstance(e, ConnectionResetError):
            return "connection reset by peer"
        # urllib3's NewConnectionError is a ConnectTimeoutError (and so one of its
        # TimeoutErrors) for backward compatibility: it is neither.
        if isinstance(e, NewConnectionError):
            continue
        if isinstance(e, requests.ConnectTimeout | ConnectTimeoutError):
            return "connect timed out"
        if isinstance(e, TimeoutError | requests.Timeout | Urllib3Timeout):
            return "timed out"
        if isinstance(
            e, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema
            | LocationValueError
        ):
            return "invalid URL"
        if isinstance(e, requests.exceptions.MissingSchema):
            return "invalid URL: no scheme"
    for e in chain:
        if isinstance(e, OSError) and e.strerror:
            return f"network error: {_clean(e.strerror)}"
    return f"network error ({type(exc).__name__})"


_UNSAFE = re.compile(r"[^\w .:,()'/-]")


def _clean(text: str) -> str:
    return _UNSAFE.sub("", text)[:80]
