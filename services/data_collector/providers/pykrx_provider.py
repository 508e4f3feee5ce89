"""The real provider: KRX's data site through pykrx, one market-wide request per call.

pykrx is imported lazily (importing it opens a network session) and only when the
credentials it needs are present: the KRX data site is members-only, and pykrx logs
in with ``KRX_ID`` and ``KRX_PW`` from the environment. Korean columns are mapped to
ours here, at the edge. Requests are throttled (services.common.throttle) and retried
with backoff (tenacity); pykrx answers a failed request with an empty frame, which
counts as a transient failure.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pandas as pd
from tenacity import (
    Future,
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

from services.common.clock import Clock
from services.common.market_calendar import MarketCalendar
from services.common.throttle import THROTTLES, Throttle
from services.data_collector.providers import (
    FUNDAMENTAL_COLUMNS,
    INDEX_COLUMNS,
    MARKETS,
    PRICE_COLUMNS,
    STOCK_COLUMNS,
    MarketSnapshot,
    ProviderUnavailable,
    TransientProviderError,
    require_closed_session,
)

logger = logging.getLogger(__name__)

CREDENTIAL_VARIABLES = ("KRX_ID", "KRX_PW")
OHLCV_COLUMNS = {"시가": "open", "고가": "high", "저가": "low", "종가": "close", "거래량": "volume",
                 "거래대금": "value", "등락률": "change_pct", "시가총액": "market_cap"}
FUNDAMENTAL_MAP = {"BPS": "bps", "PER": "per", "PBR": "pbr", "EPS": "eps", "DIV": "div", "DPS": "dps"}
THROTTLE_NAME = "pykrx"  # the process's throttle of KRX's data site (services.common.throttle)


def import_pykrx_stock() -> Any:
    """``pykrx.stock``, or one clear line saying why it cannot be had."""
    missing = [name for name in CREDENTIAL_VARIABLES if not os.environ.get(name)]
    if missing:
        raise ProviderUnavailable(
            f"the pykrx provider needs {' and '.join(missing)} in the environment (the KRX data site "
            "is members-only); set them or use ORCHESTRATOR_DATA_PROVIDER=simulated"
        )
    try:
        from pykrx import stock
    except ImportError:
        raise ProviderUnavailable(
            "pykrx is not installed; run `pip install 'pykrx>=1.2'` or use ORCHESTRATOR_DATA_PROVIDER=simulated"
        ) from None
    return stock


#: KRX's index codes of the market indices stored with each session
INDEX_CODES = {"KOSPI": "1001", "KOSDAQ": "2001"}


class PykrxProvider:
    """Market data from KRX through pykrx.

    Requests are paced ``min_interval`` seconds apart and a failed one (an exception,
    or pykrx's empty answer) is tried up to ``attempts`` times, ``backoff`` ** n seconds
    apart (1 s, 2 s, ...). Given ``sleep`` or ``monotonic`` (tests pass fakes), the
    provider paces itself on them; otherwise it uses the process's ``"pykrx"`` throttle.
    """

    name = "pykrx"

    def __init__(
        self,
        *,
        calendar: MarketCalendar,
        clock: Clock,
        stock_api: Any = None,
        min_interval: float = 1.0,
        attempts: int = 3,
        backoff: float = 2.0,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.calendar = calendar
        self.clock = clock
        self.stock = stock_api if stock_api is not None else import_pykrx_stock()
        self.attempts = attempts
        self.backoff = backoff
        self._sleep = sleep or time.sleep
        if sleep is None and monotonic is None:
            self._throttle = THROTTLES.get(THROTTLE_NAME, min_interval)
        else:
            self._throttle = Throttle(min_interval, monotonic=monotonic or time.monotonic, sleep=self._sleep)
        self._names: dict[str, str] = {}

    def fetch_session(self, trading_date: date) -> MarketSnapshot:
        require_closed_session(self.calendar, self.clock, trading_date)
        day = trading_date.strftime("%Y%m%d")
        prices, fundamentals, stocks = [], [], []
        for market in MARKETS:
            ohlcv = self._call("get_market_ohlcv", day, market=market)
            prices.append(ohlcv_to_prices(ohlcv, trading_date, market, self._market_caps(day, market, ohlcv)))
            fundamentals.append(fundamentals_frame(
                self._call("get_market_fundamental", day, market=market), trading_date))
            tickers = self._call("get_market_ticker_list", day, market=market)
            stocks.append(pd.DataFrame({
                "ticker": [str(t) for t in tickers],
                "name": [self._name(str(t)) for t in tickers],
                "market": market,
            }, columns=STOCK_COLUMNS))
        return MarketSnapshot(trading_date, pd.concat(stocks, ignore_index=True),
                              pd.concat(prices, ignore_index=True), pd.concat(fundamentals, ignore_index=True),
                              self._index_closes(day, trading_date))

    def _index_closes(self, day: str, trading_date: date) -> pd.DataFrame:
        """KOSPI's and KOSDAQ's closes of the day (the benchmark): an index KRX does not
        answer for is left out, with a warning, and the session is stored without it."""
        rows = []
        for name, code in INDEX_CODES.items():
            try:
                frame = self._call("get_index_ohlcv", day, day, code)
            except TransientProviderError as exc:
                logger.warning("no %s close for %s: %s", name, trading_date, exc)
                continue
            if "종가" in frame.columns and len(frame):
                rows.append((name, trading_date, float(frame["종가"].iloc[-1])))
        return pd.DataFrame(rows, columns=INDEX_COLUMNS)

    def _market_caps(self, day: str, market: str, ohlcv: pd.DataFrame) -> pd.Series | None:
        if "시가총액" in ohlcv.columns:
            return None  # pykrx >= 1.2 includes it in the OHLCV frame
        return self._call("get_market_cap", day, market=market)["시가총액"]

    def _name(self, ticker: str) -> str:
        """pykrx answers names from a table it loads once: no request, no throttle. An
        unknown code gets no name (validation then drops its master row, not the date)."""
        if ticker not in self._names:
            try:
                name = self.stock.get_market_ticker_name(ticker)
            except Exception as exc:  # the adapter's edge: a name is not worth the date
                logger.warning("pykrx has no name for %s (%s: %s)", ticker, type(exc).__name__, exc)
                name = ""
            self._names[ticker] = name if isinstance(name, str) else ""
        return self._names[ticker]

    def _call(self, function: str, *args: Any, **kwargs: Any) -> Any:
        """One paced request, retried with exponential backoff."""
        what = _describe(function, args, kwargs)
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=1.0, exp_base=self.backoff),
            retry=retry_if_exception_type(Exception) | retry_if_result(_is_empty),
            before_sleep=lambda state: self._log_retry(what, state),
            sleep=self._sleep,
        )
        try:
            return retrying(self._request, function, *args, **kwargs)
        except RetryError as exc:
            raise TransientProviderError(
                f"pykrx {what}: {_failure(exc.last_attempt)} after {self.attempts} attempts") from None

    def _request(self, function: str, *args: Any, **kwargs: Any) -> Any:
        self._throttle.wait()
        return getattr(self.stock, function)(*args, **kwargs)

    def _log_retry(self, what: str, state: RetryCallState) -> None:
        pause = state.next_action.sleep if state.next_action else 0.0
        logger.warning("pykrx %s failed (%s); retry %d/%d in %.1f s", what, _failure(state), state.attempt_number,
                       self.attempts - 1, pause)


def _failure(attempt: RetryCallState | Future) -> str:
    """What went wrong in one attempt: the exception, or pykrx's empty answer."""
    outcome = attempt.outcome if isinstance(attempt, RetryCallState) else attempt
    error = outcome.exception() if outcome is not None else None
    if error is not None:
        return f"{type(error).__name__}: {error}"
    return "empty answer (pykrx's answer to a failed request)"


def _is_empty(answer: Any) -> bool:
    if isinstance(answer, pd.DataFrame):
        return bool(answer.empty)
    return isinstance(answer, (list, tuple)) and not answer


def _describe(function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{function}({', '.join(parts)})"


def ohlcv_to_prices(frame: pd.DataFrame, trading_date: date, market: str,
                    market_caps: pd.Series | None = None) -> pd.DataFrame:
    """pykrx's market-wide OHLCV (index 티커, Korean columns) in our columns.

    A halted stock comes as open/high/low 0 with only the close: it is stored as a
    no-trade day at the close (volume 0, every price the close).
    """
    prices = frame.rename(columns=OHLCV_COLUMNS).copy()
    prices["ticker"] = frame.index.astype(str)
    if market_caps is not None:
        prices["market_cap"] = market_caps.reindex(frame.index).to_numpy()
    prices["date"] = trading_date
    prices["market"] = market
    halted = (prices[["open", "high", "low"]] == 0).all(axis=1) & (prices["close"] > 0) & (prices["volume"] == 0)
    for column in ("open", "high", "low"):
        prices.loc[halted, column] = prices.loc[halted, "close"]
    return prices[PRICE_COLUMNS].reset_index(drop=True)


def fundamentals_frame(frame: pd.DataFrame, trading_date: date) -> pd.DataFrame:
    result = frame.rename(columns=FUNDAMENTAL_MAP).copy()
    result["ticker"] = frame.index.astype(str)
    result["date"] = trading_date
    return result[FUNDAMENTAL_COLUMNS].reset_index(drop=True)
