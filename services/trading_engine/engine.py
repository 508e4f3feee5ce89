"""The ``signal_generation`` job: before the session of trading date D, entry and exit
signals from the previous session's watchlist, indicators and the user's positions;
sized entries and exits become orders at the broker.

Once per (user, mode, D): a re-run reports what the first run did and places nothing
new. Live orders are recorded in the job's transaction and sent after it commits
(``live_orders``); a re-run sends those the first run recorded and did not send.
While trading is halted the job is skipped and places nothing; every order passes
the risk gate (daily loss, position count and size).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, bindparam, select

from services.common.database import fetch_typed, upsert
from services.common.job_api import Account, JobContext, JobResult
from services.common.krx_market import FALLBACK_MARKET, TODAY, PriceGrid, grid_on
from services.data_collector.queries import closes_on, market_rows, markets_on
from services.indicator_calculator.queries import technical_values
from services.risk_manager.halts import active_halt
from services.trading_engine.broker import TradingAccount, market_moment, open_account
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.gate import RiskGate
from services.trading_engine.models import ClosedTrade, SignalRow, SignalRun
from services.trading_engine.order_book import client_order_id, submit
from services.trading_engine.orders import Broker, OrderRequest, OrderStatus, OrderType, Side
from services.trading_engine.signals import SignalRules, entry_signals, exit_signals, records
from services.trading_engine.sizing import SizingRules, position_fraction, size_entries
from services.watchlist_manager.queries import ENTRY_COLUMNS, has_watchlist, watchlist_of, watchlist_tickers

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignalReport:
    watchlist_date: date
    entries: int
    exits: int
    orders: int
    rejected: int
    sizing: str


_CANDIDATE_INDICATORS = ("rsi_14", "macd_hist", "volume_ratio_20")


def load_candidates(connection: Connection, user_id: str, day: date) -> pd.DataFrame:
    """The user's watchlist of ``day`` with that session's prices and indicators."""
    listed = watchlist_of(connection, user_id, day)
    tickers = [str(row[0]) for row in listed]
    prices = {ticker: (close, halted) for ticker, close, halted in market_rows(connection, day, tickers)}
    indicators = technical_values(connection, day, tickers, _CANDIDATE_INDICATORS)
    rows = [(*row, *prices.get(str(row[0]), (None, None)), *indicators.get(str(row[0]), (None,) * 3))
            for row in listed]
    columns = [*ENTRY_COLUMNS, "close", "halted", *_CANDIDATE_INDICATORS]
    values = dict(zip(columns, zip(*rows))) if rows else {name: () for name in columns}
    frame = pd.DataFrame({name: np.array(values[name], dtype=float)  # a missing value becomes NaN
                          if name not in ("ticker", "halted") else list(values[name]) for name in columns})
    frame["halted"] = [True if v is None else bool(v) for v in values["halted"]]
    return frame


def load_market_rows(connection: Connection, day: date, tickers: list[str]) -> pd.DataFrame:
    """``day``'s close, halt flag and 60-session average of ``tickers`` (absent if not stored)."""
    columns = ["ticker", "close", "halted", "sma_60"]
    if not tickers:
        return pd.DataFrame(columns=columns)
    averages = technical_values(connection, day, tickers, ("sma_60",))
    rows = [(ticker, close, halted, averages.get(ticker, (None,))[0])
            for ticker, close, halted in market_rows(connection, day, tickers)]
    frame = pd.DataFrame(rows, columns=columns)
    frame["close"] = frame["close"].astype(float)
    frame["sma_60"] = pd.to_numeric(frame["sma_60"], errors="coerce").astype(float)
    return frame


# built once: read by every signal generation
_TRADES = select(ClosedTrade.pnl, ClosedTrade.cost).where(
    ClosedTrade.user_id == bindparam("owner"), ClosedTrade.dry_run == bindparam("dry_run"), ClosedTrade.cost > 0,
).order_by(ClosedTrade.fill_id)
_SIGNAL_RUN = select(SignalRun.watchlist_date, SignalRun.entries, SignalRun.exits, SignalRun.orders).where(
    SignalRun.user_id == bindparam("owner"), SignalRun.dry_run == bindparam("dry_run"),
    SignalRun.trading_date == bindparam("day"))


def trade_returns(connection: Connection, account: Account) -> list[float]:
    rows = fetch_typed(connection, _TRADES, {"owner": account.user_id, "dry_run": account.dry_run})
    return [pnl / cost for pnl, cost in rows]


def entry_price(previous_close: int, limit_pct: float, grid: PriceGrid = TODAY) -> tuple[OrderType, int]:
    """Entries are limit buys ``limit_pct`` above the previous close (on ``grid``'s
    ticks, inside its band), or market buys funded at the upper band when ``limit_pct``
    is 0."""
    upper = grid.price_limits(previous_close)[1]
    if limit_pct <= 0:
        return OrderType.MARKET, upper
    return OrderType.LIMIT, min(grid.round_to_tick(previous_close * (1 + limit_pct / 100), "up"), upper)


def generate_signals(connection: Connection, broker: Broker, gate: RiskGate, *, day: date, previous: date,
                     settings: object, now: datetime) -> SignalReport:
    """Signals for ``day`` from ``previous``'s data, stored and sent as orders through
    ``gate`` to ``broker``'s account (the caller owns the transaction)."""
    account = broker.account
    rules, sizing_rules = SignalRules.from_settings(settings), SizingRules.from_settings(settings)  # type: ignore[arg-type]
    fees = FeeSchedule.from_settings(settings)  # type: ignore[arg-type]
    candidates = load_candidates(connection, account.user_id, previous)
    positions = broker.positions()
    held = pd.DataFrame({"ticker": [p.ticker for p in positions], "quantity": [p.quantity for p in positions],
                         "average_price": [p.average_price for p in positions],
                         "high_water": [p.high_water for p in positions]})
    market = load_market_rows(connection, previous, held["ticker"].tolist())
    exits = exit_signals(held, market, set(candidates["ticker"]), rules)
    entries = entry_signals(candidates, set(held["ticker"]), rules)

    fraction = position_fraction(trade_returns(connection, account), sizing_rules)
    prices = dict(zip(market["ticker"], market["close"]))
    market_value = sum(int(p.quantity * prices.get(p.ticker, p.average_price)) for p in positions)
    cash = broker.cash().available
    open_buys = sum(1 for order in broker.open_orders() if order.side is Side.BUY)
    markets = markets_on(connection, previous, entries["ticker"].tolist())
    priced = [(ticker, *entry_price(int(close), settings.entry_limit_pct,  # type: ignore[attr-defined]
                                    grid_on(day, markets.get(ticker, FALLBACK_MARKET))))
              for ticker, close in zip(entries["ticker"], entries["reference_price"])]
    sized = size_entries([(ticker, price) for ticker, _, price in priced], equity=cash + market_value, cash=cash,
                         open_positions=len(positions) + open_buys, fraction=fraction,  # exits free none yet
                         rules=sizing_rules, fees=fees)

    signal_rows, orders, rejected = [], 0, 0
    quantities = {p.ticker: p.quantity for p in positions}
    for exit_ in records(exits):
        request = OrderRequest(client_order_id(account, day, exit_["ticker"], "exit"), day,
                               exit_["ticker"], Side.SELL, quantities[exit_["ticker"]], OrderType.MARKET,
                               reason=exit_["reason"])
        order = submit(broker, connection, request, now, gate)
        orders, rejected = orders + 1, rejected + (order.status is OrderStatus.REJECTED)
        signal_rows.append(_signal_row(exit_, account, day, request.quantity, request.client_order_id, now))
    for entry, (ticker, order_type, price), size in zip(records(entries), priced, sized):
        order_id = None
        if size.quantity > 0:
            request = OrderRequest(client_order_id(account, day, ticker, "entry"), day, ticker, Side.BUY,
                                   size.quantity, order_type, price if order_type is OrderType.LIMIT else None,
                                   reason=entry["reason"])
            order = submit(broker, connection, request, now, gate)
            orders, rejected = orders + 1, rejected + (order.status is OrderStatus.REJECTED)
            order_id = request.client_order_id
            if order.status is OrderStatus.REJECTED:
                entry = {**entry, "reason": f"{entry['reason']}; not traded: {order.reason}"}
        else:
            entry = {**entry, "reason": f"{entry['reason']}; not traded: {size.note}"}
        signal_rows.append(_signal_row(entry, account, day, size.quantity, order_id, now))
    upsert(connection, SignalRow.__table__, signal_rows, ["user_id", "dry_run", "trading_date", "ticker", "kind"])
    report = SignalReport(previous, len(entries), len(exits), orders, rejected, fraction.method)
    upsert(connection, SignalRun.__table__, [{
        "user_id": account.user_id, "dry_run": account.dry_run, "trading_date": day, "watchlist_date": previous,
        "entries": report.entries, "exits": report.exits, "orders": report.orders, "sizing": report.sizing,
        "created_at": now}], ["user_id", "dry_run", "trading_date"])
    return report


def _signal_row(signal: Mapping[str, Any], account: Account, day: date, quantity: int,
                order_id: str | None, now: datetime) -> dict[str, object]:
    return {"user_id": account.user_id, "dry_run": account.dry_run, "trading_date": day, "ticker": signal["ticker"],
            "kind": signal["kind"], "source": "pre_open", "reason": str(signal["reason"])[:300],
            "strength": float(signal["strength"]), "reference_price": int(signal["reference_price"]),
            "quantity": int(quantity), "client_order_id": order_id, "created_at": now}


def _already_generated(ctx: JobContext) -> Any:
    """The run of the day's signals already made (its watchlist date and counts), if any."""
    with ctx.session_factory() as session:
        rows = fetch_typed(session.connection(), _SIGNAL_RUN, {
            "owner": ctx.account.user_id, "dry_run": ctx.account.dry_run, "day": ctx.trading_date})
    return rows[0] if rows else None


def gate_prices(connection: Connection, user_id: str, previous: date, held: list[str]) -> dict[str, int]:
    """``previous``'s closes of the held tickers and of that session's watchlist."""
    tickers = sorted(set(held) | set(watchlist_tickers(connection, user_id, previous)))
    return closes_on(connection, previous, tickers)


def _halted(ctx: JobContext) -> str | None:
    with ctx.session_factory() as session:
        halt = active_halt(session.connection(), ctx.account.user_id)
    return None if halt is None else halt.describe()


def run(ctx: JobContext) -> JobResult:
    """``signal_generation`` for ``ctx.trading_date`` and ``ctx.account.user_id``."""
    previous_session = ctx.calendar.previous_session(ctx.trading_date)
    if previous_session is None:
        return JobResult.skipped(f"input missing: no session before {ctx.trading_date} in the calendar")
    with open_account(ctx) as trading:
        return _generate(ctx, trading, previous_session.date)


def _generate(ctx: JobContext, trading: TradingAccount, previous: date) -> JobResult:
    """:func:`run` on the run's account."""
    dry_run = trading.account.dry_run
    halted = _halted(ctx)
    if halted:
        sending = trading.send(buys_refused=f"trading halted: {halted}")
        return JobResult.skipped(f"trading halted: {halted}", dry_run=dry_run, **sending)
    done = _already_generated(ctx)
    if done is not None:
        sending = _resend_after_a_check(ctx, trading, previous)
        return JobResult.success(already_generated=1, watchlist_date=done.watchlist_date.isoformat(),
                                 entries=done.entries, exits=done.exits, orders=done.orders, dry_run=dry_run,
                                 **sending)
    with ctx.session_factory() as session:  # the registry's needs run watchlist_update first
        if not has_watchlist(session.connection(), trading.account.user_id, previous):
            return JobResult.skipped(f"input missing: no watchlist for {previous}")
    session_of_day = ctx.calendar.session(ctx.trading_date)
    if session_of_day is None:
        return JobResult.skipped(f"not a session: {ctx.trading_date}")
    at = market_moment(ctx, session_of_day, pre_open=True)
    with _gated(ctx, trading, previous, at) as (connection, broker, gate):
        if gate.halted is None:
            report = generate_signals(connection, broker, gate, day=ctx.trading_date, previous=previous,
                                      settings=ctx.settings, now=at)
    sending = trading.send(buys_refused=gate.entries_refused)
    if gate.halted is not None:  # the risk check just now halted trading
        return JobResult.skipped(f"trading halted: {gate.halted}", dry_run=dry_run, **sending)
    ctx.log.info("%d entry and %d exit signals from the %s watchlist; %d orders for %s", report.entries,
                 report.exits, previous, report.orders, trading.account.describe())
    return JobResult.success(watchlist_date=previous.isoformat(), entries=report.entries, exits=report.exits,
                             orders=report.orders, rejected=report.rejected, sizing=report.sizing, dry_run=dry_run,
                             **sending)


@contextmanager
def _gated(ctx: JobContext, trading: TradingAccount, previous: date,
           at: datetime) -> Iterator[tuple[Connection, Broker, RiskGate]]:
    """A transaction, the broker, and the risk gate opened at ``at`` (the risk check
    every order passes; it may halt trading)."""
    with trading.transaction() as connection:
        trading.settle(connection, at)  # the previous session, on its daily bar (a paper account on daily bars)
        broker = trading.broker(connection, at)
        prices = gate_prices(connection, trading.account.user_id, previous, [p.ticker for p in broker.positions()])
        yield connection, broker, RiskGate.open(ctx, connection, broker, at, prices)


def _resend_after_a_check(ctx: JobContext, trading: TradingAccount, previous: date) -> dict[str, int]:
    """A re-run: send what the first run recorded and did not send (live), its buys
    only if a risk check now still allows them."""
    if not trading.has_unsent():
        return trading.send()
    session_of_day = ctx.calendar.session(ctx.trading_date)
    if session_of_day is None:
        return trading.send(sells_only=True)
    with _gated(ctx, trading, previous, market_moment(ctx, session_of_day, pre_open=True)) as (_, _broker, gate):
        refused = gate.entries_refused
    return trading.send(buys_refused=refused)
