"""Job entry points for the runner's races: each fire leaves a line to count."""

from __future__ import annotations

import os

from services.common.job_api import JobContext, JobResult


def record_fire(ctx: JobContext) -> JobResult:
    """Appends the fire and the process to the file named by ``RACE_LOG``."""
    with open(os.environ["RACE_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{ctx.job_name} {ctx.scheduled_for.isoformat()} {os.getpid()}\n")
    return JobResult.success()
