"""Settling a paper account on daily bars, when the data provider has no intraday prices
(pykrx, stored history) and no tick of a session was priced from KIS's quotes: each
such session is settled once its bar is stored (``data_collection``), by the next
trading run (``signal_generation`` before the next open, or a ``position_monitoring``
tick), in that run's transaction and before it acts. The same code settles a live dry
run and a replay of stored history. Before it, the limit orders of earlier sessions no
bar will settle (a session priced intraday) expire.

A session is settled in order (:mod:`bar_fills` holds the model):

1. a split or reverse split that takes effect that day (:mod:`adjustments`) multiplies
   each holding's shares (cost unchanged, high-water mark divided) and cancels the
   ticker's orders of the day, priced before it;
2. the path open -> low -> high -> close: at each point the open orders placed before
   the open fill as the broker's rules allow (at the open, as the opening auction
   fills them: a limit order the open trades through fills at the open), then the
   price exits of the positions held into the session that the point calls for are
   placed and fill at their level. An order placed during the session (a manual run,
   an exit's capped remainder) sees the close only: a market order fills there, a
   limit order if the close trades through it, at the close;
3. the day's limit orders still open expire; the snapshot at the close is stored
   with the day's closes, and the account records the session as settled.

A ticker halted that day, or without a row, fills nothing. Settling is idempotent:
a settled session is never settled again, and every order it places has a client
order id of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, select, update

from services.common.clock import FixedClock
from services.common.database import upsert
from services.common.market_calendar import KRX_TZ, MarketCalendar, Session
from services.data_collector.adjustments import share_ratio
from services.data_collector.queries import bars_on, closes_on, is_collected, latest_closes_before
from services.trading_engine.bar_fills import POINTS, Bar, BarExit, bar_exit, path_moments
from services.trading_engine.gate import RiskGate
from services.trading_engine.models import PaperAccount, PositionRow, SignalRow
from services.trading_engine.order_book import client_order_id, submit
from services.trading_engine.orders import Fill, OrderRequest, OrderType, Side
from services.trading_engine.paper import PaperBroker, ReferencePrices
from services.trading_engine.prices import participation_caps
from services.trading_engine.signals import EXIT_STRENGTH, SignalRules
from services.trading_engine.snapshots import last_priced_session, record_snapshot

logger = logging.getLogger(__name__)

#: ``clock -> the account's paper broker on the settling transaction, standing at that clock``
BrokerAt = Callable[[FixedClock], PaperBroker]

#: an exit fills this long after it is placed at its point (it must come after the order)
_EXIT_LAG = timedelta(milliseconds=1)


@dataclass
class Settlement:
    """What settling did: sessions settled, fills, exits, orders expired or cancelled."""

    sessions: list[date] = field(default_factory=list)
    fills: int = 0
    exits: int = 0
    expired: int = 0
    splits: int = 0

    def summary(self) -> dict[str, int]:
        if not self.sessions:
            return {}
        return {"bar_sessions_settled": len(self.sessions), "bar_fills": self.fills, "bar_exits": self.exits}


def sessions_to_settle(connection: Connection, calendar: MarketCalendar, user_id: str, now: datetime,
                       seen: date | None) -> list[Session]:
    """The sessions after the last settled one (or from the account's opening) and after
    ``seen`` (:func:`last_priced_session`) whose close is past and whose bar is stored, in
    order, up to the first whose bar is not."""
    row = connection.execute(select(PaperAccount.opened_at, PaperAccount.bars_settled_through).where(
        PaperAccount.user_id == user_id)).first()
    if row is None:
        return []
    opened_at, settled = row
    today = now.astimezone(KRX_TZ).date()
    first = max([opened_at.astimezone(KRX_TZ).date(), *(day + timedelta(days=1) for day in (settled, seen) if day)])
    due = []
    for session in calendar.sessions(first, today):
        if session.close > now or not is_collected(connection, session.date):
            break
        due.append(session)
    return due


def settle_daily_bars(connection: Connection, broker_at: BrokerAt, calendar: MarketCalendar, rules: SignalRules,
                      now: datetime) -> Settlement:
    """Settle every session :func:`sessions_to_settle` finds, in order. Exits pass a risk
    gate like every order: one for exits only, since no assessment is made at a past
    moment (sells pass every gate)."""
    clock = FixedClock(now)
    broker = broker_at(clock)
    broker.paper_account()  # opened on first use
    result = Settlement()
    seen = last_priced_session(connection, broker.user_id)
    result.expired += _end_unsettleable_orders(broker, seen, now)
    for session in sessions_to_settle(connection, calendar, broker.user_id, now, seen):
        previous = calendar.previous_session(session.date)
        _settle_session(connection, broker, clock, session, previous.date if previous else None, rules, result)
        connection.execute(update(PaperAccount).where(PaperAccount.user_id == broker.user_id)
                           .values(bars_settled_through=session.date))
        result.sessions.append(session.date)
    if result.sessions:
        logger.info("settled %s on daily bars: %d fills, %d price exits, %d expired", broker.account.describe(),
                    result.fills, result.exits, result.expired)
    clock.set(now)
    return result


def _end_unsettleable_orders(broker: PaperBroker, seen: date | None, now: datetime) -> int:
    """Expire the limit orders of the sessions before today that no bar will settle: up
    to the last one the account saw priced (a KIS-priced session whose closing tick
    never ran; one whose bar never came before a later session was priced). A day order
    never outlives its session into the next, holding cash back or filling on a later
    bar; today's priced session ends its own at its closing tick."""
    if seen is None:
        return 0
    over = min(seen, now.astimezone(KRX_TZ).date() - timedelta(days=1))
    expired = broker.expire_day_orders(over)
    if expired:
        logger.warning("%d limit order(s) of sessions up to %s expired: no daily bar settles them once a later "
                       "session, or their own, was priced intraday", expired, over)
    return expired


def _settle_session(connection: Connection, broker: PaperBroker, clock: FixedClock, session: Session,
                    previous: date | None, rules: SignalRules, result: Settlement) -> None:
    day = session.date
    clock.set(session.open)
    tickers = sorted({p.ticker for p in broker.positions()} | {o.ticker for o in broker.open_orders()})
    rows = bars_on(connection, day, tickers)
    previous_closes = closes_on(connection, previous, tickers) if previous else {}
    ratios = _apply_splits(connection, broker, day, rows, previous_closes)
    result.splits += len(ratios)
    bars = {ticker: Bar(int(o), int(h), int(low), int(c)) for ticker, o, h, low, c, _, halted in rows if not halted}
    exits = _exits(broker, bars, day, rules)
    caps = dict(participation_caps(connection, tickers, previous)) if previous else None
    references = broker.reference_prices
    if ratios:  # the band and the volume cap of a split ticker in its new shares
        broker.reference_prices = _split_references(references, ratios)
        caps = caps and {ticker: int(cap * ratios.get(ticker, 1)) for ticker, cap in caps.items()}
    moments = path_moments(session)
    for point, moment in enumerate(moments):
        clock.set(moment)
        prices = {ticker: bar.path()[point] for ticker, bar in bars.items()}
        closing = point == len(moments) - 1
        # the extremes are for the orders placed before the open; one placed later sees the close only
        result.fills += _count(broker.match(
            prices, moment, caps, auction=point == 0, placed_before=None if point == 0 or closing else session.open,
            first_seen_after=session.open if closing else None), caps)
        for ticker, exit_ in exits.items():
            if exit_.point == point:
                result.exits += _place_exit(connection, broker, RiskGate.exits_only(), day, ticker, exit_, moment)
                result.fills += _count(broker.match({ticker: exit_.price}, moment + _EXIT_LAG, caps), caps)
        broker.mark(prices)
    broker.reference_prices = references
    clock.set(session.close)
    result.expired += broker.expire_day_orders(day)
    positions = broker.positions()
    closes = {**latest_closes_before(connection, [p.ticker for p in positions], day),
              **{str(row[0]): int(row[4]) for row in rows}}  # a halted ticker: its (unchanged) close
    record_snapshot(connection, broker, positions, closes, session.close, day, True)


def _exits(broker: PaperBroker, bars: Mapping[str, Bar], day: date, rules: SignalRules) -> dict[str, BarExit]:
    """The price exits of the positions held into ``day`` and not being sold."""
    selling = {order.ticker for order in broker.open_orders() if order.side is Side.SELL}
    exits = {}
    for position in broker.positions():
        bar = bars.get(position.ticker)
        if bar is None or position.ticker in selling or position.opened_on >= day:
            continue
        exit_ = bar_exit(position.average_price, position.high_water, bar, rules,
                         broker.grid(position.ticker, day).round_to_tick)
        if exit_ is not None:
            exits[position.ticker] = exit_
    return exits


def _place_exit(connection: Connection, broker: PaperBroker, gate: RiskGate, day: date, ticker: str,
                exit_: BarExit, moment: datetime) -> int:
    held = {p.ticker: p for p in broker.positions()}.get(ticker)
    if held is None:
        return 0
    reason = (f"{exit_.reason}: {exit_.price} on the daily bar's path ({POINTS[exit_.point]} leg) vs average "
              f"cost {held.average_price:.0f} ({exit_.price / held.average_price - 1:+.2%})")
    request = OrderRequest(client_order_id(broker.account, day, ticker, "bar-exit"), day, ticker, Side.SELL,
                           held.quantity, OrderType.MARKET, reason=reason)
    submit(broker, connection, request, moment, gate)
    upsert(connection, SignalRow.__table__, [{
        "user_id": broker.user_id, "dry_run": True, "trading_date": day, "ticker": ticker, "kind": "exit",
        "source": "daily bar", "reason": reason[:300], "strength": EXIT_STRENGTH[exit_.reason],
        "reference_price": exit_.price, "quantity": held.quantity, "client_order_id": request.client_order_id,
        "created_at": moment}], ["user_id", "dry_run", "trading_date", "ticker", "kind"])
    return 1


def _split_references(references: ReferencePrices, ratios: Mapping[str, Fraction]) -> ReferencePrices:
    """``references`` with a split ticker's previous close in its new shares."""
    def adjusted(tickers: Sequence[str], day: date) -> dict[str, int]:
        closes = dict(references(tickers, day))
        return {ticker: int(close / ratios[ticker]) if ticker in ratios else close for ticker, close in closes.items()}
    return adjusted


def _apply_splits(connection: Connection, broker: PaperBroker, day: date, rows: list[tuple[Any, ...]],
                  previous_closes: Mapping[str, int]) -> dict[str, Fraction]:
    """Holdings through a split or reverse split taking effect on ``day``; the ticker's
    orders of the day (priced before it) are cancelled. The ratio of each such ticker."""
    ratios: dict[str, Fraction] = {}
    held = {p.ticker: p for p in broker.positions()}
    for ticker, _, _, _, close, change_pct, _ in rows:
        ratio = share_ratio(previous_closes.get(str(ticker), 0), int(close), float(change_pct))
        if ratio is None:
            continue
        ratios[str(ticker)] = ratio
        for order in broker.open_orders():
            if order.ticker == ticker:
                broker.cancel(order.order_id, f"cancelled: {ticker}'s shares changed {ratio} for 1 on {day}")
        position = held.get(str(ticker))
        if position is not None:
            connection.execute(update(PositionRow).where(
                PositionRow.user_id == broker.user_id, PositionRow.dry_run.is_(True), PositionRow.ticker == ticker)
                .values(quantity=int(position.quantity * ratio), high_water=int(position.high_water / ratio)))
            logger.info("%s: %d shares become %d (%s for 1 on %s)", ticker, position.quantity,
                        int(position.quantity * ratio), ratio, day)
    return ratios


def _count(fills: list[Fill], caps: dict[str, int] | None) -> int:
    """The number of ``fills``, their quantities taken off ``caps`` (the session's)."""
    if caps is not None:
        for fill in fills:
            if fill.ticker in caps:
                caps[fill.ticker] = max(0, caps[fill.ticker] - fill.quantity)
    return len(fills)
