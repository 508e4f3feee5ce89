"""The account at a glance: its summary (cash, equity, exposure, P&L), open positions,
orders, fills and daily P&L, for the ``positions``, ``orders``, ``fills`` and ``pnl``
commands and the REST API (``/api/account``, ``/api/positions``, ``/api/orders``,
``/api/fills``).

The account is the runtime's settings' own: ``user_id`` and ``dry_run`` (paper or
live); nothing of another account is read. Each function reads in one snapshot
transaction, so what it returns is one committed state. Rows are plain, JSON-ready
dicts: dates ``YYYY-MM-DD``; times ISO 8601 in the display zone (``settings.display_tz``)
with their offset; money whole KRW (ints); returns, weights and drawdowns fractions
(0.0123 is 1.23%) rounded to 6 places; an unknown value None.

Positions are valued at each ticker's latest stored close on or before today (KRX
date), as the risk check values them when no price is observed (a ticker without a
close at its average cost; ``priced`` says which).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.common.job_api import Account
from services.common.market_calendar import KRX_TZ
from services.orchestrator.ops.arguments import InvalidArgument, check_range
from services.orchestrator.runtime import Runtime

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from services.trading_engine.queries import DayPnl, FillLine, HeldPosition, OrderLine, Portfolio

#: ``orders --status``: the orders still working (new, partially filled), the filled,
#: cancelled (expired limit orders included) or rejected ones, or all of them
ORDER_STATUSES = ("open", "filled", "cancelled", "rejected", "all")
DEFAULT_ORDER_STATUS = "all"
DEFAULT_ORDER_LIMIT = 50
#: ``fills`` and ``pnl`` without ``--start``: this many days up to ``--end`` (today)
DEFAULT_DAYS = 30
RATIO_PLACES = 6

#: the fields of each kind of row, in the order csv shows them
SUMMARY_FIELDS = ("user_id", "mode", "dry_run", "as_of", "valued_on", "cash", "cash_at", "market_value", "equity",
                  "exposure", "positions", "cost", "unrealised_pnl", "realised_pnl", "opening_balance",
                  "previous_equity", "day_pnl", "day_return", "total_pnl", "total_return")
POSITION_FIELDS = ("ticker", "name", "quantity", "average_cost", "cost", "last_price", "priced", "market_value",
                   "unrealised_pnl", "unrealised_return", "weight", "opened_on", "days_held")
ORDER_FIELDS = ("id", "trading_date", "created_at", "ticker", "side", "order_type", "quantity", "filled_quantity",
                "limit_price", "status", "reason", "broker_order_id")
FILL_FIELDS = ("id", "filled_at", "trade_date", "ticker", "side", "quantity", "price", "amount", "commission", "tax",
               "cash_change", "settles_on", "order_id")
PNL_DAY_FIELDS = ("date", "snapshot_at", "cash", "market_value", "equity", "exposure", "positions", "day_pnl",
                  "day_return", "cumulative_return", "drawdown", "realised_pnl", "commission", "tax")
PNL_TOTAL_FIELDS = ("days", "start_equity", "end_equity", "pnl", "return", "cumulative_return", "max_drawdown",
                    "realised_pnl", "commission", "tax")


def today(runtime: Runtime) -> date:
    """The KRX date of the runtime's clock."""
    return runtime.clock.now().astimezone(KRX_TZ).date()


def date_range(runtime: Runtime, start: date | None = None, end: date | None = None) -> tuple[date, date]:
    """``start`` to ``end``; without ``end`` today, without ``start`` the
    ``DEFAULT_DAYS`` days up to ``end``. A start after the end is refused."""
    end = end or today(runtime)
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    check_range(start, end)
    return start, end


def summary(runtime: Runtime) -> dict[str, Any]:
    """The account now (``/api/account``): see :func:`overview`'s ``summary``."""
    view: dict[str, Any] = overview(runtime)["summary"]
    return view


def positions(runtime: Runtime) -> list[dict[str, Any]]:
    """The open positions, by ticker (``/api/positions``): see :func:`overview`."""
    rows: list[dict[str, Any]] = overview(runtime)["positions"]
    return rows


def overview(runtime: Runtime) -> dict[str, Any]:
    """The account's summary and its open positions, read together:

    ``summary``: user_id, mode (paper|live), dry_run, as_of (now), valued_on (the
    session whose closes value the positions; None without market data), cash (a live
    account's as of its latest snapshot, ``cash_at``; None if never opened or
    snapshotted), market_value, equity, exposure, positions, cost, unrealised_pnl,
    realised_pnl (every closed trade), opening_balance (a live account's first
    snapshotted equity), previous_equity (the last close before ``valued_on``),
    day_pnl, day_return (against it, or the opening balance before any), total_pnl,
    total_return (against the opening balance).

    ``positions``: ticker, name, quantity, average_cost, cost (buy commissions
    included), last_price, priced, market_value, unrealised_pnl, unrealised_return,
    weight (of the equity), opened_on, days_held (calendar days)."""
    from services.trading_engine.queries import portfolio

    day = today(runtime)
    with _reading(runtime) as connection:
        account = portfolio(connection, _account(runtime), day)
    return {"summary": _summary_row(runtime, account),
            "positions": [_position_row(account, position) for position in account.positions]}


def orders(runtime: Runtime, status: str = DEFAULT_ORDER_STATUS, limit: int = DEFAULT_ORDER_LIMIT,
           ) -> list[dict[str, Any]]:
    """The ``limit`` latest orders of ``status`` (one of ``ORDER_STATUSES``), newest
    first: id, trading_date, created_at, ticker, side, order_type, quantity,
    filled_quantity, limit_price (None: a market order), status (new,
    partially_filled, filled, cancelled, rejected), reason, broker_order_id (live)."""
    from services.trading_engine.queries import ORDER_STATUS_FILTERS
    from services.trading_engine.queries import orders as read_orders

    if status not in ORDER_STATUSES:
        raise InvalidArgument("status", f"{status!r} is not an order status; expected one of "
                                        f"{', '.join(ORDER_STATUSES)}")
    if limit < 1:
        raise InvalidArgument("limit", f"{limit} is not a number of orders; expected 1 or more")
    with _reading(runtime) as connection:
        lines = read_orders(connection, _account(runtime), ORDER_STATUS_FILTERS[status], limit)
    return [_order_row(runtime, line) for line in lines]


def fills(runtime: Runtime, start: date | None = None, end: date | None = None) -> list[dict[str, Any]]:
    """The fills traded from ``start`` to ``end`` (see :func:`date_range`), oldest
    first: id, filled_at, trade_date, ticker, side, quantity, price, amount (quantity
    x price), commission, tax, cash_change (what it did to the cash), settles_on,
    order_id."""
    from services.trading_engine.queries import fills as read_fills

    start, end = date_range(runtime, start, end)
    with _reading(runtime) as connection:
        lines = read_fills(connection, _account(runtime), start, end)
    return [_fill_row(runtime, line) for line in lines]


def pnl(runtime: Runtime, start: date | None = None, end: date | None = None) -> dict[str, Any]:
    """The P&L of each trading date from ``start`` to ``end`` (see :func:`date_range`)
    with a portfolio snapshot, from its last one, and the totals:

    ``days``: date, snapshot_at, cash, market_value, equity, exposure, positions,
    day_pnl, day_return (against the previous date's equity, or the opening balance
    before any), cumulative_return (against the opening balance), drawdown (from the
    highest closing equity so far, the opening balance included; <= 0), realised_pnl
    (the trades closed that day, after fees and taxes), commission, tax (of that
    day's fills).

    ``totals``: days, start_equity (the equity before the first day), end_equity,
    pnl, return (end against start), cumulative_return, max_drawdown, realised_pnl,
    commission, tax.

    Also user_id, mode, start, end, opening_balance."""
    from services.trading_engine.queries import daily_pnl

    start, end = date_range(runtime, start, end)
    account = _account(runtime)
    with _reading(runtime) as connection:
        report = daily_pnl(connection, account, start, end)
    return {
        "user_id": account.user_id, "mode": account.mode, "start": start.isoformat(), "end": end.isoformat(),
        "opening_balance": report.opening,
        "days": [_day_row(runtime, day) for day in report.days],
        "totals": {"days": len(report.days), "start_equity": report.start_equity, "end_equity": report.end_equity,
                   "pnl": report.pnl, "return": _ratio(report.pnl_return),
                   "cumulative_return": _ratio(report.cumulative_return),
                   "max_drawdown": _ratio(report.max_drawdown), "realised_pnl": report.realised_pnl,
                   "commission": report.commission, "tax": report.tax},
    }


EQUITY_FIELDS = ("taken_at", "trading_date", "cash", "settled_cash", "market_value", "equity", "exposure",
                 "unrealised_pnl", "positions", "prices_observed")


def equity(runtime: Runtime, start: date | None = None, end: date | None = None) -> list[dict[str, Any]]:
    """The portfolio snapshots of the trading dates ``start`` to ``end`` (see
    :func:`date_range`), oldest first (``/api/equity``): taken_at, trading_date, cash,
    settled_cash, market_value, equity, exposure, unrealised_pnl, positions,
    prices_observed (False: valued at the latest stored closes)."""
    from services.trading_engine.queries import snapshots

    start, end = date_range(runtime, start, end)
    with _reading(runtime) as connection:
        rows = snapshots(connection, _account(runtime), start, end)
    return [{"taken_at": _time(runtime, row.taken_at), "trading_date": row.trading_date.isoformat(),
             "cash": int(row.cash), "settled_cash": int(row.settled_cash), "market_value": int(row.market_value),
             "equity": int(row.equity), "exposure": _ratio(row.exposure), "unrealised_pnl": int(row.unrealised_pnl),
             "positions": int(row.positions), "prices_observed": bool(row.prices_observed)} for row in rows]


# --- internals ---------------------------------------------------------------------------------


def _account(runtime: Runtime) -> Account:
    return Account.of(runtime.settings)


@contextmanager
def _reading(runtime: Runtime) -> Iterator[Connection]:
    from services.common.database import snapshot_transaction

    with snapshot_transaction(runtime.session_factory()) as connection:
        yield connection


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, RATIO_PLACES)


def _time(runtime: Runtime, moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(runtime.settings.display_tz).isoformat()


def _summary_row(runtime: Runtime, account: Portfolio) -> dict[str, Any]:
    return {
        "user_id": account.account.user_id, "mode": account.account.mode, "dry_run": account.account.dry_run,
        "as_of": _time(runtime, runtime.clock.now()),
        "valued_on": None if account.prices_on is None else account.prices_on.isoformat(),
        "cash": account.cash, "cash_at": _time(runtime, account.cash_at),
        "market_value": account.market_value, "equity": account.equity, "exposure": _ratio(account.exposure),
        "positions": len(account.positions), "cost": account.cost, "unrealised_pnl": account.unrealised_pnl,
        "realised_pnl": account.realised_pnl, "opening_balance": account.opening,
        "previous_equity": account.previous_equity, "day_pnl": account.day_pnl,
        "day_return": _ratio(account.day_return), "total_pnl": account.total_pnl,
        "total_return": _ratio(account.total_return),
    }


def _position_row(account: Portfolio, position: HeldPosition) -> dict[str, Any]:
    return {
        "ticker": position.ticker, "name": position.name, "quantity": position.quantity,
        "average_cost": round(position.average_cost), "cost": position.cost, "last_price": position.price,
        "priced": position.priced, "market_value": position.market_value,
        "unrealised_pnl": position.unrealised_pnl, "unrealised_return": _ratio(position.unrealised_return),
        "weight": _ratio(account.weight(position)), "opened_on": position.opened_on.isoformat(),
        "days_held": (account.day - position.opened_on).days,
    }


def _order_row(runtime: Runtime, line: OrderLine) -> dict[str, Any]:
    return {
        "id": line.id, "trading_date": line.trading_date.isoformat(), "created_at": _time(runtime, line.created_at),
        "ticker": line.ticker, "side": line.side, "order_type": line.order_type, "quantity": line.quantity,
        "filled_quantity": line.filled_quantity, "limit_price": line.limit_price, "status": line.status,
        "reason": line.reason, "broker_order_id": line.broker_order_id,
    }


def _fill_row(runtime: Runtime, line: FillLine) -> dict[str, Any]:
    return {
        "id": line.id, "filled_at": _time(runtime, line.filled_at), "trade_date": line.trade_date.isoformat(),
        "ticker": line.ticker, "side": line.side, "quantity": line.quantity, "price": line.price,
        "amount": line.amount, "commission": line.commission, "tax": line.tax, "cash_change": line.cash_change,
        "settles_on": line.settles_on.isoformat(), "order_id": line.order_id,
    }


def _day_row(runtime: Runtime, day: DayPnl) -> dict[str, Any]:
    return {
        "date": day.trading_date.isoformat(), "snapshot_at": _time(runtime, day.taken_at), "cash": day.cash,
        "market_value": day.market_value, "equity": day.equity, "exposure": _ratio(day.exposure),
        "positions": day.positions, "day_pnl": day.day_pnl, "day_return": _ratio(day.day_return),
        "cumulative_return": _ratio(day.cumulative_return), "drawdown": _ratio(day.drawdown),
        "realised_pnl": day.realised_pnl, "commission": day.commission, "tax": day.tax,
    }
