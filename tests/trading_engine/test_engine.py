"""signal_generation and position_monitoring end to end on a database (SQLite and
PostgreSQL), from hand-written previous-session data; every figure worked by hand.

Previous session 2026-11-19, trading date 2026-11-20 (Fri). Paper account of user
``u1``: opened with 10,000,000 KRW, holds 100 x HELD bought for 1,000,000 KRW, so
cash 9,000,000.

    ticker  on the list  close 11-19  trend  momentum  rsi   sma_60
    WIN     rank 1       20,000       1.0    0.8       60    18,000
    LATE    rank 2       30,000       0.5    0.8       60    28,000   (trend fails)
    HELD    -            9,000        -      -         -     9,500    (5% under cost 10,000: stop)

Equity = 9,000,000 + 100 x 9,000 = 9,900,000; 5% = 495,000 per position. WIN's entry
limit is 20,000 x 1.01 = 20,200 (on the 50-KRW grid); 24 shares cost 484,800 +
72 commission (0.015% floored) = 484,872; 25 would cost 505,075 > 495,000.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from services.common.clock import FixedClock
from services.common.job_api import JobContext, Outcome
from services.data_collector.models import DailyPrice
from services.indicator_calculator.models import TechnicalIndicator
from services.trading_engine import engine, monitor
from services.trading_engine.broker import open_account
from services.trading_engine.models import (
    ClosedTrade,
    FillRow,
    OrderRow,
    PaperAccount,
    PortfolioSnapshot,
    PositionRow,
    SignalRow,
    SignalRun,
)
from services.trading_engine.paper import PaperBroker
from services.trading_engine.prices import Quotes
from services.watchlist_manager.models import WatchlistEntry, WatchlistRun
from tests.conftest import make_settings

KST = ZoneInfo("Asia/Seoul")
D19, D20 = date(2026, 11, 19), date(2026, 11, 20)
USER = "u1"


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=KST)


@pytest.fixture
def market(session_factory: Any) -> Any:
    return seed_market(session_factory)


def seed_market(session_factory: Any) -> Any:
    """The previous session's data and the paper account of the module's doc."""
    with session_factory.begin() as session:
        c = session.connection()
        for ticker, close, sma_60 in (("WIN", 20_000, 18_000.0), ("LATE", 30_000, 28_000.0),
                                      ("HELD", 9_000, 9_500.0)):
            c.execute(insert(DailyPrice).values(date=D19, ticker=ticker, open=close, high=close, low=close,
                                                close=close, volume=1_000_000, value=close * 1_000_000,
                                                change_pct=0.0, market_cap=close * 10**7, market="KOSPI",
                                                halted=False))
            c.execute(insert(TechnicalIndicator).values(date=D19, ticker=ticker, sma_60=sma_60, rsi_14=60.0,
                                                        macd_hist=1.0, volume_ratio_20=1.0))
        for rank, ticker, trend in ((1, "WIN", 1.0), (2, "LATE", 0.5)):
            c.execute(insert(WatchlistEntry).values(
                user_id=USER, date=D19, ticker=ticker, rank=rank, score=1 - rank / 10, trend=trend, momentum=0.8,
                volatility=0.5, liquidity=0.5, value=0.5, close=20_000, entered_on=D19, entry_close=20_000))
        c.execute(insert(WatchlistRun).values(user_id=USER, date=D19, size=2, eligible=3))
        c.execute(insert(PaperAccount).values(user_id=USER, initial_cash=10_000_000, cash=9_000_000,
                                              opened_at=at(D19, 9, 0)))
        c.execute(insert(PositionRow).values(user_id=USER, dry_run=True, ticker="HELD", quantity=100,
                                             cost=1_000_000, opened_on=D19, high_water=10_000))
    return session_factory


def context(session_factory: Any, calendar: Any, job: str, when: datetime, **settings: Any) -> JobContext:
    values = {"portfolio_value": "10000000", "user_id": USER, **settings}
    return JobContext(job_name=job, trading_date=D20, scheduled_for=when, settings=make_settings(**values),
                      session_factory=session_factory, clock=FixedClock(when), calendar=calendar)


def rows(session_factory: Any, table: Any, *where: Any) -> list[Any]:
    with session_factory() as session:
        return list(session.execute(select(table.__table__).where(*where)).all())


def test_pre_open_signals_are_stored_sized_and_sent_as_paper_orders(market: Any, krx_calendar: Any) -> None:
    result = engine.run(context(market, krx_calendar, "signal_generation", at(D20, 8, 45)))
    assert result.status is Outcome.SUCCESS
    assert result.summary == {"watchlist_date": "2026-11-19", "entries": 1, "exits": 1, "orders": 2,
                              "rejected": 0, "sizing": "fixed", "dry_run": True}
    signals = {(s.ticker, s.kind): s for s in rows(market, SignalRow)}
    assert set(signals) == {("WIN", "entry"), ("HELD", "exit")}
    assert signals["WIN", "entry"].quantity == 24 and signals["WIN", "entry"].reference_price == 20_000
    assert signals["HELD", "exit"].reason.startswith("stop loss")
    orders = {o.ticker: o for o in rows(market, OrderRow)}
    assert (orders["WIN"].side, orders["WIN"].order_type, orders["WIN"].quantity, orders["WIN"].limit_price,
            orders["WIN"].reserved_cash, orders["WIN"].status) == ("buy", "limit", 24, 20_200, 484_872, "new")
    assert (orders["HELD"].side, orders["HELD"].order_type, orders["HELD"].quantity) == ("sell", "market", 100)
    assert all(o.dry_run for o in orders.values())


def test_a_second_run_for_the_same_date_places_nothing_twice(market: Any, krx_calendar: Any) -> None:
    ctx = context(market, krx_calendar, "signal_generation", at(D20, 8, 45))
    engine.run(ctx)
    again = engine.run(ctx)
    assert again.status is Outcome.SUCCESS and again.summary["already_generated"] == 1
    assert len(rows(market, OrderRow)) == 2 and len(rows(market, SignalRow)) == 2


def test_a_signal_run_that_fails_midway_leaves_the_database_as_it_was(
        market: Any, krx_calendar: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.trading_engine import order_book

    before = {table: rows(market, table) for table in (SignalRow, OrderRow, PaperAccount, PositionRow)}
    placed = []

    def fail_on_the_second_order(broker: Any, *args: Any, **kwargs: Any) -> Any:
        if placed:
            raise RuntimeError("broker went away")
        placed.append(order_book.submit(broker, *args, **kwargs))
        return placed[-1]

    monkeypatch.setattr(engine, "submit", fail_on_the_second_order)
    with pytest.raises(RuntimeError, match="broker went away"):
        engine.run(context(market, krx_calendar, "signal_generation", at(D20, 8, 45)))
    assert len(placed) == 1  # the exit went in before the entry failed...
    # ...and was rolled back with everything else
    assert {table: rows(market, table) for table in before} == before
    assert rows(market, SignalRun) == []


def test_signals_skip_when_the_previous_watchlist_is_missing(session_factory: Any, krx_calendar: Any) -> None:
    # the runner produces it first (tests/orchestrator/test_needs.py); the job itself only reads
    ctx = context(session_factory, krx_calendar, "signal_generation", at(D20, 8, 45))
    result = engine.run(ctx)
    assert result.status is Outcome.SKIPPED
    assert result.reason == "input missing: no watchlist for 2026-11-19"


def tick(monkeypatch: pytest.MonkeyPatch, session_factory: Any, calendar: Any, when: datetime,
         prices: dict[str, int]) -> Any:
    monkeypatch.setattr(monitor, "current_quotes", lambda *args, **kwargs: Quotes(dict(prices), True))
    return monitor.run(context(session_factory, calendar, "position_monitoring", when))


def test_the_first_tick_fills_the_pre_open_orders_and_snapshots_the_portfolio(
        market: Any, krx_calendar: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.run(context(market, krx_calendar, "signal_generation", at(D20, 8, 45)))
    result = tick(monkeypatch, market, krx_calendar, at(D20, 9, 0), {"HELD": 8_900, "WIN": 20_100})
    assert result.status is Outcome.SUCCESS and result.summary["fills"] == 2
    fills = {f.ticker: f for f in rows(market, FillRow)}
    # HELD: 100 x 8,900 = 890,000; commission 133 (133.5 floored); 2026 tax 0.20% = 1,780
    assert (fills["HELD"].price, fills["HELD"].commission, fills["HELD"].tax) == (8_900, 133, 1_780)
    # WIN: a limit buy fills at its limit 20,200 when the price (20,100) trades through it
    assert (fills["WIN"].price, fills["WIN"].quantity, fills["WIN"].commission, fills["WIN"].tax) == (
        20_200, 24, 72, 0)
    assert fills["WIN"].settles_on == date(2026, 11, 24)  # T+2 sessions: Mon 23, Tue 24
    assert all(f.dry_run for f in fills.values())
    # 9,000,000 + 888,087 - 484,872 = 9,403,215
    account = rows(market, PaperAccount)[0]
    assert account.cash == 9_403_215
    trade = rows(market, ClosedTrade)[0]
    assert (trade.ticker, trade.cost, trade.proceeds, trade.pnl) == ("HELD", 1_000_000, 888_087, -111_913)
    snapshot = rows(market, PortfolioSnapshot)[0]
    # market value 24 x 20,100 = 482,400; equity 9,885,615; unrealised 482,400 - 484,872
    assert (snapshot.cash, snapshot.market_value, snapshot.equity, snapshot.unrealised_pnl,
            snapshot.positions) == (9_403_215, 482_400, 9_885_615, -2_472, 1)
    assert snapshot.exposure == pytest.approx(482_400 / 9_885_615, abs=1e-6)
    assert snapshot.dry_run and snapshot.prices_observed


def test_an_intraday_stop_sells_at_the_next_observed_price(
        market: Any, krx_calendar: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.run(context(market, krx_calendar, "signal_generation", at(D20, 8, 45)))
    tick(monkeypatch, market, krx_calendar, at(D20, 9, 0), {"HELD": 8_900, "WIN": 20_100})
    # average cost 484,872 / 24 = 20,203; stop at 95% = 19,192.9: 18,000 is below
    stopped = tick(monkeypatch, market, krx_calendar, at(D20, 9, 15), {"WIN": 18_000})
    assert stopped.summary["exits"] == 1 and stopped.summary["fills"] == 0
    signal = [s for s in rows(market, SignalRow) if s.ticker == "WIN" and s.kind == "exit"][0]
    assert signal.source == "intraday" and signal.reason.startswith("stop loss")
    sold = tick(monkeypatch, market, krx_calendar, at(D20, 9, 30), {"WIN": 18_100})
    assert sold.summary["fills"] == 1 and sold.summary["positions"] == 0
    sale = [f for f in rows(market, FillRow) if f.ticker == "WIN" and f.side == "sell"][0]
    assert sale.price == 18_100


def test_the_closing_tick_expires_unfilled_limit_orders(
        market: Any, krx_calendar: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.run(context(market, krx_calendar, "signal_generation", at(D20, 8, 45)))
    tick(monkeypatch, market, krx_calendar, at(D20, 9, 0), {"HELD": 8_900, "WIN": 21_000})  # above the limit
    closing = tick(monkeypatch, market, krx_calendar, at(D20, 15, 30), {"WIN": 20_500})
    assert closing.summary["expired"] == 1
    win = [o for o in rows(market, OrderRow) if o.ticker == "WIN"][0]
    assert (win.status, win.filled_quantity, win.reserved_cash) == ("cancelled", 0, 0)
    assert rows(market, PaperAccount)[0].cash == 9_000_000 + 888_087


def test_a_restarted_broker_resumes_the_same_account(
        market: Any, krx_calendar: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.run(context(market, krx_calendar, "signal_generation", at(D20, 8, 45)))
    tick(monkeypatch, market, krx_calendar, at(D20, 9, 0), {"HELD": 8_900, "WIN": 20_100})
    ctx = context(market, krx_calendar, "position_monitoring", at(D20, 10, 0))
    with market() as session:
        broker = open_account(ctx).broker(session.connection())
        assert [(p.ticker, p.quantity, p.cost) for p in broker.positions()] == [("WIN", 24, 484_872)]
        assert broker.cash().available == 9_403_215
        # both settle on the 24th: 9,403,215 - (888,087 proceeds - 484,872 payment) = 9,000,000
        assert broker.cash().settled == 9_000_000


def test_monitoring_outside_a_session_is_skipped(market: Any, krx_calendar: Any) -> None:
    ctx = context(market, krx_calendar, "position_monitoring", at(D20, 9, 0))
    saturday = JobContext(**{**ctx.__dict__, "trading_date": date(2026, 11, 21)})
    result = monitor.run(saturday)
    assert result.status is Outcome.SKIPPED and "not a session" in (result.reason or "")


# --- dry run never reaches the live adapter ----------------------------------------------------------


def block_live_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any import of the KIS adapter fail, even if another test imported it."""
    import services.trading_engine as package

    monkeypatch.setitem(sys.modules, "services.trading_engine.kis", None)
    monkeypatch.delattr(package, "kis", raising=False)


LIVE_SETTINGS = {"dry_run": "false", "kis_app_key": "k" * 36, "kis_app_secret": "s" * 180,
                 "kis_account": "12345678-01", "kis_environment": "live"}


def test_dry_run_settings_never_import_the_live_adapter(market: Any, krx_calendar: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    block_live_adapter(monkeypatch)
    ctx = context(market, krx_calendar, "signal_generation", at(D20, 8, 45), **{**LIVE_SETTINGS, "dry_run": "true"})
    with market() as session:
        assert isinstance(open_account(ctx).broker(session.connection()), PaperBroker)
    result = engine.run(ctx)
    assert result.status is Outcome.SUCCESS and result.summary["dry_run"] is True
    assert all(o.dry_run for o in rows(market, OrderRow))


def test_a_context_takes_its_account_from_the_settings_only(market: Any, krx_calendar: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    block_live_adapter(monkeypatch)
    paper = context(market, krx_calendar, "signal_generation", at(D20, 8, 45))
    with pytest.raises(TypeError):  # no field to name another user or mode than the settings'
        JobContext(**{**paper.__dict__, "dry_run": False})
    with pytest.raises(TypeError):
        JobContext(**{**paper.__dict__, "user_id": "mallory"})
    assert (paper.account.user_id, paper.account.dry_run) == (USER, True)
    live = context(market, krx_calendar, "signal_generation", at(D20, 8, 45), **LIVE_SETTINGS)
    with market() as session, pytest.raises(ImportError):
        open_account(live).broker(session.connection())
