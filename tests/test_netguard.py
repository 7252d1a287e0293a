"""The address policy, the resolver filter and the guarded connect, with a stub resolver."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedwatch.errors import BlockedAddressError
from seedwatch.netguard import (
    AddressPolicy,
    GuardedAdapter,
    connect_guarded,
    embedded_ipv4,
    is_public,
    parse_address,
    watch_sockets,
)

BLOCKED = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",  # cloud metadata
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",  # multicast: the stdlib calls it global
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.1.2.3",
    "::ffff:169.254.169.254",
    "::ffff:0.0.0.0",
    "::ffff:224.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b:1::1",  # local-use NAT64
    "100::1",
    "2001::1",  # Teredo
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:db8::1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "3fff::1",
    "fc00::1",
    "fd12:3456:789a::1",
    "fe80::1",
    "fe80::1%eth0",
    "fec0::1",
    "ff02::1",
    "ff05::1:3",
]
PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.216.34",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above
    "172.32.0.1",
    "223.255.255.254",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
]


@pytest.mark.parametrize("text", BLOCKED)
def test_non_public_refused(text: str) -> None:
    addr = parse_address(text)
    assert addr is not None
    assert not is_public(addr)
    assert not AddressPolicy().allows(addr)


@pytest.mark.parametrize("text", PUBLIC)
def test_public_allowed(text: str) -> None:
    assert AddressPolicy().allows_text(text)


def test_garbage_address_refused() -> None:
    assert parse_address("not-an-ip") is None
    assert not AddressPolicy().allows_text("not-an-ip")
    assert not AddressPolicy().allows_text("")


def test_allow_networks_open_exceptions() -> None:
    policy = AddressPolicy((ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00::/8")))
    assert policy.allows_text("127.0.0.2")
    assert policy.allows_text("::ffff:127.0.0.2")  # the mapped form of an allowed address
    assert policy.allows_text("fd00::5")
    assert not policy.allows_text("10.0.0.1")
    assert not policy.allows_text("::1")
    assert not policy.allows_text("169.254.169.254")
    assert policy.allows_text("8.8.8.8")  # public stays allowed

    narrow = AddressPolicy((ipaddress.ip_network("127.0.0.1/32"),))
    assert narrow.allows_text("127.0.0.1")
    assert not narrow.allows_text("127.0.0.2")


def test_embedded_ipv4() -> None:
    assert embedded_ipv4(ipaddress.IPv6Address("::ffff:1.2.3.4")) == ipaddress.IPv4Address(
        "1.2.3.4"
    )
    assert embedded_ipv4(ipaddress.IPv6Address("2002:102:304::")) == ipaddress.IPv4Address(
        "1.2.3.4"
    )
    assert embedded_ipv4(ipaddress.IPv6Address("64:ff9b::102:304")) == ipaddress.IPv4Address(
        "1.2.3.4"
    )
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1")) is None


ipv4s = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)


@settings(deadline=None)
@given(ipv4s)
def test_ipv6_forms_follow_their_ipv4(v4: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{v4}")
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80) | 1)
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(v4))
    assert is_public(mapped) == is_public(v4)
    assert is_public(sixtofour) == is_public(v4)
    assert is_public(nat64) == is_public(v4)


@settings(deadline=None)
@given(ipv4s)
def test_public_ipv4_is_global_unicast(v4: ipaddress.IPv4Address) -> None:
    if is_public(v4):
        assert v4.is_global and not v4.is_multicast and not v4.is_private


networks = st.tuples(ipv4s, st.integers(min_value=8, max_value=32)).map(
    lambda t: ipaddress.IPv4Network((int(t[0]) >> (32 - t[1]) << (32 - t[1]), t[1]))
)


@settings(deadline=None)
@given(networks, st.integers(min_value=0, max_value=2**32 - 1))
def test_allowed_network_members_allowed(net: ipaddress.IPv4Network, offset: int) -> None:
    addr = net.network_address + offset % net.num_addresses
    assert AddressPolicy((net,)).allows(addr)


# --- resolver filter -----------------------------------------------------------------------


def fake_getaddrinfo(*addresses: str) -> Any:
    """A resolver stub answering every name with ``addresses``, in order."""

    def getaddrinfo(host: str, port: int, *args: object) -> Sequence[Any]:
        out: list[Any] = []
        for a in addresses:
            if ":" in a:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)))
        return out

    return getaddrinfo


def test_mixed_answer_keeps_only_public() -> None:
    gai = fake_getaddrinfo("10.0.0.5", "93.184.216.34", "::ffff:127.0.0.1", "2606:4700::1")
    infos = AddressPolicy().resolve("mixed.example", 80, getaddrinfo=gai)
    assert [i[4][0] for i in infos] == ["93.184.216.34", "2606:4700::1"]


def test_all_private_answer_refused() -> None:
    gai = fake_getaddrinfo("127.0.0.1", "::1", "169.254.169.254")
    with pytest.raises(BlockedAddressError) as info:
        AddressPolicy().resolve("rebind.example", 443, getaddrinfo=gai)
    assert "non-public" in str(info.value)
    assert "169.254.169.254" in str(info.value)
    assert "rebind.example" in info.value.url


def test_mapped_loopback_answer_refused() -> None:
    with pytest.raises(BlockedAddressError):
        AddressPolicy().resolve("m.example", 80, getaddrinfo=fake_getaddrinfo("::ffff:7f00:1"))


def test_resolution_failure_propagates() -> None:
    def broken(*args: object) -> Sequence[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(socket.gaierror):
        AddressPolicy().resolve("nope.example", 80, getaddrinfo=broken)


# --- guarded connect against a real listener ---------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield s


def test_connect_skips_refused_addresses(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    policy = AddressPolicy((ipaddress.ip_network("127.0.0.1/32"),))
    # 127.0.0.2 comes first in the answer; the guard must never even try it.
    gai = fake_getaddrinfo("127.0.0.2", "127.0.0.1")
    seen: list[socket.socket] = []
    with watch_sockets(seen.append):
        sock = connect_guarded("two.example", port, policy, timeout=2.0, getaddrinfo=gai)
    with sock:
        assert sock.getpeername() == ("127.0.0.1", port)
    assert seen == [sock]


def test_connect_refuses_when_nothing_allowed(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    policy = AddressPolicy((ipaddress.ip_network("127.0.0.1/32"),))
    with pytest.raises(BlockedAddressError):
        connect_guarded("x.example", port, policy, getaddrinfo=fake_getaddrinfo("127.0.0.2"))


def test_connect_tries_next_allowed_address(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with socket.socket() as closed:
        closed.bind(("127.0.0.3", 0))
        dead_port = closed.getsockname()[1]
    policy = AddressPolicy((ipaddress.ip_network("127.0.0.0/8"),))

    # First address refuses the connection (nothing listens on 127.0.0.3 there), the second works.
    def gai(host: str, p: int, *args: object) -> Sequence[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.3", dead_port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    with connect_guarded("x.example", port, policy, timeout=2.0, getaddrinfo=gai) as sock:
        assert sock.getpeername()[0] == "127.0.0.1"


def test_connect_error_when_all_allowed_fail() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    policy = AddressPolicy((ipaddress.ip_network("127.0.0.0/8"),))
    with pytest.raises(ConnectionRefusedError):
        connect_guarded("127.0.0.1", port, policy, timeout=2.0)


def test_adapter_pool_uses_guarded_connections() -> None:
    policy = AddressPolicy()
    adapter = GuardedAdapter(policy)
    pool = adapter.poolmanager.connection_from_url("https://example.org/")
    conn_cls: Any = pool.ConnectionCls
    assert conn_cls.policy is policy
    assert conn_cls.__name__ == "PolicyHTTPSConnection"
    pool = adapter.poolmanager.connection_from_url("http://example.org/")
    assert pool.ConnectionCls.policy is policy


def test_adapter_pickle_keeps_guard() -> None:
    import pickle

    policy = AddressPolicy((ipaddress.ip_network("127.0.0.0/8"),))
    clone = pickle.loads(pickle.dumps(GuardedAdapter(policy)))
    assert clone.policy == policy
    pool = clone.poolmanager.connection_from_url("http://example.org/")
    assert pool.ConnectionCls.policy == policy
