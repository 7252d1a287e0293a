"""Digest periods, quiet hours and the per-channel rate limit, over a real SQLite outbox."""

from __future__ import annotations

import ipaddress
import json
import random
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from seedwatch.alerts.channels import Channel, JsonlChannel, build_channel
from seedwatch.alerts.deliver import DeliveryReport, deliver_due
from seedwatch.alerts.schedule import (
    digest_due,
    digest_rule_names,
    not_before_for,
    quiet_end,
)
from seedwatch.config.model import ChannelConfig, FeedConfig, HttpConfig, RuleConfig
from seedwatch.storage import queries
from seedwatch.storage.db import make_sessionmaker, open_database
from seedwatch.types import Item, Match, ProcessedItem, Score

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LOOPBACK = HttpConfig(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),), deadline=5.0)

HOURLY = RuleConfig(name="hourly", query="CIS", channels=("file",), digest=3600.0)
NIGHT = RuleConfig(name="night", query="CIS", channels=("file",), quiet_hours=(time(22), time(6)))
NOW_RULE = RuleConfig(name="now", query="CIS", channels=("file",))


# --- pure: when is an alert due ------------------------------------------------------------


def test_digest_periods_are_aligned_so_one_period_shares_one_due_time() -> None:
    assert digest_due(NOW + timedelta(minutes=1), 3600) == NOW + timedelta(hours=1)
    assert digest_due(NOW + timedelta(minutes=59), 3600) == NOW + timedelta(hours=1)
    assert digest_due(NOW, 3600) == NOW + timedelta(hours=1)  # a boundary starts a period
    assert digest_due(NOW + timedelta(minutes=7), 900) == NOW + timedelta(minutes=15)
    assert digest_due(NOW, 0) == NOW


@pytest.mark.parametrize(
    ("at", "quiet", "due"),
    [
        ("2026-11-28T23:00", (time(22), time(6)), "2026-11-29T06:00"),  # across midnight
        ("2026-11-29T05:59", (time(22), time(6)), "2026-11-29T06:00"),
        ("2026-11-29T06:00", (time(22), time(6)), "2026-11-29T06:00"),  # end is not quiet
        ("2026-11-28T21:59", (time(22), time(6)), "2026-11-28T21:59"),
        ("2026-11-28T13:30", (time(13), time(14)), "2026-11-28T14:00"),
        ("2026-11-28T14:30", (time(13), time(14)), "2026-11-28T14:30"),
        ("2026-11-28T14:30", (time(9), time(9)), "2026-11-28T14:30"),  # empty window
    ],
)
def test_quiet_hours_hold_until_they_end(at: str, quiet: tuple[time, time], due: str) -> None:
    when = datetime.fromisoformat(at).replace(tzinfo=UTC)
    assert quiet_end(when, quiet) == datetime.fromisoformat(due).replace(tzinfo=UTC)


def test_not_before_combines_digest_and_quiet_hours() -> None:
    both = RuleConfig(
        name="both", query="x", channels=("c",), digest=3600.0, quiet_hours=(time(22), time(6))
    )
    at = datetime(2026, 11, 28, 21, 30, tzinfo=UTC)
    nb = not_before_for([both, NOW_RULE, HOURLY], at)
    # The period ends at 22:00, inside quiet hours: it waits for 06:00.
    assert nb("both", "c") == datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
    assert nb("now", "file") == at
    assert nb("hourly", "file") == datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    assert nb("renamed-meanwhile", "file") == at
    assert digest_rule_names([both, NOW_RULE, HOURLY]) == {"both", "hourly"}


# --- the outbox ------------------------------------------------------------------------------


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = open_database(f"sqlite:///{tmp_path / 'seedwatch.db'}")
    maker = make_sessionmaker(engine)
    with maker.begin() as s:
        queries.add_feeds(s, [FeedConfig(url="https://example.org/feed", name="nCa News")], NOW)
    return maker


def store(
    sessions: sessionmaker[Session], n: int, rule: RuleConfig, now: datetime, rules: list[Any]
) -> str:
    with sessions() as s:
        [row] = queries.feed_status(s, now)
    item = Item(
        feed_id=row.id,
        key=f"k{n}",
        guid=f"g{n}",
        url=f"https://example.org/news/{n}",
        title=f"Story {n}: CIS security chiefs meet in city {n}",
        text=f"Heads of CIS security services met for the {n}th time; number {n * 7919}.",
        published=now,
        content_hash=f"{n:064x}",
    )
    processed = ProcessedItem(
        item=item,
        score=Score(score=0.8, topic="security", relevant=True, nearest_seed="nca-cis"),
        matches=(Match(rule=rule.name, terms=("CIS",), channels=rule.channels),),
    )
    with sessions() as s:
        outcome = queries.store_batch(
            s, item.feed_id, [processed], now=now, not_before=not_before_for(rules, now)
        )
    [aid] = outcome.alerts
    return aid


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text("utf-8").splitlines()]


def delivered_ids(got: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for ln in got:
        if ln["kind"] == "digest":
            out += [e["id"] for e in ln["entries"]]
        else:
            out.append(ln["id"])
    return out


def run(
    sessions: sessionmaker[Session], channels: dict[str, Channel], now: datetime, rules: list[Any]
) -> DeliveryReport:
    return deliver_due(
        sessions,
        channels,
        now=now,
        owner="t",
        lease=300,
        rng=random.Random(1),
        digest_rules=digest_rule_names(rules),
    )


def test_digest_rule_holds_alerts_to_the_period_end_then_sends_one_message(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    out = tmp_path / "a.jsonl"
    chans: dict[str, Channel] = {"file": JsonlChannel("file", out)}
    rules = [HOURLY, NOW_RULE]
    held = [store(sessions, i, HOURLY, NOW + timedelta(minutes=10 * i), rules) for i in (1, 2)]
    urgent = store(sessions, 3, NOW_RULE, NOW + timedelta(minutes=25), rules)
    assert run(sessions, chans, NOW + timedelta(minutes=30), rules) == DeliveryReport(sent=1)
    assert delivered_ids(lines(out)) == [urgent]
    assert run(sessions, chans, NOW + timedelta(minutes=59), rules) == DeliveryReport()
    assert run(sessions, chans, NOW + timedelta(minutes=60), rules) == DeliveryReport(sent=2)
    got = lines(out)
    assert [ln["kind"] for ln in got] == ["match", "digest"]
    assert sorted(delivered_ids(got[1:])) == sorted(held)
    entry = got[1]["entries"][0]
    assert entry["nearest_seed"] == "nca-cis" and entry["story_id"] is not None


def test_alerts_held_by_quiet_hours_go_out_as_one_digest_when_they_end(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    out = tmp_path / "a.jsonl"
    chans: dict[str, Channel] = {"file": JsonlChannel("file", out)}
    rules = [NIGHT]
    evening = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    day = store(sessions, 1, NIGHT, evening, rules)
    assert run(sessions, chans, evening, rules) == DeliveryReport(sent=1)
    night = [
        store(sessions, 10 + i, NIGHT, evening + timedelta(hours=2 + i), rules) for i in range(3)
    ]
    assert run(sessions, chans, evening + timedelta(hours=5), rules) == DeliveryReport()
    morning = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
    assert run(sessions, chans, morning, rules) == DeliveryReport(sent=3)
    got = lines(out)
    assert [ln["kind"] for ln in got] == ["match", "digest"]
    assert got[0]["id"] == day
    assert sorted(delivered_ids(got[1:])) == sorted(night)


def test_rate_limit_survives_a_restart_and_overflow_waits_for_the_next_digest(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    out = tmp_path / "a.jsonl"
    rules = [NOW_RULE]

    def channels() -> dict[str, Channel]:
        # Built afresh for every tick, as after a restart: no count survives in memory.
        cfg = ChannelConfig(name="file", url=f"jsonl://{out}", rate_limit=2)
        return {"file": build_channel(cfg, LOOPBACK)}

    first = [store(sessions, i, NOW_RULE, NOW, rules) for i in range(5)]
    assert run(sessions, channels(), NOW, rules) == DeliveryReport(sent=5)
    assert len(lines(out)) == 2  # the limit: one alone, four in a digest
    later_at = NOW + timedelta(minutes=10)
    later = [store(sessions, 20 + i, NOW_RULE, later_at, rules) for i in range(3)]
    assert run(sessions, channels(), later_at, rules) == DeliveryReport(deferred=3)
    with sessions() as s:
        rows = {r.id: r for r in queries.list_alerts(s, limit=100)}
    assert all(rows[a].status == "pending" and rows[a].attempts == 0 for a in later)
    # Handed back, not spinning on the lease: nothing is claimed until the hour has room.
    assert run(sessions, channels(), NOW + timedelta(minutes=30), rules) == DeliveryReport()
    assert run(sessions, channels(), NOW + timedelta(minutes=60), rules) == DeliveryReport(sent=3)
    got = lines(out)
    assert len(got) == 3 and got[2]["kind"] == "digest"  # held alerts travel together
    assert sorted(delivered_ids(got)) == sorted(first + later)  # none dropped, none twice
