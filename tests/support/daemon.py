"""Write a throw-away config and run `seedwatch` as a real subprocess against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
EXE = [sys.executable, "-m", "seedwatch"]


@dataclass
class Rule:
    name: str
    query: str
    channels: Sequence[str] = ("jsonl",)
    extra: str = ""

    def toml(self) -> str:
        chans = ", ".join(f'"{c}"' for c in self.channels)
        return (f"[[rule]]\nname = \"{self.name}\"\nquery = '{self.query}'\n"
                f"channels = [{chans}]\n{self.extra}\n")


def write_config(
    tmp: Path,
    feeds: Sequence[tuple[str, str]],
    rules: Sequence[Rule],
    *,
    storage_url: str | None = None,
    extra: str = "",
    schedule: str = "",
) -> Path:
    """A config for tests: loopback allowed, second-scale ticks, a JSONL channel."""
    feed_tables = "\n".join(
        f'[[feed]]\nurl = "{url}"\nname = "{name}"\ninterval = "1s"\n' for name, url in feeds
    )
    storage = storage_url or f"sqlite:///{tmp / 'seedwatch.db'}"
    cfg = tmp / "seedwatch.toml"
    cfg.write_text(
        f"""\
data_dir = "{tmp}"
operator_channel = "ops"

[storage]
url = "{storage}"

[http]
allow_networks = ["127.0.0.0/8"]
host_gap = 0
deadline = 5
connect_timeout = 2

[schedule]
interval = "1s"
min_interval = "1s"
poll_tick = "0.5s"
deliver_tick = "0.5s"
reload_tick = "0.5s"
lease = "20s"
{schedule}

[classifier]
seeds = "{SEEDS}"

[channel.jsonl]
url = "jsonl://{tmp / 'alerts.jsonl'}"

[channel.ops]
url = "jsonl://{tmp / 'operator.jsonl'}"

{extra}

{feed_tables}
""",
        encoding="utf-8",
    )
    write_watchlist(tmp, rules)
    return cfg


def write_watchlist(tmp: Path, rules: Sequence[Rule]) -> None:
    path = tmp / "watchlist.toml"
    text = "\n".join(r.toml() for r in rules)
    # Write then rename: the daemon must never read a half-written file.
    part = path.with_suffix(".part")
    part.write_text(text, encoding="utf-8")
    os.replace(part, path)


def read_jsonl(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class DaemonProcess:
    config: Path
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def start(self) -> DaemonProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(
            [*EXE, "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def log(self) -> str:
        return "\n".join(self.lines)

    def saw(self, text: str) -> bool:
        return any(text in ln for ln in self.lines)

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def run_cli(*args: str, config: Path | None = None, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [*EXE, *args]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
