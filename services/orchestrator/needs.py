"""Declared dependencies: before a job runs, the upstream work it needs (the registry's
``needs``) is made present, each missing piece run first as its own ledger row.

For each need, the probe of the upstream job's output says whether its work for the
date is there (its data present, whoever wrote it: a ``backfill`` or a replay leaves
no row of that job). If it is not, the runner claims the upstream job's fire of that
date, the one its schedule gives it, so that the fire's own run (or another instance)
later finds it taken and the work is done once; a fire that has not come yet is run
now instead, under this moment, and its scheduled run still follows. The upstream run
meets its own needs the same way (signals -> watchlist -> indicators -> market data).

These runs are ``catch_up`` rows (``simulate`` ones in a replay, whose rows are all its
own), under the claim, overlap and lease rules of every run. A need still missing after
its run skips the job and says why, as the services did when they ran each other
("input missing: no watchlist for 2026-11-19 (watchlist_update run 12 skipped: input
missing: no indicators for ...)"); an upstream run the database failed fails the job
with that error (it says nothing of the input: a replay stops there and runs both again).

A runner's ``produce_upstream`` replaces how the missing work is made: a replay whose
market-data fires run ahead in a process of their own takes it from there
(:mod:`replay_ahead`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING

from services.common.job_api import JobContext, JobResult, Outcome
from services.common.settings import ConfigurationError
from services.orchestrator.jobs import JobSpec, Need
from services.orchestrator.leases import overlap_reason
from services.orchestrator.ledger import CATCH_UP, DATABASE_ERROR, RECOVERABLE_ORIGINS, SIMULATE, RunRecord, first_line
from services.orchestrator.triggers import SessionAnchoredTrigger

if TYPE_CHECKING:
    from services.orchestrator.runner import JobRunner

#: What the job gets for an unmet need: its result, and its error text when it failed.
Unmet = tuple[JobResult, str | None]


def meet_needs(runner: JobRunner, job: JobSpec, ctx: JobContext) -> Unmet | None:
    """Make every need of ``job`` for ``ctx.trading_date`` present, running the missing
    upstream work first; None when all are met, else what the job comes to."""
    for need in job.needs:
        unmet = _meet(runner, need, ctx)
        if unmet is not None:
            return unmet
    return None


def _meet(runner: JobRunner, need: Need, ctx: JobContext) -> Unmet | None:
    day = need.trading_date(runner.calendar, ctx.trading_date)
    if day is None:
        return JobResult.skipped(f"input missing: no session before {ctx.trading_date} in the calendar"), None
    upstream = runner.job(need.job)
    output = upstream.output
    if output is None:
        raise ConfigurationError(f"{ctx.job_name} needs {upstream.name}, which declares no output")

    def missing(why: str) -> Unmet:
        return JobResult.skipped(f"input missing: no {output.name} for {day} ({why})"), None

    if not upstream.service_available():
        return missing(f"{upstream.name}: service {upstream.service_module} is not installed in this build")
    upstream_ctx = replace(ctx, job_name=upstream.name, trading_date=day, run_id=None)
    if upstream.work_done(upstream_ctx):
        return None
    ctx.log.info("no %s for %s: running %s first", output.name, day, upstream.name)
    produce = runner.produce_upstream or produce_here
    produced = produce(runner, upstream, day, SIMULATE if ctx.origin == SIMULATE else CATCH_UP)
    if isinstance(produced, str):
        return missing(f"{upstream.name}: {produced}")
    if produced.outcome is Outcome.SUCCESS or upstream.work_done(upstream_ctx):
        return None
    run = f"{upstream.name} run {produced.run_id}"
    if (produced.error or "").startswith(DATABASE_ERROR):
        return JobResult(Outcome.FAILED), f"{produced.error} (in {run} for {day})"
    detail = produced.reason or first_line(produced.error or "")
    return missing(f"{run} {produced.outcome.value}" + (f": {detail}" if detail else ""))


def produce_here(runner: JobRunner, upstream: JobSpec, day: date, origin: str) -> RunRecord | str:
    """Claim and run ``upstream``'s work for ``day`` in this process: its record, or why
    it cannot run."""
    now = runner.clock.now()
    fire = upstream_fire(runner, upstream.name, day)
    at = fire if fire <= now else now
    if origin in RECOVERABLE_ORIGINS:  # never two runs of a scheduled job at once
        busy = runner.ledger.running_other(upstream.name, now)
        if busy is not None:
            return overlap_reason(busy, at, runner.settings.display_tz)
    run_id = runner.ledger.claim(upstream.name, at, trading_date=day, origin=origin)
    if run_id is None:  # the fire ran before and left its work missing (failed, skipped, lost): run it again
        latest = runner.ledger.latest_attempt(upstream.name, at)
        if latest is not None and latest.outcome == Outcome.RUNNING.value:
            return f"run {latest.id} is still running ({latest.host} pid {latest.pid})"
        attempt = (0 if latest is None else latest.attempt) + 1
        run_id = runner.ledger.claim(upstream.name, at, trading_date=day, origin=origin, attempt=attempt)
        if run_id is None:
            return f"attempt {attempt} was claimed by another run"
    return runner.run_claimed(upstream, at, day, origin, run_id=run_id)


def upstream_fire(runner: JobRunner, job_name: str, day: date) -> datetime:
    """The fire ``job_name``'s schedule gives trading date ``day``."""
    trigger = runner.triggers[job_name]
    session = runner.calendar.session(day)
    if not isinstance(trigger, SessionAnchoredTrigger) or session is None:
        raise ConfigurationError(f"{job_name} is needed for {day}, but has no fire of its own for that date; "
                                 "a job that others need runs once per session")
    return trigger.session_fires(session)[0].astimezone(trigger.timezone)
