"""The KIS access token (``/oauth2/tokenP``): kept in memory and in a 0600 file,
reused until five minutes before it expires, asked for at most once a minute (KIS
refuses more: ``EGW00133``)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from services.common.clock import Clock
from services.common.market_calendar import KRX_TZ
from services.common.private_files import FILE_MODE, make_private_dir
from services.trading_engine.kis_api.app import KisApp
from services.trading_engine.kis_api.errors import KisAuthError, KisTokenRateLimited, KisTransportError
from services.trading_engine.kis_api.transport import Answer

logger = logging.getLogger(__name__)

TOKEN_PATH = "/oauth2/tokenP"
TOKEN_TOO_SOON = "EGW00133"  # 접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회) (HTTP 403)
TOKEN_INTERVAL = timedelta(minutes=1)
TOKEN_RENEW_BEFORE = timedelta(minutes=5)

#: sends one request: (method, path, payload, headers) -> answer
Send = Callable[[str, str, Mapping[str, str], Mapping[str, str]], Answer]


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: datetime
    issued_at: datetime


class TokenFile:
    """The token cache file (0600 in a 0700 directory), named by a hash of the host and
    of the app key's sha256, so processes sharing the directory share one token. It
    holds neither the app key nor the secret."""

    def __init__(self, cache_dir: Path, host: str, app_key: str) -> None:
        self._host = host
        self._key_hash = hashlib.sha256(app_key.encode("utf-8")).hexdigest()
        name = hashlib.sha256(f"{host}|{self._key_hash}".encode()).hexdigest()[:32]
        self.path = Path(cache_dir) / f"kis-token-{name}.json"

    def read(self) -> Token | None:
        """The cached token of this host and app key, or None (none, unreadable, another key)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("host") != self._host or data.get("app_key_sha256") != self._key_hash:
                return None
            token = Token(str(data["access_token"]), datetime.fromisoformat(data["expires_at"]),
                          datetime.fromisoformat(data["issued_at"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            logger.warning("KIS token cache %s cannot be read; ignoring it", self.path.name)
            return None
        if token.expires_at.tzinfo is None or token.issued_at.tzinfo is None:
            return None
        return token

    def write(self, token: Token) -> None:
        """Replace the file atomically; a failure is logged and the token kept in memory."""
        data = {"host": self._host, "app_key_sha256": self._key_hash, "access_token": token.value,
                "expires_at": token.expires_at.isoformat(), "issued_at": token.issued_at.isoformat()}
        try:
            make_private_dir(self.path.parent)
            temporary = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), FILE_MODE)
                json.dump(data, handle)
            os.replace(temporary, self.path)
        except OSError as exc:
            logger.warning("KIS token cache %s cannot be written (%s); the token is kept in memory only",
                           self.path.name, exc.strerror)

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class TokenKeeper:
    """Gives a valid token, issuing one through ``send`` when none is cached or it is
    within five minutes of expiring. Not thread-safe: the client calls it under its lock."""

    def __init__(self, config: KisApp, token_file: TokenFile, send: Send, clock: Clock) -> None:
        self._config = config
        self._file = token_file
        self._send = send
        self._clock = clock
        self._token: Token | None = None
        self._last_request: datetime | None = None

    def token(self) -> str:
        now = self._clock.now()
        token = self._token or self._read_file()
        if token is not None and now < token.expires_at - TOKEN_RENEW_BEFORE:
            self._token = token
            return token.value
        return self._issue(now)

    def forget(self) -> None:
        """Drop the token (refused or expired) from memory and from the file."""
        self._token = None
        self._file.remove()

    def _read_file(self) -> Token | None:
        token = self._file.read()
        if token is not None and (self._last_request is None or token.issued_at > self._last_request):
            self._last_request = token.issued_at  # the minute rule holds across processes
        return token

    def _issue(self, now: datetime) -> str:
        last = self._last_request
        if last is not None and now - last < TOKEN_INTERVAL:
            wait = (TOKEN_INTERVAL - (now - last)).total_seconds()
            raise KisTokenRateLimited(
                f"KIS issues one token a minute and one was requested {(now - last).total_seconds():.0f} s ago; "
                f"retry in {wait:.0f} s", retry_after=wait)
        self._last_request = now
        try:
            answer = self._send("POST", TOKEN_PATH, {"grant_type": "client_credentials",
                                                     "appkey": self._config.app_key,
                                                     "appsecret": self._config.app_secret},
                                {"content-type": "application/json; charset=utf-8"})
        except KisTransportError as exc:
            if exc.unsent:
                self._last_request = last  # KIS never saw it: it does not count
                raise
            # KIS may have issued one: asking again within the minute would be refused
            raise KisTransportError(f"{exc}; no token", msg_cd=exc.msg_cd, msg1=exc.msg1) from None
        return self._accept(answer, now)

    def _accept(self, answer: Answer, now: datetime) -> str:
        body, code, message = answer.body, answer.code, answer.message
        logger.debug("KIS POST %s -> HTTP %s msg_cd=%s", TOKEN_PATH, answer.status, code or "-")
        if answer.status != 200 or body is None or not body.get("access_token"):
            detail = f"{message} ({code})" if code else f"HTTP {answer.status}"
            if code == TOKEN_TOO_SOON:
                raise KisTokenRateLimited(f"KIS refused a new token: {detail}; it issues one a minute",
                                          retry_after=TOKEN_INTERVAL.total_seconds(), msg_cd=code, msg1=message)
            if body is None or answer.status >= 500:
                raise KisTransportError(f"KIS {TOKEN_PATH}: no token ({detail})", msg_cd=code, msg1=message)
            raise KisAuthError(f"KIS refused a token: {detail}; check KIS_APP_KEY and KIS_APP_SECRET",
                               msg_cd=code, msg1=message)
        token = Token(str(body["access_token"]), token_expiry(body, now), now)
        self._token = token
        self._file.write(token)
        logger.info("KIS token issued by %s, valid until %s", self._config.host,
                    token.expires_at.astimezone(KRX_TZ).isoformat(timespec="seconds"))
        return token.value


def token_expiry(body: Mapping[str, Any], now: datetime) -> datetime:
    """``access_token_token_expired`` ("YYYY-MM-DD HH:MM:SS", Seoul time), else
    ``expires_in`` seconds from now, else a day."""
    text = str(body.get("access_token_token_expired") or "").strip()
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=KRX_TZ)
    except ValueError:
        pass
    expires_in: Any = body.get("expires_in")
    try:
        return now + timedelta(seconds=int(expires_in))
    except (TypeError, ValueError):
        return now + timedelta(days=1)
