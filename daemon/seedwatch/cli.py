"""The `seedwatch` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from seedwatch import __version__
from seedwatch.errors import ConfigError, SeedwatchError

log = logging.getLogger("seedwatch")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Third-party chatter (every APScheduler tick, urllib3 connection reuse) drowns our lines.
    for noisy in ("apscheduler", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _row_dict(row: Any) -> dict[str, Any]:
    if is_dataclass(row) and not isinstance(row, type):
        return {k: _jsonable(v) for k, v in asdict(row).items()}
    if isinstance(row, dict):
        return {k: _jsonable(v) for k, v in row.items()}
    raise TypeError(f"cannot render {type(row).__name__}")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _clip(text: str | None, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


# -- commands ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from seedwatch.config import resolve_config_path
    from seedwatch.daemon import run_daemon

    return run_daemon(resolve_config_path(args.config))


def _runtime(args: argparse.Namespace) -> Any:
    from seedwatch.config import resolve_config_path
    from seedwatch.runtime import Runtime

    return Runtime.start(resolve_config_path(args.config))


def _sessions(args: argparse.Namespace) -> Any:
    """A session factory for read-only commands: the config and the database, nothing else."""
    from seedwatch.config import load_config, resolve_config_path
    from seedwatch.storage.db import make_sessionmaker, open_database

    config = load_config(resolve_config_path(args.config))
    return config, make_sessionmaker(open_database(config.storage.url))


def cmd_poll(args: argparse.Namespace) -> int:
    import random

    from seedwatch.alerts.deliver import deliver_due
    from seedwatch.alerts.schedule import digest_rule_names
    from seedwatch.poller import poll_due

    rt = _runtime(args)
    try:
        rt.rebuild_story_index()
        report = poll_due(rt, all_feeds=args.all)
        delivery = deliver_due(
            rt.sessions, rt.channels, now=rt.clock.now(), owner=rt.owner,
            lease=rt.config.schedule.lease, rng=random.Random(),
            operator_channel=rt.config.operator_channel,
            digest_rules=digest_rule_names([r.config for r in rt.watchlist.rules]),
        )
    finally:
        rt.close()
    print(
        f"polled {report.feeds} feeds: {report.ok} ok, {report.failed} failed; "
        f"{report.new_items} new items, {report.duplicates} duplicates, "
        f"{report.alerts} alerts queued; delivered {delivery.sent}, "
        f"failed {delivery.failed}, dead {delivery.dead}"
    )
    for err in report.errors:
        print(f"  failed: {err}", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from seedwatch.alerts.channels import build_channels
    from seedwatch.classify import load_seeds
    from seedwatch.config import check_config, load_watchlist, resolve_config_path
    from seedwatch.config.load import check_rule_channels
    from seedwatch.rules import compile_watchlist

    errors: list[str] = []
    config, problems = check_config(resolve_config_path(args.config))
    if config is None or problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    print(f"config: {config.path} ({len(config.feeds)} feeds, {len(config.channels)} channels)")
    try:
        build_channels(config.channels, config.http)
    except SeedwatchError as e:
        errors.append(str(e))
    try:
        wl = load_watchlist(config.watchlist_path)
        errors.extend(str(e) for e in check_rule_channels(config, wl))
        compiled = compile_watchlist(wl)
        print(f"watchlist: {config.watchlist_path} ({len(compiled.rules)} rules)")
    except SeedwatchError as e:
        errors.append(str(e))
    try:
        seeds = load_seeds(config.classifier.seeds)
        described = ", ".join(
            f"{t.name}: {len(t.seeds)} seeds, {len(t.counter)} counter-examples"
            for t in seeds.topics
        )
        print(f"seeds: {config.classifier.seeds} ({described})")
    except SeedwatchError as e:
        errors.append(str(e))
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    if errors:
        return 1
    print("ok")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from seedwatch.clock import utcnow
    from seedwatch.runtime import CONFIG_ERROR, SEEDS_ERROR, WATCHLIST_ERROR
    from seedwatch.storage import queries

    _config, sessions = _sessions(args)
    now = utcnow()
    with sessions() as s:
        rows = queries.feed_status(s, now)
        health = queries.health_summary(s, now)
        problems = {k: queries.get_state(s, k) for k in (CONFIG_ERROR, WATCHLIST_ERROR,
                                                          SEEDS_ERROR)}
    if args.json:
        for row in rows:
            print(json.dumps(_row_dict(row), ensure_ascii=False))
        return 0
    table = [
        [
            _clip(r.name, 28),
            "gone" if r.gone else ("inactive" if not r.active else
                                   ("stale" if r.stale else "active")),
            _when(r.last_success_at),
            _clip(f"{_when(r.last_error_at)} {r.last_error}" if r.last_error else "-", 50),
            str(r.error_count),
            str(r.items),
            _when(r.next_check_at),
        ]
        for r in rows
    ]
    print(_table(table, ["feed", "state", "last success", "last error", "errors", "items",
                         "next check"]))
    print()
    for key, value in asdict(health).items():
        print(f"{key.replace('_', ' ')}: {_jsonable(value)}")
    for key, text in problems.items():
        if text:
            print(f"{key.replace('_', ' ')}: {text}")
    return 0


def cmd_items(args: argparse.Namespace) -> int:
    from seedwatch.storage import queries

    _, sessions = _sessions(args)
    with sessions() as s:
        rows = queries.list_items(s, search=args.search, limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(_row_dict(row), ensure_ascii=False))
        return 0
    for r in rows:
        rules = ",".join(r.rules) if r.rules else ""
        also = f"  also: {', '.join(r.also_reported_by)}" if r.also_reported_by else ""
        print(f"{_when(r.published)}  {r.score:0.2f}  [{_clip(r.feed, 18)}] "
              f"{_clip(r.title, 90)}" + (f"  rules: {rules}" if rules else "") + also)
        if r.url:
            print(f"    {r.url}")
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from seedwatch.clock import utcnow
    from seedwatch.storage import queries

    _, sessions = _sessions(args)
    if args.retry:
        with sessions() as s:
            ok = queries.retry_alert(s, args.retry, utcnow())
            s.commit()
        print(f"alert {args.retry}: {'queued for retry' if ok else 'no such alert'}")
        return 0 if ok else 1
    with sessions() as s:
        rows = queries.list_alerts(s, limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(_row_dict(row), ensure_ascii=False))
        return 0
    table = [
        [r.id[:12], _clip(r.rule, 24), str(r.item or "-"), str(r.story or "-"),
         r.channel, r.status, str(r.attempts), _clip(r.last_error or "", 40)]
        for r in rows
    ]
    print(_table(table, ["id", "rule", "item", "story", "channel", "status", "attempts",
                         "last error"]))
    return 0


def cmd_stories(args: argparse.Namespace) -> int:
    from seedwatch.storage import queries

    _, sessions = _sessions(args)
    with sessions() as s:
        rows = queries.list_stories(s, limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(_row_dict(row), ensure_ascii=False))
        return 0
    for r in rows:
        print(f"{_when(r.first_seen)}  story {r.id}  {r.size} item(s)  {_clip(r.headline, 90)}")
        if r.outlets:
            print(f"    outlets: {', '.join(r.outlets)}")
        for it in r.items:
            print(f"    {_when(it.published)}  [{_clip(it.feed, 18)}] {_clip(it.title, 80)}")
    return 0


def cmd_feeds(args: argparse.Namespace) -> int:
    from seedwatch.clock import utcnow
    from seedwatch.opml import parse_opml, to_opml
    from seedwatch.storage import queries

    _, sessions = _sessions(args)
    if args.feeds_cmd == "import":
        path = Path(args.file)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read: {e.strerror}", path=str(path)) from e
        feeds = parse_opml(data, source=str(path))
        with sessions() as s:
            added = queries.add_feeds(s, feeds, utcnow(), source="import")
            s.commit()
        print(f"{path}: {len(feeds)} feeds read, {added} new")
        return 0
    with sessions() as s:
        feeds = queries.all_feeds(s)
    sys.stdout.write(to_opml(feeds))
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from seedwatch.backtest import run_backtest
    from seedwatch.clock import utcnow
    from seedwatch.config.units import parse_duration

    config, sessions = _sessions(args)
    return run_backtest(
        config,
        sessions,
        since=parse_duration(args.since, key="--since"),
        rule=args.rule,
        watchlist_path=Path(args.watchlist) if args.watchlist else None,
        out=sys.stdout,
        now=utcnow(),
    )


def cmd_label(args: argparse.Namespace) -> int:
    from seedwatch.label import run_label

    config, sessions = _sessions(args)
    return run_label(config, sessions, args.item, args.verdict, args.topic, sys.stdout)


def cmd_score(args: argparse.Namespace) -> int:
    from seedwatch.classify import run_score_command

    return run_score_command(
        Path(args.seeds), args.threshold, sys.stdin, sys.stdout, backend=args.backend
    )


def cmd_db(args: argparse.Namespace) -> int:
    from seedwatch.config import load_config, resolve_config_path
    from seedwatch.storage.copy import run_db_copy
    from seedwatch.storage.db import open_database

    if args.db_cmd == "copy":
        return run_db_copy(args.from_url, args.to_url, sys.stdout)

    config = load_config(resolve_config_path(args.config))
    open_database(config.storage.url, upgrade=True).dispose()
    print("database is at the latest schema")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from seedwatch.demo import run_demo

    return run_demo(seconds=args.seconds)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seedwatch",
        description="Poll news feeds, fold stories, score against seeds, alert on watch rules.",
    )
    p.add_argument("--version", action="version", version=f"seedwatch {__version__}")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default: config)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--config", help="config file (default: $SEEDWATCH_CONFIG, "
                        "./config/seedwatch.toml, /etc/seedwatch/seedwatch.toml)")
        return sp

    add("run", "run the daemon in the foreground").set_defaults(func=cmd_run)
    sp = add("poll", "poll every due feed once, deliver due alerts, exit")
    sp.add_argument("--all", action="store_true", help="every active feed, due or not")
    sp.set_defaults(func=cmd_poll)
    add("check", "validate config, watchlist and seeds").set_defaults(func=cmd_check)
    sp = add("status", "one line per feed, then health")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_status)
    sp = add("items", "stored items, newest first")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--search", metavar="TEXT")
    sp.add_argument("--limit", type=int, default=50)
    sp.set_defaults(func=cmd_items)
    sp = add("alerts", "alerts and their delivery state")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--limit", type=int, default=100)
    sp.add_argument("--retry", metavar="ID", help="queue a failed or dead alert again")
    sp.set_defaults(func=cmd_alerts)
    sp = add("stories", "stories with their items")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--limit", type=int, default=50)
    sp.set_defaults(func=cmd_stories)
    sp = add("backtest", "what the watchlist would have alerted on among stored items; "
             "sends nothing")
    sp.add_argument("--since", default="7d", help="how far back, e.g. 7d, 36h (default 7d)")
    sp.add_argument("--rule", metavar="NAME", help="only this rule")
    sp.add_argument("--watchlist", metavar="PATH", help="try an edited watchlist instead")
    sp.set_defaults(func=cmd_backtest)
    sp = add("label", "turn a stored item into a seed (relevant) or counter-example "
             "(irrelevant)")
    sp.add_argument("item", type=int, metavar="ITEM")
    sp.add_argument("verdict", choices=["relevant", "irrelevant"])
    sp.add_argument("--topic", default=None, help="seed topic (default: the item's topic)")
    sp.set_defaults(func=cmd_label)
    sp = add("feeds", "import or export feeds as OPML 2.0")
    fsub = sp.add_subparsers(dest="feeds_cmd", required=True)
    imp = fsub.add_parser("import", help="add the feeds of an OPML file")
    imp.add_argument("file")
    imp.add_argument("--config")
    exp = fsub.add_parser("export", help="write every feed as OPML to stdout")
    exp.add_argument("--config")
    sp.set_defaults(func=cmd_feeds)
    sp = sub.add_parser("score", help="score JSON lines from stdin against a seeds folder")
    sp.add_argument("--seeds", required=True, help="seeds folder")
    sp.add_argument("--threshold", type=float, default=None)
    sp.add_argument("--backend", default="lexical")
    sp.set_defaults(func=cmd_score)
    sp = add("db", "database maintenance")
    dsub = sp.add_subparsers(dest="db_cmd", required=True)
    up = dsub.add_parser("upgrade", help="apply schema migrations")
    up.add_argument("--config")
    cp = dsub.add_parser("copy", help="copy every table to another database (e.g. to PostgreSQL)")
    cp.add_argument("from_url", help="SQLAlchemy URL to read")
    cp.add_argument("to_url", help="SQLAlchemy URL to write (must be empty)")
    sp.set_defaults(func=cmd_db)
    sp = sub.add_parser("demo", help="see the whole pipeline work on local sample feeds")
    sp.add_argument("--seconds", type=float, default=24.0, help="how long to run")
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level or "INFO")
    try:
        code: int = args.func(args)
        return code
    except SeedwatchError as e:
        print(f"seedwatch: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
