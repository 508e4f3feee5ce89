"""Submitting orders and keeping the record of them, whatever the broker.

Every order passes the risk gate first (``services.risk_manager.gate``); one it
refuses is recorded ``rejected`` with the reason and never reaches the broker. The
paper broker keeps its orders in ``orders`` itself, in the job's transaction. An
order for a live broker is recorded there (``dry_run`` false) as an *intent* in the
job's transaction and sent only after that transaction has committed, by
``live_orders.send_pending``, which claims it first: so a crash at any point neither
loses the record of an order KIS took nor sends it twice (that module states how,
and its limits).
Fills reported by the broker are copied into ``fills`` once each.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, bindparam, func, insert, select, update

from services.common.database import dialect_insert
from services.trading_engine.models import FillRow, OrderRow
from services.trading_engine.orders import (
    OPEN_STATUSES,
    Broker,
    BrokerError,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    order_number_key,
)
from services.trading_engine.paper import PaperBroker

if TYPE_CHECKING:
    from services.risk_manager.gate import RiskGate

logger = logging.getLogger(__name__)


def submit(broker: Broker, connection: Connection, user_id: str, request: OrderRequest, now: datetime,
           gate: RiskGate) -> Order:
    """Place ``request`` once (a known ``client_order_id`` returns the recorded order),
    if the risk gate lets it through; a refused order is recorded ``rejected`` with
    the gate's reason. The paper broker takes it at once; for a live broker it is
    recorded as an intent (``new``, no broker order id, not sent) for
    ``live_orders.send_pending`` to send once the caller's transaction has committed."""
    recorded = _recorded(connection, user_id, request.client_order_id)
    if recorded is not None:
        return recorded
    refusal = gate.refusal(request)
    if refusal is not None:
        logger.warning("order %s refused by the risk gate: %s", request.client_order_id, refusal)
        return _record(connection, broker, user_id, request, now, OrderStatus.REJECTED, f"risk: {refusal}")
    if broker.dry_run:
        order = broker.place_order(request)
        gate.placed(order)
        return order
    order = _record(connection, broker, user_id, request, now, OrderStatus.NEW, request.reason)
    gate.placed(order)  # counted against the next orders as if it were open at the broker
    return order


def _recorded(connection: Connection, user_id: str, client_order_id: str) -> Order | None:
    row = connection.execute(select(OrderRow.__table__).where(
        OrderRow.user_id == user_id, OrderRow.client_order_id == client_order_id)).first()
    return None if row is None else _order_of_row(row)


def _record(connection: Connection, broker: Broker, user_id: str, request: OrderRequest, now: datetime,
            status: OrderStatus, reason: str) -> Order:
    """Insert the order's row; returns it as recorded."""
    connection.execute(insert(OrderRow).values(
        user_id=user_id, client_order_id=request.client_order_id, broker=broker.name, broker_order_id=None,
        trading_date=request.trading_date, ticker=request.ticker, side=request.side.value,
        order_type=request.order_type.value, quantity=request.quantity, limit_price=request.limit_price,
        status=status.value, filled_quantity=0, reserved_cash=0, reason=reason[:300],
        dry_run=broker.dry_run, created_at=now, updated_at=now))
    return _recorded(connection, user_id, request.client_order_id)  # type: ignore[return-value]


def cancel_order(broker: Broker, connection: Connection, user_id: str, order: Order, reason: str,
                 now: datetime) -> bool:
    """Cancel what is left of ``order``, saying why; False if the broker could not."""
    if isinstance(broker, PaperBroker):
        return broker.cancel(order.order_id, reason).status is OrderStatus.CANCELLED
    open_rows = connection.execute(select(OrderRow.id, OrderRow.broker_order_id).where(
        OrderRow.user_id == user_id, OrderRow.dry_run.is_(False),
        OrderRow.status.in_([s.value for s in OPEN_STATUSES]))).all()
    row_id = next((row.id for row in open_rows if row.broker_order_id
                   and order_number_key(row.broker_order_id) == order_number_key(order.order_id)), None)
    if row_id is None:
        logger.warning("open order %s was not placed by this orchestrator: left alone", order.order_id)
        return False
    try:
        cancelled = broker.cancel(order.order_id)
    except BrokerError as exc:
        logger.error("order %s not cancelled (%s): %s", order.order_id, reason, exc)
        return False
    connection.execute(update(OrderRow).where(OrderRow.id == row_id).values(
        status=cancelled.status.value, reason=f"{order.reason}; {reason}"[:300], updated_at=now))
    return cancelled.status is OrderStatus.CANCELLED


def record_broker_fills(connection: Connection, user_id: str, fills: list[Fill]) -> int:
    """Copy a live broker's fills into ``fills``; returns how many rows were new.

    KIS reports each order's fills as running totals (filled quantity, average price,
    fees on the whole amount), so a fill row is what the totals grew by since the rows
    already recorded for the order: copying the same totals twice adds nothing, and an
    order filled over several ticks is counted once."""
    new = 0
    for fill in fills:
        order_id = _order_row_of(connection, user_id, fill)
        if order_id is None:
            logger.warning("fill of order %s that this orchestrator did not place: not recorded", fill.order_id)
            continue
        recorded = connection.execute(_RECORDED_FILLS, {"order_id": order_id}).one()
        step = fill_increment(fill, *recorded)
        if step is None:
            continue
        key = f"{fill.order_id}:{fill.trade_date}:from:{int(recorded[0])}"  # two copiers of one step collide
        statement = dialect_insert(connection, _FILLS).values(
            order_id=order_id, fill_key=key, user_id=user_id, ticker=fill.ticker, side=fill.side.value, quantity=step.quantity, price=step.price,
            commission=step.commission, tax=step.tax, trade_date=fill.trade_date, settles_on=fill.settles_on,
            filled_at=fill.filled_at, dry_run=False).on_conflict_do_nothing().returning(_FILLS.c.id)
        new += connection.execute(statement).scalar() is not None  # rowcount: -1 on psycopg here
    return new


def _order_row_of(connection: Connection, user_id: str, fill: Fill) -> int | None:
    """Our live order a broker's fill belongs to: same order number (however KIS pads
    it) on the fill's trade date (KIS numbers orders afresh each day)."""
    rows = connection.execute(select(OrderRow.id, OrderRow.broker_order_id).where(
        OrderRow.user_id == user_id, OrderRow.dry_run.is_(False), OrderRow.trading_date == fill.trade_date,
        OrderRow.broker_order_id.is_not(None))).all()
    return next((row.id for row in rows if order_number_key(row.broker_order_id) == order_number_key(fill.order_id)), None)


_FILLS = FillRow.__table__
_RECORDED_FILLS = select(
    func.coalesce(func.sum(_FILLS.c.quantity), 0), func.coalesce(func.sum(_FILLS.c.quantity * _FILLS.c.price), 0),
    func.coalesce(func.sum(_FILLS.c.commission), 0), func.coalesce(func.sum(_FILLS.c.tax), 0),
).where(_FILLS.c.order_id == bindparam("order_id"))


def fill_increment(total: Fill, quantity: int, amount: int, commission: int, tax: int) -> Fill | None:
    """What an order's running ``total`` adds to the ``quantity``, ``amount``,
    ``commission`` and ``tax`` already recorded: the new shares at the price that makes
    the amounts add up (rounded to KRW), and the rest of the fees. None if nothing."""
    added = total.quantity - int(quantity)
    if added <= 0:
        return None
    price = round((total.quantity * total.price - int(amount)) / added)
    return replace(total, quantity=added, price=max(price, 1), commission=max(total.commission - int(commission), 0),
                   tax=max(total.tax - int(tax), 0))


def _order_of_row(row: OrderRow) -> Order:
    from services.trading_engine.orders import OrderType, Side

    return Order(row.broker_order_id or str(row.id), row.client_order_id, row.trading_date, row.ticker,
                 Side(row.side), OrderType(row.order_type), int(row.quantity),
                 None if row.limit_price is None else int(row.limit_price), OrderStatus(row.status),
                 int(row.filled_quantity), row.reason, bool(row.dry_run))


def client_order_id(dry_run: bool, user_id: str, day: date, ticker: str, purpose: str) -> str:
    """The id that makes an order idempotent: one per (mode, user, date, ticker, purpose)."""
    return f"{'paper' if dry_run else 'live'}:{user_id}:{day.isoformat()}:{ticker}:{purpose}"
