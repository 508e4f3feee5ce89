"""A paper account's fingerprint: everything the risk assessment of the account reads
from the database, in one round trip (the fingerprints of ``risk_checks`` and
``position_monitoring``: ``JobSpec.state``).

It holds the latest collected session, the latest order change, fill and breach, the
cash, the last settled bar, the halt record, and of the snapshots the values the
assessment takes (the equity at the close before the session, the first, the peak, the
peak since the last resume), not when the last one was taken: a monitoring tick's own
snapshot of an account that did not change leaves the fingerprint as it was. With it
come the number of positions and of open orders, which tell whether prices (which
move during the session) count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, bindparam, func, or_, select

from services.common.database import fetch_compiled, write_generation
from services.common.job_api import JobContext
from services.data_collector.models import CollectedSession
from services.risk_manager.limits import RiskLimits
from services.risk_manager.models import RiskBreach, TradingHalt
from services.trading_engine.history import past_columns
from services.trading_engine.models import FillRow, OrderRow, PaperAccount, PortfolioSnapshot, PositionRow
from services.trading_engine.orders import OPEN_STATUSES


def _statement() -> Any:
    orders, fills, snapshots = OrderRow.__table__.c, FillRow.__table__.c, PortfolioSnapshot.__table__.c
    account, halts, breaches = PaperAccount.__table__.c, TradingHalt.__table__.c, RiskBreach.__table__.c
    positions = PositionRow.__table__.c
    owner: Any = bindparam("owner")
    mode: Any = bindparam("dry_run")

    def latest(column: Any, *where: Any) -> Any:
        return select(func.max(column)).where(*where).scalar_subquery()

    def count(table: Any, *where: Any) -> Any:
        return select(func.count()).select_from(table).where(*where).scalar_subquery()

    resumed_at = select(halts.baseline_at).where(halts.user_id == owner).scalar_subquery()
    return select(
        latest(CollectedSession.date, CollectedSession.date <= bindparam("today")).label("collected"),
        latest(orders.updated_at, orders.user_id == owner, orders.dry_run == mode),
        latest(fills.id, fills.user_id == owner, fills.dry_run == mode),
        *past_columns(),
        latest(snapshots.equity, snapshots.user_id == owner, snapshots.dry_run == mode,
               snapshots.taken_at >= resumed_at),
        latest(breaches.id, breaches.user_id == owner, breaches.dry_run == mode),
        select(account.cash).where(account.user_id == owner).scalar_subquery(),
        select(account.bars_settled_through).where(account.user_id == owner).scalar_subquery(),
        *(select(column).where(halts.user_id == owner).scalar_subquery()
          for column in (halts.halted, halts.halted_at, halts.resumed_at, halts.baseline_at, halts.baseline_equity)),
        count(PositionRow.__table__, positions.user_id == owner, positions.dry_run == mode).label("positions"),
        count(OrderRow.__table__, orders.user_id == owner, orders.dry_run == mode,
              or_(*(orders.status == status for status in sorted(status.value for status in OPEN_STATUSES))))
        .label("open_orders"),
    )


# built once: read before every risk check and monitoring tick
_FINGERPRINT = _statement()


@dataclass(frozen=True)
class AccountFingerprint:
    text: str  # the day, the limits and what was read, as one string (the latest collected session apart)
    collected: date | None  # the latest collected session: the stored closes that value positions, the last bar
    positions: int
    open_orders: int


#: per engine: the last fingerprint read for each (account, day, today, limits), with the
#: write generation it was read at (``database.write_generation``)
_read: WeakKeyDictionary[Engine, dict[tuple[Any, ...], tuple[tuple[int, int], AccountFingerprint]]] = \
    WeakKeyDictionary()


def account_fingerprint(ctx: JobContext, day: date, today: date) -> AccountFingerprint:
    """The paper account of ``ctx`` as an assessment for the session ``day`` would read
    it on the calendar date ``today``. While this process is the database's sole writer
    (a replay), one read serves until it commits anything (but ledger rows)."""
    engine: Engine = ctx.session_factory.kw["bind"]
    limits = RiskLimits.from_settings(ctx.settings)
    key = (ctx.account.user_id, day, today, limits)
    generation = write_generation(engine)
    if generation is not None:
        kept = _read.get(engine, {}).get(key)
        if kept is not None and kept[0] == generation:
            return kept[1]
    with engine.connect() as connection:  # one read, no ORM session
        (row,) = fetch_compiled(connection, _FINGERPRINT, {"owner": ctx.account.user_id, "dry_run": True,
                                                           "today": today, "day": day})
    collected, *read, positions, open_orders = row  # the statement's first and last columns
    fingerprint = AccountFingerprint("|".join(str(value) for value in (day, limits, *read, positions, open_orders)),
                                     _as_date(collected), int(positions), int(open_orders))
    if generation is not None:
        _read[engine] = {key: (generation, fingerprint)}  # the last one: the next fire asks for the same
    return fingerprint


def _as_date(value: date | str | None) -> date | None:
    """A date as the driver gives it (SQLite: ISO text)."""
    return date.fromisoformat(value) if isinstance(value, str) else value
