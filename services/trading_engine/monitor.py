"""The ``position_monitoring`` job: at each tick of the actual session, price the open
positions, fill the pending paper orders the observed prices allow, apply the price
exits (stop loss, trailing stop, take profit) and record a portfolio snapshot.

Prices: in dry run with the simulated provider, its intraday path; with a live
broker, its quotes; otherwise the latest stored closes (valuation only: nothing
fills on a stale price). At the session's last tick the day's limit orders expire.

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
from services.common.market_calendar import Session
from services.trading_engine.broker import (
    Quotes,
    account_transaction,
    current_quotes,
    is_dry_run,
    live_broker,
    make_broker,
    market_moment,
    participation_caps,
)
from services.trading_engine.live_orders import SendReport, send_pending, unsent_sells
from services.trading_engine.models import PortfolioSnapshot, PositionRow, SignalRow
from services.risk_manager.gate import RiskGate
from services.trading_engine.order_book import cancel_order, client_order_id, record_broker_fills, submit
from services.trading_engine.orders import Broker, OrderRequest, OrderType, Position, Side
from services.trading_engine.paper import PaperBroker
from services.trading_engine.signals import SignalRules, intraday_exits, records


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
    dry_run, day = is_dry_run(ctx), session.date
    positions = broker.positions()
    pending = broker.open_orders()
    tickers = sorted({p.ticker for p in positions} | {o.ticker for o in pending})
    quotes = current_quotes(ctx, broker, connection, tickers, moment, session)
    gate = RiskGate.open(ctx, connection, broker, moment, quotes.prices, positions=positions, open_orders=pending)
    cancelled = _cancel_entries(ctx, connection, broker, gate, moment)
    fills = 0
    if quotes.observed and isinstance(broker, PaperBroker):
        previous = ctx.calendar.previous_session(day)
        caps = participation_caps(connection, tickers, previous.date) if previous else None
        fills = len(broker.match(quotes.prices, moment, caps))
        broker.mark(quotes.prices)
    elif not dry_run:
        fills = record_broker_fills(connection, ctx.user_id, broker.fills(day))
        _mark_live(connection, ctx.user_id, broker.positions(), quotes)
    if fills or not dry_run:  # only fills change what is held and what is still being sold
        positions, pending = broker.positions(), broker.open_orders()
    selling = {o.ticker for o in pending if o.side is Side.SELL}
    if not dry_run:  # a live sell recorded but not yet at the broker is being sold too
        selling |= unsent_sells(connection, ctx.user_id)
    exits = _price_exits(ctx, connection, broker, gate, positions, selling, quotes, moment) if quotes.observed else 0
    expired = 0
    if moment >= session.close and isinstance(broker, PaperBroker):
        expired = broker.expire_day_orders(day)
    equity = _snapshot(ctx, connection, broker, positions, quotes, moment)
    return TickReport(fills, exits, expired, len(positions), equity, quotes.observed, cancelled,
                      gate.halted is not None, gate.entries_refused is not None, gate.entries_refused)


def _cancel_entries(ctx: JobContext, connection: Connection, broker: Broker, gate: RiskGate,
                    moment: datetime) -> int:
    """While no new position may open (halt, daily loss), cancel the open buys."""
    refused = gate.entries_refused
    if refused is None:
        return 0
    buys = [order for order in broker.open_orders() if order.side is Side.BUY]
    return sum(cancel_order(broker, connection, ctx.user_id, order, f"cancelled: {refused}", moment)
               for order in buys)


def _price_exits(ctx: JobContext, connection: Connection, broker: Broker, gate: RiskGate,
                 positions: list[Position], selling: set[str], quotes: Quotes, moment: datetime) -> int:
    """Place the intraday exits the observed prices call for (not for a ticker already
    being sold)."""
    dry_run, day = is_dry_run(ctx), ctx.trading_date
    frame = pd.DataFrame({"ticker": [p.ticker for p in positions if p.ticker not in selling],
                          "average_price": [p.average_price for p in positions if p.ticker not in selling],
                          "high_water": [p.high_water for p in positions if p.ticker not in selling]})
    exits = intraday_exits(frame, quotes.prices, SignalRules.from_settings(ctx.settings))
    quantities = {p.ticker: p.quantity for p in positions}
    rows = []
    for exit_ in records(exits):
        request = OrderRequest(client_order_id(dry_run, ctx.user_id, day, exit_["ticker"], "intraday-exit"), day,
                               exit_["ticker"], Side.SELL, quantities[exit_["ticker"]], OrderType.MARKET,
                               reason=exit_["reason"])
        submit(broker, connection, ctx.user_id, request, moment, gate)
        rows.append({"user_id": ctx.user_id, "dry_run": dry_run, "trading_date": day, "ticker": exit_["ticker"],
                     "kind": "exit", "source": "intraday", "reason": exit_["reason"][:300],
                     "strength": float(exit_["strength"]), "reference_price": int(exit_["reference_price"]),
                     "quantity": request.quantity, "client_order_id": request.client_order_id,
                     "created_at": moment})
    upsert(connection, SignalRow.__table__, rows, ["user_id", "dry_run", "trading_date", "ticker", "kind"])
    return len(rows)


def _mark_live(connection: Connection, user_id: str, positions: list[Position], quotes: Quotes) -> None:
    """Keep each live position's high-water mark (the broker does not)."""
    rows = [{"user_id": user_id, "dry_run": False, "ticker": p.ticker, "quantity": p.quantity, "cost": p.cost,
             "opened_on": p.opened_on, "high_water": max(p.high_water, quotes.prices.get(p.ticker, 0))}
            for p in positions]
    upsert(connection, PositionRow.__table__, rows, ["user_id", "dry_run", "ticker"], keep=["opened_on"])


def _snapshot(ctx: JobContext, connection: Connection, broker: Broker, positions: list[Position],
              quotes: Quotes, moment: datetime) -> int:
    cash = broker.cash()
    reserved = cash.held_back  # for open buys: still cash
    market_value = sum(p.quantity * quotes.prices.get(p.ticker, int(p.average_price)) for p in positions)
    cost = sum(p.cost for p in positions)
    balance = cash.available + reserved
    equity = balance + market_value
    upsert(connection, PortfolioSnapshot.__table__, [{
        "user_id": ctx.user_id, "dry_run": is_dry_run(ctx), "taken_at": moment, "trading_date": ctx.trading_date,
        "cash": balance, "settled_cash": cash.settled + reserved, "market_value": market_value, "equity": equity,
        "exposure": round(market_value / equity, 6) if equity > 0 else 0.0,
        "unrealised_pnl": market_value - cost, "positions": len(positions), "prices_observed": quotes.observed,
    }], ["user_id", "dry_run", "taken_at"])
    return equity


def run(ctx: JobContext) -> JobResult:
    """``position_monitoring`` for ``ctx.trading_date`` at the tick ``ctx.scheduled_for``.
    Live, the orders recorded and not yet at the broker are sent: the sells an earlier
    run left before the tick, and after its commit its own exits and the buys its risk
    check still allows."""
    session = ctx.calendar.session(ctx.trading_date)
    if session is None:
        return JobResult.skipped(f"not a session: {ctx.trading_date}")
    moment = market_moment(ctx, session, pre_open=False)
    live, broker, sending = not is_dry_run(ctx), None, SendReport()
    if live:  # the sells an earlier run left go first; buys wait for this tick's risk check
        broker = live_broker(ctx)
        sending = send_pending(broker, ctx.session_factory, ctx.user_id, ctx.clock, sells_only=True)
    with account_transaction(ctx) as connection:
        broker = broker or make_broker(ctx, connection, moment)
        report = monitor_tick(ctx, connection, broker, session, moment)
    if live:
        sending += send_pending(broker, ctx.session_factory, ctx.user_id, ctx.clock,
                                buys_refused=report.entries_refused)
    return JobResult.success(fills=report.fills, exits=report.exits, expired=report.expired,
                             positions=report.positions, equity=report.equity,
                             prices_observed=report.observed, cancelled=report.cancelled, halted=report.halted,
                             entries_blocked=report.entries_blocked, dry_run=is_dry_run(ctx),
                             **(sending.summary() if live else {}))
