"""The monitoring tick's fingerprint: a paper account holding nothing, with no open
order, that the previous tick left as it is, is not ticked again; its own snapshot does
not count, a new equity or an order does."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert

from services.common.clock import FixedClock
from services.common.job_api import JobContext
from services.common.market_calendar import KRX_TZ
from services.trading_engine.models import OrderRow, PaperAccount, PortfolioSnapshot, PositionRow
from services.trading_engine.monitor import state
from tests.conftest import make_settings

TICK = datetime(2026, 11, 17, 10, 0, tzinfo=KRX_TZ)  # a Tuesday, in the session
CLOSE = datetime(2026, 11, 17, 15, 30, tzinfo=KRX_TZ)


def ctx(session_factory, krx_calendar, at: datetime, **settings: str) -> JobContext:
    return JobContext(job_name="position_monitoring", trading_date=at.date(), scheduled_for=at,
                      settings=make_settings(user_id="flat", **settings), session_factory=session_factory,
                      clock=FixedClock(at), calendar=krx_calendar, origin="schedule")


def open_account(session_factory) -> None:
    with session_factory.begin() as db:
        db.execute(insert(PaperAccount).values(user_id="flat", initial_cash=10_000_000, cash=10_000_000,
                                               opened_at=TICK.replace(day=16)))


def snapshot(session_factory, at: datetime, equity: int) -> None:
    with session_factory.begin() as db:
        db.execute(insert(PortfolioSnapshot).values(
            user_id="flat", dry_run=True, taken_at=at, trading_date=at.date(), cash=equity, settled_cash=equity,
            market_value=0, equity=equity, exposure=0.0, unrealised_pnl=0, positions=0,
            prices_observed=False))  # as a tick writes with nothing to price


def test_a_tick_of_a_flat_account_after_its_own_snapshot_has_the_same_fingerprint(session_factory, krx_calendar):
    open_account(session_factory)
    snapshot(session_factory, TICK.replace(day=16, hour=15, minute=30), 10_000_000)
    before = state(ctx(session_factory, krx_calendar, TICK))
    assert before is not None
    snapshot(session_factory, TICK, 10_000_000)  # what the 10:00 tick writes
    assert state(ctx(session_factory, krx_calendar, TICK.replace(minute=15))) == before


def test_a_new_peak_equity_or_an_open_order_changes_or_ends_the_fingerprint(session_factory, krx_calendar):
    open_account(session_factory)
    before = state(ctx(session_factory, krx_calendar, TICK))
    snapshot(session_factory, TICK, 10_500_000)
    peaked = state(ctx(session_factory, krx_calendar, TICK.replace(minute=15)))
    assert peaked not in (None, before)
    with session_factory.begin() as db:
        db.execute(insert(OrderRow).values(
            user_id="flat", client_order_id="flat-1", broker="paper", trading_date=TICK.date(), ticker="005930",
            side="buy", order_type="limit", quantity=1, limit_price=70_000, status="new", filled_quantity=0,
            reserved_cash=70_000, reason="test", dry_run=True, created_at=TICK, updated_at=TICK))
    assert state(ctx(session_factory, krx_calendar, TICK.replace(minute=15))) is None  # it may fill


def test_positions_the_closing_tick_and_live_always_tick(session_factory, krx_calendar):
    open_account(session_factory)
    assert state(ctx(session_factory, krx_calendar, CLOSE)) is None  # the day's closing snapshot
    assert state(ctx(session_factory, krx_calendar, TICK, dry_run="false")) is None
    with session_factory.begin() as db:
        db.execute(insert(PositionRow).values(user_id="flat", dry_run=True, ticker="005930", quantity=10,
                                              cost=700_000, opened_on=TICK.date(), high_water=70_000))
    assert state(ctx(session_factory, krx_calendar, TICK)) is None
