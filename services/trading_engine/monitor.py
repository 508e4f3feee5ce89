"""The ``position_monitoring`` job: at each tick of the actual session, price the open
positions, fill the pending paper orders the observed prices allow, apply the price
exits (stop loss, trailing stop, take profit) and record a portfolio snapshot.

Prices: in dry run with the simulated provider, its intraday path; with a live
broker, its quotes; in dry run on a real provider with KIS keys, KIS's quotes (read
only, for a tick that runs at its moment); otherwise the latest stored closes
(valuation only: nothing fills on a stale price). At the session's last tick the day's
limit orders expire, except in dry run on daily bars (pykrx, stored history, and a
session no KIS quote priced): there each tick first settles the sessions whose bar
came in since (:mod:`bar_settlement`), and a day's orders expire when its bar is
settled.

A tick of a paper account holding nothing, with no open order, that finds the account
as the previous tick left it (:mod:`fingerprint`: its own snapshot does not count) is
recorded ``skipped`` (unchanged since); the first tick of a session and its last (the
closing snapshot) always run.

Every tick first passes the risk gate: while trading is halted, or after the daily
loss limit was reached, open buys are cancelled and nothing new opens; protective
exits (stop loss, trailing stop, take profit) are still placed.

Live, each tick also sends the orders recorded and not yet at the broker
(``live_orders.send_pending``): before the tick, the sells an earlier run left; after
its commit (and its risk check), its own exits and the buys the gate still allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection

from services.common.database import upsert
from services.common.job_api import JobContext, JobResult
from services.common.market_calendar import KRX_TZ, Session
from services.trading_engine.broker import market_moment, open_account
from services.trading_engine.fingerprint import account_fingerprint
from services.trading_engine.gate import RiskGate
from services.trading_engine.models import SignalRow
from services.trading_engine.order_book import cancel_order, client_order_id, submit
from services.trading_engine.orders import Broker, OrderRequest, OrderType, Position, Side
from services.trading_engine.prices import Quotes, current_quotes, participation_caps
from services.trading_engine.signals import SignalRules, intraday_exits, records
from services.trading_engine.snapshots import record_snapshot


@dataclass(frozen=True)
class TickReport:
    fills: int
    exits: int
    expired: int
    positions: int
    equity: int
    observed: bool
    cancelled: int = 0  # open buys cancelled because no new position may open
    halted: bool = False
    entries_blocked: bool = False
    entries_refused: str | None = None  # why no buy may go out now (halt, daily loss), if so


def monitor_tick(ctx: JobContext, connection: Connection, broker: Broker, session: Session,
                 moment: datetime) -> TickReport:
    """One tick at ``moment`` (the caller owns the transaction)."""
    day = session.date
    positions = broker.positions()
    pending = broker.open_orders()
    tickers = sorted({p.ticker for p in positions} | {o.ticker for o in pending})
    quotes = current_quotes(broker, connection, tickers, moment, session)
    gate = RiskGate.open(ctx, connection, broker, moment, quotes.prices, positions=positions, open_orders=pending)
    cancelled = _cancel_entries(broker, gate)
    previous = ctx.calendar.previous_session(day)
    caps = participation_caps(connection, tickers, previous.date) if previous and quotes.observed else None
    fills = broker.observe(quotes.prices if quotes.observed else {}, moment, caps)
    if fills or cancelled:  # what is held and what is still being sold changed
        positions, pending = broker.positions(), broker.open_orders()
    selling = {o.ticker for o in pending if o.side is Side.SELL}
    exits = _price_exits(ctx, connection, broker, gate, positions, selling, quotes, moment) if quotes.observed else 0
    expired = broker.end_of_day(day) if moment >= session.close else 0
    equity = record_snapshot(connection, broker, positions, quotes.prices, moment, ctx.trading_date, quotes.observed)
    return TickReport(fills, exits, expired, len(positions), equity, quotes.observed, cancelled,
                      gate.halted is not None, gate.entries_refused is not None, gate.entries_refused)


def _cancel_entries(broker: Broker, gate: RiskGate) -> int:
    """While no new position may open (halt, daily loss), cancel the open buys."""
    refused = gate.entries_refused
    if refused is None:
        return 0
    buys = [order for order in broker.open_orders() if order.side is Side.BUY]
    return sum(cancel_order(broker, order, f"cancelled: {refused}") for order in buys)


def _price_exits(ctx: JobContext, connection: Connection, broker: Broker, gate: RiskGate,
                 positions: list[Position], selling: set[str], quotes: Quotes, moment: datetime) -> int:
    """Place the intraday exits the observed prices call for (not for a ticker already
    being sold)."""
    account, day = broker.account, ctx.trading_date
    unsold = [p for p in positions if p.ticker not in selling]
    if not unsold:  # nothing to exit (a flat account's every tick)
        return 0
    frame = pd.DataFrame({"ticker": [p.ticker for p in unsold], "average_price": [p.average_price for p in unsold],
                          "high_water": [p.high_water for p in unsold]})
    exits = intraday_exits(frame, quotes.prices, SignalRules.from_settings(ctx.settings))
    quantities = {p.ticker: p.quantity for p in positions}
    rows = []
    for exit_ in records(exits):
        request = OrderRequest(client_order_id(account, day, exit_["ticker"], "intraday-exit"), day,
                               exit_["ticker"], Side.SELL, quantities[exit_["ticker"]], OrderType.MARKET,
                               reason=exit_["reason"])
        submit(broker, connection, request, moment, gate)
        rows.append({"user_id": account.user_id, "dry_run": account.dry_run, "trading_date": day,
                     "ticker": exit_["ticker"], "kind": "exit", "source": "intraday",
                     "reason": exit_["reason"][:300], "strength": float(exit_["strength"]),
                     "reference_price": int(exit_["reference_price"]), "quantity": request.quantity,
                     "client_order_id": request.client_order_id, "created_at": moment})
    upsert(connection, SignalRow.__table__, rows, ["user_id", "dry_run", "trading_date", "ticker", "kind"])
    return len(rows)


def state(ctx: JobContext) -> str | None:
    """What the tick would read, as one string (:mod:`fingerprint`), for a paper account
    that holds nothing and has no open order (nothing to price, fill or exit); None
    otherwise, live, and at the session's last tick (the day's closing snapshot, and
    its orders expire)."""
    session = ctx.calendar.session(ctx.trading_date)
    if not ctx.account.dry_run or session is None:
        return None
    moment = market_moment(ctx, session, pre_open=False)
    if moment >= session.close:
        return None
    fingerprint = account_fingerprint(ctx, session.date, moment.astimezone(KRX_TZ).date())
    if fingerprint.positions or fingerprint.open_orders:
        return None
    return f"{fingerprint.text}|{fingerprint.collected}"  # a new bar is settled (daily bars)


def run(ctx: JobContext) -> JobResult:
    """``position_monitoring`` for ``ctx.trading_date`` at the tick ``ctx.scheduled_for``.
    Orders recorded and not yet at the broker (live) are sent: the sells an earlier
    run left before the tick, and after its commit its own exits and the buys its risk
    check still allows."""
    session = ctx.calendar.session(ctx.trading_date)
    if session is None:
        return JobResult.skipped(f"not a session: {ctx.trading_date}")
    moment = market_moment(ctx, session, pre_open=False)
    with open_account(ctx) as trading:
        sent_first = trading.send(sells_only=True)  # buys wait for this tick's risk check
        with trading.transaction() as connection:
            settled = trading.settle(connection, moment)  # sessions whose daily bar came in since (daily bars)
            report = monitor_tick(ctx, connection, trading.broker(connection, moment), session, moment)
        sent = trading.send(buys_refused=report.entries_refused)
    return JobResult.success(**settled.summary(), fills=report.fills, exits=report.exits, expired=report.expired,
                             positions=report.positions, equity=report.equity,
                             prices_observed=report.observed, cancelled=report.cancelled, halted=report.halted,
                             entries_blocked=report.entries_blocked, dry_run=ctx.account.dry_run,
                             **{key: sent_first.get(key, 0) + count for key, count in sent.items()})
