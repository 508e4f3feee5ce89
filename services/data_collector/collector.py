"""Collecting trading dates: fetch, validate, store.

``collect_session`` is the unit of work (one date, one transaction); ``backfill`` and
the ``data_collection`` job (``run``) collect dates in date order, a backfill storing
the dates it fetched a batch at a time, in one transaction per batch. A date is
complete when its ``collected_sessions`` row exists, which is written in the same
transaction as the data: a crash mid-date leaves the date absent, never half-written.

The job for date D completes D's history window (:func:`history_sessions`): what the
indicators of D read before it, and at least ``ORCHESTRATOR_BOOTSTRAP_SESSIONS``.
:func:`history_complete` tells whether that is already done.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, delete, insert, or_, select, update
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.clock import Clock
from services.common.database import fetch_rows, python_values, upsert, upsert_columns
from services.common.job_api import JobContext, JobResult, Origin
from services.common.market_calendar import MarketCalendar
from services.common.settings import ConfigurationError, Settings
from services.data_collector.adjustments import adjustment_ratios
from services.data_collector.models import (
    CollectedSession,
    CorporateAction,
    DailyPrice,
    Fundamental,
    MarketIndex,
    Stock,
)
from services.data_collector.providers import MARKETS, MarketDataProvider, MarketSnapshot
from services.data_collector.providers.factory import make_provider
from services.data_collector.queries import all_closes_before
from services.data_collector.validation import ValidatedSnapshot, validate_snapshot

logger = logging.getLogger(__name__)

#: Sessions up to a date the indicators of that date read: the longest warm-up (sma_120)
#: plus a margin in which EMAs and Wilder averages settle to their full-history values.
#: The date's collection completes them first (indicator_calculator.calculator reads it).
INDICATOR_LOOKBACK_SESSIONS = 240


@dataclass(frozen=True)
class CollectResult:
    trading_date: date
    stock_rows: int
    price_rows: int
    fundamental_rows: int
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())


# --- storage ---------------------------------------------------------------------------------


def store_snapshot(connection: Connection, validated: ValidatedSnapshot, provider: str,
                   collected_at: datetime) -> CollectResult:
    """Upsert one validated date; the caller owns the transaction."""
    day = validated.snapshot.trading_date
    price_rows = upsert_columns(connection, DailyPrice.__table__, _python_columns(validated.price_columns),
                                ["date", "ticker"])  # first: SQLite's write lock is held from here on
    stocks = _may_change_the_master(connection, _python_columns(validated.stock_columns))
    stocks["updated_on"] = [day] * len(stocks["ticker"])
    upsert_columns(connection, Stock.__table__, stocks, ["ticker"], update_where=_renamed_later)
    fundamental_rows = upsert_columns(connection, Fundamental.__table__,
                                      _python_columns(validated.fundamental_columns), ["date", "ticker"])
    upsert(connection, MarketIndex.__table__, index_rows(validated.snapshot), ["date", "name"])
    connection.execute(delete(CorporateAction).where(CorporateAction.date == day))
    actions = action_rows(connection, day, validated.price_columns)
    if actions:
        connection.execute(insert(CorporateAction), actions)
    upsert(connection, CollectedSession.__table__, [{
        "date": day, "provider": provider, "stock_rows": validated.stock_rows,
        "price_rows": price_rows, "fundamental_rows": fundamental_rows,
        "rejected_rows": validated.rejected_rows, "collected_at": collected_at, "revision": 0,
    }], ["date"], keep=["collected_at", "revision"])
    connection.execute(update(CollectedSession).where(CollectedSession.date == day)
                       .values(revision=CollectedSession.revision + 1))
    return CollectResult(day, validated.stock_rows, price_rows, fundamental_rows, dict(validated.rejected))


def action_rows(connection: Connection, day: date, prices: dict[str, Any]) -> list[dict[str, Any]]:
    """The corporate actions of ``day``: the tickers whose previous stored close over
    their base price (from KRX's change) is not 1 (:mod:`adjustments`)."""
    tickers = [str(ticker) for ticker in prices["ticker"]]
    if not tickers:
        return []
    before = all_closes_before(connection, day)
    ratios = adjustment_ratios(np.array([before.get(ticker, 0) for ticker in tickers]), prices["close"],
                               prices["change_pct"])
    return [{"date": day, "ticker": tickers[index], "ratio": float(ratios[index])}
            for index in np.flatnonzero(ratios != 1.0)]


def index_rows(snapshot: MarketSnapshot) -> list[dict[str, Any]]:
    """The snapshot's index closes worth storing (a known index, a positive close)."""
    frame = snapshot.indices
    return [{"date": snapshot.trading_date, "name": str(name), "close": float(close)}
            for name, close in zip(frame["name"].tolist(), frame["close"].tolist())
            if name in MARKETS and close == close and float(close) > 0]


def _python_columns(columns: dict[str, Any]) -> dict[str, list[Any]]:
    return {name: python_values(values) for name, values in columns.items()}


def _may_change_the_master(connection: Connection, stocks: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The rows of ``stocks`` (ticker, name, market) that :func:`_renamed_later` may
    write: new tickers and changed names or markets. The others it would leave as they
    are, so they are not sent (thousands of rows a session, most the same every day).
    The stored rows are read where no other writer can change them before the commit:
    after a write on SQLite (its lock is held), locked on PostgreSQL."""
    locked = " FOR UPDATE" if connection.dialect.name == "postgresql" else ""
    stored = {ticker: (name, market) for ticker, name, market in fetch_rows(connection, _STOCK_MASTER + locked, {})}
    changed = [index for index, (ticker, name, market) in enumerate(zip(stocks["ticker"], stocks["name"],
                                                                        stocks["market"]))
               if stored.get(ticker) != (name, market)]
    if len(changed) == len(stocks["ticker"]):
        return stocks
    return {column: [values[index] for index in changed] for column, values in stocks.items()}


_STOCK_MASTER = "SELECT ticker, name, market FROM stocks"


def _renamed_later(table: Any, excluded: Any) -> Any:
    """The stock master changes only when the name or market differs, and a date older
    than the stored one never overwrites it (a backfill runs into the past)."""
    return and_(
        excluded.updated_on >= table.c.updated_on,
        or_(table.c.name != excluded.name, table.c.market != excluded.market),
    )


class ProviderMismatch(ConfigurationError):
    """The database holds market data from another provider (or simulated settings)."""


def check_provider(session_factory: sessionmaker[DbSession], provider: MarketDataProvider) -> None:
    """Refuse to mix data of two providers (or two simulated markets) in one database."""
    with session_factory() as session:
        others = list(session.scalars(select(CollectedSession.provider).where(
            CollectedSession.provider != provider.name).distinct().limit(1)))
    if others:
        raise ProviderMismatch(
            f"the database holds market data from {others[0]!r} and this run uses {provider.name!r}; "
            "use the same provider settings or another DATABASE_URL")


def completed_sessions(session_factory: sessionmaker[DbSession], start: date, end: date) -> set[date]:
    """The collected sessions from ``start`` to ``end`` (a window of hundreds, read by
    each daily job's probe: one driver read, no ORM)."""
    with session_factory() as session:
        rows = fetch_rows(session.connection(), "SELECT date FROM collected_sessions "
                          "WHERE date >= :start AND date <= :end", {"start": start, "end": end})
    return {day if isinstance(day, date) else date.fromisoformat(day) for (day,) in rows}  # SQLite: ISO text


# --- collecting ------------------------------------------------------------------------------


def collect_session(
    trading_date: date, *, session_factory: sessionmaker[DbSession], provider: MarketDataProvider,
    now: Callable[[], datetime],
) -> CollectResult:
    """Fetch, validate and store one trading date in one transaction."""
    validated = validate_snapshot(provider.fetch_session(trading_date))
    with session_factory.begin() as session:
        result = store_snapshot(session.connection(), validated, provider.name, now())
    _log_rejected(result)
    return result


def _log_rejected(result: CollectResult) -> None:
    if result.rejected:
        logger.warning("[data_collection %s] rejected %d rows: %s", result.trading_date,
                       result.rejected_rows, dict(result.rejected))


def window_sessions(calendar: MarketCalendar, until: date, count: int) -> list[date]:
    """The last ``count`` sessions up to and including ``until``, oldest first."""
    days: list[date] = []
    for session in calendar.iter_back_from(until):
        days.append(session.date)
        if len(days) == count:
            break
    return days[::-1]


def history_sessions(settings: Settings) -> int:
    """How many sessions up to its date the job completes: the indicators' lookback, or
    ``ORCHESTRATOR_BOOTSTRAP_SESSIONS`` if that is more."""
    return max(settings.bootstrap_sessions, INDICATOR_LOOKBACK_SESSIONS)


def missing_sessions(calendar: MarketCalendar, session_factory: sessionmaker[DbSession],
                     until: date, count: int) -> list[date]:
    """Sessions of the history window ending at ``until`` that are not complete."""
    window = window_sessions(calendar, until, count)
    if not window:
        return []
    done = completed_sessions(session_factory, window[0], window[-1])
    return [day for day in window if day not in done]


@dataclass
class BackfillReport:
    collected: list[CollectResult] = field(default_factory=list)
    skipped: list[date] = field(default_factory=list)
    failed: dict[date, str] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        rejected: Counter[str] = Counter()
        for result in self.collected:
            rejected.update(result.rejected)
        return {
            "sessions_collected": len(self.collected),
            "sessions_skipped": len(self.skipped),
            "sessions_failed": len(self.failed),
            "price_rows": sum(r.price_rows for r in self.collected),
            "fundamental_rows": sum(r.fundamental_rows for r in self.collected),
            "rejected_rows": sum(rejected.values()),
            "rejected_by_reason": dict(rejected),
        }


def backfill(
    days: Sequence[date], *, session_factory: sessionmaker[DbSession], provider: MarketDataProvider,
    now: Callable[[], datetime], force: bool = False,
    on_progress: Callable[[date, str], None] | None = None,
) -> BackfillReport:
    """Collect ``days`` in date order, skipping complete ones unless ``force``.

    A date that fails (provider error, invalid frame) is recorded in the report and the
    next one is tried; a provider that cannot work at all stops the loop. The dates
    fetched are stored a few at a time (:class:`_Batch`); ``on_progress(day, status)``
    follows each date once it is stored.
    """
    from services.data_collector.providers import HistoryMissing, SessionNotAvailable, TransientProviderError
    from services.data_collector.validation import InvalidSnapshot

    ordered = sorted(set(days))
    if ordered:
        check_provider(session_factory, provider)
    done = set() if force or not ordered else completed_sessions(session_factory, ordered[0], ordered[-1])
    report = BackfillReport()
    batch = _Batch(session_factory, provider.name, now, report, on_progress)
    try:
        for day in ordered:
            if day in done:
                report.skipped.append(day)
                batch.note(day, "skipped")
                continue
            batch.store_if_due()  # a slow provider's dates are stored before the next fetch, not after
            try:
                validated = validate_snapshot(provider.fetch_session(day))
            except (TransientProviderError, SessionNotAvailable, InvalidSnapshot, HistoryMissing) as exc:
                report.failed[day] = str(exc)
                logger.error("[data_collection %s] failed: %s", day, exc)
                batch.note(day, "failed")
                continue
            batch.add(validated)
    except BaseException:  # a provider that stops the backfill, or Ctrl-C: the dates fetched are kept
        with suppress(Exception):
            batch.store()
        raise
    batch.store()
    return report


#: A backfill stores the dates it fetched together, in one transaction, once they hold
#: this many price rows or the first of them was fetched this long ago (so that
#: progress still moves every fraction of a second with a slow provider).
BATCH_ROWS = 10_000
BATCH_SECONDS = 0.5


class _Batch:
    """Dates fetched and validated, waiting to be stored in one transaction. Each date
    is still complete or absent (its ``collected_sessions`` row is written with its
    data); each date's progress is reported, in date order, once it is stored."""

    def __init__(self, session_factory: sessionmaker[DbSession], provider: str, now: Callable[[], datetime],
                 report: BackfillReport, on_progress: Callable[[date, str], None] | None) -> None:
        self._session_factory, self._provider, self._now = session_factory, provider, now
        self._report, self._on_progress = report, on_progress
        self._pending: list[ValidatedSnapshot] = []
        self._progress: list[tuple[date, str]] = []
        self._rows, self._since = 0, 0.0

    def add(self, validated: ValidatedSnapshot) -> None:
        if not self._pending:
            self._rows, self._since = 0, time.monotonic()
        self._pending.append(validated)
        self._progress.append((validated.snapshot.trading_date, "collected"))
        self._rows += validated.price_rows
        self.store_if_due()

    def store_if_due(self) -> None:
        """Store the dates waiting once they hold ``BATCH_ROWS`` price rows, or the first
        has waited ``BATCH_SECONDS``."""
        if self._pending and (self._rows >= BATCH_ROWS or time.monotonic() - self._since >= BATCH_SECONDS):
            self.store()

    def note(self, day: date, status: str) -> None:
        """A date that is not stored (skipped, failed), reported after those before it."""
        self._progress.append((day, status))
        if not self._pending:
            self.store()

    def store(self) -> None:
        if self._pending:
            with self._session_factory.begin() as session:
                connection = session.connection()
                results = [store_snapshot(connection, validated, self._provider, self._now())
                           for validated in self._pending]
            self._pending.clear()
            for result in results:
                _log_rejected(result)
            self._report.collected.extend(results)
        progress, self._progress = self._progress, []
        if self._on_progress:
            for day, status in progress:
                self._on_progress(day, status)


# --- the job ---------------------------------------------------------------------------------


def preflight(settings: Settings, clock: Clock, calendar: MarketCalendar) -> None:
    """Before ``start`` schedules the job: the configured provider can be built."""
    make_provider(settings, clock, calendar)


def history_complete(ctx: JobContext) -> bool:
    """The job's probe: ``ctx.trading_date`` and its history window are collected."""
    return not missing_sessions(ctx.calendar, ctx.session_factory, ctx.trading_date, history_sessions(ctx.settings))


def run(ctx: JobContext) -> JobResult:
    """``data_collection``: complete the history window, then collect the trading date."""
    from services.data_collector.providers import HistoryMissing, SessionNotAvailable, TransientProviderError
    from services.data_collector.validation import InvalidSnapshot

    provider = make_provider(ctx.settings, ctx.clock, ctx.calendar)
    check_provider(ctx.session_factory, provider)
    window = history_sessions(ctx.settings)
    missing = missing_sessions(ctx.calendar, ctx.session_factory, ctx.trading_date, window)
    if ctx.origin == Origin.CATCH_UP.value and not missing:
        return JobResult.skipped(f"nothing to catch up: the last {window} sessions up to {ctx.trading_date} "
                                 "are complete")
    earlier = [day for day in missing if day < ctx.trading_date]
    if earlier:
        ctx.log.info("catching up %d missing sessions (%s .. %s)", len(earlier), earlier[0], earlier[-1])
    report = backfill(earlier, session_factory=ctx.session_factory, provider=provider,
                      now=ctx.clock.now, force=True)
    try:
        today = collect_session(ctx.trading_date, session_factory=ctx.session_factory,
                                provider=provider, now=ctx.clock.now)
    except (InvalidSnapshot, TransientProviderError, SessionNotAvailable, HistoryMissing) as exc:
        return JobResult.failed(str(exc), **report.summary())
    report.collected.append(today)
    summary = report.summary()
    if report.failed:
        summary["failed_dates"] = [day.isoformat() for day in sorted(report.failed)]
    return JobResult.success(**summary)
