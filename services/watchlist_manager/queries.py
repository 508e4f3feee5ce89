"""What other services read of the watchlists: a user's list of a session."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, bindparam, func, select

from services.common.database import fetch_typed
from services.watchlist_manager.models import WatchlistEntry, WatchlistRun

#: a list's columns other services read, in this order
ENTRY_COLUMNS = ("ticker", "rank", "score", "trend", "momentum", "volatility", "liquidity", "value")


_MINE = (WatchlistEntry.user_id == bindparam("owner"), WatchlistEntry.date == bindparam("day"))
# built once: read by every signal generation
_ENTRIES = select(*(getattr(WatchlistEntry, name) for name in ENTRY_COLUMNS)).where(*_MINE).order_by(
    WatchlistEntry.rank)
_TICKERS = select(WatchlistEntry.ticker).where(*_MINE)
_RUNS = select(func.count()).select_from(WatchlistRun).where(
    WatchlistRun.user_id == bindparam("owner"), WatchlistRun.date == bindparam("day"))


def watchlist_of(connection: Connection, user_id: str, day: date) -> list[tuple[object, ...]]:
    """``user_id``'s watchlist of ``day`` by rank, as rows of :data:`ENTRY_COLUMNS`."""
    return [tuple(row) for row in fetch_typed(connection, _ENTRIES, {"owner": user_id, "day": day})]


def watchlist_tickers(connection: Connection, user_id: str, day: date) -> list[str]:
    """The tickers of ``user_id``'s watchlist of ``day``."""
    return [row[0] for row in fetch_typed(connection, _TICKERS, {"owner": user_id, "day": day})]


def has_watchlist(connection: Connection, user_id: str, day: date) -> bool:
    """Whether ``user_id``'s watchlist of ``day`` was computed (it may be empty)."""
    ((count,),) = fetch_typed(connection, _RUNS, {"owner": user_id, "day": day})
    return bool(count == 1)
