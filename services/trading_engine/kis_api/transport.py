"""HTTP to one KIS host: one pooled :class:`httpx.Client` with timeouts, paced by a
throttle (:mod:`services.common.throttle`). Every request is one attempt: a failure
comes back as :class:`~.errors.KisTransportError` saying whether the request left and
whether it may be asked again; the retry policy is the client's."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from services.common.setting_values import parse_https_url
from services.common.settings import ConfigurationError
from services.common.throttle import Pace
from services.trading_engine.kis_api.errors import KisTransportError

logger = logging.getLogger(__name__)

# httpx logs every request's URL at INFO, and a KIS query carries the account number
logging.getLogger("httpx").setLevel(logging.WARNING)

#: failures before the request left: no connection was made, so nothing reached KIS
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: its status, headers and JSON body (None: not a JSON object)."""

    status: int
    headers: Mapping[str, str]
    body: dict[str, Any] | None

    @property
    def code(self) -> str:
        """KIS's code: ``msg_cd``, or ``error_code`` on /oauth2/tokenP."""
        if self.body is None:
            return ""
        return str(self.body.get("msg_cd") or self.body.get("error_code") or "").strip()

    @property
    def message(self) -> str:
        """KIS's message: ``msg1``, or ``error_description`` on /oauth2/tokenP."""
        if self.body is None:
            return ""
        return str(self.body.get("msg1") or self.body.get("error_description") or "").strip()


class KisHttp:
    """Sends one request at a time slot of ``throttle`` to ``host`` (https, or http on
    the loopback only) and reads its answer; redirects are not followed."""

    def __init__(self, host: str, *, throttle: Pace, timeout: float,
                 transport: httpx.BaseTransport | None = None) -> None:
        try:
            self.host = parse_https_url(host)
        except ValueError as exc:
            raise ConfigurationError(f"KIS host {host!r}: {exc}") from None
        self._throttle = throttle
        self._client = httpx.Client(base_url=self.host, timeout=httpx.Timeout(timeout), transport=transport,
                                    follow_redirects=False)

    def send(self, method: str, path: str, payload: Mapping[str, str], headers: Mapping[str, str]) -> Answer:
        """GET with ``payload`` as the query, or POST it as a JSON body."""
        self._throttle.wait()
        try:
            if method == "GET":
                response = self._client.get(path, params=dict(payload), headers=dict(headers))
            else:
                content = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                response = self._client.request(method, path, content=content, headers=dict(headers))
        except _UNSENT as exc:
            raise KisTransportError(f"KIS {path}: cannot reach {self.host} ({_reason(exc)})", unsent=True) from None
        except httpx.TransportError as exc:  # timeouts, resets, a connection closed without an answer
            raise KisTransportError(f"KIS {path}: no answer from {self.host} ({_reason(exc)})",
                                    transient=True) from None
        except httpx.HTTPError as exc:  # e.g. a body that cannot be decoded
            raise KisTransportError(f"KIS {path}: unreadable answer from {self.host} ({_reason(exc)})") from None
        try:
            body = json.loads(response.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        return Answer(response.status_code, response.headers, body if isinstance(body, dict) else None)

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
