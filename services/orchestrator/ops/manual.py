"""One job run now, for a trading date given or the latest fire's, recorded in the
run ledger like a scheduled run (origin manual). A trading job is not run for a date
before the account's latest activity: that would book trades behind later ones (sells
dated before the buys they close); the past is replayed with ``simulate``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from services.common.job_api import Account, Outcome
from services.common.market_calendar import KRX_TZ
from services.orchestrator.jobs import JobSpec, get_job
from services.orchestrator.ops.arguments import InvalidArgument, require_in_calendar
from services.orchestrator.ops.service import warn_live
from services.orchestrator.runtime import Runtime

if TYPE_CHECKING:
    from services.orchestrator.ledger import RunRecord


@dataclass(frozen=True)
class ManualRun:
    job: str
    trading_date: date
    record: RunRecord

    @property
    def succeeded(self) -> bool:
        return self.record.outcome is Outcome.SUCCESS


def run_job(runtime: Runtime, name: str, day: date | None = None) -> ManualRun:
    """Run job ``name`` now for trading date ``day`` (None: the trading date of its
    latest fire). ``day`` must be a past or current session (any day for a job that
    also runs on closed days), and for a trading job not before the account's latest
    fill or snapshot."""
    job, trading_date = check_run(runtime, name, day)
    if not runtime.settings.dry_run and job.trades:
        warn_live(runtime.settings)
    return ManualRun(job.name, trading_date, runtime.runner().run_now(job.name, trading_date))


def check_run(runtime: Runtime, name: str, day: date | None = None) -> tuple[JobSpec, date]:
    """The checks of :func:`run_job`, without running: the job (an unknown name is a
    ``ConfigurationError`` with the nearest names) and the trading date it would run
    for (a date not accepted is an ``InvalidArgument`` on ``date``)."""
    job = get_job(name)
    trading_date = _trading_date(runtime, job, day, runtime.clock.now())
    job.run_preflight(runtime.settings, runtime.clock, runtime.calendar)
    if job.trades:
        _require_not_before_history(runtime, job, trading_date, given=day is not None)
    return job, trading_date


def _trading_date(runtime: Runtime, job: JobSpec, day: date | None, now: datetime) -> date:
    trigger, calendar = runtime.triggers[job.name], runtime.calendar
    today = now.astimezone(KRX_TZ).date()
    if day is None:
        latest = trigger.previous_fire_time(now)
        return trigger.trading_date(latest) if latest else today
    require_in_calendar(calendar, day)
    if day > today:
        raise InvalidArgument("date", f"{day} is in the future; expected {today} or earlier")
    if job.sessions_only and calendar.session(day) is None:
        before, after = calendar.previous_session(day), calendar.next_session(day)
        nearest = " and ".join(str(s.date) for s in (before, after) if s is not None)
        raise InvalidArgument("date", f"{day} is not a KRX session; nearest sessions: {nearest}")
    return day


def _require_not_before_history(runtime: Runtime, job: JobSpec, day: date, *, given: bool) -> None:
    """A trading run dated before this instance's account's latest fill or snapshot
    would rewrite its history: refused (``InvalidArgument`` on ``date``)."""
    if not job.service_available():
        return  # no trading service in this build: the run fails on that, and nothing is booked
    from services.trading_engine.queries import latest_activity

    with runtime.session_factory()() as db:
        latest = latest_activity(db.connection(), Account.of(runtime.settings))
    if latest is None or day >= latest:
        return
    what = str(day) if given else f"{day} (the trading date of {job.name}'s latest fire)"
    raise InvalidArgument("date", f"{what} is before this account's latest activity ({latest}): a manual run "
                                  "cannot rewrite history; replay the past with `simulate` into its own database")
