"""Channels: where an alert goes. Apprise URLs, plus built-in JSONL file, log and signed webhook.

A channel's ``send`` either returns (delivered) or raises DeliveryError; it never retries by
itself (the outbox does, with backoff). Channel URLs are secrets: they appear in no log line,
no exception and no repr, only as ``channel.NAME``.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import apprise

from seedwatch.alerts import render
from seedwatch.alerts.webhook import SCHEME_PREFIX, WebhookChannel
from seedwatch.config.model import ChannelConfig, HttpConfig
from seedwatch.errors import ConfigError, DeliveryError
from seedwatch.types import AlertMessage

log = logging.getLogger(__name__)

ALERT_ID_HEADER = "X-Seedwatch-Alert-Id"


class Channel(Protocol):
    name: str

    def send(self, msg: AlertMessage) -> None:
        """Deliver ``msg`` or raise DeliveryError (retry_after / permanent say what next)."""
        ...


class JsonlChannel:
    """Appends one JSON object per alert to a file, fsync'd before send returns."""

    rate_limit: int | None = None

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JsonlChannel(name={self.name!r})"

    def send(self, msg: AlertMessage) -> None:
        line = json.dumps(render.alert_payload(msg), ensure_ascii=False, separators=(",", ":"))
        data = (line + "\n").encode("utf-8")
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    # One write with O_APPEND keeps lines whole even with several writers.
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as e:
            raise DeliveryError(self.name, f"cannot append to file ({e.strerror})") from None


class LogChannel:
    """Logs each alert at WARNING with fixed keys (for journald and log shippers)."""

    rate_limit: int | None = None

    logger = logging.getLogger("seedwatch.alerts.log")

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"LogChannel(name={self.name!r})"

    def send(self, msg: AlertMessage) -> None:
        link = render.safe_link(msg.url) or ""
        self.logger.warning(
            "alert id=%s rule=%s channel=%s feed=%s story=%s score=%.2f url=%s title=%s",
            msg.id,
            render.one_line(msg.rule, limit=80),
            self.name,
            render.one_line(msg.feed, limit=80),
            msg.story_id,
            msg.score,
            link,
            render.one_line(msg.title, limit=200),
            extra={
                "alert": msg.id,
                "rule": msg.rule,
                "channel": self.name,
                "feed": msg.feed,
                "story": msg.story_id,
                "url": link,
                "kind": msg.kind,
            },
        )


# --- Apprise -------------------------------------------------------------------------------

_URLISH = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,30})://\S+")


_quiet = threading.local()


class _AppriseRedactor(logging.Filter):
    """Apprise logs service URLs (tokens in the host or path) when it cannot parse them.

    While this thread parses a channel URL every Apprise record is dropped (it may quote any
    piece of the URL); at other times anything URL-shaped is redacted to its scheme.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_quiet, "on", False):
            return False
        try:
            text = record.getMessage()
        except Exception:  # a broken format string must not break logging
            return False
        redacted = _URLISH.sub(r"\1://<redacted>", text)
        if redacted != text:
            record.msg = redacted
            record.args = None
        return True


_redactor_lock = threading.Lock()
_redactor_installed = False


def _install_apprise_redactor() -> None:
    global _redactor_installed
    with _redactor_lock:
        if not _redactor_installed:
            logging.getLogger("apprise").addFilter(_AppriseRedactor())
            _redactor_installed = True


# Apprise 2.x bounds a whole notify() call; older releases only have per-service timeouts.
_NOTIFY_HAS_TIMEOUT = "timeout" in inspect.signature(apprise.Apprise.notify).parameters

_FORMATS = {
    "html": (render.render_html, "html"),
    "markdown": (render.render_markdown, "markdown"),
    "text": (render.render_text, "text"),
}


class AppriseChannel:
    """Any service Apprise knows (mail, Telegram, Slack, Matrix, ntfy, Discord, ...)."""

    rate_limit: int | None = None

    def __init__(self, name: str, url: str, http: HttpConfig) -> None:
        _install_apprise_redactor()
        self.name = name
        self._timeout = http.deadline
        asset = apprise.AppriseAsset(app_id="seedwatch", storage_mode="memory")
        self._apprise = apprise.Apprise(asset=asset)
        _quiet.on = True
        try:
            ok = self._apprise.add(url)
        except Exception:  # Apprise raises on some malformed URLs instead of returning False
            ok = False
        finally:
            _quiet.on = False
        if not ok or len(self._apprise) != 1:
            raise ConfigError(
                "not a URL Apprise understands (see https://github.com/caronc/apprise/wiki)",
                key=f"channel.{name}.url",
            )
        self._plugin: Any = self._apprise[0]
        self._render, self._format = _FORMATS[_best_format(self._plugin)]
        # Mail, json:// and similar services send custom headers; the alert id rides along so
        # receivers can deduplicate without parsing the body.
        headers = getattr(self._plugin, "headers", None)
        self._base_headers = dict(headers) if isinstance(headers, dict) else None

    def __repr__(self) -> str:
        return f"AppriseChannel(name={self.name!r})"

    def send(self, msg: AlertMessage) -> None:
        try:
            if self._base_headers is not None:
                self._plugin.headers = {
                    **self._base_headers,
                    ALERT_ID_HEADER: render.one_line(msg.id, limit=100),
                }
            kwargs: dict[str, Any] = {}
            if _NOTIFY_HAS_TIMEOUT:
                kwargs["timeout"] = self._timeout
            result = self._apprise.notify(
                body=self._render(msg),
                title=render.subject(msg),
                body_format=self._format,
                **kwargs,
            )
        except Exception as e:
            # Apprise handles per-service errors itself; anything escaping is unexpected.
            raise DeliveryError(self.name, f"apprise failed ({type(e).__name__})") from None
        if not result:
            status = getattr(result, "status", None)
            shown = getattr(status, "value", status) or "failed"
            raise DeliveryError(self.name, f"apprise could not deliver ({shown})")


def _best_format(plugin: Any) -> str:
    """The richest format the service renders natively, so Apprise need not convert."""
    try:
        formats = {str(getattr(f, "value", f)) for f in plugin._formats()}
    except Exception:
        raw = plugin.notify_format
        items = raw if isinstance(raw, list | tuple | set) else (raw,)
        formats = {str(getattr(f, "value", f)) for f in items}
    for fmt in ("html", "markdown", "text"):
        if fmt in formats:
            return fmt
    return "text"


# --- building ------------------------------------------------------------------------------


def _jsonl_path(cfg: ChannelConfig) -> Path:
    parts = urlsplit(cfg.url)
    path = Path(unquote(parts.path))
    if parts.netloc or not path.is_absolute() or path.name in ("", ".", ".."):
        raise ConfigError(
            "jsonl channel needs an absolute file path: jsonl:///abs/path/alerts.jsonl",
            key=f"channel.{cfg.name}.url",
        )
    return path


def build_channel(cfg: ChannelConfig, http: HttpConfig) -> Channel:
    """The channel ``cfg`` describes; ConfigError (naming channel.NAME.url, never the URL)."""
    try:
        return _build(cfg, http)
    except ConfigError as e:
        if e.path is not None or cfg.location is None:
            raise
        raise ConfigError(
            e.message, path=cfg.location.path, line=cfg.location.line, key=e.key, hint=e.hint
        ) from None


def _build(cfg: ChannelConfig, http: HttpConfig) -> Channel:
    scheme = cfg.url.split("://", 1)[0].lower() if "://" in cfg.url else ""
    channel: JsonlChannel | LogChannel | WebhookChannel | AppriseChannel
    if scheme == "jsonl":
        channel = JsonlChannel(cfg.name, _jsonl_path(cfg))
    elif scheme == "log":
        channel = LogChannel(cfg.name)
    elif scheme.startswith(SCHEME_PREFIX):
        if not cfg.secret:
            raise ConfigError(
                "a webhook channel needs a signing secret", key=f"channel.{cfg.name}.secret"
            )
        channel = WebhookChannel(cfg.name, cfg.url, cfg.secret, http)
    else:
        channel = AppriseChannel(cfg.name, cfg.url, http)
    # deliver_due reads it: alerts per hour, overflow folded into a digest.
    channel.rate_limit = cfg.rate_limit
    return channel


def build_channels(cfgs: Sequence[ChannelConfig], http: HttpConfig) -> dict[str, Channel]:
    """Every configured channel by name; the first bad one raises ConfigError."""
    channels: dict[str, Channel] = {}
    for cfg in cfgs:
        if cfg.name in channels:
            raise ConfigError("channel defined twice", key=f"channel.{cfg.name}")
        channels[cfg.name] = build_channel(cfg, http)
    return channels
