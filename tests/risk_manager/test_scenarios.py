"""The risk limits on a paper account, through the real jobs (SQLite and PostgreSQL).

Sessions 2026-11-19 (Thu), 11-20 (Fri), 11-23 (Mon). User ``u1`` opened a paper
account with 10,000,000 KRW and holds 800 x LOSS bought for 8,000,000 (10,000 each),
so cash is 2,000,000. Closes: LOSS 10,000 on 11-19, 9,600 on 11-20; WIN 20,000 both
days. The 11-19 close snapshot has equity 2,000,000 + 800 x 10,000 = 10,000,000.
WIN tops both watchlists (entry: limit 20,200); LOSS is on them too, so it is no exit.

At LOSS 9,600 equity is 2,000,000 + 800 x 9,600 = 9,680,000: a daily loss of 3.2%
against 10,000,000, past the 3% default limit. A peak of 12,000,000 puts that
9,680,000 19.33% below it, past the 15% total-loss limit.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from services.common.clock import FixedClock
from services.common.job_api import Account, JobContext, Outcome
from services.data_collector.models import CollectedSession, DailyPrice
from services.indicator_calculator.models import TechnicalIndicator
from services.risk_manager.assessment import assess
from services.risk_manager.halts import active_halt, halt_trading, resume_trading
from services.risk_manager.limits import RiskLimits
from services.risk_manager.models import RiskBreach
from services.trading_engine import engine, monitor, prices, risk_check
from services.trading_engine.broker import open_account
from services.trading_engine.gate import RiskGate
from services.trading_engine.history import account_state
from services.trading_engine.models import OrderRow, PaperAccount, PortfolioSnapshot, PositionRow, SignalRow
from services.trading_engine.order_book import submit
from services.trading_engine.orders import Balance, OrderRequest, OrderType, Side
from services.trading_engine.prices import Quotes
from services.watchlist_manager.models import WatchlistEntry, WatchlistRun
from tests.conftest import make_settings

KST = ZoneInfo("Asia/Seoul")
D18, D19, D20, D23 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 23)
USER = "u1"
CLOSES = {D19: {"LOSS": 10_000, "WIN": 20_000}, D20: {"LOSS": 9_600, "WIN": 20_000}}


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=KST)


def snapshot(day: date, when: datetime, equity: int) -> dict[str, Any]:
    return {"user_id": USER, "dry_run": True, "taken_at": when, "trading_date": day, "cash": 2_000_000,
            "settled_cash": 2_000_000, "market_value": equity - 2_000_000, "equity": equity, "exposure": 0.8,
            "unrealised_pnl": 0, "positions": 1, "prices_observed": True}


@pytest.fixture
def account(session_factory: Any) -> Any:
    with session_factory.begin() as session:
        c = session.connection()
        for day, closes in CLOSES.items():
            for ticker, close in closes.items():
                c.execute(insert(DailyPrice).values(
                    date=day, ticker=ticker, open=close, high=close, low=close, close=close, volume=1_000_000,
                    value=close * 1_000_000, change_pct=0.0, market_cap=close * 10**7, market="KOSPI", halted=False))
                c.execute(insert(TechnicalIndicator).values(date=day, ticker=ticker, sma_60=close * 0.9, rsi_14=60.0,
                                                            macd_hist=1.0, volume_ratio_20=1.0))
            for rank, ticker in ((1, "WIN"), (2, "LOSS")):
                c.execute(insert(WatchlistEntry).values(
                    user_id=USER, date=day, ticker=ticker, rank=rank, score=1 - rank / 10, trend=1.0, momentum=0.8,
                    volatility=0.5, liquidity=0.5, value=0.5, close=closes[ticker], entered_on=D19,
                    entry_close=closes[ticker]))
            c.execute(insert(WatchlistRun).values(user_id=USER, date=day, size=2, eligible=2))
            c.execute(insert(CollectedSession).values(date=day, provider="simulated", stock_rows=2, price_rows=2,
                                                      fundamental_rows=0, rejected_rows=0,
                                                      collected_at=at(day, 16, 0)))
        c.execute(insert(PaperAccount).values(user_id=USER, initial_cash=10_000_000, cash=2_000_000,
                                              opened_at=at(D19, 9, 0)))
        c.execute(insert(PositionRow).values(user_id=USER, dry_run=True, ticker="LOSS", quantity=800,
                                             cost=8_000_000, opened_on=D19, high_water=10_000))
        c.execute(insert(PortfolioSnapshot).values(snapshot(D19, at(D19, 15, 30), 10_000_000)))
    return session_factory


def context(factory: Any, calendar: Any, job: str, day: date, when: datetime, **settings: str) -> JobContext:
    values = {"portfolio_value": "10000000", "max_position_size_pct": "90", "user_id": USER, **settings}
    return JobContext(job_name=job, trading_date=day, scheduled_for=when, settings=make_settings(**values),
                      session_factory=factory, clock=FixedClock(when), calendar=calendar)


def tick(factory: Any, calendar: Any, monkeypatch: pytest.MonkeyPatch, day: date, when: datetime,
         prices: dict[str, int]) -> Any:
    monkeypatch.setattr(monitor, "current_quotes", lambda *args, **kwargs: Quotes(dict(prices), True))
    return monitor.run(context(factory, calendar, "position_monitoring", day, when))


def orders(factory: Any) -> list[Any]:
    with factory() as session:
        return list(session.execute(select(OrderRow.__table__).order_by(OrderRow.id)).all())


def breaches(factory: Any) -> list[Any]:
    with factory() as session:
        return list(session.execute(select(RiskBreach.__table__).order_by(RiskBreach.id)).all())


def try_to_buy(factory: Any, calendar: Any, day: date, when: datetime, ticker: str = "WIN") -> Any:
    """Any code path that places an order goes through the gate, as this does."""
    ctx = context(factory, calendar, "manual", day, when)
    with factory.begin() as session:
        c = session.connection()
        broker = open_account(ctx).broker(c, when)
        gate = RiskGate.open(ctx, c, broker, when, CLOSES[D20])
        request = OrderRequest(f"paper:{USER}:{day}:{ticker}:probe-{when:%H%M}", day, ticker, Side.BUY, 1,
                               OrderType.LIMIT, 20_200, reason="probe")
        return submit(broker, c, request, when, gate)


# --- the daily loss limit ----------------------------------------------------------------------------


def test_a_daily_loss_past_the_limit_blocks_new_entries_that_day_and_not_the_next(
        account: Any, krx_calendar: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # 08:45: no loss yet, the entry goes in
    signals = engine.run(context(account, krx_calendar, "signal_generation", D20, at(D20, 8, 45)))
    assert signals.status is Outcome.SUCCESS and signals.summary["orders"] == 1
    [entry] = orders(account)
    assert (entry.ticker, entry.side, entry.status) == ("WIN", "buy", "new")

    # 09:00: LOSS at 9,600 is a 3.2% daily loss; the open buy is cancelled before it could fill at 20,000
    first = tick(account, krx_calendar, monkeypatch, D20, at(D20, 9, 0), {"LOSS": 9_600, "WIN": 20_000})
    assert first.summary["entries_blocked"] is True and first.summary["cancelled"] == 1
    assert first.summary["fills"] == 0 and first.summary["positions"] == 1
    [entry] = orders(account)
    assert entry.status == "cancelled"
    assert "daily loss 3.2% reached ORCHESTRATOR_MAX_DAILY_LOSS_PCT 3%" in entry.reason
    [breach] = breaches(account)
    assert (breach.limit_name, breach.trading_date, breach.value, breach.threshold, breach.action,
            breach.checked_by) == ("max_daily_loss_pct", D20, 3.2, 3.0, "block_entries", "position_monitoring")
    assert (breach.metrics["equity"], breach.metrics["daily_pnl"]) == (9_680_000, -320_000)

    # 11:00: LOSS is back at 10,000 (no loss now), yet the rest of the session stays blocked
    monkeypatch.setattr(prices, "current_quotes", lambda *args, **kwargs: Quotes({"LOSS": 10_000}, True))
    check = risk_check.run(context(account, krx_calendar, "risk_checks", D20, at(D20, 11, 0)))
    assert check.status is Outcome.SUCCESS
    assert (check.summary["daily_pnl"], check.summary["entries_blocked"], check.summary["breaches"]) == (
        0, True, [])
    probe = try_to_buy(account, krx_calendar, D20, at(D20, 11, 5))
    assert probe.status.value == "rejected" and probe.reason.startswith("risk: new entries blocked for the session")

    # the close: LOSS at 9,600 is the session's last snapshot
    tick(account, krx_calendar, monkeypatch, D20, at(D20, 15, 30), {"LOSS": 9_600, "WIN": 20_000})

    # Monday: measured from Friday's close, nothing is lost; the entry goes in
    monday = engine.run(context(account, krx_calendar, "signal_generation", D23, at(D23, 8, 45)))
    assert monday.status is Outcome.SUCCESS and monday.summary["rejected"] == 0
    placed = [o for o in orders(account) if o.trading_date == D23]
    assert [(o.ticker, o.side, o.status) for o in placed] == [("WIN", "buy", "new")]
    assert len(breaches(account)) == 1


def test_a_breach_is_recorded_and_logged_once_a_day_however_often_it_is_seen(account: Any, krx_calendar: Any,
                                                                            caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="services.risk_manager.assessment"):
        for minute in (0, 30):  # night checks value LOSS at its stored 9,600 close
            risk_check.run(context(account, krx_calendar, "risk_checks", D20, at(D20, 20, minute)))
    [breach] = breaches(account)
    assert breach.checked_at == at(D20, 20, 0)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("risk limit breached")]
    assert len(logged) == 1, logged


# --- the total loss limit and the halt ---------------------------------------------------------------


def test_a_drawdown_past_the_total_limit_halts_every_job_until_resumed(
        account: Any, krx_calendar: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with account.begin() as session:
        session.execute(insert(PortfolioSnapshot).values(snapshot(D18, at(D18, 15, 30), 12_000_000)))
        session.execute(insert(PortfolioSnapshot).values(snapshot(D20, at(D20, 15, 30), 9_680_000)))

    # Friday night's check: 9,680,000 is 19.33% below the 12,000,000 peak
    check = risk_check.run(context(account, krx_calendar, "risk_checks", D20, at(D20, 20, 0)))
    assert check.status is Outcome.SUCCESS
    assert check.summary["halted"] is True and check.summary["peak_equity"] == 12_000_000
    assert check.summary["drawdown_pct"] == pytest.approx(19.3333)
    assert "max_total_loss_pct:drawdown" in check.summary["breaches"]
    with account() as session:
        halt = active_halt(session.connection(), USER)
    assert halt is not None and halt.halted_by == "risk_checks"
    assert halt.reason == "drawdown from the peak 19.3333% reached ORCHESTRATOR_MAX_TOTAL_LOSS_PCT 15%"

    # Monday: signal generation is skipped and places nothing
    signals = engine.run(context(account, krx_calendar, "signal_generation", D23, at(D23, 8, 45)))
    assert signals.status is Outcome.SKIPPED and signals.reason.startswith("trading halted: drawdown")
    assert orders(account) == []

    # monitoring keeps pricing and snapshotting; a stop loss (LOSS 9,400, 6% under cost) still sells
    first = tick(account, krx_calendar, monkeypatch, D23, at(D23, 9, 0), {"LOSS": 9_400, "WIN": 20_000})
    assert first.status is Outcome.SUCCESS and first.summary["halted"] is True
    assert first.summary["equity"] == 2_000_000 + 800 * 9_400 and first.summary["exits"] == 1
    assert [(o.ticker, o.side) for o in orders(account)] == [("LOSS", "sell")]
    with account() as session:
        assert session.scalar(select(PortfolioSnapshot.equity).where(
            PortfolioSnapshot.taken_at == at(D23, 9, 0))) == 9_520_000

    # no buy gets through in any job while halted
    probe = try_to_buy(account, krx_calendar, D23, at(D23, 9, 5))
    assert probe.status.value == "rejected" and probe.reason.startswith("risk: trading halted: drawdown")

    # a person resumes: the limits measure from the equity then, and signals trade again
    with account.begin() as session:
        assert resume_trading(session.connection(), USER, by="manual", at=at(D23, 9, 10)) is not None
    again = engine.run(context(account, krx_calendar, "signal_generation", D23, at(D23, 9, 15)))
    assert again.status is Outcome.SUCCESS
    assert [(o.ticker, o.status) for o in orders(account) if o.side == "buy"] == [
        ("WIN", "rejected"), ("WIN", "new")]  # the probe while halted, the entry after the resume
    # the first assessment after the resume (that signal run, at Friday's closes) set the baseline
    after = risk_check.run(context(account, krx_calendar, "risk_checks", D23, at(D23, 20, 0)))
    assert after.summary["halted"] is False and after.summary["baseline_equity"] == 9_680_000


def test_a_resumed_loss_halt_measures_from_the_equity_at_the_resume_even_without_a_new_snapshot(
        account: Any, krx_calendar: Any) -> None:
    with account.begin() as session:  # LOSS closed at 7,500 on Friday: equity 8,000,000, 20% down
        session.execute(DailyPrice.__table__.update().where(DailyPrice.date == D20, DailyPrice.ticker == "LOSS")
                        .values(close=7_500))
    first = risk_check.run(context(account, krx_calendar, "risk_checks", D20, at(D20, 20, 0)))
    assert first.summary["halted"] is True and first.summary["return_pct"] == -20.0
    with account.begin() as session:
        resume_trading(session.connection(), USER, by="manual", at=at(D20, 21, 0))
    later = risk_check.run(context(account, krx_calendar, "risk_checks", D20, at(D20, 22, 0)))
    assert later.summary["halted"] is False
    assert (later.summary["baseline_equity"], later.summary["peak_equity"], later.summary["drawdown_pct"]) == (
        8_000_000, 8_000_000, 0.0)


class LiveAccount:
    """A live account of the same user as the broker shows it: 3,000,000 KRW, flat."""

    account = Account(USER, dry_run=False)

    def balance(self) -> Balance:
        return Balance(3_000_000, None)


def test_after_a_resumed_loss_halt_each_mode_measures_from_its_own_equity(account: Any, krx_calendar: Any) -> None:
    with account.begin() as session:  # LOSS closed at 7,500 on Friday: equity 8,000,000, 20% down: halted
        session.execute(DailyPrice.__table__.update().where(DailyPrice.date == D20, DailyPrice.ticker == "LOSS")
                        .values(close=7_500))
    assert risk_check.run(context(account, krx_calendar, "risk_checks", D20, at(D20, 20, 0))).summary["halted"]
    with account.begin() as session:
        resume_trading(session.connection(), USER, by="manual", at=at(D20, 21, 0))
    paper = risk_check.run(context(account, krx_calendar, "risk_checks", D20, at(D20, 22, 0)))
    assert paper.summary["baseline_equity"] == 8_000_000  # the paper account's equity at the resume
    with account.begin() as session:
        c = session.connection()
        state = account_state(c, LiveAccount(), [], {}, D20)  # type: ignore[arg-type]
        live = assess(c, LiveAccount.account, state, RiskLimits.from_settings(make_settings(user_id=USER)), day=D20,
                      moment=at(D20, 22, 0), checked_by="risk_checks")
    assert (live.metrics.baseline_equity, live.metrics.drawdown_pct, live.halt) == (3_000_000, 0.0, None)


def test_resuming_a_manual_halt_forgives_no_loss(account: Any, krx_calendar: Any) -> None:
    with account.begin() as session:
        halt_trading(session.connection(), USER, "broker maintenance", by="manual", at=at(D20, 7, 0))
        resume_trading(session.connection(), USER, by="manual", at=at(D20, 8, 0))
    check = risk_check.run(context(account, krx_calendar, "risk_checks", D20, at(D20, 20, 0)))
    assert check.summary["baseline_equity"] == 10_000_000  # the paper account's initial cash
    assert check.summary["return_pct"] == -3.2


def test_a_loss_from_the_initial_cash_past_the_total_limit_halts(account: Any, krx_calendar: Any) -> None:
    with account.begin() as session:  # no snapshot shows a peak; LOSS closed at 8,000: equity 8,400,000
        session.execute(PortfolioSnapshot.__table__.delete())
        session.execute(DailyPrice.__table__.update().where(DailyPrice.date == D20, DailyPrice.ticker == "LOSS")
                        .values(close=8_000))
    check = risk_check.run(context(account, krx_calendar, "risk_checks", D20, at(D20, 20, 0)))
    assert check.summary["halted"] is True
    assert set(check.summary["breaches"]) == {"max_total_loss_pct:baseline", "max_total_loss_pct:drawdown",
                                              "max_daily_loss_pct"}
    assert {(b.limit_name, b.subject, b.value) for b in breaches(account)} == {
        ("max_total_loss_pct", "baseline", 16.0), ("max_total_loss_pct", "drawdown", 16.0),
        ("max_daily_loss_pct", "", 16.0)}


def test_a_risk_check_in_signal_generation_halts_and_skips_the_run(account: Any, krx_calendar: Any) -> None:
    with account.begin() as session:
        session.execute(insert(PortfolioSnapshot).values(snapshot(D18, at(D18, 15, 30), 12_500_000)))
    result = engine.run(context(account, krx_calendar, "signal_generation", D20, at(D20, 8, 45)))
    assert result.status is Outcome.SKIPPED and result.reason.startswith("trading halted: drawdown from the peak 20%")
    assert orders(account) == []
    with account() as session:
        halt = active_halt(session.connection(), USER)
    assert halt is not None and halt.halted_by == "signal_generation"


def test_a_halt_survives_a_new_connection_and_a_manual_halt_is_kept_until_resumed(
        account: Any, krx_calendar: Any) -> None:
    with account.begin() as session:
        _, made = halt_trading(session.connection(), USER, "broker maintenance", by="manual", at=at(D20, 7, 0))
    assert made
    with account.begin() as session:  # a second halt keeps the first one's reason
        current, made = halt_trading(session.connection(), USER, "other", by="risk_checks", at=at(D20, 8, 0))
    assert not made and current.reason == "broker maintenance"
    result = engine.run(context(account, krx_calendar, "signal_generation", D20, at(D20, 8, 45)))
    assert result.status is Outcome.SKIPPED and result.reason.startswith("trading halted: broker maintenance")


# --- the gate's position limits ----------------------------------------------------------------------


def test_the_gate_refuses_a_buy_past_the_position_count_or_size(account: Any, krx_calendar: Any) -> None:
    when = at(D20, 8, 50)
    ctx = context(account, krx_calendar, "manual", D20, when, max_position_size_pct="10", max_positions="1")
    with account.begin() as session:
        c = session.connection()
        broker = open_account(ctx).broker(c, when)
        gate = RiskGate.open(ctx, c, broker, when, CLOSES[D19])

        def buy(ticker: str, quantity: int, price: int) -> Any:
            request = OrderRequest(f"paper:{USER}:{D20}:{ticker}:{quantity}", D20, ticker, Side.BUY, quantity,
                                   OrderType.LIMIT, price, reason="test")
            return submit(broker, c, request, when, gate)

        new_ticker = buy("WIN", 1, 20_200)
        too_large = buy("LOSS", 1, 10_000)  # LOSS is already 80% of equity
    assert new_ticker.status.value == "rejected"
    assert new_ticker.reason == "risk: ORCHESTRATOR_MAX_POSITIONS (1) reached: 1 positions held or being bought"
    assert too_large.status.value == "rejected"
    assert too_large.reason == ("risk: LOSS would hold 8010000 KRW, over ORCHESTRATOR_MAX_POSITION_SIZE_PCT (10%) "
                                "of equity 10000000 KRW")
    assert [o.status for o in orders(account)] == ["rejected", "rejected"]


def test_an_exit_frees_its_slot_once_sold_and_the_next_entries_take_it(
        account: Any, krx_calendar: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with account.begin() as session:  # LOSS leaves Thursday's watchlist: it is sold at the open
        session.execute(WatchlistEntry.__table__.delete().where(WatchlistEntry.ticker == "LOSS"))
    result = engine.run(context(account, krx_calendar, "signal_generation", D20, at(D20, 8, 45), max_positions="1"))
    assert result.status is Outcome.SUCCESS and result.summary["rejected"] == 0
    # the sell may not fill (or fill in part): until it has, LOSS keeps the one slot
    assert [(o.ticker, o.side, o.status) for o in orders(account)] == [("LOSS", "sell", "new")]
    with account() as session:
        [reason] = session.scalars(select(SignalRow.reason).where(SignalRow.ticker == "WIN")).all()
    assert reason.endswith("; not traded: ORCHESTRATOR_MAX_POSITIONS (1) reached")
    tick(account, krx_calendar, monkeypatch, D20, at(D20, 9, 0), {"LOSS": 9_600, "WIN": 20_000})
    assert [(o.ticker, o.status) for o in orders(account)] == [("LOSS", "filled")]
    result = engine.run(context(account, krx_calendar, "signal_generation", D23, at(D23, 8, 45), max_positions="1"))
    assert result.status is Outcome.SUCCESS and result.summary["rejected"] == 0
    assert [(o.ticker, o.side, o.status) for o in orders(account)][1:] == [("WIN", "buy", "new")]


def test_a_sell_that_has_not_sold_the_whole_holding_keeps_its_position_slot(account: Any, krx_calendar: Any) -> None:
    when = at(D20, 9, 0)
    ctx = context(account, krx_calendar, "manual", D20, when, max_positions="1")

    def probe(name: str) -> Any:  # a WIN buy while LOSS (800 held) takes the one slot
        with account.begin() as session:
            c = session.connection()
            broker = open_account(ctx).broker(c, when)
            gate = RiskGate.open(ctx, c, broker, when, CLOSES[D19])
            return submit(broker, c, OrderRequest(f"paper:{USER}:{D20}:WIN:{name}", D20, "WIN", Side.BUY, 1,
                                                        OrderType.LIMIT, 20_200, reason="probe"), when, gate)

    def sell(name: str, quantity: int) -> Any:
        with account.begin() as session:
            c = session.connection()
            broker = open_account(ctx).broker(c, at(D20, 8, 50))
            gate = RiskGate.open(ctx, c, broker, at(D20, 8, 50), CLOSES[D19])
            return submit(broker, c, OrderRequest(f"paper:{USER}:{D20}:LOSS:{name}", D20, "LOSS", Side.SELL,
                                                        quantity, OrderType.MARKET, reason="test"), when, gate)

    part = sell("part", 300)  # a sell of part of the holding
    assert probe("beside-a-part-sell").reason == ("risk: ORCHESTRATOR_MAX_POSITIONS (1) reached: 1 positions held "
                                                  "or being bought")
    with account.begin() as session:
        open_account(ctx).broker(session.connection(), when).cancel(part.order_id)
    sell("all", 800)  # a sell of the whole holding, of which the open fills 300 (its volume cap)
    with account.begin() as session:
        [fill] = open_account(ctx).broker(session.connection(), when).match({"LOSS": 9_600}, when, {"LOSS": 300})
    assert fill.quantity == 300
    [*_, whole] = orders(account)
    assert (whole.status, whole.filled_quantity) == ("partially_filled", 300)  # 500 held, 500 still being sold
    refused = probe("beside-a-partly-filled-sell")
    assert (refused.status.value, refused.reason) == (
        "rejected", "risk: ORCHESTRATOR_MAX_POSITIONS (1) reached: 1 positions held or being bought")


def test_a_position_past_the_size_or_count_limit_is_recorded_as_a_warning(account: Any, krx_calendar: Any) -> None:
    check = risk_check.run(context(account, krx_calendar, "risk_checks", D20, at(D20, 20, 0),
                                max_position_size_pct="50", max_positions="1", max_daily_loss_pct="5"))
    assert check.summary["breaches"] == ["max_position_size_pct:LOSS"]  # 7,680,000 of 9,680,000: 79.34%
    [breach] = breaches(account)
    assert (breach.subject, breach.value, breach.threshold, breach.action) == ("LOSS", 79.3388, 50.0, "warn")
    assert check.summary["halted"] is False and check.summary["entries_blocked"] is False
