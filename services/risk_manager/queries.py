"""What the orchestrator reads of the risk records: halts and breaches over a range."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, func, select

from services.common.job_api import Account
from services.risk_manager.limits import Action
from services.risk_manager.models import RiskBreach


def halting_days(connection: Connection, user_id: str, start: date, end: date) -> int:
    """On how many trading dates from ``start`` to ``end`` a limit halted ``user_id``'s trading."""
    return int(connection.scalar(select(func.count(func.distinct(RiskBreach.trading_date))).where(
        RiskBreach.user_id == user_id, RiskBreach.action == Action.HALT.value, RiskBreach.trading_date >= start,
        RiskBreach.trading_date <= end)) or 0)


def recent_breaches(connection: Connection, account: Account, limit: int) -> list[Any]:
    """``account``'s ``limit`` latest recorded breaches (rows of ``risk_breaches``), newest first."""
    return list(connection.execute(select(RiskBreach.__table__).where(
        RiskBreach.user_id == account.user_id, RiskBreach.dry_run.is_(account.dry_run))
        .order_by(RiskBreach.checked_at.desc(), RiskBreach.id.desc()).limit(limit)).all())
