"""The ``indicator_calculation`` job: technical and financial indicators per session.

For trading date D it needs D's market data (a successful ``data_collection``); it
reads only the lookback the indicators need, computes every date missing since the
last calculated one (up to D) in one pass, and upserts each date in its own
transaction together with its ``calculated_sessions`` row. Recomputing is idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.database import fetch_columns, frame_columns, upsert, upsert_columns
from services.common.job_api import JobContext, JobResult
from services.common.market_calendar import MarketCalendar
from services.data_collector.models import CollectedSession
from services.indicator_calculator.financial import FINANCIAL_COLUMNS, compute_financials
from services.indicator_calculator.models import CalculatedSession, FinancialIndicator, TechnicalIndicator
from services.indicator_calculator.technical import INDICATOR_COLUMNS, LONGEST_WARMUP, compute_indicators

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


def load_prices(connection: Connection, start: date, end: date) -> pd.DataFrame:
    columns = fetch_columns(
        connection, "SELECT ticker, date, open, high, low, close, volume, market_cap FROM daily_prices "
        "WHERE date >= :start AND date <= :end", {"start": start, "end": end}, PRICE_COLUMNS)
    return _frame(columns, PRICE_COLUMNS[2:])


def load_fundamentals(connection: Connection, start: date, end: date) -> pd.DataFrame:
    names = ["ticker", "date", "bps", "eps", "dps"]
    columns = fetch_columns(connection, "SELECT ticker, date, bps, eps, dps FROM fundamentals "
                            "WHERE date >= :start AND date <= :end", {"start": start, "end": end}, names)
    return _frame(columns, names[2:])


def calculate(
    dates: Sequence[date], *, session_factory: sessionmaker[DbSession], calendar: MarketCalendar,
    now: Callable[[], datetime],
) -> CalculationResult:
    """Compute and store indicators for ``dates`` (sessions with market data)."""
    targets = sorted(set(dates))
    if not targets:
        return CalculationResult([], 0, 0, None)
    start = lookback_start(calendar, targets[0])
    with session_factory() as session:
        prices = load_prices(session.connection(), start, targets[-1])
        fundamentals = load_fundamentals(session.connection(), targets[0], targets[-1])
    technical = pd.concat([prices[["ticker", "date"]], compute_indicators(prices)], axis=1)
    wanted = prices["date"].isin(pd.to_datetime(targets))
    financial = compute_financials(prices[wanted], fundamentals)
    technical_rows = financial_rows = 0
    for day in targets:
        stamp = pd.Timestamp(day)
        day_technical = technical[technical["date"] == stamp]
        day_financial = financial[financial["date"] == stamp]
        with session_factory.begin() as session:
            connection = session.connection()
            technical_rows += upsert_columns(connection, TechnicalIndicator.__table__,
                                             frame_columns(day_technical[["date", "ticker"] + INDICATOR_COLUMNS]),
                                             ["date", "ticker"])
            financial_rows += upsert_columns(connection, FinancialIndicator.__table__,
                                             frame_columns(_financial_for_storage(day_financial)),
                                             ["date", "ticker"])
            upsert(connection, CalculatedSession.__table__, [{
                "date": day, "tickers": len(day_technical), "lookback_start": start,
                "calculated_at": now(),
            }], ["date"])
    return CalculationResult(targets, technical_rows, financial_rows, start)


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
    """D, and every session since the last calculated one that has market data."""
    previous = last_calculated_before(ctx.session_factory, ctx.trading_date)
    if previous is None:
        return [ctx.trading_date]
    window = [s.date for s in ctx.calendar.sessions(previous, ctx.trading_date) if s.date > previous]
    window = window[-ctx.settings.bootstrap_sessions:]
    have = collected(ctx.session_factory, window[0], window[-1]) if window else set()
    return [day for day in window if day in have or day == ctx.trading_date]


def ensure_market_data(ctx: JobContext, day: date) -> None:
    """Make sure the market data of ``day`` and of its lookback is complete, collecting
    what is missing (in date order) first."""
    from services.data_collector.collector import backfill, missing_sessions
    from services.data_collector.providers import ProviderError
    from services.data_collector.providers.factory import make_provider

    missing = missing_sessions(ctx.calendar, ctx.session_factory, day, LOOKBACK_SESSIONS)
    if not missing:
        return
    ctx.log.info("market data missing for %d sessions up to %s: collecting them first", len(missing), day)
    try:
        provider = make_provider(ctx.settings, ctx.clock, ctx.calendar)
    except ProviderError as exc:
        raise InputMissing(f"input missing: no market data for {day} ({exc})") from None
    report = backfill(missing, session_factory=ctx.session_factory, provider=provider, now=ctx.clock.now)
    if day in report.failed:
        raise InputMissing(f"input missing: no market data for {day} ({report.failed[day]})")


def run(ctx: JobContext) -> JobResult:
    """``indicator_calculation`` for ``ctx.trading_date``."""
    try:
        ensure_market_data(ctx, ctx.trading_date)
    except InputMissing as exc:
        return JobResult.skipped(str(exc))
    result = calculate(dates_to_calculate(ctx), session_factory=ctx.session_factory,
                       calendar=ctx.calendar, now=ctx.clock.now)
    return JobResult.success(
        dates=len(result.dates), first_date=result.dates[0].isoformat(),
        technical_rows=result.technical_rows, financial_rows=result.financial_rows,
        lookback_start=result.lookback_start.isoformat() if result.lookback_start else None,
    )
