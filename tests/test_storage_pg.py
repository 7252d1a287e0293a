"""Storage on the real PostgreSQL server at 127.0.0.1:5432 (user postgres, trust auth).

Each test gets a fresh database ``sw_test_<random>``, dropped afterwards. The core tests of
``test_storage.py`` run again here (the ``db_url`` fixture below overrides SQLite's), plus what
only PostgreSQL can show: concurrent claims with SKIP LOCKED and concurrent schema upgrades.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from seedwatch.config.model import FeedConfig
from seedwatch.storage import queries as q
from seedwatch.storage.db import (
    alembic_config,
    current_revision,
    make_sessionmaker,
    open_database,
)
from seedwatch.storage.models import ItemRecord, Story
from tests.support.pg import pg_database
from tests.test_storage import NOW, pitem, rule
from tests.test_storage import (
    test_a_writer_racing_between_read_and_write as test_a_writer_racing_between_read_and_write,
)
from tests.test_storage import (
    test_alike_new_stories_take_ids_in_item_order as test_alike_new_stories_take_ids_in_item_order,
)
from tests.test_storage import (
    test_claim_due_alerts_builds_the_message_and_leases as test_claim_due_alerts_builds_the_message_and_leases,  # noqa: E501
)
from tests.test_storage import (
    test_claim_due_feeds_leases_and_takeover as test_claim_due_feeds_leases_and_takeover,
)
from tests.test_storage import (
    test_cross_feed_same_url_joins_the_story as test_cross_feed_same_url_joins_the_story,
)
from tests.test_storage import (
    test_datetimes_come_back_aware_utc as test_datetimes_come_back_aware_utc,
)
from tests.test_storage import (
    test_feed_status_counts_items as test_feed_status_counts_items,
)
from tests.test_storage import (
    test_health_summary_and_story_index_rebuild as test_health_summary_and_story_index_rebuild,
)
from tests.test_storage import (
    test_list_items_search_newest_first as test_list_items_search_newest_first,
)
from tests.test_storage import (
    test_mark_failed_backs_off_then_dies_and_retry_revives as test_mark_failed_backs_off_then_dies_and_retry_revives,  # noqa: E501
)
from tests.test_storage import (
    test_naive_datetime_is_refused as test_naive_datetime_is_refused,
)
from tests.test_storage import (
    test_operator_alerts_are_deduplicated as test_operator_alerts_are_deduplicated,
)
from tests.test_storage import (
    test_poll_context_is_read_once_and_304_bookkeeping_is_one_update as test_poll_context_is_read_once_and_304_bookkeeping_is_one_update,  # noqa: E501
)
from tests.test_storage import (
    test_record_fetch_health_and_redirect as test_record_fetch_health_and_redirect,
)
from tests.test_storage import (
    test_release_dead_leases_frees_only_dead_local_owners as test_release_dead_leases_frees_only_dead_local_owners,  # noqa: E501
)
from tests.test_storage import (
    test_same_feed_duplicates_are_same_key_or_same_url_and_content as test_same_feed_duplicates_are_same_key_or_same_url_and_content,  # noqa: E501
)
from tests.test_storage import (
    test_short_content_is_not_matched_by_hash as test_short_content_is_not_matched_by_hash,
)
from tests.test_storage import (
    test_store_batch_new_duplicate_and_tombstone as test_store_batch_new_duplicate_and_tombstone,
)
from tests.test_storage import (
    test_store_batch_rolls_back_on_error as test_store_batch_rolls_back_on_error,
)
from tests.test_storage import (
    test_story_lookup_and_not_before as test_story_lookup_and_not_before,
)
from tests.test_storage import (
    test_story_window_bounds_exact_matching as test_story_window_bounds_exact_matching,
)
from tests.test_storage import (
    test_sync_config_feeds_upserts_retires_and_leaves_imports as test_sync_config_feeds_upserts_retires_and_leaves_imports,  # noqa: E501
)
from tests.test_storage import (
    test_two_items_of_a_story_make_one_alert_per_rule_and_channel as test_two_items_of_a_story_make_one_alert_per_rule_and_channel,  # noqa: E501
)
from tests.test_storage import (
    test_upgrade_from_empty_matches_the_models as test_upgrade_from_empty_matches_the_models,
)

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent

# The newest migration: what a fresh or upgraded database must be at.
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture
def db_url() -> Iterator[str]:
    with pg_database() as url:
        yield url


def test_plain_postgresql_url_uses_psycopg3(db_url: str) -> None:
    eng = open_database(db_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        assert eng.dialect.driver == "psycopg"
        assert current_revision(eng) == HEAD
    finally:
        eng.dispose()


def test_concurrent_upgrades_do_not_fail(db_url: str) -> None:
    """Three daemons starting at once on an empty database: one migrates, the others wait."""
    code = (
        "import sys\n"
        "from seedwatch.storage.db import open_database, current_revision\n"
        "e = open_database(sys.argv[1])\n"
        "print(current_revision(e))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == HEAD
    # and threads of one process too
    errors: list[BaseException] = []

    def start() -> None:
        try:
            open_database(db_url).dispose()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_two_threads_claiming_never_share_a_feed(db_url: str) -> None:
    eng = open_database(db_url)
    sm = make_sessionmaker(eng)
    try:
        with sm() as s:
            q.sync_config_feeds(
                s,
                [FeedConfig(url=f"http://f{i}.test/rss", name=f"f{i}") for i in range(200)],
                NOW,
                default_interval=900,
            )
            s.commit()
        got: dict[str, list[int]] = {"A": [], "B": []}
        barrier = threading.Barrier(2)

        def claim(owner: str) -> None:
            barrier.wait()
            with sm() as s:
                while batch := q.claim_due_feeds(s, NOW, limit=3, owner=owner, lease=600):
                    got[owner].extend(f.id for f in batch)

        threads = [threading.Thread(target=claim, args=(o,)) for o in got]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert set(got["A"]).isdisjoint(got["B"])
        assert len(got["A"]) + len(got["B"]) == 200
        assert len(set(got["A"]) | set(got["B"])) == 200
    finally:
        eng.dispose()


def test_claim_skips_rows_locked_by_another_daemon(db_url: str) -> None:
    """SKIP LOCKED: a claim neither waits for nor takes rows another transaction holds."""
    eng = open_database(db_url)
    sm = make_sessionmaker(eng)
    try:
        with sm() as s:
            q.sync_config_feeds(
                s,
                [FeedConfig(url=f"http://f{i}.test/rss", name=f"f{i}") for i in range(6)],
                NOW,
                default_interval=900,
            )
            s.commit()
        url = make_url(db_url)
        with psycopg.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname=url.database
        ) as other:
            held = [
                r[0]
                for r in other.execute(
                    "SELECT id FROM feeds ORDER BY id LIMIT 3 FOR UPDATE"
                ).fetchall()
            ]
            with sm() as s:
                s.execute(select(1))
                s.connection().exec_driver_sql("SET lock_timeout = '5s'")
                claimed = q.claim_due_feeds(s, NOW, limit=10, owner="B", lease=60)
            assert len(claimed) == 3
            assert {f.id for f in claimed}.isdisjoint(held)
            other.rollback()
        with sm() as s:
            rest = q.claim_due_feeds(s, NOW, limit=10, owner="C", lease=60)
        assert sorted(f.id for f in rest) == sorted(held)
    finally:
        eng.dispose()


def test_concurrent_writers_make_one_story_and_one_item(db_url: str) -> None:
    """Two daemons storing the same new URL at once: ON CONFLICT keeps one story, one item
    per (feed, key) and one alert per (rule, story, channel)."""
    eng = open_database(db_url)
    sm = make_sessionmaker(eng)
    try:
        with sm() as s:
            q.sync_config_feeds(
                s,
                [FeedConfig("http://a.test/rss", "a"), FeedConfig("http://b.test/rss", "b")],
                NOW,
                default_interval=900,
            )
            s.commit()
            ids = {r.name: r.id for r in q.feed_status(s, NOW)}
        rounds = 10
        errors: list[BaseException] = []
        barrier = threading.Barrier(3)

        def writer(feed: str) -> None:
            for n in range(rounds):
                barrier.wait()
                batch = [
                    pitem(
                        ids[feed],
                        f"k{n}",
                        url=f"http://wire.test/{n}",
                        matches=(rule("csto", "mail"),),
                    )
                ]
                try:
                    with sm() as s:
                        q.store_batch(s, ids[feed], batch, now=NOW + timedelta(seconds=n))
                except BaseException as e:  # reported below
                    errors.append(e)

        threads = [
            threading.Thread(target=writer, args=(f,)) for f in ("a", "b", "a")
        ]  # two writers for feed a: the same (feed, key) at once
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        with sm() as s:
            assert s.execute(select(func.count()).select_from(Story)).scalar_one() == rounds
            assert (
                # feed b carries the same page (URL and content) as feed a: one article.
                s.execute(select(func.count()).select_from(ItemRecord)).scalar_one() == rounds
            )
            alerts = q.list_alerts(s, limit=100)
            assert len(alerts) == rounds
            assert len({a.story for a in alerts}) == rounds
    finally:
        eng.dispose()
