"""The trading halt: stored per user, so it holds across restarts and instances until
a person resumes trading (``resume``). While halted, nothing opens a position, in
paper or live mode; protective exits stay allowed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from services.common.database import upsert
from services.common.market_calendar import KRX_TZ
from services.risk_manager.models import TradingHalt

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Halt:
    user_id: str
    halted: bool
    reason: str
    halted_at: datetime
    halted_by: str
    resumed_at: datetime | None
    resumed_by: str | None

    def describe(self) -> str:
        at = self.halted_at.astimezone(KRX_TZ).isoformat(timespec="seconds")
        return f"{self.reason} (halted by {self.halted_by} at {at})"


def halt_record(connection: Connection, user_id: str) -> Halt | None:
    """The user's last halt, active or resumed; None if trading was never halted."""
    row = connection.execute(select(TradingHalt.__table__).where(TradingHalt.user_id == user_id)).first()
    return None if row is None else Halt(row.user_id, bool(row.halted), row.reason, row.halted_at, row.halted_by,
                                         row.resumed_at, row.resumed_by)


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
        "resumed_at": None, "resumed_by": None}], ["user_id"])
    logger.error("TRADING HALTED for %s by %s: %s", user_id, by, reason)
    halt = active_halt(connection, user_id)
    assert halt is not None
    return halt, True


def resume_trading(connection: Connection, user_id: str, *, by: str, at: datetime) -> Halt | None:
    """End the halt in force (its record stays, with when and by whom it was resumed);
    None if trading was not halted."""
    current = active_halt(connection, user_id)
    if current is None:
        return None
    upsert(connection, TradingHalt.__table__, [{
        "user_id": user_id, "halted": False, "reason": current.reason, "halted_at": current.halted_at,
        "halted_by": current.halted_by, "resumed_at": at, "resumed_by": by[:32]}], ["user_id"])
    logger.warning("trading resumed for %s by %s (%s)", user_id, by, current.describe())
    return halt_record(connection, user_id)
