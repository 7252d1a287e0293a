"""Measure story folding on SemEval-2022 Task 8 article pairs.

    .venv/bin/python bench/eval_stories.py [--split train|test|all] [--pipeline] [--show N]

Pairs whose id carries a language suffix (machine-translated augmentations) are dropped; a pair
is the same story when Overall <= 1.5 and different stories when Overall >= 3.5; the rest are
left out; a pair listed twice in a file counts once. The corpus has no title column (headline
and body are glued; split_title cuts them apart, as a feed would give them). Each pair's two
articles become Items of two different feeds, built by seedwatch.normalize from ParsedItem
values the way the pipeline builds them, and go through StoryIndex.find/add; the pair counts
as folded when the second article joins the first one's story. Every pair gets its own slot
in time, one window apart, so the pairs never see each other and the index expires as it
slides.

``--pipeline`` runs the same pairs through the real daemon instead: feeds on the loopback
feed server, poll passes (fetch, parse, normalize, classify, rules, story index, store_batch
into SQLite), and the story ids read back from the database; see ``evaluate_pipeline``.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from sqlalchemy import select

from seedwatch.normalize import normalize
from seedwatch.stories import StoryIndex, StorySettings
from seedwatch.types import FeedRef, Item, ParsedItem

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/corpora/semeval2022-task8/data"
FILES = {"train": "training_set.csv", "test": "testing_set.csv"}
BASE_TIME = datetime(2020, 1, 1, tzinfo=UTC)
TITLE_WORDS = 15
FEED_A = FeedRef(id=1, url="https://a.example/feed", name="a")
FEED_B = FeedRef(id=2, url="https://b.example/feed", name="b")


@dataclass(frozen=True)
class Pair:
    pair_id: str
    split: str
    lang1: str
    lang2: str
    text1: str
    text2: str
    same: bool  # gold: one story

    @property
    def cross(self) -> bool:
        return self.lang1 != self.lang2


def load_pairs(data: Path, splits: Iterable[str]) -> list[Pair]:
    csv.field_size_limit(1 << 30)
    pairs: list[Pair] = []
    for split in splits:
        seen: set[str] = set()
        with (data / FILES[split]).open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if re.search(r"[a-z]", row["pair_id"]):
                    continue  # translated augmentation
                if row["pair_id"] in seen:
                    continue  # the files repeat some pairs (same texts, same scores)
                seen.add(row["pair_id"])
                overall = float(row["Overall"])
                if 1.5 < overall < 3.5:
                    continue
                pairs.append(
                    Pair(
                        row["pair_id"],
                        split,
                        row["lang1"],
                        row["lang2"],
                        row["text1"],
                        row["text2"],
                        overall <= 1.5,
                    )
                )
    return pairs


def split_title(raw: str) -> tuple[str, str]:
    """The corpus glues headline and body; feeds give them apart. Cut at the first break."""
    raw = raw.strip()
    for sep in ("\n", "  "):
        cut = raw.find(sep)
        if 0 < cut < 300:
            return raw[:cut].strip(), raw[cut:].strip()
    # No break: the headline runs into the first sentence. Headlines are rarely longer than
    # TITLE_WORDS words, so cut there (or at a sentence end, if sooner).
    m = re.search(r"[.!?]\s", raw[:300])
    head = raw[: m.end()] if m else raw
    words = head.split()
    if len(words) > TITLE_WORDS:
        words = words[:TITLE_WORDS]
    cut = len(" ".join(words))
    return raw[:cut].strip(), raw[cut:].strip()


def make_item(feed: FeedRef, article_id: str, raw: str, lang: str, when: datetime) -> Item:
    title, body = split_title(raw)
    parsed = ParsedItem(
        guid=None,
        link=f"https://{feed.name}.example/articles/{article_id}",
        title=title,
        summary="",
        content=body,
        published=when,
        updated=None,
        language=lang,  # what the feed's <language> would say
    )
    return normalize(feed, parsed, fetched_at=when)


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, gold: bool, folded: bool, reason: str) -> None:
        if folded:
            self.reasons[reason] += 1
        if gold and folded:
            self.tp += 1
        elif folded:
            self.fp += 1
        elif gold:
            self.fn += 1
        else:
            self.tn += 1

    def line(self, name: str) -> str:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        n = self.tp + self.fp + self.fn + self.tn
        return (
            f"{name:<16} n={n:4d} same={self.tp + self.fn:3d} diff={self.fp + self.tn:3d}  "
            f"TP={self.tp:3d} FP={self.fp:3d} FN={self.fn:3d}  "
            f"P={p:.3f} R={r:.3f} F1={f:.3f}  {dict(self.reasons)}"
        )


Judge = Callable[[Pair, int], tuple[bool, str]]


def index_judge(settings: StorySettings) -> Judge:
    """Fold each pair through one StoryIndex, the way storage + daemon call it."""
    index = StoryIndex(settings)
    slot = timedelta(seconds=settings.window + 3600)

    def judge(pair: Pair, n: int) -> tuple[bool, str]:
        when = BASE_TIME + n * slot
        index.expire(when)
        id1, id2 = pair.pair_id.split("_")
        a = make_item(FEED_A, id1, pair.text1, pair.lang1, when)
        b = make_item(FEED_B, id2, pair.text2, pair.lang2, when)
        story_a = index.find(a)
        if story_a is None:
            story_a = 2 * n + 1
        index.add(a, story_a)
        found = index.match(index.fingerprint(b))
        story_b = found.story_id if found else 2 * n + 2
        index.add(b, story_b)
        return story_b == story_a, found.similarity.reason if found else ""

    return judge


def _rss(items: list[dict[str, str]], language: str) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
        f"<title>eval</title><link>http://example.org/</link><description>eval</description>"
        f"<language>{escape(language)}</language>",
    ]
    for it in items:
        parts.append("<item>")
        parts.extend(f"<{k}>{escape(v)}</{k}>" for k, v in it.items())
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def _config(tmp: Path, feeds: list[tuple[str, str]]) -> Path:
    seeds = Path(__file__).resolve().parents[1] / "seeds"
    feed_tables = "".join(f'[[feed]]\nurl = "{u}"\nname = "{n}"\n\n' for n, u in feeds)
    (tmp / "watchlist.toml").write_text(
        '[[rule]]\nname = "never"\nquery = "zzqqxxzz"\nchannels = ["jsonl"]\n',
        encoding="utf-8",
    )
    cfg = tmp / "seedwatch.toml"
    cfg.write_text(
        f'data_dir = "{tmp}"\n\n[storage]\nurl = "sqlite:///{tmp / "eval.db"}"\n\n'
        '[http]\nallow_networks = ["127.0.0.0/8"]\nhost_gap = 0\n\n'
        # One worker: the feeds are stored in the order they are listed (side a first).
        '[schedule]\nworkers = 1\n\n'
        f'[classifier]\nseeds = "{seeds}"\n\n'
        f'[channel.jsonl]\nurl = "jsonl://{tmp / "alerts.jsonl"}"\n\n{feed_tables}',
        encoding="utf-8",
    )
    return cfg


@dataclass
class _FixedClock:
    at: datetime

    def now(self) -> datetime:
        return self.at


def evaluate_pipeline(pairs: list[Pair], slot_hours: float = 73.0, chunk: int = 50) -> Judge:
    """Serve the pairs as feeds on 127.0.0.1 and run real poll passes over them.

    Side a of every pair goes into feed "a-<lang>", side b into "b-<lang>" (the feed's
    <language> is the pair's, as in the direct mode). Pair n is dated n slots (one story window
    and an hour) after the first, so pairs never meet in the window; each article links to a
    host of its own (a<n>.example, b<n>.example), so no outlet has enough items for a template,
    as in the direct mode where every pair is alone in the index. The feeds carry ``chunk``
    pairs per poll pass; between passes the clock moves past the chunk and the story index
    expires what left the window, as the daemon's tick does (without it every pair would sit in
    the index at once and crowd the posting lists). Both articles go through fetch, parse,
    normalize, classify, rules, the story index and store_batch into a fresh SQLite file, and
    the pair counts as folded when storage put both items in one story.
    """
    import tempfile

    from seedwatch.demo.server import FeedServer
    from seedwatch.poller import poll_due
    from seedwatch.runtime import Runtime
    from seedwatch.storage.models import ItemRecord

    slot = timedelta(hours=slot_hours)
    langs = sorted({p.lang1 for p in pairs} | {p.lang2 for p in pairs})
    names = [f"{side}-{lang}" for side in ("a", "b") for lang in langs]
    urls: dict[str, tuple[str, str]] = {}
    story_of: dict[str, int | None] = {}
    with tempfile.TemporaryDirectory(prefix="eval-stories-") as tmpdir, FeedServer() as srv:
        tmp = Path(tmpdir)
        feeds = [(name, srv.url(f"/{name}.xml")) for name in names]
        for name in names:
            srv.add(f"/{name}.xml", body=_rss([], name.split("-", 1)[1]))
        clock = _FixedClock(BASE_TIME)
        rt = Runtime.start(_config(tmp, feeds), clock=clock)
        try:
            for start in range(0, len(pairs), chunk):
                docs: dict[str, list[dict[str, str]]] = {name: [] for name in names}
                for n in range(start, min(start + chunk, len(pairs))):
                    pair = pairs[n]
                    when = format_datetime(BASE_TIME + n * slot)
                    id1, id2 = pair.pair_id.split("_")
                    links = (
                        f"https://a{n}.example/articles/{id1}",
                        f"https://b{n}.example/articles/{id2}",
                    )
                    urls[pair.pair_id] = links
                    for side, raw, lang, link in (
                        ("a", pair.text1, pair.lang1, links[0]),
                        ("b", pair.text2, pair.lang2, links[1]),
                    ):
                        title, body = split_title(raw)
                        docs[f"{side}-{lang}"].append(
                            {"title": title, "link": link, "description": body, "pubDate": when}
                        )
                for name, items in docs.items():
                    srv.add(f"/{name}.xml", body=_rss(items, name.split("-", 1)[1]))
                clock.at = BASE_TIME + (start + chunk) * slot
                rt.expire_stories()
                report = poll_due(rt, all_feeds=True)
                if report.failed:
                    raise SystemExit(f"pipeline poll failed: {report.errors[:3]}")
            with rt.sessions() as s:
                for url, sid in s.execute(select(ItemRecord.url, ItemRecord.story_id)).all():
                    if url is not None:
                        story_of[url] = sid
        finally:
            rt.close()

    def judge(pair: Pair, n: int) -> tuple[bool, str]:
        a, b = (story_of.get(u) for u in urls[pair.pair_id])
        if a is None or b is None:
            return False, "missing"
        return a == b, "pipeline"

    return judge


def run(pairs: list[Pair], judge: Judge, show: int) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}
    mistakes: list[tuple[Pair, bool, str]] = []
    for n, pair in enumerate(pairs):
        folded, reason = judge(pair, n)
        subset = "cross-language" if pair.cross else "same-language"
        for name in (subset, f"{subset}/{pair.split}", f"  {pair.lang1}-{pair.lang2}"):
            tallies.setdefault(name, Tally()).add(pair.same, folded, reason)
        if folded != pair.same:
            mistakes.append((pair, folded, reason))
    for pair, folded, reason in mistakes[:show]:
        kind = f"FP({reason})" if folded else "FN"
        print(
            f"{kind} {pair.pair_id} {pair.lang1}-{pair.lang2}: "
            f"{split_title(pair.text1)[0][:70]!r} | {split_title(pair.text2)[0][:70]!r}"
        )
    return tallies


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--split", choices=["train", "test", "all"], default="all")
    ap.add_argument(
        "--pipeline", action="store_true", help="through the real poller, pipeline and storage"
    )
    ap.add_argument("--show", type=int, default=0, help="print this many mistakes")
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"corpus absent: {args.data}", file=sys.stderr)
        return 2
    splits = ["train", "test"] if args.split == "all" else [args.split]
    pairs = load_pairs(args.data, splits)
    settings = StorySettings()
    tallies: dict[str, Tally] = {}
    for split in splits:
        part = [p for p in pairs if p.split == split]
        judge = evaluate_pipeline(part) if args.pipeline else index_judge(settings)
        for name, tally in run(part, judge, args.show).items():
            total = tallies.setdefault(name, Tally())
            total.tp += tally.tp
            total.fp += tally.fp
            total.fn += tally.fn
            total.tn += tally.tn
            total.reasons.update(tally.reasons)
    print(f"settings: {asdict(settings)}")
    mode = "pipeline" if args.pipeline else "index"
    print(f"pairs: {len(pairs)} from {splits}, mode={mode}")
    order = sorted(tallies, key=lambda k: (k.startswith(" "), k))
    for name in order:
        print(tallies[name].line(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
