"""Starting the scheduler: preflight checks, the recovery of dead runs, the schedule
in force, then the scheduler loop until a stop signal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.common.settings import Settings
from services.orchestrator import reports
from services.orchestrator.jobs import JobSpec
from services.orchestrator.ledger import first_line
from services.orchestrator.ops.status import current_halt
from services.orchestrator.runtime import Runtime
from services.orchestrator.scheduler import (
    StopOnSignal,
    announce_stop,
    build_scheduler,
    schedule_catch_up,
    schedule_queued_runs,
)

if TYPE_CHECKING:
    from services.orchestrator.runner import JobRunner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    state: str  # scheduled, disabled or not installed
    next_fire: datetime | None
    schedule: str  # in words


@dataclass(frozen=True)
class Startup:
    """A scheduler ready to run: the jobs it schedules, and what it starts with."""

    runtime: Runtime
    runner: JobRunner
    jobs: list[JobSpec]
    now: datetime
    schedule: list[ScheduledJob]  # every registry job
    halt: dict[str, Any] | None  # the account's last halt (reports.halt_view)


def warn_live(settings: Settings) -> None:
    """A warning that orders go to a real KIS account."""
    logger.warning("!" * 72)
    logger.warning("LIVE TRADING (--no-dry-run): orders go to the KIS %s account at %s",
                   settings.kis_environment.upper(), settings.kis_host)
    logger.warning("!" * 72)


def note_paper_quotes(settings: Settings) -> None:
    """A line saying that dry run reads KIS's quotes (``auto`` does when the keys are set)."""
    from services.trading_engine.broker import paper_pricing
    from services.trading_engine.paper import Pricing

    if paper_pricing(settings) is Pricing.LIVE_QUOTES:
        logger.info("dry run prices its ticks from KIS quotes at %s (read only; orders stay paper; "
                    "ORCHESTRATOR_PAPER_QUOTES=off for daily bars only)", settings.kis_host)


def start_up(runtime: Runtime) -> Startup:
    """Check every job that will be scheduled, and hand the runs a dead process left
    unfinished to the recovery sweep."""
    settings = runtime.settings
    jobs = [job for job in runtime.enabled_jobs if job.service_available()]
    for job in jobs:  # before the database is opened: a refused start creates nothing
        job.run_preflight(settings, runtime.clock, runtime.calendar)
    runner = runtime.runner()
    abandoned = runner.expire_dead_runs()
    if abandoned:
        logger.warning("%d runs left unfinished by a dead process go to the recovery sweep", abandoned)
    now = runtime.clock.now()
    if not settings.dry_run:
        warn_live(settings)
    else:
        note_paper_quotes(settings)
    scheduled = {job.name for job in jobs}
    schedule = [ScheduledJob(
        s.name, "scheduled" if s.name in scheduled else ("disabled" if not s.enabled else "not installed"),
        s.next_fires[0] if s.next_fires else None, s.schedule,
    ) for s in reports.job_statuses(runtime.all_jobs, settings, runtime.triggers, now, {})]
    return Startup(runtime, runner, jobs, now, schedule, current_halt(runtime))


def run_scheduler(startup: Startup, stop: StopOnSignal, on_ready: Callable[[], None] = lambda: None) -> None:
    """Run the jobs on their schedules, after catching up on what was missed, until
    ``stop`` has a signal; then put the signal handlers back and close the runner.
    ``on_ready()`` is called once the catch-up is done (after the "ready" line). While
    the scheduler runs, its heartbeat says so (``scheduler_heartbeats``, ``/ready``), and
    it runs the console's queued runs of its account (``queued_runs``)."""
    from services.common.job_api import Account
    from services.orchestrator.heartbeats import SchedulerBeat

    runner, now = startup.runner, startup.now
    beat: SchedulerBeat | None = None
    ended = "stopped"
    try:
        runner.check_calendar(now)
        scheduler = build_scheduler(runner, startup.jobs, now)
        schedule_queued_runs(scheduler, runner)  # the console's POST /api/jobs/{name}/run
        if schedule_catch_up(scheduler, runner, now, on_ready):
            logger.info("catching up: fires missed while down, and missing history")
        beat = SchedulerBeat(startup.runtime.session_factory(), runner.clock, Account.of(runner.settings))
        beat.start()
        stop.run(scheduler, on_stop=runner.request_stop)
    except Exception as exc:
        ended = f"failed: {type(exc).__name__}: {first_line(str(exc))}"
        raise
    finally:
        if beat is not None:
            beat.stop()
        stop.restore()
        announce_stop(runner, stop.signal_name or ended)
        runner.close()
