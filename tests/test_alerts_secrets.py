"""Channel secrets never reach output, logs, the database or alerts; dead alerts can be retried.

Runs the real `seedwatch` command (poll, status, check, alerts, alerts --retry) against a
config whose channels carry a password, a URL token and a webhook signing secret, with a
local webhook receiver that first refuses (400: the alert is dead at once) and then accepts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.daemon import Rule, read_jsonl, run_cli, write_config
from tests.support.feedserver import FeedServer, rss

pytestmark = pytest.mark.slow

PASSWORD = "Pw-9f3e1c77aa"
TOKEN = "tok-5b2d8e19cc"
SIGNING = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4OTA="
SECRETS = (PASSWORD, TOKEN, SIGNING, SIGNING.removeprefix("whsec_"))


class Receiver:
    def __init__(self) -> None:
        self.status = 400
        self.got: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.got.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_secrets_stay_out_of_everything_and_dead_alerts_can_be_retried(
    tmp_path: Path, feed_server: FeedServer, receiver: Receiver
) -> None:
    feed_server.add("/a.xml", body=rss([{
        "title": "CSTO security chiefs meet in Bishkek",
        "link": "http://news.example.org/csto/1",
        "guid": "csto-1",
        "description": "Heads of the security services of the CSTO met on Friday.",
    }]))  # fmt: skip
    # A closed port for the Apprise channel: it fails (and retries later) with a password and
    # a token in its URL.
    extra = f"""
[channel.hook]
url = "webhook+http://127.0.0.1:{receiver.port}/in?token={TOKEN}"
secret = "{SIGNING}"

[channel.chat]
url = "json://bob:{PASSWORD}@127.0.0.1:9/{TOKEN}"
"""
    cfg = write_config(
        tmp_path,
        [("Wire", feed_server.url("/a.xml"))],
        [Rule("csto", "CSTO", channels=("jsonl", "hook", "chat"))],
        extra=extra,
    )
    outputs: list[str] = []

    def cli(*args: str) -> str:
        done = run_cli(*args, config=cfg)
        outputs.extend([done.stdout, done.stderr])
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    cli("check")
    cli("poll")
    cli("status")
    listing = cli("alerts", "--json")
    rows = [json.loads(ln) for ln in listing.splitlines() if ln.strip()]
    by_channel = {r["channel"]: r for r in rows if r.get("kind", "match") == "match"}
    assert by_channel["jsonl"]["status"] == "sent"
    assert by_channel["hook"]["status"] == "dead"  # 400 is permanent
    assert by_channel["chat"]["status"] == "pending" and by_channel["chat"]["attempts"] == 1
    assert len(receiver.got) == 1

    # The operator hears of the dead alert (delivered on the next delivery tick).
    cli("poll")
    notices = read_jsonl(tmp_path / "operator.jsonl")
    assert any(by_channel["hook"]["id"] in str(n.get("snippet", "")) for n in notices), notices

    # Retry by the 12-character prefix `seedwatch alerts` shows; the receiver now accepts.
    receiver.status = 204
    dead_id = str(by_channel["hook"]["id"])
    assert "queued for retry" in cli("alerts", "--retry", dead_id[:12])
    cli("alerts", "--retry", str(by_channel["chat"]["id"]))  # a failed one, too
    cli("poll")
    assert receiver.got[-1]["webhook-id"] == dead_id  # the same stable id
    rows = [json.loads(ln) for ln in cli("alerts", "--json").splitlines() if ln.strip()]
    assert {r["id"]: r["status"] for r in rows}[dead_id] == "sent"
    unknown = run_cli("alerts", "--retry", "no-such-alert", config=cfg)
    assert unknown.returncode == 1
    cli("alerts")

    # Everything seedwatch wrote: the database (and its WAL), the JSONL channels.
    stores = [p for p in tmp_path.iterdir() if p.is_file() and p.suffix not in (".toml",)]
    assert any(p.name.startswith("seedwatch.db") for p in stores)
    blobs = [*outputs, *(p.read_bytes().decode("utf-8", "replace") for p in stores)]
    for secret in SECRETS:
        for blob in blobs:
            assert secret not in blob
    # The failure was recorded, just without the secret: the test would pass vacuously if
    # nothing about the channels had been written anywhere.
    assert any("chat" in blob for blob in outputs)
