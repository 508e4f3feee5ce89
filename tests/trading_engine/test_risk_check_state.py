"""The risk check's fingerprint: what a check outside the session, or of an account
holding nothing, reads, so a check that would read the same is recorded unchanged (the
replay tests show the ledger side)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete, insert

from services.common.clock import FixedClock
from services.common.job_api import JobContext
from services.common.market_calendar import KRX_TZ
from services.data_collector.models import CollectedSession
from services.risk_manager.halts import halt_trading
from services.risk_manager.models import RiskBreach
from services.trading_engine.models import PaperAccount, PositionRow
from services.trading_engine.risk_check import state
from tests.conftest import make_settings

NIGHT = datetime(2026, 11, 17, 22, 0, tzinfo=KRX_TZ)  # a Tuesday night
SESSION = datetime(2026, 11, 17, 11, 0, tzinfo=KRX_TZ)


def ctx(session_factory, krx_calendar, at: datetime, **settings: str) -> JobContext:
    return JobContext(job_name="risk_checks", trading_date=at.date(), scheduled_for=at,
                      settings=make_settings(user_id="night", **settings), session_factory=session_factory,
                      clock=FixedClock(at), calendar=krx_calendar, origin="schedule")


def test_the_same_account_at_another_night_hour_has_the_same_fingerprint(session_factory, krx_calendar):
    first = state(ctx(session_factory, krx_calendar, NIGHT))
    assert first is not None
    assert state(ctx(session_factory, krx_calendar, NIGHT.replace(hour=23, minute=30))) == first


def test_a_halt_a_cash_change_or_other_limits_change_the_fingerprint(session_factory, krx_calendar):
    before = state(ctx(session_factory, krx_calendar, NIGHT))
    assert state(ctx(session_factory, krx_calendar, NIGHT, max_daily_loss_pct="2")) != before
    with session_factory.begin() as db:
        db.execute(insert(PaperAccount).values(user_id="night", initial_cash=1_000, cash=1_000, opened_at=NIGHT))
    opened = state(ctx(session_factory, krx_calendar, NIGHT))
    assert opened != before
    with session_factory.begin() as db:
        halt_trading(db.connection(), "night", "by hand", by="manual", at=NIGHT)
    assert state(ctx(session_factory, krx_calendar, NIGHT)) != opened


def test_the_next_session_day_changes_the_fingerprint(session_factory, krx_calendar):
    # after midnight the check measures the daily loss of another session
    assert state(ctx(session_factory, krx_calendar, NIGHT)) != state(
        ctx(session_factory, krx_calendar, datetime(2026, 11, 18, 0, 30, tzinfo=KRX_TZ)))


def test_in_the_session_holding_positions_or_live_every_check_runs(session_factory, krx_calendar):
    with session_factory.begin() as db:
        db.execute(insert(PositionRow).values(user_id="night", dry_run=True, ticker="005930", quantity=10,
                                              cost=700_000, opened_on=SESSION.date(), high_water=70_000))
    assert state(ctx(session_factory, krx_calendar, SESSION)) is None  # their observed prices move
    assert state(ctx(session_factory, krx_calendar, NIGHT)) is not None  # valued at the stored closes
    assert state(ctx(session_factory, krx_calendar, NIGHT, dry_run="false")) is None  # the broker holds the truth


def test_in_the_session_an_account_holding_nothing_is_fingerprinted(session_factory, krx_calendar):
    # nothing held: the assessment values nothing, so no moving price counts
    with session_factory.begin() as db:
        db.execute(insert(PaperAccount).values(user_id="night", initial_cash=1_000, cash=1_000, opened_at=NIGHT))
    first = state(ctx(session_factory, krx_calendar, SESSION))
    assert first is not None
    assert state(ctx(session_factory, krx_calendar, SESSION.replace(minute=30))) == first


def test_a_breach_a_trading_job_recorded_changes_the_fingerprint(session_factory, krx_calendar):
    # a monitoring tick's gate may record the day's daily-loss breach: the next check must see it
    before = state(ctx(session_factory, krx_calendar, NIGHT))
    with session_factory.begin() as db:
        db.execute(insert(RiskBreach).values(
            user_id="night", dry_run=True, trading_date=NIGHT.date(), limit_name="max_daily_loss_pct", subject="",
            value=3.5, threshold=3.0, action="block_entries", checked_at=NIGHT, checked_by="position_monitoring",
            metrics={}))
    assert state(ctx(session_factory, krx_calendar, NIGHT)) != before


def test_a_new_collected_session_changes_the_fingerprint_only_of_an_account_holding_positions(
        session_factory, krx_calendar):
    # the stored closes value positions; a flat account's assessment reads none
    with session_factory.begin() as db:
        db.execute(insert(CollectedSession).values(date=date(2026, 11, 16), provider="simulated", stock_rows=0,
                                                   price_rows=0, fundamental_rows=0, rejected_rows=0,
                                                   collected_at=NIGHT))
    flat = state(ctx(session_factory, krx_calendar, NIGHT))
    with session_factory.begin() as db:
        db.execute(insert(PositionRow).values(user_id="night", dry_run=True, ticker="005930", quantity=10,
                                              cost=700_000, opened_on=SESSION.date(), high_water=70_000))
    holding = state(ctx(session_factory, krx_calendar, NIGHT))
    with session_factory.begin() as db:
        db.execute(insert(CollectedSession).values(date=NIGHT.date(), provider="simulated", stock_rows=0,
                                                   price_rows=0, fundamental_rows=0, rejected_rows=0,
                                                   collected_at=NIGHT))
    assert state(ctx(session_factory, krx_calendar, NIGHT)) != holding
    with session_factory.begin() as db:
        db.execute(delete(PositionRow).where(PositionRow.user_id == "night"))
    assert state(ctx(session_factory, krx_calendar, NIGHT)) == flat
