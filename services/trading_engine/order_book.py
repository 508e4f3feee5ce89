"""Submitting orders and keeping the record of them, whatever the broker.

Every order passes the risk gate first (``services.trading_engine.gate``); one it
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
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, insert, select

from services.common.database import dialect_insert
from services.common.job_api import Account
from services.trading_engine.models import FillRow, OrderRow
from services.trading_engine.orders import (
    Broker,
    BrokerError,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    order_number_key,
)

if TYPE_CHECKING:
    from services.trading_engine.gate import RiskGate

logger = logging.getLogger(__name__)


def submit(broker: Broker, connection: Connection, request: OrderRequest, now: datetime,
           gate: RiskGate) -> Order:
    """Place ``request`` once (a known ``client_order_id`` returns the recorded order),
    if the risk gate lets it through; a refused order is recorded ``rejected`` with
    the gate's reason and never reaches the broker."""
    if recorded_order(connection, broker.account.user_id, request.client_order_id) is not None:
        return broker.place_order(request)  # a known client order id: the broker returns the first order
    refusal = gate.refusal(request)
    if refusal is not None:
        logger.warning("order %s refused by the risk gate: %s", request.client_order_id, refusal)
        record_order(connection, broker.name, broker.account, request, now, OrderStatus.REJECTED,
                     f"risk: {refusal}")
        return broker.place_order(request)  # as the broker shows a recorded order
    order = broker.place_order(request)
    gate.placed(order)
    return order


def recorded_order(connection: Connection, user_id: str, client_order_id: str) -> Order | None:
    """The user's order of ``client_order_id``, as recorded; None if there is none."""
    row = connection.execute(select(OrderRow.__table__).where(
        OrderRow.user_id == user_id, OrderRow.client_order_id == client_order_id)).first()
    return None if row is None else order_of_row(row)


def record_order(connection: Connection, broker_name: str, account: Account, request: OrderRequest, now: datetime,
                 status: OrderStatus, reason: str) -> Order:
    """Insert the order's row (no broker order id yet); returns it as recorded."""
    connection.execute(insert(OrderRow).values(
        user_id=account.user_id, client_order_id=request.client_order_id, broker=broker_name, broker_order_id=None,
        trading_date=request.trading_date, ticker=request.ticker, side=request.side.value,
        order_type=request.order_type.value, quantity=request.quantity, limit_price=request.limit_price,
        status=status.value, filled_quantity=0, reserved_cash=0, reason=reason[:300],
        dry_run=account.dry_run, created_at=now, updated_at=now))
    return recorded_order(connection, account.user_id, request.client_order_id)  # type: ignore[return-value]


def cancel_order(broker: Broker, order: Order, reason: str) -> bool:
    """Cancel what is left of ``order``, saying why; False if the broker could not."""
    try:
        return broker.cancel(order.order_id, reason).status is OrderStatus.CANCELLED
    except BrokerError as exc:
        logger.error("order %s not cancelled (%s): %s", order.order_id, reason, exc)
        return False


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
        step = fill_increment(fill, *(int(value) for value in recorded))
        if step is None:
            continue
        key = f"{fill.order_id}:{fill.trade_date}:from:{int(recorded[0])}"  # two copiers of one step collide
        statement = dialect_insert(connection, _FILLS).values(
            order_id=order_id, fill_key=key, user_id=user_id, ticker=fill.ticker, side=fill.side.value,
            quantity=step.quantity, price=step.price, commission=step.commission, tax=step.tax,
            trade_date=fill.trade_date, settles_on=fill.settles_on,
            filled_at=fill.filled_at, dry_run=False).on_conflict_do_nothing().returning(_FILLS.c.id)
        new += connection.execute(statement).scalar() is not None  # rowcount: -1 on psycopg here
    return new


def _order_row_of(connection: Connection, user_id: str, fill: Fill) -> int | None:
    """Our live order a broker's fill belongs to: same order number (however KIS pads
    it) on the fill's trade date (KIS numbers orders afresh each day)."""
    rows = connection.execute(select(OrderRow.id, OrderRow.broker_order_id).where(
        OrderRow.user_id == user_id, OrderRow.dry_run.is_(False), OrderRow.trading_date == fill.trade_date,
        OrderRow.broker_order_id.is_not(None))).all()
    number = order_number_key(fill.order_id)
    return next((row.id for row in rows if order_number_key(row.broker_order_id) == number), None)


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


def order_of_row(row: Any) -> Order:
    return Order(row.broker_order_id or str(row.id), row.client_order_id, row.trading_date, row.ticker,
                 Side(row.side), OrderType(row.order_type), int(row.quantity),
                 None if row.limit_price is None else int(row.limit_price), OrderStatus(row.status),
                 int(row.filled_quantity), row.reason, bool(row.dry_run))


def client_order_id(account: Account, day: date, ticker: str, purpose: str) -> str:
    """The id that makes an order idempotent: one per (mode, user, date, ticker, purpose)."""
    return f"{account.mode}:{account.user_id}:{day.isoformat()}:{ticker}:{purpose}"
