"""The APScheduler setup for ``start``: one job per enabled, installed service.

Policies: coalesce missed fires into one, one instance per job, and no APScheduler
grace (its default is one second): lateness is judged by :class:`JobRunner` against
the market, and recorded as ``missed``. The executor hands each run its scheduled
fire time, so a run that starts late is still recorded against the fire it belongs to.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from types import FrameType
from typing import Any

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_REMOVED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from services.common.alerts import Alert, raise_alert
from services.orchestrator.jobs import JobSpec
from services.orchestrator.queued_runs import POLL_SECONDS, run_queued
from services.orchestrator.runner import JobRunner

logger = logging.getLogger(__name__)

HOST = socket.gethostname()

MAX_WORKERS = 4
CATCH_UP_JOB = "catch_up"
RECOVERY_JOB = "recover_abandoned"  # not a job of the registry: looks after the ledger
QUEUED_RUNS_JOB = "queued_runs"  # not a job of the registry: runs the console's queued runs
#: Missed fires run once; never two runs of a job at once; lateness judged by JobRunner.
JOB_POLICY: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


class _WithFireTime:
    """A job seen by APScheduler's ``run_job`` whose function gets the fire time."""

    def __init__(self, job: Any, run_times: Sequence[datetime]) -> None:
        self._job = job
        times: Iterator[datetime] = iter(run_times)
        self.func: Callable[..., Any] = lambda *args, **kwargs: job.func(
            *args, fire_time=next(times), **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def __str__(self) -> str:
        return str(self._job)


class FireTimeExecutor(ThreadPoolExecutor):
    """APScheduler 3 calls jobs without their scheduled time; this passes it on, as
    ``fire_time=``, to the jobs named in ``fire_time_jobs``."""

    def __init__(self, max_workers: int, fire_time_jobs: set[str]) -> None:
        super().__init__(max_workers)
        self.fire_time_jobs = fire_time_jobs

    def _do_submit_job(self, job: Any, run_times: Sequence[datetime]) -> None:
        if job.id in self.fire_time_jobs:
            job = _WithFireTime(job, run_times)
        super()._do_submit_job(job, run_times)


class StoppableScheduler(BlockingScheduler):
    """A blocking scheduler that leaves its loop for a stop requested while it was
    handing a job to the executor: APScheduler swallows (and logs) any exception raised
    there, the signal handler's included, and would then sleep until the next fire."""

    stop_requested: Callable[[], str | None] = staticmethod(lambda: None)

    def _process_jobs(self) -> float | None:
        wait_seconds: float | None = super()._process_jobs()
        stop = self.stop_requested()
        if stop is not None:
            raise _StopRequested(stop)
        return wait_seconds


def build_scheduler(runner: JobRunner, jobs: Sequence[JobSpec], now: datetime | None = None) -> BlockingScheduler:
    """A blocking scheduler running ``jobs`` through ``runner``, not yet started.

    With ``now``, each job's first fire is the first one at or after ``now`` (so no fire
    falls between a downtime catch-up computed at ``now`` and the scheduler's start).
    """
    scheduler = StoppableScheduler(
        timezone=runner.settings.tz,
        executors={"default": FireTimeExecutor(MAX_WORKERS, {job.name for job in jobs})},
        job_defaults=JOB_POLICY,
    )
    for job in jobs:
        trigger = runner.triggers[job.name]
        extra = {} if now is None else {"next_run_time": trigger.get_next_fire_time(None, now)}
        scheduler.add_job(
            runner.run_scheduled,
            trigger=trigger,
            args=[job.name],
            id=job.name,
            name=job.name,
            replace_existing=True,
            **JOB_POLICY,
            **extra,
        )

    def on_overlap(event: JobSubmissionEvent) -> None:
        if event.job_id not in runner.triggers:
            return  # the recovery sweep: the next one comes soon
        for fire_time in event.scheduled_run_times:
            runner.record_overlap(event.job_id, fire_time)

    def on_removed(event: JobEvent) -> None:
        if event.job_id in runner.triggers:
            logger.error(
                "%s has no more fire times: the KRX calendar data ends on %s; update the "
                "calendar (services/common/krx_calendar_overrides.csv) and restart",
                event.job_id, runner.calendar.last_date)

    scheduler.add_listener(on_overlap, EVENT_JOB_MAX_INSTANCES)
    scheduler.add_listener(on_removed, EVENT_JOB_REMOVED)
    scheduler.add_job(runner.recover_abandoned, IntervalTrigger(seconds=runner.settings.run_lease_seconds),
                      id=RECOVERY_JOB, name="recover runs whose holder died", replace_existing=True,
                      **({} if now is None else {"next_run_time": now}), **JOB_POLICY)
    return scheduler


def schedule_queued_runs(scheduler: BlockingScheduler, runner: JobRunner) -> None:
    """Poll the console's queued runs (``queued_runs``) every ``POLL_SECONDS`` in the
    scheduler's executor, one poll at a time, running each one claimed."""
    scheduler.add_job(run_queued, IntervalTrigger(seconds=POLL_SECONDS), args=[runner], id=QUEUED_RUNS_JOB,
                      name="run the console's queued runs", replace_existing=True, **JOB_POLICY)


def schedule_catch_up(scheduler: BlockingScheduler, runner: JobRunner, now: datetime,
                      on_ready: Callable[[], None] = lambda: None) -> bool:
    """Queue, to run as soon as the scheduler starts, one after the other: the fires
    missed while the orchestrator was down, then the history catch-up of the jobs that
    keep one; then one "ready" line with the next fire, and ``on_ready()``. False (and
    the "ready" line and ``on_ready()`` at once) when there is nothing to catch up."""
    downtime = bool(runner.fires_missed_during_downtime(now))
    history = any(runner.job(name).catch_up_on_start for name in runner.scheduled_jobs())

    def catch_up() -> None:
        if downtime:
            runner.catch_up_downtime(now)
        if history and not runner.stop_requested():
            runner.catch_up_on_start(now)
        log_ready(runner)
        on_ready()

    if not (downtime or history):
        log_ready(runner)
        on_ready()
        return False
    scheduler.add_job(catch_up, id=CATCH_UP_JOB, name="catch up", replace_existing=True, next_run_time=now)
    return True


def log_ready(runner: JobRunner) -> None:
    """One line: the scheduler is ready, and which job fires next, when; and the
    incident ``instance_started`` for the channels."""
    now = runner.clock.now()
    upcoming = [(fire, name) for name in runner.scheduled_jobs()
                if (fire := runner.triggers[name].get_next_fire_time(None, now)) is not None]
    if not upcoming:
        logger.info("ready: no job is scheduled")
    else:
        fire, name = min(upcoming)
        logger.info("ready: next fire %s at %s", name, fire.isoformat(timespec="minutes"))
    account = runner.account
    raise_alert(logger, Alert("instance_started", f"the scheduler of {account.describe()} started on {HOST}", {
        "user_id": account.user_id, "dry_run": account.dry_run, "host": HOST,
        "next_job": min(upcoming)[1] if upcoming else None, "next_fire": min(upcoming)[0] if upcoming else None}))


def announce_stop(runner: JobRunner, reason: str) -> None:
    """The incident ``instance_stopped`` for the channels."""
    account = runner.account
    raise_alert(logger, Alert("instance_stopped", f"the scheduler of {account.describe()} on {HOST} stopped "
                              f"({reason})", {"user_id": account.user_id, "dry_run": account.dry_run,
                                              "host": HOST, "reason": reason}))


class _StopRequested(BaseException):
    """Raised in the main thread by the first SIGINT/SIGTERM to leave ``start()``."""


def _not_a_stop(record: logging.LogRecord) -> bool:
    """Drops APScheduler's 'Error submitting job' for a stop it swallowed (it is no error:
    :class:`StoppableScheduler` stops right after)."""
    return not (record.exc_info and isinstance(record.exc_info[1], _StopRequested))


class StopOnSignal:
    """SIGINT/SIGTERM handling for ``start``, installed before anything is printed.

    The handler does no work and takes no lock: it raises in the main thread, which
    leaves the scheduler loop; shutting down (letting running jobs finish and record)
    then happens in ordinary code. A second signal stops at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._in_loop = False
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt  # second signal: stop without waiting
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        if self._in_loop:
            raise _StopRequested(signal.Signals(signum).name)
        # before the loop: ``run`` sees the flag and never starts

    def run(self, scheduler: BlockingScheduler, on_stop: Callable[[], None] = lambda: None) -> None:
        """Block in ``scheduler.start()`` until a signal, then let running jobs finish."""
        if isinstance(scheduler, StoppableScheduler):
            scheduler.stop_requested = lambda: self.signal_name
        apscheduler_log = logging.getLogger("apscheduler.scheduler")
        apscheduler_log.addFilter(_not_a_stop)
        try:
            self._in_loop = True
            if not self.requested:
                scheduler.start()
        except _StopRequested as stop:
            logger.info("%s received: letting running jobs finish, then stopping", stop)
        finally:
            self._in_loop = False
            apscheduler_log.removeFilter(_not_a_stop)
            on_stop()
            if scheduler.running:
                scheduler.shutdown(wait=True)
            self.restore()
        logger.info("scheduler stopped")

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
