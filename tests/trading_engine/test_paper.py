"""The paper broker (DESIGN.md section 9): tick-grid limits, the +-30% band, cash held
back for open buys, fills at observations made after an order was placed, commission
and the dated sell tax, T+2 settlement on the real calendar, and an account that
survives a restart.

Expected values are worked out by hand in the comments, never by the code under test.
The property tests at the end drive random sequences of operations against a small
independent model of the account (SQLite only, one rolled-back transaction per
example)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, func, select

from services.common.clock import FixedClock
from services.common.database import create_db_engine, migrate
from services.common.market_calendar import KRX_TZ, MarketCalendar
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.models import ClosedTrade, FillRow, OrderRow, PositionRow
from services.trading_engine.orders import Cash, OrderRequest, OrderStatus, OrderType, Side
from services.trading_engine.paper import PaperBroker, execution_price, order_price
from tests.conftest import make_settings

USER = "tester"
A = "005930"  # previous close 10,000 in the example tests: band 7,000-13,000, 10-KRW ticks


def kst(year: int, month: int, day: int, hour: int = 9, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=KRX_TZ)


class Closes:
    """A dict-backed ``reference_prices``: the same previous close on every date, or
    per date when given ``{date: {ticker: close}}``."""

    def __init__(self, closes: Mapping[str, int] | None = None,
                 by_date: Mapping[date, Mapping[str, int]] | None = None) -> None:
        self.closes = dict(closes or {})
        self.by_date = dict(by_date or {})

    def __call__(self, tickers: Sequence[str], trading_date: date) -> dict[str, int]:
        closes = self.by_date.get(trading_date, self.closes)
        return {ticker: closes[ticker] for ticker in tickers if ticker in closes}


def new_broker(connection: Connection, calendar: MarketCalendar, clock: FixedClock, *,
               initial_cash: int = 1_000_000, closes: Closes | None = None,
               fees: FeeSchedule | None = None) -> PaperBroker:
    return PaperBroker(connection, user_id=USER, fees=fees or FeeSchedule.from_settings(make_settings()),
                       calendar=calendar, clock=clock, initial_cash=initial_cash,
                       reference_prices=closes or Closes({A: 10_000}))


def buy(client_order_id: str, day: date, quantity: int, limit: int | None = None, ticker: str = A) -> OrderRequest:
    return OrderRequest(client_order_id, day, ticker, Side.BUY, quantity,
                        OrderType.MARKET if limit is None else OrderType.LIMIT, limit)


def sell(client_order_id: str, day: date, quantity: int, limit: int | None = None, ticker: str = A) -> OrderRequest:
    return OrderRequest(client_order_id, day, ticker, Side.SELL, quantity,
                        OrderType.MARKET if limit is None else OrderType.LIMIT, limit)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(kst(2025, 10, 2, 8, 50))


@pytest.fixture
def broker(connection: Connection, krx_calendar: MarketCalendar, clock: FixedClock) -> PaperBroker:
    return new_broker(connection, krx_calendar, clock)


def hold_ten_shares(broker: PaperBroker, clock: FixedClock) -> None:
    """Buy 10 A at the 10-02 open, 10,000: 100,000 + commission 15 -> cash 899,985."""
    clock.set(kst(2025, 10, 2, 8, 50))
    broker.place_order(buy("setup-buy", date(2025, 10, 2), 10))
    assert len(broker.match({A: 10_000}, kst(2025, 10, 2, 9, 0))) == 1


# --- the account ---------------------------------------------------------------------------------------


def test_a_new_account_starts_with_initial_cash_and_nothing_else(broker: PaperBroker) -> None:
    assert broker.cash() == Cash(available=1_000_000, settled=1_000_000)
    assert broker.paper_account().initial_cash == 1_000_000
    assert broker.positions() == []
    assert broker.open_orders() == []
    assert broker.fills(date(2025, 10, 2)) == []


# --- prices: the tick grid and the band ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous_close", "side", "limit", "expected"),
    [
        (10_000, Side.BUY, 10_003, 10_010),  # 10-KRW ticks: a buy rounds up
        (10_000, Side.SELL, 10_007, 10_000),  # a sell rounds down
        (10_000, Side.BUY, 10_010, 10_010),  # already on the grid
        (2_000, Side.BUY, 1_999, 1_999),  # below 2,000 the tick is 1
        (2_000, Side.SELL, 1_999, 1_999),
        (2_000, Side.BUY, 2_001, 2_005),  # from 2,000 the tick is 5
        (2_000, Side.SELL, 2_004, 2_000),
        (45_000, Side.BUY, 49_975, 50_000),  # 50-KRW ticks, rounding up crosses into the 100-KRW band
        (45_000, Side.BUY, 49_951, 50_000),
        (45_000, Side.SELL, 49_975, 49_950),
        (45_000, Side.SELL, 50_050, 50_000),  # 100-KRW ticks from 50,000
        (420_000, Side.BUY, 499_600, 500_000),  # 500-KRW ticks below 500,000, 1,000 from it
        (420_000, Side.SELL, 500_900, 500_000),
    ],
)
def test_limit_prices_go_on_the_tick_grid_buys_up_sells_down(previous_close: int, side: Side, limit: int,
                                                              expected: int) -> None:
    request = OrderRequest("x", date(2025, 10, 2), A, side, 1, OrderType.LIMIT, limit)
    assert order_price(request, previous_close) == (expected, None)


def test_a_placed_limit_order_keeps_the_limit_on_the_grid(broker: PaperBroker, clock: FixedClock) -> None:
    hold_ten_shares(broker, clock)
    assert broker.place_order(buy("b", date(2025, 10, 2), 1, limit=10_003)).limit_price == 10_010
    assert broker.place_order(sell("s", date(2025, 10, 2), 1, limit=10_007)).limit_price == 10_000


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        # previous close 10,000: band 7,000 (x 0.7) to 13,000 (x 1.3)
        (buy("b", date(2025, 10, 2), 1, limit=13_001), "limit 13010 is outside the daily band 7000-13000"),
        (buy("b", date(2025, 10, 2), 1, limit=6_989), "limit 6990 is outside the daily band 7000-13000"),
        (sell("s", date(2025, 10, 2), 1, limit=6_999), "limit 6990 is outside the daily band 7000-13000"),
        (sell("s", date(2025, 10, 2), 1, limit=13_011), "limit 13010 is outside the daily band 7000-13000"),
        (buy("b", date(2025, 10, 2), 1, limit=0), "a limit order needs a positive limit price"),
        (buy("b", date(2025, 10, 2), 0), "quantity 0: expected whole shares"),
        (buy("b", date(2025, 10, 2), 1, ticker="000660"), "no previous close for 000660"),
    ],
)
def test_an_order_outside_the_rules_is_rejected_with_its_reason(broker: PaperBroker, request_: OrderRequest,
                                                                 reason: str) -> None:
    order = broker.place_order(request_)
    assert order.status is OrderStatus.REJECTED
    assert reason in order.reason
    assert broker.open_orders() == []
    assert broker.cash() == Cash(1_000_000, 1_000_000)  # nothing held back


def test_limits_on_the_band_edges_are_accepted(broker: PaperBroker, clock: FixedClock) -> None:
    hold_ten_shares(broker, clock)
    # 12,995 rounds up to 13,000, the upper edge; a sell at 7,000 is the lower edge
    assert broker.place_order(buy("b", date(2025, 10, 2), 1, limit=12_995)).status is OrderStatus.NEW
    assert broker.place_order(sell("s", date(2025, 10, 2), 1, limit=7_000)).status is OrderStatus.NEW


def test_an_observation_outside_the_band_fills_nothing(broker: PaperBroker, clock: FixedClock) -> None:
    broker.place_order(buy("b", date(2025, 10, 2), 1))
    assert broker.match({A: 13_010}, kst(2025, 10, 2, 9, 0)) == []  # above 13,000
    assert broker.match({A: 6_990}, kst(2025, 10, 2, 9, 1)) == []  # below 7,000
    assert [f.price for f in broker.match({A: 13_000}, kst(2025, 10, 2, 9, 2))] == [13_000]


# --- cash held back, shares needed -------------------------------------------------------------------------


def test_a_market_buy_holds_back_its_cost_at_the_upper_band_price(broker: PaperBroker) -> None:
    broker.place_order(buy("b", date(2025, 10, 2), 10))
    # 10 x 13,000 = 130,000 + commission 19 (19.5 floored) = 130,019 held back
    assert broker.cash() == Cash(available=869_981, settled=869_981, held_back=130_019)
    assert broker.paper_account().cash == 1_000_000
    broker.match({A: 10_000}, kst(2025, 10, 2, 9, 0))
    # filled at 10,000: 100,000 + 15 paid, the rest of the hold released
    assert broker.paper_account().cash == 899_985
    assert broker.cash().available == 899_985


def test_a_buy_needing_more_than_the_available_cash_is_rejected(broker: PaperBroker) -> None:
    day = date(2025, 10, 2)
    # 77 x 13,000 = 1,001,000 (+150) > 1,000,000
    rejected = broker.place_order(buy("b1", day, 77))
    assert rejected.status is OrderStatus.REJECTED
    assert rejected.reason == "insufficient cash: needs 1001150 KRW, 1000000 available"
    # 76 x 13,000 = 988,000 + 148 = 988,148 fits, leaving 11,852
    assert broker.place_order(buy("b2", day, 76, limit=13_000)).status is OrderStatus.NEW
    assert broker.cash().available == 11_852
    # 2 x 10,000 + 3 = 20,003 > 11,852: the open order's hold counts
    assert broker.place_order(buy("b3", day, 2, limit=10_000)).reason == \
        "insufficient cash: needs 20003 KRW, 11852 available"
    # 1 x 10,000 + 1 (1.5 floored) = 10,001 fits
    assert broker.place_order(buy("b4", day, 1, limit=10_000)).status is OrderStatus.NEW
    assert broker.cash().available == 1_851


def test_a_sell_needs_the_shares_net_of_other_open_sells(broker: PaperBroker, clock: FixedClock) -> None:
    day = date(2025, 10, 2)
    assert broker.place_order(sell("s0", day, 1)).reason == "insufficient shares: selling 1, 0 free to sell"
    hold_ten_shares(broker, clock)
    assert broker.place_order(sell("s1", day, 6, limit=11_000)).status is OrderStatus.NEW
    assert broker.place_order(sell("s2", day, 5)).reason == "insufficient shares: selling 5, 4 free to sell"
    assert broker.place_order(sell("s3", day, 4, limit=11_000)).status is OrderStatus.NEW


def test_placing_the_same_client_order_id_twice_returns_the_first_order_and_writes_one_row(
        broker: PaperBroker, connection: Connection) -> None:
    first = broker.place_order(buy("same", date(2025, 10, 2), 10, limit=10_000))
    again = broker.place_order(buy("same", date(2025, 10, 2), 50))  # different content, same id
    assert again == first
    assert connection.scalar(select(func.count()).select_from(OrderRow).where(
        OrderRow.client_order_id == "same")) == 1
    assert broker.cash().available == 1_000_000 - 100_015  # held back once: 100,000 + 15


# --- fills -----------------------------------------------------------------------------------------------


def test_a_market_order_fills_at_the_next_observation_after_it_was_placed(broker: PaperBroker,
                                                                          clock: FixedClock) -> None:
    clock.set(kst(2025, 10, 2, 9, 0))
    order = broker.place_order(buy("b", date(2025, 10, 2), 3))
    assert broker.match({A: 10_500}, kst(2025, 10, 2, 8, 59)) == []  # observed before it was placed
    assert broker.match({A: 10_500}, kst(2025, 10, 2, 9, 0)) == []  # observed at the same instant
    assert broker.open_orders() == [order]
    fills = broker.match({A: 10_100}, kst(2025, 10, 2, 9, 0, 1))
    # 3 x 10,100 = 30,300, commission 4.545 -> 4
    assert [(f.order_id, f.quantity, f.price, f.commission, f.tax) for f in fills] == \
        [(order.order_id, 3, 10_100, 4, 0)]
    assert broker.paper_account().cash == 1_000_000 - 30_304
    assert broker.match({A: 9_000}, kst(2025, 10, 2, 9, 5)) == []  # filled once only


def test_an_order_for_a_later_trading_date_waits_for_that_date(broker: PaperBroker) -> None:
    broker.place_order(buy("b", date(2025, 10, 10), 1))
    assert broker.match({A: 10_000}, kst(2025, 10, 2, 9, 0)) == []
    assert [f.trade_date for f in broker.match({A: 10_000}, kst(2025, 10, 10, 9, 0))] == [date(2025, 10, 10)]


@pytest.mark.parametrize(
    ("side", "order_type", "limit", "observed", "expected"),
    [
        (Side.BUY, OrderType.MARKET, None, 10_120, 10_120),  # market: the observed price
        (Side.SELL, OrderType.MARKET, None, 9_870, 9_870),
        (Side.BUY, OrderType.LIMIT, 10_000, 10_010, None),  # above a buy limit: no fill
        (Side.BUY, OrderType.LIMIT, 10_000, 10_000, 10_000),  # at it: at the limit
        (Side.BUY, OrderType.LIMIT, 10_000, 9_500, 10_000),  # through it: still at the limit
        (Side.SELL, OrderType.LIMIT, 10_500, 10_490, None),  # below a sell limit: no fill
        (Side.SELL, OrderType.LIMIT, 10_500, 10_500, 10_500),
        (Side.SELL, OrderType.LIMIT, 10_500, 11_000, 10_500),
    ],
)
def test_execution_price_is_the_observed_price_for_market_orders_and_the_limit_once_crossed(
        side: Side, order_type: OrderType, limit: int | None, observed: int, expected: int | None) -> None:
    assert execution_price(side, order_type, limit, observed) == expected


def test_a_limit_buy_fills_at_the_limit_when_the_price_is_at_or_below_it_and_not_above(
        broker: PaperBroker) -> None:
    day = date(2025, 10, 2)
    at_limit = broker.place_order(buy("b1", day, 1, limit=10_000))
    assert broker.match({A: 10_010}, kst(2025, 10, 2, 9, 0)) == []
    assert broker.open_orders() == [at_limit]
    assert [(f.order_id, f.price) for f in broker.match({A: 10_000}, kst(2025, 10, 2, 9, 1))] == \
        [(at_limit.order_id, 10_000)]
    through = broker.place_order(buy("b2", day, 1, limit=10_000))
    assert [(f.order_id, f.price) for f in broker.match({A: 9_500}, kst(2025, 10, 2, 9, 2))] == \
        [(through.order_id, 10_000)]


def test_a_limit_sell_fills_at_the_limit_when_the_price_is_at_or_above_it_and_not_below(
        broker: PaperBroker, clock: FixedClock) -> None:
    hold_ten_shares(broker, clock)
    order = broker.place_order(sell("s", date(2025, 10, 2), 2, limit=10_500))
    assert broker.match({A: 10_490}, kst(2025, 10, 2, 9, 1)) == []
    assert [(f.order_id, f.price) for f in broker.match({A: 11_000}, kst(2025, 10, 2, 9, 2))] == \
        [(order.order_id, 10_500)]


def test_max_quantity_partially_fills_and_a_later_observation_completes_the_order(broker: PaperBroker) -> None:
    order = broker.place_order(buy("b", date(2025, 10, 2), 10, limit=10_000))
    first = broker.match({A: 9_990}, kst(2025, 10, 2, 9, 1), max_quantity={A: 4})
    # 4 x 10,000 = 40,000 + 6 -> cash 959,994; the hold shrinks to 6 x 10,000 + 9 = 60,009
    assert [(f.quantity, f.price, f.commission) for f in first] == [(4, 10_000, 6)]
    (partial,) = broker.open_orders()
    assert (partial.status, partial.filled_quantity, partial.remaining) == (OrderStatus.PARTIALLY_FILLED, 4, 6)
    assert broker.paper_account().cash == 959_994
    assert broker.cash().available == 959_994 - 60_009
    second = broker.match({A: 10_000}, kst(2025, 10, 2, 9, 2))
    # 6 x 10,000 = 60,000 + 9 -> cash 899,985, nothing held back
    assert [(f.quantity, f.price, f.commission) for f in second] == [(6, 10_000, 9)]
    (done,) = broker.orders(date(2025, 10, 2))
    assert (done.order_id, done.status, done.filled_quantity) == (order.order_id, OrderStatus.FILLED, 10)
    assert broker.cash().available == broker.paper_account().cash == 899_985
    (position,) = broker.positions()
    assert (position.quantity, position.cost) == (10, 100_015)


def test_max_quantity_is_shared_by_the_orders_of_a_ticker_in_the_order_they_were_placed(
        broker: PaperBroker) -> None:
    first = broker.place_order(buy("b1", date(2025, 10, 2), 3))
    second = broker.place_order(buy("b2", date(2025, 10, 2), 4))
    fills = broker.match({A: 10_000}, kst(2025, 10, 2, 9, 0), max_quantity={A: 5})
    assert [(f.order_id, f.quantity) for f in fills] == [(first.order_id, 3), (second.order_id, 2)]


def test_a_rejected_order_never_fills(broker: PaperBroker) -> None:
    broker.place_order(buy("b", date(2025, 10, 2), 1, limit=20_000))  # outside the band
    assert broker.match({A: 10_000}, kst(2025, 10, 2, 9, 0)) == []
    assert broker.positions() == []


def test_cancel_releases_the_hold_and_a_cancelled_order_does_not_fill(broker: PaperBroker) -> None:
    order = broker.place_order(buy("b", date(2025, 10, 2), 10, limit=10_000))
    cancelled = broker.cancel(order.order_id)
    assert cancelled.status is OrderStatus.CANCELLED
    assert broker.cash().available == 1_000_000
    assert broker.match({A: 9_000}, kst(2025, 10, 2, 9, 0)) == []


def test_cancelling_a_filled_order_changes_nothing(broker: PaperBroker) -> None:
    order = broker.place_order(buy("b", date(2025, 10, 2), 1))
    broker.match({A: 10_000}, kst(2025, 10, 2, 9, 0))
    after = broker.cancel(order.order_id)
    assert (after.status, after.filled_quantity) == (OrderStatus.FILLED, 1)
    assert broker.paper_account().cash == 1_000_000 - 10_001


def test_expire_day_orders_cancels_open_limit_orders_at_the_close_but_not_market_orders(
        broker: PaperBroker, clock: FixedClock) -> None:
    day = date(2025, 10, 2)
    limit_buy = broker.place_order(buy("lb", day, 10, limit=10_000))
    broker.match({A: 10_000}, kst(2025, 10, 2, 9, 1), max_quantity={A: 4})  # 4 of 10: cash 959,994
    limit_sell = broker.place_order(sell("ls", day, 2, limit=12_000))
    later_sell = broker.place_order(sell("ls-next", date(2025, 10, 10), 1, limit=12_000))
    clock.set(kst(2025, 10, 2, 15, 29))
    market_buy = broker.place_order(buy("mb", day, 5))  # holds 5 x 13,000 + 9 = 65,009

    clock.set(kst(2025, 10, 2, 15, 30))
    assert broker.expire_day_orders(day) == 2
    by_id = {o.order_id: o for o in broker.orders(day)}
    assert (by_id[limit_buy.order_id].status, by_id[limit_buy.order_id].filled_quantity) == \
        (OrderStatus.CANCELLED, 4)
    assert by_id[limit_sell.order_id].status is OrderStatus.CANCELLED
    assert by_id[market_buy.order_id].status is OrderStatus.NEW
    assert [o.order_id for o in broker.open_orders()] == [later_sell.order_id, market_buy.order_id]
    assert broker.cash().available == 959_994 - 65_009  # the limit buy's hold is released

    # the next session: only the market buy fills (at 9,900: 49,500 + 7 (7.425 floored))
    fills = broker.match({A: 9_900}, kst(2025, 10, 10, 9, 0))
    assert [(f.order_id, f.price, f.quantity) for f in fills] == [(market_buy.order_id, 9_900, 5)]
    assert broker.paper_account().cash == 959_994 - 49_507


def test_mark_raises_the_high_water_mark_and_never_lowers_it(broker: PaperBroker, clock: FixedClock) -> None:
    hold_ten_shares(broker, clock)
    assert broker.positions()[0].high_water == 10_000
    broker.mark({A: 10_500})
    broker.mark({A: 9_000})
    assert broker.positions()[0].high_water == 10_500


# --- sales: commission, tax, closed trades -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("buy_day", "sell_day", "first", "second"),
    [
        # 2025: 0.15%. Sell 4 at 11,000: 44,000, commission 6 (6.6), tax 66 -> proceeds 43,928;
        #   cost 100,015 x 4 // 10 = 40,006 -> pnl 3,922.
        # Sell 6 at 11,500: 69,000, commission 10 (10.35), tax 103 (103.5) -> 68,887; cost 60,009 -> 8,878
        (date(2025, 10, 2), date(2025, 10, 10), (6, 66, 43_928, 40_006, 3_922), (10, 103, 68_887, 60_009, 8_878)),
        # 2026: 0.20%. tax 88 -> 43,906, pnl 3,900; tax 138 -> 68,852, pnl 8,843
        (date(2025, 12, 30), date(2026, 1, 2), (6, 88, 43_906, 40_006, 3_900), (10, 138, 68_852, 60_009, 8_843)),
    ],
)
def test_a_sale_records_commission_the_dated_tax_and_a_closed_trade(
        broker: PaperBroker, clock: FixedClock, connection: Connection, buy_day: date, sell_day: date,
        first: tuple[int, ...], second: tuple[int, ...]) -> None:
    clock.set(datetime.combine(buy_day, time(8, 50), KRX_TZ))
    broker.place_order(buy("b", buy_day, 10))
    broker.match({A: 10_000}, datetime.combine(buy_day, time(10, 0), KRX_TZ))  # cost 100,015
    clock.set(datetime.combine(sell_day, time(10, 0), KRX_TZ))
    broker.place_order(sell("s1", sell_day, 4, limit=11_000))
    broker.match({A: 11_000}, datetime.combine(sell_day, time(10, 1), KRX_TZ))
    (position,) = broker.positions()
    assert (position.quantity, position.cost) == (6, 60_009)
    broker.place_order(sell("s2", sell_day, 6))
    broker.match({A: 11_500}, datetime.combine(sell_day, time(10, 2), KRX_TZ))

    fills = broker.fills(sell_day)
    assert [(f.side, f.quantity, f.price, f.commission, f.tax) for f in fills] == [
        (Side.SELL, 4, 11_000, first[0], first[1]), (Side.SELL, 6, 11_500, second[0], second[1])]
    trades = connection.execute(select(ClosedTrade.quantity, ClosedTrade.proceeds, ClosedTrade.cost,
                                       ClosedTrade.pnl, ClosedTrade.opened_on, ClosedTrade.closed_on)
                                .order_by(ClosedTrade.fill_id)).all()
    assert [tuple(t) for t in trades] == [(4, *first[2:], buy_day, sell_day), (6, *second[2:], buy_day, sell_day)]
    assert broker.positions() == []
    # 1,000,000 - 100,015 + both proceeds
    assert broker.paper_account().cash == 1_000_000 - 100_015 + first[2] + second[2]


def test_a_sale_on_a_date_without_a_tax_rate_is_cancelled_not_filled(
        connection: Connection, krx_calendar: MarketCalendar, clock: FixedClock) -> None:
    fees = FeeSchedule.from_settings(make_settings(sell_tax_schedule="2026-01-01=0.2"))
    broker = new_broker(connection, krx_calendar, clock, fees=fees)
    hold_ten_shares(broker, clock)  # a buy pays no tax: fine in 2025
    order = broker.place_order(sell("s", date(2025, 10, 2), 10))
    assert broker.match({A: 10_000}, kst(2025, 10, 2, 9, 30)) == []
    (cancelled,) = [o for o in broker.orders(date(2025, 10, 2)) if o.order_id == order.order_id]
    assert cancelled.status is OrderStatus.CANCELLED
    assert "no sell-tax rate for 2025-10-02" in cancelled.reason
    assert broker.positions()[0].quantity == 10


# --- settlement ------------------------------------------------------------------------------------------


def test_the_real_calendar_closes_for_chuseok_and_the_october_holidays(krx_calendar: MarketCalendar) -> None:
    # 2025: 10-03 개천절 (Fri), 10-06..10-08 추석 and its substitute day, 10-09 한글날; 10-10 (Fri) open
    assert [s.date for s in krx_calendar.sessions(date(2025, 10, 1), date(2025, 10, 14))] == [
        date(2025, 10, 1), date(2025, 10, 2), date(2025, 10, 10), date(2025, 10, 13), date(2025, 10, 14)]


@pytest.mark.parametrize(
    ("trade_day", "settles_on"),
    [
        (date(2025, 10, 2), date(2025, 10, 13)),  # T+1 10-10 (10-03..10-09 closed), T+2 10-13 (Mon)
        (date(2025, 9, 30), date(2025, 10, 2)),  # 10-01, 10-02
        (date(2025, 12, 30), date(2026, 1, 5)),  # 12-31 year-end closure, 01-01 holiday: 01-02, 01-05
        (date(2024, 6, 5), date(2024, 6, 10)),  # 06-06 Memorial Day: 06-07, then Monday 06-10
        (date(2025, 10, 10), date(2025, 10, 14)),  # Friday: Monday, Tuesday
    ],
)
def test_a_fill_settles_two_sessions_later_on_the_real_calendar(broker: PaperBroker, clock: FixedClock,
                                                                 trade_day: date, settles_on: date) -> None:
    clock.set(datetime.combine(trade_day, time(8, 50), KRX_TZ))
    broker.place_order(buy("b", trade_day, 1))
    (fill,) = broker.match({A: 10_000}, datetime.combine(trade_day, time(9, 30), KRX_TZ))
    assert (fill.trade_date, fill.settles_on) == (trade_day, settles_on)


def test_settlement_past_the_calendars_last_session_still_counts_two_weekdays(
        broker: PaperBroker, clock: FixedClock, krx_calendar: MarketCalendar) -> None:
    last = krx_calendar.sessions(date(2027, 12, 20), date(2027, 12, 31))[-1].date
    assert last == date(2027, 12, 30)  # the calendar's data ends with the 2027-12-30 session
    clock.set(datetime.combine(last, time(8, 50), KRX_TZ))
    broker.place_order(buy("b", last, 1))
    (fill,) = broker.match({A: 10_000}, datetime.combine(last, time(9, 30), KRX_TZ))
    # two weekdays after Thursday 2027-12-30: Friday 12-31, then Monday 2028-01-03
    assert fill.settles_on == date(2028, 1, 3)


def test_settled_cash_excludes_sale_proceeds_until_they_settle(broker: PaperBroker, clock: FixedClock) -> None:
    clock.set(kst(2025, 9, 30, 8, 50))
    broker.place_order(buy("b", date(2025, 9, 30), 10))
    broker.match({A: 10_000}, kst(2025, 9, 30, 9, 0))  # 100,015 paid; settles 10-02
    clock.set(kst(2025, 10, 2, 9, 0))
    assert broker.cash() == Cash(available=899_985, settled=899_985)  # the buy has settled
    broker.place_order(sell("s", date(2025, 10, 2), 10, limit=11_000))
    (fill,) = broker.match({A: 11_050}, kst(2025, 10, 2, 9, 30))
    # 110,000 - commission 16 (16.5) - tax 165 (0.15%) = 109,819 received, settling 10-13
    assert fill.settles_on == date(2025, 10, 13)
    assert broker.cash() == Cash(available=1_009_804, settled=899_985)
    assert broker.place_order(buy("b2", date(2025, 10, 2), 70, limit=13_000)).status is OrderStatus.NEW, \
        "unsettled proceeds fund new buys at once (70 x 13,000 + 136 = 910,136 > 899,985 settled)"
    broker.cancel(broker.open_orders()[0].order_id)
    clock.set(kst(2025, 10, 10, 9, 0))
    assert broker.cash() == Cash(available=1_009_804, settled=899_985)
    clock.set(kst(2025, 10, 13, 9, 0))
    assert broker.cash() == Cash(available=1_009_804, settled=1_009_804)


def test_settled_cash_never_exceeds_available_cash_after_an_unsettled_buy(broker: PaperBroker,
                                                                          clock: FixedClock) -> None:
    hold_ten_shares(broker, clock)  # bought on 10-02 for 100,015, settling 10-13
    # Broker.cash: "cash available for buys, and the part of it that has settled"; the KIS
    # adapter caps settled at available. available 1,000,000 - 100,015 = 899,985, and
    # settled can be no more than that.
    assert broker.cash() == Cash(available=899_985, settled=899_985)


def test_settled_cash_is_never_negative_when_unsettled_proceeds_fund_a_buy(broker: PaperBroker,
                                                                           clock: FixedClock) -> None:
    clock.set(kst(2025, 9, 30, 8, 50))
    broker.place_order(buy("b1", date(2025, 9, 30), 10))
    broker.match({A: 10_000}, kst(2025, 9, 30, 9, 0))  # 100,015 paid -> 899,985; settles 10-02
    clock.set(kst(2025, 10, 2, 9, 0))
    broker.place_order(sell("s", date(2025, 10, 2), 10, limit=11_000))
    broker.match({A: 11_000}, kst(2025, 10, 2, 9, 1))  # 110,000 - 16 - 165 = 109,819 -> 1,009,804; settles 10-13
    broker.place_order(buy("b2", date(2025, 10, 2), 90, limit=11_000))
    broker.match({A: 11_000}, kst(2025, 10, 2, 9, 2))  # 990,000 + 148 (148.5) = 990,148 -> 19,656; settles 10-13
    # Cash settled so far (D+0): 899,985, the 9-30 buy being the only settled fill; available
    # (D+2): 19,656. Settled, "the part of [available] that has settled" (the KIS adapter:
    # min(D+0 deposit, D+2 cash)), is 19,656. The code gives 19,656 - 109,819 = -90,163.
    assert broker.cash() == Cash(available=19_656, settled=19_656)


# --- a restart ---------------------------------------------------------------------------------------------


def test_a_restart_sees_the_same_cash_positions_and_open_orders(migrated_engine: Engine,
                                                                krx_calendar: MarketCalendar) -> None:
    clock = FixedClock(kst(2025, 10, 2, 8, 50))
    day = date(2025, 10, 2)
    with migrated_engine.begin() as connection:
        broker = new_broker(connection, krx_calendar, clock)
        broker.place_order(buy("b", day, 10))
        broker.match({A: 10_000}, kst(2025, 10, 2, 9, 0))  # cash 899,985, 10 shares cost 100,015
        broker.place_order(buy("b2", day, 5, limit=9_500))  # holds 47,500 + 7 (7.125) = 47,507
        broker.place_order(sell("s", day, 3, limit=12_000))
        before = (broker.cash(), broker.positions(), broker.open_orders())
    assert before[0].available == 899_985 - 47_507

    with migrated_engine.begin() as connection:
        restarted = new_broker(connection, krx_calendar, clock, initial_cash=5)  # a new setting does not reset it
        assert (restarted.cash(), restarted.positions(), restarted.open_orders()) == before
        assert restarted.paper_account().initial_cash == 1_000_000
        (position,) = restarted.positions()
        assert (position.ticker, position.quantity, position.cost) == (A, 10, 100_015)
        # and it carries on: the open sell fills after the restart
        assert [f.price for f in restarted.match({A: 12_000}, kst(2025, 10, 2, 10, 0))] == [12_000]


# --- a market buy carried to a later session ---------------------------------------------------------------


def test_a_market_buy_carried_to_the_next_session_fills_no_more_than_the_cash_pays_for(
        connection: Connection, krx_calendar: MarketCalendar, clock: FixedClock) -> None:
    # 10-02: previous close 10,000 (band up to 13,000); 10-10: previous close 13,000 (band up to 16,900)
    closes = Closes(by_date={date(2025, 10, 2): {A: 10_000}, date(2025, 10, 10): {A: 13_000}})
    broker = new_broker(connection, krx_calendar, clock, closes=closes)
    clock.set(kst(2025, 10, 2, 15, 0))
    # 76 x 13,000 = 988,000 + 148 = 988,148 held back of 1,000,000: accepted
    order = broker.place_order(buy("b", date(2025, 10, 2), 76))
    assert order.status is OrderStatus.NEW
    # no observation on 10-02; market orders wait for the next observed price: 10-10 at 16,000,
    # inside that day's band but above the 13,000 the order was funded at. All 76 would cost
    # 1,216,000 + 182 = 1,216,182 > 1,000,000. 62 x 16,000 = 992,000 + 148 (148.8) = 992,148 fits;
    # 63 x 16,000 = 1,008,000 + 151 = 1,008,151 does not.
    fills = broker.match({A: 16_000}, kst(2025, 10, 10, 9, 0))
    assert [(f.quantity, f.price, f.commission) for f in fills] == [(62, 16_000, 148)]
    assert broker.paper_account().cash == 1_000_000 - 992_148
    assert broker.cash().available == 7_852
    (rest,) = broker.open_orders()
    assert (rest.order_id, rest.status, rest.filled_quantity) == (order.order_id, OrderStatus.PARTIALLY_FILLED, 62)


# === property tests ===========================================================================================

# Three tickers across tick bands; their bands worked out by hand:
#   1,500 x 0.7 = 1,050, x 1.3 = 1,950 (1-KRW ticks)
#   18,000 x 0.7 = 12,600 (10-KRW ticks), x 1.3 = 23,400 (50-KRW ticks)
#   420,000 x 0.7 = 294,000 (500-KRW ticks), x 1.3 = 546,000 (1,000-KRW ticks)
PREVIOUS_CLOSES = {"000010": 1_500, "000020": 18_000, "000030": 420_000}
BANDS = {"000010": (1_050, 1_950), "000020": (12_600, 23_400), "000030": (294_000, 546_000)}
TICKERS = sorted(PREVIOUS_CLOSES)
TICK_AT_CLOSE = {"000010": 1, "000020": 10, "000030": 500}
INITIAL_CASH = 20_000_000
#: the sessions the property tests trade on, from the KRX notices: 12-31 (year-end) and
#: 01-01 are closed. A fill settles on the session two places later.
SESSIONS = [date(2025, 12, 29), date(2025, 12, 30), date(2026, 1, 2), date(2026, 1, 5), date(2026, 1, 6),
            date(2026, 1, 7), date(2026, 1, 8), date(2026, 1, 9), date(2026, 1, 12), date(2026, 1, 13)]
LAST_TRADING_INDEX = len(SESSIONS) - 3


def hand_tick(price: int) -> int:
    """DESIGN.md section 9's tick table, written out again."""
    for bound, tick in ((2_000, 1), (5_000, 5), (20_000, 10), (50_000, 50), (200_000, 100), (500_000, 500)):
        if price < bound:
            return tick
    return 1_000


def on_grid(price: int) -> bool:
    return price % hand_tick(price) == 0


def grid_up(price: int) -> int:
    while not on_grid(price):
        price += 1
    return price


def grid_down(price: int) -> int:
    while not on_grid(price):
        price -= 1
    return price


def hand_commission(amount: int) -> int:
    return amount * 15 // 100_000  # 0.015%, floored


def hand_tax(amount: int, day: date) -> int:
    return amount * (15 if day < date(2026, 1, 1) else 20) // 10_000  # 0.15% in 2025, 0.20% from 2026


def hand_buy_cost(quantity: int, price: int) -> int:
    return quantity * price + hand_commission(quantity * price)


def test_the_property_tests_sessions_match_the_real_calendar(krx_calendar: MarketCalendar) -> None:
    assert [s.date for s in krx_calendar.sessions(SESSIONS[0], SESSIONS[-1])] == SESSIONS


@dataclass
class ModelOrder:
    order_id: str
    ticker: str
    side: Side
    order_type: OrderType
    quantity: int
    limit: int | None  # on the grid; None for a market order
    funded_at: int  # the price its hold is worked out at: the limit, or a market buy's upper band price
    trading_date: date
    placed_at: datetime
    status: OrderStatus
    filled: int = 0
    hold: int = 0  # cash held back for it

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


@dataclass
class Model:
    """What the account must be, kept by hand from the rules."""

    cash: int = INITIAL_CASH
    held: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TICKERS})
    orders: list[ModelOrder] = field(default_factory=list)

    def open_hold(self) -> int:
        return sum(o.hold for o in self.orders if o.is_open)

    def selling(self, ticker: str) -> int:
        return sum(o.quantity - o.filled for o in self.orders
                   if o.is_open and o.side is Side.SELL and o.ticker == ticker)


@pytest.fixture(scope="module")
def property_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One migrated SQLite file for the module; each example runs in a rolled-back transaction."""
    path: Path = tmp_path_factory.mktemp("paper-properties") / "paper.db"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate(engine)
    yield engine
    engine.dispose()


# Operations are drawn from weighted kinds (sampled_from over repeated names; repeating a
# branch of one_of did not weight it), each with its own parameters.
# A price is drawn as (near, ticks, basis points): mostly ``ticks`` ticks from the previous
# close (on the grid, so a limit and an observation are often equal, or cross), sometimes
# 60%-140% of the previous close (off the grid, often off the band: rejected, or not filled).
PriceChoice = tuple[bool, int, int]


def _price_choice(wide: tuple[int, int]) -> st.SearchStrategy[PriceChoice]:
    return st.tuples(st.sampled_from([True, True, False]), st.integers(-6, 6), st.integers(*wide))


def raw_price(ticker: str, choice: PriceChoice) -> int:
    near, ticks, basis_points = choice
    if near:
        return PREVIOUS_CLOSES[ticker] + ticks * TICK_AT_CLOSE[ticker]
    return PREVIOUS_CLOSES[ticker] * basis_points // 10_000


_LIMIT_PRICE = _price_choice((6_000, 14_000))
_OBSERVED_PRICE = _price_choice((6_500, 13_500))
_ORDER_KINDS = [(Side.BUY, OrderType.LIMIT), (Side.SELL, OrderType.LIMIT), (Side.BUY, OrderType.MARKET),
                (Side.SELL, OrderType.MARKET)]
_PARAMETERS: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    # ticker, side, order type, quantity (now and then 0 or large), limit
    "place": st.tuples(st.sampled_from(TICKERS), st.sampled_from(_ORDER_KINDS),
                       st.sampled_from([1, 2, 3, 5, 8, 0, 20]), _LIMIT_PRICE).map(
        lambda p: (p[0], p[1][0], p[1][1], p[2], p[3])),
    # sell a quarter to all of what the model holds of a ticker (1 share if none: rejected)
    "sell_held": st.tuples(st.sampled_from(TICKERS), st.sampled_from([OrderType.LIMIT, OrderType.MARKET]),
                           st.integers(1, 4), _LIMIT_PRICE),
    # move the clock on 0-5 minutes first (0: at the instant of the last placement); a ticker
    # left out (None) is not observed; caps limit the quantity filled per ticker
    "observe": st.tuples(st.sampled_from([1, 5, 1, 0]),
                         st.fixed_dictionaries({t: st.sampled_from([True, True, True, False]).flatmap(
                             lambda seen: _OBSERVED_PRICE if seen else st.none()) for t in TICKERS}),
                         st.sampled_from([False, False, True]).flatmap(
                             lambda capped: st.dictionaries(st.sampled_from(TICKERS), st.integers(0, 6))
                             if capped else st.none()),
                         # now and then the price is exactly the limit of an open limit order
                         st.sampled_from([False, False, True]).flatmap(
                             lambda at_limit: st.integers(0, 20) if at_limit else st.none())),
    "cancel": st.tuples(st.integers(0, 60)),
    "replace": st.tuples(st.integers(0, 60)),
    "expire": st.just(()),
    "advance": st.tuples(st.sampled_from([1, 5, 30])),
    "next_day": st.just(()),
    "restart": st.just(()),
}
_KINDS = ["place"] * 4 + ["sell_held"] * 2 + ["observe"] * 4 + ["cancel", "replace", "expire", "advance",
                                                                 "next_day", "restart"]
OPERATIONS = st.sampled_from(_KINDS).flatmap(
    lambda kind: _PARAMETERS[kind].map(lambda parameters: (kind, *parameters)))


class Driver:
    """Runs operations on a PaperBroker and on the model, and checks they agree."""

    def __init__(self, connection: Connection, calendar: MarketCalendar) -> None:
        self.connection = connection
        self.calendar = calendar
        self.session_index = 0
        self.clock = FixedClock(datetime.combine(SESSIONS[0], time(8, 50), KRX_TZ))
        self.model = Model()
        self.statuses: dict[str, OrderStatus] = {}
        self.broker = self.new_broker()

    def open_positions(self) -> None:
        """Start every example holding shares to sell: market buys of 10, 10 and 2 shares
        filled at the previous closes a minute later."""
        for ticker, quantity in zip(TICKERS, (10, 10, 2)):
            self.place(ticker, Side.BUY, OrderType.MARKET, quantity, (True, 0, 0))
        self.observe(1, {t: (True, 0, 0) for t in TICKERS}, None)
        assert self.model.held == {"000010": 10, "000020": 10, "000030": 2}
        self.check_invariants()

    def new_broker(self) -> PaperBroker:
        return PaperBroker(self.connection, user_id=USER, fees=FeeSchedule.from_settings(make_settings()),
                           calendar=self.calendar, clock=self.clock, initial_cash=INITIAL_CASH,
                           reference_prices=Closes(PREVIOUS_CLOSES))

    @property
    def today(self) -> date:
        return SESSIONS[self.session_index]

    def run(self, operation: tuple[Any, ...]) -> None:
        getattr(self, operation[0])(*operation[1:])
        self.check_invariants()

    # -- operations ------------------------------------------------------------------------------------

    def place(self, ticker: str, side: Side, order_type: OrderType, quantity: int, limit: PriceChoice) -> None:
        raw_limit = raw_price(ticker, limit) if order_type is OrderType.LIMIT else None
        request = OrderRequest(f"o{len(self.model.orders)}", self.today, ticker, side, quantity, order_type,
                               raw_limit)
        order = self.broker.place_order(request)

        lower, upper = BANDS[ticker]
        expected, reason, limit, funded_at, hold = OrderStatus.NEW, "", None, 0, 0
        if quantity < 1:
            expected, reason = OrderStatus.REJECTED, "quantity"
        elif raw_limit is not None:
            limit = grid_up(raw_limit) if side is Side.BUY else grid_down(raw_limit)
            if not lower <= limit <= upper:
                expected, reason = OrderStatus.REJECTED, "outside the daily band"
        if expected is OrderStatus.NEW:
            funded_at = limit if limit is not None else (upper if side is Side.BUY else lower)
            if side is Side.BUY:
                hold = hand_buy_cost(quantity, funded_at)
                if hold > self.model.cash - self.model.open_hold():
                    expected, reason, hold = OrderStatus.REJECTED, "insufficient cash", 0
            elif quantity > self.model.held[ticker] - self.model.selling(ticker):
                expected, reason = OrderStatus.REJECTED, "insufficient shares"
        assert order.status is expected, (order, reason)
        assert reason in order.reason
        if expected is OrderStatus.NEW:
            assert order.limit_price == limit
        self.model.orders.append(ModelOrder(order.order_id, ticker, side, order_type, quantity, limit, funded_at,
                                            self.today, self.clock.now(), expected, hold=hold))

    def sell_held(self, ticker: str, order_type: OrderType, quarters: int, limit: PriceChoice) -> None:
        quantity = max(1, self.model.held[ticker] * quarters // 4)
        self.place(ticker, Side.SELL, order_type, quantity, limit)

    def replace(self, index: int) -> None:
        """Place again under a client order id already used: the first order comes back."""
        if not self.model.orders:
            return
        index %= len(self.model.orders)
        first = self.model.orders[index]
        again = self.broker.place_order(OrderRequest(f"o{index}", self.today, first.ticker, Side.BUY, 1))
        assert (again.order_id, again.status, again.filled_quantity) == (first.order_id, first.status, first.filled)

    def observe(self, minutes: int, observed: Mapping[str, PriceChoice | None],
                caps: Mapping[str, int] | None, at_limit: int | None = None) -> None:
        self.advance(minutes)
        prices = {t: grid_down(raw_price(t, choice)) for t, choice in observed.items() if choice is not None}
        open_limits = [o for o in self.model.orders if o.is_open and o.order_type is OrderType.LIMIT]
        if at_limit is not None and open_limits:
            target = open_limits[at_limit % len(open_limits)]
            prices[target.ticker] = target.limit  # type: ignore[assignment]
        observed_at = self.clock.now()
        fills = self.broker.match(prices, observed_at, dict(caps) if caps is not None else None)

        expected = []
        left = dict(caps) if caps is not None else None
        for order in self.model.orders:
            if not order.is_open or order.placed_at >= observed_at or order.ticker not in prices \
                    or order.trading_date > self.today:
                continue
            observed = prices[order.ticker]
            lower, upper = BANDS[order.ticker]
            if not lower <= observed <= upper:
                continue
            if order.order_type is OrderType.MARKET:
                price = observed
            elif (order.side is Side.BUY and observed <= order.limit) or \
                    (order.side is Side.SELL and observed >= order.limit):  # type: ignore[operator]
                price = order.limit  # type: ignore[assignment]
            else:
                continue
            quantity = order.quantity - order.filled
            if left is not None and order.ticker in left:
                quantity = min(quantity, max(0, left[order.ticker]))
            if order.side is Side.SELL:
                quantity = min(quantity, self.model.held[order.ticker])
            if quantity <= 0:
                continue
            amount = quantity * price
            commission = hand_commission(amount)
            tax = hand_tax(amount, self.today) if order.side is Side.SELL else 0
            settles_on = SESSIONS[self.session_index + 2]
            expected.append((order.order_id, order.ticker, order.side, quantity, price, commission, tax,
                             self.today, settles_on))
            order.filled += quantity
            order.status = OrderStatus.FILLED if order.filled == order.quantity else OrderStatus.PARTIALLY_FILLED
            if order.side is Side.BUY:
                spent = amount + commission
                if order.status is OrderStatus.FILLED:
                    order.hold = 0
                elif order.order_type is OrderType.LIMIT:
                    order.hold = hand_buy_cost(order.quantity - order.filled, order.funded_at)
                else:
                    order.hold = max(0, order.hold - spent)
                self.model.cash -= spent
                self.model.held[order.ticker] += quantity
            else:
                self.model.cash += amount - commission - tax
                self.model.held[order.ticker] -= quantity
            if left is not None and order.ticker in left:
                left[order.ticker] -= quantity

        assert [(f.order_id, f.ticker, f.side, f.quantity, f.price, f.commission, f.tax, f.trade_date,
                 f.settles_on) for f in fills] == expected

    def cancel(self, index: int) -> None:
        if not self.model.orders:
            return
        order = self.model.orders[index % len(self.model.orders)]
        result = self.broker.cancel(order.order_id)
        if order.is_open:
            order.status, order.hold = OrderStatus.CANCELLED, 0
        assert (result.status, result.filled_quantity) == (order.status, order.filled)

    def expire(self) -> None:
        due = [o for o in self.model.orders
               if o.is_open and o.order_type is OrderType.LIMIT and o.trading_date <= self.today]
        assert self.broker.expire_day_orders(self.today) == len(due)
        for order in due:
            order.status, order.hold = OrderStatus.CANCELLED, 0

    def advance(self, minutes: int) -> None:
        """Move the clock on, staying on the same date (the match time decides the trade date)."""
        last = datetime.combine(self.today, time(23, 59), KRX_TZ)
        self.clock.set(min(self.clock.now() + timedelta(minutes=minutes), last))

    def next_day(self) -> None:
        if self.session_index < LAST_TRADING_INDEX:
            self.session_index += 1
            self.clock.set(datetime.combine(self.today, time(8, 50), KRX_TZ))

    def restart(self) -> None:
        self.broker = self.new_broker()

    # -- the invariants, read straight from the tables ---------------------------------------------------------

    def check_invariants(self) -> None:
        fills = self.connection.execute(select(FillRow.__table__).where(FillRow.user_id == USER)
                                        .order_by(FillRow.id)).all()
        orders = self.connection.execute(select(OrderRow.__table__).where(OrderRow.user_id == USER)
                                         .order_by(OrderRow.id)).all()
        closed = self.connection.execute(select(ClosedTrade.__table__).where(ClosedTrade.user_id == USER)).all()
        position_rows = self.connection.execute(select(PositionRow.__table__).where(PositionRow.user_id == USER)
                                                ).all()
        account_cash = int(self.broker.paper_account().cash)
        cash = self.broker.cash()
        positions = self.broker.positions()

        # (1) cash reconciles with the fills: a buy pays amount + commission, a sale receives
        #     amount - commission - tax
        def change(f: Any) -> int:
            amount = f.quantity * f.price
            return -(amount + f.commission) if f.side == "buy" else amount - f.commission - f.tax

        assert account_cash == INITIAL_CASH + sum(change(f) for f in fills) == self.model.cash
        assert account_cash >= 0 and cash.available >= 0
        # the hold of open buys is what available leaves out: enough to fill them all at their worst
        assert account_cash - cash.available == self.model.open_hold()
        worst = sum(hand_buy_cost(o.quantity - o.filled, o.funded_at)
                    for o in self.model.orders if o.is_open and o.side is Side.BUY)
        assert self.model.open_hold() >= worst
        # settled is the part of available that has settled: never more than available; all of
        # it when nothing is unsettled; available less the unsettled sale proceeds when no buy is
        # unsettled or held back; never negative.
        today = self.clock.now().astimezone(KRX_TZ).date()
        unsettled = [f for f in fills if f.settles_on > today]
        assert 0 <= cash.settled <= cash.available
        if not unsettled:
            assert cash.settled == cash.available
        if all(f.side == "sell" for f in unsettled) and self.model.open_hold() == 0:
            assert cash.settled == cash.available - sum(change(f) for f in unsettled) >= 0

        # (2) positions are the fills' buys minus sales, never negative; no empty position rows
        net: dict[str, int] = {t: 0 for t in TICKERS}
        for f in fills:
            net[f.ticker] += f.quantity if f.side == "buy" else -f.quantity
        assert all(quantity >= 0 for quantity in net.values())
        assert net == self.model.held
        assert {p.ticker: p.quantity for p in positions} == {t: q for t, q in net.items() if q > 0}
        assert all(row.quantity > 0 and row.cost > 0 for row in position_rows)

        # (3) fills are on the tick grid, inside the band, with the commission and dated tax
        for f in fills:
            lower, upper = BANDS[f.ticker]
            assert on_grid(f.price) and lower <= f.price <= upper, f
            amount = f.quantity * f.price
            assert f.commission == hand_commission(amount)
            assert f.tax == (hand_tax(amount, f.trade_date) if f.side == "sell" else 0)

        # (4) order lifecycle
        filled_by_order: dict[int, int] = {}
        for f in fills:
            filled_by_order[f.order_id] = filled_by_order.get(f.order_id, 0) + f.quantity
        model_orders = {o.order_id: o for o in self.model.orders}
        assert len(orders) == len(self.model.orders)
        for row in orders:
            status = OrderStatus(row.status)
            assert 0 <= row.filled_quantity <= row.quantity
            assert row.filled_quantity == filled_by_order.get(row.id, 0)
            if status is OrderStatus.REJECTED or status is OrderStatus.NEW:
                assert row.filled_quantity == 0
            elif status is OrderStatus.PARTIALLY_FILLED:
                assert 0 < row.filled_quantity < row.quantity
            elif status is OrderStatus.FILLED:
                assert row.filled_quantity == row.quantity
            else:
                assert row.filled_quantity < row.quantity
            previous = self.statuses.get(str(row.id))
            if previous in (OrderStatus.REJECTED, OrderStatus.FILLED, OrderStatus.CANCELLED):
                assert status is previous, "a finished order changed status"
            self.statuses[str(row.id)] = status
            model = model_orders[str(row.id)]
            assert (status, row.filled_quantity) == (model.status, model.filled)
        assert [o.order_id for o in self.broker.open_orders()] == [o.order_id for o in self.model.orders
                                                                    if o.is_open]

        # (5) equity identity. Position cost is what its shares were bought for, commissions
        #     included; a sale moves the cost of the shares it sold into a closed trade whose
        #     pnl = proceeds - that cost. So
        #       cash + sum(position cost) = initial - sum(buy costs) + sum(proceeds)
        #                                   + (sum(buy costs) - sum(closed cost))
        #                                 = initial + sum(closed pnl)
        fill_by_id = {f.id: f for f in fills}
        for trade in closed:
            f = fill_by_id[trade.fill_id]
            assert trade.proceeds == f.quantity * f.price - f.commission - f.tax
            assert trade.pnl == trade.proceeds - trade.cost
            assert trade.quantity == f.quantity
        assert len(closed) == sum(1 for f in fills if f.side == "sell")
        assert account_cash + sum(p.cost for p in positions) == INITIAL_CASH + sum(t.pnl for t in closed)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(operations=st.lists(OPERATIONS, min_size=15, max_size=30))
def test_random_operations_keep_the_account_consistent(property_engine: Engine, krx_calendar: MarketCalendar,
                                                       operations: list[tuple[Any, ...]]) -> None:
    with property_engine.connect() as connection:
        transaction = connection.begin()
        try:
            driver = Driver(connection, krx_calendar)
            driver.open_positions()
            for operation in operations:
                driver.run(operation)
        finally:
            transaction.rollback()
