"""`seedwatch demo`: the whole pipeline on local sample feeds, with no network, in half a minute.

It serves the sample feeds in ``feeds/`` on 127.0.0.1, writes a throw-away config, database and
JSONL alert file in a temporary folder, runs the real daemon, and narrates: items arriving,
alerts firing, a new story published mid-run, and a watchlist edit picked up without a restart.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from seedwatch.demo.server import FeedServer

HERE = Path(__file__).resolve().parent
FEEDS = {
    "/central-asia-wire.xml": "Central Asia Wire",
    "/sng-novosti.xml": "Новости СНГ",
    "/markets-and-sport.xml": "Markets and Sport",
    "/steppe-herald.xml": "Steppe Herald",
}

WATCHLIST = """\
# Demo watchlist: edited by the demo while the daemon runs.
[aliases]
CIS = ["СНГ", "Commonwealth of Independent States"]
CSTO = ["ОДКБ", "Collective Security Treaty Organization"]

[[rule]]
name = "security-services"
query = '(CIS OR CSTO) AND (security OR intelligence OR спецслужб* OR безопасност*)'
channels = ["jsonl"]

[[rule]]
name = "terrorism-ru"
query = 'террор* OR экстремист*'
channels = ["jsonl"]
"""

NEW_RULE = """
[[rule]]
name = "border-incidents"
query = 'border AND (shooting OR clash OR incident)'
channels = ["jsonl"]
"""

NEW_ITEM = """<item>
  <title>CSTO border guards report a shooting incident on the Tajik-Afghan border</title>
  <link>http://demo.invalid/en/4</link>
  <guid>demo-en-4</guid>
  <pubDate>Sat, 28 Nov 2026 06:00:00 GMT</pubDate>
  <description>Security services of the Collective Security Treaty Organization said a border
  patrol came under fire near Panj on 27 November; two guards were wounded. The incident is
  under investigation.</description>
</item>
"""

SAME_STORY = """<item>
  <title>Two guards wounded in shooting incident on Tajik-Afghan border, CSTO says</title>
  <link>http://herald.demo.invalid/security/panj-shooting</link>
  <guid>herald-2</guid>
  <pubDate>Sat, 28 Nov 2026 06:40:00 GMT</pubDate>
  <description>A border patrol came under fire near Panj on 27 November, security services of
  the Collective Security Treaty Organization said. Two guards were wounded; the incident is
  under investigation.</description>
</item>
"""


def _seeds_dir() -> Path:
    """The project's own seeds/ when run from a checkout, else the demo's bundled seed."""
    repo_seeds = HERE.parents[2] / "seeds"
    if any(repo_seeds.glob("*.txt")):
        return repo_seeds
    return HERE / "seeds"


def _config(tmp: Path, srv: FeedServer, seeds: Path) -> str:
    feeds = "\n".join(
        f'[[feed]]\nurl = "{srv.url(path)}"\nname = "{name}"\ninterval = "2s"\n'
        for path, name in FEEDS.items()
    )
    return f"""\
data_dir = "{tmp}"
watchlist = "watchlist.toml"
operator_channel = "log"
log_level = "WARNING"

[storage]
url = "sqlite:///{tmp / 'demo.db'}"

[http]
allow_networks = ["127.0.0.1/32"]
host_gap = 0
deadline = 5

[schedule]
interval = "2s"
min_interval = "1s"
poll_tick = "1s"
deliver_tick = "1s"
reload_tick = "1s"

[classifier]
seeds = "{seeds}"

[channel.jsonl]
url = "jsonl://{tmp / 'alerts.jsonl'}"

[channel.log]
url = "log://"

{feeds}
"""


def _say(text: str) -> None:
    print(text, flush=True)


def run_demo(seconds: float = 24.0) -> int:
    from seedwatch.daemon import Daemon
    from seedwatch.runtime import Runtime
    from seedwatch.storage import queries

    tmp = Path(tempfile.mkdtemp(prefix="seedwatch-demo-"))
    logging.getLogger("seedwatch").setLevel(logging.WARNING)
    with FeedServer() as srv:
        bodies = {path: (HERE / "feeds" / path.lstrip("/")).read_bytes() for path in FEEDS}
        for path, body in bodies.items():
            srv.add(path, body=body)
        cfg = tmp / "seedwatch.toml"
        cfg.write_text(_config(tmp, srv, _seeds_dir()), encoding="utf-8")
        (tmp / "watchlist.toml").write_text(WATCHLIST, encoding="utf-8")
        _say(f"seedwatch demo: {len(FEEDS)} sample feeds on http://127.0.0.1:{srv.port}/, "
             f"scratch folder {tmp}")
        _say("config: seedwatch.toml, watchlist.toml (2 rules); alerts go to alerts.jsonl "
             "and, for the operator, the log\n")
        rt = Runtime.start(cfg)
        daemon = Daemon(rt)
        alerts_file = tmp / "alerts.jsonl"
        seen_items: set[int] = set()
        seen_alerts = 0
        started = time.monotonic()

        def show() -> None:
            nonlocal seen_alerts
            with rt.sessions() as s:
                rows = queries.list_items(s, search=None, limit=100)
            for r in reversed(rows):
                if r.id in seen_items:
                    continue
                seen_items.add(r.id)
                rules = f"  matched: {', '.join(r.rules)}" if r.rules else ""
                _say(f"  item   [{r.feed}] {r.title}  (score {r.score:.2f}){rules}")
            if alerts_file.exists():
                lines = alerts_file.read_text(encoding="utf-8").splitlines()
                for line in lines[seen_alerts:]:
                    a = json.loads(line)
                    terms = ", ".join(a.get("terms", []))
                    _say(f"  ALERT  rule={a.get('rule')} id={str(a.get('id'))[:12]} "
                         f"\"{a.get('title')}\" terms: {terms}")
                seen_alerts = len(lines)

        def drive() -> None:
            steps: list[tuple[float, str, Callable[[], None]]] = [
                (seconds * 0.25, "Central Asia Wire publishes a new story (a border shooting)",
                 lambda: publish("/central-asia-wire.xml", NEW_ITEM)),
                (seconds * 0.45, "the analyst adds a rule 'border-incidents' to watchlist.toml "
                 "(no restart)", edit),
                (seconds * 0.6, "Steppe Herald reports the same shooting in its own words: "
                 "one story, so 'security-services' stays quiet and only the new rule alerts",
                 lambda: publish("/steppe-herald.xml", SAME_STORY)),
            ]
            while not daemon.stop.is_set():
                elapsed = time.monotonic() - started
                while steps and elapsed >= steps[0][0]:
                    _, text, action = steps.pop(0)
                    _say(f"\n-- {text}")
                    action()
                show()
                if elapsed >= seconds:
                    daemon.stop.set()
                time.sleep(0.5)

        def publish(path: str, item: str) -> None:
            body = bodies[path].decode("utf-8").replace("</channel>", item + "</channel>")
            bodies[path] = body.encode("utf-8")
            srv.add(path, body=bodies[path])

        def edit() -> None:
            with (tmp / "watchlist.toml").open("a", encoding="utf-8") as f:
                f.write(NEW_RULE)

        _say("-- polling starts")
        driver = threading.Thread(target=drive, name="demo", daemon=True)
        driver.start()
        daemon.run()
        driver.join(timeout=2)
        show()
        with rt.sessions() as s:
            items = len(queries.list_items(s, search=None, limit=10_000))
            alerts = queries.list_alerts(s, limit=10_000)
            stories = queries.list_stories(s, limit=10_000)
        sent = sum(1 for a in alerts if a.status == "sent")
        shared = [st for st in stories if len(st.outlets) > 1]
        for st in shared:
            _say(f"\n  story {st.id} \"{st.headline}\" is carried by {', '.join(st.outlets)}")
        _say(f"\ndone: {items} items in {len(stories)} stories, {len(alerts)} alerts "
             f"({sent} delivered). Look around with:\n"
             f"  seedwatch items --config {cfg}\n  seedwatch stories --config {cfg}\n"
             f"  seedwatch alerts --config {cfg}\n  seedwatch status --config {cfg}")
    if not any(tmp.iterdir()):
        shutil.rmtree(tmp, ignore_errors=True)
    return 0
