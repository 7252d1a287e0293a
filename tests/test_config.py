"""Config loading: the shipped files, every error path, path resolution, durations."""

from __future__ import annotations

import ipaddress
import re
import textwrap
from datetime import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seedwatch.config import (
    check_config,
    check_rule_channels,
    check_watchlist,
    load_config,
    load_watchlist,
    parse_duration,
    parse_size,
    resolve_config_path,
)
from seedwatch.config.tomlpos import scan
from seedwatch.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "seedwatch.toml"
SECRET_URL = "tgram://123456:SECRET-TOKEN-xyz/987"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def errors_of(path: Path) -> list[ConfigError]:
    config, errors = check_config(path)
    assert config is None
    assert errors
    return errors


def one_error(path: Path) -> ConfigError:
    errors = errors_of(path)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


# -- shipped files ---------------------------------------------------------------------------
def test_shipped_config_loads() -> None:
    config = load_config(SHIPPED)
    assert len(config.feeds) >= 15
    assert config.files == (SHIPPED, SHIPPED.parent / "feeds.toml")
    assert config.data_dir == ROOT / "data"
    assert config.storage.url == f"sqlite:///{ROOT / 'data' / 'seedwatch.db'}"
    assert config.classifier.seeds == ROOT / "seeds"
    assert config.http.allow_networks == ()
    assert config.http.max_bytes == 16 * 1024 * 1024
    assert config.schedule.interval == 900.0
    assert config.channel("jsonl") is not None
    assert config.channel("jsonl").url == f"jsonl://{ROOT / 'data' / 'alerts.jsonl'}"  # type: ignore[union-attr]
    assert config.channel("log").url == "log://"  # type: ignore[union-attr]
    assert config.operator_channel == "log"
    assert config.metrics.listen is None
    assert config.watchlist_path == SHIPPED.parent / "watchlist.toml"
    for feed in config.feeds:
        assert feed.url.startswith(("http://", "https://"))
        assert feed.tags and feed.tags[0] in ("en", "ru")
        assert feed.location is not None and feed.location.line is not None


def test_shipped_feeds_each_say_verified_or_unverified() -> None:
    text = (ROOT / "config" / "feeds.toml").read_text(encoding="utf-8")
    blocks = text.split("\n[[feed]]\n")[1:]
    assert len(blocks) >= 15
    for block in blocks:
        assert re.search(r"# (verified: listed valid in |unverified: )\S", block), block


def test_shipped_watchlist_loads_and_channels_exist() -> None:
    config = load_config(SHIPPED)
    watchlist = load_watchlist(config.watchlist_path)
    assert 6 <= len(watchlist.rules) <= 10
    assert check_rule_channels(config, watchlist) == []
    aliases = dict(watchlist.aliases)
    assert "СНГ" in aliases["CIS"] and "ОДКБ" in aliases["CSTO"] and "ШОС" in aliases["SCO"]
    assert any(re.search("[а-я]", r.query) for r in watchlist.rules)  # Russian rules too
    lines = (config.watchlist_path).read_text(encoding="utf-8").splitlines()
    for rule in watchlist.rules:
        assert rule.location is not None and rule.location.line is not None
        assert lines[rule.location.line - 1].startswith("query = ")
        # The conservative subset only: no NEAR/n and no scopes other than title:.
        assert "NEAR/" not in rule.query
        assert not re.search(r"\b(text|url|feed|tag):", rule.query)


# -- resolve_config_path ---------------------------------------------------------------------
def test_resolve_order(tmp_path: Path) -> None:
    a = write(tmp_path, "a.toml", "")
    b = write(tmp_path, "b.toml", "")
    (tmp_path / "config").mkdir()
    local = write(tmp_path / "config", "seedwatch.toml", "")
    env = {"SEEDWATCH_CONFIG": str(b)}
    assert resolve_config_path(str(a), env=env, cwd=tmp_path) == a
    assert resolve_config_path("a.toml", env=env, cwd=tmp_path) == a
    assert resolve_config_path(None, env=env, cwd=tmp_path) == b
    assert resolve_config_path(None, env={}, cwd=tmp_path) == local


def test_resolve_explicit_missing_is_an_error(tmp_path: Path) -> None:
    # An explicit choice never falls through to ./config/seedwatch.toml.
    (tmp_path / "config").mkdir()
    write(tmp_path / "config", "seedwatch.toml", "")
    with pytest.raises(ConfigError, match="--config"):
        resolve_config_path("nope.toml", env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="SEEDWATCH_CONFIG"):
        resolve_config_path(None, env={"SEEDWATCH_CONFIG": "nope.toml"}, cwd=tmp_path)


def test_resolve_nothing_found_lists_tries(tmp_path: Path) -> None:
    if Path("/etc/seedwatch/seedwatch.toml").exists():
        pytest.skip("this machine has /etc/seedwatch/seedwatch.toml")
    with pytest.raises(ConfigError) as info:
        resolve_config_path(None, env={}, cwd=tmp_path)
    text = str(info.value)
    assert str(tmp_path / "config" / "seedwatch.toml") in text
    assert "/etc/seedwatch/seedwatch.toml" in text


# -- defaults and paths ----------------------------------------------------------------------
def test_empty_config_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    config = load_config(write(tmp_path, "s.toml", ""))
    assert config.data_dir == tmp_path / "data"
    assert config.storage.url == f"sqlite:///{tmp_path / 'data' / 'seedwatch.db'}"
    assert config.classifier.seeds == tmp_path / "seeds"
    assert config.watchlist_path == tmp_path / "watchlist.toml"
    assert config.feeds == () and config.channels == ()
    assert config.files == (tmp_path / "s.toml",)


def test_state_directory_is_the_default_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert load_config(write(tmp_path, "s.toml", "")).data_dir == tmp_path / "state"
    # A data_dir written in the file wins.
    path = write(tmp_path, "t.toml", 'data_dir = "here"')
    assert load_config(path).data_dir == tmp_path / "here"


def test_relative_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = write(
        tmp_path / "etc",
        "s.toml",
        """
        watchlist = "rules/w.toml"
        [storage]
        url = "sqlite:///db/x.db?timeout=5"
        [classifier]
        seeds = "../seeds"
        [channel.out]
        url = "jsonl://../out/alerts.jsonl"
        [channel.abs]
        url = "jsonl:///var/tmp/a.jsonl"
        """,
    )
    config = load_config(path)
    assert config.watchlist_path == tmp_path / "etc" / "rules" / "w.toml"
    assert config.storage.url == f"sqlite:///{tmp_path / 'etc' / 'db' / 'x.db'}?timeout=5"
    assert config.classifier.seeds == tmp_path / "seeds"
    assert config.channel("out").url == f"jsonl://{tmp_path / 'out' / 'alerts.jsonl'}"  # type: ignore[union-attr]
    assert config.channel("abs").url == "jsonl:///var/tmp/a.jsonl"  # type: ignore[union-attr]


def test_full_http_schedule_metrics(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.toml",
        """
        [http]
        max_bytes = "512KB"
        allow_networks = [
          "127.0.0.0/8",
          "::1/128",
        ]
        host_gap = 0.5
        [schedule]
        interval = "1h30m"
        min_interval = 2
        max_interval = "7d"
        workers = 3
        [metrics]
        listen = "127.0.0.1:9464"
        [[feed]]
        url = "http://127.0.0.1:8000/a.xml"
        interval = "2s"
        tags = ["RU", "kz"]
        """,
    )
    config = load_config(path)
    assert config.http.max_bytes == 512 * 1024
    assert config.http.allow_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert config.http.host_gap == 0.5
    assert config.schedule.interval == 5400.0 and config.schedule.min_interval == 2.0
    assert config.schedule.workers == 3
    assert config.metrics.listen == "127.0.0.1:9464"
    feed = config.feeds[0]
    assert (feed.name, feed.interval, feed.tags) == ("127.0.0.1", 2.0, ("ru", "kz"))
    assert feed.location is not None and feed.location.line == 16


def test_feeds_in_both_files(tmp_path: Path) -> None:
    main = write(tmp_path, "s.toml", '[[feed]]\nurl = "https://a.example/rss"\nname = "A"\n')
    write(tmp_path, "feeds.toml", '[[feed]]\nurl = "https://b.example/rss"\n')
    config = load_config(main)
    assert [f.name for f in config.feeds] == ["A", "b.example"]
    assert config.files == (main, tmp_path / "feeds.toml")
    assert config.feeds[1].location is not None
    assert config.feeds[1].location.path == str(tmp_path / "feeds.toml")


# -- error paths -----------------------------------------------------------------------------
def test_unknown_key_has_line_and_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", '[schedule]\ninterval = "15m"\nintervall = "10m"\n')
    error = one_error(path)
    assert (error.path, error.line, error.key) == (str(path), 3, "schedule.intervall")
    assert error.hint == "did you mean 'interval'?"
    assert f"{path}:3:1: schedule.intervall: unknown key" in str(error)


def test_unknown_top_level_key_and_table(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", 'log_levle = "INFO"\n\n[channels.x]\nurl = "log://"\n')
    errors = errors_of(path)
    assert [(e.key, e.line, e.hint) for e in errors] == [
        ("log_levle", 1, "did you mean 'log_level'?"),
        ("channels", 3, "did you mean 'channel'?"),
    ]


def test_unknown_key_in_feed_names_the_entry_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.toml",
        """
        [[feed]]
        url = "https://a.example/rss"

        [[feed]]
        url = "https://b.example/rss"
        tag = ["x"]
        """,
    )
    error = one_error(path)
    assert (error.line, error.key, error.hint) == (6, "feed[1].tag", "did you mean 'tags'?")


def test_wrong_type_names_line_and_expected_type(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", '[http]\nmax_redirects = "five"\nper_host = true\n')
    errors = errors_of(path)
    assert [(e.line, e.key) for e in errors] == [(2, "http.max_redirects"), (3, "http.per_host")]
    assert "expected an integer, got a string" in str(errors[0])
    assert "expected an integer, got a boolean" in str(errors[1])


def test_wrong_type_inside_inline_table_and_array(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.toml",
        """
        channel = { log = { url = "log://", rate_limit = "many" } }
        [http]
        allow_networks = [
          "10.0.0.0/8",
          "not-a-net",
        ]
        """,
    )
    errors = errors_of(path)
    assert [(e.key, e.line) for e in errors] == [
        ("channel.log.rate_limit", 1),
        ("http.allow_networks[1]", 5),
    ]


def test_bad_duration(tmp_path: Path) -> None:
    error = one_error(write(tmp_path, "s.toml", '[schedule]\nlease = "5 minutes"\n'))
    assert (error.line, error.key) == (2, "schedule.lease")
    assert "is not a duration" in error.message and error.hint and "15m" in error.hint


def test_bad_cidr(tmp_path: Path) -> None:
    error = one_error(write(tmp_path, "s.toml", '[http]\nallow_networks = ["10.0.0.300/8"]\n'))
    assert (error.line, error.key) == (2, "http.allow_networks[0]")
    assert "CIDR" in error.message


def test_feed_interval_below_min(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.toml",
        """
        [schedule]
        min_interval = "5m"

        [[feed]]
        url = "https://a.example/rss"
        interval = "1m"
        """,
    )
    error = one_error(path)
    assert (error.line, error.key) == (6, "feed[0].interval")
    assert "min_interval" in error.message


def test_feed_url_must_be_http(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", '[[feed]]\nurl = "file:///etc/passwd"\n')
    error = one_error(path)
    assert (error.line, error.key) == (2, "feed[0].url")
    assert "http" in error.message


def test_duplicate_feed_url_names_both_lines(tmp_path: Path) -> None:
    main = write(tmp_path, "s.toml", '[http]\n[[feed]]\nurl = "https://A.example/rss"\n')
    feeds = write(tmp_path, "feeds.toml", '[[feed]]\nurl = "https://a.example/rss"\n')
    error = one_error(main)
    assert (error.path, error.line) == (str(feeds), 2)
    assert f"first given at {main}:3" in error.message


def test_missing_required_and_bad_channel_url_never_echoed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.toml",
        f"""
        operator_channel = "tg"
        [channel.tg]
        url = "{SECRET_URL.replace("tgram://", "")}"
        [channel.hook]
        url = "webhook+https://hooks.example/SECRET-TOKEN-xyz"
        [channel.nourl]
        secret = "SECRET-TOKEN-xyz"
        [channel.num]
        url = 12345
        secret = ["SECRET-TOKEN-xyz"]
        """,
    )
    errors = errors_of(path)
    keys = [e.key for e in errors]
    assert "channel.tg.url" in keys
    assert "channel.hook.secret" in keys  # a signed webhook needs its secret
    assert "channel.nourl" in keys  # missing required url
    assert "channel.num.url" in keys and "channel.num.secret" in keys
    assert "operator_channel" in keys  # tg was rejected, so the operator channel is missing
    for e in errors:
        assert "SECRET-TOKEN" not in str(e) and "123456" not in str(e)


def test_channel_url_not_in_any_error_text_even_when_valid(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.toml",
        f"""
        [channel.tg]
        url = "{SECRET_URL}"
        rate_limit = -1
        bogus = 1
        """,
    )
    for e in errors_of(path):
        text = str(e) + repr(e.__dict__)
        assert "SECRET-TOKEN" not in text


def test_storage_url_password_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", '[storage]\nurl = "postgres:hunter2@db"\n')
    error = one_error(path)
    assert error.key == "storage.url" and "hunter2" not in str(error)


def test_toml_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", '[http]\nuser_agent = "x"\nper_host = = 2\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert error.path == str(path) and error.line == 3 and error.column is not None
    assert isinstance(error.__cause__, Exception)
    assert "TOML syntax error" in str(error)


def test_toml_syntax_error_in_feeds_file(tmp_path: Path) -> None:
    main = write(tmp_path, "s.toml", "")
    write(tmp_path, "feeds.toml", '[[feed]]\nurl = "https://a.example/rss\n')
    error = one_error(main)
    assert error.path == str(tmp_path / "feeds.toml") and error.line == 2


def test_feeds_file_holds_only_feeds(tmp_path: Path) -> None:
    main = write(tmp_path, "s.toml", "")
    write(tmp_path, "feeds.toml", "[http]\nper_host = 1\n")
    error = one_error(main)
    assert (error.key, error.line) == ("http", 1)


def test_schedule_bounds_and_listen_and_level(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.toml",
        """
        log_level = "verbose"
        [schedule]
        interval = "1m"
        [metrics]
        listen = "localhost"
        """,
    )
    keys = sorted(e.key or "" for e in errors_of(path))
    assert keys == ["log_level", "metrics.listen", "schedule.interval"]


def test_load_config_raises_first_and_notes_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", "a = 1\nb = 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 1
    assert any(":2:1: b: unknown key" in note for note in info.value.__notes__)


# -- watchlist -------------------------------------------------------------------------------
WATCH = """
[aliases]
CSTO = ["CSTO", "ОДКБ"]

[[rule]]
name = "one"
query = 'CSTO AND "security services"'
channels = ["log"]
min_score = 0.3
topics = ["security"]
feeds = ["Tengri News"]
tags = ["ru"]
digest = "30m"
quiet_hours = "22:00-07:00"
follow_up_outlets = 3

[[rule]]
name = "two"
channels = ["log", "mail"]
query = "террор*"
"""


def test_watchlist_loads_every_setting(tmp_path: Path) -> None:
    w = load_watchlist(write(tmp_path, "w.toml", WATCH))
    one, two = w.rules
    assert w.aliases == (("CSTO", ("CSTO", "ОДКБ")),)
    assert one.query == 'CSTO AND "security services"'
    assert (one.min_score, one.topics, one.feeds, one.tags) == (
        0.3,
        ("security",),
        ("Tengri News",),
        ("ru",),
    )
    assert one.digest == 1800.0 and one.quiet_hours == (time(22), time(7))
    assert one.follow_up_outlets == 3
    assert one.location is not None and one.location.line == 6  # the query line
    assert two.location is not None and two.location.line == 19
    assert two.digest == 0.0


def test_rule_channel_must_exist(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "s.toml", '[channel.log]\nurl = "log://"\n'))
    watchlist = load_watchlist(write(tmp_path, "w.toml", WATCH))
    errors = check_rule_channels(config, watchlist)
    assert len(errors) == 1
    assert errors[0].line == 19 and errors[0].path == str(tmp_path / "w.toml")
    assert "'mail'" in errors[0].message and "two" in errors[0].message


@pytest.mark.parametrize(
    ("snippet", "key", "needle"),
    [
        ("min_score = 1.5", "rule[0].min_score", "above the maximum"),
        ('digest = "soon"', "rule[0].digest", "not a duration"),
        ('quiet_hours = "22-07"', "rule[0].quiet_hours", "not an hour range"),
        ('quiet_hours = "25:00-07:00"', "rule[0].quiet_hours", "not an hour range"),
        ("follow_up_outlets = 1", "rule[0].follow_up_outlets", "below the minimum"),
        ('channel = ["log"]', "rule[0].channel", "unknown key"),
        ("tags = [1]", "rule[0].tags[0]", "expected a string"),
    ],
)
def test_rule_errors(tmp_path: Path, snippet: str, key: str, needle: str) -> None:
    text = f'[[rule]]\nname = "r"\nquery = "x"\nchannels = ["log"]\n{snippet}\n'
    watchlist, errors = check_watchlist(write(tmp_path, "w.toml", text))
    assert watchlist is None
    assert [(e.key, e.line) for e in errors] == [(key, 5)]
    assert needle in str(errors[0])


def test_rule_duplicate_name_and_missing_query(tmp_path: Path) -> None:
    text = """
    [[rule]]
    name = "r"
    query = "x"
    channels = ["log"]

    [[rule]]
    name = "r"
    query = "y"
    channels = ["log"]

    [[rule]]
    name = "s"
    channels = ["log"]
    """
    _, errors = check_watchlist(write(tmp_path, "w.toml", text))
    assert [(e.key, e.line) for e in errors] == [("rule[1].name", 7), ("rule[2]", 11)]
    assert "first at line 2" in errors[0].message
    assert "missing required key 'query'" in errors[1].message


def test_watchlist_unknown_top_and_bad_alias(tmp_path: Path) -> None:
    text = 'alias = {}\n[aliases]\nCIS = "СНГ"\n"two words" = ["x"]\n'
    _, errors = check_watchlist(write(tmp_path, "w.toml", text))
    assert [(e.key, e.line) for e in errors] == [
        ("alias", 1),
        ("aliases.CIS", 3),
        ('aliases."two words"', 4),
    ]
    assert errors[0].hint == "did you mean 'aliases'?"


# -- units -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (900, 900.0),
        (1.5, 1.5),
        ("900", 900.0),
        ("15m", 900.0),
        ("1h30m", 5400.0),
        ("7d", 604800.0),
        ("90s", 90.0),
        ("1h 30m", 5400.0),
        ("250ms", 0.25),
        ("2w", 1209600.0),
        ("0", 0.0),
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "",
        "m",
        "15",
        "-5",
        "5 minutes",
        "1.5.2h",
        "nan",
        "inf",
        "1e3",
        "15m-",
        True,
        -1,
        float("nan"),
        "99999999999d",
    ],
)
def test_parse_duration_rejects(value: object) -> None:
    if value == "15":
        assert parse_duration("15") == 15.0
        return
    with pytest.raises(ConfigError):
        parse_duration(value)  # type: ignore[arg-type]


@given(st.text())
def test_parse_duration_raises_only_config_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ConfigError:
        return
    assert seconds >= 0.0


@given(st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.lists(st.integers())))
def test_parse_duration_raises_only_config_error_on_any_value(value: object) -> None:
    try:
        seconds = parse_duration(value)  # type: ignore[arg-type]
    except ConfigError as e:
        assert e.message
        return
    assert isinstance(seconds, float) and seconds >= 0.0


def test_parse_size() -> None:
    assert parse_size("16MB") == 16 * 1024 * 1024
    assert parse_size(1000) == 1000
    assert parse_size("1 GiB") == 1024**3
    for bad in ("16XB", 0, "-1MB", "lots", 1.5):
        with pytest.raises(ConfigError):
            parse_size(bad)


# -- position scanner ------------------------------------------------------------------------
def test_scanner_positions() -> None:
    text = textwrap.dedent(
        """
        top = 1   # comment with [brackets] and = signs
        s = '''
        [not.a.table]
        x = 1
        '''
        [a.b]
        "quoted key" = "v"
        dotted.key = { inner = [1, 2], other = "}" }

        [[arr]]
        k = 1
        [[arr]]
        k = [
          "a",  # c
          "b",
        ]
        [arr.sub]
        z = 0
        """
    )
    pos = scan(text)
    assert pos.line(("top",)) == 2
    assert pos.exact_line(("not", "a", "table")) is None
    assert pos.line(("a", "b")) == 7
    assert pos.line(("a", "b", "quoted key")) == 8
    assert pos.line(("a", "b", "dotted", "key", "other")) == 9
    assert pos.line(("a", "b", "dotted", "key", "inner", 1)) == 9
    assert pos.line(("arr", 0, "k")) == 12
    assert pos.line(("arr", 1)) == 13
    assert pos.line(("arr", 1, "k", 1)) == 16
    assert pos.line(("arr", 1, "sub", "z")) == 19
    assert pos.at(("arr", 1, "k", 1)) == (16, 3)
    assert pos.line(("arr", 1, "missing")) == 13  # falls back to the entry header
    assert pos.exact_line(("a", "b", "dotted")) == 9  # implicitly defined by a dotted key
    assert pos.exact_line(("a",)) == 7  # implicitly defined by [a.b]


def test_feed_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", 'feed = [1, "a"]\n')
    errors = errors_of(path)
    assert [(e.key, e.line, e.column) for e in errors] == [("feed[0]", 1, 9), ("feed[1]", 1, 12)]
    assert "expected a table, got an integer" in str(errors[0])
