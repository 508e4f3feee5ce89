"""The broker contract: what every ``Broker`` does, checked against both the paper
broker and the live broker (the KIS adapter on the fake KIS server), so the jobs can
hold either without asking which.

Each broker comes in a :class:`Desk` that plays the rest of the world: ``deliver``
commits the job's transaction and lets the orders reach the broker (the live
broker's intents are sent after the commit), ``exchange_fills`` makes the market fill
an open order at a price (the paper broker fills on an observed price; the fake KIS
reports the fill, as KIS does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from services.common.clock import FixedClock
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.kis import KisBroker, KisClient, KisConfig
from services.trading_engine.live_broker import LiveBroker
from services.trading_engine.live_orders import send_pending
from services.trading_engine.orders import Broker, Order, OrderRequest, OrderStatus, OrderType, Side
from services.trading_engine.paper import PaperBroker
from tests.conftest import make_settings
from tests.trading_engine import live_crash_worker as worker
from tests.trading_engine.fake_kis_server import FakeKis, serve
from tests.trading_engine.test_kis import FakeTime

DAY, PREVIOUS, START = worker.DAY, worker.PREVIOUS, worker.START  # 2026-03-05, 08:45
TICKER, CLOSE, PRICE = "005930", 71_000, 71_500  # yesterday's close; the price the market trades at today
USER = "u1"
OPENING_CASH = 10_000_000


def request(client_order_id: str, side: Side = Side.BUY, quantity: int = 1, order_type: OrderType = OrderType.MARKET,
            limit: int | None = None) -> OrderRequest:
    return OrderRequest(f"contract:{client_order_id}", DAY, TICKER, side, quantity, order_type, limit, "contract")


@dataclass
class Desk:
    """One broker and the world around it."""

    session_factory: Any
    make: Callable[[Any, datetime], Broker]
    send: Callable[[], None]
    fill_at_exchange: Callable[[Order, int], None]
    moment: datetime = START
    _transaction: Any = field(default=None, repr=False)

    @contextmanager
    def broker(self) -> Iterator[Broker]:
        """The broker in a job's transaction, committed at the end."""
        with self.session_factory.begin() as session:
            yield self.make(session.connection(), self.moment)

    def deliver(self) -> None:
        """After the job's commit: the orders reach the broker."""
        self.send()

    def exchange_fills(self, order: Order, price: int) -> int:
        """The market fills ``order`` at ``price``; the broker observes it. Returns the new fills seen."""
        self.moment += timedelta(minutes=20)
        self.fill_at_exchange(order, price)
        with self.broker() as broker:
            return broker.observe({order.ticker: price}, self.moment)


def seed_previous_close(session_factory: Any) -> None:
    from services.data_collector.models import DailyPrice

    with session_factory.begin() as session:
        session.execute(insert(DailyPrice).values(
            date=PREVIOUS, ticker=TICKER, open=CLOSE, high=CLOSE, low=CLOSE, close=CLOSE, volume=1_000_000,
            value=CLOSE * 1_000_000, change_pct=0.0, market_cap=CLOSE * 10**7, market="KOSPI", halted=False))


def paper_desk(session_factory: Any, krx_calendar: Any) -> Desk:
    settings = make_settings(user_id=USER)

    def make(connection: Any, moment: datetime) -> Broker:
        return PaperBroker(connection, user_id=USER, fees=FeeSchedule.from_settings(settings), calendar=krx_calendar,
                           clock=FixedClock(moment), initial_cash=OPENING_CASH,
                           quote_source=lambda tickers, at: {TICKER: PRICE})

    return Desk(session_factory, make, send=lambda: None, fill_at_exchange=lambda order, price: None)


@contextmanager
def live_desk(session_factory: Any, tmp_path: Path) -> Iterator[Desk]:
    clock = FakeTime(START)
    state = FakeKis(app_key=worker.APP_KEY, app_secret=worker.APP_SECRET, cano="12345678", acnt_prdt_cd="01",
                    clock=clock.epoch, prices={TICKER: str(PRICE)})
    state.orders = []
    with serve(state) as kis:
        settings = worker.live_settings(kis.url, tmp_path / "kis", kis_requests_per_second="1000")
        config = KisConfig.from_settings(settings)
        client = KisClient(config, cache_dir=tmp_path / "kis", clock=clock, monotonic=clock.monotonic,
                           sleep=clock.sleep)
        adapter = KisBroker(config, client, FeeSchedule.from_settings(settings), clock=clock)

        def make(connection: Any, moment: datetime) -> Broker:
            clock.wall = max(clock.wall, moment)
            return LiveBroker(adapter, connection, user_id=USER, clock=FixedClock(moment))

        def fill_at_exchange(order: Order, price: int) -> None:
            [row] = [row for row in kis.orders if row["pdno"] == order.ticker and int(row["rmn_qty"]) > 0]
            quantity = int(row["rmn_qty"])
            row.update(tot_ccld_qty=str(quantity), rmn_qty="0", avg_prvs=str(price),
                       tot_ccld_amt=str(price * quantity))

        yield Desk(session_factory, make, send=lambda: send_pending(adapter, session_factory, USER, clock) and None,
                   fill_at_exchange=fill_at_exchange)
        assert kis.problems == []


@pytest.fixture(params=["paper", "live"])
def desk(request: pytest.FixtureRequest, session_factory: Any, krx_calendar: Any, tmp_path: Path) -> Iterator[Desk]:
    seed_previous_close(session_factory)
    if request.param == "paper":
        yield paper_desk(session_factory, krx_calendar)
    else:
        with live_desk(session_factory, tmp_path) as live:
            yield live


def open_orders_of(desk: Desk) -> list[Order]:
    with desk.broker() as broker:
        return [order for order in broker.open_orders() if order.ticker == TICKER]


# --- the contract --------------------------------------------------------------------------------------


def test_quotes_are_the_prices_observed_of_the_tickers_asked(desk: Desk) -> None:
    with desk.broker() as broker:
        assert broker.quotes([TICKER], START + timedelta(minutes=30)) == {TICKER: PRICE}


def test_a_placed_order_is_open_until_it_is_cancelled(desk: Desk) -> None:
    with desk.broker() as broker:
        placed = broker.place_order(request("limit-buy", order_type=OrderType.LIMIT, limit=70_000))
    assert (placed.status, placed.ticker, placed.side, placed.quantity) == (OrderStatus.NEW, TICKER, Side.BUY, 1)
    desk.deliver()
    [listed] = open_orders_of(desk)
    assert (listed.side, listed.quantity, listed.limit_price, listed.remaining) == (Side.BUY, 1, 70_000, 1)
    with desk.broker() as broker:
        cancelled = broker.cancel(listed.order_id, "contract: cancelled")
    assert cancelled.status is OrderStatus.CANCELLED
    assert open_orders_of(desk) == []


def test_placing_a_known_client_order_id_again_returns_the_first_order(desk: Desk) -> None:
    with desk.broker() as broker:
        first = broker.place_order(request("once"))
        again = broker.place_order(request("once"))
    assert again == first
    desk.deliver()
    assert len(open_orders_of(desk)) == 1


def test_a_fill_is_reported_once_in_the_fills_of_its_day(desk: Desk) -> None:
    with desk.broker() as broker:
        broker.place_order(request("market-buy", quantity=3))
    desk.deliver()
    [order] = open_orders_of(desk)
    assert desk.exchange_fills(order, PRICE) == 1
    with desk.broker() as broker:
        assert broker.observe({TICKER: PRICE}, desk.moment + timedelta(minutes=1)) == 0  # nothing new
        fills = [fill for fill in broker.fills(DAY) if fill.ticker == TICKER]
        assert [(f.side, f.quantity, f.price, f.trade_date) for f in fills] == [(Side.BUY, 3, PRICE, DAY)]
        assert fills[0].commission > 0 and fills[0].tax == 0  # a buy pays commission, no tax
    assert open_orders_of(desk) == []


def test_cash_available_covers_what_has_settled_and_nothing_is_negative(desk: Desk) -> None:
    with desk.broker() as broker:
        cash = broker.cash()
    assert cash.available >= cash.settled >= 0 and cash.held_back >= 0


def test_the_balance_is_the_cash_with_what_open_buys_hold_back(desk: Desk) -> None:
    with desk.broker() as broker:
        broker.place_order(request("held", order_type=OrderType.LIMIT, limit=70_000))
    desk.deliver()
    with desk.broker() as broker:
        balance, cash = broker.balance(), broker.cash()
    assert balance.cash == cash.available + cash.held_back
    if balance.opening is not None:  # paper: a buy not filled yet spends nothing, it only holds back
        assert (balance.cash, cash.held_back) == (OPENING_CASH, 70_000 + 10)  # 0.015% of 70,000 = 10.5, floored


def test_the_opening_balance_is_the_cash_of_an_untouched_account_or_unknown(desk: Desk) -> None:
    with desk.broker() as broker:
        balance = broker.balance()
    assert balance.opening is None or balance.opening == balance.cash == OPENING_CASH


def test_the_end_of_the_day_ends_exactly_the_orders_it_reports(desk: Desk) -> None:
    with desk.broker() as broker:
        broker.place_order(request("day-limit", order_type=OrderType.LIMIT, limit=70_000))
    desk.deliver()
    before = len(open_orders_of(desk))
    with desk.broker() as broker:
        ended = broker.end_of_day(DAY)
    assert ended >= 0 and len(open_orders_of(desk)) == before - ended


def test_every_order_and_fill_belongs_to_the_brokers_account_mode(desk: Desk) -> None:
    with desk.broker() as broker:
        broker.place_order(request("mode"))
        mode = broker.account.dry_run
    desk.deliver()
    [order] = open_orders_of(desk)
    desk.exchange_fills(order, PRICE)
    with desk.broker() as broker:
        assert {fill.dry_run for fill in broker.fills(DAY)} == {mode}
        assert broker.account.user_id == USER
