"""Submitting orders and keeping the record of them, whatever the broker.

Every order passes the risk gate first (``services.risk_manager.gate``); one it
refuses is recorded ``rejected`` with the reason and never reaches the broker. The
paper broker keeps its orders in ``orders`` itself. Orders sent to a live broker
are recorded there too (``dry_run`` false) in the job's transaction, with the broker's
order id; fills reported by the broker are copied into ``fills`` once each. (A crash
between the broker's answer and the commit loses the record of that order: the
broker's order list is then the truth.)
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select, update

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
)
from services.trading_engine.paper import PaperBroker

if TYPE_CHECKING:
    from services.risk_manager.gate import RiskGate

logger = logging.getLogger(__name__)


def submit(broker: Broker, connection: Connection, user_id: str, request: OrderRequest, now: datetime,
           gate: RiskGate) -> Order:
    """Place ``request`` once (a known ``client_order_id`` returns the recorded order),
    if the risk gate lets it through; a refused order is recorded ``rejected`` with
    the gate's reason. This is the only caller of ``Broker.place_order``."""
    recorded = connection.execute(select(OrderRow.__table__).where(
        OrderRow.user_id == user_id, OrderRow.client_order_id == request.client_order_id)).first()
    if recorded is not None:
        return _order_of_row(recorded)
    refusal = gate.refusal(request)
    if refusal is not None:
        logger.warning("order %s refused by the risk gate: %s", request.client_order_id, refusal)
        _record(connection, broker, user_id, request, now, OrderStatus.REJECTED, f"risk: {refusal}")
        return _order_of_row(connection.execute(select(OrderRow.__table__).where(
            OrderRow.user_id == user_id, OrderRow.client_order_id == request.client_order_id)).one())
    if broker.dry_run:
        order = broker.place_order(request)
        gate.placed(order)
        return order
    _record(connection, broker, user_id, request, now, OrderStatus.NEW, request.reason)
    try:
        order = broker.place_order(request)
    except BrokerError as exc:
        logger.error("order %s not placed: %s", request.client_order_id, exc)
        order = Order("", request.client_order_id, request.trading_date, request.ticker, request.side,
                      request.order_type, request.quantity, request.limit_price, OrderStatus.REJECTED, 0,
                      f"broker error: {exc}"[:300], False)
    connection.execute(update(OrderRow).where(
        OrderRow.user_id == user_id, OrderRow.client_order_id == request.client_order_id).values(
        broker_order_id=order.order_id or None, status=order.status.value,
        reason=(order.reason or request.reason)[:300], updated_at=now))
    gate.placed(order)
    return order


def _record(connection: Connection, broker: Broker, user_id: str, request: OrderRequest, now: datetime,
            status: OrderStatus, reason: str) -> None:
    connection.execute(insert(OrderRow).values(
        user_id=user_id, client_order_id=request.client_order_id, broker=broker.name, broker_order_id=None,
        trading_date=request.trading_date, ticker=request.ticker, side=request.side.value,
        order_type=request.order_type.value, quantity=request.quantity, limit_price=request.limit_price,
        status=status.value, filled_quantity=0, reserved_cash=0, reason=reason[:300],
        dry_run=broker.dry_run, created_at=now, updated_at=now))


def cancel_order(broker: Broker, connection: Connection, user_id: str, order: Order, reason: str,
                 now: datetime) -> bool:
    """Cancel what is left of ``order``, saying why; False if the broker could not."""
    if isinstance(broker, PaperBroker):
        return broker.cancel(order.order_id, reason).status is OrderStatus.CANCELLED
    open_rows = connection.execute(select(OrderRow.id, OrderRow.broker_order_id).where(
        OrderRow.user_id == user_id, OrderRow.dry_run.is_(False),
        OrderRow.status.in_([s.value for s in OPEN_STATUSES]))).all()
    row_id = next((row.id for row in open_rows if row.broker_order_id
                   and _same_broker_id(row.broker_order_id, order.order_id)), None)
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


def _same_broker_id(recorded: str, reported: str) -> bool:
    """KIS reports order numbers with or without leading zeros ("91252-0000012345")."""
    return [part.lstrip("0") for part in recorded.split("-")] == [part.lstrip("0") for part in reported.split("-")]


def record_broker_fills(connection: Connection, user_id: str, fills: list[Fill]) -> int:
    """Copy a live broker's fills into ``fills`` (each once); returns how many were new."""
    new = 0
    for fill in fills:
        order_id = connection.scalar(select(OrderRow.id).where(
            OrderRow.user_id == user_id, OrderRow.broker_order_id == fill.order_id))
        if order_id is None:
            logger.warning("fill of order %s that this orchestrator did not place: not recorded", fill.order_id)
            continue
        statement = dialect_insert(connection, FillRow.__table__).values(
            order_id=order_id, fill_key=f"{fill.order_id}:{fill.quantity}:{fill.price}", user_id=user_id,
            ticker=fill.ticker, side=fill.side.value, quantity=fill.quantity, price=fill.price,
            commission=fill.commission, tax=fill.tax, trade_date=fill.trade_date, settles_on=fill.settles_on,
            filled_at=fill.filled_at, dry_run=False).on_conflict_do_nothing()
        new += connection.execute(statement).rowcount or 0
    return new


def _order_of_row(row: OrderRow) -> Order:
    from services.trading_engine.orders import OrderType, Side

    return Order(row.broker_order_id or str(row.id), row.client_order_id, row.trading_date, row.ticker,
                 Side(row.side), OrderType(row.order_type), int(row.quantity),
                 None if row.limit_price is None else int(row.limit_price), OrderStatus(row.status),
                 int(row.filled_quantity), row.reason, bool(row.dry_run))


def client_order_id(dry_run: bool, user_id: str, day: date, ticker: str, purpose: str) -> str:
    """The id that makes an order idempotent: one per (mode, user, date, ticker, purpose)."""
    return f"{'paper' if dry_run else 'live'}:{user_id}:{day.isoformat()}:{ticker}:{purpose}"
