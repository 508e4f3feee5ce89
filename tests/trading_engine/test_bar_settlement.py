"""Settling a paper account on daily bars (a provider without intraday prices): the
session's orders fill on the path open -> low -> high -> close, held positions take
their price exits at the level crossed, unfilled limit orders expire, a split changes
the shares held, and a settled session is never settled again.

Commission 0.015% (floored), sell tax 0.15% (2025, both markets); stop loss 5%, take
profit 15%, trailing stop 8%. Expected values are worked out in the comments."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import Connection, insert, select

from services.common.clock import FixedClock
from services.common.market_calendar import KRX_TZ, MarketCalendar
from services.data_collector.models import CollectedSession, DailyPrice
from services.trading_engine.bar_settlement import settle_daily_bars
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.models import FillRow, OrderRow, PaperAccount, PortfolioSnapshot, SignalRow
from services.trading_engine.orders import OrderRequest, OrderStatus, OrderType, Side
from services.trading_engine.paper import PaperBroker, Pricing
from services.trading_engine.signals import SignalRules
from tests.conftest import make_settings

USER = "bars"
A, B, C = "005930", "000660", "035720"
RULES = SignalRules((), stop_loss_pct=5.0, take_profit_pct=15.0, trailing_stop_pct=8.0)
MONDAY, TUESDAY, WEDNESDAY, THURSDAY = date(2025, 9, 29), date(2025, 9, 30), date(2025, 10, 1), date(2025, 10, 2)


def kst(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=KRX_TZ)


def store_bars(connection: Connection, day: date, bars: dict[str, tuple[int, int, int, int, float]],
               market: str = "KOSPI") -> None:
    """``{ticker: (open, high, low, close, change_pct)}``, a million shares traded each."""
    connection.execute(insert(DailyPrice), [
        {"date": day, "ticker": ticker, "open": o, "high": h, "low": low, "close": c, "volume": 1_000_000,
         "value": c * 1_000_000, "change_pct": change, "market_cap": c * 10_000_000, "market": market,
         "halted": False} for ticker, (o, h, low, c, change) in bars.items()])
    connection.execute(insert(CollectedSession).values(
        date=day, provider="pykrx", stock_rows=len(bars), price_rows=len(bars), fundamental_rows=0,
        rejected_rows=0, collected_at=kst(day, 16)))


class Account:
    def __init__(self, connection: Connection, calendar: MarketCalendar, opened: datetime) -> None:
        self.connection, self.calendar = connection, calendar
        self.clock = FixedClock(opened)
        self.broker_at(self.clock).paper_account()

    def broker_at(self, clock: FixedClock) -> PaperBroker:
        return PaperBroker(self.connection, user_id=USER, fees=FeeSchedule.from_settings(make_settings()),
                           calendar=self.calendar, clock=clock, initial_cash=10_000_000, pricing=Pricing.DAILY_BARS)

    def place(self, at: datetime, day: date, ticker: str, side: Side, quantity: int, limit: int | None = None) -> None:
        self.clock.set(at)
        kind = OrderType.MARKET if limit is None else OrderType.LIMIT
        order = self.broker_at(self.clock).place_order(
            OrderRequest(f"{day}:{ticker}:{side.value}", day, ticker, side, quantity, kind, limit))
        assert order.status is OrderStatus.NEW, order.reason

    def settle(self, now: datetime) -> list[date]:
        return settle_daily_bars(self.connection, self.broker_at, self.calendar, RULES, now).sessions

    def fills(self, day: date) -> list[tuple[str, str, int, int, datetime]]:
        rows = self.connection.execute(select(FillRow.ticker, FillRow.side, FillRow.quantity, FillRow.price,
                                              FillRow.filled_at).where(FillRow.trade_date == day)
                                       .order_by(FillRow.id)).all()
        return [(t, s, q, p, at.astimezone(KRX_TZ).replace(microsecond=0)) for t, s, q, p, at in rows]


@pytest.fixture
def account(connection: Connection, krx_calendar: MarketCalendar) -> Account:
    store_bars(connection, MONDAY, {A: (10_000, 10_000, 10_000, 10_000, 0.0), B: (20_000, 20_000, 20_000, 20_000, 0.0),
                                    C: (5_300, 5_300, 5_300, 5_300, 0.0)})
    store_bars(connection, TUESDAY, {A: (10_000, 10_200, 9_900, 10_100, 1.0), B: (20_000, 20_000, 20_000, 20_000, 0.0),
                                     C: (5_300, 5_300, 5_300, 5_300, 0.0)})
    account = Account(connection, krx_calendar, kst(TUESDAY, 8))
    account.place(kst(TUESDAY, 8, 45), TUESDAY, A, Side.BUY, 100)  # a pre-open market buy
    return account


def test_a_pre_open_market_order_fills_at_the_open_once_the_bar_is_stored(account: Account):
    assert account.settle(kst(TUESDAY, 15, 0)) == []  # the session is not over
    assert account.settle(kst(WEDNESDAY, 8, 45)) == [TUESDAY]
    assert account.fills(TUESDAY) == [(A, "buy", 100, 10_000, kst(TUESDAY, 9))]


def test_a_session_settles_limits_exits_and_expiry_on_the_path(account: Account, connection: Connection):
    account.settle(kst(WEDNESDAY, 8, 30))  # Tuesday: A bought 100 at 10,000 (cost 1,000,150)
    store_bars(connection, WEDNESDAY, {
        A: (10_050, 10_100, 9_400, 9_600, -4.95),  # average 10,001.5: stop 9,501.4 -> 9,500 on the way down
        B: (20_500, 20_800, 19_800, 20_300, 1.5),  # the limit 20,000 lies inside [19,800, 20,800]
        C: (5_200, 5_400, 5_100, 5_300, 0.0),  # the limit 5,000 is below the low
    })
    account.place(kst(WEDNESDAY, 8, 45), WEDNESDAY, B, Side.BUY, 10, limit=20_000)
    account.place(kst(WEDNESDAY, 8, 45), WEDNESDAY, C, Side.BUY, 10, limit=5_000)

    assert account.settle(kst(THURSDAY, 8, 45)) == [WEDNESDAY]

    # at the low point (11:10): B's limit fills, then A's stop at its level, a moment later
    assert account.fills(WEDNESDAY) == [(B, "buy", 10, 20_000, kst(WEDNESDAY, 11, 10)),
                                        (A, "sell", 100, 9_500, kst(WEDNESDAY, 11, 10))]
    c_order = connection.execute(select(OrderRow.status, OrderRow.reason).where(OrderRow.ticker == C)).one()
    assert c_order.status == OrderStatus.CANCELLED.value and "expired at the close" in c_order.reason
    exit_signal = connection.execute(select(SignalRow.source, SignalRow.reason).where(SignalRow.ticker == A)).one()
    assert exit_signal.source == "daily bar" and exit_signal.reason.startswith("stop loss: 9500")
    # cash: 10,000,000 - 1,000,150 (A) - 200,030 (B: 200,000 + 30) + 950,000 - 142 - 1,425 (A sold:
    # commission 142, tax 0.15% = 1,425) = 9,748,253; B valued at its close: 10 x 20,300
    snapshot = connection.execute(select(PortfolioSnapshot.cash, PortfolioSnapshot.market_value,
                                         PortfolioSnapshot.equity, PortfolioSnapshot.taken_at).where(
        PortfolioSnapshot.trading_date == WEDNESDAY)).one()
    assert tuple(snapshot[:3]) == (9_748_253, 203_000, 9_951_253)
    assert snapshot.taken_at == kst(WEDNESDAY, 15, 30)
    assert connection.scalar(select(PaperAccount.bars_settled_through)) == WEDNESDAY


def test_a_settled_session_is_never_settled_again(account: Account, connection: Connection):
    assert account.settle(kst(WEDNESDAY, 8, 45)) == [TUESDAY]
    assert account.settle(kst(WEDNESDAY, 9, 0)) == []
    assert account.settle(kst(WEDNESDAY, 16, 0)) == []  # Wednesday's bar is not stored yet
    assert len(account.fills(TUESDAY)) == 1


def test_a_split_multiplies_the_shares_held_and_cancels_the_days_orders(account: Account, connection: Connection):
    account.settle(kst(WEDNESDAY, 8, 30))  # A: 100 shares, cost 1,000,150, high-water 10,200
    # 50-for-1: previous close 10,100, base price 202; close 206 = +1.98%: 10,100 * 1.0198 / 206 = 50.0
    store_bars(connection, WEDNESDAY, {A: (202, 210, 200, 206, 1.98), B: (20_000, 20_000, 20_000, 20_000, 0.0),
                                       C: (5_300, 5_300, 5_300, 5_300, 0.0)})
    account.place(kst(WEDNESDAY, 8, 45), WEDNESDAY, A, Side.SELL, 50, limit=10_500)  # priced before the split

    account.settle(kst(THURSDAY, 8, 45))

    broker = account.broker_at(FixedClock(kst(THURSDAY, 9)))
    [position] = broker.positions()
    # the high-water mark 10,200 / 50 = 204, then raised to the day's high 210
    assert (position.ticker, position.quantity, position.cost, position.high_water) == (A, 5_000, 1_000_150, 210)
    [order] = [o for o in broker.orders(WEDNESDAY) if o.ticker == A]
    assert order.status is OrderStatus.CANCELLED and "50 for 1" in order.reason
    assert account.fills(WEDNESDAY) == []  # average 200.03: stop 190.03, take profit 230.03 - neither reached


def test_a_limit_buy_the_open_trades_through_fills_at_the_open(account: Account, connection: Connection):
    account.settle(kst(WEDNESDAY, 8, 30))
    store_bars(connection, WEDNESDAY, {A: (10_100, 10_200, 10_000, 10_100, 0.0),
                                       B: (20_000, 20_000, 20_000, 20_000, 0.0),
                                       C: (5_200, 5_300, 5_150, 5_250, -0.94)})
    account.place(kst(WEDNESDAY, 8, 45), WEDNESDAY, C, Side.BUY, 10, limit=5_400)  # above the whole bar

    account.settle(kst(THURSDAY, 8, 45))

    assert account.fills(WEDNESDAY) == [(C, "buy", 10, 5_200, kst(WEDNESDAY, 9))]  # the open, not 5,400


@pytest.mark.parametrize(("market", "limit"), [("KOSPI", 150_500), ("KOSDAQ", 150_100)])
def test_a_paper_limit_goes_on_its_markets_tick_grid_of_the_day(connection: Connection, krx_calendar: MarketCalendar,
                                                                market: str, limit: int):
    # 2021: KOSPI quoted 100,000-500,000 in 500-KRW ticks, KOSDAQ everything from 50,000 in 100s
    store_bars(connection, date(2021, 1, 21), {A: (150_000, 150_000, 150_000, 150_000, 0.0)}, market)
    account = Account(connection, krx_calendar, kst(date(2021, 1, 22), 8))
    account.place(kst(date(2021, 1, 22), 8, 45), date(2021, 1, 22), A, Side.BUY, 1, limit=150_050)
    assert connection.scalar(select(OrderRow.limit_price)) == limit


def test_an_order_placed_during_the_session_sees_the_close_only(account: Account, connection: Connection):
    account.settle(kst(WEDNESDAY, 8, 30))
    store_bars(connection, WEDNESDAY, {A: (10_100, 10_200, 10_000, 10_100, 0.0),
                                       B: (20_000, 20_000, 20_000, 20_000, 0.0),
                                       C: (5_000, 5_050, 4_900, 5_000, -5.66)})
    # placed at 10:00 (a manual run): where the price was then is unknown; the close is a price after it
    account.place(kst(WEDNESDAY, 10), WEDNESDAY, C, Side.BUY, 10, limit=5_400)

    account.settle(kst(THURSDAY, 8, 45))

    assert account.fills(WEDNESDAY) == [(C, "buy", 10, 5_000, kst(WEDNESDAY, 15, 30))]  # not 5,400, not the low


def test_a_halted_holding_is_valued_at_its_stored_close_in_the_settled_snapshot(account: Account,
                                                                               connection: Connection):
    account.settle(kst(WEDNESDAY, 8, 30))  # A: 100 shares at 10,000
    store_bars(connection, WEDNESDAY, {B: (20_000, 20_000, 20_000, 20_000, 0.0),
                                       C: (5_300, 5_300, 5_300, 5_300, 0.0)})
    connection.execute(insert(DailyPrice).values(
        date=WEDNESDAY, ticker=A, open=10_100, high=10_100, low=10_100, close=10_100, volume=0, value=0,
        change_pct=0.0, market_cap=0, market="KOSPI", halted=True))  # KRX: a halted stock's close only

    account.settle(kst(THURSDAY, 8, 45))

    market_value = connection.scalar(select(PortfolioSnapshot.market_value).where(
        PortfolioSnapshot.trading_date == WEDNESDAY))
    assert market_value == 100 * 10_100  # not the average cost 10,001
    assert account.fills(WEDNESDAY) == []


def test_a_stop_on_a_split_day_fills_inside_the_band_of_the_new_shares(account: Account, connection: Connection):
    account.settle(kst(WEDNESDAY, 8, 30))  # A: 100 shares, average 10,001.5
    # 50-for-1 (previous close 10,100, base 202); the new shares' average 200.03: stop 190.03 -> 190
    store_bars(connection, WEDNESDAY, {A: (200, 204, 185, 196, -2.97), B: (20_000, 20_000, 20_000, 20_000, 0.0),
                                       C: (5_300, 5_300, 5_300, 5_300, 0.0)})

    account.settle(kst(THURSDAY, 8, 45))

    # the band of the day is +-30% of 10,100 / 50 = 202, not of 10,100: the stop fills
    assert account.fills(WEDNESDAY) == [(A, "sell", 5_000, 190, kst(WEDNESDAY, 11, 10))]


def test_a_session_the_account_saw_priced_intraday_is_never_settled_again(account: Account, connection: Connection):
    # the account traded on intraday prices until Tuesday (a closing snapshot observed then)
    connection.execute(insert(PortfolioSnapshot).values(
        user_id=USER, dry_run=True, taken_at=kst(TUESDAY, 15, 30), trading_date=TUESDAY, cash=1, settled_cash=1,
        market_value=0, equity=1, exposure=0.0, unrealised_pnl=0, positions=0, prices_observed=True))
    assert account.settle(kst(WEDNESDAY, 8, 45)) == []
