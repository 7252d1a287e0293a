"""systemd's notify protocol (READY, WATCHDOG, STOPPING, STATUS, EXTEND_TIMEOUT_USEC) without
a dependency.

The protocol is one datagram to the socket named in $NOTIFY_SOCKET; when the variable is
absent (not under systemd, or in tests) every call is a no-op.
See sd_notify(3).
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        self._address = address if address is not None else os.environ.get("NOTIFY_SOCKET")

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def watchdog_interval(self) -> float | None:
        """Half of $WATCHDOG_USEC in seconds (systemd's advice), or None when not asked for."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 2_000_000
        except ValueError:
            return None

    def send(self, *fields: str) -> bool:
        if not self._address:
            return False
        addr = self._address
        if addr.startswith("@"):  # abstract namespace socket
            addr = "\0" + addr[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(addr)
                sock.sendall("\n".join(fields).encode())
        except OSError:
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", f"STATUS={status}") if status else self.send("READY=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def extend_timeout(self, seconds: float, status: str = "") -> bool:
        """Ask for ``seconds`` more before the start (or stop) times out: a long start-up
        that is making progress says so instead of being killed at TimeoutStartSec."""
        fields = [f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}"]
        return self.send(*fields, f"STATUS={status}") if status else self.send(*fields)
