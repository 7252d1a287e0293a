"""What the query modules share: table handles, dialect-aware inserts, error wrapping."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import ParamSpec, TypeVar, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from seedwatch.errors import StorageError
from seedwatch.storage.models import (
    Alert,
    Feed,
    ItemRecord,
    MatchRecord,
    State,
    Story,
    Tombstone,
)

FEEDS = cast(Table, Feed.__table__)
STORIES = cast(Table, Story.__table__)
ITEMS = cast(Table, ItemRecord.__table__)
MATCHES = cast(Table, MatchRecord.__table__)
ALERTS = cast(Table, Alert.__table__)
TOMBSTONES = cast(Table, Tombstone.__table__)
STATE = cast(Table, State.__table__)

# Bound parameters per IN (...) list: well under SQLite's and psycopg's limits.
CHUNK = 500

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def insert_for(s: Session, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that knows ON CONFLICT in the session's dialect."""
    if s.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_postgres(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def chunks(values: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for v in values:
        batch.append(v)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def describe(e: SQLAlchemyError) -> str:
    """A one-line reason without the statement's parameters (they may hold item text)."""
    if isinstance(e, DBAPIError) and e.orig is not None:
        first = str(e.orig).strip().splitlines()
        return f"{type(e.orig).__name__}: {first[0] if first else ''}"[:300]
    return type(e).__name__


def storage_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn SQLAlchemy's errors into StorageError where they leave the storage package."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SQLAlchemyError as e:
            raise StorageError(f"{fn.__name__}: {describe(e)}") from e

    return wrapper


def tuple_of(value: object) -> tuple[str, ...]:
    """A JSON list column as a tuple of strings (tolerating NULL and odd values)."""
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return ()


def rollback_on_error(s: Session, fn: Callable[[], R]) -> R:
    """Run ``fn`` and commit; on any failure roll back so nothing is half-stored."""
    try:
        result = fn()
        s.commit()
        return result
    except BaseException:
        s.rollback()
        raise


__all__: Sequence[str] = (
    "ALERTS",
    "CHUNK",
    "FEEDS",
    "ITEMS",
    "MATCHES",
    "STATE",
    "STORIES",
    "TOMBSTONES",
    "chunks",
    "describe",
    "insert_for",
    "is_postgres",
    "rollback_on_error",
    "storage_errors",
    "tuple_of",
)
