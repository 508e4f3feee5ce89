"""What the orchestrator reads of an account's trading: orders, fills and portfolio
snapshots over a range of trading dates, as plain values (replay reports), the latest
day it traded (``run-job``'s guard), and the account at a glance (the ``positions``,
``orders``, ``fills`` and ``pnl`` commands and the API): its positions valued, its
orders and fills, its P&L day by day."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, select

from services.common.job_api import Account
from services.data_collector.queries import latest_closes_before, latest_collected_session, stock_names
from services.trading_engine.history import holdings_at
from services.trading_engine.models import (
    ClosedTrade,
    FillRow,
    OrderRow,
    PaperAccount,
    PortfolioSnapshot,
    PositionRow,
)
from services.trading_engine.orders import OPEN_STATUSES, OrderStatus, Position, Side

_ORDERS, _FILLS, _POSITIONS = OrderRow.__table__, FillRow.__table__, PositionRow.__table__
_TRADES, _SNAPSHOTS = ClosedTrade.__table__, PortfolioSnapshot.__table__


def order_count(connection: Connection, account: Account, start: date, end: date) -> int:
    """How many orders ``account`` recorded for the trading dates ``start`` to ``end``."""
    return int(connection.scalar(select(func.count()).select_from(OrderRow).where(
        OrderRow.user_id == account.user_id, OrderRow.dry_run.is_(account.dry_run),
        OrderRow.trading_date >= start, OrderRow.trading_date <= end)) or 0)


def fill_totals(connection: Connection, account: Account, start: date, end: date) -> tuple[int, int, int]:
    """``account``'s fills traded from ``start`` to ``end``: (how many, commission, tax)."""
    count, commission, tax = connection.execute(select(
        func.count(), func.coalesce(func.sum(FillRow.commission), 0), func.coalesce(func.sum(FillRow.tax), 0))
        .where(FillRow.user_id == account.user_id, FillRow.dry_run.is_(account.dry_run),
               FillRow.trade_date >= start, FillRow.trade_date <= end)).one()
    return int(count), int(commission), int(tax)


def traded_amount(connection: Connection, account: Account, start: date, end: date) -> int:
    """What ``account`` bought and sold from ``start`` to ``end``, in KRW (before fees)."""
    amount = connection.scalar(select(func.coalesce(func.sum(FillRow.quantity * FillRow.price), 0)).where(
        FillRow.user_id == account.user_id, FillRow.dry_run.is_(account.dry_run),
        FillRow.trade_date >= start, FillRow.trade_date <= end))
    return int(amount or 0)


def closed_trades(connection: Connection, account: Account, start: date, end: date) -> list[tuple[date, date, int]]:
    """``account``'s trades closed from ``start`` to ``end``: (opened on, closed on, P&L
    after fees and taxes), oldest first."""
    rows = connection.execute(select(ClosedTrade.opened_on, ClosedTrade.closed_on, ClosedTrade.pnl).where(
        ClosedTrade.user_id == account.user_id, ClosedTrade.dry_run.is_(account.dry_run),
        ClosedTrade.closed_on >= start, ClosedTrade.closed_on <= end).order_by(ClosedTrade.fill_id)).all()
    return [(opened, closed, int(pnl)) for opened, closed, pnl in rows]


def equity_before(connection: Connection, account: Account, day: date) -> int | None:
    """``account``'s last snapshotted equity of a trading date before ``day``; None if none."""
    equity = connection.scalar(select(PortfolioSnapshot.equity).where(
        PortfolioSnapshot.user_id == account.user_id, PortfolioSnapshot.dry_run.is_(account.dry_run),
        PortfolioSnapshot.trading_date < day).order_by(PortfolioSnapshot.taken_at.desc()).limit(1))
    return None if equity is None else int(equity)


def latest_activity(connection: Connection, account: Account) -> date | None:
    """The latest trading date ``account`` has a fill or a portfolio snapshot of; None
    if it has neither (the day before which a manual trading run would rewrite history)."""
    fill = connection.scalar(select(func.max(FillRow.trade_date)).where(
        FillRow.user_id == account.user_id, FillRow.dry_run.is_(account.dry_run)))
    snapshot = connection.scalar(select(func.max(PortfolioSnapshot.trading_date)).where(
        PortfolioSnapshot.user_id == account.user_id, PortfolioSnapshot.dry_run.is_(account.dry_run)))
    return max((day for day in (fill, snapshot) if day is not None), default=None)


def paper_opening_cash(connection: Connection, user_id: str) -> int | None:
    """What ``user_id``'s paper account opened with; None if it was never opened."""
    cash = connection.scalar(select(PaperAccount.initial_cash).where(PaperAccount.user_id == user_id))
    return None if cash is None else int(cash)


def snapshots(connection: Connection, account: Account, start: date, end: date) -> list[Any]:
    """``account``'s portfolio snapshots of the trading dates ``start`` to ``end``, oldest first."""
    return list(connection.execute(select(PortfolioSnapshot.__table__).where(
        PortfolioSnapshot.user_id == account.user_id, PortfolioSnapshot.dry_run.is_(account.dry_run),
        PortfolioSnapshot.trading_date >= start, PortfolioSnapshot.trading_date <= end)
        .order_by(PortfolioSnapshot.taken_at)).all())


# --- the account at a glance: positions, orders, fills, daily P&L ---------------------------------
# (the ``positions``, ``orders``, ``fills`` and ``pnl`` commands and the API's reads; the
# caller reads them all in one snapshot transaction)


@dataclass(frozen=True)
class HeldPosition:
    """An open position valued at ``price``: its ticker's latest stored close on or
    before the valuation day (``priced``), else its average cost (as the risk check
    values it). ``cost`` is what the shares held cost, buy commissions included."""

    ticker: str
    name: str  # the stock master's name; "" if the ticker is not in it
    quantity: int
    cost: int
    price: int
    priced: bool
    opened_on: date

    @property
    def average_cost(self) -> float:
        return self.cost / self.quantity if self.quantity else 0.0

    @property
    def market_value(self) -> int:
        return self.quantity * self.price

    @property
    def unrealised_pnl(self) -> int:
        return self.market_value - self.cost

    @property
    def unrealised_return(self) -> float | None:
        return self.unrealised_pnl / self.cost if self.cost > 0 else None


@dataclass(frozen=True)
class Portfolio:
    """An account on ``day``: its cash, its positions valued at the closes of
    ``prices_on`` (the latest collected session on or before ``day``; None: no market
    data), and the P&L since the previous close and since it opened.

    ``cash``: a paper account's cash (what open buys hold back included); a live
    account's as of its latest snapshot (``cash_at``); None if the account was never
    opened (paper) or snapshotted (live). ``opening``: what a paper account opened
    with; a live account's first snapshotted equity. ``previous_equity``: the last
    snapshotted equity of a trading date before ``prices_on`` (else ``day``)."""

    account: Account
    day: date
    prices_on: date | None
    cash: int | None
    cash_at: datetime | None
    opening: int | None
    previous_equity: int | None
    realised_pnl: int  # of every closed trade, after fees and taxes
    positions: tuple[HeldPosition, ...]

    @property
    def market_value(self) -> int:
        return sum(position.market_value for position in self.positions)

    @property
    def cost(self) -> int:
        return sum(position.cost for position in self.positions)

    @property
    def unrealised_pnl(self) -> int:
        return self.market_value - self.cost

    @property
    def equity(self) -> int | None:
        return None if self.cash is None else self.cash + self.market_value

    @property
    def exposure(self) -> float | None:
        """Market value / equity."""
        equity = self.equity
        return self.market_value / equity if equity else None

    @property
    def day_pnl(self) -> int | None:
        """Equity against the previous close's (or, before any, the opening balance)."""
        base = self.previous_equity if self.previous_equity is not None else self.opening
        return None if self.equity is None or base is None else self.equity - base

    @property
    def day_return(self) -> float | None:
        base = self.previous_equity if self.previous_equity is not None else self.opening
        return None if self.day_pnl is None or not base else self.day_pnl / base

    @property
    def total_pnl(self) -> int | None:
        return None if self.equity is None or self.opening is None else self.equity - self.opening

    @property
    def total_return(self) -> float | None:
        return None if self.total_pnl is None or not self.opening else self.total_pnl / self.opening

    def weight(self, position: HeldPosition) -> float | None:
        """``position``'s share of the equity."""
        equity = self.equity
        return position.market_value / equity if equity else None


def _mine(table: Any, account: Account) -> Any:
    return and_(table.c.user_id == account.user_id, table.c.dry_run.is_(account.dry_run))


def portfolio(connection: Connection, account: Account, day: date) -> Portfolio:
    """``account`` as it stands on ``day`` (see :class:`Portfolio`)."""
    rows = connection.execute(select(_POSITIONS).where(_mine(_POSITIONS, account), _POSITIONS.c.quantity > 0)
                              .order_by(_POSITIONS.c.ticker)).all()
    held = [Position(row.ticker, int(row.quantity), int(row.cost), row.opened_on, int(row.high_water))
            for row in rows]
    tickers = [position.ticker for position in held]
    prices = latest_closes_before(connection, tickers, day + timedelta(days=1)) if tickers else {}
    names = stock_names(connection) if tickers else {}
    prices_on = latest_collected_session(connection, day)
    positions = tuple(
        HeldPosition(position.ticker, names.get(position.ticker, ""), position.quantity, position.cost,
                     holding.price, position.ticker in prices, position.opened_on)
        for position, holding in zip(held, holdings_at(held, prices)))
    cash, cash_at = _cash(connection, account)
    realised = connection.scalar(select(func.coalesce(func.sum(_TRADES.c.pnl), 0)).where(_mine(_TRADES, account)))
    return Portfolio(account, day, prices_on, cash, cash_at, opening_balance(connection, account),
                     equity_before(connection, account, prices_on or day), int(realised or 0), positions)


def _cash(connection: Connection, account: Account) -> tuple[int | None, datetime | None]:
    """A paper account's cash now; a live account's as of its latest snapshot (and when)."""
    if account.dry_run:
        cash = connection.scalar(select(PaperAccount.cash).where(PaperAccount.user_id == account.user_id))
        return (None if cash is None else int(cash)), None
    latest = connection.execute(select(_SNAPSHOTS.c.cash, _SNAPSHOTS.c.taken_at).where(_mine(_SNAPSHOTS, account))
                                .order_by(_SNAPSHOTS.c.taken_at.desc()).limit(1)).first()
    return (None, None) if latest is None else (int(latest.cash), latest.taken_at)


def opening_balance(connection: Connection, account: Account) -> int | None:
    """What ``account`` opened with: a paper account's initial cash, a live account's
    first snapshotted equity (KIS does not say); None if not known yet."""
    if account.dry_run:
        return paper_opening_cash(connection, account.user_id)
    equity = connection.scalar(select(_SNAPSHOTS.c.equity).where(_mine(_SNAPSHOTS, account))
                               .order_by(_SNAPSHOTS.c.taken_at).limit(1))
    return None if equity is None else int(equity)


#: what ``orders`` filters on: a name the caller gives, and the stored statuses it means
ORDER_STATUS_FILTERS: dict[str, tuple[str, ...] | None] = {
    "open": tuple(status.value for status in OPEN_STATUSES),
    "filled": (OrderStatus.FILLED.value,),
    "cancelled": (OrderStatus.CANCELLED.value,),
    "rejected": (OrderStatus.REJECTED.value,),
    "all": None,
}


@dataclass(frozen=True)
class OrderLine:
    id: int
    trading_date: date
    created_at: datetime
    ticker: str
    side: str
    order_type: str
    quantity: int
    filled_quantity: int
    limit_price: int | None
    status: str
    reason: str
    broker_order_id: str | None


def orders(connection: Connection, account: Account, statuses: Sequence[str] | None = None,
           limit: int = 50) -> list[OrderLine]:
    """``account``'s ``limit`` latest orders (of ``statuses`` only, if given), newest first."""
    statement = select(_ORDERS).where(_mine(_ORDERS, account))
    if statuses is not None:
        statement = statement.where(_ORDERS.c.status.in_(list(statuses)))
    rows = connection.execute(statement.order_by(_ORDERS.c.created_at.desc(), _ORDERS.c.id.desc())
                              .limit(limit)).all()
    return [_order_line(row) for row in rows]


def latest_ids(connection: Connection, account: Account) -> tuple[int, int]:
    """The highest order id and fill id of ``account`` so far (0: none)."""
    order_id = connection.scalar(select(func.max(_ORDERS.c.id)).where(_mine(_ORDERS, account)))
    fill_id = connection.scalar(select(func.max(_FILLS.c.id)).where(_mine(_FILLS, account)))
    return int(order_id or 0), int(fill_id or 0)


def orders_after(connection: Connection, account: Account, order_id: int) -> list[OrderLine]:
    """``account``'s orders stored after the one of ``order_id``, oldest first."""
    rows = connection.execute(select(_ORDERS).where(_mine(_ORDERS, account), _ORDERS.c.id > order_id)
                              .order_by(_ORDERS.c.id)).all()
    return [_order_line(row) for row in rows]


def _order_line(row: Any) -> OrderLine:
    return OrderLine(int(row.id), row.trading_date, row.created_at, row.ticker, row.side, row.order_type,
                     int(row.quantity), int(row.filled_quantity),
                     None if row.limit_price is None else int(row.limit_price), row.status, row.reason,
                     row.broker_order_id)


@dataclass(frozen=True)
class FillLine:
    id: int
    order_id: int
    filled_at: datetime
    trade_date: date
    settles_on: date
    ticker: str
    side: str
    quantity: int
    price: int
    commission: int
    tax: int

    @property
    def amount(self) -> int:
        return self.quantity * self.price

    @property
    def cash_change(self) -> int:
        """What the fill does to the cash: a buy pays amount and commission, a sale
        brings its amount less commission and tax."""
        if self.side == Side.BUY.value:
            return -(self.amount + self.commission)
        return self.amount - self.commission - self.tax


def fills(connection: Connection, account: Account, start: date, end: date) -> list[FillLine]:
    """``account``'s fills traded from ``start`` to ``end``, oldest first."""
    rows = connection.execute(select(_FILLS).where(
        _mine(_FILLS, account), _FILLS.c.trade_date >= start, _FILLS.c.trade_date <= end)
        .order_by(_FILLS.c.filled_at, _FILLS.c.id)).all()
    return [_fill_line(row) for row in rows]


def fills_after(connection: Connection, account: Account, fill_id: int) -> list[FillLine]:
    """``account``'s fills stored after the one of ``fill_id``, oldest first."""
    rows = connection.execute(select(_FILLS).where(_mine(_FILLS, account), _FILLS.c.id > fill_id)
                              .order_by(_FILLS.c.id)).all()
    return [_fill_line(row) for row in rows]


def _fill_line(row: Any) -> FillLine:
    return FillLine(int(row.id), int(row.order_id), row.filled_at, row.trade_date, row.settles_on, row.ticker,
                    row.side, int(row.quantity), int(row.price), int(row.commission), int(row.tax))


@dataclass(frozen=True)
class DayPnl:
    """A trading date as its last snapshot left it. ``day_pnl`` is against the
    previous date's closing equity (the opening balance before any); ``drawdown``
    from the highest closing equity so far (the opening balance included), <= 0;
    ``realised_pnl`` of the trades closed that day; fees and taxes of its fills."""

    trading_date: date
    taken_at: datetime
    cash: int
    market_value: int
    equity: int
    exposure: float
    positions: int
    previous_equity: int | None
    peak: int
    realised_pnl: int
    commission: int
    tax: int
    opening: int | None

    @property
    def day_pnl(self) -> int | None:
        return None if self.previous_equity is None else self.equity - self.previous_equity

    @property
    def day_return(self) -> float | None:
        return None if self.day_pnl is None or not self.previous_equity else self.day_pnl / self.previous_equity

    @property
    def cumulative_return(self) -> float | None:
        """Equity against the opening balance."""
        return self.equity / self.opening - 1 if self.opening else None

    @property
    def drawdown(self) -> float:
        return self.equity / self.peak - 1 if self.peak > 0 else 0.0


@dataclass(frozen=True)
class PnlReport:
    """The days of ``start`` to ``end`` with a snapshot, and what they add up to:
    the P&L from ``start_equity`` (the equity before the first day: the previous
    close, else the opening balance) to the last day's equity."""

    account: Account
    start: date
    end: date
    opening: int | None
    days: tuple[DayPnl, ...]

    @property
    def start_equity(self) -> int | None:
        return self.days[0].previous_equity if self.days else None

    @property
    def end_equity(self) -> int | None:
        return self.days[-1].equity if self.days else None

    @property
    def pnl(self) -> int | None:
        start, end = self.start_equity, self.end_equity
        return None if start is None or end is None else end - start

    @property
    def pnl_return(self) -> float | None:
        return None if self.pnl is None or not self.start_equity else self.pnl / self.start_equity

    @property
    def cumulative_return(self) -> float | None:
        return self.days[-1].cumulative_return if self.days else None

    @property
    def max_drawdown(self) -> float | None:
        return min(day.drawdown for day in self.days) if self.days else None

    @property
    def realised_pnl(self) -> int:
        return sum(day.realised_pnl for day in self.days)

    @property
    def commission(self) -> int:
        return sum(day.commission for day in self.days)

    @property
    def tax(self) -> int:
        return sum(day.tax for day in self.days)


def daily_pnl(connection: Connection, account: Account, start: date, end: date) -> PnlReport:
    """``account``'s days from ``start`` to ``end`` (see :class:`DayPnl`)."""
    last = select(_SNAPSHOTS.c.trading_date, func.max(_SNAPSHOTS.c.taken_at).label("taken_at")).where(
        _mine(_SNAPSHOTS, account), _SNAPSHOTS.c.trading_date <= end).group_by(_SNAPSHOTS.c.trading_date).subquery()
    closes = connection.execute(select(_SNAPSHOTS).join(last, and_(
        _SNAPSHOTS.c.trading_date == last.c.trading_date, _SNAPSHOTS.c.taken_at == last.c.taken_at)).where(
        _mine(_SNAPSHOTS, account)).order_by(_SNAPSHOTS.c.trading_date)).all()
    realised = {day: int(pnl or 0) for day, pnl in connection.execute(select(
        ClosedTrade.closed_on, func.sum(ClosedTrade.pnl)).where(
        _mine(_TRADES, account), ClosedTrade.closed_on >= start, ClosedTrade.closed_on <= end)
        .group_by(ClosedTrade.closed_on)).all()}
    fees = {day: (int(commission or 0), int(tax or 0)) for day, commission, tax in connection.execute(select(
        FillRow.trade_date, func.sum(FillRow.commission), func.sum(FillRow.tax)).where(
        _mine(_FILLS, account), FillRow.trade_date >= start, FillRow.trade_date <= end)
        .group_by(FillRow.trade_date)).all()}
    opening = opening_balance(connection, account)
    previous, peak = opening, opening or 0
    days = []
    for row in closes:
        equity = int(row.equity)
        peak = max(peak, equity)
        if row.trading_date >= start:
            commission, tax = fees.get(row.trading_date, (0, 0))
            days.append(DayPnl(row.trading_date, row.taken_at, int(row.cash), int(row.market_value), equity,
                               float(row.exposure), int(row.positions), previous, peak,
                               realised.get(row.trading_date, 0), commission, tax,
                               opening))
        previous = equity
    return PnlReport(account, start, end, opening, tuple(days))
