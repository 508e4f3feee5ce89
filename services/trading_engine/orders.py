"""Orders, fills, positions and cash: the vocabulary every broker speaks, and the
``Broker`` protocol (DESIGN.md section 7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Protocol

from services.common.job_api import Account


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


@dataclass(frozen=True)
class Balance:
    cash: int  # available + held back
    opening: int | None  # what the account opened with; None: not known (live)


def order_number_key(order_id: str) -> tuple[str, ...]:
    """A broker order id compared without zero padding: KIS writes its order numbers
    with or without leading zeros ("91252-0000012345" is "91252-12345")."""
    return tuple(part.lstrip("0") for part in order_id.split("-"))


class BrokerError(Exception):
    """The broker could not do what was asked (network, refusal, bad answer)."""


class OrderRejected(BrokerError):
    """The broker refused the order; the message says why."""


class Broker(Protocol):
    """Where an account's orders go: the paper broker in dry run, the KIS broker live.
    One complete contract, so no job asks which one it holds (the contract tests in
    ``tests/trading_engine/test_broker_contract.py`` run against both)."""

    name: str
    account: Account

    def quotes(self, tickers: Sequence[str], moment: datetime) -> dict[str, int]:
        """Prices of ``tickers`` observed at ``moment`` in the session ({}: none observed)."""

    def observe(self, prices: Mapping[str, int], moment: datetime, caps: Mapping[str, int] | None = None) -> int:
        """Bring the account up to ``moment``, when ``prices`` were observed: fill what
        they allow (at most ``caps`` per ticker; the paper broker) or record what the
        broker filled (live), and raise the positions' high-water marks. Returns the
        number of new fills."""

    def place_order(self, request: OrderRequest) -> Order:
        """Take ``request``; a refused order comes back ``rejected`` with its reason.
        Placing a known ``client_order_id`` again returns the first order."""

    def cancel(self, order_id: str, reason: str = "cancelled") -> Order:
        """Cancel what is left of an open order, saying why."""

    def open_orders(self) -> list[Order]:
        """Orders still new or partially filled (live: including those recorded and not
        yet sent)."""

    def fills(self, day: date) -> list[Fill]:
        """Fills with trade date ``day``."""

    def positions(self) -> list[Position]:
        """Open positions (quantity > 0)."""

    def cash(self) -> Cash:
        """Cash available for buys, the part of it that has settled, and what is held
        back for open buys."""

    def balance(self) -> Balance:
        """The account's cash, held-back cash included (what equity counts), and what it
        opened with where the broker knows it (paper; live the first stored snapshot is
        the baseline). Read at every risk check: one look, not :meth:`cash`'s settlement."""

    def end_of_day(self, day: date) -> int:
        """Close ``day``'s session: the day orders still open expire. Returns how many."""
