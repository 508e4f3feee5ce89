"""KIS open-API calls: headers and token, paging, KIS's answers turned into typed
errors, and the retry policy (tenacity, exponential backoff).

What is retried, and what is not:

- "too many requests per second" (``EGW00201``): KIS did nothing, so any call is sent
  again after a pause (1 s, 2 s, 4 s by default).
- a request that never left (no connection): any call, the same way.
- a read (GET) that timed out, lost its connection or got HTTP 5xx: asked again.
- an order POST whose answer was lost (timeout, dropped connection, HTTP 5xx) is *not*
  sent again: KIS may have taken it. :class:`KisTransportError` tells the caller to
  reconcile.
- an expired token (``EGW00123``) is reissued once and the call sent again; refusals
  (``rt_cd`` != "0") and auth errors are never retried.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from services.common.clock import Clock, SystemClock
from services.common.throttle import THROTTLES, Pace, SharedThrottle, Throttle, interval_of
from services.trading_engine.kis_api.app import KisApp
from services.trading_engine.kis_api.auth import TokenFile, TokenKeeper
from services.trading_engine.kis_api.errors import (
    KisAuthError,
    KisError,
    KisRateLimited,
    KisRefused,
    KisTransportError,
)
from services.trading_engine.kis_api.parsing import field
from services.trading_engine.kis_api.transport import Answer, KisHttp

logger = logging.getLogger(__name__)

# KIS gateway answers (msg_cd)
EXPIRED_TOKEN = "EGW00123"  # 기간이 만료된 token 입니다 (HTTP 500)
TOO_MANY_REQUESTS = "EGW00201"  # 초당 거래건수를 초과하였습니다 (HTTP 500)
#: invalid token / token not found: the cached token is dropped, the call fails
BAD_TOKEN_CODES = frozenset({"EGW00121", "EGW00122"})
#: invalid app key / app secret
BAD_CREDENTIAL_CODES = frozenset({"EGW00103", "EGW00105"})

MAX_PAGES = 50
_MORE_PAGES = ("F", "M")
MAX_BACKOFF = 30.0  # seconds: the longest pause between two attempts


@dataclass(frozen=True)
class KisResponse:
    """One successful answer (``rt_cd`` "0"): its JSON body and the ``tr_cont`` header
    (F or M: more pages follow)."""

    body: dict[str, Any]
    tr_cont: str


def throttle_name(config: KisApp) -> str:
    """The name of a host and app key's pace (KIS limits requests per app key): of the
    process's throttle where the pacing file cannot be used, and hashed, of that file."""
    app = hashlib.sha256(config.app_key.encode("utf-8")).hexdigest()[:12]
    return f"kis {config.host} app {app}"


def pace_file(cache_dir: Path, config: KisApp) -> Path:
    """The file every process of a host and app key paces on (beside the token file;
    named by hashes, it holds no key)."""
    name = hashlib.sha256(throttle_name(config).encode("utf-8")).hexdigest()[:32]
    return Path(cache_dir) / f"kis-pace-{name}"


def shared_pace(cache_dir: Path, config: KisApp, *, clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> Pace:
    """The pace of a host and app key, shared by every process using ``cache_dir`` (the
    process's own throttle where the file cannot be used)."""
    interval = interval_of(config.requests_per_second)
    return SharedThrottle(pace_file(cache_dir, config), interval, clock=clock, sleep=sleep,
                          fallback=THROTTLES.get(throttle_name(config), interval))


def worth_retrying(error: BaseException, method: str) -> bool:
    """Whether a failed ``method`` request may be sent again (see the module's doc)."""
    if isinstance(error, KisRateLimited):
        return True
    if isinstance(error, KisTransportError):
        return error.unsent or (error.transient and method == "GET")
    return False


class KisClient:
    """HTTP to one KIS host, with the token, the pace and the error mapping.

    ``cache_dir`` holds the token file (see :class:`~.auth.TokenFile`). ``clock`` (wall
    time, for token expiry) is injectable; so are ``monotonic`` and ``sleep``: given
    either, the client paces itself on them (tests pass fakes and never sleep),
    otherwise it shares the pace of its host and app key with every process using
    ``cache_dir`` (:func:`shared_pace`). ``retries`` is
    how often a failed call is sent again, after ``backoff`` seconds, doubling each
    time. A ``read_only`` client sends GETs only: a POST (an order, a cancel) is refused
    before anything leaves (its token is still issued). Calls from several threads are
    serialised (one request at a time). Close the client (or use it as a context
    manager) to close its connections.
    """

    def __init__(
        self,
        config: KisApp,
        *,
        cache_dir: Path,
        clock: Clock | None = None,
        monotonic: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        read_only: bool = False,
    ) -> None:
        self._config = config
        self._read_only = read_only
        self._sleep = sleep or time.sleep
        self._retries = retries
        self._backoff = backoff
        throttle: Pace
        if monotonic is None and sleep is None:
            throttle = shared_pace(cache_dir, config)
        else:
            throttle = Throttle(interval_of(config.requests_per_second), monotonic=monotonic or time.monotonic,
                                sleep=self._sleep)
        self._http = KisHttp(config.host, throttle=throttle, timeout=timeout, transport=transport)
        self._tokens = TokenKeeper(config, TokenFile(cache_dir, config.host, config.app_key), self._http.send,
                                   clock or SystemClock())
        self._lock = threading.Lock()  # one request at a time: the token is shared

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KisClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
            query["CTX_AREA_FK100"] = str(field(last, "ctx_area_fk100") or "")
            query["CTX_AREA_NK100"] = str(field(last, "ctx_area_nk100") or "")
            pages.append(self.get(path, tr_id, query, tr_cont="N"))
        return [page.body for page in pages]

    # requests

    def _call(self, method: str, path: str, tr_id: str, payload: Mapping[str, str], tr_cont: str) -> KisResponse:
        if self._read_only and method != "GET":
            raise KisError(f"KIS {method} {path} tr_id={tr_id}: refused, this client only reads (quotes); "
                           "orders go through the live adapter")
        retrying = Retrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=self._backoff, max=MAX_BACKOFF),
            retry=retry_if_exception(lambda error: worth_retrying(error, method)),
            before_sleep=self._log_retry,
            sleep=self._sleep,
            reraise=True,
        )
        with self._lock:
            try:
                return retrying(self._attempt, method, path, tr_id, payload, tr_cont)
            except KisRateLimited as exc:
                raise KisRateLimited(f"{exc}; still refused after {self._retries} retries: lower "
                                     "ORCHESTRATOR_KIS_REQUESTS_PER_SECOND", msg_cd=exc.msg_cd, msg1=exc.msg1) from None

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        logger.warning("%s; retry %d of %d in %.1f s", error, state.attempt_number, self._retries, pause)

    def _attempt(self, method: str, path: str, tr_id: str, payload: Mapping[str, str], tr_cont: str) -> KisResponse:
        """One request, sent again once with a new token if KIS says the token expired."""
        answer = self._send(method, path, tr_id, payload, tr_cont)
        if answer.code == EXPIRED_TOKEN:
            logger.info("KIS %s tr_id=%s: the token has expired (EGW00123); issuing a new one", path, tr_id)
            self._tokens.forget()
            answer = self._send(method, path, tr_id, payload, tr_cont)
        return self._checked(answer, path, tr_id)

    def _send(self, method: str, path: str, tr_id: str, payload: Mapping[str, str], tr_cont: str) -> Answer:
        headers = {
            "content-type": "application/json; charset=utf-8",
            "authorization": f"Bearer {self._tokens.token()}",
            "appkey": self._config.app_key,
            "appsecret": self._config.app_secret,
            "tr_id": tr_id,
            "custtype": "P",
            "tr_cont": tr_cont,
        }
        answer = self._http.send(method, path, payload, headers)
        logger.debug("KIS %s %s tr_id=%s -> HTTP %s msg_cd=%s", method, path, tr_id, answer.status,
                     answer.code or "-")
        return answer

    def _checked(self, answer: Answer, path: str, tr_id: str) -> KisResponse:
        where = f"KIS {path} tr_id={tr_id}"
        code, message = answer.code, answer.message
        detail = f"{message} ({code})" if code else message
        if answer.body is None:
            if answer.status == 200:
                raise KisTransportError(f"{where}: the answer is not a JSON object; expected KIS's JSON body")
            if answer.status in (401, 403):
                raise KisAuthError(f"{where}: HTTP {answer.status}; check KIS_APP_KEY and KIS_APP_SECRET")
            raise KisTransportError(f"{where}: HTTP {answer.status} without a KIS answer",
                                    transient=answer.status >= 500)
        if code == TOO_MANY_REQUESTS:
            raise KisRateLimited(f"{where}: too many requests per second ({detail})", msg_cd=code, msg1=message)
        if code == EXPIRED_TOKEN or code in BAD_TOKEN_CODES:
            self._tokens.forget()
            raise KisAuthError(f"{where}: the token was refused ({detail})", msg_cd=code, msg1=message)
        if code in BAD_CREDENTIAL_CODES or answer.status in (401, 403):
            raise KisAuthError(f"{where}: refused ({detail}); check KIS_APP_KEY and KIS_APP_SECRET",
                               msg_cd=code, msg1=message)
        if answer.status >= 500:
            raise KisTransportError(f"{where}: HTTP {answer.status} ({detail})", msg_cd=code, msg1=message,
                                    transient=True)
        if answer.status != 200:
            raise KisError(f"{where}: HTTP {answer.status} ({detail})", msg_cd=code, msg1=message)
        if str(answer.body.get("rt_cd", "")).strip() != "0":
            raise KisRefused(f"{where}: refused: {detail}", msg_cd=code, msg1=message)
        return KisResponse(answer.body, str(answer.headers.get("tr_cont") or "").strip())
