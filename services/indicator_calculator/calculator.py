"""The ``indicator_calculation`` job: technical and financial indicators per session.

For trading date D it needs D's market data and its lookback (the ``data_collection``
of D collects them: the registry's ``needs``); it only reads them, computes every date
missing since the last calculated one (up to D) in one pass, and upserts each date in
its own transaction together with its ``calculated_sessions`` row. Recomputing is
idempotent.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.database import fetch_rows, upsert, upsert_columns
from services.common.job_api import JobContext, JobResult
from services.common.market_calendar import MarketCalendar
from services.data_collector.adjustments import back_adjusted
from services.data_collector.collector import INDICATOR_LOOKBACK_SESSIONS, completed_sessions
from services.data_collector.queries import (
    FUNDAMENTAL_COLUMNS,
    HISTORY_COLUMNS,
    actions_between,
    close_window,
    closes_with_fundamentals,
    fundamental_history,
    price_history,
    priced_between,
    range_window,
)
from services.indicator_calculator import incremental
from services.indicator_calculator.financial import FINANCIAL_COLUMNS, compute_financials, financial_values
from services.indicator_calculator.models import CalculatedSession, FinancialIndicator, TechnicalIndicator
from services.indicator_calculator.queries import calculated_from, is_calculated
from services.indicator_calculator.technical import (
    INDICATOR_COLUMNS,
    STATE_COLUMNS,
    compute_indicators_with_state,
)
from services.indicator_calculator.windows import WindowRead, session_rows

logger = logging.getLogger(__name__)

#: Sessions read before the first date computed: the longest warm-up (sma_120) plus a
#: margin in which EMAs and Wilder averages settle to their full-history values
#: (within ~1e-6 relative of a computation over all history). The data collection of a
#: date completes them, so it holds the number.
LOOKBACK_SESSIONS = INDICATOR_LOOKBACK_SESSIONS


@dataclass(frozen=True)
class CalculationResult:
    dates: list[date]
    technical_rows: int
    financial_rows: int
    lookback_start: date | None




def _frame(columns: dict[str, list[object]], numeric: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({name: np.asarray(values, dtype=float) if name in numeric else values
                          for name, values in columns.items()})
    frame["date"] = _as_datetime(frame["date"])
    return frame


def _as_datetime(dates: pd.Series) -> pd.Series:
    """Dates as datetime64 (SQLite gives ISO text, PostgreSQL date objects), converting
    each distinct value once."""
    codes, uniques = pd.factorize(dates)
    parsed = pd.to_datetime(pd.Index(uniques).astype(str), format="%Y-%m-%d")
    return pd.Series(parsed.to_numpy()[codes], index=dates.index)


def load_prices(connection: Connection, start: date, end: date,
                tickers: Sequence[str] | None = None) -> pd.DataFrame:
    """Prices from ``start`` to ``end`` (of ``tickers`` only, if given), adjusted for the
    corporate actions up to ``end`` (a split's earlier prices divided by its ratio)."""
    prices = _frame(price_history(connection, start, end, tickers), HISTORY_COLUMNS[2:])
    return back_adjusted(prices, actions_between(connection, start, end))


def load_fundamentals(connection: Connection, start: date, end: date) -> pd.DataFrame:
    return _frame(fundamental_history(connection, start, end), FUNDAMENTAL_COLUMNS[2:])


def calculate(
    dates: Sequence[date], *, session_factory: sessionmaker[DbSession], calendar: MarketCalendar,
    now: Callable[[], datetime],
) -> CalculationResult:
    """Compute and store indicators for ``dates`` (sessions with market data).

    One date whose previous session is stored is one step of each recursion
    (incremental.py); several dates, or a first run, are one batch over the lookback.
    """
    targets = sorted(set(dates))
    if not targets:
        return CalculationResult([], 0, 0, None)
    if len(targets) == 1:
        stepped = _calculate_step(targets[0], session_factory=session_factory, calendar=calendar, now=now)
        if stepped is not None:
            return stepped
    return _calculate_batch(targets, session_factory=session_factory, calendar=calendar, now=now)


def _calculate_batch(targets: list[date], *, session_factory: sessionmaker[DbSession],
                     calendar: MarketCalendar, now: Callable[[], datetime]) -> CalculationResult:
    """``targets`` in one batch, or one per stretch between corporate actions: each
    date's indicators read prices adjusted up to that date, not to a later one."""
    with session_factory() as session:
        cuts = sorted({day for day, _, _ in actions_between(session.connection(), targets[0], targets[-1])
                       if day > targets[0]})
    stretches = [[day for day in targets if low <= day < high]
                 for low, high in zip([date.min, *cuts], [*cuts, date.max])]
    results = [_calculate_stretch(stretch, session_factory=session_factory, calendar=calendar, now=now)
               for stretch in stretches if stretch]
    return CalculationResult(targets, sum(r.technical_rows for r in results), sum(r.financial_rows for r in results),
                             results[0].lookback_start)


def _calculate_stretch(targets: list[date], *, session_factory: sessionmaker[DbSession],
                       calendar: MarketCalendar, now: Callable[[], datetime]) -> CalculationResult:
    start = lookback_start(calendar, targets[0])
    with session_factory() as session:
        prices = load_prices(session.connection(), start, targets[-1])
        fundamentals = load_fundamentals(session.connection(), targets[0], targets[-1])
    technical = pd.concat([prices[["ticker", "date"]], compute_indicators_with_state(prices)], axis=1)
    wanted = prices["date"].isin(pd.to_datetime(targets))
    financial = compute_financials(prices[wanted], fundamentals)
    technical_rows = financial_rows = 0
    for day in targets:
        stamp = pd.Timestamp(day)
        counts = _store(session_factory, day,
                        _frame_lists(day, technical[technical["date"] == stamp], TECHNICAL_STORED),
                        _frame_lists(day, financial[financial["date"] == stamp], FINANCIAL_COLUMNS), start, now)
        technical_rows += counts[0]
        financial_rows += counts[1]
    return CalculationResult(targets, technical_rows, financial_rows, start)


#: Below this share of tickers able to take one step, a batch is as quick.
MIN_STEP_SHARE = 0.5


def _calculate_step(day: date, *, session_factory: sessionmaker[DbSession], calendar: MarketCalendar,
                    now: Callable[[], datetime]) -> CalculationResult | None:
    """``day`` from the previous session's stored values; tickers that cannot step (no
    stored state, a gap in their window, too young) get a batch of their own."""
    sessions = [s.date for s in itertools.islice(calendar.iter_back_from(day), incremental.WINDOW)][::-1]
    if len(sessions) < incremental.WINDOW or sessions[-1] != day:
        return None
    start = lookback_start(calendar, day)
    with session_factory() as session:
        connection = session.connection()
        technical = _stepped(connection, sessions, start)
        if technical is None:
            return None
        today = closes_with_fundamentals(connection, day)
    counts = _store(session_factory, day, _value_lists(day, technical), _financial_lists(day, today), start, now)
    return CalculationResult([day], counts[0], counts[1], start)


def _stepped(connection: Connection, sessions: list[date], start: date) -> dict[str, np.ndarray] | None:
    """The technical values of the last of ``sessions``: one step for each ticker that
    can take it, a batch over the lookback from ``start`` for the others. None when the
    session before has no stored values, or too few tickers can step."""
    day = sessions[-1]
    previous = fetch_rows(connection, _PREVIOUS_STATE, {"day": sessions[-2]})
    if not previous:
        return None
    closes = session_rows(connection, _CLOSES, sessions)
    adjusted = {ticker for _, ticker, _ in actions_between(connection, sessions[0], day)}
    ranges = session_rows(connection, _RANGES, sessions[-incremental.SHORT_WINDOW:])
    tickers = _tickers_on(closes, day)
    row_of = {ticker: index for index, ticker in enumerate(tickers)}
    column_of = {session: index for index, session in enumerate(sessions)}
    (close_matrix,) = _window_matrices(closes, 1, row_of, column_of, incremental.WINDOW)
    highs, lows, volumes = _window_matrices(ranges, 3, row_of, column_of, incremental.SHORT_WINDOW)
    state = _state_matrix(previous, row_of)
    known = [close_matrix[:, -incremental.SHORT_WINDOW:], highs, lows, volumes, state]
    # a ticker whose window holds a corporate action steps from prices in two units: it gets a batch
    can_step = ~np.any([np.isnan(matrix).any(axis=1) for matrix in known], axis=0) & ~np.isin(
        np.asarray(tickers, dtype=object), list(adjusted))
    can_step &= _whole_history_in(connection, close_matrix, tickers, sessions[-2], sessions[0], can_step)
    if not len(tickers) or can_step.mean() < MIN_STEP_SHARE:
        return None
    stepped = incremental.step(close_matrix[can_step], highs[can_step], lows[can_step], volumes[can_step],
                               {name: state[can_step, index] for index, name in enumerate(incremental.PREVIOUS)})
    technical = {"ticker": np.asarray(tickers, dtype=object)[can_step], **stepped}
    others = [ticker for ticker, ok in zip(tickers, can_step) if not ok]
    return _with_batch_of(technical, connection, others, start, day) if others else technical


def _whole_history_in(connection: Connection, closes: np.ndarray, tickers: list[str], previous: date,
                      first: date, asked: np.ndarray) -> np.ndarray:
    """Per ticker (row of the close window from ``first``; those of ``asked`` only):
    whether the window holds every price its stored state of ``previous`` was computed
    from, so that one step gives what a batch gives. It does for a ticker priced in
    every session of the window, and for one listed in it: priced from some session on,
    and never from the lookback start ``previous`` was calculated from up to the window
    (by induction, none of the steps since read an older price); its longer averages are
    NaN in both. A gap anywhere else (suspended without rows, relisted) is not."""
    missing = np.isnan(closes)
    leading = missing.argmin(axis=1)  # the NaNs before the first price (a ticker of the window has one)
    whole: np.ndarray = ~missing.any(axis=1)
    listed = asked & (leading > 0) & (missing.sum(axis=1) == leading)
    since = calculated_from(connection, previous) if listed.any() else None
    if since is not None:
        names = np.asarray(tickers, dtype=object)
        earlier = priced_between(connection, since, first, list(names[listed]))
        whole |= listed & ~np.isin(names, list(earlier))
    return whole


def _with_batch_of(technical: dict[str, np.ndarray], connection: Connection, tickers: list[str],
                   start: date, day: date) -> dict[str, np.ndarray]:
    """``technical`` plus ``day``'s values of ``tickers``, computed over their lookback."""
    prices = load_prices(connection, start, day, tickers=tickers)
    of_day = (prices["date"] == pd.Timestamp(day)).to_numpy()
    batch = compute_indicators_with_state(prices)
    values = dict(zip(batch.columns, batch.to_numpy()[of_day].T))
    values["ticker"] = prices["ticker"].to_numpy(dtype=object)[of_day]
    return {name: np.concatenate([column, values[name]]) for name, column in technical.items()}


_PREVIOUS_STATE = (f"SELECT ticker, {', '.join(incremental.PREVIOUS)} FROM technical_indicators "
                   "WHERE date = :day")



def _tickers_on(window: Sequence[Any], day: date) -> list[str]:
    """The sorted tickers of ``day``'s row of the window."""
    for row in window:
        if row[0] == day:
            return sorted(row[1].split(","))
    return []


def _parsed(read: WindowRead) -> WindowRead:
    """``read`` with each row's joined values parsed into integer arrays: a window row
    kept between steps (:mod:`windows`) is parsed once."""
    def parsed(connection: Connection, start: date, end: date) -> list[Any]:
        return [(day, tickers, *(np.fromstring(text, dtype=np.int64, sep=",") for text in texts))
                for day, tickers, *texts in read(connection, start, end)]
    return parsed


# built once: the windows are kept per read (windows.session_rows)
_CLOSES, _RANGES = _parsed(close_window), _parsed(range_window)


def _window_matrices(window: Sequence[Any], count: int, row_of: dict[str, int], column_of: dict[date, int],
                     width: int) -> list[np.ndarray]:
    """A window read (date, tickers, values1..values``count``: :func:`_parsed`) as ``count``
    ticker x session matrices of the last ``width`` sessions of ``column_of``; NaN where
    a ticker has no row."""
    first = len(column_of) - width
    places: list[tuple[np.ndarray, int]] = []
    series: list[list[np.ndarray]] = [[] for _ in range(count)]  # each matrix's sessions
    rows_of_text: dict[str, np.ndarray] = {}  # most sessions list the same tickers
    for day, tickers, *values in window:
        column = column_of.get(day)
        if column is None or column < first:
            continue
        rows = rows_of_text.get(tickers)
        if rows is None:
            rows = rows_of_text[tickers] = np.array([row_of.get(ticker, -1) for ticker in tickers.split(",")])
        places.append((rows, column - first))
        for sessions, value in zip(series, values):
            sessions.append(value)
    return [_matrix(len(row_of), width, places, sessions) for sessions in series]


def _matrix(height: int, width: int, places: list[tuple[np.ndarray, int]], sessions: list[np.ndarray]) -> np.ndarray:
    """A height x width matrix of sessions' values, each session's placed at (its rows,
    its column); rows -1 are left out."""
    matrix = np.full((height, width), np.nan)
    if not places:
        return matrix
    rows = np.concatenate([placed for placed, _ in places])
    columns = np.repeat([column for _, column in places], [len(placed) for placed, _ in places])
    numbers = np.concatenate(sessions)
    if len(numbers) != len(rows):
        raise ValueError(f"{len(numbers)} values for {len(rows)} tickers in an indicator window")
    kept = rows >= 0
    matrix[rows[kept], columns[kept]] = numbers[kept]
    return matrix


def _state_matrix(previous: Sequence[Any], row_of: dict[str, int]) -> np.ndarray:
    """The stored :data:`incremental.PREVIOUS` values, one row per ticker of ``row_of``
    (NaN where a ticker has none)."""
    state = np.full((len(row_of), len(incremental.PREVIOUS)), np.nan)
    if previous:
        rows = np.array([row_of.get(row[0], -1) for row in previous])
        values = np.array([row[1:] for row in previous], dtype=float)  # None -> NaN
        kept = rows >= 0
        state[rows[kept]] = values[kept]
    return state


def _store(session_factory: sessionmaker[DbSession], day: date, technical: dict[str, list[Any]],
           financial: dict[str, list[Any]], start: date, now: Callable[[], datetime]) -> tuple[int, int]:
    """One date's rows (column lists, see :func:`_value_lists`) and its completion mark,
    in one transaction."""
    with session_factory.begin() as session:
        connection = session.connection()
        technical_rows = upsert_columns(connection, TechnicalIndicator.__table__, technical, ["date", "ticker"])
        financial_rows = upsert_columns(connection, FinancialIndicator.__table__, financial, ["date", "ticker"])
        upsert(connection, CalculatedSession.__table__, [{
            "date": day, "tickers": len(technical["ticker"]), "lookback_start": start, "calculated_at": now(),
        }], ["date"], keep=["calculated_at"])
    return technical_rows, financial_rows


#: The stored columns of each table, after (date, ticker).
TECHNICAL_STORED = INDICATOR_COLUMNS + STATE_COLUMNS
_INTEGER_COLUMNS = {"market_cap", "market_cap_rank"}


def _value_lists(day: date, values: dict[str, Any], names: list[str] = TECHNICAL_STORED) -> dict[str, list[Any]]:
    """One date's rows as the driver stores them: (date, ticker, ``names``) column lists,
    NaN as None (NULL), Python numbers (earnings_positive a bool)."""
    tickers = list(values["ticker"])
    columns: dict[str, list[Any]] = {"date": [day] * len(tickers), "ticker": tickers}
    for name in names:
        numbers = np.asarray(values[name], dtype=float).tolist()
        if name == "earnings_positive":
            columns[name] = [None if number != number else number == 1.0 for number in numbers]
        elif name in _INTEGER_COLUMNS:
            columns[name] = [None if number != number else int(number) for number in numbers]
        else:
            columns[name] = [None if number != number else number for number in numbers]
    return columns


def _frame_lists(day: date, frame: pd.DataFrame, names: list[str]) -> dict[str, list[Any]]:
    """:func:`_value_lists` of ``day``'s rows of a technical or financial frame."""
    return _value_lists(day, {name: frame[name].to_numpy() for name in ["ticker", *names]}, names)


def _financial_lists(day: date, today: Sequence[Any]) -> dict[str, list[Any]]:
    """:func:`_value_lists` of the financial indicators of ``day`` from its (ticker,
    close, market_cap, eps, bps, dps) rows; NULL fundamentals: no fundamentals row."""
    numbers = np.array([row[1:] for row in today], dtype=float).reshape(len(today), 5)
    values = financial_values(*numbers.T)
    return _value_lists(day, {"ticker": [row[0] for row in today], **values}, FINANCIAL_COLUMNS)


def lookback_start(calendar: MarketCalendar, first: date) -> date:
    """The first session of the :data:`LOOKBACK_SESSIONS` sessions ending at ``first``."""
    day = first
    for index, session in enumerate(calendar.iter_back_from(first)):
        day = session.date
        if index == LOOKBACK_SESSIONS - 1:
            break
    return day


def last_calculated_before(session_factory: sessionmaker[DbSession], day: date) -> date | None:
    with session_factory() as session:
        return session.scalar(select(func.max(CalculatedSession.date)).where(CalculatedSession.date < day))


def indicators_stored(ctx: JobContext) -> bool:
    """The job's probe: the indicators of ``ctx.trading_date`` are stored."""
    with ctx.session_factory() as session:
        return is_calculated(session.connection(), ctx.trading_date)


def dates_to_calculate(ctx: JobContext) -> list[date]:
    """D, and every session since the last calculated one (at most the bootstrap window)."""
    previous = last_calculated_before(ctx.session_factory, ctx.trading_date)
    if previous is None:
        return [ctx.trading_date]
    window = [s.date for s in ctx.calendar.sessions(previous, ctx.trading_date) if s.date > previous]
    return window[-ctx.settings.bootstrap_sessions:]


def missing_market_data(calendar: MarketCalendar, session_factory: sessionmaker[DbSession], first: date,
                        last: date) -> list[date]:
    """The sessions from ``first``'s lookback up to ``last`` whose market data is not
    collected."""
    needed = [s.date for s in calendar.sessions(lookback_start(calendar, first), last)]
    have = completed_sessions(session_factory, needed[0], needed[-1]) if needed else set()
    return [day for day in needed if day not in have]


def run(ctx: JobContext) -> JobResult:
    """``indicator_calculation`` for ``ctx.trading_date`` (and the dates missing before
    it): never computed over a session whose market data is missing."""
    targets = dates_to_calculate(ctx)
    missing = missing_market_data(ctx.calendar, ctx.session_factory, targets[0], ctx.trading_date)
    if missing:
        which = f"{missing[0]}" if len(missing) == 1 else f"{len(missing)} sessions ({missing[0]} .. {missing[-1]})"
        return JobResult.skipped(f"input missing: no market data for {which}")
    result = calculate(targets, session_factory=ctx.session_factory, calendar=ctx.calendar, now=ctx.clock.now)
    return JobResult.success(
        dates=len(result.dates), first_date=result.dates[0].isoformat(),
        technical_rows=result.technical_rows, financial_rows=result.financial_rows,
        lookback_start=result.lookback_start.isoformat() if result.lookback_start else None,
    )
