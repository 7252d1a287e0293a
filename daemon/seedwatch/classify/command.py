"""``seedwatch score``: JSON lines in, scores out, no config and no database."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, TextIO

from seedwatch.classify.model import Classifier
from seedwatch.classify.seeds import load_seeds

log = logging.getLogger(__name__)

CHUNK = 500  # items scored at a time


def _parse(line: str) -> tuple[Any, str, str]:
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    title, text = obj.get("title") or "", obj.get("text") or ""
    if not isinstance(title, str) or not isinstance(text, str):
        raise ValueError('"title" and "text" must be strings')
    return obj.get("id"), title, text


def run_score_command(
    seeds_dir: Path,
    threshold: float | None,
    stdin: TextIO,
    stdout: TextIO,
    backend: str = "lexical",
    stderr: TextIO | None = None,
) -> int:
    """Score every JSON line of ``stdin``; one output line per input line, in order.

    The batch is observed first (document frequencies, background spread), then scored: the
    same statistics a running daemon learns from its stream. A bad line yields an error object
    on stdout and a message naming its line number on stderr; the exit code is then 1.
    Raises SeedError when the seeds cannot be loaded.
    """
    import sys

    err = stderr if stderr is not None else sys.stderr
    clf = Classifier.build(load_seeds(seeds_dir), threshold=threshold, backend=backend)
    rows: list[tuple[Any, str, str] | str] = []
    for lineno, line in enumerate(stdin, start=1):
        if not line.strip():
            rows.append("empty line")
            print(f"seedwatch score: line {lineno}: empty line", file=err)
            continue
        try:
            rows.append(_parse(line))
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            rows.append(str(e))
            print(f"seedwatch score: line {lineno}: {e}", file=err)
    analyses = [clf.analyzer(r[1], r[2]) for r in rows if isinstance(r, tuple)]
    clf.observe_all(analyses)
    scores = (
        s
        for at in range(0, len(analyses), CHUNK)
        for s in clf.score_many(analyses[at : at + CHUNK])
    )
    bad = 0
    for lineno, row in enumerate(rows, start=1):
        if isinstance(row, str):
            bad += 1
            out: dict[str, Any] = {"id": None, "line": lineno, "error": row}
        else:
            s = next(scores)
            out = {
                "id": row[0],
                "score": round(s.score, 4),
                "relevant": s.relevant,
                "topic": s.topic,
            }
        stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    stdout.flush()
    return 1 if bad else 0
