"""`seedwatch backtest`: an edited watchlist run over stored items, nothing sent."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from seedwatch.backtest import run_backtest
from seedwatch.config.model import (
    ChannelConfig,
    ClassifierConfig,
    Config,
    FeedConfig,
    HttpConfig,
    ScheduleConfig,
    StorageConfig,
)
from seedwatch.errors import ConfigError
from seedwatch.storage import queries
from seedwatch.storage.db import make_sessionmaker, open_database
from seedwatch.types import Item, ProcessedItem, Score

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WEEK = 7 * 86400.0

STORIES = [
    # (feed, n, title, text, age in days)
    (0, 1, "Мирзиёев встретился с главами спецслужб СНГ", "В Ташкенте прошла встреча.", 1),
    (1, 2, "Mirziyoyev meets CIS security chiefs", "Tashkent hosted the meeting.", 1),
    (0, 3, "Футбольный клуб Пахтакор выиграл", "Матч прошёл в Ташкенте.", 2),
    (1, 4, "ODKB drills near the border", "CSTO troops held drills.", 3),
    (0, 5, "Old CIS summit report", "Leaders of the CIS met long ago.", 30),
]


def config(tmp: Path, watchlist: Path) -> Config:
    return Config(
        path=tmp / "seedwatch.toml",
        data_dir=tmp,
        storage=StorageConfig(url=f"sqlite:///{tmp / 'seedwatch.db'}"),
        http=HttpConfig(),
        schedule=ScheduleConfig(),
        classifier=ClassifierConfig(seeds=tmp / "seeds"),
        watchlist_path=watchlist,
        channels=(ChannelConfig(name="mail", url="mailto://u:pw@example.org"),),
    )


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    maker = make_sessionmaker(open_database(f"sqlite:///{tmp_path / 'seedwatch.db'}"))
    with maker.begin() as s:
        queries.add_feeds(
            s,
            [
                FeedConfig(url="https://uz.example/rss", name="Podrobno"),
                FeedConfig(url="https://en.example/rss", name="nCa"),
            ],
            NOW,
        )
    with maker() as s:
        ids = sorted(r.id for r in queries.feed_status(s, NOW))
    for feed, n, title, text, age in STORIES:
        when = NOW - timedelta(days=age)
        item = Item(
            feed_id=ids[feed],
            key=f"k{n}",
            guid=f"g{n}",
            url=f"https://example.org/{n}",
            title=title,
            text=text,
            published=when,
            content_hash=f"{n:064x}",
        )
        p = ProcessedItem(item=item, score=Score(score=0.1 * n, topic="security", relevant=True))
        with maker() as s:
            queries.store_batch(s, ids[feed], [p], now=when)
    return maker


def write(tmp: Path, text: str) -> Path:
    path = tmp / "edited.toml"
    path.write_text(text, encoding="utf-8")
    return path


EDITED = """
[aliases]
CIS = ["СНГ", "Commonwealth of Independent States"]
CSTO = ["ОДКБ", "ODKB"]

[[rule]]
name = "cis-chiefs"
query = 'CIS NOT football'
channels = ["mail"]

[[rule]]
name = "president"
query = 'Mirziyoyev'
channels = ["mail", "ops"]

[[rule]]
name = "csto"
query = 'CSTO'
channels = ["mail"]
min_score = 0.5
"""


def test_backtest_lists_rule_story_outlets_and_terms_and_sends_nothing(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    wl = write(tmp_path, EDITED)
    out = io.StringIO()
    code = run_backtest(
        config(tmp_path, tmp_path / "missing.toml"),
        sessions,
        since=WEEK,
        rule=None,
        watchlist_path=wl,
        out=out,
        now=NOW,
    )
    text = out.getvalue()
    assert code == 0, text
    assert "4 stored item(s)" in text  # the 30-day-old one is outside --since
    blocks = text.split("\nrule ")
    cis = next(b for b in blocks if b.startswith("cis-chiefs"))
    # Russian and English items matched through the alias, each its own story.
    assert "Мирзиёев встретился" in cis and "Mirziyoyev meets" in cis
    assert "СНГ" in cis and "CIS" in cis
    assert "Old CIS summit" not in text
    president = next(b for b in blocks if b.startswith("president"))
    assert "Мирзиёев" in president  # transliteration: Latin query, Cyrillic title
    assert "outlets: Podrobno" in president
    csto = next(b for b in blocks if b.startswith("csto"))
    assert csto.startswith("csto: 0 stories")  # stored score 0.4 < min_score 0.5
    assert "note: rules name channels not in the config: ops" in text
    with sessions() as s:
        assert queries.list_alerts(s, limit=100) == []  # nothing queued, nothing sent


def test_backtest_one_rule_and_unknown_rule(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    wl = write(tmp_path, EDITED)
    out = io.StringIO()
    cfg = config(tmp_path, wl)
    assert run_backtest(cfg, sessions, since=WEEK, rule="csto", watchlist_path=None, out=out,
                        now=NOW) == 0  # fmt: skip
    assert "rule cis-chiefs" not in out.getvalue() and "rule csto" in out.getvalue()
    out = io.StringIO()
    assert run_backtest(cfg, sessions, since=WEEK, rule="nope", watchlist_path=None, out=out,
                        now=NOW) == 1  # fmt: skip
    assert "no rule named 'nope'" in out.getvalue()


def test_backtest_of_a_broken_edit_names_file_line_and_column(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    wl = write(tmp_path, '[[rule]]\nname = "x"\nquery = "CIS AND (terror"\nchannels = ["mail"]\n')
    with pytest.raises(ConfigError) as exc:
        run_backtest(config(tmp_path, wl), sessions, since=WEEK, rule=None, watchlist_path=wl,
                     out=io.StringIO(), now=NOW)  # fmt: skip
    assert str(exc.value).startswith(f"{wl}:3:")
