"""The KRX sessions and the fire times of the jobs, from the scheduler's own triggers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

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
