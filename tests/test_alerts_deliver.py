from __future__ import annotations

import base64
import ipaddress
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from seedwatch.alerts.backoff import MAX_RETRY_AFTER, next_attempt
from seedwatch.alerts.channels import Channel, JsonlChannel
from seedwatch.alerts.deliver import DeliveryReport, attempt_number, deliver_due
from seedwatch.alerts.webhook import WebhookChannel
from seedwatch.config.model import FeedConfig, HttpConfig
from seedwatch.errors import DeliveryError
from seedwatch.storage import queries
from seedwatch.storage.db import make_sessionmaker, open_database
from seedwatch.types import AlertMessage, Item, Match, ProcessedItem, Score

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LOOPBACK = HttpConfig(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),), deadline=5.0)
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


# --- a real SQLite outbox ------------------------------------------------------------------


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = open_database(f"sqlite:///{tmp_path / 'seedwatch.db'}")
    maker = make_sessionmaker(engine)
    with maker.begin() as s:
        queries.add_feeds(s, [FeedConfig(url="https://example.org/feed", name="nCa News")], NOW)
    return maker


def feed_id(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        [row] = queries.feed_status(s, NOW)
    return row.id


def store_match(
    sessions: sessionmaker[Session], n: int, channels: tuple[str, ...], rule: str = "cis"
) -> list[str]:
    item = Item(
        feed_id=feed_id(sessions),
        key=f"k{n}",
        guid=f"g{n}",
        url=f"https://example.org/news/{n}",
        title=f"CIS security chiefs meet, part {n}",
        text=f"Heads of CIS security services met for the {n}th time.",
        published=NOW - timedelta(hours=1),
        content_hash=f"{n:064x}",
    )
    processed = ProcessedItem(
        item=item,
        score=Score(score=0.8, topic="security", relevant=True, nearest_seed="nca"),
        matches=(Match(rule=rule, terms=("CIS",), channels=channels),),
    )
    with sessions() as s:
        outcome = queries.store_batch(s, item.feed_id, [processed], now=NOW)
    return list(outcome.alerts)


def alert_rows(sessions: sessionmaker[Session]) -> dict[str, queries.AlertRow]:
    with sessions() as s:
        return {r.id: r for r in queries.list_alerts(s, limit=1000)}


def aware(when: datetime | None) -> datetime:
    assert when is not None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# --- a webhook receiver that can be told to fail -------------------------------------------


@dataclass
class Hit:
    alert_id: str
    body: dict[str, Any]


class Receiver:
    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.statuses: list[int] = []  # answers to give in order; then 204
        self.retry_after: str | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits.append(Hit(self.headers["webhook-id"], json.loads(body)))
                status = outer.statuses.pop(0) if outer.statuses else 204
                self.send_response(status)
                if outer.retry_after and status >= 500:
                    self.send_header("Retry-After", outer.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"webhook+http://127.0.0.1:{self.server.server_address[1]}/hook"

    def channel(self, name: str = "hook") -> WebhookChannel:
        return WebhookChannel(name, self.url, SECRET, LOOPBACK)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rcv = Receiver()
    thread = threading.Thread(target=rcv.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rcv
    finally:
        rcv.server.shutdown()
        rcv.server.server_close()


def tick(
    sessions: sessionmaker[Session],
    channels: dict[str, Channel],
    now: datetime,
    *,
    operator: str | None = None,
    seed: int = 1,
) -> DeliveryReport:
    return deliver_due(
        sessions,
        channels,
        now=now,
        owner="test-daemon",
        lease=300,
        rng=random.Random(seed),
        operator_channel=operator,
    )


# --- delivery end to end -------------------------------------------------------------------


def test_sends_due_alerts_and_marks_them_sent(
    sessions: sessionmaker[Session], receiver: Receiver, tmp_path: Path
) -> None:
    ids = store_match(sessions, 1, ("hook", "file"))
    assert len(ids) == 2
    jsonl = tmp_path / "alerts.jsonl"
    channels: dict[str, Channel] = {"hook": receiver.channel(), "file": JsonlChannel("file", jsonl)}
    report = tick(sessions, channels, NOW)
    assert report == DeliveryReport(sent=2)
    rows = alert_rows(sessions)
    assert {r.status for r in rows.values()} == {"sent"}
    assert all(r.attempts == 1 for r in rows.values())
    [hit] = receiver.hits
    [line] = jsonl.read_text("utf-8").splitlines()
    assert {hit.alert_id, json.loads(line)["id"]} == set(ids)
    assert hit.body["data"]["rule"] == "cis" and hit.body["data"]["feed"] == "nCa News"
    # Nothing is due any more: a second tick sends nothing.
    assert tick(sessions, channels, NOW + timedelta(hours=1)) == DeliveryReport()
    assert len(receiver.hits) == 1


def test_failure_then_success_carries_the_same_id(
    sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    [aid] = store_match(sessions, 2, ("hook",))
    receiver.statuses = [503]
    receiver.retry_after = "600"
    channels: dict[str, Channel] = {"hook": receiver.channel()}
    assert tick(sessions, channels, NOW) == DeliveryReport(failed=1)
    row = alert_rows(sessions)[aid]
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error is not None and "503" in row.last_error
    retry_at = aware(row.next_attempt_at)
    assert retry_at >= NOW + timedelta(seconds=600)  # Retry-After honoured
    # Not due before then.
    assert tick(sessions, channels, retry_at - timedelta(seconds=1)) == DeliveryReport()
    assert tick(sessions, channels, retry_at) == DeliveryReport(sent=1)
    assert [h.alert_id for h in receiver.hits] == [aid, aid]
    row = alert_rows(sessions)[aid]
    assert row.status == "sent" and row.attempts == 2


def test_dead_after_the_last_try_and_the_operator_is_told(
    sessions: sessionmaker[Session], receiver: Receiver, tmp_path: Path
) -> None:
    [aid] = store_match(sessions, 3, ("hook",))
    receiver.statuses = [500] * 100
    ops = tmp_path / "operator.jsonl"
    channels: dict[str, Channel] = {"hook": receiver.channel(), "ops": JsonlChannel("ops", ops)}
    now = NOW
    reports = []
    for _ in range(12):
        reports.append(tick(sessions, channels, now, operator="ops"))
        row = alert_rows(sessions)[aid]
        if row.status == "dead":
            break
        now = aware(row.next_attempt_at)
    assert [r.failed for r in reports] == [1] * 11 + [0]
    assert reports[-1].dead == 1
    assert len(receiver.hits) == 12 and {h.alert_id for h in receiver.hits} == {aid}
    assert now - NOW > timedelta(hours=5)  # spread over hours
    row = alert_rows(sessions)[aid]
    assert row.status == "dead" and row.attempts == 12
    # The operator alert was queued in the same transaction; the next tick delivers it.
    op_rows = [r for r in alert_rows(sessions).values() if r.kind == "operator"]
    assert len(op_rows) == 1 and op_rows[0].channel == "ops"
    assert tick(sessions, channels, now, operator="ops").sent == 1
    [line] = ops.read_text("utf-8").splitlines()
    notice = json.loads(line)
    assert notice["kind"] == "operator"
    assert aid in notice["title"] and aid in notice["snippet"]
    assert "hook" in notice["snippet"] and "500" in notice["snippet"]
    assert "127.0.0.1" not in line and SECRET not in line  # no endpoint, no secret


def test_permanent_failure_is_dead_at_once_without_operator_loop(
    sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    [aid] = store_match(sessions, 4, ("hook",))
    receiver.statuses = [404]
    channels: dict[str, Channel] = {"hook": receiver.channel()}
    # The operator channel is the failing one: nobody to tell, and no notice about a notice.
    assert tick(sessions, channels, NOW, operator="hook") == DeliveryReport(dead=1)
    rows = alert_rows(sessions)
    assert rows[aid].status == "dead" and rows[aid].attempts == 1
    assert [r for r in rows.values() if r.kind == "operator"] == []


class Exploding:
    name = "boom"

    def send(self, msg: AlertMessage) -> None:
        raise RuntimeError("bug with https://user:SECRET@example.org in it")


def test_one_channel_failing_never_stops_the_others(
    sessions: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_match(sessions, 5, ("boom", "file", "missing"))
    store_match(sessions, 6, ("boom", "file"))
    jsonl = tmp_path / "a.jsonl"
    channels: dict[str, Channel] = {"boom": Exploding(), "file": JsonlChannel("file", jsonl)}
    report = tick(sessions, channels, NOW)
    assert report == DeliveryReport(sent=2, failed=3)
    assert len(jsonl.read_text("utf-8").splitlines()) == 2
    by_channel = {(r.channel, r.status) for r in alert_rows(sessions).values()}
    assert by_channel == {("boom", "pending"), ("file", "sent"), ("missing", "pending")}
    assert "SECRET" not in caplog.text
    errors = {r.last_error for r in alert_rows(sessions).values() if r.status == "pending"}
    assert all(e and "SECRET" not in e for e in errors)


def test_a_crash_between_send_and_mark_resends_with_the_same_id(
    sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    [aid] = store_match(sessions, 7, ("hook",))
    # Another daemon claimed the alert, sent it, and died before marking it.
    with sessions() as s:
        [msg] = queries.claim_due_alerts(s, NOW, limit=10, owner="crashed", lease=300)
    receiver.channel().send(msg)
    channels: dict[str, Channel] = {"hook": receiver.channel()}
    assert tick(sessions, channels, NOW + timedelta(seconds=10)) == DeliveryReport()
    assert tick(sessions, channels, NOW + timedelta(seconds=301)) == DeliveryReport(sent=1)
    assert [h.alert_id for h in receiver.hits] == [aid, aid]
    assert alert_rows(sessions)[aid].status == "sent"


def test_attempt_number_reads_storage_extra() -> None:
    msg = AlertMessage(
        id="x", rule="r", channel="c", title="t", url=None, feed="f",
        published=NOW, created=NOW, score=0.0, topic="",
    )  # fmt: skip
    assert attempt_number(msg) == 1
    assert attempt_number(msg.__class__(**{**msg.__dict__, "extra": (("attempts", "4"),)})) == 5
    assert attempt_number(msg.__class__(**{**msg.__dict__, "extra": (("attempts", "x"),)})) == 1


def test_delivery_error_keeps_retry_after() -> None:
    err = DeliveryError("c", "status 503", retry_after=5.0)
    assert err.retry_after == 5.0 and not err.permanent


# --- backoff -------------------------------------------------------------------------------


def test_backoff_grows_is_bounded_and_stops() -> None:
    rng = random.Random(7)
    waits = []
    for attempt in range(1, 12):
        when = next_attempt(attempt, NOW, retry_after=None, rng=rng)
        assert when is not None
        waits.append((when - NOW).total_seconds())
    assert next_attempt(12, NOW, retry_after=None, rng=rng) is None
    assert next_attempt(40, NOW, retry_after=None, rng=rng) is None
    assert all(15 <= w <= 6 * 3600 for w in waits)
    # Equal jitter keeps each wait within [ceiling/2, ceiling], so every wait is at least
    # the one two attempts earlier: monotone up to jitter.
    assert all(waits[i + 2] >= waits[i] for i in range(len(waits) - 2))
    total = sum(waits)
    assert 5 * 3600 <= total <= 16 * 3600  # "over hours"


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(min_value=-3, max_value=200),
    retry_after=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_properties(attempt: int, retry_after: float | None, seed: int) -> None:
    when = next_attempt(attempt, NOW, retry_after=retry_after, rng=random.Random(seed))
    if attempt >= 12:
        assert when is None
        return
    assert when is not None
    wait = (when - NOW).total_seconds()
    assert 15 <= wait <= max(6 * 3600, MAX_RETRY_AFTER)
    if retry_after is not None and 0 < retry_after <= MAX_RETRY_AFTER:
        assert wait >= retry_after


def test_backoff_honours_retry_after_beyond_the_schedule() -> None:
    when = next_attempt(1, NOW, retry_after=7200, rng=random.Random(1))
    assert when is not None and when - NOW >= timedelta(seconds=7200)


def test_backoff_jitter_spreads_a_herd() -> None:
    rng = random.Random(3)
    times = {next_attempt(6, NOW, retry_after=None, rng=rng) for _ in range(50)}
    assert len(times) > 40


# --- digests and rate limits ---------------------------------------------------------------


def _msg(i: int, *, rule: str = "cis", kind: str = "match") -> AlertMessage:
    return AlertMessage(
        id=f"a{i}", rule=rule, channel="c", title=f"t{i}", url=None, feed="f",
        published=NOW, created=NOW, score=0.5, topic="", kind=kind,
    )  # fmt: skip


def test_plan_folds_digest_rules_and_overflow() -> None:
    from seedwatch.alerts.digest import plan

    msgs = [_msg(1), _msg(2, rule="daily"), _msg(3, rule="daily"), _msg(4)]
    singles, batch, held = plan(msgs, digest_rules=frozenset({"daily"}), budget=None)
    assert [m.id for m in singles] == ["a1", "a4"] and [m.id for m in batch] == ["a2", "a3"]
    assert held == []
    # A lone digest-rule alert goes alone.
    singles, batch, _ = plan(msgs[:2], digest_rules=frozenset({"daily"}), budget=None)
    assert [m.id for m in singles] == ["a1", "a2"] and batch == []
    # Budget 2 for 5 alerts: one alone (an operator notice first), the rest in one digest.
    msgs = [_msg(i) for i in range(4)] + [_msg(9, kind="operator")]
    singles, batch, held = plan(msgs, digest_rules=frozenset(), budget=2)
    assert [m.id for m in singles] == ["a9"] and len(batch) == 4 and held == []
    # No budget: everything is held, nothing dropped.
    singles, batch, held = plan(msgs, digest_rules=frozenset(), budget=0)
    assert singles == [] and batch == [] and len(held) == 5


def test_rate_limiter_slides_over_the_hour() -> None:
    from seedwatch.alerts.digest import RateLimiter

    lim = RateLimiter()
    assert lim.remaining("c", None, NOW) is None
    assert lim.remaining("c", 2, NOW) == 2
    lim.record("c", NOW)
    lim.record("c", NOW + timedelta(minutes=30))
    assert lim.remaining("c", 2, NOW + timedelta(minutes=59)) == 0
    assert lim.remaining("other", 2, NOW + timedelta(minutes=59)) == 2
    assert lim.remaining("c", 2, NOW + timedelta(minutes=60)) == 1
    assert lim.remaining("c", 2, NOW + timedelta(minutes=91)) == 2


def test_digest_rule_alerts_go_out_as_one_message(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    ids = [store_match(sessions, 20 + i, ("file",), rule="daily")[0] for i in range(3)]
    [other] = store_match(sessions, 30, ("file",), rule="urgent")
    jsonl = tmp_path / "a.jsonl"
    report = deliver_due(
        sessions, {"file": JsonlChannel("file", jsonl)}, now=NOW, owner="t", lease=300,
        rng=random.Random(1), digest_rules={"daily"},
    )  # fmt: skip
    assert report == DeliveryReport(sent=4)
    lines = [json.loads(ln) for ln in jsonl.read_text("utf-8").splitlines()]
    assert sorted(line["kind"] for line in lines) == ["digest", "match"]
    [digest] = [line for line in lines if line["kind"] == "digest"]
    assert sorted(e["id"] for e in digest["entries"]) == sorted(ids)
    assert [line["id"] for line in lines if line["kind"] == "match"] == [other]
    assert {r.status for r in alert_rows(sessions).values()} == {"sent"}


def test_rate_limit_overflow_is_folded_or_held_never_dropped(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    from seedwatch.alerts.channels import build_channel
    from seedwatch.alerts.digest import RateLimiter
    from seedwatch.config.model import ChannelConfig

    jsonl = tmp_path / "a.jsonl"
    ch = build_channel(ChannelConfig(name="file", url=f"jsonl://{jsonl}", rate_limit=2), LOOPBACK)
    channels: dict[str, Channel] = {"file": ch}
    limiter = RateLimiter()

    def run(now: datetime) -> DeliveryReport:
        return deliver_due(
            sessions, channels, now=now, owner="t", lease=300, rng=random.Random(1),
            limiter=limiter,
        )  # fmt: skip

    first = [store_match(sessions, 40 + i, ("file",))[0] for i in range(5)]
    assert run(NOW) == DeliveryReport(sent=5)
    lines = [json.loads(ln) for ln in jsonl.read_text("utf-8").splitlines()]
    assert len(lines) == 2  # the limit: one alone, four in a digest
    assert sorted(e["id"] for e in lines[1]["entries"]) == sorted(set(first) - {lines[0]["id"]})

    later = [store_match(sessions, 50 + i, ("file",))[0] for i in range(3)]
    assert run(NOW + timedelta(minutes=10)) == DeliveryReport(deferred=3)
    assert run(NOW + timedelta(minutes=16)) == DeliveryReport(deferred=3)  # lease ran out
    rows = alert_rows(sessions)
    assert all(rows[a].status == "pending" and rows[a].attempts == 0 for a in later)
    assert run(NOW + timedelta(minutes=61)) == DeliveryReport(sent=3)
    lines = [json.loads(ln) for ln in jsonl.read_text("utf-8").splitlines()]
    assert len(lines) == 4
    delivered = {e["id"] for ln in lines[2:] for e in ln.get("entries", [])} | {
        ln["id"] for ln in lines[2:] if ln["kind"] == "match"
    }
    assert delivered == set(later)
