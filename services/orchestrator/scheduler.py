"""The APScheduler setup for ``start``: one job per enabled, installed service.

Policies: coalesce missed fires into one, one instance per job, and no APScheduler
grace (its default is one second): lateness is judged by :class:`JobRunner` against
the market, and recorded as ``missed``.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from types import FrameType
from typing import Any, Sequence

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_SCHEDULER_STARTED,
    JobSubmissionEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from services.orchestrator.jobs import JobSpec
from services.orchestrator.runs import JobRunner

logger = logging.getLogger(__name__)

MAX_WORKERS = 4
#: Missed fires run once; never two runs of a job at once; lateness judged by JobRunner.
JOB_POLICY: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


def build_scheduler(runner: JobRunner, jobs: Sequence[JobSpec]) -> BlockingScheduler:
    """A blocking scheduler running ``jobs`` through ``runner``, not yet started."""
    scheduler = BlockingScheduler(
        timezone=runner.settings.tz,
        executors={"default": ThreadPoolExecutor(MAX_WORKERS)},
        job_defaults=JOB_POLICY,
    )
    for job in jobs:
        scheduler.add_job(
            runner.run_scheduled,
            trigger=runner.triggers[job.name],
            args=[job.name],
            id=job.name,
            name=job.name,
            replace_existing=True,
            **JOB_POLICY,
        )

    def on_overlap(event: JobSubmissionEvent) -> None:
        for fire_time in event.scheduled_run_times:
            runner.record_overlap(event.job_id, fire_time)

    scheduler.add_listener(on_overlap, EVENT_JOB_MAX_INSTANCES)
    return scheduler


def schedule_catch_up(scheduler: BlockingScheduler, runner: JobRunner, now: datetime) -> int:
    """Queue the downtime catch-up to run as soon as the scheduler starts."""
    if not runner.fires_missed_during_downtime(now):
        return 0
    scheduler.add_job(runner.catch_up_downtime, args=[now], id="catch_up_downtime",
                      name="catch up after downtime", replace_existing=True)
    return 1


class StopOnSignal:
    """SIGINT/SIGTERM handling for ``start``, installed before anything is printed.

    A signal before the scheduler runs means it never starts; a signal while it runs
    lets the running jobs finish (and record) before it stops.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._scheduler: BlockingScheduler | None = None
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested.is_set():
            return
        self.requested.set()
        logger.info("%s received: letting running jobs finish, then stopping",
                    signal.Signals(signum).name)
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def _on_started(self, _event: SchedulerEvent) -> None:
        if self.requested.is_set() and self._scheduler is not None:
            self._scheduler.shutdown(wait=True)

    def run(self, scheduler: BlockingScheduler) -> None:
        """Block in ``scheduler.start()`` until a signal; then restore the old handlers."""
        self._scheduler = scheduler
        scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)
        try:
            if not self.requested.is_set():
                scheduler.start()
        finally:
            self.restore()
        logger.info("scheduler stopped")

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run_until_signalled(scheduler: BlockingScheduler) -> None:
    """Block until SIGINT or SIGTERM; a running job finishes and is recorded first."""
    StopOnSignal().run(scheduler)
