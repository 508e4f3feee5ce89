"""The portfolio snapshot: the account's cash, market value and equity at a moment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select

from services.common.database import upsert
from services.trading_engine.models import PortfolioSnapshot
from services.trading_engine.orders import Broker, Position

_SNAPSHOTS = PortfolioSnapshot.__table__
#: the paper account's snapshots at observed prices (intraday, or a settled daily bar)
_PRICED = and_(_SNAPSHOTS.c.user_id == bindparam("owner"), _SNAPSHOTS.c.dry_run.is_(True),
               _SNAPSHOTS.c.prices_observed.is_(True))
_LAST_PRICED = select(func.max(_SNAPSHOTS.c.trading_date)).where(_PRICED)
_PRICED_ON = select(_SNAPSHOTS.c.taken_at).where(_PRICED, _SNAPSHOTS.c.trading_date == bindparam("day")).limit(1)


def last_priced_session(connection: Connection, user_id: str) -> date | None:
    """The last session ``user_id``'s paper account saw priced: settled on its bar, or
    observed intraday (KIS's quotes, the simulated market). No bar settles it, nor any
    session before it."""
    last: date | None = connection.scalar(_LAST_PRICED, {"owner": user_id})
    return last


def priced_on(connection: Connection, user_id: str, day: date) -> bool:
    """Whether ``user_id``'s paper account saw session ``day`` priced."""
    return connection.scalar(_PRICED_ON, {"owner": user_id, "day": day}) is not None


def _keeps_observed_prices(table: Any, excluded: Any) -> Any:
    """A snapshot valued at observed prices is never replaced by one valued at stale
    closes (a tick re-run late, after KIS's prices are no longer its own): the session
    stays priced intraday, and no daily bar settles it again."""
    return or_(table.c.prices_observed.is_(False), excluded.prices_observed.is_(True))


def record_snapshot(connection: Connection, broker: Broker, positions: Sequence[Position],
                    prices: Mapping[str, int], moment: datetime, trading_date: date, observed: bool) -> int:
    """Store (or replace, unless observed prices would give way to stale ones) the
    snapshot of ``broker``'s account at ``moment``, positions valued at ``prices`` (at
    cost where none); its equity."""
    cash = broker.cash()
    reserved = cash.held_back  # for open buys: still cash
    market_value = sum(p.quantity * prices.get(p.ticker, int(p.average_price)) for p in positions)
    cost = sum(p.cost for p in positions)
    balance = cash.available + reserved
    equity = balance + market_value
    upsert(connection, PortfolioSnapshot.__table__, [{
        "user_id": broker.account.user_id, "dry_run": broker.account.dry_run, "taken_at": moment,
        "trading_date": trading_date,
        "cash": balance, "settled_cash": cash.settled + reserved, "market_value": market_value, "equity": equity,
        "exposure": round(market_value / equity, 6) if equity > 0 else 0.0,
        "unrealised_pnl": market_value - cost, "positions": len(positions), "prices_observed": observed,
    }], ["user_id", "dry_run", "taken_at"], update_where=_keeps_observed_prices)
    return equity
