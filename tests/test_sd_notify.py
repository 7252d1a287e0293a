"""The daemon speaks systemd's notify protocol: READY once running, WATCHDOG only while the
database answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from seedwatch.daemon import Daemon
from seedwatch.notify import Notifier
from seedwatch.runtime import Runtime
from tests.support.daemon import Rule, write_config
from tests.support.feedserver import FeedServer, rss


def _recv_all(sock: socket.socket, want: bytes, limit: int = 20) -> list[bytes]:
    got: list[bytes] = []
    for _ in range(limit):
        try:
            msg = sock.recv(4096)
        except TimeoutError:
            break
        got.append(msg)
        if want in msg:
            break
    return got


@pytest.mark.slow
def test_run_sends_ready_then_watchdog(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.add("/a.xml", body=rss([]))
    cfg = write_config(tmp_path, [("A", feed_server.url("/a.xml"))], [Rule("r", "terrorism")])
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(20)
        env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="1000000")
        env.pop("WATCHDOG_PID", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "seedwatch", "run", "--config", str(cfg)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            msgs = _recv_all(sock, b"READY=1")
            assert any(m.startswith(b"READY=1") for m in msgs), msgs
            # The story index rebuild before READY asks systemd for more start-up time.
            assert any(m.startswith(b"EXTEND_TIMEOUT_USEC=60000000") for m in msgs), msgs
            msgs = _recv_all(sock, b"WATCHDOG=1")
            assert b"WATCHDOG=1" in msgs, msgs
            proc.terminate()
            msgs = _recv_all(sock, b"STOPPING=1")
            assert b"STOPPING=1" in msgs
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_watchdog_is_not_pinged_when_the_database_is_gone(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.add("/a.xml", body=rss([]))
    cfg = write_config(tmp_path, [("A", feed_server.url("/a.xml"))], [Rule("r", "terrorism")])
    rt = Runtime.start(cfg)
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(0.5)
        daemon = Daemon(rt, Notifier(str(sock_path)))
        daemon.watchdog_tick()
        assert sock.recv(100) == b"WATCHDOG=1"
        # The database becomes unreachable: no more pings, so systemd restarts us.
        rt.engine.dispose()
        rt.engine = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
        daemon.watchdog_tick()
        with pytest.raises(TimeoutError):
            sock.recv(100)
        assert daemon.healthy() == (False, "database does not answer")
    rt.close()
