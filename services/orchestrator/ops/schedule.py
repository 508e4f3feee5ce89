"""The KRX sessions and the fire times of the jobs, from the scheduler's own triggers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from services.common.market_calendar import KRX_TZ
from services.orchestrator import reports
from services.orchestrator.jobs import JOBS, get_job
from services.orchestrator.ops.arguments import InvalidArgument, check_range, require_in_calendar
from services.orchestrator.runtime import Runtime


def calendar_days(runtime: Runtime, start: date, end: date) -> list[dict[str, str]]:
    """One row per weekday from ``start`` to ``end``: date, open, close (HH:MM in the
    configured timezone, empty when closed), status."""
    check_range(start, end)
    require_in_calendar(runtime.calendar, start, end)
    return reports.calendar_rows(runtime.calendar, start, end, runtime.settings.display_tz)


def fire_times(runtime: Runtime, job_names: Sequence[str], start: datetime, end: datetime) -> list[dict[str, str]]:
    """Every fire in ``[start, end)`` of the named jobs (none named: all) that are
    enabled, sorted by time then job."""
    selected = [get_job(name) for name in dict.fromkeys(job_names)] if job_names else list(JOBS)
    check_range(start, end)
    try:
        first_day = start.astimezone(KRX_TZ).date()
        last_day = (end - timedelta(microseconds=1)).astimezone(KRX_TZ).date()
    except OverflowError:
        raise InvalidArgument("start", "the window is outside the calendar data") from None
    require_in_calendar(runtime.calendar, first_day, last_day)
    enabled = [job for job in selected if runtime.settings.job_enabled(job.name)]
    return reports.next_runs(enabled, runtime.triggers, start, end, runtime.settings.display_tz)


def timeline(runtime: Runtime, day: date | None = None) -> dict[str, Any]:
    """The day's fires (the display zone's calendar day; None: today) of every enabled
    job, each with the outcome of its latest run in the ledger (``upcoming`` before its
    time, ``not run`` after it without a run), and the day's runs that answer no fire
    (manual runs): date, now, session (open, close, status; None: closed), items."""
    tz, now = runtime.settings.display_tz, runtime.clock.now()
    day = day or now.astimezone(tz).date()
    start = datetime.combine(day, time(), tz)
    end = datetime.combine(day + timedelta(days=1), time(), tz)
    require_in_calendar(runtime.calendar, day, day)
    fires = fire_times(runtime, [], start, end)
    runs = runtime.ledger().scheduled_between(start, end)
    latest = {(run.job_name, run.scheduled_for.astimezone(tz).isoformat()): run for run in runs}
    items = [_fire_item(fire["job"], fire["fire_time"], latest.pop((fire["job"], fire["fire_time"]), None),
                        now) for fire in fires]
    items += [_fire_item(run.job_name, at, run, now, scheduled=False) for (_, at), run in latest.items()]
    items.sort(key=lambda item: (item["fire_time"], item["job"]))
    return {"date": day.isoformat(), "now": now.astimezone(tz).isoformat(),
            "session": _session_opening_on(runtime, day), "items": items}


def _session_opening_on(runtime: Runtime, day: date) -> dict[str, str] | None:
    """The KRX session that opens on ``day`` of the display zone (its KRX date may be
    another: Seoul is ahead of most zones), as a calendar row in the display zone."""
    tz = runtime.settings.display_tz
    for session in runtime.calendar.sessions(day - timedelta(days=1), day + timedelta(days=1)):
        if session.open.astimezone(tz).date() == day:
            return reports.calendar_rows(runtime.calendar, session.date, session.date, tz)[0]
    return None


def _fire_item(job: str, fire_time: str, run: Any, now: datetime, *, scheduled: bool = True) -> dict[str, Any]:
    if run is not None:
        outcome = run.outcome
    else:
        outcome = "upcoming" if datetime.fromisoformat(fire_time) > now else "not run"
    return {"job": job, "fire_time": fire_time, "scheduled": scheduled, "outcome": outcome,
            "run_id": None if run is None else run.id, "origin": None if run is None else run.origin,
            "reason": None if run is None else (run.reason or run.error)}
