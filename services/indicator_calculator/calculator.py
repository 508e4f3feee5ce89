"""The ``indicator_calculation`` job: technical and financial indicators per session.

For trading date D it needs D's market data (a successful ``data_collection``); it
reads only the lookback the indicators need, computes every date missing since the
last calculated one (up to D) in one pass, and upserts each date in its own
transaction together with its ``calculated_sessions`` row. Recomputing is idempotent.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.database import fetch_columns, fetch_rows, frame_columns, upsert, upsert_columns
from services.common.job_api import JobContext, JobResult
from services.common.market_calendar import MarketCalendar
from services.data_collector.models import CollectedSession
from services.indicator_calculator.financial import FINANCIAL_COLUMNS, compute_financials
from services.indicator_calculator.models import CalculatedSession, FinancialIndicator, TechnicalIndicator
from services.indicator_calculator import incremental
from services.indicator_calculator.technical import (
    INDICATOR_COLUMNS,
    LONGEST_WARMUP,
    STATE_COLUMNS,
    compute_indicators_with_state,
)

logger = logging.getLogger(__name__)

#: Sessions read before the first date computed: the longest warm-up (sma_120) plus a
#: margin in which EMAs and Wilder averages settle to their full-history values
#: (within ~1e-6 relative of a computation over all history).
LOOKBACK_SESSIONS = LONGEST_WARMUP + 1 + 120


class InputMissing(LookupError):
    """The market data a date needs is not there and could not be collected."""


@dataclass(frozen=True)
class CalculationResult:
    dates: list[date]
    technical_rows: int
    financial_rows: int
    lookback_start: date | None


PRICE_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume", "market_cap"]


def _frame(columns: dict[str, list[object]], numeric: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({name: np.asarray(values, dtype=float) if name in numeric else values
                          for name, values in columns.items()})
    frame["date"] = _as_datetime(frame["date"])
    return frame


def _as_datetime(dates: pd.Series) -> pd.Series:
    """Dates as datetime64 (SQLite gives ISO text, PostgreSQL date objects), converting
    each distinct value once."""
    codes, uniques = pd.factorize(dates)
    return pd.Series(pd.to_datetime(pd.Index(uniques).astype(str)).to_numpy()[codes], index=dates.index)


def load_prices(connection: Connection, start: date, end: date,
                tickers: Sequence[str] | None = None) -> pd.DataFrame:
    """Prices from ``start`` to ``end`` (of ``tickers`` only, if given)."""
    sql = ("SELECT ticker, date, open, high, low, close, volume, market_cap FROM daily_prices "
           "WHERE date >= :start AND date <= :end")
    params: dict[str, object] = {"start": start, "end": end}
    if tickers is not None:
        sql += " AND ticker IN :tickers"
        params["tickers"] = list(tickers)
    return _frame(fetch_columns(connection, sql, params, PRICE_COLUMNS), PRICE_COLUMNS[2:])


def load_fundamentals(connection: Connection, start: date, end: date) -> pd.DataFrame:
    names = ["ticker", "date", "bps", "eps", "dps"]
    columns = fetch_columns(connection, "SELECT ticker, date, bps, eps, dps FROM fundamentals "
                            "WHERE date >= :start AND date <= :end", {"start": start, "end": end}, names)
    return _frame(columns, names[2:])


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
        counts = _store(session_factory, day, technical[technical["date"] == stamp],
                        financial[financial["date"] == stamp], start, now)
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
    column_of = {session.isoformat(): index for index, session in enumerate(sessions)}
    column_of.update({session: index for index, session in enumerate(sessions)})  # PostgreSQL dates
    with session_factory() as session:
        connection = session.connection()
        previous = fetch_columns(connection, f"SELECT ticker, {', '.join(incremental.PREVIOUS)} "
                                 "FROM technical_indicators WHERE date = :day", {"day": sessions[-2]},
                                 ["ticker", *incremental.PREVIOUS])
        if not previous["ticker"]:
            return None
        tickers = sorted(ticker for (ticker,) in fetch_rows(
            connection, "SELECT ticker FROM daily_prices WHERE date = :day", {"day": day}))
        row_of = {ticker: index for index, ticker in enumerate(tickers)}
        close_matrix = _matrices(fetch_rows(
            connection, "SELECT ticker, date, close FROM daily_prices WHERE date >= :start AND date <= :end",
            {"start": sessions[0], "end": day}), row_of, column_of, len(sessions), 1, 0)[0]
        highs, lows, volumes = _matrices(fetch_rows(
            connection, "SELECT ticker, date, high, low, volume FROM daily_prices "
            "WHERE date >= :start AND date <= :end", {"start": sessions[-incremental.SHORT_WINDOW], "end": day}),
            row_of, column_of, incremental.SHORT_WINDOW, 3, len(sessions) - incremental.SHORT_WINDOW)
    state = {name: np.full(len(tickers), np.nan) for name in incremental.PREVIOUS}
    for position, ticker in enumerate(previous["ticker"]):
        row = row_of.get(ticker)
        if row is not None:
            for name in incremental.PREVIOUS:
                value = previous[name][position]
                state[name][row] = np.nan if value is None else value
    known = [close_matrix, highs, lows, volumes, np.column_stack(list(state.values()))]
    can_step = ~np.any([np.isnan(matrix).any(axis=1) for matrix in known], axis=0)
    if not len(tickers) or can_step.mean() < MIN_STEP_SHARE:
        return None
    stepped = incremental.step(close_matrix[can_step], highs[can_step], lows[can_step], volumes[can_step],
                               {name: values[can_step] for name, values in state.items()})
    stepped_frame = pd.DataFrame(stepped)
    stepped_frame.insert(0, "ticker", np.asarray(tickers, dtype=object)[can_step])
    others = [ticker for ticker, ok in zip(tickers, can_step) if not ok]
    start = lookback_start(calendar, day)
    frames = [stepped_frame]
    with session_factory() as session:
        if others:
            prices = load_prices(session.connection(), start, day, tickers=others)
            batch = pd.concat([prices[["ticker", "date"]], compute_indicators_with_state(prices)], axis=1)
            frames.append(batch[batch["date"] == pd.Timestamp(day)].drop(columns="date"))
        today = load_prices(session.connection(), day, day)
        fundamentals = load_fundamentals(session.connection(), day, day)
    technical = pd.concat(frames, ignore_index=True).assign(date=pd.Timestamp(day))
    financial = compute_financials(today, fundamentals)
    counts = _store(session_factory, day, technical, financial, start, now)
    return CalculationResult([day], counts[0], counts[1], start)


def _matrices(rows: list[tuple[object, ...]], row_of: dict[str, int], column_of: dict[object, int],
              width: int, count: int, offset: int) -> list[np.ndarray]:
    """From (ticker, date, value1..valueN) rows: N ticker x session matrices (NaN where
    a ticker has no row that session); session columns shifted left by ``offset``."""
    matrices = [np.full((len(row_of), width), np.nan) for _ in range(count)]
    for ticker, day, *values in rows:
        row, column = row_of.get(ticker), column_of.get(day)
        if row is None or column is None:
            continue
        for matrix, value in zip(matrices, values):
            if value is not None:
                matrix[row, column - offset] = value
    return matrices


def _store(session_factory: sessionmaker[DbSession], day: date, technical: pd.DataFrame,
           financial: pd.DataFrame, start: date, now: Callable[[], datetime]) -> tuple[int, int]:
    """One date's rows and its completion mark, in one transaction."""
    with session_factory.begin() as session:
        connection = session.connection()
        technical_rows = upsert_columns(
            connection, TechnicalIndicator.__table__,
            frame_columns(technical[["date", "ticker"] + INDICATOR_COLUMNS + STATE_COLUMNS]), ["date", "ticker"])
        financial_rows = upsert_columns(connection, FinancialIndicator.__table__,
                                        frame_columns(_financial_for_storage(financial)), ["date", "ticker"])
        upsert(connection, CalculatedSession.__table__, [{
            "date": day, "tickers": len(technical), "lookback_start": start, "calculated_at": now(),
        }], ["date"], keep=["calculated_at"])
    return technical_rows, financial_rows


def _financial_for_storage(frame: pd.DataFrame) -> pd.DataFrame:
    stored = frame[["date", "ticker"] + FINANCIAL_COLUMNS].copy()
    stored["earnings_positive"] = stored["earnings_positive"].map({1.0: True, 0.0: False}).astype(object)
    stored["earnings_positive"] = stored["earnings_positive"].where(stored["earnings_positive"].notna(), None)
    stored["market_cap"] = stored["market_cap"].astype("Int64").astype(object).where(stored["market_cap"].notna(), None)
    stored["market_cap_rank"] = stored["market_cap_rank"].astype("Int64").astype(object).where(
        stored["market_cap_rank"].notna(), None)
    return stored


def lookback_start(calendar: MarketCalendar, first: date) -> date:
    """The first session of the :data:`LOOKBACK_SESSIONS` sessions ending at ``first``."""
    day = first
    for index, session in enumerate(calendar.iter_back_from(first)):
        day = session.date
        if index == LOOKBACK_SESSIONS - 1:
            break
    return day


def collected(session_factory: sessionmaker[DbSession], start: date, end: date) -> set[date]:
    with session_factory() as session:
        return set(session.scalars(select(CollectedSession.date).where(CollectedSession.date.between(start, end))))


def last_calculated_before(session_factory: sessionmaker[DbSession], day: date) -> date | None:
    with session_factory() as session:
        return session.scalar(select(func.max(CalculatedSession.date)).where(CalculatedSession.date < day))


def is_calculated(session_factory: sessionmaker[DbSession], day: date) -> bool:
    with session_factory() as session:
        return session.get(CalculatedSession, day) is not None


def dates_to_calculate(ctx: JobContext) -> list[date]:
    """D, and every session since the last calculated one (at most the bootstrap window)."""
    previous = last_calculated_before(ctx.session_factory, ctx.trading_date)
    if previous is None:
        return [ctx.trading_date]
    window = [s.date for s in ctx.calendar.sessions(previous, ctx.trading_date) if s.date > previous]
    return window[-ctx.settings.bootstrap_sessions:]


def ensure_market_data(ctx: JobContext, first: date, last: date) -> None:
    """Collect, in date order, the market data missing from ``first``'s lookback up to
    ``last``; raise :class:`InputMissing` naming what is still missing."""
    from services.data_collector.collector import backfill
    from services.data_collector.providers import ProviderError
    from services.data_collector.providers.factory import make_provider

    needed = [s.date for s in ctx.calendar.sessions(lookback_start(ctx.calendar, first), last)]
    have = collected(ctx.session_factory, needed[0], needed[-1]) if needed else set()
    missing = [day for day in needed if day not in have]
    if missing:
        ctx.log.info("market data missing for %d sessions (%s .. %s): collecting them first",
                     len(missing), missing[0], missing[-1])
        try:
            provider = make_provider(ctx.settings, ctx.clock, ctx.calendar)
        except ProviderError as exc:
            raise InputMissing(f"input missing: no market data for {last} ({exc})") from None
        report = backfill(missing, session_factory=ctx.session_factory, provider=provider, now=ctx.clock.now)
        if report.failed:
            failed = sorted(report.failed)
            raise InputMissing(
                f"input missing: market data of {len(failed)} sessions could not be collected "
                f"({', '.join(day.isoformat() for day in failed[:3])}{' ...' if len(failed) > 3 else ''}: "
                f"{report.failed[failed[0]]})")


def run(ctx: JobContext) -> JobResult:
    """``indicator_calculation`` for ``ctx.trading_date`` (and the dates missing before
    it): never computed over a session whose market data is missing."""
    targets = dates_to_calculate(ctx)
    try:
        ensure_market_data(ctx, targets[0], ctx.trading_date)
    except InputMissing as exc:
        return JobResult.skipped(str(exc))
    result = calculate(targets, session_factory=ctx.session_factory, calendar=ctx.calendar, now=ctx.clock.now)
    return JobResult.success(
        dates=len(result.dates), first_date=result.dates[0].isoformat(),
        technical_rows=result.technical_rows, financial_rows=result.financial_rows,
        lookback_start=result.lookback_start.isoformat() if result.lookback_start else None,
    )
