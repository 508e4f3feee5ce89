"""Sending live orders so that none is placed twice, whatever crashes when.

``order_book.submit`` records a live order as an *intent* (status ``new``, no broker
order id, ``sent_at`` NULL) in the job's transaction. Once that transaction has
committed, :func:`send_pending` sends the user's intents, each in three steps with
their own short transactions:

1. **claim**: ``sent_at`` is set where it still has the value read (NULL for a new
   intent), and committed. A claim that changes no row means another process has
   the order: it is left to that one.
2. **send**: ``Broker.place_order``.
3. **record**: the broker's order id and status, or ``rejected`` with its reason.

A process that dies (or loses KIS's answer) between 1 and 3 leaves the order *in
doubt*: ``sent_at`` set, no order id, KIS may or may not have it. The next
:func:`send_pending` (the job's re-run, or the next monitoring tick) looks for it in
KIS's orders of its date (:func:`matching_order`): found, the row is linked to it;
not found and claimed more than :data:`RESEND_AFTER` ago, it is claimed again and
sent; not found but claimed recently, it is left for a later call. An intent of an
earlier trading date is never sent (KIS takes only today's orders): it is linked, or
recorded ``rejected`` ("not sent: its session is over").

Limits, stated plainly:

- KIS has no client order id: an order is recognised by its ticker, side, quantity,
  type, limit price and time. An order typed by hand in the same account with the
  same terms, after our claim, can be taken for ours.
- :data:`RESEND_AFTER` bounds how long a send may take between its claim and KIS
  receiving the POST. A process frozen in exactly that gap for longer (a stopped
  VM) and then resumed can still send a second order: its late answer is then
  refused by the record step and logged as a possible duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from services.common.clock import Clock
from services.common.market_calendar import KRX_TZ
from services.trading_engine.models import OrderRow
from services.trading_engine.order_book import record_broker_fills
from services.trading_engine.orders import (
    BrokerError,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    order_number_key,
)

logger = logging.getLogger(__name__)

#: How much earlier than our claim KIS's order time may read and still be the order
#: we sent: the clocks of our host and KIS's differ, and ``ord_tmd`` has whole seconds.
ORDER_TIME_SLACK = timedelta(seconds=60)
#: A claim this old whose order KIS does not list was never taken: it is sent again.
#: Longer than the longest ``KisBroker.place_order``: a token request and up to five
#: order POSTs (three rate-limit retries, one token reissue) of 10 s timeout each,
#: about a minute, with a wide margin.
RESEND_AFTER = timedelta(minutes=5)
SESSION_OVER = "not sent: its session is over"
_LINKED, _ABSENT, _UNKNOWN = object(), object(), object()  # what a look at the broker's list found

#: a broker's orders of one day, each with the time it was placed (None: not given)
Listing = list[tuple[Order, datetime | None]]


@runtime_checkable
class ListsDayOrders(Protocol):
    """A broker whose orders of a day can be listed with the time each was placed
    (``KisBroker``); what reconciles an order whose answer was lost."""

    def orders_placed_on(self, day: date) -> Listing:
        """The orders placed on ``day`` and when (None: the broker did not say)."""


class OrderApi(Protocol):
    """What sending needs of a live broker's API (``KisBroker``): it takes orders and
    reports their fills; the database side is this module's."""

    name: str

    def place_order(self, request: OrderRequest) -> Order: ...
    def fills(self, day: date) -> list[Fill]: ...


@dataclass(frozen=True)
class Intent:
    """A live order recorded but not (known to be) at the broker: its row's id, what
    to send, and the claim in force (None: never sent)."""

    id: int
    request: OrderRequest
    sent_at: datetime | None


@dataclass
class SendReport:
    """What :func:`send_pending` did: orders ``sent`` (and taken by the broker),
    ``linked`` to an order the broker already had, ``rejected`` (by the broker, the
    risk rule passed in, or because their session is over), left ``in_doubt``, and
    left ``unsent`` for a later call."""

    sent: int = 0
    linked: int = 0
    rejected: int = 0
    in_doubt: int = 0
    unsent: int = 0

    def __add__(self, other: SendReport) -> SendReport:
        return SendReport(self.sent + other.sent, self.linked + other.linked, self.rejected + other.rejected,
                          self.in_doubt + other.in_doubt, self.unsent + other.unsent)

    def summary(self) -> dict[str, int]:
        """The counts as a job summary reports them."""
        return {"sent": self.sent, "linked": self.linked, "send_rejected": self.rejected,
                "in_doubt": self.in_doubt, "unsent": self.unsent}


def matching_order(intent: Intent, listed: Sequence[tuple[Order, datetime | None]],
                   taken: set[tuple[str, ...]]) -> Order | None:
    """The broker's order that is ``intent``'s, if it lists one: same ticker, side,
    quantity, order type and limit price, placed at or after the intent's claim less
    :data:`ORDER_TIME_SLACK` (a time the broker did not give does not rule an order
    out), and not ``taken`` by another of our orders; the earliest of those."""
    earliest = intent.sent_at - ORDER_TIME_SLACK if intent.sent_at is not None else None
    wanted = intent.request
    candidates = [(placed_at, order) for order, placed_at in listed
                  if (order.ticker, order.side, order.quantity, order.order_type, order.limit_price)
                  == (wanted.ticker, wanted.side, wanted.quantity, wanted.order_type, wanted.limit_price)
                  and order_number_key(order.order_id) not in taken
                  and (earliest is None or placed_at is None or placed_at >= earliest)]
    candidates.sort(key=lambda pair: (pair[0] is None, pair[0] or datetime.min.replace(tzinfo=KRX_TZ)))
    return candidates[0][1] if candidates else None


def send_pending(broker: OrderApi, session_factory: sessionmaker[Session], user_id: str, clock: Clock, *,
                 buys_refused: str | None = None, sells_only: bool = False) -> SendReport:
    """Send, link or settle every live intent of ``user_id`` (see the module docstring);
    call it after the transaction that recorded them has committed. ``clock`` says
    when each claim is made and which day KIS is on (Asia/Seoul). ``buys_refused``:
    why no buy may go out now (a halt); a buy not at the broker is then recorded
    ``rejected`` with it instead of being sent. A send that fails other than by a
    refusal (KIS unreachable) ends the round: the rest wait for the next call.
    ``sells_only``: leave the buys for a later call (one made after a risk check)."""
    work = _Round(broker, session_factory, user_id, clock, buys_refused)
    intents = [intent for intent in _pending(session_factory, user_id)
               if not sells_only or intent.request.side is Side.SELL]
    report = work.report
    for index, intent in enumerate(intents):
        try:
            work.settle(intent)
        except BrokerError:
            left = intents[index + 1:]
            report.in_doubt += 1 + sum(1 for other in left if other.sent_at is not None)
            report.unsent += sum(1 for other in left if other.sent_at is None)
            logger.error("live orders of %s: a send failed; %d order(s) left for the next round", user_id,
                         len(left))
            break
    work.copy_fills()
    if report != SendReport():
        logger.info("live orders of %s: %d sent, %d linked, %d rejected, %d in doubt, %d unsent", user_id,
                    report.sent, report.linked, report.rejected, report.in_doubt, report.unsent)
    return report


class _Round:
    """One pass of :func:`send_pending` over the intents: the broker's order list of a
    day is read again only when the one in hand is older than a decision needs, and
    the fills of the orders it links are copied at the end."""

    def __init__(self, broker: OrderApi, session_factory: sessionmaker[Session], user_id: str, clock: Clock,
                 buys_refused: str | None) -> None:
        self.broker, self.session_factory, self.user_id, self.clock = broker, session_factory, user_id, clock
        self.buys_refused = buys_refused
        self.today = clock.now().astimezone(KRX_TZ).date()
        self.report = SendReport()
        self.listings: dict[date, tuple[datetime, Listing | None]] = {}  # by day: when read, what
        self.linked_fills: dict[date, set[str]] = {}  # order ids whose fills to copy, by day

    def settle(self, intent: Intent) -> None:
        """Take one intent as far as it can go now; raises the broker's error if its
        send failed (the intent is then in doubt)."""
        report, now = self.report, self.clock.now()
        if intent.request.trading_date > self.today:
            logger.info("order %s is for %s: not sent before its session", intent.request.client_order_id,
                        intent.request.trading_date)
            report.unsent += 1
            return
        if intent.sent_at is not None:  # in doubt: does the broker have it?
            verdict = self.find(intent, read_after=intent.sent_at)
            if verdict is not _ABSENT:
                return
            if now - intent.sent_at < RESEND_AFTER:
                logger.warning("order %s was sent at %s and KIS does not list it: in doubt until %s",
                               intent.request.client_order_id, intent.sent_at.isoformat(),
                               (intent.sent_at + RESEND_AFTER).isoformat())
                report.in_doubt += 1
                return
            # only a list read once the margin had passed may say it never arrived
            if self.find(intent, read_after=intent.sent_at + RESEND_AFTER) is not _ABSENT:
                return
        if intent.request.trading_date < self.today:
            refusal: str | None = SESSION_OVER
        elif self.buys_refused and intent.request.side is Side.BUY:
            refusal = f"risk: {self.buys_refused}"
        else:
            refusal = None
        if refusal is not None:
            if _reject(self.session_factory, intent, refusal, now):
                report.rejected += 1
                logger.warning("order %s %s", intent.request.client_order_id, refusal)
            return
        self.send(intent)

    def send(self, intent: Intent) -> None:
        claimed_at = self.clock.now()
        if not _claim(self.session_factory, intent, claimed_at):
            logger.info("order %s is being sent by another process", intent.request.client_order_id)
            return
        if intent.sent_at is not None:
            logger.warning("order %s: KIS does not list it %s after it was sent; sending it again",
                           intent.request.client_order_id, RESEND_AFTER)
        try:
            order = self.broker.place_order(intent.request)
        except BrokerError as exc:
            logger.error("order %s sent, but its outcome is unknown (%s): in doubt until KIS lists it or %s "
                         "pass", intent.request.client_order_id, exc, RESEND_AFTER)
            raise
        if _record_answer(self.session_factory, intent, claimed_at, order, self.clock.now()):
            if order.status is OrderStatus.REJECTED:
                self.report.rejected += 1
            else:
                self.report.sent += 1

    def link(self, intent: Intent, order: Order) -> None:
        if not _link(self.session_factory, intent, order, self.clock.now()):
            return
        self.report.linked += 1
        if order.filled_quantity > 0 and (not order.is_open or intent.request.trading_date < self.today):
            self.linked_fills.setdefault(intent.request.trading_date, set()).add(order.order_id)

    def find(self, intent: Intent, *, read_after: datetime) -> object:
        """Link ``intent`` to its order if the broker lists it (in a list read at or
        after ``read_after``); returns _LINKED, _ABSENT, or _UNKNOWN (counted in doubt)."""
        day = intent.request.trading_date
        listed = self.listing(day, read_after)
        if listed is None:
            self.report.in_doubt += 1
            return _UNKNOWN
        found = matching_order(intent, listed, self.taken(day))
        if found is None:
            return _ABSENT
        self.link(intent, found)
        return _LINKED

    def listing(self, day: date, read_after: datetime) -> Listing | None:
        """The broker's orders of ``day`` in a list read at or after ``read_after`` (the
        round's list, or a new read if that one is older); None if it cannot say."""
        read_at, listed = self.listings.get(day, (None, None))
        if read_at is not None and read_at >= read_after:
            return listed
        read_at, listed = self.clock.now(), None
        if not isinstance(self.broker, ListsDayOrders):
            logger.error("broker %s cannot list its orders: orders in doubt stay so", self.broker.name)
        else:
            try:
                listed = self.broker.orders_placed_on(day)
            except BrokerError as exc:
                logger.error("the broker's orders of %s cannot be read (%s): orders in doubt stay so", day, exc)
        self.listings[day] = (read_at, listed)
        return listed

    def taken(self, day: date) -> set[tuple[str, ...]]:
        """The broker order ids of our live orders of ``day``."""
        with self.session_factory() as session:
            numbers = session.scalars(select(OrderRow.broker_order_id).where(
                OrderRow.user_id == self.user_id, OrderRow.dry_run.is_(False), OrderRow.trading_date == day,
                OrderRow.broker_order_id.is_not(None)))
            return {order_number_key(number) for number in numbers if number}

    def copy_fills(self) -> None:
        """Record the fills of the orders linked that no monitoring tick will copy (done,
        or of an earlier day); an open order's are copied by the next tick."""
        for day, order_ids in sorted(self.linked_fills.items()):
            try:
                fills = [fill for fill in self.broker.fills(day) if fill.order_id in order_ids]
            except BrokerError as exc:
                logger.error("fills of the orders linked on %s not copied: %s", day, exc)
                continue
            with self.session_factory.begin() as session:
                record_broker_fills(session.connection(), self.user_id, fills)


# --- database steps, each its own short transaction ------------------------------------------


def has_pending(session_factory: sessionmaker[Session], user_id: str) -> bool:
    """Whether ``user_id`` has live orders recorded and not (known to be) at the broker."""
    with session_factory() as session:
        return session.execute(select(OrderRow.id).where(_unsent_of(user_id)).limit(1)).first() is not None


def _pending(session_factory: sessionmaker[Session], user_id: str) -> list[Intent]:
    with session_factory() as session:
        rows = session.execute(select(OrderRow.__table__).where(_unsent_of(user_id)).order_by(OrderRow.id)).all()
    return [Intent(row.id, OrderRequest(row.client_order_id, row.trading_date, row.ticker, Side(row.side),
                                        int(row.quantity), OrderType(row.order_type),
                                        None if row.limit_price is None else int(row.limit_price), row.reason),
                   row.sent_at) for row in rows]


def _still(intent: Intent) -> Any:
    """The row is still the pending intent as read, with the same claim."""
    sent = OrderRow.sent_at.is_(None) if intent.sent_at is None else OrderRow.sent_at == intent.sent_at
    return (OrderRow.id == intent.id) & UNSENT & sent


#: a live order recorded and not (known to be) at the broker: new, without its order id
UNSENT = OrderRow.dry_run.is_(False) & (OrderRow.status == OrderStatus.NEW.value) & OrderRow.broker_order_id.is_(None)


def _unsent_of(user_id: str) -> Any:
    return (OrderRow.user_id == user_id) & UNSENT


def _claim(session_factory: sessionmaker[Session], intent: Intent, now: datetime) -> bool:
    with session_factory.begin() as session:
        return bool(session.connection().execute(
            update(OrderRow.__table__).where(_still(intent)).values(sent_at=now, updated_at=now)).rowcount)


def _reject(session_factory: sessionmaker[Session], intent: Intent, reason: str, now: datetime) -> bool:
    with session_factory.begin() as session:
        return bool(session.connection().execute(update(OrderRow.__table__).where(_still(intent)).values(
            status=OrderStatus.REJECTED.value, reason=reason[:300], updated_at=now)).rowcount)


def _link(session_factory: sessionmaker[Session], intent: Intent, order: Order, now: datetime) -> bool:
    with session_factory.begin() as session:
        linked = session.connection().execute(update(OrderRow.__table__).where(_still(intent)).values(
            broker_order_id=order.order_id, status=order.status.value, filled_quantity=order.filled_quantity,
            updated_at=now)).rowcount
    if linked:
        logger.warning("order %s: KIS has it as %s (%s, %d of %d filled); linked",
                       intent.request.client_order_id,
                       order.order_id, order.status.value, order.filled_quantity, order.quantity)
    return bool(linked)


def _record_answer(session_factory: sessionmaker[Session], intent: Intent, claimed_at: datetime, order: Order,
                   now: datetime) -> bool:
    """Record the broker's answer to the send claimed at ``claimed_at``. False (logged
    at ERROR) if meanwhile another process took the order over and did not link it to
    this very order: the account may then hold a second one."""
    mine = _still(replace(intent, sent_at=claimed_at))
    rejected = order.status is OrderStatus.REJECTED
    values: dict[str, Any] = (
        {"status": OrderStatus.REJECTED.value, "reason": (order.reason or "rejected by the broker")[:300]}
        if rejected else {"broker_order_id": order.order_id, "status": order.status.value,
                          "filled_quantity": order.filled_quantity})
    with session_factory.begin() as session:
        connection = session.connection()
        if connection.execute(update(OrderRow.__table__).where(mine).values(**values, updated_at=now)).rowcount:
            if rejected:
                logger.warning("order %s rejected by the broker: %s", intent.request.client_order_id, order.reason)
            return True
        linked = connection.scalar(select(OrderRow.broker_order_id).where(OrderRow.id == intent.id))
    if not rejected and linked and order_number_key(linked) == order_number_key(order.order_id):
        return True  # another process found this order at KIS and linked it before the answer came back
    logger.error("order %s: KIS answered %s %s after another process took the order over; check the account "
                 "for a second order", intent.request.client_order_id, order.status.value, order.order_id)
    return False



