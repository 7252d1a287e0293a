"""Classifier cost on the ingest path: analysis, then score+observe a feed's items at a time.

    .venv/bin/python bench/bench_classifier.py [--items 20000] [--batch 50] [--seeds DIR]
        [--texts news|zipf] [--plain] [--before OLD_MODEL_PY] [--memory N]

Items are generated from AG News and Lenta.ru texts with made-up names mixed in (Zipf-
distributed, so the vocabulary keeps growing as it does in a real stream); ``--texts zipf``
draws them instead as bench/cold_start.py's feeds do (a Zipf vocabulary of 20,000 words: a few
words in nearly every item). Every classifier starts cold, so the refits of its stream
calibration are part of the figure.

--plain times score+observe a second time, in the same run, with every block term expanded
through its posting list (topic.DENSE_MAX_COLS = 0: no frequent columns by matmul).

--before loads another version of classify/model.py (e.g. ``git show
HEAD~1:daemon/seedwatch/classify/model.py > /tmp/model_before.py``) and times it side by side
(its per-item score() and observe(), as the poller called them). --memory N observes N items
in a fresh classifier under tracemalloc and reports what the classifier holds.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))

from seedwatch.classify import Classifier, load_seeds, topic  # noqa: E402
from seedwatch.classify import text as text_mod  # noqa: E402
from seedwatch.classify.model import STREAM_CAP  # noqa: E402
from seedwatch.classify.static import load_table  # noqa: E402

SHARED = ROOT.parent / "shared"
AG = SHARED / "corpora" / "ag-news" / "test.csv"
LENTA = SHARED / "corpora" / "lenta-ru" / "train_news.csv"
SYLLABLES = ("ka", "zu", "mi", "ro", "tel", "van", "osh", "bek", "dar", "un", "ist", "gor")


def corpus() -> list[tuple[str, str]]:
    with AG.open(encoding="utf-8") as fh:
        out = [(r[1], r[2]) for r in csv.reader(fh)][1:]
    if LENTA.exists():
        csv.field_size_limit(1 << 30)
        with LENTA.open(encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                title, _, body = r["content"].strip().partition("\n")
                out.append((title, body[:600]))
    return out


def name(rank: int) -> str:
    """A made-up word for a rank (letters only, so the tokenizer keeps it)."""
    parts = []
    while True:
        rank, r = divmod(rank, len(SYLLABLES))
        parts.append(SYLLABLES[r])
        if not rank:
            return "".join(parts).capitalize()
        rank -= 1


def items(n: int, seed: int = 7) -> Iterator[tuple[str, str]]:
    base = corpus()
    rng = random.Random(seed)
    for _ in range(n):
        title, text = rng.choice(base)
        # Two names per item, Zipf-distributed (exponent 1.2) over ten million: new words
        # never stop coming (~145,000 distinct names in 500,000 items).
        names = " ".join(name(int(rng.paretovariate(0.2)) % 10_000_000) for _ in range(2))
        yield f"{title} {names}", text


def zipf_items(n: int, seed: int = 7) -> list[tuple[str, str]]:
    """Texts as bench/cold_start.py's make_feed writes them (without the markup)."""
    feeds = load_module(ROOT / "bench" / "cold_start.py", "cold_start")
    vocab, weights = feeds.VOCAB, feeds.CUM_WEIGHTS
    rng = random.Random(seed)
    out = []
    for i in range(n):
        title = " ".join(rng.choices(vocab, cum_weights=weights, k=9)).capitalize()
        body = " ".join(rng.choices(vocab, cum_weights=weights, k=60))
        out.append((f"{title} {i // 50}-{i % 50}", body))
    return out


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def time_new(seeds: Path, stream: list[tuple[str, str]], batch: int) -> tuple[float, float]:
    """(analysis s, score+observe s) over the stream, a batch at a time."""
    clf = Classifier.build(load_seeds(seeds))
    analyze = clf.analyzer
    t_an = t_clf = 0.0
    for at in range(0, len(stream), batch):
        t0 = time.process_time()
        analyses = [analyze(t, x) for t, x in stream[at : at + batch]]
        t1 = time.process_time()
        clf.score_many(analyses)
        clf.observe_analyzed(analyses)
        t_clf += time.process_time() - t1
        t_an += t1 - t0
    return t_an, t_clf


def refit_cost(seeds: Path, stream: list[tuple[str, str]], repeat: int = 3) -> float:
    """Seconds of one refit (topic models and calibration against a full kept stream)."""
    clf = Classifier.build(load_seeds(seeds))
    clf.observe_all([clf.analyzer(t, x) for t, x in stream[:STREAM_CAP]])
    t0 = time.process_time()
    for _ in range(repeat):
        clf._refit()
    return (time.process_time() - t0) / repeat


def time_old(module: ModuleType, seeds: Path, stream: list[tuple[str, str]]) -> float:
    clf: Any = module.Classifier.build(load_seeds(seeds))
    t0 = time.process_time()
    for t, x in stream:
        clf.score(t, x)
        clf.observe(t, x)
    return time.process_time() - t0


def memory(seeds: Path, n: int, batch: int) -> None:
    load_table()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    clf = Classifier.build(load_seeds(seeds))
    built = tracemalloc.get_traced_memory()[0] - base
    t0 = time.perf_counter()
    chunk: list[tuple[str, str]] = []
    for it in items(n, seed=11):
        chunk.append(it)
        if len(chunk) == batch:
            clf.observe_analyzed([clf.analyzer(t, x) for t, x in chunk])
            chunk.clear()
    clf.observe_analyzed([clf.analyzer(t, x) for t, x in chunk])
    # The stemming caches belong to whichever process analyses (a worker, in the daemon).
    text_mod.stem_info.cache_clear()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    stats = clf._stats
    print(
        f"memory after observing {n} items ({time.perf_counter() - t0:.0f} s under tracemalloc): "
        f"classifier holds {held / 2**20:.1f} MiB (just built: {built / 2**20:.1f} MiB); "
        f"{stats.size} stems known ({stats.size - stats.n_fixed} from the stream alone)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seeds", type=Path, default=ROOT / "seeds")
    ap.add_argument("--texts", choices=("news", "zipf"), default="news")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--before", type=Path)
    ap.add_argument("--memory", type=int, default=0)
    args = ap.parse_args()
    stream = list(items(args.items)) if args.texts == "news" else zipf_items(args.items)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; {len(stream)} items")
    t_an, t_clf = time_new(args.seeds, stream, args.batch)
    per = 1e3 / len(stream)
    print(
        f"now:    score+observe {t_clf * per:.3f} ms/item ({len(stream) / t_clf:,.0f} items/s, "
        f"batches of {args.batch}); analysis {t_an * per:.3f} ms/item (in workers)"
    )
    if args.plain:
        dense_cols, topic.DENSE_MAX_COLS = topic.DENSE_MAX_COLS, 0
        t_plain = time_new(args.seeds, stream, args.batch)[1]
        topic.DENSE_MAX_COLS = dense_cols
        print(
            f"plain:  score+observe {t_plain * per:.3f} ms/item ({len(stream) / t_plain:,.0f} "
            f"items/s), every term through its posting list"
        )
    print(f"refit against {STREAM_CAP} stream items: {refit_cost(args.seeds, stream):.3f} s")
    if args.before is not None:
        t_old = time_old(load_module(args.before, "model_before"), args.seeds, stream)
        print(
            f"before: score+observe {t_old * per:.3f} ms/item ({len(stream) / t_old:,.0f} "
            f"items/s, analysis included); now incl. analysis {(t_an + t_clf) * per:.3f} ms/item"
        )
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    if args.memory:
        memory(args.seeds, args.memory, args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
