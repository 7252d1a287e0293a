"""Speed and memory of story assignment while the window slides.

    .venv/bin/python bench/bench_stories.py [--items 100000] [--span-hours 216] [--batch 50]
        [--mode index|exact]

Items are real headlines and texts (AG News, Lenta.ru, RIA, SemEval articles from
../shared/corpora) recombined so that most are distinct: each fresh item is an article plus one
sentence of another; a third are re-reports of a recent item (same URL, same text under a new
URL, or a rewrite that drops and reorders sentences). Timestamps are spread evenly over
``--span-hours``, so with the default 216 h the 72 h window holds a third of them and slides
twice over (``--span-hours 72`` keeps every item in the window, as a cold start does). Per step
the bench computes the fingerprint, calls match (``--batch N``: match_many on N items), then
add_fingerprint (with a new story id when nothing matched), and expire(now) every 1,000 items,
the way the daemon does. Item construction is not timed.
``--mode exact`` times only the URL / content-hash dictionaries, for comparison.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import re
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from seedwatch.stories import StoryIndex, StorySettings, fingerprint
from seedwatch.types import Item

CORPORA = Path(__file__).resolve().parents[2] / "shared/corpora"
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def load_articles() -> list[tuple[str, str, str]]:
    """(language, title, text) from whatever corpora are present."""
    csv.field_size_limit(1 << 30)
    out: list[tuple[str, str, str]] = []
    with (CORPORA / "ag-news/test.csv").open(encoding="utf-8", newline="") as fh:
        for fields in csv.reader(fh):
            if len(fields) >= 3:
                out.append(("en", fields[1], fields[2]))
    for name in ("ria_news_topics_3.csv", "ria_news_topics_7.csv", "ria_news_topics_9.csv"):
        for row in _rows(CORPORA / "ria-news-ru/data" / name):
            out.append(("ru", row["title"], row["content"][:3000]))
    for row in _rows(CORPORA / "lenta-ru/train_news.csv"):
        head, _, body = row["content"].partition(". ")
        out.append(("ru", head[:200], body[:3000]))
    for row in _rows(CORPORA / "lenta-ru/titles/lenta.csv"):
        out.append(("ru", row["titles"], ""))  # headline-only items, as many feeds send
    for name in ("training_set.csv", "testing_set.csv"):
        for row in _rows(CORPORA / "semeval2022-task8/data" / name):
            for lang, raw in ((row["lang1"], row["text1"]), (row["lang2"], row["text2"])):
                head, _, body = raw.strip().partition("\n")
                out.append((lang, head[:200], body[:3000]))
    if not out:
        sys.exit(f"no corpora under {CORPORA}")
    return out


def make_items(n: int, span: float, seed: int) -> list[Item]:
    rng = random.Random(seed)
    arts = load_articles()
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    step = span / n
    items: list[Item] = []
    for i in range(n):
        when = t0 + timedelta(seconds=i * step)
        kind = rng.random()
        if items and kind < 0.33:
            src = items[max(0, len(items) - 1 - int(rng.expovariate(1 / 500)))]
            if kind < 0.08:
                url, title, text = src.url, src.title, src.text  # same URL again
            elif kind < 0.2:
                url, title, text = f"https://mirror{i % 7}.example/{i}", src.title, src.text
            else:
                sents = SENTENCE.split(src.text)
                rng.shuffle(sents)
                words = src.title.split()
                url = f"https://rewrite.example/{i}"
                title = " ".join(words[: max(3, len(words) - 2)])
                text = " ".join(sents[: max(1, len(sents) - 1)])
            lang = src.language
        else:
            lang, title, text = arts[rng.randrange(len(arts))]
            extra = SENTENCE.split(arts[rng.randrange(len(arts))][2])[0]
            text = f"{text} {extra}"
            url = f"https://outlet{i % 50}.example/news/{i}"
        h = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()
        items.append(
            Item(
                feed_id=i % 50,
                key=h[:16],
                guid=None,
                url=url,
                title=title,
                text=text,
                published=when,
                content_hash=h,
                language=lang,
            )
        )
    return items


def run_index(items: list[Item], settings: StorySettings, every: int, batch: int) -> None:
    """fingerprint (the worker's part) and match + add_fingerprint + expire (the main
    process's part) are timed apart; "index MB" is the index's arrays, "RSS+ MB" the growth
    of the process since the index was created (the items are built before). With ``batch``
    > 1, match_many takes that many items at once and they are added after it, as a poll
    stores a feed's new items."""
    index = StoryIndex(settings)
    rss0 = rss_mb()
    stories = 0
    joined = 0
    fp_cpu = index_cpu = 0.0
    start = chunk_start = time.perf_counter()
    print(
        f"{'items':>8} {'items/s':>9} {'chunk/s':>9} {'in window':>9} {'index MB':>8} "
        f"{'RSS+ MB':>8} joined"
    )
    for first in range(0, len(items), batch):
        chunk = items[first : first + batch]
        t0 = time.process_time()
        fps = [fingerprint(item, settings) for item in chunk]
        t1 = time.process_time()
        for fp, found in zip(fps, index.match_many(fps), strict=True):
            if found is None:
                stories += 1
                story = stories
            else:
                joined += 1
                story = found.story_id
            index.add_fingerprint(fp, story)
        i = first + len(chunk)
        if i // 1000 != first // 1000:
            index.expire(chunk[-1].published)
        index_cpu += time.process_time() - t1
        fp_cpu += t1 - t0
        if i // every != first // every:
            now = time.perf_counter()
            print(
                f"{i:8d} {i / (now - start):9.0f} {every / (now - chunk_start):9.0f} "
                f"{len(index):9d} {index.nbytes / 2**20:8.1f} {rss_mb() - rss0:8.1f} {joined}"
            )
            chunk_start = now
    total = time.perf_counter() - start
    n = len(items)
    print(
        f"total: {n} items in {total:.1f} s = {n / total:.0f} items/s; CPU per item: "
        f"fingerprint {fp_cpu / n * 1e6:.0f} us, match+add+expire {index_cpu / n * 1e6:.0f} us; "
        f"{stories} stories, {joined} items joined one; index {index.nbytes / len(index):.0f} "
        f"bytes per item in the window; load {os.getloadavg()[0]:.1f} (the machine may be shared)"
    )


def run_exact(items: list[Item], settings: StorySettings) -> None:
    by_url: dict[str, int] = {}
    by_hash: dict[str, int] = {}
    stories = 0
    start = time.perf_counter()
    for item in items:
        story = by_url.get(item.url or "") or by_hash.get(item.content_hash)
        if story is None:
            stories += 1
            story = stories
        if item.url:
            by_url[item.url] = story
        by_hash[item.content_hash] = story
    total = time.perf_counter() - start
    print(
        f"exact keys only: {len(items) / total:.0f} items/s, {stories} stories "
        f"(no expiry; window {settings.window / 3600:.0f} h ignored)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--span-hours", type=float, default=216.0)
    ap.add_argument("--mode", choices=["index", "exact"], default="index")
    ap.add_argument("--every", type=int, default=10_000, help="report every this many items")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1, help="items per match_many call")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    items = make_items(args.items, args.span_hours * 3600, args.seed)
    settings = StorySettings()
    print(
        f"built {len(items)} items over {args.span_hours:.0f} h in "
        f"{time.perf_counter() - t:.1f} s; RSS {rss_mb():.1f} MB; window "
        f"{settings.window / 3600:.0f} h"
    )
    if args.mode == "exact":
        run_exact(items, settings)
    else:
        run_index(items, settings, args.every, args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
