"""The live broker as the jobs use it: the KIS adapter (orders over HTTP, no database)
joined to the account's record of its orders, on the job's connection.

Placing records an *intent* in the job's transaction; ``live_orders.send_pending``
sends it once that transaction has committed (so no crash sends an order twice or
loses one). Until it is at KIS an intent counts as an open order: the risk gate
counts its buy, a tick does not sell its ticker twice, and a halt cancels its buy
before it goes out. Observing records what KIS filled and keeps each position's
high-water mark (KIS does not).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, select, update

from services.common.clock import Clock
from services.common.database import upsert
from services.common.job_api import Account
from services.common.market_calendar import KRX_TZ
from services.trading_engine.live_orders import UNSENT
from services.trading_engine.models import OrderRow, PositionRow
from services.trading_engine.order_book import order_of_row, record_broker_fills, record_order
from services.trading_engine.orders import (
    OPEN_STATUSES,
    Balance,
    BrokerError,
    Cash,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    Position,
    order_number_key,
)

logger = logging.getLogger(__name__)

INTENT_PREFIX = "intent:"  # the order id of an intent: its row, until KIS numbers it


class BrokerAdapter(Protocol):
    """What the live broker needs of a broker's API (``KisBroker``)."""

    name: str

    def quotes(self, tickers: list[str]) -> dict[str, int]: ...
    def cancel(self, order_id: str) -> Order: ...
    def open_orders(self) -> list[Order]: ...
    def fills(self, day: date) -> list[Fill]: ...
    def positions(self) -> list[Position]: ...
    def cash(self) -> Cash: ...


class LiveBroker:
    """Implements :class:`~services.trading_engine.orders.Broker` for a live account."""

    def __init__(self, adapter: BrokerAdapter, connection: Connection, *, user_id: str, clock: Clock) -> None:
        self.adapter = adapter
        self.connection = connection
        self.account = Account(user_id, dry_run=False)
        self.clock = clock
        self.name = adapter.name

    def quotes(self, tickers: Sequence[str], moment: datetime) -> dict[str, int]:
        return dict(self.adapter.quotes(list(tickers)))

    def observe(self, prices: Mapping[str, int], moment: datetime, caps: Mapping[str, int] | None = None) -> int:
        """Record KIS's fills of ``moment``'s day and raise the high-water marks."""
        day = moment.astimezone(KRX_TZ).date()
        fills = record_broker_fills(self.connection, self.account.user_id, self.adapter.fills(day))
        rows = [{"user_id": self.account.user_id, "dry_run": False, "ticker": p.ticker, "quantity": p.quantity,
                 "cost": p.cost, "opened_on": p.opened_on, "high_water": max(p.high_water, prices.get(p.ticker, 0))}
                for p in self.adapter.positions()]
        upsert(self.connection, PositionRow.__table__, rows, ["user_id", "dry_run", "ticker"], keep=["opened_on"])
        return fills

    def place_order(self, request: OrderRequest) -> Order:
        """Record ``request`` as an intent, sent after the job's transaction commits."""
        mine = (OrderRow.user_id == self.account.user_id) & (OrderRow.client_order_id == request.client_order_id)
        if self.connection.execute(select(OrderRow.id).where(mine)).first() is None:
            record_order(self.connection, self.name, self.account, request, self.clock.now(), OrderStatus.NEW,
                         request.reason)
        return _live_order(self.connection.execute(select(OrderRow.__table__).where(mine)).one())

    def cancel(self, order_id: str, reason: str = "cancelled") -> Order:
        """An intent not yet claimed for sending is cancelled here; an order at KIS is
        cancelled there, if this orchestrator placed it (else left alone, unchanged)."""
        if order_id.startswith(INTENT_PREFIX):
            return self._cancel_intent(int(order_id.removeprefix(INTENT_PREFIX)), reason)
        open_rows = self.connection.execute(select(OrderRow.id, OrderRow.broker_order_id, OrderRow.reason).where(
            OrderRow.user_id == self.account.user_id, OrderRow.dry_run.is_(False),
            OrderRow.status.in_([s.value for s in OPEN_STATUSES]))).all()
        row = next((row for row in open_rows if row.broker_order_id
                    and order_number_key(row.broker_order_id) == order_number_key(order_id)), None)
        if row is None:
            raise BrokerError(f"open order {order_id} was not placed by this orchestrator: left alone")
        cancelled = self.adapter.cancel(order_id)
        self.connection.execute(update(OrderRow).where(OrderRow.id == row.id).values(
            status=cancelled.status.value, reason=f"{row.reason}; {reason}"[:300], updated_at=self.clock.now()))
        return cancelled

    def _cancel_intent(self, row_id: int, reason: str) -> Order:
        """Cancel an intent no process has claimed for sending (a claimed one is in
        doubt: ``send_pending`` settles it)."""
        mine = (OrderRow.id == row_id) & (OrderRow.user_id == self.account.user_id) & OrderRow.dry_run.is_(False)
        row = self.connection.execute(select(OrderRow.__table__).where(mine)).first()
        if row is None:  # not a live order of this account (another user's, or a paper one)
            raise BrokerError(f"no live order {INTENT_PREFIX}{row_id} of {self.account.describe()}: left alone")
        self.connection.execute(update(OrderRow).where(mine, UNSENT, OrderRow.sent_at.is_(None)).values(
            status=OrderStatus.CANCELLED.value, reason=f"{row.reason}; {reason}"[:300], updated_at=self.clock.now()))
        return _live_order(self.connection.execute(select(OrderRow.__table__).where(mine)).one())

    def open_orders(self) -> list[Order]:
        """KIS's open orders and the intents not (known to be) at KIS yet."""
        intents = self.connection.execute(select(OrderRow.__table__).where(
            OrderRow.user_id == self.account.user_id, UNSENT).order_by(OrderRow.id)).all()
        return self.adapter.open_orders() + [_live_order(row) for row in intents]

    def fills(self, day: date) -> list[Fill]:
        return self.adapter.fills(day)

    def positions(self) -> list[Position]:
        return self.adapter.positions()

    def cash(self) -> Cash:
        return self.adapter.cash()

    def balance(self) -> Balance:
        cash = self.adapter.cash()
        return Balance(cash.available + cash.held_back, None)

    def end_of_day(self, day: date) -> int:
        return 0  # KIS ends its day orders itself


def _live_order(row: Any) -> Order:
    """A recorded live order; an intent numbered by its row until KIS numbers it."""
    order = order_of_row(row)
    return order if row.broker_order_id else replace(order, order_id=f"{INTENT_PREFIX}{row.id}")
