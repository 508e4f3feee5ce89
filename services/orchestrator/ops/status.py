"""What the orchestrator knows: the settings in force, the database in use, each job's
schedule, next fires and last run, the calendar's horizon, the halt in force; and the
run ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.orchestrator import reports
from services.orchestrator.jobs import get_job
from services.orchestrator.runtime import Runtime, database_location


@dataclass(frozen=True)
class StatusReport:
    tz: ZoneInfo  # the display zone: every time shown is in it, with its offset
    now: datetime  # in the display zone
    halt: dict[str, Any] | None  # None if trading was never halted (reports.halt_view)
    database: str  # the SQLite file's absolute path, or the server's URL without its password
    settings: dict[str, Any]
    calendar_valid_through: date
    calendar_warning: str | None
    jobs: list[reports.JobStatus]
    waiting_elsewhere: list[dict[str, Any]]  # other accounts' runs whose holder died

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``status --format json``."""
        return {
            "now": self.now.isoformat(),
            "halt": self.halt,
            "database": self.database,
            "settings": self.settings,
            "calendar": {"valid_through": self.calendar_valid_through.isoformat(),
                         "warning": self.calendar_warning},
            "jobs": [job.as_dict(self.tz) for job in self.jobs],
            "waiting_elsewhere": self.waiting_elsewhere,
        }


def report(runtime: Runtime) -> StatusReport:
    settings, now = runtime.settings, runtime.clock.now()
    ledger = runtime.ledger()
    statuses = reports.job_statuses(runtime.all_jobs, settings, runtime.triggers, now, ledger.last_runs())
    return StatusReport(
        tz=settings.display_tz,
        now=now.astimezone(settings.display_tz),
        halt=current_halt(runtime),
        database=database_location(settings),
        settings=reports.settings_summary(settings),
        calendar_valid_through=runtime.calendar.valid_through,
        calendar_warning=reports.calendar_warning(runtime.calendar, now,
                                                  [fire for s in statuses for fire in s.next_fires]),
        jobs=statuses,
        waiting_elsewhere=[reports.lapsed_run_view(row, settings.display_tz) for row in ledger.lapsed_elsewhere(now)],
    )


def current_halt(runtime: Runtime) -> dict[str, Any] | None:
    """The account's last halt, in force or resumed (None if trading was never halted)."""
    from services.common.database import snapshot_transaction
    from services.risk_manager.halts import halt_record

    with snapshot_transaction(runtime.session_factory()) as connection:
        record = halt_record(connection, runtime.settings.user_id)
    return reports.halt_view(record, runtime.settings.display_tz)


def history(runtime: Runtime, *, job: str | None = None, user_id: str | None = None,
            limit: int = 20) -> list[dict[str, Any]]:
    """The ``limit`` most recent runs in the ledger, newest first (only ``job``'s, only
    ``user_id``'s, when given)."""
    job_name = None if job is None else get_job(job).name
    runs = runtime.ledger().history(job_name=job_name, user_id=user_id, limit=limit)
    return [reports.history_row(run, runtime.settings.display_tz) for run in runs]
