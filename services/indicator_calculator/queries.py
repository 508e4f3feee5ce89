"""What other services read of the indicators: values of a session, by ticker (the
watchlist and the trading engine)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select

from services.common.database import fetch_rows
from services.indicator_calculator.models import CalculatedSession, TechnicalIndicator


def technical_values(connection: Connection, day: date, tickers: Sequence[str],
                     names: Sequence[str]) -> dict[str, tuple[float | None, ...]]:
    """``day``'s indicators ``names`` (columns of ``technical_indicators``) of the
    ``tickers`` calculated for it, by ticker."""
    if not tickers:
        return {}
    rows = connection.execute(_technical_values(tuple(names)), {"day": day, "tickers": list(tickers)}).all()
    return {row[0]: tuple(None if value is None else float(value) for value in row[1:]) for row in rows}


@functools.lru_cache(maxsize=16)
def _technical_values(names: tuple[str, ...]) -> Select[Any]:
    """:func:`technical_values`' statement, built once per set of names (read at every signal generation)."""
    return select(TechnicalIndicator.ticker, *(getattr(TechnicalIndicator, name) for name in names)).where(
        TechnicalIndicator.date == bindparam("day"),
        TechnicalIndicator.ticker.in_(bindparam("tickers", expanding=True)))


#: the indicators of :func:`screening_values`, in this order
SCREENING_COLUMNS = ["sma_20", "sma_60", "sma_120", "rsi_14", "macd_hist", "atr_14", "per", "pbr"]


def screening_values(connection: Connection, day: date) -> dict[str, tuple[object, ...]]:
    """``day``'s technical indicators of :data:`SCREENING_COLUMNS` with the financial
    ones (NULL where none is stored), by ticker: every ticker calculated that day."""
    rows = fetch_rows(connection, "SELECT t.ticker, t.sma_20, t.sma_60, t.sma_120, t.rsi_14, t.macd_hist, "
                      "t.atr_14, f.per, f.pbr FROM technical_indicators t LEFT JOIN financial_indicators f "
                      "ON f.date = t.date AND f.ticker = t.ticker WHERE t.date = :day", {"day": day})
    return {row[0]: tuple(row[1:]) for row in rows}


def calculated_from(connection: Connection, day: date) -> date | None:
    """The first session of the lookback ``day``'s indicators were calculated from
    (None when they were not calculated)."""
    return connection.execute(select(CalculatedSession.lookback_start).where(
        CalculatedSession.date == day)).scalar()


def is_calculated(connection: Connection, day: date) -> bool:
    """Whether the indicators of ``day`` are stored."""
    return connection.scalar(select(CalculatedSession.date).where(CalculatedSession.date == day)) is not None
