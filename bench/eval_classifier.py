"""Evaluate the classifier on ../shared/eval (issue 4); prints numbers, asserts nothing.

    .venv/bin/python bench/eval_classifier.py [--seeds DIR] [--backend lexical words]
        [--draws 5] [--skip-speed] [--skip-russian] [--halves]

Every figure goes through ``run_score_command`` (the code path of ``seedwatch score``): the
scored batch is written as JSON lines, k-shot seeds as files in a temporary seeds folder.
1-shot = the seeds folder as shipped; k-shot = those seeds plus k relevant dev items (drawn at
random, several draws, left out of the scored items). Borderline items are left out of the
headline and reported separately. ``--halves`` also gives the AP of the rows with an even and
an odd id apart (same runs): a change that helps only one half is fitted to its rows. Speed is
measured on one thread: the analysis (which the daemon runs in worker processes) apart from
batched scoring and observing.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))

from seedwatch.classify import (  # noqa: E402
    DEFAULT_THRESHOLD,
    Classifier,
    load_seeds,
    run_score_command,
)

SHARED = ROOT.parent / "shared"
DEV = SHARED / "eval" / "security-relevance-dev.tsv"
AG = SHARED / "corpora" / "ag-news" / "test.csv"
LENTA = SHARED / "corpora" / "lenta-ru" / "train_news.csv"

BATCH = 50  # items scored and observed at a time, as the daemon does a feed's new items
Row = tuple[str, str, str, int]  # id, title, text, label (1, 0, or -1 borderline)


def average_precision(labels: list[int], scores: list[float]) -> float:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    hits, total = 0, 0.0
    for rank, i in enumerate(order, start=1):
        if labels[i] == 1:
            hits += 1
            total += hits / rank
    return total / max(hits, 1)


def roc_auc(labels: list[int], scores: list[float]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    ranked = sorted((s, y) for s, y in zip(scores, labels, strict=True) if y in (0, 1))
    # Mann-Whitney with mid-ranks for ties.
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid = (i + j + 1) / 2
        rank_sum += mid * sum(1 for k in range(i, j) if ranked[k][1] == 1)
        i = j
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / max(len(pos) * len(neg), 1)


def prf(labels: list[int], flags: list[bool]) -> tuple[float, float, float]:
    tp = sum(1 for y, f in zip(labels, flags, strict=True) if f and y == 1)
    fp = sum(1 for y, f in zip(labels, flags, strict=True) if f and y == 0)
    fn = sum(1 for y, f in zip(labels, flags, strict=True) if not f and y == 1)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def load_dev() -> list[Row]:
    out: list[Row] = []
    with DEV.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            label = {"relevant": 1, "not_relevant": 0}.get(r["label"], -1)
            out.append((r["ag_row"], r["title"], r["description"], label))
    return out


def load_lenta() -> list[Row]:
    csv.field_size_limit(1 << 30)
    out: list[Row] = []
    with LENTA.open(encoding="utf-8") as fh:
        for n, r in enumerate(csv.DictReader(fh)):
            topic = int(r["topic"])
            if topic in (0, 3):
                continue
            body = r["content"].strip()
            title, _, text = body.partition("\n")
            out.append((f"lenta-{n}", title, text, 1 if topic == 2 else 0))
    return out


def score_batch(seeds: Path, rows: list[Row], backend: str) -> dict[str, dict[str, object]]:
    stdin = io.StringIO(
        "".join(
            json.dumps({"id": i, "title": t, "text": x}, ensure_ascii=False) + "\n"
            for i, t, x, _ in rows
        )
    )
    stdout = io.StringIO()
    rc = run_score_command(seeds, None, stdin, stdout, backend=backend, stderr=io.StringIO())
    if rc != 0:
        raise SystemExit(f"run_score_command exited {rc}")
    return {o["id"]: o for o in map(json.loads, stdout.getvalue().splitlines())}


def with_extra_seeds(base: Path, extra: list[Row], tmp: Path) -> Path:
    """A copy of the seeds folder with ``extra`` rows added as seed files of the main topic."""
    dest = tmp / base.name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(base, dest)
    for rid, title, text, _ in extra:
        (dest / f"shot-{rid}.txt").write_text(f"{title}\n\n{text}\n", encoding="utf-8")
    return dest


def _parity(row_id: str) -> int:
    """0 or 1: the parity of the number that ends a row's id ("6394", "lenta-17")."""
    digits = row_id[len(row_id.rstrip("0123456789")) :]
    return int(digits[-1]) % 2 if digits else 0


def evaluate(seeds: Path, rows: list[Row], backend: str) -> dict[str, float]:
    out = score_batch(seeds, rows, backend)
    scored = [r for r in rows if r[3] in (0, 1)]
    labels = [r[3] for r in scored]
    scores = [float(out[r[0]]["score"]) for r in scored]  # type: ignore[arg-type]
    flags = [bool(out[r[0]]["relevant"]) for r in scored]
    p, r, f = prf(labels, flags)
    border = [out[x[0]] for x in rows if x[3] == -1]
    halves = {}
    for half, name in ((0, "ap_even"), (1, "ap_odd")):
        mine = [i for i, row in enumerate(scored) if _parity(row[0]) == half]
        halves[name] = average_precision([labels[i] for i in mine], [scores[i] for i in mine])
    return {
        **halves,
        "ap": average_precision(labels, scores),
        "auc": roc_auc(labels, scores),
        "p": p,
        "r": r,
        "f1": f,
        "border_flagged": sum(bool(b["relevant"]) for b in border) / max(len(border), 1),
        "border_mean": statistics.fmean(float(b["score"]) for b in border)  # type: ignore[arg-type]
        if border
        else 0.0,
    }


def fmt(m: dict[str, float], halves: bool = False) -> str:
    return (
        f"AP {m['ap']:.3f}  AUC {m['auc']:.3f}  P {m['p']:.2f} R {m['r']:.2f} "
        f"F1 {m['f1']:.2f}  borderline flagged {m['border_flagged']:.2f} "
        f"(mean score {m['border_mean']:.2f})"
        + (f"  AP even ids {m['ap_even']:.3f} odd ids {m['ap_odd']:.3f}" if halves else "")
    )


def kshot(
    seeds: Path, rows: list[Row], k: int, draws: int, backend: str, tmp: Path, positive: int = 1
) -> list[dict[str, float]]:
    results = []
    pool = [r for r in rows if r[3] == positive]
    for d in range(draws):
        rng = random.Random(1000 * k + d)
        shots = rng.sample(pool, k)
        ids = {s[0] for s in shots}
        rest = [r for r in rows if r[0] not in ids]
        results.append(evaluate(with_extra_seeds(seeds, shots, tmp), rest, backend))
    return results


def summary(name: str, results: list[dict[str, float]], halves: bool = False) -> str:
    def mean(key: str) -> float:
        return statistics.fmean(m[key] for m in results)

    aps = [m["ap"] for m in results]
    split = ""
    if halves:
        even, odd = [m["ap_even"] for m in results], [m["ap_odd"] for m in results]
        split = (
            f"  AP even ids {mean('ap_even'):.3f} (min {min(even):.3f}) "
            f"odd ids {mean('ap_odd'):.3f} (min {min(odd):.3f})"
        )
    return (
        f"{name}: AP mean {statistics.fmean(aps):.3f} min {min(aps):.3f}  "
        f"AUC mean {mean('auc'):.3f}  P {mean('p'):.2f} R {mean('r'):.2f}  "
        f"({len(results)} draws)" + split
    )


def speed(seeds: Path, backend: str, tmp: Path) -> str:
    with AG.open(encoding="utf-8") as fh:
        ag = [(r[1], r[2]) for r in csv.reader(fh)][1:]
    clf = Classifier.build(load_seeds(seeds), backend=backend)
    sample = ag[:3000]
    t = time.perf_counter()
    analyses = [clf.analyzer(title, text) for title, text in sample]
    analysed = len(sample) / (time.perf_counter() - t)
    batches = [analyses[i : i + BATCH] for i in range(0, len(analyses), BATCH)]
    t = time.perf_counter()
    for batch in batches:
        clf.score_many(batch)
    rate = len(sample) / (time.perf_counter() - t)
    t = time.perf_counter()
    for batch in batches[: 1000 // BATCH]:
        clf.observe_analyzed(batch)
    obs = 1000 / (time.perf_counter() - t)
    t = time.perf_counter()
    for title, text in sample[:1000]:
        clf.score(title, text)
    single = 1000 / (time.perf_counter() - t)
    hundred = tmp / "hundred"
    hundred.mkdir(exist_ok=True)
    for i, (title, text) in enumerate(ag[3000:3100]):
        (hundred / f"seed-{i:03d}.txt").write_text(
            f"date 2025-10-17\n{title}\n\n{text}\n\n{text}\n", encoding="utf-8"
        )
    t = time.perf_counter()
    Classifier.build(load_seeds(hundred), backend=backend)
    start = time.perf_counter() - t
    return (
        f"speed (one thread): analysis {analysed:.0f} items/s; then in batches of {BATCH} "
        f"{rate:.0f} items/s scored, {obs:.0f} items/s observed; score(title, text) one at a "
        f"time {single:.0f} items/s (analysis included); start-up with 100 seeds {start:.2f} s"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=Path, default=ROOT / "seeds")
    ap.add_argument("--backend", nargs="+", default=["lexical", "words"])
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-russian", action="store_true")
    ap.add_argument("--halves", action="store_true", help="also AP of even and odd row ids apart")
    args = ap.parse_args()
    if not DEV.exists():
        print(f"{DEV} is absent: nothing to evaluate")
        return 0
    rows = load_dev()
    print(
        f"dev: {sum(r[3] == 1 for r in rows)} relevant, {sum(r[3] == 0 for r in rows)} "
        f"not relevant, {sum(r[3] == -1 for r in rows)} borderline; seeds {args.seeds}; "
        f"default threshold {DEFAULT_THRESHOLD}"
    )
    with tempfile.TemporaryDirectory() as tmpname:
        tmp = Path(tmpname)
        for backend in args.backend:
            print(f"== backend {backend}")
            print("1-shot: " + fmt(evaluate(args.seeds, rows, backend), args.halves))
            for k in (5, 20):
                results = kshot(args.seeds, rows, k, args.draws, backend, tmp)
                print(summary(f"{k}-shot", results, args.halves))
            if LENTA.exists() and not args.skip_russian:
                ru = load_lenta()
                print(
                    summary(
                        "Russian 5-shot (lenta-ru)",
                        kshot(args.seeds, ru, 5, args.draws, backend, tmp),
                        args.halves,
                    )
                )
            if not args.skip_speed:
                print(speed(args.seeds, backend, tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
