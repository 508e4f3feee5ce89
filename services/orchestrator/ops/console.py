"""The console's mutations, as a library: their audit (``console_audit``), and the job
runs it queues for a running scheduler (``queued_runs``, run by
:mod:`services.orchestrator.queued_runs`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import Connection, event, insert, select
from sqlalchemy.exc import SQLAlchemyError

from services.common.database import database_error_line
from services.common.job_api import Account
from services.orchestrator.heartbeats import FRESH, latest_beat
from services.orchestrator.ledger import first_line
from services.orchestrator.models import ConsoleAudit, JobRun, QueuedRun
from services.orchestrator.ops.arguments import InvalidArgument
from services.orchestrator.ops.manual import check_run
from services.orchestrator.queued_runs import QUEUED
from services.orchestrator.runtime import Runtime

logger = logging.getLogger(__name__)

DEFAULT_AUDIT_LIMIT = 50
MAX_AUDIT_LIMIT = 1000
MAX_CLIENT = 300


class NoLiveScheduler(Exception):
    """No scheduler of the account beat within ``heartbeats.FRESH``: nothing would run a
    queued run."""


class QueuedRunNotFound(LookupError):
    """No queued run of the account has this id."""


class Audit:
    """One mutation asked of the console, written once to ``console_audit``: in the
    transaction of the change (:meth:`write`), or alone when it was refused (:meth:`record`)."""

    def __init__(self, runtime: Runtime, action: str, client: str, detail: dict[str, Any] | None = None) -> None:
        self.runtime = runtime
        self.action = action
        self.client = client[:MAX_CLIENT]
        self.detail: dict[str, Any] = dict(detail or {})
        self.written = False

    def write(self, connection: Connection, status_code: int, outcome: str) -> None:
        account = Account.of(self.runtime.settings)
        connection.execute(insert(ConsoleAudit).values(
            at=self.runtime.clock.now(), user_id=account.user_id, dry_run=account.dry_run, action=self.action,
            detail=self.detail or None, client=self.client, status_code=status_code,
            outcome=first_line(outcome)[:1000] or None))

        def committed(_connection: Connection) -> None:
            self.written = True  # only once the change and its audit are stored: else record() writes it

        event.listen(connection, "commit", committed, once=True)

    def record(self, status_code: int, outcome: str) -> None:
        """Write it in a transaction of its own (a database that refuses is logged)."""
        if self.written:
            return
        try:
            with self.runtime.session_factory().begin() as session:
                self.write(session.connection(), status_code, outcome)
        except SQLAlchemyError as exc:
            logger.warning("could not write the console's audit of %s (database error: %s)", self.action,
                           database_error_line(exc))


def audit_log(runtime: Runtime, limit: int = DEFAULT_AUDIT_LIMIT) -> list[dict[str, Any]]:
    """The account's ``limit`` latest audited mutations, newest first."""
    if not 1 <= limit <= MAX_AUDIT_LIMIT:
        raise InvalidArgument("limit", f"{limit} is not a number of entries; expected 1 to {MAX_AUDIT_LIMIT}")
    account, tz = Account.of(runtime.settings), runtime.settings.display_tz
    with runtime.session_factory()() as session:
        rows = session.scalars(select(ConsoleAudit).where(
            ConsoleAudit.user_id == account.user_id, ConsoleAudit.dry_run.is_(account.dry_run))
            .order_by(ConsoleAudit.id.desc()).limit(limit)).all()
    return [{"id": row.id, "at": row.at.astimezone(tz).isoformat(), "user_id": row.user_id,
             "dry_run": row.dry_run, "action": row.action, "detail": row.detail, "client": row.client,
             "status_code": row.status_code, "outcome": row.outcome} for row in rows]


def queue_run(runtime: Runtime, name: str, day: date | None, requested_by: str,
              also: Callable[[Connection, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Queue job ``name`` for trading date ``day`` (None: its latest fire's), checked as
    ``run-job`` checks it, for a scheduler of the account to run within seconds;
    ``NoLiveScheduler`` if none is alive. ``also`` is called with the answer in the
    same transaction (the audit). The answer: queued_id, job, trading_date."""
    job, trading_date = check_run(runtime, name, day)
    account, now = Account.of(runtime.settings), runtime.clock.now()
    with runtime.session_factory().begin() as session:
        connection = session.connection()
        beat = latest_beat(connection, account)
        if beat is None or now - beat > FRESH:
            since = "no heartbeat" if beat is None else (
                f"last heartbeat {beat.astimezone(runtime.settings.display_tz).isoformat()}")
            raise NoLiveScheduler(f"no scheduler of {account.describe()} is running ({since}); "
                                  "start one (`start`) to run queued jobs")
        queued_id = connection.execute(insert(QueuedRun).values(
            user_id=account.user_id, dry_run=account.dry_run, job_name=job.name, trading_date=trading_date,
            requested_at=now, requested_by=requested_by[:MAX_CLIENT], status=QUEUED,
        ).returning(QueuedRun.id)).scalar_one()
        answer = {"queued_id": queued_id, "job": job.name, "trading_date": trading_date.isoformat()}
        if also is not None:
            also(connection, answer)
    return answer


def queued_run(runtime: Runtime, queued_id: int) -> dict[str, Any]:
    """A queued run of the account: its status and, once run, its ledger run and outcome."""
    account, tz = Account.of(runtime.settings), runtime.settings.display_tz
    with runtime.session_factory()() as session:
        row = session.execute(
            select(QueuedRun, JobRun.outcome).outerjoin(JobRun, JobRun.id == QueuedRun.run_id)
            .where(QueuedRun.id == queued_id, QueuedRun.user_id == account.user_id,
                   QueuedRun.dry_run.is_(account.dry_run))).first()
    if row is None:
        raise QueuedRunNotFound(f"no queued run {queued_id} for {account.describe()}")
    queued, outcome = row
    return {"id": queued.id, "job": queued.job_name,
            "trading_date": queued.trading_date.isoformat() if queued.trading_date else None,
            "status": queued.status, "run_id": queued.run_id, "outcome": outcome,
            "requested_at": queued.requested_at.astimezone(tz).isoformat(), "requested_by": queued.requested_by,
            "finished_at": queued.finished_at.astimezone(tz).isoformat() if queued.finished_at else None}
