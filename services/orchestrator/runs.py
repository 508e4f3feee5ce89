"""The run ledger and the one wrapper every job runs through.

Every fire (scheduled, caught up or ``run-job``) is claimed by inserting its row,
unique by ``(job_name, user_id, dry_run, scheduled_for, attempt)``, before the job runs: a
second orchestrator on the same database fails the insert and leaves the fire alone.

The claim carries a lease (``lease_until``) that the holder renews while the job
runs. When a holder dies, its lease lapses: another instance records that run
``failed`` (abandoned) and, while the fire is still inside its deadline, runs it
again as the next attempt. Every job's writes are idempotent, so a second attempt
completes what the first left, without duplicates.

A ledger is bound to one account (user and mode), its instance's: it claims, recovers
and re-runs that account's fires only. Another account's lapsed run waits for an
instance of its own; this one only reports it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterator, Mapping, Sequence

from sqlalchemy import Engine, bindparam, func, insert, or_, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.alerts import Alert, raise_alert
from services.common.clock import Clock
from services.common.database import database_error_line, dialect_insert
from services.common.job_api import Account, JobContext, JobResult, Origin, Outcome
from services.common.market_calendar import MarketCalendar
from services.common.memory import release_memory
from services.common.settings import ConfigurationError, Settings, redact_passwords
from services.orchestrator.jobs import REGISTRY, JobSpec, ServiceUnavailableError, get_job
from services.orchestrator.models import JobRun
from services.orchestrator.reports import calendar_warning
from services.orchestrator.triggers import CalendarTrigger

logger = logging.getLogger(__name__)

_RUNS = JobRun.__table__
# built once: a replay claims and finishes tens of thousands of fires
_CLAIM = insert(_RUNS).returning(_RUNS.c.id)
_FINISH = update(_RUNS).where(_RUNS.c.id == bindparam("run_id")).values(
    outcome=bindparam("outcome"), finished_at=bindparam("finished_at"), reason=bindparam("reason"),
    error=bindparam("error"), summary=bindparam("summary"), lease_until=None)
_FINISH_HELD = _FINISH.where(_RUNS.c.outcome == Outcome.RUNNING.value)  # fenced: not once taken over
_RENEW = update(_RUNS).where(_RUNS.c.id.in_(bindparam("run_ids", expanding=True)),
                             _RUNS.c.outcome == Outcome.RUNNING.value).values(lease_until=bindparam("until"))
#: the ledger's own account (not ``user_id``/``dry_run``: an UPDATE reserves its columns' names)
_MINE = (_RUNS.c.user_id == bindparam("owner")) & (_RUNS.c.dry_run == bindparam("mode"))
_LAPSED_ANY = select(_RUNS).where(text("outcome = 'running'"),  # literal: ix_job_runs_lease holds these rows
                                  _RUNS.c.lease_until < bindparam("now")).order_by(_RUNS.c.id)
_LAPSED = _LAPSED_ANY.where(_MINE)
_LAPSED_ELSEWHERE = _LAPSED_ANY.where(~_MINE)
_RUNNING_OTHER = select(_RUNS.c.id, _RUNS.c.scheduled_for, _RUNS.c.host, _RUNS.c.pid).where(
    text("outcome = 'running'"), _RUNS.c.job_name == bindparam("job_name"), _MINE,
    _RUNS.c.origin.in_(bindparam("origins", expanding=True)),
    _RUNS.c.lease_until >= bindparam("now"), _RUNS.c.id != bindparam("exclude")).limit(1)
_ABANDON = update(_RUNS).where(
    _RUNS.c.id == bindparam("run_id"), _MINE, _RUNS.c.outcome == Outcome.RUNNING.value,
    _RUNS.c.lease_until < bindparam("now")).values(
    outcome=Outcome.FAILED.value, finished_at=bindparam("now"), error=bindparam("error"), lease_until=None)

SCHEDULE, CATCH_UP, MANUAL = Origin.SCHEDULE.value, Origin.CATCH_UP.value, Origin.MANUAL.value
RECOVERY, SIMULATE = Origin.RECOVERY.value, Origin.SIMULATE.value
#: Runs the recovery sweep may run again; a manual run's operator decides about it.
RECOVERABLE_ORIGINS = (SCHEDULE, CATCH_UP, RECOVERY)

#: After downtime, fires up to this far back (since each job's last recorded fire) are
#: recorded as missed; older ones are not looked for.
DOWNTIME_LOOKBACK = timedelta(days=7)

#: How the ledger's error starts when the database failed the job (``_execute``), and
#: when the run was interrupted (``_run_claimed``). Neither is the job's own failure: its
#: transaction rolled back, so a replay run again retries them (:meth:`RunLedger.retryable`).
DATABASE_ERROR, INTERRUPTED = "database error:", "interrupted:"
RETRIED_ERRORS = (DATABASE_ERROR, INTERRUPTED)


def _new_instance_id() -> str:
    return uuid.uuid4().hex


#: This process's random id, written into every run it claims: host and pid do not tell
#: a process apart (a restarted container is pid 1 again, often on the same host name).
#: A forked child gets its own.
INSTANCE_ID = _new_instance_id()


def _renew_instance_id() -> None:
    global INSTANCE_ID
    INSTANCE_ID = _new_instance_id()


os.register_at_fork(after_in_child=_renew_instance_id)


@dataclass(frozen=True)
class RunRecord:
    """What a run came to, as recorded in the ledger."""

    run_id: int
    job_name: str
    scheduled_for: datetime
    trading_date: date | None
    outcome: Outcome
    reason: str | None = None
    error: str | None = None
    summary: dict[str, Any] | None = None


class RunLedger:
    """Reads and writes ``job_runs`` for one ``account``; each call is its own short
    transaction. Every row it writes is that account's, whatever row it was shown."""

    def __init__(self, session_factory: sessionmaker[DbSession], clock: Clock, lease: timedelta,
                 account: Account) -> None:
        self.lease = lease
        self.account = account
        self._mine = {"owner": account.user_id, "mode": account.dry_run}  # for _MINE
        self._row = {"user_id": account.user_id, "dry_run": account.dry_run}  # for the rows written
        self._sessions = session_factory
        self._engine: Engine = session_factory.kw["bind"]
        self._clock = clock
        self._host = socket.gethostname()[:255]
        self._pid = os.getpid()
        self.instance_id = INSTANCE_ID

    def claim(
        self,
        job_name: str,
        scheduled_for: datetime,
        *,
        trading_date: date | None,
        origin: str,
        outcome: Outcome = Outcome.RUNNING,
        reason: str | None = None,
        attempt: int = 1,
    ) -> int | None:
        """Insert the fire's row (a running one with a lease); ``None`` if another run
        already holds it."""
        now = self._clock.now()
        running = outcome is Outcome.RUNNING
        try:
            with self._engine.begin() as connection:
                return int(connection.execute(_CLAIM, {
                    **self._row, "job_name": job_name, "scheduled_for": scheduled_for,
                    "trading_date": trading_date, "origin": origin,
                    "outcome": outcome.value, "started_at": now, "finished_at": None if running else now,
                    "host": self._host, "pid": self._pid, "instance_id": self.instance_id, "reason": reason,
                    "attempt": attempt, "lease_until": now + self.lease if running else None}).scalar_one())
        except IntegrityError:
            return None

    def renew(self, run_ids: Sequence[int]) -> None:
        """Extend the leases of ``run_ids`` (still running) by a lease from now."""
        if run_ids:
            with self._engine.begin() as connection:
                connection.execute(_RENEW, {"run_ids": list(run_ids), "until": self._clock.now() + self.lease})

    def running_other(self, job_name: str, now: datetime, *, exclude: int = 0) -> Any:
        """Another scheduled (not manual) run of the job for this account whose holder
        is alive (its lease holds at ``now``), on any instance; None if none."""
        with self._engine.connect() as connection:
            return connection.execute(_RUNNING_OTHER, {
                **self._mine, "job_name": job_name, "now": now, "exclude": exclude,
                "origins": list(RECOVERABLE_ORIGINS)}).first()

    def lapsed(self, now: datetime) -> list[Any]:
        """This account's running rows whose lease ran out before ``now``: their holder
        is gone."""
        with self._engine.connect() as connection:
            return list(connection.execute(_LAPSED, {**self._mine, "now": now}).all())

    def lapsed_elsewhere(self, now: datetime) -> list[Any]:
        """Other accounts' running rows whose lease ran out a whole lease before ``now``
        (their own instances sweep once a lease: none has taken these over). They wait
        for an instance of their account, never for this one."""
        with self._engine.connect() as connection:
            return list(connection.execute(_LAPSED_ELSEWHERE, {**self._mine, "now": now - self.lease}).all())

    def abandon(self, run_id: int, now: datetime, error: str) -> bool:
        """Record a lapsed run failed; False if it was renewed, finished or taken meanwhile."""
        return self.take_over(run_id, now, error) is not None

    def take_over(self, run_id: int, now: datetime, error: str, *, rerun: Any = None) -> int | None:
        """Record a lapsed run of this account failed and, given its row as ``rerun``,
        claim its next attempt, in one transaction (a crash in between loses no fire).
        None if the run was renewed, finished, taken meanwhile or is another account's;
        else the new attempt's id (0: none)."""
        with self._engine.begin() as connection:
            if not connection.execute(_ABANDON, {**self._mine, "run_id": run_id, "now": now,
                                                 "error": error}).rowcount:
                return None
            if rerun is None:
                return 0
            return int(connection.execute(_CLAIM, {
                **self._row, "job_name": rerun.job_name, "scheduled_for": rerun.scheduled_for,
                "trading_date": rerun.trading_date, "origin": RECOVERY,
                "outcome": Outcome.RUNNING.value, "started_at": now, "finished_at": None, "host": self._host,
                "pid": self._pid, "instance_id": self.instance_id, "reason": None, "attempt": rerun.attempt + 1,
                "lease_until": now + self.lease}).scalar_one())

    def record_many(
        self, fires: Sequence[tuple[str, datetime, date | None]], outcome: Outcome, reason: str, *, origin: str,
    ) -> list[tuple[int, tuple[str, datetime, date | None]]]:
        """Record finished rows (e.g. missed fires) in one transaction; fires already
        recorded are left alone. Returns the rows written with their ids."""
        written = []
        now = self._clock.now()
        with self._sessions.begin() as session:
            connection = session.connection()
            for fire in fires:
                job_name, scheduled_for, trading_date = fire
                statement = dialect_insert(connection, JobRun.__table__).values(
                    **self._row, job_name=job_name, scheduled_for=scheduled_for,
                    trading_date=trading_date, origin=origin, outcome=outcome.value,
                    started_at=now, finished_at=now, host=self._host, pid=self._pid, instance_id=self.instance_id,
                    reason=reason,
                ).on_conflict_do_nothing(
                    index_elements=["job_name", "user_id", "dry_run", "scheduled_for", "attempt"])
                run_id = connection.execute(statement.returning(JobRun.__table__.c.id)).scalar()
                if run_id is not None:
                    written.append((run_id, fire))
        return written

    def expire_dead_runs(self) -> int:
        """End the leases of this host's ``running`` rows whose process is gone, so the
        next recovery sweep takes them over at once instead of a lease later."""
        with self._sessions.begin() as session:
            dead = self._dead_running_rows(session)
            for row in dead:
                row.lease_until = self._clock.now() - timedelta(microseconds=1)
        return len(dead)

    def release_interrupted(self, origin: str) -> int:
        """Delete this account's ``running`` rows of ``origin`` that this instance does not
        hold, so their fires can be claimed again (a replay resumes where a killed one
        stopped; every job's writes are idempotent, so running one again is safe).

        Only for a caller that no other process can be writing such rows beside: a replay
        holds its database's replay lock, so whoever left them (any host, any pid, this
        pid too) is gone."""
        with self._sessions.begin() as session:
            dead = list(session.scalars(select(JobRun).where(
                JobRun.outcome == Outcome.RUNNING.value, JobRun.origin == origin, *self._account_rows(),
                self._not_this_process())))
            for row in dead:
                session.delete(row)
        return len(dead)

    def retryable(self, origin: str) -> dict[tuple[str, datetime], int]:
        """This account's fires of ``origin`` whose latest attempt failed on the database
        or was interrupted (:data:`RETRIED_ERRORS`): that attempt, by (job, fire time)."""
        mine = (JobRun.origin == origin, *self._account_rows())
        latest = (select(JobRun.job_name, JobRun.scheduled_for, func.max(JobRun.attempt).label("attempt"))
                  .where(*mine).group_by(JobRun.job_name, JobRun.scheduled_for).subquery())
        query = (select(JobRun.job_name, JobRun.scheduled_for, JobRun.attempt)
                 .join(latest, (JobRun.job_name == latest.c.job_name)
                       & (JobRun.scheduled_for == latest.c.scheduled_for) & (JobRun.attempt == latest.c.attempt))
                 .where(*mine, JobRun.outcome == Outcome.FAILED.value,
                        or_(*(JobRun.error.startswith(prefix, autoescape=True) for prefix in RETRIED_ERRORS))))
        with self._engine.connect() as connection:
            return {(job, at): attempt for job, at, attempt in connection.execute(query)}

    def _dead_running_rows(self, session: DbSession) -> list[JobRun]:
        """This host's ``running`` rows whose process is certainly gone: another pid that
        no longer runs. A row of this very pid under another instance id is left to its
        lease: containers sharing a host name (host networking) each run as pid 1, so
        that process may be alive in another container."""
        query = select(JobRun).where(JobRun.outcome == Outcome.RUNNING.value, JobRun.host == self._host,
                                     JobRun.pid != self._pid)
        return [row for row in session.scalars(query) if not _process_alive(row.pid)]

    def _not_this_process(self) -> Any:
        """Rows another process wrote: its host, pid or instance id differs from ours (a
        NULL instance id was written before there were any: 0010_run_instances)."""
        return or_(JobRun.host != self._host, JobRun.pid != self._pid, JobRun.instance_id.is_(None),
                   JobRun.instance_id != self.instance_id)

    def _account_rows(self) -> tuple[Any, ...]:
        return JobRun.user_id == self.account.user_id, JobRun.dry_run == self.account.dry_run

    def finish(
        self,
        run_id: int,
        outcome: Outcome,
        *,
        reason: str | None = None,
        error: str | None = None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        with self._engine.begin() as connection:
            updated = connection.execute(_FINISH_HELD, {
                "run_id": run_id, "outcome": outcome.value, "finished_at": self._clock.now(),
                "reason": reason, "error": error, "summary": summary}).rowcount
        if not updated:  # its lease lapsed and another instance recorded it abandoned
            logger.error("run %s ended %s after its claim was taken over (its lease had lapsed); the ledger "
                         "keeps it as abandoned", run_id, outcome.value)

    def latest_fire(self, job_name: str, origins: Sequence[str]) -> datetime | None:
        """This account's latest recorded fire of ``job_name`` among ``origins``."""
        with self._sessions() as session:
            return session.scalar(
                select(func.max(JobRun.scheduled_for)).where(
                    JobRun.job_name == job_name,
                    JobRun.user_id == self.account.user_id,
                    JobRun.dry_run == self.account.dry_run,
                    JobRun.origin.in_(origins),
                )
            )

    def last_runs(self) -> dict[str, JobRun]:
        """The most recent row of each job for this account."""
        with self._sessions() as session:
            latest = (
                select(JobRun.job_name, func.max(JobRun.id).label("id"))
                .where(JobRun.user_id == self.account.user_id, JobRun.dry_run == self.account.dry_run)
                .group_by(JobRun.job_name)
                .subquery()
            )
            rows = session.scalars(select(JobRun).join(latest, JobRun.id == latest.c.id))
            return {row.job_name: row for row in rows}

    def history(
        self, *, job_name: str | None = None, user_id: str | None = None, limit: int = 20
    ) -> list[JobRun]:
        with self._sessions() as session:
            query = select(JobRun).order_by(JobRun.scheduled_for.desc(), JobRun.id.desc())
            if job_name:
                query = query.where(JobRun.job_name == job_name)
            if user_id:
                query = query.where(JobRun.user_id == user_id)
            return list(session.scalars(query.limit(limit)))


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
        self._heartbeat = Heartbeat(self.ledger, settings.run_lease_seconds / 3)
        self._stopping = threading.Event()
        self._calendar_checked_on: date | None = None
        self._reported_elsewhere: set[int] = set()  # other accounts' lapsed runs, alerted once

    def job(self, name: str) -> JobSpec:
        return get_job(name, self.jobs)

    # -- deadlines -----------------------------------------------------------------------

    def deadline(self, job_name: str, fire_time: datetime) -> datetime:
        """The latest moment a fire may start. The market decides where it can: a
        pre-open job until the open, a post-close job until the next session's pre-open
        jobs, a tick until the next tick. ``misfire_grace_seconds`` bounds the rest
        (risk checks)."""
        market = self.triggers[job_name].market_deadline(fire_time)
        if market is not None:
            return market
        return fire_time + timedelta(seconds=self.settings.misfire_grace_seconds)

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
            raise_alert(logger, Alert("run_failed", f"{job_name} fire at {fire_time.isoformat()} could not run: "
                                      f"database error: {reason}", {
                                          "job": job_name, "scheduled_for": fire_time.isoformat(),
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
            return self._record_only(
                job, fire_time, trading_date, Outcome.MISSED,
                f"too late: {_seconds(late_by)} s past the deadline {deadline.isoformat()}",
                origin=origin,
            )
        return self._claim_and_run(job, fire_time, trading_date, origin or self.origin)

    def run_now(self, job_name: str, trading_date: date, *, origin: str = MANUAL) -> RunRecord:
        """``run-job`` (and start-up catch-up): run now for ``trading_date``, recorded
        like a scheduled run."""
        job = self.job(job_name)
        record = self._claim_and_run(job, self.clock.now(), trading_date, origin)
        assert record is not None  # a manual run's moment is its own; nothing else claims it
        return record

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

    def scheduled_jobs(self) -> list[str]:
        """The jobs this runner schedules: enabled, and with their service installed."""
        return [name for name in self.triggers
                if name in self.jobs and self.settings.job_enabled(name) and self.job(name).service_available()]

    def request_stop(self) -> None:
        """Catch-up loops stop between two fires (on SIGINT/SIGTERM)."""
        self._stopping.set()

    def retry_fire(self, job_name: str, fire_time: datetime, attempt: int, *, origin: str) -> RunRecord | None:
        """Run a fire again as ``attempt``, its previous attempt having failed on the
        database or been interrupted (a replay run again retries those: see
        :meth:`RunLedger.retryable`); None if another run claimed that attempt."""
        job = self.job(job_name)
        trading_date = self.triggers[job_name].trading_date(fire_time)
        run_id = self.ledger.claim(job_name, fire_time, trading_date=trading_date, origin=origin, attempt=attempt)
        if run_id is None:
            logger.info("%s %s: attempt %d claimed by another run; leaving it", job_name, fire_time.isoformat(),
                        attempt)
            return None
        return self._run_claimed(job, fire_time, trading_date, origin, run_id=run_id)

    def catch_up_on_start(self, now: datetime) -> list[RunRecord]:
        """Run each job that keeps a history (``catch_up_on_start``) once for its latest
        trading date; the job fills what is missing, or says there was nothing."""
        records = []
        for job_name in self.scheduled_jobs():
            trigger = self.triggers[job_name]
            if not self.job(job_name).catch_up_on_start or self._stopping.is_set():
                continue
            latest = trigger.previous_fire_time(now)
            if latest is not None:
                records.append(self.run_now(job_name, trigger.trading_date(latest), origin=CATCH_UP))
        release_memory()  # a history catch-up is the largest batch an idle scheduler runs
        return records

    def record_overlap(self, job_name: str, fire_time: datetime) -> RunRecord | None:
        """A fire that came while the previous run of the job in this process was still
        running (APScheduler's one-instance rule): recorded skipped, and alerted."""
        trading_date = self.triggers[job_name].trading_date(fire_time)
        busy = self.ledger.running_other(job_name, self.clock.now())
        reason = "previous run still running" if busy is None else overlap_reason(busy, fire_time, self.settings.tz)
        return self._skip_overlapping(self.job(job_name), fire_time, trading_date, reason, SCHEDULE)

    def fires_missed_during_downtime(self, now: datetime) -> list[tuple[str, datetime]]:
        """Fires of the scheduled jobs since each one's last recorded fire (at most
        :data:`DOWNTIME_LOOKBACK` back) that never ran."""
        missed: list[tuple[str, datetime]] = []
        for job_name in self.scheduled_jobs():
            trigger = self.triggers[job_name]
            last = self.ledger.latest_fire(job_name, (SCHEDULE, CATCH_UP))
            if last is None:
                continue  # a job that never ran here has no history to catch up
            start = max(last + timedelta(microseconds=1), now - DOWNTIME_LOOKBACK)
            missed.extend((job_name, fire) for fire in trigger.fire_times(start, now))
        return sorted(missed, key=lambda item: (item[1], item[0]))

    def catch_up_downtime(self, now: datetime) -> list[RunRecord]:
        """After downtime: every missed fire is recorded; the latest one of each job still
        inside its window runs once (coalesced), in time order."""
        by_job: dict[str, list[datetime]] = {}
        for job_name, fire in self.fires_missed_during_downtime(now):
            by_job.setdefault(job_name, []).append(fire)
        records: list[RunRecord] = []
        older = [(name, fire) for name, fires in by_job.items() for fire in fires[:-1]]
        records.extend(self._record_missed(older, "orchestrator was not running"))
        for job_name, fires in sorted(by_job.items(), key=lambda item: item[1][-1]):
            if self._stopping.is_set():
                break
            record = self.run_fire(job_name, fires[-1], origin=CATCH_UP)
            if record:
                records.append(record)
        return sorted(records, key=lambda r: (r.scheduled_for, r.job_name))

    def expire_dead_runs(self) -> int:
        """Runs of this host left ``running`` by a process that no longer exists (a crash
        or SIGKILL mid-job) are handed to the next recovery sweep."""
        return self.ledger.expire_dead_runs()

    def recover_abandoned(self) -> list[RunRecord]:
        """This account's runs whose holder stopped renewing its lease (any host) are
        recorded ``failed: abandoned``; a fire still inside its deadline runs again as
        the next attempt. Every instance of the account calls this; each lapsed run is
        recovered by one. Other accounts' lapsed runs are left to their own instances,
        and alerted once."""
        now = self.clock.now()
        try:
            lapsed = self.ledger.lapsed(now)
            self._report_lapsed_elsewhere(self.ledger.lapsed_elsewhere(now))
        except SQLAlchemyError as exc:
            logger.warning("could not look for abandoned runs (database error: %s); trying again next sweep",
                           database_error_line(exc))
            return []
        records = []
        for row in lapsed:
            if self._heartbeat.holds(row.id):
                continue  # ours and alive: the renewal is late, not the run dead
            try:
                record = self._take_over(row, self.clock.now())  # an earlier row's re-run took time
            except SQLAlchemyError as exc:  # the next sweep finds the row still running
                logger.warning("could not take over run %s (database error: %s)", row.id,
                               database_error_line(exc))
                continue
            if record is not None:
                records.append(record)
        return records

    def _report_lapsed_elsewhere(self, rows: Sequence[Any]) -> None:
        """Say once, per run, that another account's run lapsed and waits for an
        instance of that account (this one never runs it)."""
        for row in rows:
            if row.id in self._reported_elsewhere:
                continue
            self._reported_elsewhere.add(row.id)
            owner = Account(row.user_id, row.dry_run).describe()
            raise_alert(logger, Alert("run_missed", (
                f"{row.job_name} {row.trading_date}: run {row.id} of {owner} lapsed and waits for an instance "
                f"of that account; this instance acts for {self.account.describe()} only"), {
                    "job": row.job_name, "trading_date": row.trading_date and row.trading_date.isoformat(),
                    "scheduled_for": row.scheduled_for.isoformat(), "run_id": row.id, "user_id": row.user_id,
                    "dry_run": row.dry_run, "reason": "waits for an instance of its own account"}))

    def _take_over(self, row: Any, now: datetime) -> RunRecord | None:
        """Record one lapsed run abandoned; run its fire again if it is still worth it
        (a manual run is for its operator to repeat; a disabled job stays off)."""
        error = (f"abandoned: the lease of {row.host} pid {row.pid} lapsed at "
                 f"{row.lease_until.isoformat(timespec='seconds')}")
        rerun = (row.origin in RECOVERABLE_ORIGINS and row.job_name in self.scheduled_jobs()
                 and now <= self.deadline(row.job_name, row.scheduled_for))
        busy = self.ledger.running_other(row.job_name, now, exclude=row.id) if rerun else None
        if busy is not None:  # never two at once: the next sweep looks again, until the deadline
            logger.info("%s %s: lapsed run %s left for a later sweep: %s", row.job_name, row.trading_date, row.id,
                        overlap_reason(busy, row.scheduled_for, self.settings.tz))
            return None
        run_id = self.ledger.take_over(row.id, now, error, rerun=row if rerun else None)
        if run_id is None:
            return None  # renewed, finished, or taken over by another instance meanwhile
        raise_alert(logger, Alert("run_failed", f"{row.job_name} {row.trading_date} failed: {error}", {
            "job": row.job_name, "trading_date": row.trading_date and row.trading_date.isoformat(),
            "scheduled_for": row.scheduled_for.isoformat(), "run_id": row.id, "user_id": row.user_id,
            "attempt": row.attempt, "error": error}))
        if not run_id:
            return None
        return self._run_claimed(self.job(row.job_name), row.scheduled_for, row.trading_date, RECOVERY,
                                 run_id=run_id)

    def close(self) -> None:
        """Stop renewing leases (the runs still held lapse and are recovered elsewhere)."""
        self._heartbeat.stop()

    # -- internals -------------------------------------------------------------------------

    def _record_missed(self, fires: list[tuple[str, datetime]], reason: str) -> list[RunRecord]:
        rows = [(name, fire, self.triggers[name].trading_date(fire)) for name, fire in fires]
        recorded = self.ledger.record_many(rows, Outcome.MISSED, reason, origin=CATCH_UP)
        if recorded:
            first, last = min(fire for _, fire in fires), max(fire for _, fire in fires)
            raise_alert(logger, Alert("run_missed", f"{len(recorded)} fires were missed while the orchestrator "
                                      f"was not running ({first.isoformat()} to {last.isoformat()})", {
                                          "fires": len(recorded), "reason": reason, "user_id": self.settings.user_id,
                                          "first": first.isoformat(), "last": last.isoformat()}))
        return [RunRecord(run_id, name, fire, day, Outcome.MISSED, reason=reason)
                for run_id, (name, fire, day) in recorded]

    def _record_only(
        self, job: JobSpec, fire_time: datetime, trading_date: date, outcome: Outcome, reason: str,
        *, origin: str | None = None,
    ) -> RunRecord | None:
        run_id = self.ledger.claim(job.name, fire_time, trading_date=trading_date, origin=origin or self.origin,
                                   outcome=outcome, reason=reason)
        if run_id is None:
            logger.info("%s %s: already recorded by another run", job.name, fire_time.isoformat())
            return None
        if outcome is Outcome.MISSED:
            raise_alert(logger, Alert("run_missed", f"{job.name} {trading_date}: the fire at "
                                      f"{fire_time.isoformat()} was missed: {reason}", {
                                          "job": job.name, "trading_date": trading_date.isoformat(),
                                          "scheduled_for": fire_time.isoformat(), "run_id": run_id,
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
        record = self._record_only(job, fire_time, trading_date, Outcome.SKIPPED, reason, origin=origin)
        if record is not None and origin != CATCH_UP:
            raise_alert(logger, Alert("run_missed", f"{job.name} {trading_date}: the fire at "
                                      f"{fire_time.isoformat()} was skipped: {reason}", {
                                          "job": job.name, "trading_date": trading_date.isoformat(),
                                          "scheduled_for": fire_time.isoformat(), "run_id": record.run_id,
                                          "user_id": self.settings.user_id, "reason": reason}))
        return record

    def _claim_and_run(self, job: JobSpec, fire_time: datetime, trading_date: date, origin: str) -> RunRecord | None:
        if origin in RECOVERABLE_ORIGINS:  # never two runs of a scheduled job at once, on any instance
            busy = self.ledger.running_other(job.name, self.clock.now())
            if busy is not None:
                return self._skip_overlapping(job, fire_time, trading_date,
                                              overlap_reason(busy, fire_time, self.settings.tz), origin)
        run_id = self.ledger.claim(job.name, fire_time, trading_date=trading_date, origin=origin)
        if run_id is None:
            logger.info("%s %s: claimed by another orchestrator; leaving it", job.name,
                        fire_time.isoformat())
            return None
        return self._run_claimed(job, fire_time, trading_date, origin, run_id=run_id)

    def _run_claimed(self, job: JobSpec, fire_time: datetime, trading_date: date, origin: str,
                     *, run_id: int) -> RunRecord:
        """Run a fire this process holds the claim of, for this instance's account (from
        its settings, never from a row), and record how it ended."""
        ctx = JobContext(
            job_name=job.name, trading_date=trading_date, scheduled_for=fire_time, settings=self.settings,
            session_factory=self.session_factory, clock=self.clock, calendar=self.calendar,
            run_id=run_id, origin=origin,
        )
        with self._heartbeat.holding(run_id):
            try:
                result, error = self._execute(job, ctx)
            except BaseException as stop:  # Ctrl-C, SystemExit: recorded, never left to be re-run
                self.ledger.finish(run_id, Outcome.FAILED, error=f"interrupted: {type(stop).__name__}")
                raise
        self.ledger.finish(run_id, result.status, reason=result.reason if not error else None,
                           error=error, summary=result.summary or None)
        record = RunRecord(run_id, job.name, fire_time, trading_date, result.status,
                           reason=None if error else result.reason, error=error,
                           summary=result.summary or None)
        _log_outcome(ctx, record)
        return record

    def _execute(self, job: JobSpec, ctx: JobContext) -> tuple[JobResult, str | None]:
        """Guards, then the job. Returns its result and, when it failed, the error text."""
        if job.sessions_only and not self.calendar.is_session(ctx.trading_date):
            return JobResult.skipped(f"not a session: {ctx.trading_date} is a KRX holiday or weekend"), None
        try:
            entry_point = job.load_entry_point()
        except ServiceUnavailableError as exc:
            return JobResult.skipped(str(exc)), None
        ctx.log.info("started (run %s, %s)", ctx.run_id, "dry run" if ctx.dry_run else "LIVE")
        try:
            result = entry_point(ctx)
        except ConfigurationError as exc:  # e.g. a provider without its credentials: no traceback
            return JobResult(Outcome.FAILED), redact_passwords(f"{type(exc).__name__}: {exc}")
        except DBAPIError as exc:  # the database refused: the statement goes to the log, one line to the ledger
            ctx.log.exception("failed")
            return JobResult(Outcome.FAILED), f"database error: {database_error_line(exc)}"
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


class Heartbeat:
    """Renews the leases of the runs this process holds, every ``interval`` seconds,
    from one daemon thread (started with the first run)."""

    def __init__(self, ledger: RunLedger, interval: float) -> None:
        self._ledger = ledger
        self._interval = interval
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, run_id: int) -> Iterator[None]:
        with self._lock:
            self._held.add(run_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(run_id)

    def holds(self, run_id: int) -> bool:
        with self._lock:
            return run_id in self._held

    def stop(self) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                held = sorted(self._held)
            try:
                self._ledger.renew(held)
            except Exception:  # the database may be away a moment: the next beat tries again
                logger.warning("could not renew the leases of runs %s", held, exc_info=True)


def _log_outcome(ctx: JobContext, record: RunRecord) -> None:
    if record.outcome is Outcome.FAILED:
        raise_alert(logger, Alert("run_failed", f"{ctx.job_name} {ctx.trading_date} failed: "
                                   f"{first_line(record.error or '') or 'failed'}", {
                                       "job": ctx.job_name, "trading_date": ctx.trading_date.isoformat(),
                                       "scheduled_for": record.scheduled_for.isoformat(), "run_id": record.run_id,
                                       "user_id": ctx.user_id, "origin": ctx.origin, "dry_run": ctx.dry_run,
                                       "error": first_line(record.error or "")}))
    elif record.outcome is Outcome.SKIPPED:
        ctx.log.info("skipped: %s", record.reason)
    else:
        ctx.log.info("%s %s", record.outcome.value, record.summary or "")


def overlap_reason(busy: Any, fire_time: datetime, tz: Any) -> str:
    """Why a fire waits or is skipped while ``busy`` (a ledger row) runs the same job."""
    which = "previous" if busy.scheduled_for <= fire_time else "another"
    return (f"{which} run still running (run {busy.id}, fire {busy.scheduled_for.astimezone(tz).isoformat()}, "
            f"{busy.host} pid {busy.pid})")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def first_line(text: str) -> str:
    """The first line of ``text`` ('' for none): what a one-line message carries."""
    return text.strip().splitlines()[0] if text.strip() else ""


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())
