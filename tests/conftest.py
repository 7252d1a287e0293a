from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.feedserver import FeedServer

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPORA = SHARED / "corpora"


def need_corpus(*parts: str) -> Path:
    """The path under ../shared/corpora, or skip the test saying why."""
    path = CORPORA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"third-party corpus {path} is absent (../shared is not beside this checkout)")
    return path


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv
