"""The built-in signed webhook, following Standard Webhooks (https://www.standardwebhooks.com).

Each alert is one POST of a JSON body with the headers ``webhook-id`` (the alert's stable id, so
receivers deduplicate repeats), ``webhook-timestamp`` (unix seconds) and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``). The connection goes through the
SSRF guard, redirects are never followed (a 3xx is a failure), and a wall-clock deadline bounds
every POST.

Status: 2xx delivered; 408, 429 and 5xx retryable (Retry-After honoured); other 3xx/4xx failures.
A 4xx other than 408/429 is permanent: repeating the same request cannot succeed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from seedwatch.alerts.backoff import MAX_RETRY_AFTER
from seedwatch.alerts.render import alert_payload
from seedwatch.config.model import HttpConfig
from seedwatch.errors import BlockedAddressError, ConfigError, DeliveryError, redact_url
from seedwatch.fetch import make_session, parse_retry_after
from seedwatch.netguard import watch_sockets
from seedwatch.types import AlertMessage

log = logging.getLogger(__name__)

SCHEME_PREFIX = "webhook+"
SECRET_PREFIX = "whsec_"
EVENT_TYPE = "seedwatch.alert"


def secret_key(secret: str) -> bytes:
    """The HMAC key: ``whsec_`` secrets are base64 (as the spec's libraries issue them)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError("webhook secret after whsec_ is not valid base64") from e
    return secret.encode("utf-8")


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class WebhookChannel:
    """POSTs each alert, signed, to one endpoint."""

    rate_limit: int | None = None

    def __init__(
        self,
        name: str,
        url: str,
        secret: str,
        http: HttpConfig,
        *,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        if url.startswith(SCHEME_PREFIX):
            url = url[len(SCHEME_PREFIX) :]
        if not url.lower().startswith(("http://", "https://")):
            raise ConfigError(
                "webhook URL must be webhook+http:// or webhook+https://", key=f"channel.{name}.url"
            )
        try:
            self._key = secret_key(secret)
        except ValueError as e:
            raise ConfigError(str(e), key=f"channel.{name}.secret") from None
        if not self._key:
            raise ConfigError("webhook secret is empty", key=f"channel.{name}.secret")
        self.name = name
        self._url = url  # secret: may carry a token in its path or query
        # Host only: webhook paths often are the credential (/hooks/<token>).
        parts = urlsplit(redact_url(url))
        self._shown = f"{parts.scheme}://{parts.netloc}"
        self._http = http
        self._clock = clock
        self._session = session or make_session(http)

    def __repr__(self) -> str:
        return f"WebhookChannel(name={self.name!r}, url={self._shown!r})"

    def body(self, msg: AlertMessage, timestamp: int) -> bytes:
        payload: dict[str, Any] = {
            "type": EVENT_TYPE if msg.kind != "operator" else "seedwatch.operator",
            "timestamp": datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": alert_payload(msg),
        }
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def send(self, msg: AlertMessage) -> None:
        timestamp = int(self._clock())
        body = self.body(msg, timestamp)
        headers = {
            "Content-Type": "application/json",
            "Accept": "*/*",
            "webhook-id": msg.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, msg.id, timestamp, body),
        }
        status, retry_after_header = self._post(body, headers)
        if 200 <= status < 300:
            return
        now = datetime.fromtimestamp(self._clock(), UTC)
        retry_after = parse_retry_after(retry_after_header, now, cap=MAX_RETRY_AFTER)
        if 300 <= status < 400:
            raise DeliveryError(self.name, f"status {status}: redirects are not followed")
        if status in (408, 429) or status >= 500:
            raise DeliveryError(self.name, f"status {status}", retry_after=retry_after)
        raise DeliveryError(self.name, f"status {status}", permanent=True)

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        http = self._http
        sockets: list[socket.socket] = []
        expired = threading.Event()

        def on_deadline() -> None:
            # A read timeout alone lets a server drip a byte at a time forever.
            expired.set()
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(http.deadline, on_deadline)
        timer.daemon = True
        timer.start()
        try:
            with watch_sockets(sockets.append):
                resp = self._session.post(
                    self._url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=(http.connect_timeout, http.deadline),
                    stream=True,
                )
                try:
                    # Only the status matters; read a little so the connection can be reused.
                    resp.raw.read(64 * 1024, decode_content=False)
                except Exception:  # the status is already known; the body is not ours to judge
                    pass
                finally:
                    resp.close()
        except BlockedAddressError as e:
            log.warning("webhook refused channel=%s url=%s", self.name, self._shown)
            raise DeliveryError(
                self.name, f"address refused: {e.message}", permanent=True
            ) from None
        except requests.RequestException as e:
            blocked = _blocked_cause(e)
            if blocked is not None:
                log.warning("webhook refused channel=%s url=%s", self.name, self._shown)
                raise DeliveryError(
                    self.name, f"address refused: {blocked.message}", permanent=True
                ) from None
            reason = "deadline passed" if expired.is_set() else type(e).__name__
            # str(e) would name the full URL; the type is enough to act on.
            raise DeliveryError(self.name, f"POST failed ({reason})") from None
        except OSError as e:
            raise DeliveryError(self.name, f"POST failed ({type(e).__name__})") from None
        finally:
            timer.cancel()
        if expired.is_set() and not 200 <= resp.status_code < 300:
            raise DeliveryError(self.name, "POST failed (deadline passed)")
        return resp.status_code, resp.headers.get("Retry-After")


def _blocked_cause(exc: BaseException) -> BlockedAddressError | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, BlockedAddressError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
