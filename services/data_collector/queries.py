"""What other services read of the market data: prices and fundamentals by session,
as plain values (the indicator calculator, the watchlist and the trading engine)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, String, bindparam, cast, func, select

from services.common.database import fetch_columns, fetch_rows, fetch_typed
from services.data_collector.models import CollectedSession, CorporateAction, DailyPrice, MarketIndex, Stock

_TICKERS = DailyPrice.ticker.in_(bindparam("tickers", expanding=True))
_LATEST_BEFORE = select(func.max(CollectedSession.date)).where(CollectedSession.date < bindparam("before"))
# built once: read at every monitoring tick and risk check
_CLOSES_BEFORE = select(DailyPrice.ticker, DailyPrice.close).where(
    DailyPrice.date == _LATEST_BEFORE.scalar_subquery(), _TICKERS)
_CLOSES_ON = select(DailyPrice.ticker, DailyPrice.close).where(DailyPrice.date == bindparam("day"), _TICKERS)
_VOLUMES_ON = select(DailyPrice.ticker, DailyPrice.volume).where(DailyPrice.date == bindparam("day"), _TICKERS)
_MARKETS_ON = select(DailyPrice.ticker, DailyPrice.market).where(DailyPrice.date == bindparam("day"), _TICKERS)
_MARKET_ROWS = select(DailyPrice.ticker, DailyPrice.close, DailyPrice.halted).where(
    DailyPrice.date == bindparam("day"), _TICKERS)


_ALL_CLOSES_BEFORE = select(DailyPrice.ticker, DailyPrice.close).where(
    DailyPrice.date == _LATEST_BEFORE.scalar_subquery())


def all_closes_before(connection: Connection, before: date) -> dict[str, int]:
    """Every ticker's close in the latest collected session before ``before``."""
    return {ticker: int(close) for ticker, close in fetch_typed(connection, _ALL_CLOSES_BEFORE, {"before": before})}


def latest_closes_before(connection: Connection, tickers: Sequence[str], before: date) -> dict[str, int]:
    """Each ticker's close in the latest collected session before ``before``."""
    rows = connection.execute(_CLOSES_BEFORE, {"before": before, "tickers": list(tickers)}).all()
    return {ticker: int(close) for ticker, close in rows}


def market_caps(connection: Connection, market: str, start: date, end: date) -> list[tuple[date, str, int, int]]:
    """(day, ticker, close, market cap) of every ``market`` ticker traded from ``start``
    to ``end`` (a halted day left out): what an index of the market is built from."""
    rows = connection.execute(select(DailyPrice.date, DailyPrice.ticker, DailyPrice.close, DailyPrice.market_cap)
                              .where(DailyPrice.market == market, DailyPrice.date.between(start, end),
                                     DailyPrice.halted.is_(False))).all()
    return [(day, ticker, int(close), int(cap)) for day, ticker, close, cap in rows]


def closes_on(connection: Connection, day: date, tickers: Sequence[str]) -> dict[str, int]:
    """``day``'s closes of the ``tickers`` stored for it."""
    rows = connection.execute(_CLOSES_ON, {"day": day, "tickers": list(tickers)}).all()
    return {ticker: int(close) for ticker, close in rows}


def volumes_on(connection: Connection, day: date, tickers: Sequence[str]) -> dict[str, int]:
    """``day``'s traded volumes of the ``tickers`` stored for it."""
    rows = connection.execute(_VOLUMES_ON, {"day": day, "tickers": list(tickers)}).all()
    return {ticker: int(volume) for ticker, volume in rows}


def markets_on(connection: Connection, day: date, tickers: Sequence[str]) -> dict[str, str]:
    """The market (KOSPI, KOSDAQ) each of ``tickers`` was quoted in on ``day``."""
    rows = connection.execute(_MARKETS_ON, {"day": day, "tickers": list(tickers)}).all()
    return {ticker: market for ticker, market in rows}


def market_rows(connection: Connection, day: date, tickers: Sequence[str]) -> list[tuple[str, int, bool]]:
    """``day``'s (ticker, close, halted) of the ``tickers`` stored for it."""
    rows = connection.execute(_MARKET_ROWS, {"day": day, "tickers": list(tickers)}).all()
    return [(ticker, int(close), bool(halted)) for ticker, close, halted in rows]


# --- bulk reads of a range (the indicator calculator) ---------------------------------------------

#: the columns of :func:`price_history`, in this order
HISTORY_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume", "market_cap"]


def price_history(connection: Connection, start: date, end: date,
                  tickers: Sequence[str] | None = None) -> dict[str, list[Any]]:
    """Prices from ``start`` to ``end`` as columns of :data:`HISTORY_COLUMNS` (of
    ``tickers`` only, if given: then looked up by key on the collected dates, as a
    date's prices are stored with its collected_sessions row, instead of scanning every
    ticker of the range). Values as the driver gives them (SQLite dates are ISO text)."""
    sql = f"SELECT {', '.join(HISTORY_COLUMNS)} FROM daily_prices WHERE "
    params: dict[str, object] = {"start": start, "end": end}
    if tickers is None:
        sql += "date >= :start AND date <= :end"
    else:
        sql += ("date IN (SELECT date FROM collected_sessions WHERE date >= :start AND date <= :end) "
                "AND ticker IN :tickers")
        params["tickers"] = list(tickers)
    return fetch_columns(connection, sql, params, HISTORY_COLUMNS)


def priced_between(connection: Connection, start: date, end: date, tickers: Sequence[str]) -> set[str]:
    """Those of ``tickers`` with a price stored from ``start`` up to (not on) ``end``,
    looked up by key on the collected dates, as :func:`price_history` does."""
    if not tickers:
        return set()
    return {str(row[0]) for row in fetch_rows(
        connection, "SELECT DISTINCT ticker FROM daily_prices WHERE date IN (SELECT date FROM collected_sessions "
        "WHERE date >= :start AND date < :end) AND ticker IN :tickers",
        {"start": start, "end": end, "tickers": list(tickers)})}


#: the columns of :func:`fundamental_history`, in this order
FUNDAMENTAL_COLUMNS = ["ticker", "date", "bps", "eps", "dps"]


def fundamental_history(connection: Connection, start: date, end: date) -> dict[str, list[Any]]:
    """Fundamentals from ``start`` to ``end`` as columns of :data:`FUNDAMENTAL_COLUMNS`."""
    return fetch_columns(connection, f"SELECT {', '.join(FUNDAMENTAL_COLUMNS)} FROM fundamentals "
                         "WHERE date >= :start AND date <= :end", {"start": start, "end": end},
                         FUNDAMENTAL_COLUMNS)


def _joined(column: Any) -> Any:
    """A date's values of ``column`` as one comma-separated text."""
    return func.aggregate_strings(cast(column, String), ",")


# One row per date: its tickers and their values, each column joined into one text
# (group_concat / string_agg). The database does the per-row work; every aggregate of a
# date sees its rows in the same order, so the i-th value of a column belongs to the
# i-th ticker.
_WINDOW_TICKERS = func.aggregate_strings(DailyPrice.ticker, ",")
_IN_RANGE = DailyPrice.date.between(bindparam("start"), bindparam("end"))
_CLOSE_WINDOW = select(DailyPrice.date, _WINDOW_TICKERS, _joined(DailyPrice.close)).where(_IN_RANGE) \
    .group_by(DailyPrice.date)
_RANGE_WINDOW = select(DailyPrice.date, _WINDOW_TICKERS, _joined(DailyPrice.high), _joined(DailyPrice.low),
                       _joined(DailyPrice.volume)).where(_IN_RANGE).group_by(DailyPrice.date)


def close_window(connection: Connection, start: date, end: date) -> list[Any]:
    """Each session's (date, tickers, closes) from ``start`` to ``end``, the tickers and
    closes each one comma-separated text, in the same order."""
    return list(connection.execute(_CLOSE_WINDOW, {"start": start, "end": end}).all())


def range_window(connection: Connection, start: date, end: date) -> list[Any]:
    """Each session's (date, tickers, highs, lows, volumes) from ``start`` to ``end``, as
    :func:`close_window`."""
    return list(connection.execute(_RANGE_WINDOW, {"start": start, "end": end}).all())


def closes_with_fundamentals(connection: Connection, day: date) -> list[tuple[Any, ...]]:
    """``day``'s (ticker, close, market_cap, eps, bps, dps); NULL fundamentals where none is stored."""
    return fetch_rows(connection, "SELECT p.ticker, p.close, p.market_cap, f.eps, f.bps, f.dps FROM daily_prices p "
                      "LEFT JOIN fundamentals f ON f.date = p.date AND f.ticker = p.ticker WHERE p.date = :day",
                      {"day": day})


def day_prices(connection: Connection, day: date) -> list[tuple[Any, ...]]:
    """``day``'s (ticker, close, value, halted) of every stored ticker."""
    return fetch_rows(connection, "SELECT ticker, close, value, halted FROM daily_prices WHERE date = :day",
                      {"day": day})


def stock_names(connection: Connection) -> dict[str, str]:
    """Every listed ticker's name."""
    return {ticker: name for ticker, name in connection.execute(select(Stock.ticker, Stock.name)).all()}


def latest_collected_session(connection: Connection, day: date) -> date | None:
    """The latest session on or before ``day`` whose market data is stored; None if none."""
    return connection.scalar(select(func.max(CollectedSession.date)).where(CollectedSession.date <= day))


_BARS_ON = select(DailyPrice.ticker, DailyPrice.open, DailyPrice.high, DailyPrice.low, DailyPrice.close,
                  DailyPrice.change_pct, DailyPrice.halted).where(DailyPrice.date == bindparam("day"), _TICKERS)


def bars_on(connection: Connection, day: date, tickers: Sequence[str]) -> list[tuple[Any, ...]]:
    """``day``'s (ticker, open, high, low, close, change_pct, halted) of the ``tickers``
    stored for it."""
    return [tuple(row) for row in connection.execute(_BARS_ON, {"day": day, "tickers": list(tickers)}).all()]


def is_collected(connection: Connection, day: date) -> bool:
    """Whether ``day``'s market data is stored whole."""
    return connection.scalar(select(CollectedSession.date).where(CollectedSession.date == day)) is not None


def actions_between(connection: Connection, start: date, end: date) -> list[tuple[date, str, float]]:
    """The corporate actions (date, ticker, ratio) from ``start`` to ``end``."""
    rows = connection.execute(select(CorporateAction.date, CorporateAction.ticker, CorporateAction.ratio).where(
        CorporateAction.date.between(start, end))).all()
    return [(day, str(ticker), float(ratio)) for day, ticker, ratio in rows]


def index_closes(connection: Connection, name: str, start: date, end: date) -> dict[date, float]:
    """The stored closes of the market index ``name`` (KOSPI, KOSDAQ) from ``start`` to ``end``."""
    rows = connection.execute(select(MarketIndex.date, MarketIndex.close).where(
        MarketIndex.name == name, MarketIndex.date.between(start, end))).all()
    return {day: float(close) for day, close in rows}
