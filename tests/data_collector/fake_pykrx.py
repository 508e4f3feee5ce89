"""A stand-in for the ``pykrx.stock`` module, answering from the recorded fixtures.

``tests/data/pykrx/`` holds one CSV per answer, named for the call it answers::

    ohlcv_<MARKET>_<YYYYMMDD>[_note].csv        get_market_ohlcv(date, market=...)
    fundamental_<MARKET>_<YYYYMMDD>[_note].csv  get_market_fundamental(date, market=...)
    tickers_<MARKET>_<YYYYMMDD>[_note].csv      get_market_ticker_list(date, market=...),
                                                get_market_ticker_name(ticker)
    index_<MARKET>_<YYYYMMDD>[_note].csv        get_index_ohlcv(date, date, code) of the market's
                                                index (KOSPI 1001, KOSDAQ 2001), indexed by 날짜

Each CSV is in the shape pykrx 1.2.9 returns (index column 티커, Korean columns);
see tests/data/README.md for where the rows come from. Like pykrx, the fake answers
a date it has nothing for with an empty DataFrame (pykrx's answer to any failed
request) and an unknown ticker's name with an empty DataFrame too.

Switches for the provider's retry and throttle paths:

- ``raise_first(function, times, error)``: the next ``times`` calls of ``function`` raise;
- ``empty_first(function, times)``: the next ``times`` calls answer an empty DataFrame
  (an empty list for ``get_market_ticker_list``, as pykrx gives on failure);
- ``without_market_cap=True``: OHLCV frames without 시가총액, the shape before pykrx 1.2,
  so market caps must come from ``get_market_cap``;
- ``timer`` and ``latency``: every request is stamped with ``timer.monotonic()`` and then
  takes ``latency`` seconds of the fake clock.

Every call is appended to ``calls``.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "data" / "pykrx"
KINDS = ("ohlcv", "fundamental", "tickers", "index")
INDEX_MARKETS = {"1001": "KOSPI", "2001": "KOSDAQ"}


class FakeTimer:
    """A monotonic clock that moves only when slept on (or by a fake request's latency)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    at: float | None = None  # the fake clock when the request started


def read_fixture(path: Path) -> pd.DataFrame:
    """A fixture CSV as pykrx returns it: tickers (index 티커) as strings."""
    return pd.read_csv(path, dtype={"티커": str}, encoding="utf-8").set_index("티커")


class FakePykrxStock:
    """Quacks like ``pykrx.stock`` for the market-wide calls the provider makes."""

    def __init__(self, fixture_dir: Path = FIXTURE_DIR, *, timer: FakeTimer | None = None,
                 latency: float = 0.0, without_market_cap: bool = False) -> None:
        self._frames: dict[tuple[str, str, str], pd.DataFrame] = {}
        for path in sorted(fixture_dir.glob("*.csv")):
            kind, market, day, *_note = path.stem.split("_")
            if kind not in KINDS:
                raise ValueError(f"{path.name}: unknown fixture kind {kind!r}; expected one of {KINDS}")
            self._frames[(kind, market, day)] = read_fixture(path) if kind != "index" else \
                pd.read_csv(path, encoding="utf-8").set_index("날짜")
        self._names = {ticker: name
                       for (kind, _, _), frame in self._frames.items() if kind == "tickers"
                       for ticker, name in frame["종목명"].items()}
        self.timer = timer
        self.latency = latency
        self.without_market_cap = without_market_cap
        self.calls: list[Call] = []
        self._misbehaviour: dict[str, deque[BaseException | None]] = defaultdict(deque)

    # --- switches ---------------------------------------------------------------------

    def raise_first(self, function: str, times: int, error: BaseException) -> None:
        """The next ``times`` calls of ``function`` raise ``error``."""
        self._misbehaviour[function].extend([error] * times)

    def empty_first(self, function: str, times: int) -> None:
        """The next ``times`` calls of ``function`` answer empty (pykrx's failure answer)."""
        self._misbehaviour[function].extend([None] * times)

    def calls_of(self, function: str) -> list[Call]:
        return [call for call in self.calls if call.function == function]

    # --- the pykrx.stock functions ---------------------------------------------------

    def get_market_ohlcv(self, date: str, market: str = "KOSPI") -> pd.DataFrame:
        def answer() -> pd.DataFrame:
            frame = self._frame("ohlcv", market, date)
            if self.without_market_cap and "시가총액" in frame.columns:
                frame = frame.drop(columns="시가총액")
            return frame
        return self._request("get_market_ohlcv", (date,), {"market": market}, answer, pd.DataFrame)

    def get_market_fundamental(self, date: str, market: str = "KOSPI") -> pd.DataFrame:
        return self._request("get_market_fundamental", (date,), {"market": market},
                             lambda: self._frame("fundamental", market, date), pd.DataFrame)

    def get_market_cap(self, date: str, market: str = "ALL") -> pd.DataFrame:
        """종가, 시가총액, 거래량, 거래대금, 상장주식수 by 티커, from the OHLCV and ticker fixtures."""
        def answer() -> pd.DataFrame:
            ohlcv, tickers = self._frame("ohlcv", market, date), self._frame("tickers", market, date)
            if ohlcv.empty:
                return ohlcv
            caps = ohlcv[["종가", "시가총액", "거래량", "거래대금"]].copy()
            caps["상장주식수"] = tickers["상장주식수"].reindex(caps.index)
            return caps
        return self._request("get_market_cap", (date,), {"market": market}, answer, pd.DataFrame)

    def get_index_ohlcv(self, fromdate: str, todate: str, ticker: str) -> pd.DataFrame:
        """One day's row of the index (``fromdate`` = ``todate``: the provider asks for one)."""
        return self._request("get_index_ohlcv", (fromdate, todate, ticker), {},
                             lambda: self._frame("index", INDEX_MARKETS.get(ticker, "?"), fromdate), pd.DataFrame)

    def get_market_ticker_list(self, date: str | None = None, market: str = "KOSPI") -> list[str]:
        return self._request("get_market_ticker_list", (date,), {"market": market},
                             lambda: self._frame("tickers", market, str(date)).index.to_list(), list)

    def get_market_ticker_name(self, ticker: str) -> Any:
        def answer() -> Any:
            return self._names.get(ticker, pd.DataFrame())  # pykrx: empty frame for an unknown code
        return self._request("get_market_ticker_name", (ticker,), {}, answer, pd.DataFrame)

    # --- plumbing ---------------------------------------------------------------------

    def _frame(self, kind: str, market: str, date: str) -> pd.DataFrame:
        frame = self._frames.get((kind, market, date))
        return pd.DataFrame() if frame is None else frame.copy()

    def _request(self, function: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 answer: Callable[[], Any], empty: Callable[[], Any]) -> Any:
        self.calls.append(Call(function, args, kwargs, self.timer.now if self.timer else None))
        if self.timer is not None:
            self.timer.now += self.latency
        queued = self._misbehaviour[function]
        if queued:
            error = queued.popleft()
            if error is not None:
                raise error
            return empty()
        return answer()
