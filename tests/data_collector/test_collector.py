"""Collecting trading dates into the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from services.common.clock import FixedClock
from services.common.job_api import JobContext, Outcome
from services.data_collector import collector
from services.data_collector.collector import (
    backfill,
    collect_session,
    completed_sessions,
    history_complete,
    history_sessions,
    missing_sessions,
    run,
    window_sessions,
)
from services.data_collector.models import CollectedSession, DailyPrice, Stock
from services.data_collector.providers import MarketSnapshot
from services.data_collector.providers.simulated import SimulatedProvider
from services.data_collector.validation import InvalidSnapshot
from tests.conftest import make_settings

KST = ZoneInfo("Asia/Seoul")
AFTER_CLOSE = datetime(2026, 11, 20, 18, 0, tzinfo=KST)
TABLES = ("stocks", "daily_prices", "fundamentals")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(AFTER_CLOSE)


@pytest.fixture
def provider(krx_calendar: Any, clock: FixedClock) -> SimulatedProvider:
    return SimulatedProvider(calendar=krx_calendar, clock=clock, seed=7, universe_size=40)


def dump(session_factory: Any) -> dict[str, list[tuple[Any, ...]]]:
    with session_factory() as session:
        return {table: sorted(tuple(row) for row in session.execute(text(f"SELECT * FROM {table}")))
                for table in TABLES}


def count(session_factory: Any, model: Any, **where: Any) -> int:
    with session_factory() as session:
        query = select(func.count()).select_from(model)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return int(session.scalar(query))


def test_collecting_a_date_twice_leaves_identical_tables(session_factory, provider, clock):
    day = date(2026, 11, 19)
    first = collect_session(day, session_factory=session_factory, provider=provider, now=clock.now)
    before = dump(session_factory)
    again = collect_session(day, session_factory=session_factory, provider=provider, now=clock.now)
    assert dump(session_factory) == before
    assert first.price_rows == again.price_rows == count(session_factory, DailyPrice, date=day)
    assert count(session_factory, CollectedSession) == 1


def test_stored_rows_equal_what_the_provider_delivered(session_factory, provider, clock):
    day = date(2026, 11, 19)
    snapshot = provider.fetch_session(day)
    collect_session(day, session_factory=session_factory, provider=provider, now=clock.now)
    with session_factory() as session:
        stored = {row.ticker: row for row in session.scalars(select(DailyPrice).where(DailyPrice.date == day))}
    delivered = snapshot.prices.set_index("ticker")
    assert set(stored) == set(delivered.index)
    sample = delivered.index[0]
    assert (stored[sample].open, stored[sample].close, stored[sample].volume) == (
        delivered.loc[sample, "open"], delivered.loc[sample, "close"], delivered.loc[sample, "volume"])
    assert stored[sample].halted is bool(delivered.loc[sample, "volume"] == 0)


def test_a_crash_mid_date_leaves_the_date_absent(session_factory, provider, clock, monkeypatch):
    day = date(2026, 11, 19)
    real = collector.upsert_columns

    def crash_on_fundamentals(connection, table, columns, keys, **options):
        if table.name == "fundamentals":
            raise RuntimeError("killed mid-write")
        return real(connection, table, columns, keys, **options)

    monkeypatch.setattr(collector, "upsert_columns", crash_on_fundamentals)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        collect_session(day, session_factory=session_factory, provider=provider, now=clock.now)
    assert count(session_factory, DailyPrice, date=day) == 0
    assert count(session_factory, CollectedSession) == 0


class Corrupting:
    """A provider whose frames have bad rows (for the validation path end to end)."""

    name = "corrupting"

    def __init__(self, inner: SimulatedProvider, bad_rows: int | None) -> None:
        self.inner, self.bad_rows = inner, bad_rows

    def fetch_session(self, trading_date: date) -> MarketSnapshot:
        snapshot = self.inner.fetch_session(trading_date)
        prices = snapshot.prices.copy()
        rows = len(prices) if self.bad_rows is None else self.bad_rows
        prices.loc[prices.index[:rows], "close"] = -1
        return replace(snapshot, prices=prices)


def test_a_partly_bad_frame_stores_the_good_rows_and_counts_the_rest(session_factory, provider, clock):
    day = date(2026, 11, 19)
    result = collect_session(day, session_factory=session_factory, provider=Corrupting(provider, 3),
                             now=clock.now)
    assert result.rejected == {"prices: non-positive price": 3}
    assert count(session_factory, DailyPrice, date=day) == len(provider.fetch_session(day).prices) - 3
    with session_factory() as session:
        assert session.get(CollectedSession, day).rejected_rows == 3


def test_an_entirely_bad_frame_stores_nothing(session_factory, provider, clock):
    with pytest.raises(InvalidSnapshot, match="every price row was rejected"):
        collect_session(date(2026, 11, 19), session_factory=session_factory,
                        provider=Corrupting(provider, None), now=clock.now)
    assert dump(session_factory) == {table: [] for table in TABLES}


def test_backfill_collects_in_date_order_and_skips_complete_dates_unless_forced(
    session_factory, provider, clock
):
    days = [date(2026, 11, 18), date(2026, 11, 16), date(2026, 11, 17)]
    progress: list[tuple[date, str]] = []
    collect_session(date(2026, 11, 17), session_factory=session_factory, provider=provider, now=clock.now)
    report = backfill(days, session_factory=session_factory, provider=provider, now=clock.now,
                      on_progress=lambda day, status: progress.append((day, status)))
    assert progress == [(date(2026, 11, 16), "collected"), (date(2026, 11, 17), "skipped"),
                        (date(2026, 11, 18), "collected")]
    assert report.summary()["sessions_collected"] == 2
    forced = backfill(days, session_factory=session_factory, provider=provider, now=clock.now, force=True)
    assert forced.summary()["sessions_collected"] == 3


def test_backfill_reports_each_date_once_it_is_stored(session_factory, provider, clock, krx_calendar):
    days = [s.date for s in krx_calendar.sessions(date(2026, 10, 1), date(2026, 11, 20))]
    seen: list[tuple[date, bool]] = []

    def stored(day: date, status: str) -> None:
        seen.append((day, day in completed_sessions(session_factory, day, day)))

    backfill(days, session_factory=session_factory, provider=provider, now=clock.now, on_progress=stored)
    assert seen == [(day, True) for day in days]


def test_a_crash_while_storing_a_batch_leaves_its_dates_absent_and_the_earlier_ones_complete(
    session_factory, provider, clock, krx_calendar, monkeypatch
):
    days = [s.date for s in krx_calendar.sessions(date(2026, 11, 2), date(2026, 11, 13))]  # 10 sessions
    monkeypatch.setattr(collector, "BATCH_ROWS", 3 * len(provider.fetch_session(days[0]).prices))  # 3 a batch
    monkeypatch.setattr(collector, "BATCH_SECONDS", 3600)  # however slow the machine
    real = collector.store_snapshot

    def crash_on_the_eighth(connection, validated, *args):
        if validated.snapshot.trading_date == days[7]:
            raise RuntimeError("killed mid-batch")
        return real(connection, validated, *args)

    monkeypatch.setattr(collector, "store_snapshot", crash_on_the_eighth)
    progress: list[date] = []
    with pytest.raises(RuntimeError, match="killed mid-batch"):
        backfill(days, session_factory=session_factory, provider=provider, now=clock.now,
                 on_progress=lambda day, status: progress.append(day))
    assert progress == days[:6]  # two whole batches
    assert completed_sessions(session_factory, days[0], days[-1]) == set(days[:6])
    with session_factory() as session:
        assert session.scalar(select(func.count(func.distinct(DailyPrice.date)))) == 6  # the 7th is rolled back



def test_a_backfill_stopped_mid_batch_keeps_the_dates_it_fetched(
    session_factory, provider, clock, krx_calendar, monkeypatch
):
    days = [s.date for s in krx_calendar.sessions(date(2026, 11, 2), date(2026, 11, 13))]  # 10 sessions
    monkeypatch.setattr(collector, "BATCH_ROWS", 3 * len(provider.fetch_session(days[0]).prices))  # 3 a batch
    monkeypatch.setattr(collector, "BATCH_SECONDS", 3600)
    real = provider.fetch_session

    def interrupted_on_the_fifth(day):
        if day == days[4]:
            raise KeyboardInterrupt
        return real(day)

    monkeypatch.setattr(provider, "fetch_session", interrupted_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        backfill(days, session_factory=session_factory, provider=provider, now=clock.now)
    # one whole batch (days 1-3) and the 4th, fetched and waiting: four dates, each complete
    assert completed_sessions(session_factory, days[0], days[-1]) == set(days[:4])
    with session_factory() as session:
        assert session.scalar(select(func.count(func.distinct(DailyPrice.date)))) == 4

def test_backfill_records_a_failing_date_and_goes_on(session_factory, provider, clock):
    clock.set(datetime(2026, 11, 19, 16, 0, tzinfo=KST))  # before the exam day's 16:30 close
    report = backfill([date(2026, 11, 18), date(2026, 11, 19)], session_factory=session_factory,
                      provider=provider, now=clock.now)
    assert [r.trading_date for r in report.collected] == [date(2026, 11, 18)]
    assert report.failed == {date(2026, 11, 19): "2026-11-19's close (16:30) has not happened yet"}


def test_the_history_window_is_the_last_sessions_up_to_a_date(krx_calendar):
    # Chuseok 2026 closes 09-24 and 09-25, the substitute holiday 10-05 and Hangul Day 10-09
    assert window_sessions(krx_calendar, date(2026, 10, 12), 6) == [
        date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 6), date(2026, 10, 7),
        date(2026, 10, 8), date(2026, 10, 12)]


def context(session_factory, krx_calendar, clock, day, origin="schedule", **settings) -> JobContext:
    values = {"simulated_universe": "40", "simulated_seed": "7", "bootstrap_sessions": "5"}
    values.update(settings)
    job_settings = make_settings(**values)
    return JobContext(job_name="data_collection", trading_date=day, scheduled_for=clock.now(),
                      settings=job_settings, session_factory=session_factory, clock=clock,
                      calendar=krx_calendar, origin=origin)


def test_the_history_window_is_the_indicators_lookback_or_the_bootstrap_sessions_if_more():
    assert history_sessions(make_settings(bootstrap_sessions="5")) == 240  # what the indicators of a date read
    assert history_sessions(make_settings(bootstrap_sessions="250")) == 250


def test_the_job_catches_up_the_missing_history_then_collects_its_date(session_factory, krx_calendar, clock):
    ctx = context(session_factory, krx_calendar, clock, date(2026, 11, 20))
    assert not history_complete(ctx)
    result = run(ctx)
    assert result.status is Outcome.SUCCESS
    assert result.summary["sessions_collected"] == 240
    done = sorted(completed_sessions(session_factory, date(2025, 1, 1), date(2026, 12, 31)))
    # 2025-11-27 is the 240th session before 2026-11-20 (KRX calendar)
    assert (len(done), done[0], done[-1]) == (240, date(2025, 11, 27), date(2026, 11, 20))
    assert history_complete(ctx)
    with session_factory.begin() as session:  # a session of the window lost: the probe sees it
        session.execute(text("DELETE FROM collected_sessions WHERE date = '2026-06-01'"))
    assert not history_complete(ctx)
    assert missing_sessions(krx_calendar, session_factory, date(2026, 11, 20), 240) == [date(2026, 6, 1)]


def test_catch_up_with_nothing_missing_is_skipped_with_the_reason(session_factory, krx_calendar, clock):
    run(context(session_factory, krx_calendar, clock, date(2026, 11, 20)))
    result = run(context(session_factory, krx_calendar, clock, date(2026, 11, 20), origin="catch_up"))
    assert result.status is Outcome.SKIPPED
    assert result.reason == "nothing to catch up: the last 240 sessions up to 2026-11-20 are complete"


def test_the_job_fails_when_its_own_date_is_entirely_bad(session_factory, krx_calendar, clock, monkeypatch):
    real = collector.make_provider
    monkeypatch.setattr(collector, "make_provider",
                        lambda *args: Corrupting(real(*args), None))
    result = run(context(session_factory, krx_calendar, clock, date(2026, 11, 20), bootstrap_sessions="1"))
    assert result.status is Outcome.FAILED
    assert "every price row was rejected" in (result.reason or "")
    assert count(session_factory, DailyPrice) == 0


class Renaming:
    """``provider``'s sessions, every stock's name ending in ``label``."""

    name = "renaming"

    def __init__(self, provider: Any, label: str) -> None:
        self.provider, self.label = provider, label

    def fetch_session(self, trading_date: date) -> MarketSnapshot:
        snapshot = self.provider.fetch_session(trading_date)
        return replace(snapshot, stocks=snapshot.stocks.assign(name=snapshot.stocks["name"] + self.label))


def stock_master(session_factory) -> set[tuple[str, date]]:
    """The stock master's (name's last four characters, updated_on) pairs."""
    with session_factory() as session:
        return {(row.name[-4:], row.updated_on) for row in session.execute(select(Stock.name, Stock.updated_on))}


def test_a_rename_is_kept_only_from_the_newest_date(session_factory, provider, clock):
    for day, label in ((date(2026, 11, 19), " new"), (date(2026, 11, 18), " old")):
        collect_session(day, session_factory=session_factory, provider=Renaming(provider, label), now=clock.now)
    assert stock_master(session_factory) == {(" new", date(2026, 11, 19))}


def test_the_stock_master_takes_a_later_rename_and_keeps_the_date_it_last_changed(session_factory, provider, clock):
    def collect(day: date, label: str) -> set[tuple[str, date]]:
        collect_session(day, session_factory=session_factory, provider=Renaming(provider, label), now=clock.now)
        return stock_master(session_factory)

    assert collect(date(2026, 11, 18), " old") == {(" old", date(2026, 11, 18))}
    assert collect(date(2026, 11, 19), " new") == {(" new", date(2026, 11, 19))}
    assert collect(date(2026, 11, 20), " new") == {(" new", date(2026, 11, 19))}  # the same names: left as they were


def test_data_of_another_provider_or_simulated_market_is_never_mixed_in(session_factory, krx_calendar, clock):
    from services.data_collector.collector import ProviderMismatch

    first = SimulatedProvider(calendar=krx_calendar, clock=clock, seed=7, universe_size=40)
    other = SimulatedProvider(calendar=krx_calendar, clock=clock, seed=7, universe_size=300)
    backfill([date(2026, 11, 19)], session_factory=session_factory, provider=first, now=clock.now)
    with pytest.raises(ProviderMismatch, match=r"holds market data from 'simulated\(seed=7,universe=40\)'"):
        backfill([date(2026, 11, 20)], session_factory=session_factory, provider=other, now=clock.now)
