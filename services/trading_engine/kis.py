"""The live broker: the Korea Investment & Securities (KIS, 한국투자증권) open API.

Three layers, each testable alone:

- :class:`KisConfig` and :func:`check_live_config`: which host, tr_ids, credentials
  and account, checked before anything is sent (paper settings pointing at the live
  host, or live settings with paper tr_ids, fail with one line).
- :class:`KisClient`: HTTP with the standard library. It issues the access token
  (``/oauth2/tokenP``), caches it in memory and in a 0600 file, reuses it until five
  minutes before it expires and asks for a new one at most once a minute (KIS refuses
  more: ``EGW00133``). It spaces requests to ``requests_per_second``, retries KIS's
  "too many requests per second" answer (``EGW00201``) a few times, reissues an
  expired token once (``EGW00123``) and turns every other answer into a typed
  :class:`KisError`.
- :class:`KisBroker`: the :class:`~services.trading_engine.orders.Broker` protocol on
  top of the client (order-cash, order-rvsecncl, inquire-balance, inquire-daily-ccld,
  inquire-price).

Request and answer shapes follow KIS's own samples (github.com/koreainvestment/
open-trading-api, ``examples_llm/domestic_stock/*`` and ``examples_llm/kis_auth.py``).
Limits, stated plainly:

- Idempotency of :meth:`KisBroker.place_order` by ``client_order_id`` holds within one
  broker object: KIS has no client order id. Across processes the order book makes
  it hold (``services.trading_engine.live_orders``): every order is recorded and
  claimed before it is sent, and one whose answer was lost is matched in
  :meth:`KisBroker.orders_placed_on`.
- An order POST that fails in transport (timeout, HTTP 5xx) is *not* retried: KIS may
  have taken it. :class:`KisTransportError` tells the caller to reconcile.
- :meth:`KisBroker.fills` gives one fill per order (KIS's daily list totals each
  order), with estimated fees; see its docstring.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from services.common.clock import Clock, SystemClock
from services.common.market_calendar import KRX_TZ
from services.common.private_files import make_private_dir
from services.common.settings import SETTING_FIELDS, ConfigurationError, Settings, tr_id_table
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.orders import (
    BrokerError,
    Cash,
    Fill,
    Order,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
    order_number_key,
)

logger = logging.getLogger(__name__)

SEOUL = KRX_TZ
#: KIS's own hosts, as the settings' defaults name them: a paper account pointed at the
#: live hostname (or the reverse) is refused
LIVE_HOSTNAME = urllib.parse.urlsplit(SETTING_FIELDS["kis_live_host"].metadata["default"]).hostname
PAPER_HOSTNAME = urllib.parse.urlsplit(SETTING_FIELDS["kis_paper_host"].metadata["default"]).hostname
DEFAULT_LIVE_HOST = f"https://{LIVE_HOSTNAME}:9443"
DEFAULT_PAPER_HOST = f"https://{PAPER_HOSTNAME}:29443"
#: Calls whose tr_id differs between the paper (V...) and the live host; ``quote`` is shared.
ACCOUNT_CALLS = ("buy", "sell", "cancel", "balance", "fills")

TOKEN_PATH = "/oauth2/tokenP"
ORDER_PATH = "/uapi/domestic-stock/v1/trading/order-cash"
CANCEL_PATH = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
BALANCE_PATH = "/uapi/domestic-stock/v1/trading/inquire-balance"
DAILY_ORDERS_PATH = "/uapi/domestic-stock/v1/trading/inquire-daily-ccld"
QUOTE_PATH = "/uapi/domestic-stock/v1/quotations/inquire-price"

# KIS gateway answers (msg_cd, or error_code on /oauth2/tokenP)
EXPIRED_TOKEN = "EGW00123"  # 기간이 만료된 token 입니다 (HTTP 500)
TOO_MANY_REQUESTS = "EGW00201"  # 초당 거래건수를 초과하였습니다 (HTTP 500)
TOKEN_TOO_SOON = "EGW00133"  # 접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회) (HTTP 403)
#: invalid token / token not found: the cached token is dropped, the call fails
BAD_TOKEN_CODES = frozenset({"EGW00121", "EGW00122"})
#: invalid app key / app secret
BAD_CREDENTIAL_CODES = frozenset({"EGW00103", "EGW00105"})

TOKEN_INTERVAL = timedelta(minutes=1)
TOKEN_RENEW_BEFORE = timedelta(minutes=5)
MAX_PAGES = 50
_MORE_PAGES = ("F", "M")


# --- errors -----------------------------------------------------------------------------


class KisError(BrokerError):
    """KIS did not do what was asked. ``msg_cd``/``msg1`` are KIS's code and message
    when it gave them."""

    def __init__(self, message: str, *, msg_cd: str = "", msg1: str = "") -> None:
        super().__init__(message)
        self.msg_cd = msg_cd
        self.msg1 = msg1

    @property
    def reason(self) -> str:
        """KIS's own words, with its code: ``주문가능금액을 초과 했습니다 (APBK0952)``."""
        if self.msg1 and self.msg_cd:
            return f"{self.msg1} ({self.msg_cd})"
        return self.msg1 or self.msg_cd or str(self)


class KisAuthError(KisError):
    """The app key, app secret or token was refused."""


class KisRateLimited(KisError):
    """KIS kept answering "too many requests per second" (EGW00201) after the retries."""


class KisTokenRateLimited(KisError):
    """A new token is needed but one was asked for less than a minute ago (KIS issues
    one a minute, EGW00133). ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: float, msg_cd: str = "", msg1: str = "") -> None:
        super().__init__(message, msg_cd=msg_cd, msg1=msg1)
        self.retry_after = retry_after


class KisTransportError(KisError):
    """No usable answer: connection error, timeout, HTTP 5xx, or a body that is not JSON.
    For an order this means *unknown*: reconcile before sending it again."""


class KisRefused(KisError):
    """KIS answered ``rt_cd`` != "0" for a business reason (not auth, not rate)."""


class KisOrderRejected(KisRefused, OrderRejected):
    """KIS refused an order or a cancel; ``reason`` is its message."""


# --- configuration ----------------------------------------------------------------------


def mask_account(account: str) -> str:
    """``12345678-01`` -> ``********01``: only the last two digits are shown."""
    digits = "".join(ch for ch in account if ch.isdigit())
    return "*" * max(len(digits) - 2, 0) + digits[-2:]


@dataclass(frozen=True, repr=False)
class KisConfig:
    """What the client needs. Its repr hides the app key, secret and account."""

    environment: str  # paper | live
    host: str
    tr_ids: Mapping[str, str]
    app_key: str
    app_secret: str
    cano: str  # 종합계좌번호, the account's first 8 digits
    acnt_prdt_cd: str  # 계좌상품코드, its last 2 digits
    requests_per_second: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "KisConfig":
        """The configuration in force; raises :class:`ConfigurationError` (one line) if
        :func:`check_live_config` finds a problem."""
        check_live_config(settings)
        paper = settings.kis_environment == "paper"
        digits = settings.kis_account.replace("-", "")
        return cls(
            environment=settings.kis_environment,
            host=settings.kis_paper_host if paper else settings.kis_live_host,
            tr_ids=MappingProxyType(tr_id_table(settings.kis_paper_tr_ids if paper else settings.kis_live_tr_ids)),
            app_key=settings.kis_app_key,
            app_secret=settings.kis_app_secret,
            cano=digits[:8],
            acnt_prdt_cd=digits[8:],
            requests_per_second=settings.kis_requests_per_second,
        )

    @property
    def broker_name(self) -> str:
        return f"kis-{self.environment}"

    @property
    def masked_account(self) -> str:
        return mask_account(self.cano + self.acnt_prdt_cd)

    def __repr__(self) -> str:
        return (f"KisConfig(environment={self.environment!r}, host={self.host!r}, "
                f"tr_ids={dict(self.tr_ids)!r}, app_key='***', app_secret='***', "
                f"account={self.masked_account!r}, requests_per_second={self.requests_per_second!r})")

    __str__ = __repr__


def _hostname(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def check_live_config(settings: Settings) -> None:
    """Refuse a KIS configuration that would trade the wrong account or cannot work.

    Raises :class:`ConfigurationError` with one line naming what is wrong and what is
    accepted: missing ``KIS_APP_KEY``/``KIS_APP_SECRET``/``KIS_ACCOUNT`` (named, never
    shown); paper settings that point at the live host or use live tr_ids; live
    settings that point at the paper host or use paper (``V...``) tr_ids.
    """
    missing = [name for name, value in (("KIS_APP_KEY", settings.kis_app_key),
                                        ("KIS_APP_SECRET", settings.kis_app_secret),
                                        ("KIS_ACCOUNT", settings.kis_account)) if not value]
    if missing:
        raise ConfigurationError(
            f"KIS trading (--no-dry-run) needs {', '.join(missing)}, not set in the environment or .env; "
            "expected the KIS open API app key and app secret and the 10-digit account number "
            "(8 digits, a dash, 2 digits)")
    problems = []
    if settings.kis_environment == "paper":
        host, tr_ids = settings.kis_paper_host, tr_id_table(settings.kis_paper_tr_ids)
        if _hostname(host) == LIVE_HOSTNAME or host == settings.kis_live_host:
            problems.append(f"ORCHESTRATOR_KIS_PAPER_HOST={host} is the live host; expected the paper "
                            f"(모의투자) host such as {DEFAULT_PAPER_HOST}")
        wrong = [f"{call}={tr_ids[call]}" for call in ACCOUNT_CALLS if not tr_ids[call].startswith("V")]
        if wrong:
            problems.append(f"ORCHESTRATOR_KIS_PAPER_TR_IDS has live tr_ids {', '.join(wrong)}; expected "
                            "paper tr_ids starting with V (e.g. buy=VTTC0012U,sell=VTTC0011U)")
    else:
        host, tr_ids = settings.kis_live_host, tr_id_table(settings.kis_live_tr_ids)
        if _hostname(host) == PAPER_HOSTNAME or host == settings.kis_paper_host:
            problems.append(f"ORCHESTRATOR_KIS_LIVE_HOST={host} is the paper host; expected the live host "
                            f"such as {DEFAULT_LIVE_HOST}")
        wrong = [f"{call}={tr_ids[call]}" for call in ACCOUNT_CALLS if tr_ids[call].startswith("V")]
        if wrong:
            problems.append(f"ORCHESTRATOR_KIS_LIVE_TR_IDS has paper tr_ids {', '.join(wrong)}; expected "
                            "live tr_ids, which do not start with V (e.g. buy=TTTC0012U,sell=TTTC0011U)")
    if problems:
        raise ConfigurationError(f"ORCHESTRATOR_KIS_ENVIRONMENT={settings.kis_environment}: "
                                 + "; ".join(problems))


# --- HTTP client --------------------------------------------------------------------------


@dataclass(frozen=True)
class KisResponse:
    """One successful answer (``rt_cd`` "0"): its JSON body and the ``tr_cont`` header
    (F or M: more pages follow)."""

    body: dict[str, Any]
    tr_cont: str


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: datetime
    issued_at: datetime


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: dict[str, Any] | None  # None: not a JSON object

    @property
    def code(self) -> str:
        if self.body is None:
            return ""
        return str(self.body.get("msg_cd") or self.body.get("error_code") or "").strip()

    @property
    def message(self) -> str:
        if self.body is None:
            return ""
        return str(self.body.get("msg1") or self.body.get("error_description") or "").strip()


class KisClient:
    """HTTP to one KIS host, with the token, the rate limit and the error mapping.

    ``cache_dir`` holds the token file (0600), named by a hash of the host and of the
    app key's sha256, so processes sharing the directory share one token. ``clock``
    (wall time, for token expiry) and ``monotonic``/``sleep`` (request spacing) are
    injectable; tests pass fakes and never sleep. Calls from several threads are
    serialised (one request at a time).
    """

    def __init__(
        self,
        config: KisConfig,
        *,
        cache_dir: Path,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 10.0,
        rate_retries: int = 3,
        rate_pause: float = 1.0,
    ) -> None:
        self._config = config
        self._clock = clock or SystemClock()
        self._monotonic = monotonic
        self._sleep = sleep
        self._timeout = timeout
        self._rate_retries = rate_retries
        self._rate_pause = rate_pause
        self._interval = 1.0 / config.requests_per_second
        self._next_slot: float | None = None
        self._token: _Token | None = None
        self._last_token_request: datetime | None = None
        self._key_hash = hashlib.sha256(config.app_key.encode("utf-8")).hexdigest()
        name = hashlib.sha256(f"{config.host}|{self._key_hash}".encode("utf-8")).hexdigest()[:32]
        self._cache_dir = Path(cache_dir)
        self.token_file = self._cache_dir / f"kis-token-{name}.json"
        self._opener = urllib.request.build_opener()
        self._lock = threading.Lock()  # one request at a time: the rate limit and the token are shared

    # public calls

    def get(self, path: str, tr_id: str, params: Mapping[str, str], *, tr_cont: str = "") -> KisResponse:
        return self._call("GET", path, tr_id, params, tr_cont)

    def post(self, path: str, tr_id: str, body: Mapping[str, str]) -> KisResponse:
        return self._call("POST", path, tr_id, body, "")

    def get_pages(self, path: str, tr_id: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every page of a listing: while the answer's ``tr_cont`` header is F or M, ask
        again with ``tr_cont: N`` and the ``CTX_AREA_FK100``/``NK100`` it returned."""
        query = dict(params)
        pages = [self.get(path, tr_id, query)]
        while pages[-1].tr_cont in _MORE_PAGES:
            if len(pages) >= MAX_PAGES:
                raise KisError(f"KIS {path} tr_id={tr_id}: still more pages after {MAX_PAGES}; "
                               "expected the listing to end")
            last = pages[-1].body
            query["CTX_AREA_FK100"] = str(_field(last, "ctx_area_fk100") or "")
            query["CTX_AREA_NK100"] = str(_field(last, "ctx_area_nk100") or "")
            pages.append(self.get(path, tr_id, query, tr_cont="N"))
        return [page.body for page in pages]

    # requests

    def _call(self, method: str, path: str, tr_id: str, payload: Mapping[str, str], tr_cont: str) -> KisResponse:
        with self._lock:
            return self._call_locked(method, path, tr_id, payload, tr_cont)

    def _call_locked(self, method: str, path: str, tr_id: str, payload: Mapping[str, str],
                     tr_cont: str) -> KisResponse:
        reissued = False
        rate_retries = 0
        while True:
            token = self._valid_token()
            headers = {
                "content-type": "application/json; charset=utf-8",
                "authorization": f"Bearer {token}",
                "appkey": self._config.app_key,
                "appsecret": self._config.app_secret,
                "tr_id": tr_id,
                "custtype": "P",
                "tr_cont": tr_cont,
            }
            answer = self._send(method, path, payload, headers)
            logger.debug("KIS %s %s tr_id=%s -> HTTP %s msg_cd=%s", method, path, tr_id, answer.status,
                         answer.code or "-")
            if answer.code == EXPIRED_TOKEN and not reissued:
                logger.info("KIS %s tr_id=%s: the token has expired (EGW00123); issuing a new one", path, tr_id)
                self._forget_token()
                reissued = True
                continue
            if answer.code == TOO_MANY_REQUESTS and rate_retries < self._rate_retries:
                rate_retries += 1
                logger.warning("KIS %s tr_id=%s: too many requests per second (EGW00201); retry %d of %d "
                               "in %.1f s", path, tr_id, rate_retries, self._rate_retries, self._rate_pause)
                self._sleep(self._rate_pause)
                continue
            return self._checked(answer, path, tr_id)

    def _checked(self, answer: _Answer, path: str, tr_id: str) -> KisResponse:
        where = f"KIS {path} tr_id={tr_id}"
        code, message = answer.code, answer.message
        detail = f"{message} ({code})" if code else message
        if answer.body is None:
            if answer.status == 200:
                raise KisTransportError(f"{where}: the answer is not a JSON object; expected KIS's JSON body")
            if answer.status in (401, 403):
                raise KisAuthError(f"{where}: HTTP {answer.status}; check KIS_APP_KEY and KIS_APP_SECRET")
            raise KisTransportError(f"{where}: HTTP {answer.status} without a KIS answer")
        if code == TOO_MANY_REQUESTS:
            raise KisRateLimited(f"{where}: too many requests per second after {self._rate_retries} retries "
                                 f"({detail}); lower ORCHESTRATOR_KIS_REQUESTS_PER_SECOND",
                                 msg_cd=code, msg1=message)
        if code == EXPIRED_TOKEN or code in BAD_TOKEN_CODES:
            self._forget_token()
            raise KisAuthError(f"{where}: the token was refused ({detail})", msg_cd=code, msg1=message)
        if code in BAD_CREDENTIAL_CODES or answer.status in (401, 403):
            raise KisAuthError(f"{where}: refused ({detail}); check KIS_APP_KEY and KIS_APP_SECRET",
                               msg_cd=code, msg1=message)
        if answer.status >= 500:
            raise KisTransportError(f"{where}: HTTP {answer.status} ({detail})", msg_cd=code, msg1=message)
        if answer.status != 200:
            raise KisError(f"{where}: HTTP {answer.status} ({detail})", msg_cd=code, msg1=message)
        if str(answer.body.get("rt_cd", "")).strip() != "0":
            raise KisRefused(f"{where}: refused: {detail}", msg_cd=code, msg1=message)
        return KisResponse(answer.body, str(answer.headers.get("tr_cont") or "").strip())

    def _send(self, method: str, path: str, payload: Mapping[str, str], headers: Mapping[str, str]) -> _Answer:
        self._throttle()
        url = self._config.host + path
        data = None
        if method == "GET":
            if payload:
                url += "?" + urllib.parse.urlencode(payload)
        else:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(url, data=data, headers=dict(headers), method=method)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                status, answer_headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, answer_headers = exc.code, exc.headers
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
            reason = getattr(exc, "reason", None) or exc.__class__.__name__
            raise KisTransportError(f"KIS {path}: cannot reach {self._config.host} ({reason})") from None
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        return _Answer(status, answer_headers or {}, body if isinstance(body, dict) else None)

    def _throttle(self) -> None:
        now = self._monotonic()
        if self._next_slot is not None and now < self._next_slot:
            self._sleep(self._next_slot - now)
            now = self._next_slot
        self._next_slot = now + self._interval

    # token

    def _valid_token(self) -> str:
        now = self._clock.now()
        token = self._token or self._read_token_file()
        if token is not None and now < token.expires_at - TOKEN_RENEW_BEFORE:
            self._token = token
            return token.value
        return self._issue_token(now)

    def _issue_token(self, now: datetime) -> str:
        last = self._last_token_request
        if last is not None and now - last < TOKEN_INTERVAL:
            wait = (TOKEN_INTERVAL - (now - last)).total_seconds()
            raise KisTokenRateLimited(
                f"KIS issues one token a minute and one was requested {(now - last).total_seconds():.0f} s ago; "
                f"retry in {wait:.0f} s", retry_after=wait)
        self._last_token_request = now
        answer = self._send("POST", TOKEN_PATH, {"grant_type": "client_credentials",
                                                 "appkey": self._config.app_key,
                                                 "appsecret": self._config.app_secret},
                            {"content-type": "application/json; charset=utf-8"})
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
        token = _Token(str(body["access_token"]), _token_expiry(body, now), now)
        self._token = token
        self._write_token_file(token)
        logger.info("KIS token issued by %s, valid until %s", self._config.host,
                    token.expires_at.astimezone(SEOUL).isoformat(timespec="seconds"))
        return token.value

    def _forget_token(self) -> None:
        self._token = None
        try:
            self.token_file.unlink()
        except FileNotFoundError:
            pass

    def _read_token_file(self) -> _Token | None:
        try:
            data = json.loads(self.token_file.read_text(encoding="utf-8"))
            if data.get("host") != self._config.host or data.get("app_key_sha256") != self._key_hash:
                return None
            token = _Token(str(data["access_token"]), datetime.fromisoformat(data["expires_at"]),
                           datetime.fromisoformat(data["issued_at"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            logger.warning("KIS token cache %s cannot be read; ignoring it", self.token_file.name)
            return None
        if token.expires_at.tzinfo is None or token.issued_at.tzinfo is None:
            return None
        if self._last_token_request is None or token.issued_at > self._last_token_request:
            self._last_token_request = token.issued_at  # the minute rule holds across processes
        return token

    def _write_token_file(self, token: _Token) -> None:
        data = {"host": self._config.host, "app_key_sha256": self._key_hash, "access_token": token.value,
                "expires_at": token.expires_at.isoformat(), "issued_at": token.issued_at.isoformat()}
        try:
            make_private_dir(self._cache_dir)
            temporary = self.token_file.with_name(self.token_file.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o600)
                json.dump(data, handle)
            os.replace(temporary, self.token_file)
        except OSError as exc:
            logger.warning("KIS token cache %s cannot be written (%s); the token is kept in memory only",
                           self.token_file.name, exc.strerror)


def _token_expiry(body: Mapping[str, Any], now: datetime) -> datetime:
    """``access_token_token_expired`` ("YYYY-MM-DD HH:MM:SS", Seoul time), else
    ``expires_in`` seconds from now, else a day."""
    text = str(body.get("access_token_token_expired") or "").strip()
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SEOUL)
    except ValueError:
        pass
    try:
        return now + timedelta(seconds=int(body.get("expires_in")))
    except (TypeError, ValueError):
        return now + timedelta(days=1)


# --- broker -------------------------------------------------------------------------------


def _field(row: Mapping[str, Any], name: str) -> Any:
    """A field in whichever case KIS used (order answers are UPPERCASE, lists lowercase)."""
    for key in (name, name.lower(), name.upper()):
        if key in row:
            return row[key]
    return None


def _number(row: Mapping[str, Any], name: str) -> Decimal:
    value = _field(row, name)
    text = str(value).strip().replace(",", "") if value is not None else ""
    if not text:
        return Decimal(0)
    try:
        return Decimal(text)
    except InvalidOperation:
        raise KisError(f"KIS answered {name}={text!r}; expected a number") from None


def _whole(row: Mapping[str, Any], name: str) -> int:
    """A number of KRW or shares, rounded to a whole one."""
    return int(_number(row, name).to_integral_value())


def _text(row: Mapping[str, Any], name: str) -> str:
    value = _field(row, name)
    return str(value).strip() if value is not None else ""


def add_weekdays(day: date, count: int) -> date:
    """``day`` plus ``count`` weekdays: the approximate settlement date (holidays ignored)."""
    while count > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def _rows(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    return [row for row in value or [] if isinstance(row, dict)]


class KisBroker:
    """The Broker protocol on the KIS open API (paper or live host per the config).

    ``clock`` gives "today" in Asia/Seoul (open orders, cancels, positions' ``opened_on``).
    ``settlement_date`` maps a trade date to its settlement date; without it the
    settlement date is trade date + 2 weekdays, which ignores holidays (pass one built
    on the market calendar to get T+2 sessions).
    """

    dry_run = False

    def __init__(
        self,
        config: KisConfig,
        client: KisClient,
        fees: FeeSchedule,
        *,
        clock: Clock,
        settlement_date: Callable[[date], date] | None = None,
    ) -> None:
        self.name = config.broker_name
        self._config = config
        self._client = client
        self._fees = fees
        self._clock = clock
        self._settlement_date = settlement_date or (lambda day: add_weekdays(day, 2))
        self._placed: dict[str, Order] = {}  # client_order_id -> order
        self._client_ids: dict[str, str] = {}  # order_id -> client_order_id
        logger.info("KIS broker %s on %s, account %s", self.name, config.host, config.masked_account)

    def _today(self) -> date:
        return self._clock.now().astimezone(SEOUL).date()

    def _account(self) -> dict[str, str]:
        return {"CANO": self._config.cano, "ACNT_PRDT_CD": self._config.acnt_prdt_cd}

    # orders

    def place_order(self, request: OrderRequest) -> Order:
        """Send a cash order. Market: ORD_DVSN "01", ORD_UNPR "0"; limit: "00" at the
        limit price. The order id is ``{KRX_FWDG_ORD_ORGNO}-{ODNO}`` (a cancel needs
        both). A refusal by KIS comes back ``rejected`` with KIS's message."""
        if request.client_order_id in self._placed:
            return self._placed[request.client_order_id]
        problem = _request_problem(request)
        if problem:
            order = self._rejected(request, problem)
        else:
            order = self._send_order(request)
        self._placed[request.client_order_id] = order
        self._client_ids[order.order_id] = request.client_order_id
        return order

    def _send_order(self, request: OrderRequest) -> Order:
        market = request.order_type is OrderType.MARKET
        body = {
            **self._account(),
            "PDNO": request.ticker,
            "ORD_DVSN": "01" if market else "00",
            "ORD_QTY": str(request.quantity),
            "ORD_UNPR": "0" if market else str(request.limit_price),
            "EXCG_ID_DVSN_CD": "KRX",
        }
        tr_id = self._config.tr_ids["buy" if request.side is Side.BUY else "sell"]
        try:
            answer = self._client.post(ORDER_PATH, tr_id, body)
        except KisRefused as exc:
            logger.warning("KIS refused %s %s x%d (%s): %s", request.side.value, request.ticker,
                           request.quantity, request.client_order_id, exc.reason)
            return self._rejected(request, exc.reason)
        output = _rows(answer.body.get("output"))
        orgno = _text(output[0], "KRX_FWDG_ORD_ORGNO") if output else ""
        odno = _text(output[0], "ODNO") if output else ""
        if not (orgno and odno):
            raise KisError(f"KIS took order {request.client_order_id} but returned no KRX_FWDG_ORD_ORGNO/ODNO; "
                           "check open_orders() before sending it again")
        order_id = f"{orgno}-{odno}"
        logger.info("KIS order %s: %s %s x%d %s (%s)", order_id, request.side.value, request.ticker,
                    request.quantity, request.order_type.value, request.client_order_id)
        return Order(order_id=order_id, client_order_id=request.client_order_id,
                     trading_date=request.trading_date, ticker=request.ticker, side=request.side,
                     order_type=request.order_type, quantity=request.quantity,
                     limit_price=None if market else request.limit_price, status=OrderStatus.NEW,
                     filled_quantity=0, reason=request.reason, dry_run=False)

    @staticmethod
    def _rejected(request: OrderRequest, reason: str) -> Order:
        return Order(order_id=f"rejected:{request.client_order_id}", client_order_id=request.client_order_id,
                     trading_date=request.trading_date, ticker=request.ticker, side=request.side,
                     order_type=request.order_type, quantity=request.quantity, limit_price=request.limit_price,
                     status=OrderStatus.REJECTED, filled_quantity=0, reason=reason, dry_run=False)

    def cancel(self, order_id: str) -> Order:
        """Cancel what is left of one of today's orders (order-rvsecncl, RVSE_CNCL_DVSN_CD
        "02", QTY_ALL_ORD_YN "Y"). The order is looked up in today's list first; one with
        nothing left comes back as it is. ``cancelled`` means KIS accepted the cancel."""
        orgno, _, odno = order_id.partition("-")
        if not (orgno.isdigit() and odno.isdigit()):
            raise KisError(f"cannot cancel {order_id!r}: expected a KIS order id such as 91252-0000012345 "
                           "(KRX_FWDG_ORD_ORGNO-ODNO)")
        today = self._today()
        current = next((order for order in self._orders_of(today, filled="00")
                        if order_number_key(order.order_id) == order_number_key(order_id)), None)
        if current is None:
            raise KisError(f"cannot cancel {order_id}: not among the orders of {today}; KIS cancels only "
                           "today's open orders")
        if not current.is_open:
            return current
        body = {
            **self._account(),
            "KRX_FWDG_ORD_ORGNO": orgno,
            "ORGN_ODNO": odno,
            "ORD_DVSN": "01" if current.order_type is OrderType.MARKET else "00",
            "RVSE_CNCL_DVSN_CD": "02",
            "ORD_QTY": "0",
            "ORD_UNPR": "0",
            "QTY_ALL_ORD_YN": "Y",
            "EXCG_ID_DVSN_CD": "KRX",
        }
        try:
            self._client.post(CANCEL_PATH, self._config.tr_ids["cancel"], body)
        except KisRefused as exc:
            raise KisOrderRejected(f"KIS refused to cancel {order_id}: {exc.reason}",
                                   msg_cd=exc.msg_cd, msg1=exc.msg1) from None
        logger.info("KIS order %s: cancel accepted (%d of %d filled)", order_id, current.filled_quantity,
                    current.quantity)
        return replace(current, status=OrderStatus.CANCELLED)

    def open_orders(self) -> list[Order]:
        """Today's orders with shares left (inquire-daily-ccld, CCLD_DVSN "02" 미체결)."""
        return [order for order in self._orders_of(self._today(), filled="02") if order.is_open]

    def orders_placed_on(self, day: date) -> list[tuple[Order, datetime | None]]:
        """The orders placed on ``day`` with their order time (``ord_tmd``, Seoul; None
        if KIS gave none): the original orders only, not the correction and cancel
        orders KIS lists beside them (those carry ``orgn_odno``). What reconciles an
        order whose answer was lost (see ``live_orders``)."""
        return [(self._order_from_row(row), _row_moment(day, _text(row, "ord_tmd")))
                for row in self._daily_rows(day, "00") if not _text(row, "orgn_odno")]

    def _orders_of(self, day: date, *, filled: str) -> list[Order]:
        """The day's orders; ``filled``: CCLD_DVSN "00" all, "01" filled, "02" not filled."""
        return [self._order_from_row(row) for row in self._daily_rows(day, filled)]

    def _daily_rows(self, day: date, filled: str) -> list[dict[str, Any]]:
        text = day.strftime("%Y%m%d")
        params = {**self._account(), "INQR_STRT_DT": text, "INQR_END_DT": text, "SLL_BUY_DVSN_CD": "00",
                  "INQR_DVSN": "00", "PDNO": "", "CCLD_DVSN": filled, "ORD_GNO_BRNO": "", "ODNO": "",
                  "INQR_DVSN_3": "00", "INQR_DVSN_1": "", "CTX_AREA_FK100": "", "CTX_AREA_NK100": "",
                  "EXCG_ID_DVSN_CD": "KRX"}
        pages = self._client.get_pages(DAILY_ORDERS_PATH, self._config.tr_ids["fills"], params)
        return [row for page in pages for row in _rows(page.get("output1"))]

    def _order_from_row(self, row: Mapping[str, Any]) -> Order:
        quantity = _whole(row, "ord_qty")
        filled = _whole(row, "tot_ccld_qty")
        cancelled = _whole(row, "cnc_cfrm_qty")
        refused = _whole(row, "rjct_qty")
        if _field(row, "rmn_qty") not in (None, ""):
            remaining = _whole(row, "rmn_qty")
        else:
            remaining = max(quantity - filled - cancelled - refused, 0)
        if remaining > 0:
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
        elif quantity > 0 and filled >= quantity:
            status = OrderStatus.FILLED
        elif refused > 0 and filled == 0:
            status = OrderStatus.REJECTED
        else:
            status = OrderStatus.CANCELLED  # cancelled, or expired at the close
        price = _whole(row, "ord_unpr")
        code = _text(row, "ord_dvsn_cd")
        order_type = OrderType.MARKET if code == "01" or (code != "00" and price == 0) else OrderType.LIMIT
        order_id = f"{_text(row, 'ord_gno_brno')}-{_text(row, 'odno')}"
        return Order(order_id=order_id, client_order_id=self._client_ids.get(order_id, ""),
                     trading_date=_row_date(row, "ord_dt"), ticker=_text(row, "pdno"), side=_row_side(row),
                     order_type=order_type, quantity=quantity,
                     limit_price=price if order_type is OrderType.LIMIT else None, status=status,
                     filled_quantity=filled, reason="", dry_run=False)

    # account

    def positions(self) -> list[Position]:
        """Holdings with ``hldg_qty`` > 0 from inquire-balance ``output1``, all pages.

        ``cost`` is ``pchs_amt`` (매입금액); KIS's purchase amount does not include the
        buy commission, so cost is understated by about 0.015 %. ``high_water`` is the
        current price ``prpr`` (KIS keeps no high since entry: keep the larger of this
        and your own record) and ``opened_on`` is today (KIS gives no entry date).
        """
        pages = self._client.get_pages(BALANCE_PATH, self._config.tr_ids["balance"], self._balance_params())
        today = self._today()
        positions: dict[str, Position] = {}
        for row in (row for page in pages for row in _rows(page.get("output1"))):
            quantity = _whole(row, "hldg_qty")
            if quantity <= 0:
                continue  # sold today: KIS lists it with 0 shares until D+2
            ticker = _text(row, "pdno")
            cost, price = _whole(row, "pchs_amt"), _whole(row, "prpr")
            if ticker in positions:  # one ticker on two rows (e.g. by loan date)
                held = positions[ticker]
                quantity, cost, price = held.quantity + quantity, held.cost + cost, max(held.high_water, price)
            positions[ticker] = Position(ticker=ticker, quantity=quantity, cost=cost, opened_on=today,
                                         high_water=price)
        return list(positions.values())

    def cash(self) -> Cash:
        """From inquire-balance ``output2`` (first page).

        ``available`` is ``prvs_rcdl_excc_amt`` (가수도정산금액, the D+2 deposit): cash
        after every trade so far settles, so today's sale proceeds count and today's
        buys are paid; that is what funds new buys. ``settled`` is ``dnca_tot_amt``
        (예수금총금액, the deposit today, D+0) capped at ``available``: after a buy the
        D+0 deposit still holds money that is owed at settlement. (``nxdy_excc_amt``
        is the D+1 deposit, unused.)
        """
        answer = self._client.get(BALANCE_PATH, self._config.tr_ids["balance"], self._balance_params())
        summary = _rows(answer.body.get("output2"))
        if not summary:
            raise KisError("KIS inquire-balance answered without output2; expected the cash summary")
        available = _whole(summary[0], "prvs_rcdl_excc_amt")
        deposit = _whole(summary[0], "dnca_tot_amt")
        return Cash(available=available, settled=min(deposit, available))

    def _balance_params(self) -> dict[str, str]:
        return {**self._account(), "AFHR_FLPR_YN": "N", "OFL_YN": "", "INQR_DVSN": "02", "UNPR_DVSN": "01",
                "FUND_STTL_ICLD_YN": "N", "FNCG_AMT_AUTO_RDPT_YN": "N", "PRCS_DVSN": "00",
                "CTX_AREA_FK100": "", "CTX_AREA_NK100": ""}

    def fills(self, day: date) -> list[Fill]:
        """Filled orders of ``day`` (inquire-daily-ccld, CCLD_DVSN "01"; within KIS's
        three-month window).

        One fill per order, as KIS's daily list totals each order: quantity
        ``tot_ccld_qty``, price ``avg_prvs`` (the average fill price, rounded to KRW),
        ``filled_at`` the order's time ``ord_tmd`` (the list has no fill time). KIS's
        list gives no per-fill fees, so commission and tax are estimated with the
        FeeSchedule on ``tot_ccld_amt``. ``settles_on`` comes from ``settlement_date``
        (default: 2 weekdays later, holidays ignored, so approximate).
        """
        fills = []
        for row in self._daily_rows(day, "01"):
            quantity = _whole(row, "tot_ccld_qty")
            if quantity <= 0:
                continue
            price = _whole(row, "avg_prvs")
            amount = _whole(row, "tot_ccld_amt") or quantity * price
            side = _row_side(row)
            trade_date = _row_date(row, "ord_dt") if _text(row, "ord_dt") else day
            fills.append(Fill(
                order_id=f"{_text(row, 'ord_gno_brno')}-{_text(row, 'odno')}", ticker=_text(row, "pdno"),
                side=side, quantity=quantity, price=price, commission=self._fees.commission(amount),
                tax=self._fees.sell_tax(amount, trade_date) if side is Side.SELL else 0,
                trade_date=trade_date, settles_on=self._settlement_date(trade_date),
                filled_at=_row_time(trade_date, _text(row, "ord_tmd")), dry_run=False))
        return fills

    # quotes

    def quotes(self, tickers: list[str]) -> dict[str, int]:
        """Current prices (inquire-price ``stck_prpr``), one rate-limited request per ticker."""
        prices = {}
        for ticker in tickers:
            answer = self._client.get(QUOTE_PATH, self._config.tr_ids["quote"],
                                      {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": ticker})
            output = _rows(answer.body.get("output"))
            price = _whole(output[0], "stck_prpr") if output else 0
            if price <= 0:
                raise KisError(f"KIS inquire-price gave no current price for {ticker}; expected stck_prpr > 0")
            prices[ticker] = price
        return prices


def _request_problem(request: OrderRequest) -> str:
    if request.quantity <= 0:
        return f"quantity {request.quantity}: expected whole shares above 0"
    if request.order_type is OrderType.LIMIT and (request.limit_price is None or request.limit_price <= 0):
        return "a limit order needs a limit price above 0"
    if request.order_type is OrderType.MARKET and request.limit_price is not None:
        return f"a market order takes no limit price (got {request.limit_price}); use a limit order"
    return ""


def _row_side(row: Mapping[str, Any]) -> Side:
    code = _text(row, "sll_buy_dvsn_cd")
    if code == "01":
        return Side.SELL
    if code == "02":
        return Side.BUY
    raise KisError(f"KIS answered sll_buy_dvsn_cd={code!r}; expected 01 (sell) or 02 (buy)")


def _row_date(row: Mapping[str, Any], name: str) -> date:
    text = _text(row, name)
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise KisError(f"KIS answered {name}={text!r}; expected a date YYYYMMDD") from None


def _row_time(day: date, hhmmss: str) -> datetime:
    return _row_moment(day, hhmmss) or datetime.combine(day, datetime.min.time(), tzinfo=SEOUL)


def _row_moment(day: date, hhmmss: str) -> datetime | None:
    """``ord_tmd`` (HHMMSS, Seoul) on ``day``; None if KIS gave no such time."""
    try:
        return datetime.combine(day, datetime.strptime(hhmmss, "%H%M%S").time(), tzinfo=SEOUL)
    except ValueError:
        return None


def make_kis_broker(settings: Settings, *, cache_dir: Path, clock: Clock,
                    settlement_date: Callable[[date], date] | None = None) -> KisBroker:
    """The KIS broker the settings describe (checked by :func:`check_live_config`)."""
    config = KisConfig.from_settings(settings)
    client = KisClient(config, cache_dir=cache_dir, clock=clock)
    return KisBroker(config, client, FeeSchedule.from_settings(settings), clock=clock,
                     settlement_date=settlement_date)
