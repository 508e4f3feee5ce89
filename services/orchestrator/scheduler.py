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
from typing import Sequence

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from services.orchestrator.jobs import JobSpec
from services.orchestrator.runs import JobRunner

logger = logging.getLogger(__name__)

MAX_WORKERS = 4


def build_scheduler(runner: JobRunner, jobs: Sequence[JobSpec]) -> BlockingScheduler:
    """A blocking scheduler running ``jobs`` through ``runner``, not yet started."""
    scheduler = BlockingScheduler(
        timezone=runner.settings.tz,
        executors={"default": ThreadPoolExecutor(MAX_WORKERS)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    for job in jobs:
        scheduler.add_job(
            runner.run_scheduled,
            trigger=runner.triggers[job.name],
            args=[job.name],
            id=job.name,
            name=job.name,
            replace_existing=True,
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


def run_until_signalled(scheduler: BlockingScheduler) -> None:
    """Block until SIGINT or SIGTERM; a running job finishes and is recorded first."""
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        logger.info("%s received: letting running jobs finish, then stopping",
                    signal.Signals(signum).name)
        scheduler.shutdown(wait=True)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        scheduler.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("scheduler stopped")
