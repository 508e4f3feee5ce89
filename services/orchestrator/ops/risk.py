"""The account's risk at a glance (``/api/risk``): the limits in force, the metrics of
the latest successful risk check, the latest breaches recorded, and the halt."""

from __future__ import annotations

from typing import Any

from services.common.job_api import Account, Outcome
from services.orchestrator.ledger import UNCHANGED
from services.orchestrator.ops.status import current_halt
from services.orchestrator.runtime import Runtime

RISK_JOB = "risk_checks"
DEFAULT_BREACHES = 50


def view(runtime: Runtime, breaches: int = DEFAULT_BREACHES) -> dict[str, Any]:
    """``limits`` (the settings: max_position_size_pct, max_positions,
    max_daily_loss_pct, max_total_loss_pct); ``latest_check`` (None before any
    successful risk check: run_id, checked_at, trading_date, metrics: the check's
    summary, and ``unchanged_through``: the last later check that found nothing changed
    since, or None); ``breaches`` (the ``breaches`` latest, newest first: id, trading_date,
    limit, subject, value, threshold, action, checked_at, checked_by); ``halt`` (as in
    ``status``). Times in the display zone with their offset."""
    from services.common.database import snapshot_transaction
    from services.risk_manager.queries import recent_breaches

    settings, tz = runtime.settings, runtime.settings.display_tz
    checks = runtime.ledger().page(job_name=RISK_JOB, outcome=Outcome.SUCCESS.value, limit=1)
    latest = checks[0] if checks else None
    newest = runtime.ledger().page(job_name=RISK_JOB, limit=1)
    unchanged = newest[0] if newest and latest is not None and newest[0].id != latest.id and \
        newest[0].outcome == Outcome.SKIPPED.value and (newest[0].reason or "").startswith(UNCHANGED) \
        else None
    with snapshot_transaction(runtime.session_factory()) as connection:
        rows = recent_breaches(connection, Account.of(settings), breaches)
    return {
        "user_id": settings.user_id, "mode": Account.of(settings).mode,
        "limits": {"max_position_size_pct": settings.max_position_size_pct, "max_positions": settings.max_positions,
                   "max_daily_loss_pct": settings.max_daily_loss_pct,
                   "max_total_loss_pct": settings.max_total_loss_pct},
        "latest_check": None if latest is None else {
            "run_id": latest.id, "checked_at": (latest.finished_at or latest.started_at).astimezone(tz).isoformat(),
            "scheduled_for": latest.scheduled_for.astimezone(tz).isoformat(),
            "trading_date": latest.trading_date.isoformat() if latest.trading_date else None,
            "metrics": latest.summary,
            "unchanged_through": None if unchanged is None else unchanged.scheduled_for.astimezone(tz).isoformat()},
        "breaches": [{"id": row.id, "trading_date": row.trading_date.isoformat(), "limit": row.limit_name,
                      "subject": row.subject, "value": row.value, "threshold": row.threshold, "action": row.action,
                      "checked_at": row.checked_at.astimezone(tz).isoformat(), "checked_by": row.checked_by}
                     for row in rows],
        "halt": current_halt(runtime),
    }
