"""Plain data for the read-only commands: calendar, next-runs, status, history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.common.market_calendar import KRX_TZ, MarketCalendar, weekdays
from services.common.settings import Settings
from services.orchestrator.jobs import JobSpec, schedule_in_words
from services.orchestrator.models import JobRun
from services.orchestrator.triggers import CalendarTrigger

#: `status` warns when the calendar's reviewed data ends within this horizon.
CALENDAR_WARNING_HORIZON = timedelta(days=30)
NEXT_FIRES_SHOWN = 3


def calendar_rows(calendar: MarketCalendar, start: date, end: date, tz: ZoneInfo) -> list[dict[str, str]]:
    """One row per weekday: date, open, close (HH:MM in ``tz``, empty when closed), status."""
    rows = []
    for day in weekdays(start, end):
        session = calendar.session(day)
        if session is None:
            rows.append({"date": day.isoformat(), "open": "", "close": "", "status": "closed"})
        else:
            rows.append({
                "date": day.isoformat(),
                "open": session.open.astimezone(tz).strftime("%H:%M"),
                "close": session.close.astimezone(tz).strftime("%H:%M"),
                "status": session.status,
            })
    return rows


def next_runs(
    jobs: Sequence[JobSpec], triggers: dict[str, CalendarTrigger], start: datetime, end: datetime,
    tz: ZoneInfo | None = None,
) -> list[dict[str, str]]:
    """Every fire of ``jobs`` with ``start <= t < end``, sorted by time then job, in
    ``tz`` (default: the triggers' own zone)."""
    fires = [
        (fire, job.name)
        for job in jobs
        for fire in triggers[job.name].fire_times(start, end)
    ]
    fires.sort()
    return [{"job": name, "fire_time": (fire if tz is None else fire.astimezone(tz)).isoformat()}
            for fire, name in fires]


def calendar_warning(calendar: MarketCalendar, now: datetime, fire_times: Iterable[datetime]) -> str | None:
    """A warning when the schedule reaches past the reviewed calendar data."""
    today = now.astimezone(KRX_TZ).date()
    latest = max((fire.date() for fire in fire_times), default=today)
    if latest > calendar.valid_through or today + CALENDAR_WARNING_HORIZON > calendar.valid_through:
        return (
            f"the KRX calendar data is reviewed only through {calendar.valid_through}; "
            f"later sessions follow the library's holiday rules and may miss new closures "
            f"or special sessions: update services/common/krx_calendar_overrides.csv"
        )
    return None


@dataclass(frozen=True)
class JobStatus:
    name: str
    enabled: bool
    available: bool
    schedule: str
    next_fires: list[datetime]
    last_run: JobRun | None

    def as_dict(self, tz: ZoneInfo) -> dict[str, Any]:
        """Plain data, every time in ``tz`` (the display zone) with its offset."""
        last = self.last_run
        return {
            "job": self.name,
            "enabled": self.enabled,
            "service_installed": self.available,
            "schedule": self.schedule,
            "next_fire_times": [f.astimezone(tz).isoformat() for f in self.next_fires],
            "last_run": None if last is None else {
                "scheduled_for": last.scheduled_for.astimezone(tz).isoformat(),
                "trading_date": last.trading_date.isoformat() if last.trading_date else None,
                "outcome": last.outcome,
                "reason": last.reason,
                "error": last.error,
            },
        }


def job_statuses(
    jobs: Sequence[JobSpec], settings: Settings, triggers: dict[str, CalendarTrigger],
    now: datetime, last_runs: dict[str, JobRun],
) -> list[JobStatus]:
    """Each job's state, schedule in words, last run and next fires (none for a job
    that is disabled or not installed: it does not fire)."""
    statuses = []
    for job in jobs:
        trigger, fires, previous = triggers[job.name], [], None
        enabled, available = settings.job_enabled(job.name), job.service_available()
        for _ in range(NEXT_FIRES_SHOWN if enabled and available else 0):
            fire = trigger.get_next_fire_time(previous, now)
            if fire is None:
                break
            fires.append(fire)
            previous = fire
        statuses.append(JobStatus(
            job.name, enabled, available, schedule_in_words(job, settings), fires, last_runs.get(job.name),
        ))
    return statuses


def settings_summary(settings: Settings) -> dict[str, Any]:
    return {
        "user_id": settings.user_id,
        "timezone": settings.timezone,
        "display_timezone": settings.display_zone,
        "dry_run": settings.dry_run,
        "portfolio_value": settings.portfolio_value,
        "data_provider": settings.data_provider,
        **({"paper_prices": _paper_prices(settings)} if settings.dry_run else {}),
        "database_url": settings.redacted_database_url(),
        "market_open_time": settings.market_open_time.strftime("%H:%M"),
        "market_close_time": settings.market_close_time.strftime("%H:%M"),
        "misfire_grace_seconds": settings.misfire_grace_seconds,
    }


def _paper_prices(settings: Settings) -> str:
    from services.trading_engine.broker import PAPER_PRICES, paper_pricing

    return PAPER_PRICES[paper_pricing(settings)]


def halt_view(halt: Any, tz: ZoneInfo) -> dict[str, Any] | None:
    """A user's halt record (``services.risk_manager.halts.Halt``) as plain data."""
    if halt is None:
        return None
    return {
        "halted": halt.halted,
        "reason": halt.reason,
        "halted_at": halt.halted_at.astimezone(tz).isoformat(),
        "halted_by": halt.halted_by,
        "resumed_at": halt.resumed_at.astimezone(tz).isoformat() if halt.resumed_at else None,
        "resumed_by": halt.resumed_by,
    }


def history_row(run: JobRun, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": run.id,
        "job": run.job_name,
        "user_id": run.user_id,
        "scheduled_for": run.scheduled_for.astimezone(tz).isoformat(),
        "trading_date": run.trading_date.isoformat() if run.trading_date else None,
        "origin": run.origin,
        "dry_run": run.dry_run,
        "outcome": run.outcome,
        "started_at": run.started_at.astimezone(tz).isoformat(),
        "finished_at": run.finished_at.astimezone(tz).isoformat() if run.finished_at else None,
        "host": run.host,
        "pid": run.pid,
        "reason": run.reason,
        "error": run.error,
        "summary": run.summary,
    }


def lapsed_run_view(row: Any, tz: ZoneInfo) -> dict[str, Any]:
    """Another account's run whose holder died (a ``job_runs`` row) as plain data."""
    return {"run_id": row.id, "job": row.job_name, "user_id": row.user_id, "dry_run": row.dry_run,
            "scheduled_for": row.scheduled_for.astimezone(tz).isoformat(),
            "lease_until": row.lease_until.astimezone(tz).isoformat()}
