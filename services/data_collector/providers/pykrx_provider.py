"""The real provider: KRX's data site through pykrx, one market-wide request per call.

pykrx is imported lazily (importing it opens a network session) and only when the
credentials it needs are present: the KRX data site is members-only, and pykrx logs
in with ``KRX_ID`` and ``KRX_PW`` from the environment. Korean columns are mapped to
ours here, at the edge. Requests are throttled and retried with backoff; pykrx answers
a failed request with an empty frame, which counts as a transient failure.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import date
from typing import Any, Callable

import pandas as pd

from services.common.clock import Clock
from services.common.market_calendar import MarketCalendar
from services.data_collector.providers import (
    FUNDAMENTAL_COLUMNS,
    MARKETS,
    PRICE_COLUMNS,
    STOCK_COLUMNS,
    MarketSnapshot,
    ProviderUnavailable,
    SessionNotAvailable,
    TransientProviderError,
)

logger = logging.getLogger(__name__)

CREDENTIAL_VARIABLES = ("KRX_ID", "KRX_PW")
OHLCV_COLUMNS = {"시가": "open", "고가": "high", "저가": "low", "종가": "close", "거래량": "volume",
                 "거래대금": "value", "등락률": "change_pct", "시가총액": "market_cap"}
FUNDAMENTAL_MAP = {"BPS": "bps", "PER": "per", "PBR": "pbr", "EPS": "eps", "DIV": "div", "DPS": "dps"}


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


class PykrxProvider:
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
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.calendar = calendar
        self.clock = clock
        self.stock = stock_api if stock_api is not None else import_pykrx_stock()
        self.min_interval = min_interval
        self.attempts = attempts
        self.backoff = backoff
        self._sleep = sleep
        self._monotonic = monotonic
        self._last_request: float | None = None
        self._names: dict[str, str] = {}

    def fetch_session(self, trading_date: date) -> MarketSnapshot:
        session = self.calendar.session(trading_date)
        if session is None:
            raise SessionNotAvailable(f"{trading_date} is not a KRX session")
        if self.clock.now() < session.close:
            raise SessionNotAvailable(f"{trading_date}'s close ({session.close:%H:%M}) has not happened yet")
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
                              pd.concat(prices, ignore_index=True), pd.concat(fundamentals, ignore_index=True))

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

    def _throttle(self) -> None:
        if self._last_request is not None:
            wait = self.min_interval - (self._monotonic() - self._last_request)
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._monotonic()

    def _call(self, function: str, *args: Any, **kwargs: Any) -> Any:
        """One throttled request, retried with exponential backoff."""
        last_error = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            self._throttle()
            try:
                answer = getattr(self.stock, function)(*args, **kwargs)
            except Exception as exc:  # the adapter's edge: any pykrx/requests failure is retried
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if not _is_empty(answer):
                    return answer
                last_error = "empty answer (pykrx's answer to a failed request)"
            if attempt < self.attempts:
                delay = self.backoff ** (attempt - 1)
                logger.warning("pykrx %s failed (%s); retry %d/%d in %.1f s", _describe(function, args, kwargs),
                               last_error, attempt, self.attempts - 1, delay)
                self._sleep(delay)
        raise TransientProviderError(
            f"pykrx {_describe(function, args, kwargs)}: {last_error} after {self.attempts} attempts")


def _is_empty(answer: Any) -> bool:
    if isinstance(answer, pd.DataFrame):
        return answer.empty
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
