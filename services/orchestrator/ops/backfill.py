"""Collecting the market data of past sessions, in date order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from services.common.market_calendar import KRX_TZ
from services.orchestrator.ops.arguments import InvalidArgument, check_range, require_in_calendar
from services.orchestrator.runtime import Runtime

if TYPE_CHECKING:
    from services.data_collector.collector import BackfillReport


def closed_sessions(runtime: Runtime, start: date, end: date) -> list[date]:
    """The KRX sessions from ``start`` to ``end``; each must have closed by now."""
    check_range(start, end)
    calendar, now = runtime.calendar, runtime.clock.now()
    require_in_calendar(calendar, start, end)
    sessions = calendar.sessions(start, end)
    open_ones = [s for s in sessions if s.close > now]
    if open_ones:
        last = calendar.session_on_or_before(now.astimezone(KRX_TZ).date())
        while last is not None and last.close > now:
            last = calendar.previous_session(last.date)
        raise InvalidArgument("end", f"the session of {open_ones[0].date} has not closed yet; expected dates "
                                     f"up to {last.date if last else start}")
    return [s.date for s in sessions]


class Backfill:
    """Collecting ``days`` from the configured provider: the provider and the database
    are opened on creation, before any progress is shown."""

    def __init__(self, runtime: Runtime, days: list[date]) -> None:
        from services.data_collector.providers.factory import make_provider

        self.days = days
        self._provider = make_provider(runtime.settings, runtime.clock, runtime.calendar)
        self._session_factory = runtime.session_factory()
        self._now = runtime.clock.now

    def run(self, *, force: bool = False, on_progress: Callable[[date, str], None] | None = None) -> BackfillReport:
        """Collect the days in date order, skipping those already complete unless
        ``force``; ``on_progress(day, status)`` after each."""
        from services.data_collector.collector import backfill

        return backfill(self.days, session_factory=self._session_factory, provider=self._provider,
                        now=self._now, force=force, on_progress=on_progress)
