"""Engines, sessions and schema upgrades for SQLite and PostgreSQL.

``open_database`` is the one way in: it tunes SQLite (WAL, foreign keys, busy timeout), and brings
the schema to Alembic ``head`` under a lock so that two daemons starting together do not race.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from seedwatch.errors import StorageError, redact_url

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
SQLITE_HEAP_LIMIT = 24 * 1024 * 1024  # bytes, all of SQLite's memory in this process (advisory)
# pg_advisory_lock takes a bigint; any fixed number that other software is unlikely to use.
MIGRATE_LOCK_KEY = zlib.crc32(b"seedwatch:migrate") * 7919
# Alembic's ``context`` and ``op`` are module-global proxies: one upgrade per process at a time.
_UPGRADE_LOCK = threading.Lock()


def _safe_url(url: URL) -> str:
    """The URL as it may appear in an error message (no password, no query)."""
    return redact_url(url.render_as_string(hide_password=True))


def _sqlite_fold(value: object) -> str | None:
    """Unicode case folding for SQLite, whose lower() only knows ASCII (Cyrillic search)."""
    if value is None:
        return None
    return str(value).casefold().replace("ё", "е")


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            # Only a database without tables takes this (it is a file-format choice): new
            # databases get it, so retention's incremental_vacuum can give pages back. An old
            # one keeps NONE until `VACUUM` after `PRAGMA auto_vacuum=INCREMENTAL` (see prune.py).
            cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # WAL + NORMAL: a commit is not synced, a checkpoint is; a killed daemon loses
            # nothing committed, a power cut may lose the last commits but never corrupts.
            cur.execute("PRAGMA synchronous=NORMAL")
            # 8 MiB of page cache per pooled connection (default 2 MB) keeps the upper
            # levels of the item indexes in memory as the database grows past 1 GB. No mmap:
            # its pages count in the RSS (+73 MB at 100k items) and it made no store faster.
            cur.execute("PRAGMA cache_size=-8192")
            # ... but every pooled connection filled its own 8 MiB (5 pooled, and overflow
            # ones under 8 fetching threads: about 50 MB in a cold start). This limit is
            # SQLite's, process-wide: past it, page caches recycle their pages instead of
            # growing, so the busy connection keeps a large cache and the idle ones do not.
            cur.execute(f"PRAGMA soft_heap_limit={SQLITE_HEAP_LIMIT}")
        finally:
            cur.close()
        dbapi_conn.create_function("sw_fold", 1, _sqlite_fold, deterministic=True)


def _make_engine(url: URL) -> Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        )
        _tune_sqlite(engine)
        return engine
    if backend == "postgresql":
        if url.get_driver_name() in ("", "psycopg2"):
            # psycopg 3 is the driver we ship and test; plain postgresql:// means it too.
            url = url.set(drivername="postgresql+psycopg")
        # psycopg prepares a statement after a few runs and PostgreSQL may then keep a generic
        # plan made while the tables were empty (a seq scan), for the life of the pooled
        # connection; custom plans keep the IN (...) lookups on their indexes.
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"options": "-c plan_cache_mode=force_custom_plan"},
        )
    raise StorageError(
        f"unsupported database {backend!r} in {_safe_url(url)}; use sqlite or postgresql"
    )


def open_database(url: str, *, upgrade: bool = True) -> Engine:
    """An engine for ``url`` with the schema at the newest version (unless ``upgrade=False``)."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StorageError(f"not a database URL: {redact_url(url)}") from e
    try:
        engine = _make_engine(parsed)
        if upgrade:
            upgrade_schema(engine)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot open database {_safe_url(parsed)}: {type(e).__name__}") from e
    except OSError as e:
        raise StorageError(f"cannot open database {_safe_url(parsed)}: {e.strerror}") from e
    return engine


def _quiet_alembic() -> None:
    # Importing alembic sets up its autogenerate plugins and logs each at INFO, on every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic's config built in code: no alembic.ini is needed at runtime."""
    _quiet_alembic()
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Serialise upgrades across processes on one host: SQLite runs Alembic's DDL outside one
    transaction, so two processes could both try CREATE TABLE."""
    database = engine.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # not on Linux: one daemon per database file is the rule there anyway
        yield
        return
    lock_path = Path(database).expanduser().with_name(Path(database).name + ".migrate-lock")
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _at_head(conn: Connection) -> bool:
    """True when the database is already at the newest revision: the usual start needs no
    lock and no Alembic environment."""
    _quiet_alembic()
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    if not inspect(conn).has_table("alembic_version"):
        current: set[str] = set()
    else:
        current = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    conn.rollback()
    return current == heads


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Run Alembic's upgrade to ``revision``; safe when several processes start at once."""
    _quiet_alembic()
    from alembic.util import CommandError

    try:
        _upgrade(engine, revision)
    except CommandError as e:  # e.g. the database is at a revision this version does not know
        raise StorageError(f"schema upgrade failed: {str(e).splitlines()[0][:300]}") from e
    log.info("storage: schema at %s", revision)


def _upgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with _UPGRADE_LOCK:
        if revision == "head":
            with engine.connect() as conn:
                if _at_head(conn):
                    return
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
                conn.commit()
                try:
                    command.upgrade(alembic_config(conn), revision)
                    conn.commit()
                finally:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATE_LOCK_KEY})
                    conn.commit()
        else:
            with _sqlite_file_lock(engine), engine.connect() as conn:
                command.upgrade(alembic_config(conn), revision)
                conn.commit()


def current_revision(engine: Engine) -> str | None:
    """The schema version the database is at (None before the first upgrade)."""
    _quiet_alembic()
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read schema version: {type(e).__name__}") from e


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (we hand plain values out anyway)."""
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine) -> bool:
    """True when the database answers a trivial query (for the watchdog and healthz)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1
    except SQLAlchemyError:
        return False
