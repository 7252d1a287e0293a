"""Which addresses seedwatch may connect to, enforced where the socket is made.

A feed URL is attacker-controlled: it (or any redirect hop) may name a host whose DNS answer
points at loopback, the LAN, a cloud metadata service or some other non-public address (SSRF).
Checking the name before requests connects is not enough (DNS can answer differently the second
time), so the check lives in the urllib3 connection itself: we resolve once, drop every address
the policy refuses, connect to a literal allowed address, and check the peer address of the
connected socket again. ``GuardedAdapter`` mounts that connection class on a requests Session.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.response import HTTPResponse
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from .errors import BlockedAddressError

log = logging.getLogger(__name__)

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
AddrInfo: TypeAlias = tuple[
    socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int] | tuple[str, int, int, int]
]
GetAddrInfo: TypeAlias = Callable[..., Sequence[Any]]

# Our own table rather than only ``is_global``: the stdlib's lists changed between patch
# releases (gh-113171) and miss multicast for IPv4, so the policy must not depend on them.
_BLOCKED_V4: tuple[ipaddress.IPv4Network, ...] = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes 255.255.255.255
    )
)
_BLOCKED_V6: tuple[ipaddress.IPv6Network, ...] = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # unspecified, loopback, deprecated IPv4-compatible
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, includes Teredo 2001::/32
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def parse_address(text: str) -> IPAddress | None:
    """The address in ``text`` (scope id such as ``%eth0`` dropped), or None if it is not one."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), or None."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def is_public(addr: IPAddress) -> bool:
    """True when ``addr`` is a globally routable unicast address, whatever form it is written in."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = embedded_ipv4(addr)
        if inner is not None:
            # ::ffff:127.0.0.1 reaches loopback on a dual-stack socket; 6to4 and NAT64 route to
            # the embedded IPv4 address, so that address decides.
            return is_public(inner)
        if any(addr in net for net in _BLOCKED_V6):
            return False
    elif any(addr in net for net in _BLOCKED_V4):
        return False
    return not (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
        or (isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local)
    )


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses, plus whatever ``allow`` opens (the default opens nothing).

    ``resolver`` stands in for ``socket.getaddrinfo`` (tests inject a stub resolver to
    reproduce DNS answers that mix public and private addresses).
    """

    allow: tuple[Network, ...] = ()
    resolver: GetAddrInfo | None = field(default=None, compare=False, repr=False)

    def allows(self, addr: IPAddress) -> bool:
        candidates: list[IPAddress] = [addr]
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            # An operator who allows 127.0.0.0/8 means the mapped form too.
            candidates.append(addr.ipv4_mapped)
        for cand in candidates:
            if any(cand.version == net.version and cand in net for net in self.allow):
                return True
        return is_public(addr)

    def allows_text(self, text: str) -> bool:
        addr = parse_address(text)
        return addr is not None and self.allows(addr)

    def resolve(
        self, host: str, port: int, *, getaddrinfo: GetAddrInfo | None = None
    ) -> list[AddrInfo]:
        """The TCP addresses for ``host`` that the policy allows, in resolver order.

        Refused addresses are dropped, so a DNS answer mixing public and private addresses
        connects only to the public ones. Raises BlockedAddressError when none is left and
        OSError (socket.gaierror) when the name does not resolve.
        """
        lookup: GetAddrInfo = getaddrinfo or self.resolver or socket.getaddrinfo
        infos = lookup(host, port, 0, socket.SOCK_STREAM)
        allowed: list[AddrInfo] = []
        refused: list[str] = []
        for info in infos:
            sockaddr = info[4]
            if self.allows_text(str(sockaddr[0])):
                allowed.append(info)
            else:
                refused.append(str(sockaddr[0]))
        if refused:
            log.info(
                "refused non-public addresses host=%s addresses=%s kept=%d",
                host,
                ",".join(sorted(set(refused))),
                len(allowed),
            )
        if not allowed:
            shown = ", ".join(sorted(set(refused))) or "nothing"
            raise BlockedAddressError(
                _host_url(host, port), f"host resolves only to non-public addresses ({shown})"
            )
        return allowed


def _host_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"//{shown}:{port}"


# Called with every socket a guarded connection opens or reads a response from; fetch uses it
# to shut sockets down when its wall-clock deadline passes (a read timeout alone does not stop
# a server that drips one byte a second).
SocketWatcher: TypeAlias = Callable[[socket.socket], None]
_watcher: contextvars.ContextVar[SocketWatcher | None] = contextvars.ContextVar(
    "seedwatch_socket_watcher", default=None
)


@contextlib.contextmanager
def watch_sockets(callback: SocketWatcher) -> Iterator[None]:
    """Within the block (same thread), hand every socket guarded connections use to ``callback``."""
    token = _watcher.set(callback)
    try:
        yield
    finally:
        _watcher.reset(token)


def _notify(sock: socket.socket | None) -> None:
    callback = _watcher.get()
    if callback is not None and sock is not None:
        callback(sock)


def connect_guarded(
    host: str,
    port: int,
    policy: AddressPolicy,
    *,
    timeout: float | object | None = _DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    socket_options: Iterable[tuple[int, int, int | bytes]] | None = None,
    getaddrinfo: GetAddrInfo | None = None,
) -> socket.socket:
    """A TCP socket connected to an address of ``host`` that ``policy`` allows."""
    last_error: OSError | None = None
    for family, kind, proto, _, sockaddr in policy.resolve(host, port, getaddrinfo=getaddrinfo):
        sock = socket.socket(family, kind, proto)
        try:
            _notify(sock)
            for opt in socket_options or ():
                sock.setsockopt(*opt)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)  # type: ignore[arg-type]
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            peer = str(sock.getpeername()[0])
            if not policy.allows_text(peer):
                # We connected to a literal we had checked, so this cannot happen unless the
                # stack rewrote the destination; refuse rather than trust it.
                raise BlockedAddressError(
                    _host_url(host, port), f"connected to non-public address {peer}"
                )
            return sock
        except BlockedAddressError:
            sock.close()
            raise
        except OSError as e:
            last_error = e
            sock.close()
    if last_error is None:  # resolve() never returns an empty list; keep it that way
        raise BlockedAddressError(_host_url(host, port), "no address to connect to")
    raise last_error


class GuardedHTTPConnection(HTTPConnection):
    """An urllib3 HTTP connection that connects only where ``policy`` allows."""

    policy: AddressPolicy = AddressPolicy()

    def _new_conn(self) -> socket.socket:
        return _guarded_new_conn(self)

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's
        _notify(self.sock)
        return super().getresponse()


class GuardedHTTPSConnection(HTTPSConnection):
    """The HTTPS twin: same guard; TLS (SNI, hostname check) is urllib3's, on the guarded socket."""

    policy: AddressPolicy = AddressPolicy()

    def _new_conn(self) -> socket.socket:
        return _guarded_new_conn(self)

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's
        _notify(self.sock)
        return super().getresponse()


def _guarded_new_conn(conn: GuardedHTTPConnection | GuardedHTTPSConnection) -> socket.socket:
    # Mirrors urllib3's HTTPConnection._new_conn, with its exception mapping, so retries,
    # timeouts and requests' error types behave exactly as without the guard.
    try:
        sock = connect_guarded(
            conn._dns_host,
            int(conn.port or 0),
            conn.policy,
            timeout=conn.timeout,
            source_address=conn.source_address,
            socket_options=conn.socket_options,
        )
    except socket.gaierror as e:
        raise NameResolutionError(conn.host, conn, e) from e
    except TimeoutError as e:
        raise ConnectTimeoutError(
            conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
        ) from e
    except OSError as e:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {e}") from e
    sys.audit("http.client.connect", conn, conn.host, conn.port)
    return sock


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every connection goes through ``policy``; proxies are refused.

    A proxy would make the proxy, not us, choose the address, so the guard would be moot.
    """

    # Pickling an adapter must keep the guard (HTTPAdapter pickles only what __attrs__ names).
    __attrs__ = [*HTTPAdapter.__attrs__, "policy"]  # noqa: RUF012

    def __init__(self, policy: AddressPolicy, **kwargs: Any) -> None:
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.policy)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise BlockedAddressError(proxy, "proxies are not allowed: they would bypass the guard")


def _pool_classes(policy: AddressPolicy) -> Mapping[str, type[HTTPConnectionPool]]:
    conn_cls = type("PolicyHTTPConnection", (GuardedHTTPConnection,), {"policy": policy})
    tls_cls = type("PolicyHTTPSConnection", (GuardedHTTPSConnection,), {"policy": policy})
    pool = type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": conn_cls})
    tls_pool = type(
        "GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": tls_cls}
    )
    return {"http": pool, "https": tls_pool}
