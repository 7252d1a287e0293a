from __future__ import annotations

import socket
from pathlib import Path

from seedwatch.notify import Notifier


def test_notify_sends_datagrams_to_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        n = Notifier(str(path))
        assert n.enabled
        assert n.ready("polling 3 feeds")
        assert server.recv(1024) == b"READY=1\nSTATUS=polling 3 feeds"
        assert n.watchdog()
        assert server.recv(1024) == b"WATCHDOG=1"


def test_notify_without_socket_is_a_no_op(monkeypatch: object) -> None:
    n = Notifier("")
    assert not n.enabled
    assert n.ready() is False


def test_notify_to_missing_socket_does_not_raise(tmp_path: Path) -> None:
    assert Notifier(str(tmp_path / "nowhere.sock")).watchdog() is False
