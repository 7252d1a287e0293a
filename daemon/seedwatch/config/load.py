"""Read seedwatch.toml (and feeds.toml beside it) into the frozen objects of ``model.py``.

Every table is a list of fields (name, check, default); an unknown key or a wrong type is an
error naming the file, the line and the key. Relative paths are relative to the folder of the
file that holds them. Channel URLs and the storage URL may hold passwords and tokens, so no
message ever repeats them: errors name ``channel.NAME.url`` and say what is wrong.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from seedwatch.config import fields as F
from seedwatch.config.fields import REQUIRED, Field, KeyPath, Source
from seedwatch.config.model import (
    ChannelConfig,
    ClassifierConfig,
    Config,
    FeedConfig,
    HttpConfig,
    MetricsConfig,
    ScheduleConfig,
    StorageConfig,
)
from seedwatch.config.watchlist import check_rule_channels as check_rule_channels
from seedwatch.config.watchlist import load_watchlist as load_watchlist
from seedwatch.errors import ConfigError

FEEDS_FILE = "feeds.toml"
SYSTEM_CONFIG = Path("/etc/seedwatch/seedwatch.toml")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_H = HttpConfig()
_S = ScheduleConfig()

HTTP_FIELDS = (
    Field("user_agent", F.nonempty, _H.user_agent),
    Field("connect_timeout", F.duration(positive=True), _H.connect_timeout),
    Field("deadline", F.duration(positive=True), _H.deadline),
    Field("max_bytes", F.size, _H.max_bytes),
    Field("max_redirects", F.integer(0, 20), _H.max_redirects),
    Field("allow_networks", F.string_list(F.network), _H.allow_networks),
    Field("per_host", F.integer(1, 64), _H.per_host),
    Field("host_gap", F.duration(), _H.host_gap),
)

SCHEDULE_FIELDS = (
    Field("interval", F.duration(positive=True), _S.interval),
    Field("min_interval", F.duration(positive=True), _S.min_interval),
    Field("max_interval", F.duration(positive=True), _S.max_interval),
    Field("max_backoff", F.duration(positive=True), _S.max_backoff),
    Field("failing_after", F.integer(1, 1000), _S.failing_after),
    Field("workers", F.integer(1, 256), _S.workers),
    Field("parse_workers", F.integer(0, 64), _S.parse_workers),
    Field("poll_tick", F.duration(positive=True), _S.poll_tick),
    Field("deliver_tick", F.duration(positive=True), _S.deliver_tick),
    Field("reload_tick", F.duration(positive=True), _S.reload_tick),
    Field("lease", F.duration(positive=True), _S.lease),
)

STORAGE_FIELDS = (
    Field("url", F.secret, None),
    Field("keep", F.duration(positive=True), None),
)

CLASSIFIER_FIELDS = (
    Field("seeds", F.path_beside, None),
    Field("threshold", F.number(0.0, 1.0), None),
    Field("backend", F.nonempty, "lexical"),
)

CHANNEL_FIELDS = (
    Field("url", F.secret, REQUIRED),
    Field("secret", F.secret, None),
    Field("rate_limit", F.integer(1, 1_000_000), None),
)

METRICS_FIELDS = (Field("listen", F.nonempty, None),)

FEED_FIELDS = (
    Field("url", F.nonempty, REQUIRED),
    Field("name", F.nonempty, None),
    Field("interval", F.duration(positive=True), None),
    Field("tags", F.string_list(F.tag), ()),
)

TOP_FIELDS = (
    Field("data_dir", F.path_beside, None),
    Field("watchlist", F.path_beside, None),
    Field("log_level", F.choice(LOG_LEVELS, upper=True), "INFO"),
    Field("operator_channel", F.nonempty, None),
)
TABLES = ("storage", "http", "schedule", "classifier", "channel", "metrics", "feed")

_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_-]+")
_CHANNEL_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def resolve_config_path(
    arg: str | None, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Path:
    """--config, else $SEEDWATCH_CONFIG, else ./config/seedwatch.toml, else /etc/seedwatch/.

    An explicit choice (argument or environment) must exist: falling through to another file
    would run the daemon on a config the operator did not name.
    """
    environ = os.environ if env is None else env
    here = Path.cwd() if cwd is None else cwd
    if arg:
        chosen = (here / arg).resolve()
        if not chosen.is_file():
            raise ConfigError("the file given with --config does not exist", path=str(chosen))
        return chosen
    named = environ.get("SEEDWATCH_CONFIG")
    if named:
        chosen = (here / named).resolve()
        if not chosen.is_file():
            raise ConfigError(
                "the file named by $SEEDWATCH_CONFIG does not exist", path=str(chosen)
            )
        return chosen
    tried = [(here / "config" / "seedwatch.toml").resolve(), SYSTEM_CONFIG]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "no config file found; tried --config (not given), $SEEDWATCH_CONFIG (not set), "
        + ", ".join(str(p) for p in tried),
        hint="pass --config PATH or set SEEDWATCH_CONFIG",
    )


def load_config(path: Path) -> Config:
    """The validated config from ``path`` and ``feeds.toml`` beside it; the first error raises.

    When there are several errors, the rest are attached as exception notes
    (``check_config`` returns them all).
    """
    config, errors = check_config(path)
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(str(other))
        raise first
    assert config is not None
    return config


def check_config(path: Path) -> tuple[Config | None, list[ConfigError]]:
    """The config (None when any error was found) and every error, sorted by file and line."""
    path = Path(path).resolve()
    errors: list[ConfigError] = []
    try:
        main = Source(path, errors)
    except ConfigError as e:
        return None, [e]
    sources = [main]
    feeds_path = path.parent / FEEDS_FILE
    if feeds_path.is_file() and feeds_path != path:
        try:
            sources.append(Source(feeds_path, errors))
        except ConfigError as e:
            errors.append(e)
    config = _build(main, sources[1:], errors)
    order = {str(s.path): n for n, s in enumerate(sources)}
    errors.sort(key=lambda e: (order.get(e.path or "", len(order)), e.line or 0, e.column or 0))
    return (None if errors else config), errors


def _build(main: Source, extra: Sequence[Source], errors: list[ConfigError]) -> Config:
    data = main.data
    for key in data:
        if key not in TABLES and key not in {f.name for f in TOP_FIELDS}:
            main.unknown((), key, [*(f.name for f in TOP_FIELDS), *TABLES])
    top_names = {f.name for f in TOP_FIELDS}
    top = main.take({k: v for k, v in data.items() if k in top_names}, TOP_FIELDS, ())
    folder = main.path.parent

    data_dir: Path = top["data_dir"] or _default_data_dir(folder)
    storage_raw = main.take(data.get("storage", {}), STORAGE_FIELDS, ("storage",))
    storage = StorageConfig(
        url=_storage_url(storage_raw["url"], data_dir, main),
        keep=storage_raw["keep"],
    )
    http = HttpConfig(**main.take(data.get("http", {}), HTTP_FIELDS, ("http",)))
    schedule = ScheduleConfig(**main.take(data.get("schedule", {}), SCHEDULE_FIELDS, ("schedule",)))
    _check_schedule(schedule, main)
    cls = main.take(data.get("classifier", {}), CLASSIFIER_FIELDS, ("classifier",))
    classifier = ClassifierConfig(
        seeds=cls["seeds"] or (folder / "seeds").resolve(),
        threshold=cls["threshold"],
        backend=cls["backend"],
    )
    metrics = MetricsConfig(**main.take(data.get("metrics", {}), METRICS_FIELDS, ("metrics",)))
    if metrics.listen is not None:
        _check_listen(metrics.listen, main)
    channels = _channels(data.get("channel", {}), main)
    operator = top["operator_channel"]
    if operator is not None and operator not in {c.name for c in channels}:
        main.fail(
            ("operator_channel",),
            f"no channel named {operator!r}",
            hint=F.names_hint(operator, [c.name for c in channels]),
        )

    feeds: list[FeedConfig] = []
    seen: dict[str, FeedConfig] = {}
    for src in (main, *extra):
        if src is not main:
            for key in src.data:
                if key != "feed":
                    src.unknown((), key, ["feed"])
        raw = src.data.get("feed", [])
        if not isinstance(raw, list):
            src.fail(("feed",), "expected [[feed]] tables", hint="write each feed as [[feed]]")
            continue
        for i, table in enumerate(raw):
            feed = _feed(table, src, ("feed", i), schedule)
            if feed is None:
                continue
            key = _url_key(feed.url)
            if key in seen:
                first = seen[key].location
                at = f"{first.path}:{first.line}" if first else "?"
                src.fail(("feed", i, "url"), f"duplicate feed URL, first given at {at}")
                continue
            seen[key] = feed
            feeds.append(feed)

    return Config(
        path=main.path,
        data_dir=data_dir,
        storage=storage,
        http=http,
        schedule=schedule,
        classifier=classifier,
        watchlist_path=top["watchlist"] or (folder / "watchlist.toml").resolve(),
        channels=tuple(channels),
        operator_channel=operator,
        feeds=tuple(feeds),
        metrics=metrics,
        log_level=top["log_level"],
        files=tuple(s.path for s in (main, *extra)),
    )


def _default_data_dir(folder: Path) -> Path:
    # systemd's StateDirectory= hands us the writable place; a ':'-list gives several.
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state).resolve() if state else (folder / "data").resolve()


def _storage_url(url: str | None, data_dir: Path, src: Source) -> str:
    if url is None:
        return f"sqlite:///{data_dir / 'seedwatch.db'}"
    if not re.match(r"[a-z][a-z0-9+]*://", url, re.IGNORECASE):
        src.fail(
            ("storage", "url"),
            "is not a SQLAlchemy URL",
            hint='e.g. "sqlite:///../data/seedwatch.db" or "postgresql+psycopg://..."',
        )
        return url
    # sqlite:///relative.db would be relative to the working directory; we promise paths
    # relative to the config file. sqlite:////abs.db and sqlite:// (memory) stay as they are.
    m = re.match(r"(sqlite(?:\+\w+)?:///)([^/].*)$", url)
    if m and not m.group(2).startswith(":memory:"):
        rest, _, query = m.group(2).partition("?")
        target = (src.path.parent / rest).resolve()
        return f"{m.group(1)}{target}" + (f"?{query}" if query else "")
    return url


def _check_schedule(s: ScheduleConfig, src: Source) -> None:
    if s.min_interval > s.max_interval:
        src.fail(("schedule", "min_interval"), "is longer than schedule.max_interval")
    elif not s.min_interval <= s.interval <= s.max_interval:
        src.fail(
            ("schedule", "interval"),
            "must lie between schedule.min_interval and schedule.max_interval",
        )


def _check_listen(listen: str, src: Source) -> None:
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})", listen)
    if m is None or not 0 < int(m.group(2)) < 65536:
        src.fail(
            ("metrics", "listen"),
            f"{listen!r} is not HOST:PORT",
            hint='e.g. "127.0.0.1:9464" or "[::1]:9464"',
        )


def _channels(raw: Any, src: Source) -> list[ChannelConfig]:
    if not isinstance(raw, dict):
        src.fail(("channel",), "expected [channel.NAME] tables")
        return []
    out: list[ChannelConfig] = []
    for name, table in raw.items():
        kp: KeyPath = ("channel", name)
        if not _CHANNEL_NAME.fullmatch(name):
            src.fail(kp, "channel names are letters, digits, '-' and '_'")
            continue
        before = len(src.errors)
        values = src.take(table, CHANNEL_FIELDS, kp)
        if len(src.errors) > before or values["url"] is None:
            continue
        url = _channel_url(values["url"], src, (*kp, "url"))
        if url is None:
            continue
        if url.lower().startswith("webhook+") and not values["secret"]:
            src.fail(
                (*kp, "secret"),
                "a signed webhook channel needs a secret",
                hint='add secret = "..." to sign the Standard Webhooks signature',
            )
            continue
        out.append(
            ChannelConfig(
                name=name,
                url=url,
                secret=values["secret"],
                rate_limit=values["rate_limit"],
                location=src.location(kp),
            )
        )
    return out


def _channel_url(url: str, src: Source, kp: KeyPath) -> str | None:
    """The channel URL with a relative jsonl:// path made absolute; never echoed on error."""
    text = url.strip()
    if text.lower() == "log://" or text.lower().startswith("log://"):
        return text
    if text.lower().startswith("jsonl://"):
        rest = text[len("jsonl://") :]
        if not rest or rest.endswith("/"):
            src.fail(
                kp,
                "a jsonl:// channel needs a file path",
                hint='e.g. "jsonl:///var/lib/seedwatch/alerts.jsonl" or "jsonl://../data/alerts.jsonl"',
            )
            return None
        # jsonl:///abs/file is absolute; jsonl://rel/file is relative to the config folder.
        return "jsonl://" + str((src.path.parent / rest).resolve())
    if text.lower().startswith("webhook+"):
        try:
            parts = urlsplit(text[len("webhook+") :])
        except ValueError:
            parts = None
        if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            src.fail(kp, "a webhook channel URL is webhook+https://HOST/PATH (or webhook+http://)")
            return None
        return text
    if not _CHANNEL_SCHEME.match(text):
        src.fail(
            kp,
            "is not a channel URL (an Apprise URL such as mailto://, tgram://, "
            "ntfy://; or jsonl://, log://, webhook+https://)",
        )
        return None
    return text


def _feed(table: Any, src: Source, kp: KeyPath, schedule: ScheduleConfig) -> FeedConfig | None:
    before = len(src.errors)
    v = src.take(table, FEED_FIELDS, kp)
    if len(src.errors) > before or v["url"] is None:
        return None
    url = str(v["url"]).strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises on a port out of range
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host:
        src.fail((*kp, "url"), "a feed URL must be http:// or https:// with a host name")
        return None
    interval = v["interval"]
    if interval is not None and interval < schedule.min_interval:
        src.fail(
            (*kp, "interval"),
            f"{interval:g}s is shorter than schedule.min_interval ({schedule.min_interval:g}s)",
            hint="raise the feed's interval or lower [schedule] min_interval",
        )
        return None
    return FeedConfig(
        url=url,
        name=v["name"] or host,
        interval=interval,
        tags=tuple(dict.fromkeys(v["tags"])),
        location=src.location((*kp, "url")),
    )


def _url_key(url: str) -> str:
    """Scheme and host are case-insensitive; the path is not."""
    parts = urlsplit(url)
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    path = parts.path or "/"
    return f"{parts.scheme.lower()}://{netloc}{path}" + (f"?{parts.query}" if parts.query else "")
