"""Leases and recovery: a running job's claim is kept alive by a heartbeat, and a claim
whose holder died is taken over.

The claim carries a lease (``lease_until``) that the holder renews while the job
runs. When a holder dies, its lease lapses: another instance records that run
``failed`` (abandoned) and, while the fire is still inside its deadline, runs it
again as the next attempt. Every job's writes are idempotent, so a second attempt
completes what the first left, without duplicates.

Each instance recovers its own account's runs only. Another account's lapsed run waits
for an instance of its own; this one only reports it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from services.common.alerts import Alert, raise_alert
from services.common.database import database_error_line
from services.common.job_api import Account
from services.orchestrator.ledger import RECOVERABLE_ORIGINS, RECOVERY, RunLedger, RunRecord

if TYPE_CHECKING:
    from services.orchestrator.runner import JobRunner

logger = logging.getLogger(__name__)


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


class Recovery:
    """The recovery sweep of one runner: takes over its account's runs whose holder
    died, and reports (once each) other accounts' runs left waiting."""

    def __init__(self, runner: JobRunner) -> None:
        self._runner = runner
        self._reported_elsewhere: set[int] = set()  # other accounts' lapsed runs, alerted once

    def expire_dead_runs(self) -> int:
        """Runs of this host left ``running`` by a process that no longer exists (a crash
        or SIGKILL mid-job) are handed to the next recovery sweep."""
        return self._runner.ledger.expire_dead_runs()

    def sweep(self) -> list[RunRecord]:
        """This account's runs whose holder stopped renewing its lease (any host) are
        recorded ``failed: abandoned``; a fire still inside its deadline runs again as
        the next attempt. Every instance of the account calls this; each lapsed run is
        recovered by one. Other accounts' lapsed runs are left to their own instances,
        and alerted once."""
        runner = self._runner
        now = runner.clock.now()
        try:
            lapsed = runner.ledger.lapsed(now)
            self._report_lapsed_elsewhere(runner.ledger.lapsed_elsewhere(now))
        except SQLAlchemyError as exc:
            logger.warning("could not look for abandoned runs (database error: %s); trying again next sweep",
                           database_error_line(exc))
            return []
        records = []
        for row in lapsed:
            if runner.heartbeat.holds(row.id):
                continue  # ours and alive: the renewal is late, not the run dead
            try:
                record = self._take_over(row, runner.clock.now())  # an earlier row's re-run took time
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
                f"of that account; this instance acts for {self._runner.account.describe()} only"), {
                    "job": row.job_name, "trading_date": row.trading_date and row.trading_date.isoformat(),
                    "scheduled_for": row.scheduled_for, "run_id": row.id, "user_id": row.user_id,
                    "dry_run": row.dry_run, "reason": "waits for an instance of its own account"}))

    def _take_over(self, row: Any, now: datetime) -> RunRecord | None:
        """Record one lapsed run abandoned; run its fire again if it is still worth it
        (a manual run is for its operator to repeat; a disabled job stays off)."""
        runner = self._runner
        error = (f"abandoned: the lease of {row.host} pid {row.pid} lapsed at "
                 f"{row.lease_until.astimezone(runner.settings.display_tz).isoformat(timespec='seconds')}")
        rerun = (row.origin in RECOVERABLE_ORIGINS and row.job_name in runner.scheduled_jobs()
                 and now <= runner.deadline(row.job_name, row.scheduled_for))
        busy = runner.ledger.running_other(row.job_name, now, exclude=row.id) if rerun else None
        if busy is not None:  # never two at once: the next sweep looks again, until the deadline
            logger.info("%s %s: lapsed run %s left for a later sweep: %s", row.job_name, row.trading_date, row.id,
                        overlap_reason(busy, row.scheduled_for, runner.settings.display_tz))
            return None
        run_id = runner.ledger.take_over(row.id, now, error, rerun=row if rerun else None)
        if run_id is None:
            return None  # renewed, finished, or taken over by another instance meanwhile
        raise_alert(logger, Alert("run_failed", f"{row.job_name} {row.trading_date} failed: {error}", {
            "job": row.job_name, "trading_date": row.trading_date and row.trading_date.isoformat(),
            "scheduled_for": row.scheduled_for, "run_id": row.id, "user_id": row.user_id,
            "attempt": row.attempt, "error": error}))
        if not run_id:
            return None
        return runner.run_claimed(runner.job(row.job_name), row.scheduled_for, row.trading_date, RECOVERY,
                                  run_id=run_id)


def overlap_reason(busy: Any, fire_time: datetime, tz: Any) -> str:
    """Why a fire waits or is skipped while ``busy`` (a ledger row) runs the same job."""
    which = "previous" if busy.scheduled_for <= fire_time else "another"
    return (f"{which} run still running (run {busy.id}, fire {busy.scheduled_for.astimezone(tz).isoformat()}, "
            f"{busy.host} pid {busy.pid})")
