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
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Iterator

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select, text

from services.common.database import upsert
from services.common.job_api import JobContext, JobResult, Outcome
from services.common.krx_market import price_limits, round_to_tick
from services.risk_manager.gate import RiskGate
from services.risk_manager.halts import active_halt
from services.trading_engine.broker import account_transaction, is_dry_run, live_broker, make_broker, market_moment
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.live_orders import send_pending
from services.trading_engine.models import ClosedTrade, SignalRow, SignalRun
from services.trading_engine.order_book import client_order_id, submit
from services.trading_engine.orders import Broker, OrderRequest, OrderStatus, OrderType, Side
from services.trading_engine.signals import SignalRules, entry_signals, exit_signals, records
from services.trading_engine.sizing import SizingRules, position_fraction, size_entries

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignalReport:
    watchlist_date: date
    entries: int
    exits: int
    orders: int
    rejected: int
    sizing: str


def load_candidates(connection: Connection, user_id: str, day: date) -> pd.DataFrame:
    """The user's watchlist of ``day`` with that session's prices and indicators."""
    rows = connection.execute(text(
        "SELECT w.ticker, w.rank, w.score, w.trend, w.momentum, w.volatility, w.liquidity, w.value, "
        "p.close, p.halted, t.rsi_14, t.macd_hist, t.volume_ratio_20 "
        "FROM watchlist_entries w "
        "LEFT JOIN daily_prices p ON p.date = w.date AND p.ticker = w.ticker "
        "LEFT JOIN technical_indicators t ON t.date = w.date AND t.ticker = w.ticker "
        "WHERE w.user_id = :user AND w.date = :day ORDER BY w.rank"), {"user": user_id, "day": day}).all()
    columns = ["ticker", "rank", "score", "trend", "momentum", "volatility", "liquidity", "value", "close",
               "halted", "rsi_14", "macd_hist", "volume_ratio_20"]
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
    from services.data_collector.models import DailyPrice
    from services.indicator_calculator.models import TechnicalIndicator

    rows = connection.execute(
        select(DailyPrice.ticker, DailyPrice.close, DailyPrice.halted, TechnicalIndicator.sma_60)
        .outerjoin(TechnicalIndicator, (TechnicalIndicator.date == DailyPrice.date)
                   & (TechnicalIndicator.ticker == DailyPrice.ticker))
        .where(DailyPrice.date == day, DailyPrice.ticker.in_(tickers))).all()
    frame = pd.DataFrame(rows, columns=columns)
    frame["close"] = frame["close"].astype(float)
    frame["sma_60"] = pd.to_numeric(frame["sma_60"], errors="coerce").astype(float)
    return frame


def trade_returns(connection: Connection, user_id: str, dry_run: bool) -> list[float]:
    rows = connection.execute(select(ClosedTrade.pnl, ClosedTrade.cost).where(
        ClosedTrade.user_id == user_id, ClosedTrade.dry_run.is_(dry_run), ClosedTrade.cost > 0)
        .order_by(ClosedTrade.fill_id)).all()
    return [pnl / cost for pnl, cost in rows]


def entry_price(previous_close: int, limit_pct: float) -> tuple[OrderType, int]:
    """Entries are limit buys ``limit_pct`` above the previous close (on the tick grid,
    inside the band), or market buys funded at the upper band when ``limit_pct`` is 0."""
    upper = price_limits(previous_close)[1]
    if limit_pct <= 0:
        return OrderType.MARKET, upper
    return OrderType.LIMIT, min(round_to_tick(previous_close * (1 + limit_pct / 100), "up"), upper)


def generate_signals(connection: Connection, broker: Broker, gate: RiskGate, *, user_id: str, day: date,
                     previous: date, dry_run: bool, settings: object, now: datetime) -> SignalReport:
    """Signals for ``day`` from ``previous``'s data, stored and sent as orders through
    ``gate`` (the caller owns the transaction)."""
    rules, sizing_rules = SignalRules.from_settings(settings), SizingRules.from_settings(settings)  # type: ignore[arg-type]
    fees = FeeSchedule.from_settings(settings)  # type: ignore[arg-type]
    candidates = load_candidates(connection, user_id, previous)
    positions = broker.positions()
    held = pd.DataFrame({"ticker": [p.ticker for p in positions], "quantity": [p.quantity for p in positions],
                         "average_price": [p.average_price for p in positions],
                         "high_water": [p.high_water for p in positions]})
    market = load_market_rows(connection, previous, held["ticker"].tolist())
    exits = exit_signals(held, market, set(candidates["ticker"]), rules)
    entries = entry_signals(candidates, set(held["ticker"]), rules)

    fraction = position_fraction(trade_returns(connection, user_id, dry_run), sizing_rules)
    prices = dict(zip(market["ticker"], market["close"]))
    market_value = sum(int(p.quantity * prices.get(p.ticker, p.average_price)) for p in positions)
    cash = broker.cash().available
    open_buys = sum(1 for order in broker.open_orders() if order.side is Side.BUY)
    priced = [(ticker, *entry_price(int(close), settings.entry_limit_pct))  # type: ignore[attr-defined]
              for ticker, close in zip(entries["ticker"], entries["reference_price"])]
    sized = size_entries([(ticker, price) for ticker, _, price in priced], equity=cash + market_value, cash=cash,
                         open_positions=len(positions) + open_buys, fraction=fraction,  # exits free none yet
                         rules=sizing_rules, fees=fees)

    signal_rows, orders, rejected = [], 0, 0
    quantities = {p.ticker: p.quantity for p in positions}
    for exit_ in records(exits):
        request = OrderRequest(client_order_id(dry_run, user_id, day, exit_["ticker"], "exit"), day,
                               exit_["ticker"], Side.SELL, quantities[exit_["ticker"]], OrderType.MARKET,
                               reason=exit_["reason"])
        order = submit(broker, connection, user_id, request, now, gate)
        orders, rejected = orders + 1, rejected + (order.status is OrderStatus.REJECTED)
        signal_rows.append(_signal_row(exit_, user_id, dry_run, day, request.quantity, request.client_order_id, now))
    for entry, (ticker, order_type, price), size in zip(records(entries), priced, sized):
        order_id = None
        if size.quantity > 0:
            request = OrderRequest(client_order_id(dry_run, user_id, day, ticker, "entry"), day, ticker, Side.BUY,
                                   size.quantity, order_type, price if order_type is OrderType.LIMIT else None,
                                   reason=entry["reason"])
            order = submit(broker, connection, user_id, request, now, gate)
            orders, rejected = orders + 1, rejected + (order.status is OrderStatus.REJECTED)
            order_id = request.client_order_id
            if order.status is OrderStatus.REJECTED:
                entry = {**entry, "reason": f"{entry['reason']}; not traded: {order.reason}"}
        else:
            entry = {**entry, "reason": f"{entry['reason']}; not traded: {size.note}"}
        signal_rows.append(_signal_row(entry, user_id, dry_run, day, size.quantity, order_id, now))
    upsert(connection, SignalRow.__table__, signal_rows, ["user_id", "dry_run", "trading_date", "ticker", "kind"])
    report = SignalReport(previous, len(entries), len(exits), orders, rejected, fraction.method)
    upsert(connection, SignalRun.__table__, [{
        "user_id": user_id, "dry_run": dry_run, "trading_date": day, "watchlist_date": previous,
        "entries": report.entries, "exits": report.exits, "orders": report.orders, "sizing": report.sizing,
        "created_at": now}], ["user_id", "dry_run", "trading_date"])
    return report


def _signal_row(signal: dict[str, object], user_id: str, dry_run: bool, day: date, quantity: int,
                order_id: str | None, now: datetime) -> dict[str, object]:
    return {"user_id": user_id, "dry_run": dry_run, "trading_date": day, "ticker": signal["ticker"],
            "kind": signal["kind"], "source": "pre_open", "reason": str(signal["reason"])[:300],
            "strength": float(signal["strength"]), "reference_price": int(signal["reference_price"]),  # type: ignore[call-overload]
            "quantity": int(quantity), "client_order_id": order_id, "created_at": now}


def watchlist_ready(connection: Connection, user_id: str, day: date) -> bool:
    from services.watchlist_manager.models import WatchlistRun

    return connection.scalar(select(func.count()).select_from(WatchlistRun).where(
        WatchlistRun.user_id == user_id, WatchlistRun.date == day)) == 1


def _already_generated(ctx: JobContext, dry_run: bool) -> SignalRun | None:
    with ctx.session_factory() as session:
        return session.get(SignalRun, (ctx.user_id, dry_run, ctx.trading_date))


def _ensure_watchlist(ctx: JobContext, previous: date) -> str | None:
    """Produce the previous session's watchlist if it is missing; the reason if it cannot be."""
    with ctx.session_factory() as session:
        if watchlist_ready(session.connection(), ctx.user_id, previous):
            return None
    from services.watchlist_manager import manager

    ctx.log.info("no watchlist for %s: producing it first", previous)
    result = manager.run(replace(ctx, job_name="watchlist_update", trading_date=previous))
    if result.status is not Outcome.SUCCESS:
        return f"input missing: no watchlist for {previous} ({result.reason})"
    return None


def gate_prices(connection: Connection, user_id: str, previous: date, held: list[str]) -> dict[str, int]:
    """``previous``'s closes of the held tickers and of that session's watchlist."""
    from services.data_collector.models import DailyPrice
    from services.watchlist_manager.models import WatchlistEntry

    listed = select(WatchlistEntry.ticker).where(WatchlistEntry.user_id == user_id, WatchlistEntry.date == previous)
    rows = connection.execute(select(DailyPrice.ticker, DailyPrice.close).where(
        DailyPrice.date == previous, DailyPrice.ticker.in_(held) | DailyPrice.ticker.in_(listed))).all()
    return {ticker: int(close) for ticker, close in rows}


def _halted(ctx: JobContext) -> str | None:
    with ctx.session_factory() as session:
        halt = active_halt(session.connection(), ctx.user_id)
    return None if halt is None else halt.describe()


def run(ctx: JobContext) -> JobResult:
    """``signal_generation`` for ``ctx.trading_date`` and ``ctx.user_id``."""
    previous_session = ctx.calendar.previous_session(ctx.trading_date)
    if previous_session is None:
        return JobResult.skipped(f"input missing: no session before {ctx.trading_date} in the calendar")
    previous, dry_run = previous_session.date, is_dry_run(ctx)
    halted = _halted(ctx)
    if halted:
        sending = {} if dry_run else _send_live(ctx, buys_refused=f"trading halted: {halted}")
        return JobResult.skipped(f"trading halted: {halted}", dry_run=dry_run, **sending)
    done = _already_generated(ctx, dry_run)
    if done is not None:
        sending = {} if dry_run else _resend_after_a_check(ctx, previous)
        return JobResult.success(already_generated=1, watchlist_date=done.watchlist_date.isoformat(),
                                 entries=done.entries, exits=done.exits, orders=done.orders, dry_run=dry_run,
                                 **sending)
    missing = _ensure_watchlist(ctx, previous)
    if missing:
        return JobResult.skipped(missing)
    session_of_day = ctx.calendar.session(ctx.trading_date)
    if session_of_day is None:
        return JobResult.skipped(f"not a session: {ctx.trading_date}")
    at = market_moment(ctx, session_of_day, pre_open=True)
    with _gated(ctx, previous, at) as (connection, broker, gate):
        if gate.halted is None:
            report = generate_signals(connection, broker, gate, user_id=ctx.user_id, day=ctx.trading_date,
                                      previous=previous, dry_run=dry_run, settings=ctx.settings, now=at)
    sending = {} if dry_run else _send_live(ctx, broker, buys_refused=gate.entries_refused)
    if gate.halted is not None:  # the risk check just now halted trading
        return JobResult.skipped(f"trading halted: {gate.halted}", dry_run=dry_run, **sending)
    ctx.log.info("%d entry and %d exit signals from the %s watchlist; %d orders (%s)", report.entries,
                 report.exits, previous, report.orders, "dry run" if dry_run else "LIVE")
    return JobResult.success(watchlist_date=previous.isoformat(), entries=report.entries, exits=report.exits,
                             orders=report.orders, rejected=report.rejected, sizing=report.sizing, dry_run=dry_run,
                             **sending)


@contextmanager
def _gated(ctx: JobContext, previous: date, at: datetime) -> Iterator[tuple[Connection, Broker, RiskGate]]:
    """A transaction, the broker, and the risk gate opened at ``at`` (the risk check
    every order passes; it may halt trading)."""
    with account_transaction(ctx) as connection:
        broker = make_broker(ctx, connection, at)
        prices = gate_prices(connection, ctx.user_id, previous, [p.ticker for p in broker.positions()])
        yield connection, broker, RiskGate.open(ctx, connection, broker, at, prices)


def _resend_after_a_check(ctx: JobContext, previous: date) -> dict[str, int]:
    """A live re-run: send what the first run recorded and did not send, its buys only
    if a risk check now still allows them."""
    session_of_day = ctx.calendar.session(ctx.trading_date)
    if session_of_day is None:
        return _send_live(ctx, sells_only=True)
    with _gated(ctx, previous, market_moment(ctx, session_of_day, pre_open=True)) as (_, broker, gate):
        refused = gate.entries_refused
    return _send_live(ctx, broker, buys_refused=refused)


def _send_live(ctx: JobContext, broker: Broker | None = None, *, buys_refused: str | None = None,
               sells_only: bool = False) -> dict[str, int]:
    """Send the live orders recorded and not yet at the broker (after the job's
    transaction has committed); what was sent, linked, rejected, left in doubt."""
    if broker is None:
        broker = live_broker(ctx)
    report = send_pending(broker, ctx.session_factory, ctx.user_id, ctx.clock, buys_refused=buys_refused,
                          sells_only=sells_only)
    if report.in_doubt or report.unsent:
        ctx.log.warning("%d live order(s) in doubt and %d unsent: the next monitoring tick tries again",
                        report.in_doubt, report.unsent)
    return report.summary()
