"""Job entry points for the runner's tests: each records that it ran."""

from __future__ import annotations

import time

from scripts.benchkit.jobs import record_fire as record_fire  # an entry point of the race tests
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


def interrupt(ctx: JobContext) -> JobResult:
    """As if the operator pressed Ctrl-C mid-job."""
    raise KeyboardInterrupt


ACCOUNTS: list[tuple[str, str, bool]] = []


def record_account(ctx: JobContext) -> JobResult:
    """Records whose account the run acted for (the context's, from its settings)."""
    CALLS.append((ctx.job_name, ctx.trading_date.isoformat()))
    ACCOUNTS.append((ctx.job_name, ctx.account.user_id, ctx.account.dry_run))
    return JobResult.success()


#: (job, trading date) whose work is present, as the probe ``present`` sees it
DONE: set[tuple[str, str]] = set()


def produce(ctx: JobContext) -> JobResult:
    """Does the job's work: its probe finds it present from now on."""
    CALLS.append((ctx.job_name, ctx.trading_date.isoformat()))
    DONE.add((ctx.job_name, ctx.trading_date.isoformat()))
    return JobResult.success()


def present(ctx: JobContext) -> bool:
    """The probe of the fake jobs: whether ``produce`` (or the test) did the work."""
    return (ctx.job_name, ctx.trading_date.isoformat()) in DONE


def database_refuses(ctx: JobContext) -> JobResult:
    from sqlalchemy.exc import OperationalError

    CALLS.append((ctx.job_name, ctx.trading_date.isoformat()))
    raise OperationalError("INSERT INTO daily_prices", None, Exception("database is locked"))
