"""The simulated market: the offline default provider.

A deterministic market on the real KRX calendar. Every random draw is keyed by
``(seed, purpose, index)``, and the price path is built for every session at once,
so the same seed and date give identical data in any order of requests.

- Universe: ``universe_size`` tickers (default 300, up to the full ~2,800) split
  between KOSPI (45%) and KOSDAQ, 6-character codes, about 3% alphanumeric.
- Prices: a random walk per ticker (market factor + own noise), on the KRX tick grid,
  always inside the +-30% band of the previous close; occasional trading halts
  (volume 0, all prices equal to the previous close).
- Listings and delistings over time; fundamentals (EPS, BPS, DPS) that move each quarter.
"""

from __future__ import annotations

import string
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

from services.common.clock import Clock
from services.common.krx_market import price_limits_array, round_to_ticks
from services.common.market_calendar import KRX_TZ, MarketCalendar
from services.data_collector.providers import (
    FUNDAMENTAL_COLUMNS,
    PRICE_COLUMNS,
    STOCK_COLUMNS,
    MarketSnapshot,
    SessionNotAvailable,
    require_closed_session,
)

MAX_UNIVERSE = 5_000
#: The walk is indexed by weekdays counted from EPOCH, and listings are drawn up to
#: HORIZON: neither depends on the calendar, so a calendar update (a new closure, a
#: longer range) changes no close of any other day.
EPOCH = date(2015, 1, 1)
HORIZON = date(2035, 12, 31)
HALT_PROBABILITY = 0.002
ALPHANUMERIC_SHARE = 0.03
KOSPI_SHARE = 0.45
MAX_DAILY_MOVE = 0.25  # the walk's own limit, inside the exchange's 30% band

# purposes of the random streams (never reuse one for another purpose)
_UNIVERSE, _DAY, _QUARTER, _INTRADAY = 0, 1, 2, 3


@dataclass(frozen=True)
class Universe:
    tickers: np.ndarray  # str
    names: np.ndarray
    markets: np.ndarray
    listed_from: np.ndarray  # session index of the first session listed
    listed_until: np.ndarray  # session index of the last session listed (inclusive)
    base_price: np.ndarray
    sigma: np.ndarray
    beta: np.ndarray
    liquidity: np.ndarray  # typical shares traded a day
    shares: np.ndarray
    eps0: np.ndarray
    bps0: np.ndarray
    eps_growth: np.ndarray
    payout: np.ndarray


def _ticker_codes(rng: np.random.Generator, count: int) -> list[str]:
    numbers = rng.choice(np.arange(1, 999_990), size=count, replace=False)
    letters = string.ascii_uppercase
    codes, seen = [], set()
    for number in numbers:
        code = f"{number:06d}"
        if rng.random() < ALPHANUMERIC_SHARE:
            code = code[:4] + letters[int(rng.integers(len(letters)))] + code[5]
        while code in seen:  # an alphanumeric code can collide; move it along
            code = code[:5] + str((int(code[5]) + 1) % 10)
        seen.add(code)
        codes.append(code)
    return codes


def build_universe(seed: int, size: int, steps: int) -> Universe:
    """The tickers and their fixed traits, from ``seed`` alone."""
    if not 1 <= size <= MAX_UNIVERSE:
        raise ValueError(f"universe size {size}; expected 1 to {MAX_UNIVERSE}")
    rng = np.random.default_rng([seed, _UNIVERSE])
    tickers = np.array(_ticker_codes(rng, size))
    markets = np.where(rng.random(size) < KOSPI_SHARE, "KOSPI", "KOSDAQ")
    names = np.array([f"모의{'코스피' if m == 'KOSPI' else '코스닥'}{i:04d}" for i, m in enumerate(markets)])
    late_listing = rng.random(size) < 0.12
    listed_from = np.where(late_listing, rng.integers(1, max(2, steps - 20), size), 0)
    delisted = rng.random(size) < 0.05
    life = rng.integers(120, max(121, steps), size)
    listed_until = np.where(delisted, np.minimum(listed_from + life, steps - 1), steps - 1)
    base_price = np.exp(rng.normal(np.log(15_000), 1.1, size)).clip(500, 900_000)
    eps0 = base_price / rng.uniform(6, 30, size) * np.where(rng.random(size) < 0.15, -0.4, 1.0)
    return Universe(
        tickers=tickers,
        names=names,
        markets=markets,
        listed_from=listed_from,
        listed_until=listed_until,
        base_price=base_price,
        sigma=rng.uniform(0.008, 0.035, size),
        beta=rng.uniform(0.5, 1.5, size),
        liquidity=np.exp(rng.normal(np.log(150_000), 1.2, size)),
        shares=rng.integers(5_000_000, 600_000_000, size),
        eps0=eps0,
        bps0=base_price / rng.uniform(0.4, 3.0, size),
        eps_growth=rng.normal(0.01, 0.02, size),
        payout=rng.uniform(0.0, 0.45, size),
    )


def weekday_index(day: date) -> int:
    """Weekdays from :data:`EPOCH` to ``day`` (the walk's step number)."""
    return int(np.busday_count(EPOCH, day))


class SimulatedMarket:
    """The deterministic market itself (no clock): ``snapshot(index)`` for any session.

    Every draw belongs to a weekday (counted from :data:`EPOCH`); a session moves by the
    draws of the weekdays since the previous session, so a calendar change (a new
    closure) only regroups draws and leaves the other closes as they were (unless the
    regrouped move hits the daily limit, or a halt falls on one of the two days).
    """

    def __init__(self, sessions: list[date], seed: int = 42, universe_size: int = 300) -> None:
        self.sessions = sessions
        self.index_of = {day: i for i, day in enumerate(sessions)}
        self.weekdays = np.busday_count(EPOCH, np.array(sessions, dtype="datetime64[D]")).astype(np.int64)
        self.seed = seed
        self.universe = build_universe(seed, universe_size, weekday_index(HORIZON) + 1)
        self.calendar: MarketCalendar | None = None
        self._listings: OrderedDict[bytes, _Listing] = OrderedDict()
        self._quarter: tuple[int, _QuarterFigures] | None = None

    def _day_draws(self, index: int, *, walk_only: bool = False) -> dict[str, np.ndarray]:
        """The weekday's draws; ``walk_only``: just the first three, all the walk uses
        (the stream is drawn in this order, so they are the same either way)."""
        size = len(self.universe.tickers)
        rng = np.random.default_rng([self.seed, _DAY, index])
        draws = {
            "market": rng.normal(0.0003, 0.009, 1),
            "own": rng.normal(0.0, 1.0, size),
            "halt": rng.random(size),
        }
        if walk_only:
            return draws
        return draws | {
            "gap": rng.normal(0.0, 0.3, size),
            "up": np.abs(rng.normal(0.0, 0.5, size)),
            "down": np.abs(rng.normal(0.0, 0.5, size)),
            "volume": rng.lognormal(0.0, 0.5, size),
        }

    def _weekday_moves(self, weekday: int) -> tuple[np.ndarray, np.ndarray]:
        """The weekday's log-move of every ticker, and which tickers are halted then."""
        u, draws = self.universe, self._day_draws(weekday, walk_only=True)
        moves = (u.beta * draws["market"] + u.sigma * draws["own"]).clip(-MAX_DAILY_MOVE, MAX_DAILY_MOVE)
        return np.log1p(moves), draws["halt"] < HALT_PROBABILITY

    @cached_property
    def fair_path(self) -> np.ndarray:
        """Unrounded closes, sessions x tickers (the walk every snapshot reads)."""
        steps, size = int(self.weekdays[-1]) + 1, len(self.universe.tickers)
        walk = np.empty((steps, size))
        halted = np.empty((steps, size), dtype=bool)
        for weekday in range(steps):
            walk[weekday], halted[weekday] = self._weekday_moves(weekday)
        np.cumsum(walk, axis=0, out=walk)
        path = walk[self.weekdays]  # the walk at each session
        del walk
        path[1:] -= path[:-1].copy()  # each session's move since the previous session
        path[0] = 0.0
        limit = np.log1p(MAX_DAILY_MOVE)
        np.clip(path, -limit, limit, out=path)
        path[halted[self.weekdays]] = 0.0  # a halted stock does not move
        del halted
        np.cumsum(path, axis=0, out=path)
        np.exp(path, out=path)
        path *= self.universe.base_price
        return path

    def listed(self, index: int) -> np.ndarray:
        u = self.universe
        return (u.listed_from <= index) & (index <= u.listed_until)

    def _listing(self, weekday: int) -> _Listing:
        """The tickers listed on ``weekday`` (the set changes a few times a year, so the
        last few are kept)."""
        listed = self.listed(weekday)
        key = listed.tobytes()
        listing = self._listings.get(key)
        if listing is None:
            listing = self._listings[key] = _Listing.of(listed, self.universe)
            while len(self._listings) > _LISTINGS_KEPT:
                self._listings.popitem(last=False)
        return listing

    def snapshot(self, index: int) -> MarketSnapshot:
        day, weekday = self.sessions[index], int(self.weekdays[index])
        u, draws = self.universe, self._day_draws(weekday)
        listing = self._listing(weekday)
        path = self.fair_path
        previous = round_to_ticks(path[index - 1] if index > 0 else u.base_price)
        lower, upper = price_limits_array(previous)
        halted = draws["halt"] < HALT_PROBABILITY
        close = np.clip(round_to_ticks(path[index]), lower, upper)
        open_ = np.clip(round_to_ticks(previous * (1 + u.sigma * draws["gap"])), lower, upper)
        top, bottom = np.maximum(open_, close), np.minimum(open_, close)
        high = np.clip(round_to_ticks(top * (1 + u.sigma * draws["up"]), "down"), top, upper)
        low = np.clip(round_to_ticks(bottom * (1 - u.sigma * draws["down"]), "up"), lower, bottom)
        open_, high, low, close = (np.where(halted, previous, series) for series in (open_, high, low, close))
        moved = np.abs(close / previous - 1)
        volume = np.where(halted, 0, (u.liquidity * draws["volume"] * (1 + 8 * moved)).astype(np.int64))
        value = (volume * (open_ + high + low + close) / 4).astype(np.int64)
        prices = listing.frame(PRICE_COLUMNS, {
            "date": day, "open": open_, "high": high, "low": low,
            "close": close, "volume": volume, "value": value,
            "change_pct": np.round((close / previous - 1) * 100, 2),
            "market_cap": close * u.shares,
        })
        fundamentals = listing.frame(FUNDAMENTAL_COLUMNS, self._fundamentals(day, close))
        return MarketSnapshot(day, listing.stocks.copy(), prices, fundamentals)

    def _fundamentals(self, day: date, close: np.ndarray) -> dict[str, object]:
        """Every ticker's fundamentals of ``day`` (columns of :data:`FUNDAMENTAL_COLUMNS`)."""
        quarter = (day.year - 2015) * 4 + (day.month - 1) // 3
        eps, bps, dps = self._quarter_figures(quarter)
        safe_eps = np.where(eps > 0, eps, 1)
        return {
            "date": day, "bps": bps,
            "per": np.where(eps > 0, np.round(close / safe_eps, 2), 0.0),
            "pbr": np.round(close / bps, 2), "eps": eps,
            "div": np.round(dps / close * 100, 2), "dps": dps,
        }

    def _quarter_figures(self, quarter: int) -> _QuarterFigures:
        """Every ticker's EPS, BPS and DPS in ``quarter`` (counted from 2015; the last
        quarter's are kept: a quarter's sessions come one after another)."""
        if self._quarter is not None and self._quarter[0] == quarter:
            return self._quarter[1]
        u = self.universe
        noise = np.random.default_rng([self.seed, _QUARTER, quarter]).normal(0, 0.05, len(u.tickers))
        eps = np.round(u.eps0 * (1 + u.eps_growth) ** quarter * (1 + noise)).astype(np.int64)
        bps = np.round(u.bps0 * 1.01 ** quarter).astype(np.int64).clip(1, None)
        dps = np.where(eps > 0, np.round(eps * u.payout / 10) * 10, 0).astype(np.int64)
        self._quarter = quarter, (eps, bps, dps)
        return eps, bps, dps


#: EPS, BPS and DPS of every ticker in one quarter
_QuarterFigures = tuple[np.ndarray, np.ndarray, np.ndarray]
_LISTINGS_KEPT = 4


@dataclass(frozen=True)
class _Listing:
    """The listed tickers of a session: which rows of the universe, and their stock
    frame, whose columns (as a frame holds them) are copied into each frame built."""

    listed: np.ndarray  # bool over the universe
    stocks: pd.DataFrame  # STOCK_COLUMNS: the same every session of the listing
    text: dict[str, ExtensionArray]  # the stock frame's columns

    @classmethod
    def of(cls, listed: np.ndarray, u: Universe) -> _Listing:
        universe_columns = {"ticker": u.tickers, "name": u.names, "market": u.markets}
        stocks = pd.DataFrame({column: universe_columns[column][listed] for column in STOCK_COLUMNS},
                              index=pd.RangeIndex(int(listed.sum())))
        return cls(listed, stocks, {column: stocks[column].array for column in STOCK_COLUMNS})

    def frame(self, columns: list[str], values: dict[str, object]) -> pd.DataFrame:
        """A frame of the listed tickers' rows, in the order of ``columns``: the text
        columns, and ``values`` (arrays over the universe, or one object for every row:
        the date)."""
        rows = int(self.listed.sum())
        data = {column: self._column(column, values, rows) for column in columns}
        return pd.DataFrame(data, index=pd.RangeIndex(rows), copy=False)  # every column is new

    def _column(self, column: str, values: dict[str, object], rows: int) -> object:
        """A new array of ``column`` for :meth:`frame`."""
        if column in self.text:
            return self.text[column].copy()
        value = values[column]
        if isinstance(value, np.ndarray):
            return value[self.listed]
        return np.full(rows, value, dtype=object)


def intraday_path(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                  fraction: float, high_first: np.ndarray) -> np.ndarray:
    """The price at ``fraction`` (0 = open, 1 = close) of a session whose day bar is
    given: straight lines from the open to one extreme (at 1/3), the other extreme (at
    2/3) and the close, on the tick grid and inside the bar."""
    fraction = min(max(fraction, 0.0), 1.0)
    first = np.where(high_first, high, low).astype(np.float64)
    second = np.where(high_first, low, high).astype(np.float64)
    points = [open_.astype(np.float64), first, second, close.astype(np.float64)]
    leg = min(int(fraction * 3), 2)
    weight = fraction * 3 - leg
    price = points[leg] + (points[leg + 1] - points[leg]) * weight
    prices: np.ndarray = np.clip(round_to_ticks(price), low, high).astype(np.int64)
    return prices


class SimulatedProvider:
    """The simulated market behind the provider protocol, refusing what a real
    exchange could not answer yet."""

    def __init__(self, *, calendar: MarketCalendar, clock: Clock, seed: int = 42,
                 universe_size: int = 300) -> None:
        self.calendar = calendar
        self.clock = clock
        self.name = f"simulated(seed={seed},universe={universe_size})"
        self.market = _market(calendar, seed, universe_size)

    def fetch_session(self, trading_date: date) -> MarketSnapshot:
        require_closed_session(self.calendar, self.clock, trading_date)
        return self.market.snapshot(self.market.index_of[trading_date])

    def quotes_at(self, moment: datetime) -> dict[str, int]:
        """Every traded ticker's price at ``moment`` of its session (deterministic path
        through the day bar); refuses moments outside a session or in the future."""
        day = moment.astimezone(KRX_TZ).date()
        session = self.calendar.session(day)
        if session is None or moment < session.open:
            raise SessionNotAvailable(f"{moment.isoformat()} is not during a KRX session")
        if moment > self.clock.now():
            raise SessionNotAvailable(f"{moment.isoformat()} has not happened yet")
        bars = _day_bars(self.market, day)
        fraction = (min(moment, session.close) - session.open) / (session.close - session.open)
        prices = intraday_path(bars.open, bars.high, bars.low, bars.close, fraction, bars.high_first)
        return dict(zip(bars.tickers, prices.tolist()))


@dataclass(frozen=True)
class _DayBars:
    """The traded tickers' day bars of a session, as arrays (a frame's columns are slow
    to take out at every tick), and whether each reaches its high before its low."""

    tickers: list[str]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    high_first: np.ndarray


#: Day bars of recent sessions (small), so the ticks of a day do not rebuild the walk.
_DAY_BARS: OrderedDict[tuple[int, int, int, date, date], _DayBars] = OrderedDict()
_DAY_BARS_KEPT = 4


def _day_bars(market: SimulatedMarket, day: date) -> _DayBars:
    calendar = market.calendar
    key = (market.seed, len(market.universe.tickers), id(calendar), getattr(calendar, "last_date", day), day)
    bars = _DAY_BARS.get(key)
    if bars is None:
        prices = market.snapshot(market.index_of[day]).prices
        traded = prices[prices["volume"] > 0].reset_index(drop=True)
        weekday = weekday_index(day)
        first = np.random.default_rng([market.seed, _INTRADAY, weekday]).random(len(market.universe.tickers)) < 0.5
        order = pd.Series(first, index=market.universe.tickers)
        bars = _DayBars(traded["ticker"].tolist(), open=traded["open"].to_numpy(), high=traded["high"].to_numpy(),
                        low=traded["low"].to_numpy(), close=traded["close"].to_numpy(),
                        high_first=order.reindex(traded["ticker"]).to_numpy())
        _DAY_BARS[key] = bars
        while len(_DAY_BARS) > _DAY_BARS_KEPT:
            _DAY_BARS.popitem(last=False)
    return bars


_MARKETS: weakref.WeakValueDictionary[tuple[int, date, int, int], SimulatedMarket] = (
    weakref.WeakValueDictionary())


def _market(calendar: MarketCalendar, seed: int, size: int) -> SimulatedMarket:
    """Providers alive at the same time share one market (its path is built once); the
    market is freed with the last of them, so an idle scheduler does not hold it."""
    key = (id(calendar), calendar.last_date, seed, size)
    market = _MARKETS.get(key)
    if market is None or market.calendar is not calendar:
        sessions = [s.date for s in calendar.sessions(calendar.first_date, calendar.last_date)]
        market = SimulatedMarket(sessions, seed, size)
        market.calendar = calendar
        _MARKETS[key] = market
    return market
