"""A user's watchlist as it stood on a day: entries with their performance since they
entered, and the tickers that left since the previous list."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.common.market_calendar import KRX_TZ
from services.orchestrator.ops.arguments import InvalidArgument, require_in_calendar
from services.orchestrator.runtime import Runtime


class NoWatchlist(InvalidArgument):
    """The account has no watchlist on or before the day asked for (nothing to show)."""


def view(runtime: Runtime, day: date | None = None) -> dict[str, Any]:
    """The account's list in force on ``day`` (None: today): date, user_id,
    previous_date, entries [...], exits [...]."""
    from services.watchlist_manager.manager import latest_watchlist_date, watchlist_view

    settings = runtime.settings
    day = day or runtime.clock.now().astimezone(KRX_TZ).date()
    require_in_calendar(runtime.calendar, day)
    factory = runtime.session_factory()
    shown = latest_watchlist_date(factory, settings.user_id, day)  # the list in force on that day
    if shown is None:
        raise NoWatchlist("date", f"no watchlist for {settings.user_id} on or before {day}; run "
                                      "`run-job watchlist_update` first")
    return watchlist_view(factory, runtime.calendar, settings.user_id, shown)
