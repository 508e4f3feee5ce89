"""Stored history: the market data another database holds (collected there by
``data_collection`` or ``backfill``, e.g. from pykrx), served one session at a time.

This is what a replay of real prices reads: ``simulate`` with
``ORCHESTRATOR_DATA_PROVIDER=stored`` collects each session from the live database's
history into the simulation database, through the same collector, triggers and jobs.
The source is only read (SELECT); a session it does not hold whole is refused with the
command that collects it.
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from services.common.clock import Clock
from services.common.database import create_db_engine, sqlite_file
from services.common.market_calendar import MarketCalendar
from services.data_collector.models import CollectedSession, DailyPrice, Fundamental, MarketIndex, Stock
from services.data_collector.providers import (
    FUNDAMENTAL_COLUMNS,
    INDEX_COLUMNS,
    PRICE_COLUMNS,
    STOCK_COLUMNS,
    HistoryMissing,
    MarketSnapshot,
    ProviderUnavailable,
    require_closed_session,
)


class StoredHistoryProvider:
    """Sessions as ``url``'s database stored them (its collected sessions only)."""

    def __init__(self, *, url: str, shown_url: str, calendar: MarketCalendar, clock: Clock) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and not Path(sqlite_file(parsed.database) or "").is_file():
            raise ProviderUnavailable(f"ORCHESTRATOR_HISTORY_DATABASE_URL: {shown_url} does not exist; expected "
                                      "the database backfill collected the history into")
        self.calendar = calendar
        self.clock = clock
        self.shown_url = shown_url
        self.engine = _engine(url)
        self.name = f"stored({self._sources()})"

    def _sources(self) -> str:
        """The providers the source collected its history from (its collector names them)."""
        try:
            with self.engine.connect() as connection:
                names = connection.scalars(select(CollectedSession.provider).distinct()).all()
        except SQLAlchemyError as exc:
            raise ProviderUnavailable(f"ORCHESTRATOR_HISTORY_DATABASE_URL: cannot read the history of "
                                      f"{self.shown_url} ({type(exc).__name__}); expected a database backfill "
                                      "collected into") from None
        return "+".join(sorted(names)) or "empty"

    def fetch_session(self, trading_date: date) -> MarketSnapshot:
        require_closed_session(self.calendar, self.clock, trading_date)
        with self.engine.connect() as connection:
            collected = connection.execute(select(CollectedSession.provider).where(
                CollectedSession.date == trading_date)).first()
            if collected is None:
                raise HistoryMissing(f"{trading_date} is not in the history of {self.shown_url}; collect it there "
                                    f"first: backfill --start {trading_date} --end {trading_date}")
            prices = _frame(connection, select(*(getattr(DailyPrice, c) for c in PRICE_COLUMNS)).where(
                DailyPrice.date == trading_date), PRICE_COLUMNS)
            fundamentals = _frame(connection, select(*(getattr(Fundamental, c) for c in FUNDAMENTAL_COLUMNS)).where(
                Fundamental.date == trading_date), FUNDAMENTAL_COLUMNS)
            indices = _frame(connection, select(MarketIndex.name, MarketIndex.date, MarketIndex.close).where(
                MarketIndex.date == trading_date), INDEX_COLUMNS)
            names = dict(connection.execute(select(Stock.ticker, Stock.name).where(
                Stock.ticker.in_(prices["ticker"].tolist()))).all()) if not prices.empty else {}
        stocks = pd.DataFrame({"ticker": prices["ticker"], "name": prices["ticker"].map(names).fillna(prices["ticker"]),
                               "market": prices["market"]})[STOCK_COLUMNS]
        return MarketSnapshot(trading_date, stocks, prices, fundamentals, indices)


@functools.lru_cache(maxsize=4)
def _engine(url: str) -> Engine:
    """One engine per source (a replay collects every session through a provider of its own)."""
    return create_db_engine(url)


def _frame(connection: object, statement: object, columns: list[str]) -> pd.DataFrame:
    rows = connection.execute(statement).all()  # type: ignore[attr-defined]
    frame = pd.DataFrame([tuple(row) for row in rows], columns=columns)
    if "date" in frame:
        frame["date"] = pd.to_datetime(frame["date"]).dt.date
    return frame
