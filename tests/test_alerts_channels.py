from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from seedwatch.alerts.channels import (
    AppriseChannel,
    JsonlChannel,
    LogChannel,
    build_channel,
    build_channels,
)
from seedwatch.alerts.webhook import WebhookChannel, secret_key, sign
from seedwatch.config.model import ChannelConfig, HttpConfig, Location
from seedwatch.errors import ConfigError, DeliveryError
from seedwatch.types import AlertMessage

LOOPBACK = HttpConfig(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),), deadline=5.0)
HOSTILE_TITLE = (
    "Chiefs <b>meet</b>\r\nBcc: victim@example.org%0d%0aX-Evil: 1&#13;&#10;Y: 2\u2028end"
)


def make_msg(**kw: Any) -> AlertMessage:
    base = AlertMessage(
        id="alrt-7f3a",
        rule="cis-security",
        channel="test",
        title="CIS security chiefs meet in Ashgabat",
        url="https://example.org/news/1?x=1&y=2",
        feed="nCa News",
        published=datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
        created=datetime(2026, 11, 28, 9, 31, tzinfo=UTC),
        score=0.73,
        topic="security",
        terms=("CIS",),
        snippet="Heads of CIS security services met on Friday.",
        nearest_seed="nca-cis-chiefs",
        story_id=42,
        also_reported_by=("TASS",),
    )
    return replace(base, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- JSONL and log -------------------------------------------------------------------------


def test_jsonl_appends_one_line_per_alert_with_the_id(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "alerts.jsonl"
    ch = build_channel(ChannelConfig(name="file", url=f"jsonl://{path}"), LOOPBACK)
    assert isinstance(ch, JsonlChannel)
    ch.send(make_msg(id="a1", title="line\nbreak"))
    ch.send(make_msg(id="a2"))
    ch.send(make_msg(id="a1"))  # a repeat (at least once) carries the same id
    lines = path.read_text("utf-8").splitlines()
    assert len(lines) == 3
    rows = [json.loads(ln) for ln in lines]
    assert [r["id"] for r in rows] == ["a1", "a2", "a1"]
    assert rows[0]["title"] == "line\nbreak"
    assert (
        rows[1]["rule"] == "cis-security" and rows[1]["url"] == "https://example.org/news/1?x=1&y=2"
    )
    assert path.stat().st_mode & 0o077 == 0


def test_jsonl_lines_stay_whole_with_concurrent_senders(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    chans = [JsonlChannel("a", path), JsonlChannel("b", path)]
    big = "x" * 20000

    def run(ch: JsonlChannel, n: int) -> None:
        for i in range(25):
            ch.send(make_msg(id=f"{n}-{i}", snippet=big))

    threads = [threading.Thread(target=run, args=(c, n)) for n, c in enumerate(chans)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = sorted(json.loads(ln)["id"] for ln in path.read_text("utf-8").splitlines())
    assert ids == sorted(f"{n}-{i}" for n in range(2) for i in range(25))


def test_jsonl_unwritable_path_is_a_retryable_delivery_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    ch = JsonlChannel("file", blocker / "alerts.jsonl")
    with pytest.raises(DeliveryError) as info:
        ch.send(make_msg())
    assert not info.value.permanent and info.value.channel == "file"


@pytest.mark.parametrize("url", ["jsonl://relative.jsonl", "jsonl://host/abs.jsonl", "jsonl:///"])
def test_jsonl_needs_an_absolute_path(url: str) -> None:
    cfg = ChannelConfig(name="file", url=url, location=Location("/etc/seedwatch.toml", 12))
    with pytest.raises(ConfigError) as info:
        build_channel(cfg, LOOPBACK)
    assert info.value.key == "channel.file.url"
    assert "/etc/seedwatch.toml:12" in str(info.value)


def test_log_channel_logs_one_line_at_warning_with_fixed_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ch = build_channel(ChannelConfig(name="journal", url="log://"), LOOPBACK)
    assert isinstance(ch, LogChannel)
    with caplog.at_level(logging.WARNING, logger="seedwatch.alerts.log"):
        ch.send(make_msg(title=HOSTILE_TITLE))
    [rec] = [r for r in caplog.records if r.name == "seedwatch.alerts.log"]
    assert rec.levelno == logging.WARNING
    assert rec.__dict__["alert"] == "alrt-7f3a"
    assert rec.__dict__["rule"] == "cis-security"
    assert rec.__dict__["channel"] == "journal"
    text = rec.getMessage()
    assert "\n" not in text and "\r" not in text and "\u2028" not in text
    assert "id=alrt-7f3a" in text


def test_build_channels_rejects_duplicates() -> None:
    cfgs = [ChannelConfig(name="x", url="log://"), ChannelConfig(name="x", url="log://")]
    with pytest.raises(ConfigError):
        build_channels(cfgs, LOOPBACK)
    built = build_channels([ChannelConfig(name="x", url="log://")], LOOPBACK)
    assert list(built) == ["x"]


# --- Apprise -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["bogus://user:SECRETPW@host/x", "tgram://SECRETTOKEN/", "not a url SECRETTOKEN"]
)
def test_unknown_apprise_url_names_the_key_not_the_url(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as info:
        build_channel(ChannelConfig(name="chat", url=url), LOOPBACK)
    assert info.value.key == "channel.chat.url"
    assert "SECRET" not in str(info.value)
    assert "SECRET" not in caplog.text


def test_webhook_without_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        build_channel(ChannelConfig(name="hook", url="webhook+https://example.org/h"), LOOPBACK)
    assert info.value.key == "channel.hook.secret"


@dataclass
class Mailbox:
    messages: list[bytes] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(bytes(envelope.original_content or envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield box, port
    finally:
        ctl.stop()


def test_real_smtp_one_subject_for_a_hostile_title(smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    url = f"mailto://127.0.0.1:{port}?from=seedwatch@example.org&to=analyst@example.org"
    ch = build_channel(ChannelConfig(name="mail", url=url), LOOPBACK)
    assert isinstance(ch, AppriseChannel)
    ch.send(make_msg(title=HOSTILE_TITLE, channel="mail"))

    [raw] = box.messages
    assert box.envelopes[0][1] == ["analyst@example.org"]
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert len(mail.get_all("Subject") or []) == 1
    assert mail["X-Seedwatch-Alert-Id"] == "alrt-7f3a"
    header_block = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    header_names = [
        ln.split(b":", 1)[0].strip().lower()
        for ln in header_block.splitlines()
        if ln and not ln[:1].isspace()
    ]
    assert header_names.count(b"subject") == 1
    assert b"x-evil" not in header_names and b"y" not in header_names
    assert header_names.count(b"bcc") == 0
    subj = str(mail["Subject"])
    assert subj.startswith("[seedwatch] cis-security: Chiefs <b>meet</b> Bcc: victim@example.org")
    assert "\n" not in subj and "\r" not in subj

    html_part = mail.get_body(preferencelist=("html",))
    assert html_part is not None
    body = html_part.get_content()
    assert "cis-security" in body
    assert 'href="https://example.org/news/1?x=1&amp;y=2"' in body
    assert "Chiefs &lt;b&gt;meet&lt;/b&gt;" in body and "<b>meet</b>" not in body
    assert "<mark>CIS</mark>" in body
    assert "alrt-7f3a" in body


def test_smtp_down_is_a_retryable_error_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens here
    url = f"mailto://user:SECRETPW@127.0.0.1:{port}?from=a@example.org&to=b@example.org"
    ch = build_channel(ChannelConfig(name="mail", url=url), LOOPBACK)
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as info:
        ch.send(make_msg())
    assert not info.value.permanent
    assert "SECRETPW" not in str(info.value) and "SECRETPW" not in caplog.text
    assert "SECRETPW" not in repr(ch)


# --- signed webhook --------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records requests and answers as told."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.status = 204
        self.reply_headers: dict[str, str] = {}
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                outer.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                if outer.delay:
                    time.sleep(outer.delay)
                self.send_response(outer.status)
                for k, v in outer.reply_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"webhook+http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rcv = Receiver()
    rcv.thread.start()
    try:
        yield rcv
    finally:
        rcv.server.shutdown()
        rcv.server.server_close()


SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def verify(req: Received, secret: str) -> bool:
    """The receiver's side of Standard Webhooks, written from the spec, not from our code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{req.headers['webhook-id']}.{req.headers['webhook-timestamp']}.".encode() + req.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.split(",", 1) for s in req.headers["webhook-signature"].split(" ")]
    return any(v == "v1" and hmac.compare_digest(sig, expected) for v, sig in given)


def test_webhook_posts_signed_standard_webhook(receiver: Receiver) -> None:
    url = receiver.url("/hooks/SECRETPATH?token=SECRETTOKEN")
    cfg = ChannelConfig(name="hook", url=url, secret=SECRET)
    ch = build_channel(cfg, LOOPBACK)
    assert isinstance(ch, WebhookChannel)
    before = int(time.time())
    ch.send(make_msg(title=HOSTILE_TITLE))
    [req] = receiver.requests
    assert req.path == "/hooks/SECRETPATH?token=SECRETTOKEN"
    assert req.headers["webhook-id"] == "alrt-7f3a"
    assert before <= int(req.headers["webhook-timestamp"]) <= int(time.time())
    assert req.headers["content-type"] == "application/json"
    assert verify(req, SECRET)
    assert not verify(req, "whsec_" + base64.b64encode(b"another key").decode())
    payload = json.loads(req.body)
    assert payload["type"] == "seedwatch.alert"
    assert payload["data"]["id"] == "alrt-7f3a"
    assert payload["data"]["title"] == HOSTILE_TITLE  # JSON is the escaping
    assert "\n" not in payload["data"]["subject"]
    assert "SECRET" not in repr(ch)


def test_webhook_plain_secret_is_used_as_utf8_bytes(receiver: Receiver) -> None:
    ch = WebhookChannel(
        "hook", receiver.url(), "plain-secret", LOOPBACK, clock=lambda: 1_700_000_000
    )
    ch.send(make_msg())
    [req] = receiver.requests
    assert req.headers["webhook-timestamp"] == "1700000000"
    key = b"plain-secret"
    assert req.headers["webhook-signature"] == sign(key, "alrt-7f3a", 1_700_000_000, req.body)
    assert secret_key("plain-secret") == key


def test_webhook_3xx_is_a_failure_and_not_followed(receiver: Receiver) -> None:
    receiver.status = 302
    receiver.reply_headers = {"Location": f"http://127.0.0.1:{receiver.port}/elsewhere"}
    ch = WebhookChannel("hook", receiver.url(), SECRET, LOOPBACK)
    with pytest.raises(DeliveryError) as info:
        ch.send(make_msg())
    assert "302" in info.value.message
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_webhook_500_with_retry_after_is_retryable(receiver: Receiver) -> None:
    receiver.status = 503
    receiver.reply_headers = {"Retry-After": "120"}
    ch = WebhookChannel("hook", receiver.url(), SECRET, LOOPBACK)
    with pytest.raises(DeliveryError) as info:
        ch.send(make_msg())
    assert info.value.retry_after == 120.0 and not info.value.permanent


def test_webhook_429_with_http_date(receiver: Receiver) -> None:
    receiver.status = 429
    receiver.reply_headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    ch = WebhookChannel("hook", receiver.url(), SECRET, LOOPBACK, clock=lambda: 1445412420.0)
    with pytest.raises(DeliveryError) as info:
        ch.send(make_msg())
    assert info.value.retry_after == 60.0 and not info.value.permanent


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (404, True), (408, False)])
def test_webhook_4xx_permanence(receiver: Receiver, status: int, permanent: bool) -> None:
    receiver.status = status
    ch = WebhookChannel("hook", receiver.url(), SECRET, LOOPBACK)
    with pytest.raises(DeliveryError) as info:
        ch.send(make_msg())
    assert info.value.permanent is permanent


def test_webhook_ssrf_guard_refuses_loopback_by_default(receiver: Receiver) -> None:
    ch = WebhookChannel("hook", receiver.url(), SECRET, HttpConfig())
    with pytest.raises(DeliveryError) as info:
        ch.send(make_msg())
    assert info.value.permanent
    assert receiver.requests == []


def test_webhook_deadline_bounds_a_slow_receiver(receiver: Receiver) -> None:
    receiver.delay = 5.0
    http = replace(LOOPBACK, deadline=0.5, connect_timeout=0.5)
    ch = WebhookChannel("hook", receiver.url(), SECRET, http)
    with pytest.raises(DeliveryError) as info:
        ch.send(make_msg())
    assert not info.value.permanent


def test_webhook_connection_error_hides_the_url(caplog: pytest.LogCaptureFixture) -> None:
    url = f"webhook+http://127.0.0.1:{free_port()}/h?token=SECRETTOKEN"
    ch = build_channel(ChannelConfig(name="hook", url=url, secret=SECRET), LOOPBACK)
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as info:
        ch.send(make_msg())
    assert not info.value.permanent
    assert "SECRETTOKEN" not in str(info.value) and "SECRETTOKEN" not in caplog.text
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_apprise_json_service_gets_the_alert_id_header(receiver: Receiver) -> None:
    url = f"json://127.0.0.1:{receiver.port}/notify"
    ch = build_channel(ChannelConfig(name="api", url=url), LOOPBACK)
    assert isinstance(ch, AppriseChannel)
    ch.send(make_msg(id="first-id"))
    ch.send(make_msg(id="second-id", title="Second <i>one</i>"))
    assert [r.headers.get("x-seedwatch-alert-id") for r in receiver.requests] == [
        "first-id",
        "second-id",
    ]
    body = json.loads(receiver.requests[1].body)
    assert body["title"] == "[seedwatch] cis-security: Second <i>one</i>"
    assert "second-id" in body["message"]
