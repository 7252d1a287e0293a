"""Configuration: TOML files validated into the frozen objects of ``model.py``.

``seedwatch.toml`` (plus ``feeds.toml`` beside it) and ``watchlist.toml``. Unknown keys and
wrong types are errors naming the file, the line and the key.
"""

from seedwatch.config.load import check_config, load_config, resolve_config_path
from seedwatch.config.model import (
    ChannelConfig,
    ClassifierConfig,
    Config,
    FeedConfig,
    HttpConfig,
    Location,
    MetricsConfig,
    RuleConfig,
    ScheduleConfig,
    StorageConfig,
    WatchlistConfig,
)
from seedwatch.config.units import parse_duration, parse_hours, parse_size
from seedwatch.config.watchlist import check_rule_channels, check_watchlist, load_watchlist

__all__ = [
    "ChannelConfig",
    "ClassifierConfig",
    "Config",
    "FeedConfig",
    "HttpConfig",
    "Location",
    "MetricsConfig",
    "RuleConfig",
    "ScheduleConfig",
    "StorageConfig",
    "WatchlistConfig",
    "check_config",
    "check_rule_channels",
    "check_watchlist",
    "load_config",
    "load_watchlist",
    "parse_duration",
    "parse_hours",
    "parse_size",
    "resolve_config_path",
]
