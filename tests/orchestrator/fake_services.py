"""Job entry points for the runner's tests: each records that it ran."""

from __future__ import annotations

import os
import time

from services.common.job_api import JobContext, JobResult

CALLS: list[tuple[str, str]] = []


def succeed(ctx: JobContext) -> JobResult:
    CALLS.append((ctx.job_name, ctx.trading_date.isoformat()))
    return JobResult.success(rows=3, trading_date=ctx.trading_date.isoformat())


def explode(ctx: JobContext) -> JobResult:
    CALLS.append((ctx.job_name, ctx.trading_date.isoformat()))
    raise RuntimeError("provider answered 503")


def skip_input_missing(ctx: JobContext) -> JobResult:
    CALLS.append((ctx.job_name, ctx.trading_date.isoformat()))
    return JobResult.skipped("input missing: no data_collection for this date")


def return_garbage(ctx: JobContext) -> JobResult:
    CALLS.append((ctx.job_name, ctx.trading_date.isoformat()))
    return "done"  # type: ignore[return-value]


def slow(ctx: JobContext) -> JobResult:
    CALLS.append((ctx.job_name, ctx.trading_date.isoformat()))
    time.sleep(1.0)
    return JobResult.success(slept=1)


def hang(ctx: JobContext) -> JobResult:
    """Runs until killed (the crash tests SIGKILL its process)."""
    CALLS.append((ctx.job_name, ctx.trading_date.isoformat()))
    time.sleep(600)
    return JobResult.success()


def record_fire(ctx: JobContext) -> JobResult:
    """Appends the fire and the process to the file named by ``RACE_LOG``."""
    with open(os.environ["RACE_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{ctx.job_name} {ctx.scheduled_for.isoformat()} {os.getpid()}\n")
    return JobResult.success()


def interrupt(ctx: JobContext) -> JobResult:
    """As if the operator pressed Ctrl-C mid-job."""
    raise KeyboardInterrupt


ACCOUNTS: list[tuple[str, str, bool]] = []


def record_account(ctx: JobContext) -> JobResult:
    """Records whose account the run acted for (the context's, from its settings)."""
    CALLS.append((ctx.job_name, ctx.trading_date.isoformat()))
    ACCOUNTS.append((ctx.job_name, ctx.user_id, ctx.dry_run))
    return JobResult.success()
