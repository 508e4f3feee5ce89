"""What the orchestrator reads of the risk records: halts and breaches over a range."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, func, select

from services.risk_manager.limits import Action
from services.risk_manager.models import RiskBreach


def halting_days(connection: Connection, user_id: str, start: date, end: date) -> int:
    """On how many trading dates from ``start`` to ``end`` a limit halted ``user_id``'s trading."""
    return int(connection.scalar(select(func.count(func.distinct(RiskBreach.trading_date))).where(
        RiskBreach.user_id == user_id, RiskBreach.action == Action.HALT.value, RiskBreach.trading_date >= start,
        RiskBreach.trading_date <= end)) or 0)
