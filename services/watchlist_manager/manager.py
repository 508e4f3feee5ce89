"""The ``watchlist_update`` job and the watchlist view.

For trading date D and a user: score the universe from D's indicators, keep the top
N, and store them per ``(user_id, date, ticker)`` with rank, score and factors. A
ticker that stays on the list keeps the date and close it entered at, so its return
and days on the list can be followed; the tickers that left are the day's exits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, bindparam, delete, func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.database import upsert, upsert_columns
from services.common.job_api import JobContext, JobResult
from services.common.market_calendar import MarketCalendar
from services.data_collector.queries import day_prices, stock_names
from services.indicator_calculator.queries import SCREENING_COLUMNS, is_calculated, screening_values
from services.watchlist_manager.models import WatchlistEntry, WatchlistRun
from services.watchlist_manager.queries import has_watchlist
from services.watchlist_manager.scoring import (
    FACTORS,
    WatchlistRules,
    is_eligible,
    rank_eligible,
)

logger = logging.getLogger(__name__)


UNIVERSE_COLUMNS = ["ticker", "close", "value", "halted", *SCREENING_COLUMNS]


def universe_columns(connection: Connection, day: date) -> dict[str, np.ndarray]:
    """Prices, technical and financial indicators of one date as arrays, one entry per
    ticker (``halted`` bool, the numbers float with NaN for a NULL)."""
    indicators = screening_values(connection, day)
    rows = [(*prices, *indicators[prices[0]]) for prices in day_prices(connection, day) if prices[0] in indicators]
    columns = dict(zip(UNIVERSE_COLUMNS, zip(*rows) if rows else [()] * len(UNIVERSE_COLUMNS)))
    return {name: np.array(values, dtype=object if name == "ticker" else bool if name == "halted" else float)
            for name, values in columns.items()}


def load_universe(connection: Connection, day: date) -> pd.DataFrame:
    """:func:`universe_columns` as a frame, one row per ticker."""
    return pd.DataFrame({name: values.tolist() if name == "ticker" else values
                         for name, values in universe_columns(connection, day).items()})


def previous_list(connection: Connection, user_id: str, day: date) -> tuple[date | None, pd.DataFrame]:
    """The user's watchlist of the run before ``day`` (empty if that run chose nobody)."""
    previous = connection.scalar(select(func.max(WatchlistRun.date)).where(
        WatchlistRun.user_id == user_id, WatchlistRun.date < day))
    if previous is None:
        return None, pd.DataFrame(columns=["ticker", "entered_on", "entry_close"])
    rows = connection.execute(select(WatchlistEntry.ticker, WatchlistEntry.entered_on, WatchlistEntry.entry_close)
                              .where(WatchlistEntry.user_id == user_id, WatchlistEntry.date == previous)).all()
    return previous, pd.DataFrame(rows, columns=["ticker", "entered_on", "entry_close"])


@dataclass(frozen=True)
class UpdateResult:
    size: int
    eligible: int
    entries: list[str]
    exits: list[str]


def update_watchlist(connection: Connection, user_id: str, day: date, rules: WatchlistRules) -> UpdateResult:
    """Replace the user's watchlist of ``day`` (idempotent); the caller owns the transaction."""
    universe = universe_columns(connection, day)
    eligible = is_eligible(universe, rules)
    chosen = _best_of(universe, eligible, rules)
    before = _previous_entries(connection, user_id, day)
    connection.execute(_DELETE_DAY, {"user_id": user_id, "day": day})
    upsert_columns(connection, WatchlistEntry.__table__, _entry_columns(chosen, before, user_id, day),
                   ["user_id", "date", "ticker"])
    tickers = chosen["ticker"]
    entries = sorted(set(tickers) - set(before))
    exits = sorted(set(before) - set(tickers))
    eligible_count = int(eligible.sum())
    upsert(connection, WatchlistRun.__table__, [{"user_id": user_id, "date": day, "size": len(tickers),
                                                 "eligible": eligible_count}], ["user_id", "date"])
    return UpdateResult(len(tickers), eligible_count, entries, exits)


def _best_of(universe: dict[str, np.ndarray], eligible: np.ndarray, rules: WatchlistRules) -> dict[str, list[Any]]:
    """The top ``rules.size`` of the ``eligible`` tickers, best first: ticker, close,
    score, rank and factors as lists of plain values."""
    order, score, factors = rank_eligible({name: values[eligible] for name, values in universe.items()}, rules)
    top = order[:rules.size]
    return {"ticker": universe["ticker"][eligible][top].tolist(), "close": universe["close"][eligible][top].tolist(),
            "score": score[top].tolist(), "rank": list(range(1, len(top) + 1)),
            **{name: factors[name][top].tolist() for name in FACTORS}}


#: The user's entries of the run before ``day`` (none without one, or when it chose nobody).
_PREVIOUS_ENTRIES = select(WatchlistEntry.ticker, WatchlistEntry.entered_on, WatchlistEntry.entry_close).where(
    WatchlistEntry.user_id == bindparam("user_id"),
    WatchlistEntry.date == select(func.max(WatchlistRun.date)).where(
        WatchlistRun.user_id == bindparam("user_id"), WatchlistRun.date < bindparam("day")).scalar_subquery())
_DELETE_DAY = delete(WatchlistEntry).where(WatchlistEntry.user_id == bindparam("user_id"),
                                           WatchlistEntry.date == bindparam("day"))


def _previous_entries(connection: Connection, user_id: str, day: date) -> dict[str, tuple[date, int]]:
    """Ticker -> (entered_on, entry_close) of the user's list of the run before ``day``."""
    rows = connection.execute(_PREVIOUS_ENTRIES, {"user_id": user_id, "day": day})
    return {ticker: (entered_on, entry_close) for ticker, entered_on, entry_close in rows}


def _entry_columns(chosen: dict[str, list[Any]], before: dict[str, tuple[date, int]], user_id: str,
                   day: date) -> dict[str, list[Any]]:
    """The chosen rows as stored: a ticker already on the list keeps the date and close
    it entered at."""
    tickers = chosen["ticker"]
    closes = [int(close) for close in chosen["close"]]
    entered = [before.get(ticker, (day, close)) for ticker, close in zip(tickers, closes)]
    return {
        "user_id": [user_id] * len(tickers), "date": [day] * len(tickers), "ticker": tickers,
        "rank": chosen["rank"], "score": chosen["score"], **{factor: chosen[factor] for factor in FACTORS},
        "close": closes, "entered_on": [on for on, _ in entered],
        "entry_close": [int(close) for _, close in entered],
    }


def later_runs(connection: Connection, user_id: str, day: date) -> list[date]:
    return list(connection.scalars(select(WatchlistRun.date).where(
        WatchlistRun.user_id == user_id, WatchlistRun.date > day).order_by(WatchlistRun.date)))


def watchlist_stored(ctx: JobContext) -> bool:
    """The job's probe: ``ctx.account.user_id``'s watchlist of ``ctx.trading_date`` is stored
    (it may be empty)."""
    with ctx.session_factory() as session:
        return has_watchlist(session.connection(), ctx.account.user_id, ctx.trading_date)


def run(ctx: JobContext) -> JobResult:
    """``watchlist_update`` for ``ctx.trading_date`` and ``ctx.account.user_id``; its input, the
    date's indicators, is the ``indicator_calculation`` the registry runs first."""
    rules = WatchlistRules.from_settings(ctx.settings)
    with ctx.session_factory.begin() as session:
        connection = session.connection()
        if not is_calculated(connection, ctx.trading_date):
            return JobResult.skipped(f"input missing: no indicators for {ctx.trading_date}")
        result_ = update_watchlist(connection, ctx.account.user_id, ctx.trading_date, rules)
        # a day filled in late: the lists after it carry entries from it, so redo them in order
        for later in later_runs(connection, ctx.account.user_id, ctx.trading_date):
            update_watchlist(connection, ctx.account.user_id, later, rules)
    return JobResult.success(size=result_.size, eligible=result_.eligible, entries=len(result_.entries),
                             exits=len(result_.exits))


# --- the view -------------------------------------------------------------------------------


def latest_watchlist_date(session_factory: sessionmaker[DbSession], user_id: str, on_or_before: date) -> date | None:
    """The date of the user's latest watchlist run on or before ``on_or_before``."""
    with session_factory() as session:
        return session.scalar(select(func.max(WatchlistRun.date)).where(
            WatchlistRun.user_id == user_id, WatchlistRun.date <= on_or_before))


def watchlist_view(session_factory: sessionmaker[DbSession], calendar: MarketCalendar, user_id: str,
                   day: date) -> dict[str, Any]:
    """The list of ``day`` with each ticker's performance since it entered, and the
    tickers that left since the previous list (with their return to ``day``'s close)."""
    with session_factory() as session:
        connection = session.connection()
        entries = session.scalars(select(WatchlistEntry).where(
            WatchlistEntry.user_id == user_id, WatchlistEntry.date == day).order_by(WatchlistEntry.rank)).all()
        previous_day, before = previous_list(connection, user_id, day)
        names = stock_names(connection)
        left = sorted(set(before["ticker"]) - {entry.ticker for entry in entries})
        closes = {ticker: close for ticker, close, _, _ in day_prices(connection, day)}
    rows = [{
        "rank": entry.rank, "ticker": entry.ticker, "name": names.get(entry.ticker, ""),
        "score": round(entry.score, 4), **{factor: round(getattr(entry, factor), 4) for factor in FACTORS},
        "close": entry.close, "entered_on": entry.entered_on.isoformat(),
        "days_on_list": len(calendar.sessions(entry.entered_on, day)),
        "return_since_entry": round(entry.close / entry.entry_close - 1, 6),
    } for entry in entries]
    exits = []
    for ticker in left:
        entered = before.loc[before["ticker"] == ticker].iloc[0]
        close = closes.get(ticker)
        exits.append({
            "ticker": ticker, "name": names.get(ticker, ""), "entered_on": entered["entered_on"].isoformat(),
            "entry_close": int(entered["entry_close"]),
            "close": close, "return_since_entry": None if close is None
            else round(close / int(entered["entry_close"]) - 1, 6),
        })
    return {"date": day.isoformat(), "user_id": user_id,
            "previous_date": previous_day.isoformat() if previous_day else None,
            "entries": rows, "exits": exits}
