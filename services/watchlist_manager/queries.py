"""What other services read of the watchlists: a user's list of a session."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, func, select

from services.watchlist_manager.models import WatchlistEntry, WatchlistRun

#: a list's columns other services read, in this order
ENTRY_COLUMNS = ("ticker", "rank", "score", "trend", "momentum", "volatility", "liquidity", "value")


def watchlist_of(connection: Connection, user_id: str, day: date) -> list[tuple[object, ...]]:
    """``user_id``'s watchlist of ``day`` by rank, as rows of :data:`ENTRY_COLUMNS`."""
    columns = [getattr(WatchlistEntry, name) for name in ENTRY_COLUMNS]
    return [tuple(row) for row in connection.execute(select(*columns).where(
        WatchlistEntry.user_id == user_id, WatchlistEntry.date == day).order_by(WatchlistEntry.rank)).all()]


def watchlist_tickers(connection: Connection, user_id: str, day: date) -> list[str]:
    """The tickers of ``user_id``'s watchlist of ``day``."""
    return list(connection.scalars(select(WatchlistEntry.ticker).where(
        WatchlistEntry.user_id == user_id, WatchlistEntry.date == day)))


def has_watchlist(connection: Connection, user_id: str, day: date) -> bool:
    """Whether ``user_id``'s watchlist of ``day`` was computed (it may be empty)."""
    return connection.scalar(select(func.count()).select_from(WatchlistRun).where(
        WatchlistRun.user_id == user_id, WatchlistRun.date == day)) == 1
