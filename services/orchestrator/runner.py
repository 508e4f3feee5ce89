"""The one wrapper every job runs through: claim the fire in the ledger, guard, make
its inputs present (:mod:`needs`), run the job, record how it ended, and log it.

A scheduled fire, a catch-up, a ``run-job``, a recovered run and a replayed fire all go
through :class:`JobRunner`. It never raises for a job's own failure, so the scheduler
and the other jobs carry on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.alerts import Alert, clear_alert, raise_alert, run_alert_keys
from services.common.clock import Clock
from services.common.database import database_error_line
from services.common.job_api import Account, JobContext, JobResult, Outcome
from services.common.market_calendar import MarketCalendar
from services.common.setting_values import redact_passwords
from services.common.settings import ConfigurationError, Settings
from services.orchestrator import catch_up, needs
from services.orchestrator.jobs import REGISTRY, JobSpec, ServiceUnavailableError, get_job
from services.orchestrator.leases import Heartbeat, Recovery, overlap_reason
from services.orchestrator.ledger import (
    CATCH_UP,
    DATABASE_ERROR,
    INTERRUPTED,
    MANUAL,
    RECOVERABLE_ORIGINS,
    SCHEDULE,
    SIMULATE,
    STATE_KEY,
    UNCHANGED,
    RunLedger,
    RunRecord,
    first_line,
)
from services.orchestrator.reports import calendar_warning
from services.orchestrator.triggers import CalendarTrigger

logger = logging.getLogger(__name__)


class JobRunner:
    """Runs fires through the ledger: claim, guard, run, record. Never raises for a job's
    own failure, so the scheduler and the other jobs carry on."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: sessionmaker[DbSession],
        clock: Clock,
        calendar: MarketCalendar,
        triggers: dict[str, CalendarTrigger],
        origin: str = SCHEDULE,
        jobs: Mapping[str, JobSpec] = REGISTRY,
    ) -> None:
        self.jobs = jobs
        self.settings = settings
        self.session_factory = session_factory
        self.clock = clock
        self.calendar = calendar
        self.triggers = triggers
        self.origin = origin
        self.account = Account.of(settings)
        self.ledger = RunLedger(session_factory, clock, timedelta(seconds=settings.run_lease_seconds), self.account)
        self.heartbeat = Heartbeat(self.ledger, settings.run_lease_seconds / 3)
        self._recovery = Recovery(self)
        self._stopping = threading.Event()
        self._calendar_checked_on: date | None = None
        #: each job's fingerprint at its last success in this process, and that fire's time
        self._last_state: dict[str, tuple[str, datetime]] = {}
        #: the rows of unchanged fires not yet written (:meth:`batching_unchanged`); None: each at once
        self._unchanged_rows: list[dict[str, Any]] | None = None
        #: called with each run's context as it starts, and with its record once recorded
        #: (trading notices)
        self.starting_listeners: list[Callable[[JobContext], None]] = []
        self.finished_listeners: list[Callable[[JobContext, RunRecord], None]] = []
        #: how a missing need's upstream work is made (None: run here, ``needs.produce_here``)
        self.produce_upstream: Callable[[JobRunner, JobSpec, date, str], RunRecord | str] | None = None

    def job(self, name: str) -> JobSpec:
        return get_job(name, self.jobs)

    def deadline(self, job_name: str, fire_time: datetime) -> datetime:
        """The latest moment a fire may start. The market decides where it can: a
        pre-open job until the open, a post-close job until the next session's pre-open
        jobs, a tick until the next tick. ``misfire_grace_seconds`` bounds the rest
        (risk checks)."""
        market = self.triggers[job_name].market_deadline(fire_time)
        if market is not None:
            return market
        return fire_time + timedelta(seconds=self.settings.misfire_grace_seconds)

    def scheduled_jobs(self) -> list[str]:
        """The jobs this runner schedules: enabled, and with their service installed."""
        return [name for name in self.triggers
                if name in self.jobs and self.settings.job_enabled(name) and self.job(name).service_available()]

    # -- entry points -----------------------------------------------------------------------

    def run_scheduled(self, job_name: str, fire_time: datetime | None = None) -> RunRecord | None:
        """APScheduler's target: run ``fire_time`` (given by the executor), or else the
        fire this moment belongs to."""
        if fire_time is None:
            fire_time = self.triggers[job_name].previous_fire_time(self.clock.now())
        if fire_time is None:
            logger.warning("%s: no fire at or before now; nothing to run", job_name)
            return None
        try:
            return self.run_fire(job_name, fire_time)
        except SQLAlchemyError as exc:  # the ledger cannot be written: say so, keep scheduling
            reason = database_error_line(exc)
            raise_alert(logger, Alert("run_failed", f"{job_name} fire at {self.shown(fire_time)} could not run: "
                                      f"database error: {reason}", {
                                          "job": job_name, "scheduled_for": self.shown(fire_time),
                                          "user_id": self.settings.user_id, "error": f"database error: {reason}"}))
            return None

    def run_fire(self, job_name: str, fire_time: datetime, *, origin: str | None = None) -> RunRecord | None:
        """Run one fire of the schedule, or record it ``missed`` if it is too late."""
        job = self.job(job_name)
        self.check_calendar(fire_time)
        trading_date = self.triggers[job_name].trading_date(fire_time)
        deadline = self.deadline(job_name, fire_time)
        late_by = self.clock.now() - deadline
        if late_by > timedelta(0):
            return self.record_only(
                job, fire_time, trading_date, Outcome.MISSED,
                f"too late: {_seconds(late_by)} s past the deadline {self.shown(deadline)}",
                origin=origin,
            )
        return self.claim_and_run(job, fire_time, trading_date, origin or self.origin)

    def run_now(self, job_name: str, trading_date: date, *, origin: str = MANUAL) -> RunRecord:
        """``run-job`` (and start-up catch-up): run now for ``trading_date``, recorded
        like a scheduled run."""
        job = self.job(job_name)
        record = self.claim_and_run(job, self.clock.now(), trading_date, origin)
        assert record is not None  # a manual run's moment is its own; nothing else claims it
        return record

    def shown(self, moment: datetime) -> str:
        """``moment`` as logs and alerts show it: ISO 8601 in the display zone, with its offset."""
        return moment.astimezone(self.settings.display_tz).isoformat()

    def retry_fire(self, job_name: str, fire_time: datetime, attempt: int, *, origin: str) -> RunRecord | None:
        """Run a fire again as ``attempt``, its previous attempt having failed on the
        database or been interrupted (a replay run again retries those: see
        :meth:`RunLedger.retryable`); None if another run claimed that attempt."""
        job = self.job(job_name)
        trading_date = self.triggers[job_name].trading_date(fire_time)
        run_id = self._claim(job_name, fire_time, trading_date=trading_date, origin=origin, attempt=attempt)
        if run_id is None:
            logger.info("%s %s: attempt %d claimed by another run; leaving it", job_name, self.shown(fire_time),
                        attempt)
            return None
        return self.run_claimed(job, fire_time, trading_date, origin, run_id=run_id)

    def record_overlap(self, job_name: str, fire_time: datetime) -> RunRecord | None:
        """A fire that came while the previous run of the job in this process was still
        running (APScheduler's one-instance rule): recorded skipped, and alerted."""
        trading_date = self.triggers[job_name].trading_date(fire_time)
        busy = self.ledger.running_other(job_name, self.clock.now())
        reason = ("previous run still running" if busy is None
                  else overlap_reason(busy, fire_time, self.settings.display_tz))
        return self._skip_overlapping(self.job(job_name), fire_time, trading_date, reason, SCHEDULE)

    def check_calendar(self, moment: datetime) -> None:
        """Alert, once a day, when the reviewed calendar data is about to run out."""
        day = moment.astimezone(self.settings.tz).date()
        if self._calendar_checked_on == day or self.origin == SIMULATE:
            return
        self._calendar_checked_on = day
        warning = calendar_warning(self.calendar, moment, [moment])
        if warning:
            raise_alert(logger, Alert("calendar_ending", warning, {
                "valid_through": self.calendar.valid_through.isoformat(), "today": day.isoformat()}))

    # -- catch-up (catch_up.py) and recovery (leases.py) ---------------------------------------

    def catch_up_on_start(self, now: datetime) -> list[RunRecord]:
        """See :func:`catch_up.history_on_start`."""
        return catch_up.history_on_start(self, now)

    def fires_missed_during_downtime(self, now: datetime) -> list[tuple[str, datetime]]:
        """See :func:`catch_up.fires_missed_during_downtime`."""
        return catch_up.fires_missed_during_downtime(self, now)

    def catch_up_downtime(self, now: datetime) -> list[RunRecord]:
        """See :func:`catch_up.after_downtime`."""
        return catch_up.after_downtime(self, now)

    def expire_dead_runs(self) -> int:
        """See :meth:`Recovery.expire_dead_runs`."""
        return self._recovery.expire_dead_runs()

    def recover_abandoned(self) -> list[RunRecord]:
        """See :meth:`Recovery.sweep`."""
        return self._recovery.sweep()

    def request_stop(self) -> None:
        """Catch-up loops stop between two fires (on SIGINT/SIGTERM)."""
        self._stopping.set()

    def stop_requested(self) -> bool:
        return self._stopping.is_set()

    def close(self) -> None:
        """Stop renewing leases (the runs still held lapse and are recovered elsewhere)."""
        self.heartbeat.stop()

    # -- claim, run, record ------------------------------------------------------------------

    def record_only(
        self, job: JobSpec, fire_time: datetime, trading_date: date, outcome: Outcome, reason: str,
        *, origin: str | None = None,
    ) -> RunRecord | None:
        """Record a fire that does not run (missed, or skipped), and say so."""
        run_id = self._claim(job.name, fire_time, trading_date=trading_date, origin=origin or self.origin,
                             outcome=outcome, reason=reason)
        if run_id is None:
            logger.info("%s %s: already recorded by another run", job.name, self.shown(fire_time))
            return None
        if outcome is Outcome.MISSED:
            raise_alert(logger, Alert("run_missed", f"{job.name} {trading_date}: the fire at "
                                      f"{self.shown(fire_time)} was missed: {reason}", {
                                          "job": job.name, "trading_date": trading_date.isoformat(),
                                          "scheduled_for": self.shown(fire_time), "run_id": run_id,
                                          "user_id": self.settings.user_id, "reason": reason}))
        else:
            logger.info("[%s %s] %s: %s", job.name, trading_date, outcome.value, reason)
        return RunRecord(run_id, job.name, fire_time, trading_date, outcome, reason=reason)

    def _skip_overlapping(self, job: JobSpec, fire_time: datetime, trading_date: date, reason: str,
                          origin: str) -> RunRecord | None:
        """Record a fire skipped while another run of the job holds it, and say so (a
        run that never ends would otherwise silently stop the job on every instance). A
        catch-up skipped beside another instance's is normal (instances starting
        together): recorded, not alerted."""
        record = self.record_only(job, fire_time, trading_date, Outcome.SKIPPED, reason, origin=origin)
        if record is not None and origin != CATCH_UP:
            raise_alert(logger, Alert("run_missed", f"{job.name} {trading_date}: the fire at "
                                      f"{self.shown(fire_time)} was skipped: {reason}", {
                                          "job": job.name, "trading_date": trading_date.isoformat(),
                                          "scheduled_for": self.shown(fire_time), "run_id": record.run_id,
                                          "user_id": self.settings.user_id, "reason": reason}))
        return record

    def claim_and_run(self, job: JobSpec, fire_time: datetime, trading_date: date, origin: str) -> RunRecord | None:
        """Claim the fire and run it; None if another run holds it. A scheduled job never
        runs twice at once, on any instance: a fire that comes while it runs is skipped."""
        if origin in RECOVERABLE_ORIGINS:
            busy = self.ledger.running_other(job.name, self.clock.now())
            if busy is not None:
                return self._skip_overlapping(job, fire_time, trading_date,
                                              overlap_reason(busy, fire_time, self.settings.display_tz), origin)
        state = self._state(job, fire_time, trading_date, origin)
        since = None if state is None else self._unchanged_since(job.name, state)
        if since is not None:
            reason = f"{UNCHANGED} {self.shown(since)}: nothing it reads has changed"
            if self._unchanged_rows is not None:
                return self._record_later(job, fire_time, trading_date, reason, origin)
            return self.record_only(job, fire_time, trading_date, Outcome.SKIPPED, reason, origin=origin)
        run_id = self._claim(job.name, fire_time, trading_date=trading_date, origin=origin)
        if run_id is None:
            logger.info("%s %s: already claimed (by another orchestrator, or run first as another job's input); "
                        "leaving it", job.name, self.shown(fire_time))
            return None
        return self.run_claimed(job, fire_time, trading_date, origin, run_id=run_id, state=state)

    @contextmanager
    def batching_unchanged(self) -> Iterator[None]:
        """While this process alone writes the database (a replay holds its replay lock),
        the rows of fires skipped as unchanged are kept and written together: in the
        transaction of the next run's claim or record (before it), and at the end (in fire
        order). Their records
        carry run id 0. A process killed meanwhile leaves them unwritten; the next replay
        of the range decides those fires again."""
        self._unchanged_rows = []
        try:
            yield
        except BaseException:  # written if they can be; what stopped the replay is what it reports
            try:
                self.write_unchanged()
            except SQLAlchemyError as exc:
                logger.warning("unchanged fires not recorded (%s): replaying the range again decides them again",
                               database_error_line(exc))
            raise
        else:
            self.write_unchanged()
        finally:
            self._unchanged_rows = None

    def write_unchanged(self) -> None:
        """Write the rows :meth:`batching_unchanged` keeps (none: nothing to do)."""
        if self._unchanged_rows:
            rows, self._unchanged_rows = self._unchanged_rows, []
            self.ledger.write_skipped(rows)

    def _claim(self, job_name: str, fire_time: datetime, **fire: Any) -> int | None:
        """:meth:`RunLedger.claim`, the rows :meth:`batching_unchanged` keeps written
        first in its transaction (kept here until it is done)."""
        run_id = self.ledger.claim(job_name, fire_time, skipped=self._unchanged_rows or (), **fire)
        if self._unchanged_rows:
            self._unchanged_rows = []
        return run_id

    def _record_later(self, job: JobSpec, fire_time: datetime, trading_date: date, reason: str,
                      origin: str) -> RunRecord:
        assert self._unchanged_rows is not None
        self._unchanged_rows.append(self.ledger.skipped_row(job.name, fire_time, trading_date=trading_date,
                                                            origin=origin, reason=reason))
        logger.info("[%s %s] skipped: %s", job.name, trading_date, reason)
        return RunRecord(0, job.name, fire_time, trading_date, Outcome.SKIPPED, reason=reason)

    def _unchanged_since(self, job_name: str, state: str) -> datetime | None:
        """When the job last succeeded reading ``state``: as this process recorded it
        (equal states assess the same, whoever ran in between), else as the ledger has it."""
        known = self._last_state.get(job_name)
        if known is not None and known[0] == state:
            return known[1]
        return self.ledger.unchanged_since(job_name, state)

    def _state(self, job: JobSpec, fire_time: datetime, trading_date: date, origin: str) -> str | None:
        """The job's fingerprint of what the fire would read (None: it cannot tell, or
        telling failed: the fire runs)."""
        if job.state is None or origin not in (SCHEDULE, CATCH_UP, SIMULATE):  # a manual run always runs
            return None
        try:
            return job.state_of(self.context(job.name, trading_date, fire_time, origin))
        except Exception:  # noqa: BLE001 (a fingerprint that fails only means the fire runs)
            logger.warning("%s %s: could not tell whether its inputs changed; running it", job.name,
                           self.shown(fire_time), exc_info=True)
            return None

    def context(self, job_name: str, trading_date: date, fire_time: datetime, origin: str, *,
                run_id: int | None = None) -> JobContext:
        """The context of a run of ``job_name`` for this instance's account."""
        return JobContext(job_name=job_name, trading_date=trading_date, scheduled_for=fire_time,
                          settings=self.settings, session_factory=self.session_factory, clock=self.clock,
                          calendar=self.calendar, run_id=run_id, origin=origin)

    def run_claimed(self, job: JobSpec, fire_time: datetime, trading_date: date, origin: str,
                    *, run_id: int, state: str | None = None) -> RunRecord:
        """Run a fire this process holds the claim of, for this instance's account (from
        its settings, never from a row), and record how it ended (a success with the
        fingerprint ``state`` of what it read, taken before it ran)."""
        ctx = self.context(job.name, trading_date, fire_time, origin, run_id=run_id)
        self._tell_listeners(self.starting_listeners, ctx)
        with self.heartbeat.holding(run_id):
            try:
                result, error = self._execute(job, ctx)
            except BaseException as stop:  # Ctrl-C, SystemExit: recorded, never left to be re-run
                self.ledger.finish(run_id, Outcome.FAILED, error=f"{INTERRUPTED} {type(stop).__name__}")
                raise
        if state is not None and result.status is Outcome.SUCCESS and not error:
            result = replace(result, summary={**result.summary, STATE_KEY: state})
            self._last_state[job.name] = (state, fire_time)
        self.ledger.finish(run_id, result.status, reason=result.reason if not error else None,
                           error=error, summary=result.summary or None)
        record = RunRecord(run_id, job.name, fire_time, trading_date, result.status,
                           reason=None if error else result.reason, error=error,
                           summary=result.summary or None)
        _log_outcome(ctx, record, self.shown(record.scheduled_for))
        self._tell_listeners(self.finished_listeners, ctx, record)
        return record

    def _tell_listeners(self, listeners: Sequence[Callable[..., None]], ctx: JobContext, *news: Any) -> None:
        """Each listener hears the run (one that fails is logged, and changes nothing of
        the run)."""
        for listener in listeners:
            try:
                listener(ctx, *news)
            except Exception:  # noqa: BLE001 (what hears a run never fails it)
                logger.exception("%s %s: a listener of runs failed", ctx.job_name, ctx.trading_date)

    def _execute(self, job: JobSpec, ctx: JobContext) -> tuple[JobResult, str | None]:
        """Guards, the job's needs (upstream work run first where missing), then the job.
        Returns its result and, when it failed, the error text."""
        if job.sessions_only and not self.calendar.is_session(ctx.trading_date):
            return JobResult.skipped(f"not a session: {ctx.trading_date} is a KRX holiday or weekend"), None
        try:
            entry_point = job.load_entry_point()
        except ServiceUnavailableError as exc:
            return JobResult.skipped(str(exc)), None
        try:
            unmet = needs.meet_needs(self, job, ctx)
            if unmet is not None:
                return unmet
            ctx.log.info("started (run %s, %s)", ctx.run_id, "dry run" if ctx.account.dry_run else "LIVE")
            result = entry_point(ctx)
        except ConfigurationError as exc:  # e.g. a provider without its credentials: no traceback
            return JobResult(Outcome.FAILED), redact_passwords(f"{type(exc).__name__}: {exc}")
        except DBAPIError as exc:  # the database refused: the statement goes to the log, one line to the ledger
            ctx.log.exception("failed")
            return JobResult(Outcome.FAILED), f"{DATABASE_ERROR} {database_error_line(exc)}"
        except Exception as exc:  # the edge: a failing job is recorded, the scheduler goes on
            ctx.log.exception("failed")
            return JobResult(Outcome.FAILED), redact_passwords(f"{type(exc).__name__}: {exc}")
        if not isinstance(result, JobResult) or result.status not in (
            Outcome.SUCCESS, Outcome.SKIPPED, Outcome.FAILED,
        ):
            return JobResult(Outcome.FAILED), f"job returned {result!r}; expected a JobResult"
        if result.status is Outcome.FAILED:
            return result, result.reason or "failed"
        return result, None


def _log_outcome(ctx: JobContext, record: RunRecord, scheduled_for: str) -> None:
    if record.outcome is Outcome.FAILED:
        raise_alert(logger, Alert("run_failed", f"{ctx.job_name} {ctx.trading_date} failed: "
                                   f"{first_line(record.error or '') or 'failed'}", {
                                       "job": ctx.job_name, "trading_date": ctx.trading_date.isoformat(),
                                       "scheduled_for": scheduled_for, "run_id": record.run_id,
                                       "user_id": ctx.account.user_id, "origin": ctx.origin,
                                       "dry_run": ctx.account.dry_run,
                                       "error": first_line(record.error or "")}))
    elif record.outcome is Outcome.SKIPPED:
        ctx.log.info("skipped: %s", record.reason)
    else:
        ctx.log.info("%s %s", record.outcome.value, record.summary or "")
        clear_alert(*run_alert_keys(ctx.account.user_id, ctx.job_name))  # the job works again


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())
