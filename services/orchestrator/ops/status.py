"""What the orchestrator knows: the settings in force, the database in use, each job's
schedule, next fires and last run, the calendar's horizon, the halt in force; and the
run ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.common.job_api import Account, Outcome
from services.orchestrator import reports
from services.orchestrator.jobs import get_job
from services.orchestrator.ops.arguments import InvalidArgument
from services.orchestrator.runtime import Runtime, database_location

#: ``runs``: the outcomes a run can have (``running`` while claimed)
OUTCOMES = tuple(outcome.value for outcome in Outcome)
DEFAULT_RUNS_LIMIT = 50
MAX_RUNS_LIMIT = 1000


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


def jobs(runtime: Runtime) -> list[dict[str, Any]]:
    """Each registry job of the account: job, enabled, service_installed, schedule,
    next_fire_times, last_run (as in ``status``'s ``jobs``)."""
    now = runtime.clock.now()
    statuses = reports.job_statuses(runtime.all_jobs, runtime.settings, runtime.triggers, now,
                                    runtime.ledger().last_runs())
    return [status.as_dict(runtime.settings.display_tz) for status in statuses]


def runs(runtime: Runtime, job: str | None = None, outcome: str | None = None, limit: int = DEFAULT_RUNS_LIMIT,
         before: int | None = None) -> dict[str, Any]:
    """A page of the account's run ledger, newest first: ``runs`` (the ``limit`` runs
    with an id below ``before``, only ``job``'s and ``outcome``'s when given; rows as
    ``history``'s) and ``next_before``, the cursor of the next page (None: no more)."""
    job_name = None if job is None else get_job(job).name
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidArgument("outcome", f"{outcome!r} is not an outcome; expected one of {', '.join(OUTCOMES)}")
    if not 1 <= limit <= MAX_RUNS_LIMIT:
        raise InvalidArgument("limit", f"{limit} is not a number of runs; expected 1 to {MAX_RUNS_LIMIT}")
    if before is not None and before < 1:
        raise InvalidArgument("before", f"{before} is not a run id; expected 1 or more")
    rows = runtime.ledger().page(job_name=job_name, outcome=outcome, limit=limit + 1, before=before)
    page = [reports.history_row(run, runtime.settings.display_tz) for run in rows[:limit]]
    return {"runs": page, "next_before": page[-1]["id"] if len(rows) > limit else None}


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str | None  # why not, in one line
    revision: str | None  # the database's schema revision
    heartbeat_at: datetime | None  # the account's latest scheduler heartbeat

    def as_dict(self, tz: ZoneInfo) -> dict[str, Any]:
        return {"ready": self.ready, "reason": self.reason, "revision": self.revision,
                "heartbeat_at": None if self.heartbeat_at is None else self.heartbeat_at.astimezone(tz).isoformat()}


def readiness(runtime: Runtime) -> Readiness:
    """Whether the account is served: its database answers, its schema is at this code's
    head revision, and a scheduler of the account beat within ``heartbeats.FRESH``."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from services.common.database import database_error_line, snapshot_transaction
    from services.migrations import HEAD
    from services.orchestrator.heartbeats import FRESH, latest_beat

    try:
        factory = runtime.session_factory()
    except Exception as exc:  # unreachable, or a schema this code cannot migrate (a newer one)
        return Readiness(False, f"database unusable: {database_error_line(exc)}", None, None)
    try:
        with snapshot_transaction(factory) as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            beat = latest_beat(connection, Account.of(runtime.settings)) if revision == HEAD else None
    except SQLAlchemyError as exc:
        return Readiness(False, f"database unreachable: {database_error_line(exc)}", None, None)
    if revision != HEAD:
        return Readiness(False, f"database at revision {revision}, this code's head is {HEAD}", revision, None)
    now, tz = runtime.clock.now(), runtime.settings.display_tz
    who = Account.of(runtime.settings).describe()
    if beat is None:
        return Readiness(False, f"no scheduler of {who} is running (no heartbeat)", revision, None)
    if now - beat > FRESH:
        return Readiness(False, f"no scheduler heartbeat of {who} since {beat.astimezone(tz).isoformat()} "
                                f"(more than {int(FRESH.total_seconds())} s ago)", revision, beat)
    return Readiness(True, None, revision, beat)
