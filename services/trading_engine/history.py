"""An account as the risk assessment takes it: its cash and valued holdings now, and
what its stored snapshots and trades say about its past (one round trip)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, literal, select

from services.common.database import fetch_typed
from services.risk_manager.assessment import AccountState
from services.risk_manager.metrics import Holding
from services.trading_engine.models import ClosedTrade, PortfolioSnapshot
from services.trading_engine.orders import Broker, Position

_SNAPSHOTS, _TRADES = PortfolioSnapshot.__table__, ClosedTrade.__table__
_ACCOUNT_SNAPSHOTS = (_SNAPSHOTS.c.user_id == bindparam("owner")) & (_SNAPSHOTS.c.dry_run == bindparam("dry_run"))
_PEAK = select(_SNAPSHOTS.c.equity).where(_ACCOUNT_SNAPSHOTS).order_by(_SNAPSHOTS.c.equity.desc()).limit(1)


def past_columns() -> list[Any]:
    """The equity at the close before ``day``, the first and the peak equity (one probe
    of ix_snapshots_equity) and the realised P&L of an account, as labelled scalar
    subqueries (parameters ``owner``, ``dry_run`` and ``day``)."""
    return [
        select(_SNAPSHOTS.c.equity).where(_ACCOUNT_SNAPSHOTS, _SNAPSHOTS.c.trading_date < bindparam("day"))
        .order_by(_SNAPSHOTS.c.taken_at.desc()).limit(1).scalar_subquery().label("previous_close"),
        select(_SNAPSHOTS.c.equity).where(_ACCOUNT_SNAPSHOTS).order_by(_SNAPSHOTS.c.taken_at).limit(1)
        .scalar_subquery().label("first_equity"),
        _PEAK.scalar_subquery().label("peak"),
        select(func.coalesce(func.sum(_TRADES.c.pnl), 0)).where(
            _TRADES.c.user_id == bindparam("owner"), _TRADES.c.dry_run == bindparam("dry_run"))
        .scalar_subquery().label("realised"),
    ]


def _history_statement() -> Select[Any]:
    """:func:`past_columns` in one round trip."""
    one_row = select(literal(1).label("one")).subquery()
    return select(*past_columns()).select_from(one_row)


# built once: read by the risk check every 30 minutes, and before every trading job
_HISTORY = _history_statement()
_PEAK_SINCE = _PEAK.where(_SNAPSHOTS.c.taken_at >= bindparam("since"))


def holdings_at(positions: Sequence[Position], prices: Mapping[str, int]) -> list[Holding]:
    """Positions valued at ``prices``; a ticker without a price at its average cost."""
    return [Holding(p.ticker, p.quantity, p.cost, int(prices.get(p.ticker) or round(p.average_price)))
            for p in positions]


def account_state(connection: Connection, broker: Broker, positions: Sequence[Position],
                  prices: Mapping[str, int], day: date) -> AccountState:
    """The account of ``broker`` holding ``positions`` valued at ``prices``, for the session ``day``."""
    parameters = {"owner": broker.account.user_id, "dry_run": broker.account.dry_run, "day": day}
    balance = broker.balance()
    (past,) = fetch_typed(connection, _HISTORY, parameters)

    def peak_since(since: datetime) -> int | None:
        return _int_or_none(connection.scalar(_PEAK_SINCE, {**parameters, "since": since}))

    return AccountState(balance.cash, holdings_at(positions, prices), balance.opening,
                        _int_or_none(past.first_equity), _int_or_none(past.previous_close),
                        _int_or_none(past.peak), int(past.realised or 0), peak_since)


def _int_or_none(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
