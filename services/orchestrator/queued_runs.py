"""Job runs queued by the console (``POST /api/jobs/{name}/run``), run by a scheduler.

The REST API checks a run like ``run-job`` and writes it to ``queued_runs`` (status
``queued``). Every running scheduler (``start``) polls the table every
``POLL_SECONDS`` from an APScheduler job of its own (so in its job executor, one poll
at a time), claims each queued run of its own account with a conditional update (only
one scheduler wins a row), runs it through :meth:`JobRunner.run_now` (origin manual,
in the run ledger like ``run-job``) and stores how it ended: ``done`` (it ran: success
or skipped), ``failed`` (it failed, or could not run), with its ledger ``run_id``. A
queued run of a job whose scheduled run is running (on any instance) waits for it.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from services.common.database import database_error_line
from services.common.job_api import Outcome
from services.common.market_calendar import KRX_TZ
from services.orchestrator.ledger import first_line
from services.orchestrator.models import QueuedRun
from services.orchestrator.runner import JobRunner

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATUSES = (QUEUED, RUNNING, DONE, FAILED)


def run_queued(runner: JobRunner) -> int:
    """Claim and run the queued runs of ``runner``'s account, oldest first, one after the
    other; the number run. A database error is logged, and the next poll tries again."""
    ran = 0
    try:
        for row in _queued(runner):
            if runner.stop_requested():
                break
            if runner.ledger.running_other(row.job_name, runner.clock.now()) is not None:
                continue  # a scheduled run of the job holds it: after that one
            if _claim(runner, row.id):
                _run(runner, row)
                ran += 1
    except SQLAlchemyError as exc:
        logger.warning("could not read the queued runs (database error: %s)", database_error_line(exc))
    return ran


def _mine(runner: JobRunner) -> Any:
    return (QueuedRun.user_id == runner.account.user_id) & QueuedRun.dry_run.is_(runner.account.dry_run)


def _queued(runner: JobRunner) -> list[Any]:
    with runner.session_factory() as session:
        return list(session.execute(
            select(QueuedRun.id, QueuedRun.job_name, QueuedRun.trading_date)
            .where(_mine(runner), QueuedRun.status == QUEUED).order_by(QueuedRun.id)))


def _claim(runner: JobRunner, queued_id: int) -> bool:
    """True if this scheduler took the row from ``queued`` to ``running`` (another one
    may have taken it first)."""
    with runner.session_factory.begin() as session:
        result = session.execute(update(QueuedRun).where(QueuedRun.id == queued_id, QueuedRun.status == QUEUED)
                                 .values(status=RUNNING).execution_options(synchronize_session=False))
        return bool(getattr(result, "rowcount", 0) == 1)


def _trading_date(runner: JobRunner, job_name: str) -> date:
    """The trading date of the job's latest fire (as ``run-job`` without ``--date``)."""
    now = runner.clock.now()
    trigger = runner.triggers[runner.job(job_name).name]
    latest = trigger.previous_fire_time(now)
    return trigger.trading_date(latest) if latest else now.astimezone(KRX_TZ).date()


def _run(runner: JobRunner, row: Any) -> None:
    status, run_id = FAILED, None
    logger.info("running %s, queued from the console (queued run %d)", row.job_name, row.id)
    try:
        record = runner.run_now(row.job_name, row.trading_date or _trading_date(runner, row.job_name))
        status = FAILED if record.outcome is Outcome.FAILED else DONE
        run_id = record.run_id
    except Exception as exc:  # could not run (the ledger unreachable, a job no longer known): failed
        logger.error("queued run %d (%s) could not run: %s", row.id, row.job_name,
                     first_line(str(exc)) or type(exc).__name__)
    finally:
        with runner.session_factory.begin() as session:
            session.execute(update(QueuedRun).where(QueuedRun.id == row.id).values(
                status=status, run_id=run_id, finished_at=runner.clock.now())
                .execution_options(synchronize_session=False))
