"""Indicator windows kept between steps: a session's row is served while its date's
collection revision is unchanged, read again once the date is collected again."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from services.common.clock import FixedClock
from services.data_collector import collector as data_collector
from services.data_collector.models import CollectedSession
from services.data_collector.providers.simulated import SimulatedProvider
from services.data_collector.queries import close_window
from services.indicator_calculator.windows import session_rows

KST = ZoneInfo("Asia/Seoul")


def collect(session_factory: Any, calendar: Any, days: list[date], force: bool = False) -> None:
    clock = FixedClock(datetime(2026, 11, 20, 17, 0, tzinfo=KST))
    provider = SimulatedProvider(calendar=calendar, clock=clock, seed=5, universe_size=12)
    data_collector.backfill(days, session_factory=session_factory, provider=provider, now=clock.now, force=force)


class CountedRead:
    """``close_window``, with each range it was asked for."""

    def __init__(self) -> None:
        self.ranges: list[tuple[date, date]] = []

    def __call__(self, connection: Any, start: date, end: date) -> list[Any]:
        self.ranges.append((start, end))
        return close_window(connection, start, end)


def closes(window: list[Any]) -> dict[date, dict[str, int]]:
    """Each date's close by ticker (the order of a joined text is the database's own)."""
    return {day: dict(zip(tickers.split(","), map(int, values.split(",")))) for day, tickers, values in window}


def whole(session_factory: Any, sessions: list[date]) -> dict[date, dict[str, int]]:
    with session_factory() as session:
        return closes(close_window(session.connection(), sessions[0], sessions[-1]))


def rows(session_factory: Any, read: CountedRead, sessions: list[date]) -> dict[date, dict[str, int]]:
    with session_factory() as session:
        return closes(session_rows(session.connection(), read, sessions))


def test_the_next_window_reads_only_its_new_session(session_factory, krx_calendar):
    days = [s.date for s in krx_calendar.sessions(date(2026, 11, 2), date(2026, 11, 20))]
    collect(session_factory, krx_calendar, days)
    read = CountedRead()
    assert rows(session_factory, read, days[:-1]) == whole(session_factory, days[:-1])
    assert rows(session_factory, read, days[1:]) == whole(session_factory, days[1:])
    assert read.ranges == [(days[0], days[-2]), (days[-1], days[-1])]


def test_collecting_a_date_again_adds_one_to_its_revision(session_factory, krx_calendar):
    days = [s.date for s in krx_calendar.sessions(date(2026, 11, 2), date(2026, 11, 20))]
    collect(session_factory, krx_calendar, days)
    collect(session_factory, krx_calendar, days[5:7], force=True)
    with session_factory() as session:
        revisions = dict(session.execute(select(CollectedSession.date, CollectedSession.revision)).all())
    assert [revisions[day] for day in days[4:8]] == [1, 2, 2, 1]


def test_a_kept_session_is_served_until_its_revision_changes_then_read_again_from_it(
        session_factory, krx_calendar):
    days = [s.date for s in krx_calendar.sessions(date(2026, 11, 2), date(2026, 11, 20))]
    collect(session_factory, krx_calendar, days)
    read = CountedRead()
    before = rows(session_factory, read, days)
    with session_factory.begin() as session:
        session.execute(text("UPDATE daily_prices SET close = close + 100 WHERE date = :day"), {"day": days[5]})
    assert rows(session_factory, read, days) == before  # the revision says nothing was stored
    with session_factory.begin() as session:
        session.execute(text("UPDATE collected_sessions SET revision = revision + 1 WHERE date = :day"),
                        {"day": days[5]})
    after = rows(session_factory, read, days)
    assert after == whole(session_factory, days) and after[days[5]] != before[days[5]]
    assert read.ranges == [(days[0], days[-1]), (days[5], days[-1])]


def test_a_window_with_a_date_never_collected_is_read_whole_every_time(session_factory, krx_calendar):
    days = [s.date for s in krx_calendar.sessions(date(2026, 11, 2), date(2026, 11, 20))]
    collect(session_factory, krx_calendar, days)
    with session_factory.begin() as session:
        session.execute(text("DELETE FROM collected_sessions WHERE date = :day"), {"day": days[3]})
    read = CountedRead()
    rows(session_factory, read, days)
    assert rows(session_factory, read, days) == whole(session_factory, days)
    assert read.ranges == [(days[0], days[-1])] * 2
