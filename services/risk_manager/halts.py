"""The trading halt: stored per user, so it holds across restarts and instances until
a person resumes trading (``resume``). While halted, nothing opens a position, in
paper or live mode; protective exits stay allowed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, event, select, update

from services.common.alerts import Alert, raise_alert
from services.common.database import fetch_typed, upsert
from services.common.market_calendar import KRX_TZ
from services.risk_manager.models import TradingHalt

logger = logging.getLogger(__name__)

MANUAL = "manual"  # ``halted_by`` of the ``halt`` command

_HALTS = TradingHalt.__table__
_HALT = select(_HALTS).where(_HALTS.c.user_id == bindparam("owner"))  # read at every risk check


@dataclass(frozen=True)
class Halt:
    user_id: str
    halted: bool
    reason: str
    halted_at: datetime
    halted_by: str
    resumed_at: datetime | None
    resumed_by: str | None
    baseline_at: datetime | None = None  # the loss limits measure from here (a resumed loss halt)
    baseline_equity: int | None = None  # the paper account's equity then
    live_baseline_equity: int | None = None  # the live account's

    def baseline_of(self, dry_run: bool) -> int | None:
        """The equity the account of that mode measures its losses from, once recorded."""
        return self.baseline_equity if dry_run else self.live_baseline_equity

    @property
    def by_a_loss_limit(self) -> bool:
        return self.halted_by != MANUAL

    def describe(self) -> str:
        at = self.halted_at.astimezone(KRX_TZ).isoformat(timespec="seconds")
        return f"{self.reason} (halted by {self.halted_by} at {at})"


def set_baseline_equity(connection: Connection, user_id: str, dry_run: bool, equity: int) -> None:
    """Record the equity the loss limits of the user's account in that mode measure from
    since the last resume."""
    column = "baseline_equity" if dry_run else "live_baseline_equity"
    connection.execute(update(TradingHalt).where(TradingHalt.user_id == user_id).values({column: equity}))


def halt_record(connection: Connection, user_id: str) -> Halt | None:
    """The user's last halt, active or resumed; None if trading was never halted."""
    rows = fetch_typed(connection, _HALT, {"owner": user_id})
    return halt_of(rows[0] if rows else None)


def halt_of(row: Any) -> Halt | None:
    """The halt record in ``row`` (the columns of ``trading_halts``); None if it holds none."""
    if row is None or row.halted is None:
        return None
    return Halt(row.user_id, bool(row.halted), row.reason, row.halted_at, row.halted_by, row.resumed_at,
                row.resumed_by, row.baseline_at, _int_or_none(row.baseline_equity),
                _int_or_none(row.live_baseline_equity))


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def active_halt(connection: Connection, user_id: str) -> Halt | None:
    """The halt in force for ``user_id``, if any."""
    record = halt_record(connection, user_id)
    return record if record is not None and record.halted else None


def halt_trading(connection: Connection, user_id: str, reason: str, *, by: str, at: datetime) -> tuple[Halt, bool]:
    """Halt ``user_id``'s trading; a halt already in force is kept as it is. Returns the
    halt in force and whether this call made it."""
    current = active_halt(connection, user_id)
    if current is not None:
        return current, False
    upsert(connection, TradingHalt.__table__, [{
        "user_id": user_id, "halted": True, "reason": reason[:300], "halted_at": at, "halted_by": by[:32],
        "resumed_at": None, "resumed_by": None, "baseline_at": None, "baseline_equity": None,
        "live_baseline_equity": None}], ["user_id"], keep=["baseline_at", "baseline_equity", "live_baseline_equity"])
    alert = Alert("trading_halted", f"TRADING HALTED for {user_id} by {by}: {reason}", {
        "user_id": user_id, "halted_by": by, "reason": reason, "halted_at": at})
    # said when the halt is stored: a job that halts, then fails and rolls back, halted nothing
    event.listen(connection, "commit", lambda _connection: raise_alert(logger, alert), once=True)
    halt = active_halt(connection, user_id)
    assert halt is not None
    return halt, True


def resume_trading(connection: Connection, user_id: str, *, by: str, at: datetime) -> Halt | None:
    """End the halt in force (its record stays, with when and by whom it was resumed);
    None if trading was not halted. Resuming a halt a loss limit made accepts the loss
    so far: the limits then measure from the equity at the resume. A manual halt
    changes nothing in how losses are measured."""
    current = active_halt(connection, user_id)
    if current is None:
        return None
    baseline_at, baseline_equity, live_baseline = current.baseline_at, current.baseline_equity, \
        current.live_baseline_equity
    if current.by_a_loss_limit:  # each mode's next assessment measures its equity
        baseline_at, baseline_equity, live_baseline = at, None, None
    upsert(connection, TradingHalt.__table__, [{
        "user_id": user_id, "halted": False, "reason": current.reason, "halted_at": current.halted_at,
        "halted_by": current.halted_by, "resumed_at": at, "resumed_by": by[:32], "baseline_at": baseline_at,
        "baseline_equity": baseline_equity, "live_baseline_equity": live_baseline}], ["user_id"])
    alert = Alert("trading_resumed", f"trading resumed for {user_id} by {by} ({current.describe()})", {
        "user_id": user_id, "resumed_by": by, "resumed_at": at, "reason": current.reason})

    event.listen(connection, "commit", lambda _connection: raise_alert(logger, alert), once=True)
    return halt_record(connection, user_id)
