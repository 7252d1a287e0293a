"""Stories through the real poller: feeds served on 127.0.0.1, fetched, parsed, normalized,
folded and stored in SQLite. Only the clock is fake."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import func, select

from seedwatch.poller import poll_due
from seedwatch.runtime import Runtime
from seedwatch.storage.models import Alert, ItemRecord, Story
from tests.conftest import need_corpus
from tests.support.daemon import Rule, write_config
from tests.support.feedserver import FeedServer
from tests.support.pollkit import FakeClock as Clock

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


def rss(items: list[dict[str, str]]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
        "<title>t</title><link>http://example.org/</link><description>t</description>",
    ]
    for it in items:
        parts.append("<item>")
        parts.extend(f"<{k}>{escape(v)}</{k}>" for k, v in it.items())
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def count(rt: Runtime, model: type[object]) -> int:
    with rt.sessions() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def poll_all(rt: Runtime) -> None:
    report = poll_due(rt, all_feeds=True)
    assert report.failed == 0, report.errors


# -- RIA: two files sharing 809 article ids, one repeating rows ------------------------------

RIA_ID = re.compile(r"-(\d+)(?:\.html)?$")


def ria_feed(path: Path) -> tuple[bytes, set[str]]:
    csv.field_size_limit(1 << 30)
    items: list[dict[str, str]] = []
    ids: set[str] = set()
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            when = datetime.strptime(row["datetime"], "%H:%M %d.%m.%Y").replace(tzinfo=UTC)
            items.append(
                {
                    "title": row["title"].strip(),
                    "link": row["url"],
                    "description": row["content"],
                    "pubDate": format_datetime(when - timedelta(hours=3)),  # Moscow time
                }
            )
            ids.add(row["id"])
    return rss(items), ids


@pytest.mark.slow
def test_ria_shared_articles_are_stored_once(tmp_path: Path) -> None:
    data = need_corpus("ria-news-ru", "data")
    body7, ids7 = ria_feed(data / "ria_news_topics_7.csv")
    body9, ids9 = ria_feed(data / "ria_news_topics_9.csv")
    assert len(ids7 & ids9) == 809
    with FeedServer() as srv:
        srv.add("/7.xml", body=body7)
        srv.add("/9.xml", body=body9)
        cfg = write_config(
            tmp_path, [("ria7", srv.url("/7.xml")), ("ria9", srv.url("/9.xml"))],
            [Rule("never", "zzqqxx")],
        )
        rt = Runtime.start(cfg, clock=Clock(datetime(2023, 12, 5, tzinfo=UTC)))
        try:
            poll_all(rt)
            with rt.sessions() as s:
                urls = s.execute(select(ItemRecord.url)).scalars().all()
        finally:
            rt.close()
    # 965 articles (ids); the files differ for 9 of the shared ones: 4 bodies edited under the
    # same URL and headline, 5 re-dated URLs (/20231203/ -> /20231204/) over the same text.
    per_id = Counter(m.group(1) for u in urls if u and (m := RIA_ID.search(u)))
    assert len(urls) == 965
    assert set(per_id) == ids7 | ids9
    assert [i for i, n in per_id.items() if n > 1] == []


# -- feeds that change GUIDs on every fetch, or re-post an item with a new date -----------


class Flaky:
    """A feed whose GUIDs change on every fetch, and which re-posts its item dated anew."""

    def __init__(self) -> None:
        self.fetches = 0

    def __call__(self, req: BaseHTTPRequestHandler) -> None:
        self.fetches += 1
        n = self.fetches
        body = rss(
            [
                {
                    "title": "CSTO security chiefs meet in Minsk",
                    "link": "https://flaky.example/news/csto-minsk",
                    "guid": f"urn:uuid:{n}-a",
                    "description": "Security chiefs of the CSTO met in Minsk on Tuesday to "
                    "discuss border security and joint exercises in Central Asia.",
                    "pubDate": format_datetime(T0 + timedelta(hours=n)),
                },
                {
                    # no link: identity is GUID or title + date, both new every time
                    "title": "Kyrgyz border service reports calm in Batken",
                    "guid": f"urn:uuid:{n}-b",
                    "description": "The Kyrgyz border service said the situation in Batken "
                    "region was calm, a day after talks with Tajik border guards in Isfara.",
                    "pubDate": format_datetime(T0 + timedelta(hours=n)),
                },
            ]
        )
        req.send_response(200)
        req.send_header("Content-Type", "application/rss+xml")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)


def test_changing_guids_and_new_dates_make_no_new_stories_or_alerts(tmp_path: Path) -> None:
    flaky = Flaky()
    with FeedServer() as srv:
        srv.add("/flaky.xml", handler=flaky)
        cfg = write_config(
            tmp_path, [("flaky", srv.url("/flaky.xml"))], [Rule("watch", "csto OR batken")]
        )
        clock = Clock(T0)
        rt = Runtime.start(cfg, clock=clock)
        try:
            poll_all(rt)
            first = (count(rt, ItemRecord), count(rt, Story), count(rt, Alert))
            assert first == (2, 2, 2)
            for _ in range(3):
                clock.advance(3600)
                poll_all(rt)
            assert flaky.fetches == 4
            assert (count(rt, ItemRecord), count(rt, Story), count(rt, Alert)) == first
        finally:
            rt.close()
