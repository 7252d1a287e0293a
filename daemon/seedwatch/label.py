"""``seedwatch label ITEM relevant|irrelevant [--topic T]``: an analyst's verdict becomes a seed.

A relevant item is written as ``seeds/<topic>/labelled-<id>.txt``, an irrelevant one as
``seeds/<topic>/not/labelled-<id>.txt`` (the topic named after the seeds folder itself lives in
the folder itself). The running daemon watches the seeds folder and rebuilds its classifier,
so the verdict counts from the next item on; no restart, no database write.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TextIO

from sqlalchemy.orm import Session

from seedwatch.classify.seeds import COUNTER_DIR
from seedwatch.config.model import Config
from seedwatch.errors import SeedError, redact_url
from seedwatch.storage.labels import LabelItem, item_for_label

log = logging.getLogger(__name__)

VERDICTS = {"relevant": False, "irrelevant": True}  # verdict -> is a counter-example
_SAFE_TOPIC = re.compile(r"^[\w][\w .\-]{0,63}$")


def topic_folder(seeds_root: Path, topic: str) -> Path:
    """The folder that holds ``topic``'s seeds: the root for the root's own topic."""
    root = seeds_root.resolve()
    if topic == root.name and not (root / topic).is_dir():
        return root
    if not _SAFE_TOPIC.match(topic) or topic in (COUNTER_DIR, ".", ".."):
        raise SeedError(f"topic {topic!r} cannot be a seeds folder name")
    return root / topic


def seed_text(item: LabelItem, verdict: str) -> str:
    """The seed file: header lines (read as metadata by seeds.py), then title and text."""
    header = [
        f"url {item.url}" if item.url else None,
        f"date {item.published.date().isoformat()}",
        f"source {item.feed}" if item.feed else None,
        f"lang {item.language}" if item.language and item.language != "und" else None,
        f"tags labelled-{verdict} item-{item.id}",
    ]
    body = "\n\n".join(p for p in (item.title.strip(), item.text.strip()) if p)
    return "\n".join(h for h in header if h) + "\n\n" + body + "\n"


def _write_atomic(path: Path, text: str) -> None:
    # The daemon may reload while we write: it must see the old folder or the whole file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".labelled-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_label(
    config: Config,
    sessions: Callable[[], AbstractContextManager[Session]],
    item_id: int,
    verdict: str,
    topic: str | None,
    out: TextIO,
) -> int:
    """Write the stored item as a seed (relevant) or counter-example (irrelevant) of ``topic``
    (default: the topic the item was scored into). Returns the exit code; a verdict on the
    same item again replaces the earlier file (the other verdict's file is removed).
    """
    if verdict not in VERDICTS:
        raise SeedError(f"verdict must be relevant or irrelevant, not {verdict!r}")
    with sessions() as s:
        item = item_for_label(s, item_id)
    if item is None:
        print(f"seedwatch label: no stored item {item_id}", file=out)
        return 1
    if not (item.title.strip() or item.text.strip()):
        print(f"seedwatch label: item {item_id} has no text to learn from", file=out)
        return 1
    root = Path(config.classifier.seeds)
    if not root.is_dir():
        raise SeedError(f"seeds folder {root} does not exist or is not a folder")
    name = topic or item.topic or root.resolve().name
    folder = topic_folder(root, name)
    filename = f"labelled-{item.id}.txt"
    seed_path = folder / filename
    counter_path = folder / COUNTER_DIR / filename
    path, other = (counter_path, seed_path) if VERDICTS[verdict] else (seed_path, counter_path)
    _write_atomic(path, seed_text(item, verdict))
    other.unlink(missing_ok=True)  # the analyst changed their mind
    log.info(
        "item labelled item=%s topic=%s verdict=%s url=%s",
        item.id,
        name,
        verdict,
        redact_url(item.url) if item.url else "",
    )
    print(f"item {item.id} labelled {verdict} for topic {name}: {path}", file=out)
    return 0
