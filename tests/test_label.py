"""``seedwatch label``: a stored item (real SQLite file) becomes a seed or counter-example."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from seedwatch.classify import Classifier, load_seeds
from seedwatch.config.model import (
    ClassifierConfig,
    Config,
    FeedConfig,
    HttpConfig,
    ScheduleConfig,
    StorageConfig,
)
from seedwatch.errors import SeedError
from seedwatch.label import run_label, topic_folder
from seedwatch.storage import queries as q
from seedwatch.storage.db import make_sessionmaker, open_database
from seedwatch.storage.models import Feed, ItemRecord
from seedwatch.types import Item, ProcessedItem

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SEED = (
    "date 2025-10-17\n\nThe heads of the security and intelligence agencies met to coordinate "
    "counter-terrorism work against extremist groups and militants."
)
ITEMS = [
    ("hostage", "Militants seize hostages", "Gunmen from an extremist group took hostages."),
    ("phone", "New phone launched", "The phone has a faster chip, a camera and a big screen."),
    ("ru", "ФСБ задержала боевиков", "Сотрудники ФСБ задержали боевиков, готовивших теракт."),
]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = open_database(f"sqlite:///{tmp_path}/data/seedwatch.db")
    yield eng
    eng.dispose()


@pytest.fixture
def seeds_dir(tmp_path: Path) -> Path:
    root = tmp_path / "seeds"
    root.mkdir()
    (root / "meeting.txt").write_text(SEED, encoding="utf-8")
    (root / "cyber").mkdir()
    (root / "cyber" / "hack.txt").write_text(
        "Hackers breached a bank network with ransomware.", encoding="utf-8"
    )
    return root


def _config(tmp_path: Path, seeds: Path) -> Config:
    return Config(
        path=tmp_path / "seedwatch.toml",
        data_dir=tmp_path / "data",
        storage=StorageConfig(url=f"sqlite:///{tmp_path}/data/seedwatch.db"),
        http=HttpConfig(),
        schedule=ScheduleConfig(),
        classifier=ClassifierConfig(seeds=seeds),
        watchlist_path=tmp_path / "watchlist.toml",
    )


def _store(sessions: sessionmaker[Session], seeds: Path) -> dict[str, int]:
    """Items scored by the real classifier and stored; returns key -> item id."""
    clf = Classifier.build(load_seeds(seeds))
    with sessions() as s:
        q.sync_config_feeds(
            s, [FeedConfig(url="http://wire.test/rss", name="wire")], NOW, default_interval=900.0
        )
        s.commit()
        fid = s.execute(select(Feed.id)).scalar_one()
        batch = []
        for key, title, text in ITEMS:
            item = Item(
                feed_id=fid,
                key=key,
                guid=key,
                url=f"http://wire.test/{key}?utm_source=x",
                title=title,
                text=text,
                published=NOW,
                content_hash=hashlib.sha256(f"{title}\n{text}".encode()).hexdigest(),
                language="ru" if key == "ru" else "en",
            )
            batch.append(ProcessedItem(item=item, score=clf.score(title, text), matches=()))
        q.store_batch(s, fid, batch, now=NOW)
        rows = s.execute(select(ItemRecord.key, ItemRecord.id)).all()
    return {k: i for k, i in rows}


def test_stored_items_carry_the_explanation(
    engine: Engine, seeds_dir: Path, tmp_path: Path
) -> None:
    sessions = make_sessionmaker(engine)
    ids = _store(sessions, seeds_dir)
    with sessions() as s:
        rec = s.get(ItemRecord, ids["hostage"])
        assert rec is not None
        assert rec.topic == "seeds" and 0.0 <= rec.score <= 1.0
        assert rec.explanation["nearest_seed"] == "meeting.txt"
        assert rec.explanation["passage"].startswith("The heads of the security")
        assert "militants" in rec.explanation["terms"]


def test_label_relevant_then_irrelevant_writes_seed_files(
    engine: Engine, seeds_dir: Path, tmp_path: Path
) -> None:
    sessions = make_sessionmaker(engine)
    ids = _store(sessions, seeds_dir)
    config = _config(tmp_path, seeds_dir)
    out = io.StringIO()
    assert run_label(config, sessions, ids["ru"], "relevant", None, out) == 0
    seed = seeds_dir / f"labelled-{ids['ru']}.txt"  # the item's stored topic is the root's
    assert str(seed) in out.getvalue()
    text = seed.read_text(encoding="utf-8")
    assert text.startswith("url http://wire.test/ru?utm_source=x\ndate 2026-11-28\n")
    # The seed loader reads the header lines as metadata and the item as text.
    doc = next(d for d in load_seeds(seeds_dir).topics[0].seeds if d.name == seed.name)
    assert dict(doc.meta)["url"] == "http://wire.test/ru?utm_source=x"
    assert doc.passages == (ITEMS[2][1], ITEMS[2][2])

    # Changing one's mind moves the file to not/ of the topic named on the command line.
    assert run_label(config, sessions, ids["phone"], "irrelevant", "cyber", out) == 0
    counter = seeds_dir / "cyber" / "not" / f"labelled-{ids['phone']}.txt"
    assert counter.is_file()
    cyber = load_seeds(seeds_dir).topic("cyber")
    assert cyber is not None and [d.name for d in cyber.counter] == [
        f"cyber/not/labelled-{ids['phone']}.txt"
    ]
    assert run_label(config, sessions, ids["phone"], "relevant", "cyber", out) == 0
    assert not counter.exists()
    assert (seeds_dir / "cyber" / f"labelled-{ids['phone']}.txt").is_file()


def test_labelled_seed_changes_the_rebuilt_classifier(
    engine: Engine, seeds_dir: Path, tmp_path: Path
) -> None:
    sessions = make_sessionmaker(engine)
    ids = _store(sessions, seeds_dir)
    clf = Classifier.build(load_seeds(seeds_dir))
    title, text = "Фондовый рынок вырос", "Акции компаний выросли, рынок закрылся ростом."
    before = clf.score("Боевики задержаны ФСБ", "Сотрудники ФСБ задержали боевиков в Москве.")
    assert (
        run_label(
            _config(tmp_path, seeds_dir), sessions, ids["ru"], "relevant", None, io.StringIO()
        )
        == 0
    )
    after_clf = clf.rebuild(load_seeds(seeds_dir))
    after = after_clf.score("Боевики задержаны ФСБ", "Сотрудники ФСБ задержали боевиков в Москве.")
    assert after.score > before.score
    assert after_clf.score(title, text).score < after.score


def test_label_refuses_unknown_item_bad_verdict_and_unsafe_topic(
    engine: Engine, seeds_dir: Path, tmp_path: Path
) -> None:
    sessions = make_sessionmaker(engine)
    ids = _store(sessions, seeds_dir)
    config = _config(tmp_path, seeds_dir)
    out = io.StringIO()
    assert run_label(config, sessions, 999_999, "relevant", None, out) == 1
    assert "no stored item 999999" in out.getvalue()
    with pytest.raises(SeedError):
        run_label(config, sessions, ids["ru"], "maybe", None, out)
    with pytest.raises(SeedError):
        run_label(config, sessions, ids["ru"], "relevant", "../etc", out)
    with pytest.raises(SeedError):
        topic_folder(seeds_dir, "not")
    assert sorted(p.name for p in seeds_dir.rglob("labelled-*")) == []
