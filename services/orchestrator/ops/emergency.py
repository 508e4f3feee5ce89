"""The emergency stop of the account (``POST /api/emergency-stop``): halt trading,
cancel every open order, and with ``flatten`` sell every position at market.

All of it in one transaction of the account, as a trading job changes it
(``open_account(ctx).transaction()``): the halt (an existing one is kept, as
``halt`` keeps it), the cancels through the account's broker (paper: the cash the
buys held back is released; live: the ``LiveBroker`` cancels at KIS the orders this
orchestrator placed for the account, and the intents not yet sent), and the exits:
one market sell of each position's shares not still being sold, through the risk
gate as a protective exit (sells pass while halted), with the reason
``emergency stop: <reason>``. A live account's exits are sent after the commit, as
``position_monitoring`` sends its own.

Nothing is filled here: a paper exit fills at the next ``position_monitoring`` tick
of its trading date (today's session until its close, else the next session) like
any other exit, at the price observed then; a live one fills at KIS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from services.common.job_api import JobContext
from services.common.market_calendar import KRX_TZ
from services.orchestrator.ledger import MANUAL
from services.orchestrator.ops.arguments import InvalidArgument
from services.orchestrator.ops.halts import MAX_REASON
from services.orchestrator.runtime import Runtime

if TYPE_CHECKING:
    from services.risk_manager.halts import Halt
    from services.trading_engine.orders import Broker

#: the context's job name (the risk check the gate records says who checked)
JOB_NAME = "emergency_stop"
REASON_PREFIX = "emergency stop: "


@dataclass(frozen=True)
class EmergencyStop:
    halt: Halt  # the halt in force
    halt_made: bool  # False: a halt was already in force, and is kept as it was
    cancelled: int  # open orders cancelled
    not_cancelled: int  # open orders the broker could not cancel (live: logged)
    exit_orders: int  # market sells placed (flatten)
    positions: int  # open positions when it ran
    trading_date: date  # the exits' trading date
    sent: dict[str, int]  # live: what was sent to KIS after the commit ({} for paper)

    def summary(self) -> dict[str, Any]:
        return {"halted": True, "halt_made": self.halt_made, "cancelled": self.cancelled,
                "not_cancelled": self.not_cancelled, "exit_orders": self.exit_orders,
                "positions": self.positions, "trading_date": self.trading_date.isoformat(), **self.sent}


def reason_text(reason: str) -> str:
    """``reason`` with whitespace runs made one space: 1 to 300 characters, as ``halt``'s."""
    text = " ".join(reason.split())
    if not text or len(text) > MAX_REASON:
        raise InvalidArgument("reason", f"expected a reason of 1 to {MAX_REASON} characters, got {len(text)}")
    return text


def emergency_stop(runtime: Runtime, reason: str, flatten: bool = False,
                   also: Callable[[Connection, EmergencyStop], None] | None = None) -> EmergencyStop:
    """Halt the account's trading, cancel every open order of it, and with ``flatten``
    place a market sell of every position (see the module). ``also`` is called with the
    result in the same transaction (the console's audit)."""
    from services.risk_manager.halts import MANUAL as HALTED_BY_HAND
    from services.risk_manager.halts import halt_trading
    from services.trading_engine.broker import open_account
    from services.trading_engine.order_book import cancel_order

    text = reason_text(reason)
    now = runtime.clock.now()
    day = _trading_date(runtime, now)
    ctx = JobContext(job_name=JOB_NAME, trading_date=day, scheduled_for=now, settings=runtime.settings,
                     session_factory=runtime.session_factory(), clock=runtime.clock, calendar=runtime.calendar,
                     origin=MANUAL)
    with open_account(ctx) as trading:
        with trading.transaction() as connection:
            current, made = halt_trading(connection, ctx.account.user_id, text, by=HALTED_BY_HAND, at=now)
            broker = trading.broker(connection)
            pending = broker.open_orders()
            cancelled = sum(cancel_order(broker, order, f"cancelled: {REASON_PREFIX}{text}") for order in pending)
            positions = broker.positions()
            exits = _flatten(ctx, connection, broker, f"{REASON_PREFIX}{text}", now) if flatten and positions else 0
            result = EmergencyStop(current, made, cancelled, len(pending) - cancelled, exits, len(positions), day, {})
            if also is not None:
                also(connection, result)
        sent = trading.send(buys_refused=f"trading halted: {current.describe()}")
    return replace(result, sent=sent) if sent else result


def _trading_date(runtime: Runtime, now: datetime) -> date:
    """Today's session until its close, else the next session (today past the calendar)."""
    today = now.astimezone(KRX_TZ).date()
    session = runtime.calendar.session(today)
    if session is not None and now < session.close:
        return today
    following = runtime.calendar.next_session(today)
    return following.date if following is not None else today


def _flatten(ctx: JobContext, connection: Connection, broker: Broker, reason: str, now: datetime) -> int:
    """A market sell of each position's shares not still being sold (an order the
    broker could not cancel), through the risk gate; the number placed."""
    from services.trading_engine.gate import RiskGate
    from services.trading_engine.order_book import client_order_id, submit
    from services.trading_engine.orders import OPEN_STATUSES, OrderRequest, OrderType, Side
    from services.trading_engine.prices import valuation_prices

    positions, pending = broker.positions(), broker.open_orders()
    prices = valuation_prices(broker, connection, ctx.calendar, sorted(p.ticker for p in positions), now)
    gate = RiskGate.open(ctx, connection, broker, now, prices, positions=positions, open_orders=pending)
    selling: dict[str, int] = {}
    for order in pending:
        if order.side is Side.SELL:
            selling[order.ticker] = selling.get(order.ticker, 0) + order.remaining
    placed = 0
    for position in positions:
        quantity = position.quantity - selling.get(position.ticker, 0)
        if quantity < 1:
            continue
        purpose = f"emergency-exit@{now.astimezone(KRX_TZ):%H%M%S%f}"  # a second stop places its own
        request = OrderRequest(client_order_id(ctx.account, ctx.trading_date, position.ticker, purpose),
                               ctx.trading_date, position.ticker, Side.SELL, quantity, OrderType.MARKET,
                               reason=reason)
        order = submit(broker, connection, request, now, gate)
        placed += order.status in OPEN_STATUSES
    return placed
