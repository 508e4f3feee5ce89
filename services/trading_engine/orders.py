"""Orders, fills, positions and cash: the vocabulary every broker speaks, and the
``Broker`` protocol (DESIGN.md section 7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Protocol


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(str, Enum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(str, Enum):
    """new -> filled | partially_filled -> filled | cancelled; new -> rejected | cancelled."""

    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


OPEN_STATUSES = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True)
class OrderRequest:
    """What to trade. ``client_order_id`` makes placing idempotent: a second request
    with the same id returns the first order."""

    client_order_id: str
    trading_date: date
    ticker: str
    side: Side
    quantity: int
    order_type: OrderType = OrderType.MARKET
    limit_price: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Order:
    order_id: str
    client_order_id: str
    trading_date: date
    ticker: str
    side: Side
    order_type: OrderType
    quantity: int
    limit_price: int | None
    status: OrderStatus
    filled_quantity: int
    reason: str
    dry_run: bool

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled_quantity


@dataclass(frozen=True)
class Fill:
    order_id: str
    ticker: str
    side: Side
    quantity: int
    price: int
    commission: int
    tax: int
    trade_date: date
    settles_on: date
    filled_at: datetime
    dry_run: bool

    @property
    def amount(self) -> int:
        return self.quantity * self.price

    @property
    def cash_change(self) -> int:
        """What the fill does to cash: a buy pays amount + commission, a sell receives
        amount - commission - tax."""
        if self.side is Side.BUY:
            return -(self.amount + self.commission)
        return self.amount - self.commission - self.tax


@dataclass(frozen=True)
class Position:
    ticker: str
    quantity: int
    cost: int  # KRW paid for the shares held, buy commissions included
    opened_on: date
    high_water: int  # highest price seen since the position opened (trailing stop)

    @property
    def average_price(self) -> float:
        return self.cost / self.quantity if self.quantity else 0.0


@dataclass(frozen=True)
class Cash:
    """``available`` funds new buys now (sale proceeds count at once); ``settled`` is
    what has also settled (T+2)."""

    available: int
    settled: int
    held_back: int = 0  # held for open buys: not available, still the account's cash

    @property
    def unsettled(self) -> int:
        return self.available - self.settled


def order_number_key(order_id: str) -> tuple[str, ...]:
    """A broker order id compared without zero padding: KIS writes its order numbers
    with or without leading zeros ("91252-0000012345" is "91252-12345")."""
    return tuple(part.lstrip("0") for part in order_id.split("-"))


class BrokerError(Exception):
    """The broker could not do what was asked (network, refusal, bad answer)."""


class OrderRejected(BrokerError):
    """The broker refused the order; the message says why."""


class Broker(Protocol):
    """Where orders go: the paper broker in dry run, the KIS adapter live."""

    name: str
    dry_run: bool

    def place_order(self, request: OrderRequest) -> Order:
        """Submit ``request``; a refused order comes back ``rejected`` with its reason."""

    def cancel(self, order_id: str) -> Order:
        """Cancel what is left of an open order."""

    def positions(self) -> list[Position]:
        """Open positions (quantity > 0)."""

    def cash(self) -> Cash:
        """Cash available for buys, and the part of it that has settled."""

    def fills(self, day: date) -> list[Fill]:
        """Fills with trade date ``day``."""

    def open_orders(self) -> list[Order]:
        """Orders still new or partially filled."""
