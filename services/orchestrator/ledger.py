"""The run ledger: ``job_runs``, one row per fire, claim or record.

Every fire (scheduled, caught up or ``run-job``) is claimed by inserting its row,
unique by ``(job_name, user_id, dry_run, scheduled_for, attempt)``, before the job runs: a
second orchestrator on the same database fails the insert and leaves the fire alone.
The claim carries a lease (``lease_until``) that its holder renews while the job runs
(:mod:`services.orchestrator.leases`).

A ledger is bound to one account (user and mode), its instance's: it claims, recovers
and re-runs that account's fires only.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, UniqueConstraint, bindparam, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.clock import Clock
from services.common.database import (
    UNCOUNTED,
    dialect_insert,
    dialect_insert_for,
    execute_compiled,
    fetch_compiled,
    fetch_typed,
)
from services.common.job_api import Account, Origin, Outcome
from services.orchestrator.models import JobRun

logger = logging.getLogger(__name__)

_RUNS = JobRun.__table__
# built once: a replay claims and finishes tens of thousands of fires
#: the columns of a fire's row as the ledger writes it (``RunLedger._fire_row``)
_FIRE_COLUMNS = ("user_id", "dry_run", "job_name", "scheduled_for", "trading_date", "origin", "outcome",
                 "started_at", "finished_at", "host", "pid", "instance_id", "reason", "attempt", "lease_until")
_FIRE_VALUES: dict[str, Any] = {name: bindparam(name) for name in _FIRE_COLUMNS}
_CLAIM = insert(_RUNS).values(_FIRE_VALUES).returning(_RUNS.c.id)
_FINISH = update(_RUNS).where(_RUNS.c.id == bindparam("run_id")).values(
    outcome=bindparam("outcome"), finished_at=bindparam("finished_at"), reason=bindparam("reason"),
    error=bindparam("error"), summary=bindparam("summary"), lease_until=None)
_FINISH_HELD = _FINISH.where(_RUNS.c.outcome == Outcome.RUNNING.value)  # fenced: not once taken over
_RENEW = update(_RUNS).where(_RUNS.c.id.in_(bindparam("run_ids", expanding=True)),
                             _RUNS.c.outcome == Outcome.RUNNING.value).values(lease_until=bindparam("until"))
#: what a fire's row is unique by (the model's uq_job_runs_fire): a second claim of a fire fails
_FIRE_KEY = next([column.name for column in constraint.columns] for constraint in _RUNS.constraints
                 if isinstance(constraint, UniqueConstraint) and constraint.name == "uq_job_runs_fire")


@functools.cache
def _insert_skipped(dialect: str) -> Any:
    """:meth:`RunLedger.write_skipped`'s statement, built once per dialect (a replay
    writes a batch before each of its thousands of runs)."""
    return dialect_insert_for(dialect, _RUNS).values(_FIRE_VALUES).on_conflict_do_nothing(index_elements=_FIRE_KEY)


#: the ledger's own account (not ``user_id``/``dry_run``: an UPDATE reserves its columns' names)
_MINE = (_RUNS.c.user_id == bindparam("owner")) & (_RUNS.c.dry_run == bindparam("mode"))
#: a run's summary key holding the fingerprint of what it read (``JobSpec.state``)
STATE_KEY = "state"
#: how a skipped fire whose fingerprint was unchanged begins its reason
UNCHANGED = "unchanged since the run of"
_LAST_SUCCESS = select(_RUNS.c.scheduled_for, _RUNS.c.summary).where(
    _MINE, _RUNS.c.job_name == bindparam("job_name"), _RUNS.c.outcome == Outcome.SUCCESS.value).order_by(
    _RUNS.c.scheduled_for.desc(), _RUNS.c.id.desc()).limit(1)
_LAPSED_ANY = select(_RUNS).where(text("outcome = 'running'"),  # literal: ix_job_runs_lease holds these rows
                                  _RUNS.c.lease_until < bindparam("now")).order_by(_RUNS.c.id)
_LAPSED = _LAPSED_ANY.where(_MINE)
_LAPSED_ELSEWHERE = _LAPSED_ANY.where(~_MINE)
_RUNNING_OTHER = select(_RUNS.c.id, _RUNS.c.scheduled_for, _RUNS.c.host, _RUNS.c.pid).where(
    text("outcome = 'running'"), _RUNS.c.job_name == bindparam("job_name"), _MINE,
    _RUNS.c.origin.in_(bindparam("origins", expanding=True)),
    _RUNS.c.lease_until >= bindparam("now"), _RUNS.c.id != bindparam("exclude")).limit(1)
_LATEST_ATTEMPT = select(_RUNS.c.id, _RUNS.c.attempt, _RUNS.c.outcome, _RUNS.c.scheduled_for, _RUNS.c.host,
                         _RUNS.c.pid).where(_RUNS.c.job_name == bindparam("job_name"), _MINE,
                                            _RUNS.c.scheduled_for == bindparam("scheduled_for")).order_by(
    _RUNS.c.attempt.desc()).limit(1)
_ABANDON = update(_RUNS).where(
    _RUNS.c.id == bindparam("run_id"), _MINE, _RUNS.c.outcome == Outcome.RUNNING.value,
    _RUNS.c.lease_until < bindparam("now")).values(
    outcome=Outcome.FAILED.value, finished_at=bindparam("now"), error=bindparam("error"), lease_until=None)

SCHEDULE, CATCH_UP, MANUAL = Origin.SCHEDULE.value, Origin.CATCH_UP.value, Origin.MANUAL.value
RECOVERY, SIMULATE = Origin.RECOVERY.value, Origin.SIMULATE.value
#: Runs the recovery sweep may run again; a manual run's operator decides about it.
RECOVERABLE_ORIGINS = (SCHEDULE, CATCH_UP, RECOVERY)

#: How the ledger's error starts when the database failed the job, and when the run was
#: interrupted (Ctrl-C, SystemExit: see :class:`runner.JobRunner`). Neither is the job's
#: own failure: its transaction rolled back, so a replay run again retries them
#: (:meth:`RunLedger.retryable`).
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
        # its commits write only its own rows: none a job reads (database.UNCOUNTED)
        self._engine: Engine = session_factory.kw["bind"].execution_options(**{UNCOUNTED: True})
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
        skipped: Sequence[dict[str, Any]] = (),
    ) -> int | None:
        """Insert the fire's row (a running one with a lease); ``None`` if another run
        already holds it. ``skipped``: :meth:`skipped_row` rows of the fires before it,
        written first, in the same transaction (kept when the claim is not)."""
        try:
            with self._engine.begin() as connection:
                if skipped:
                    execute_compiled(connection, _insert_skipped(connection.dialect.name), skipped)
                ((run_id,),) = fetch_compiled(connection, _CLAIM, self._fire_row(
                    job_name, scheduled_for, trading_date, origin, outcome, self._clock.now(), reason=reason,
                    attempt=attempt))
                return int(run_id)
        except IntegrityError:
            self.write_skipped(skipped)
            return None

    def _fire_row(self, job_name: str, scheduled_for: datetime, trading_date: date | None, origin: str,
                  outcome: Outcome, now: datetime, *, reason: str | None = None, attempt: int = 1) -> dict[str, Any]:
        """The row of this account's fire claimed or recorded by this process at ``now``:
        a running one holds a lease, any other is finished."""
        running = outcome is Outcome.RUNNING
        return {**self._row, "job_name": job_name, "scheduled_for": scheduled_for, "trading_date": trading_date,
                "origin": origin, "outcome": outcome.value, "started_at": now, "finished_at": None if running else now,
                "host": self._host, "pid": self._pid, "instance_id": self.instance_id, "reason": reason,
                "attempt": attempt, "lease_until": now + self.lease if running else None}

    def skipped_row(self, job_name: str, scheduled_for: datetime, *, trading_date: date | None, origin: str,
                    reason: str) -> dict[str, Any]:
        """The row :meth:`claim` writes for a fire recorded ``skipped`` now, for
        :meth:`write_skipped`."""
        return self._fire_row(job_name, scheduled_for, trading_date, origin, Outcome.SKIPPED, self._clock.now(),
                              reason=reason)

    def write_skipped(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write :meth:`skipped_row` rows in one transaction, in their order; a fire
        already recorded keeps its row."""
        if rows:
            with self._engine.begin() as connection:
                execute_compiled(connection, _insert_skipped(connection.dialect.name), rows)

    def recorded_fires(self) -> set[tuple[str, datetime]]:
        """This account's fires with a row, as (job, fire time)."""
        query = select(_RUNS.c.job_name, _RUNS.c.scheduled_for).where(*self._account_rows()).distinct()
        with self._engine.connect() as connection:
            return {(str(row[0]), row[1]) for row in connection.execute(query)}

    def unchanged_since(self, job_name: str, state: str) -> datetime | None:
        """When the job's last successful run of this account was scheduled, if it
        recorded ``state`` as what it read (see ``JobSpec.state``); else None."""
        with self._engine.connect() as connection:
            rows = fetch_typed(connection, _LAST_SUCCESS, {**self._mine, "job_name": job_name})
        row = rows[0] if rows else None
        if row is None or not isinstance(row.summary, dict) or row.summary.get(STATE_KEY) != state:
            return None
        return row.scheduled_for  # type: ignore[no-any-return]

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

    def latest_attempt(self, job_name: str, scheduled_for: datetime) -> Any:
        """This account's latest attempt at the fire (its id, attempt, outcome, host and
        pid); None if it was never claimed."""
        with self._engine.connect() as connection:
            return connection.execute(_LATEST_ATTEMPT, {**self._mine, "job_name": job_name,
                                                        "scheduled_for": scheduled_for}).first()

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
            return int(connection.execute(_CLAIM, self._fire_row(
                rerun.job_name, rerun.scheduled_for, rerun.trading_date, RECOVERY, Outcome.RUNNING, now,
                attempt=rerun.attempt + 1)).scalar_one())

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
                    **self._fire_row(job_name, scheduled_for, trading_date, origin, outcome, now, reason=reason),
                ).on_conflict_do_nothing(index_elements=_FIRE_KEY)
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
            updated = execute_compiled(connection, _FINISH_HELD, [{
                "run_id": run_id, "outcome": outcome.value, "finished_at": self._clock.now(),
                "reason": reason, "error": error, "summary": summary}])
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

    def scheduled_between(self, start: datetime, end: datetime) -> list[JobRun]:
        """This account's runs scheduled for ``start <= t < end``, by time then id."""
        with self._sessions() as session:
            query = select(JobRun).where(*self._account_rows(), JobRun.scheduled_for >= start,
                                         JobRun.scheduled_for < end)
            return list(session.scalars(query.order_by(JobRun.scheduled_for, JobRun.id)))

    def page(self, *, job_name: str | None = None, outcome: str | None = None, limit: int = 50,
             before: int | None = None) -> list[JobRun]:
        """This account's runs, newest (highest id) first: the ``limit`` with an id below
        ``before`` (None: from the newest), only ``job_name``'s and ``outcome``'s when given."""
        with self._sessions() as session:
            query = select(JobRun).where(JobRun.user_id == self.account.user_id,
                                         JobRun.dry_run == self.account.dry_run)
            if job_name:
                query = query.where(JobRun.job_name == job_name)
            if outcome:
                query = query.where(JobRun.outcome == outcome)
            if before is not None:
                query = query.where(JobRun.id < before)
            return list(session.scalars(query.order_by(JobRun.id.desc()).limit(limit)))


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
