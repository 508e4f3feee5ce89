"""Live orders' records: cancelling only those this orchestrator placed, matched however
KIS writes the order number, the record following the broker's answer; and KIS's fills,
reported as running totals, copied once per increment."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from services.common.clock import FixedClock
from services.trading_engine.live_broker import LiveBroker
from services.trading_engine.models import FillRow, OrderRow
from services.trading_engine.order_book import cancel_order, record_broker_fills
from services.trading_engine.orders import Fill, Order, OrderStatus, OrderType, Side

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("Asia/Seoul"))
DAY = date(2026, 11, 20)


class FakeLiveBroker:
    name = "kis"

    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def cancel(self, order_id: str) -> Order:
        self.cancelled.append(order_id)
        return replace(open_buy(order_id), status=OrderStatus.CANCELLED)


def open_buy(order_id: str) -> Order:
    return Order(order_id, "", DAY, "005930", Side.BUY, OrderType.LIMIT, 10, 70_000, OrderStatus.NEW, 0, "entry",
                 False)


def test_a_live_buy_we_placed_is_cancelled_and_its_record_follows(session_factory: Any) -> None:
    with session_factory.begin() as session:
        session.execute(insert(OrderRow).values(
            user_id="u1", client_order_id="live:u1:2026-11-20:005930:entry", broker="kis",
            broker_order_id="91252-0000012345", trading_date=DAY, ticker="005930", side="buy", order_type="limit",
            quantity=10, limit_price=70_000, status="new", filled_quantity=0, reserved_cash=0, reason="entry",
            dry_run=False, created_at=NOW, updated_at=NOW))
    adapter = FakeLiveBroker()
    with session_factory.begin() as session:
        broker = LiveBroker(adapter, session.connection(), user_id="u1", clock=FixedClock(NOW))
        ours = cancel_order(broker, open_buy("91252-12345"), "cancelled: halted")
        theirs = cancel_order(broker, open_buy("91252-99"), "cancelled: halted")
    assert (ours, theirs) == (True, False)
    assert adapter.cancelled == ["91252-12345"]  # the order placed by hand in the same account is left alone
    with session_factory() as session:
        row = session.execute(select(OrderRow.status, OrderRow.reason)).one()
    assert row == ("cancelled", "entry; cancelled: halted")


# --- copying KIS's fills: running totals become one row per increment --------------------------------


def kis_total(quantity: int, average: int, commission: int, tax: int = 0) -> Fill:
    """An order's fills as KIS's daily list reports them: totals so far."""
    return Fill("91252-0000012345", "005930", Side.SELL, quantity, average, commission, tax, DAY, date(2026, 11, 24),
                NOW, False)


def test_an_order_filled_over_several_ticks_is_recorded_once_per_increment(session_factory: Any) -> None:
    with session_factory.begin() as session:
        session.execute(insert(OrderRow).values(
            user_id="u1", client_order_id="live:u1:2026-11-20:005930:exit", broker="kis",
            broker_order_id="91252-0000012345", trading_date=DAY, ticker="005930", side="sell", order_type="market",
            quantity=25, limit_price=None, status="partially_filled", filled_quantity=10, reserved_cash=0,
            reason="exit", dry_run=False, created_at=NOW, updated_at=NOW))
    copies = [kis_total(10, 70_000, 105, 1_400), kis_total(10, 70_000, 105, 1_400),  # the same totals twice
              kis_total(25, 70_200, 263, 3_510)]  # 15 more at (25 x 70,200 - 700,000) / 15 = 70,333.33
    new = []
    for copy in copies:
        with session_factory.begin() as session:
            new.append(record_broker_fills(session.connection(), "u1", [copy]))
    assert new == [1, 0, 1]
    with session_factory() as session:
        rows = session.execute(select(FillRow.quantity, FillRow.price, FillRow.commission, FillRow.tax)
                               .order_by(FillRow.id)).all()
    assert [tuple(row) for row in rows] == [(10, 70_000, 105, 1_400), (15, 70_333, 158, 2_110)]


def test_a_fill_belongs_to_the_order_of_its_own_day_however_kis_pads_the_number(session_factory: Any) -> None:
    for day, client_id in ((date(2026, 11, 19), "live:u1:2026-11-19:005930:exit"),
                           (DAY, "live:u1:2026-11-20:005930:exit")):
        with session_factory.begin() as session:  # KIS numbers orders afresh each day: the same number twice
            session.execute(insert(OrderRow).values(
                user_id="u1", client_order_id=client_id, broker="kis", broker_order_id="91252-12345", trading_date=day,
                ticker="005930", side="sell", order_type="market", quantity=25, limit_price=None, status="filled",
                filled_quantity=25, reserved_cash=0, reason="exit", dry_run=False, created_at=NOW, updated_at=NOW))
    with session_factory.begin() as session:
        assert record_broker_fills(session.connection(), "u1", [kis_total(25, 70_200, 263, 3_510)]) == 1
    with session_factory() as session:
        owner = session.execute(
            select(OrderRow.client_order_id).join(FillRow, FillRow.order_id == OrderRow.id)).scalar()
    assert owner == "live:u1:2026-11-20:005930:exit"



def test_a_live_broker_never_cancels_a_paper_order_or_another_users(session_factory: Any) -> None:
    with session_factory.begin() as session:
        for user, mode in (("u1", True), ("u2", False)):
            session.execute(insert(OrderRow).values(
                user_id=user, client_order_id=f"{'paper' if mode else 'live'}:{user}:2026-11-20:005930:entry",
                broker="paper" if mode else "kis", broker_order_id=None, trading_date=DAY, ticker="005930",
                side="buy", order_type="limit", quantity=10, limit_price=70_000, status="new", filled_quantity=0,
                reserved_cash=0, reason="entry", dry_run=mode, created_at=NOW, updated_at=NOW))
        ids = session.scalars(select(OrderRow.id).order_by(OrderRow.id)).all()
    adapter = FakeLiveBroker()
    with session_factory.begin() as session:
        broker = LiveBroker(adapter, session.connection(), user_id="u1", clock=FixedClock(NOW))
        assert [cancel_order(broker, open_buy(f"intent:{row_id}"), "cancelled: halted")
                for row_id in ids] == [False, False]
    assert adapter.cancelled == []
    with session_factory() as session:
        assert session.execute(select(OrderRow.status, OrderRow.reason)).all() == [("new", "entry"), ("new", "entry")]
