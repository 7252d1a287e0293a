"""One exception tree for everything seedwatch raises on purpose.

Third-party errors are wrapped where they enter (``raise FetchError(...) from e``) so callers
catch ``SeedwatchError`` subclasses only. Messages never carry secrets: URLs are passed through
``redact_url`` before they reach a message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """The URL without userinfo, query or fragment: what may appear in a log or an error."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:  # e.g. a port out of range: urlsplit is lazy about it
        return "<unparseable url>"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class SeedwatchError(Exception):
    """Base of every error seedwatch raises on purpose."""


class ConfigError(SeedwatchError):
    """A config, watchlist or seed file is wrong; names the file, line, column and key."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        self.key = key
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or "<config>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: "
        if self.key:
            text += f"{self.key}: "
        text += self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class RuleSyntaxError(SeedwatchError):
    """A watch-rule query does not parse; ``column`` is 1-based within the query text."""

    def __init__(self, message: str, *, column: int, query: str) -> None:
        self.message = message
        self.column = column
        self.query = query
        super().__init__(f"column {column}: {message}")


class FeedError(SeedwatchError):
    """Something went wrong with one feed; ``url`` is already redacted."""

    def __init__(self, url: str, message: str) -> None:
        self.url = redact_url(url)
        self.message = message
        super().__init__(f"{self.url}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in a parse worker process and re-raised here: rebuilt from its attributes,
        # since the subclasses' __init__ signatures differ from ``self.args``.
        return (_rebuild_feed_error, (type(self), self.args, self.__dict__))


def _rebuild_feed_error(
    cls: type[FeedError], args: tuple[Any, ...], state: dict[str, Any]
) -> FeedError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class FetchError(FeedError):
    """The feed could not be retrieved (network, TLS, deadline, size, status)."""


class BlockedAddressError(FetchError):
    """The URL's scheme or address is not allowed (non-public address, file:, gopher:, ...)."""


class TooLargeError(FetchError):
    """The response exceeded the compressed or decompressed byte cap."""


class DeadlineError(FetchError):
    """The fetch took longer than the total deadline (slow or dripping server)."""


class RedirectError(FetchError):
    """Too many redirects, a redirect loop, or a redirect without a usable Location."""


class HTTPStatusError(FetchError):
    """The server answered with an error status; ``retry_after`` in seconds when it said so."""

    def __init__(
        self, url: str, status: int, message: str, *, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(url, message)


class GoneError(HTTPStatusError):
    """410 Gone: the feed is retired; polling stops and the operator is told."""


class ParseError(FeedError):
    """The body is not a feed feedparser can read any item from."""


class StorageError(SeedwatchError):
    """The database refused or failed an operation."""


class DeliveryError(SeedwatchError):
    """A channel could not deliver an alert; ``retry_after`` in seconds when the receiver said."""

    def __init__(
        self,
        channel: str,
        message: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        self.channel = channel
        self.message = message
        self.retry_after = retry_after
        self.permanent = permanent
        super().__init__(f"channel {channel}: {message}")


class SeedError(SeedwatchError):
    """The seeds folder cannot be read or holds no usable document."""
