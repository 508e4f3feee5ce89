"""One orchestrator process for the crash tests: runs a day's fires up to one job's,
through the real jobs and runner, on a fixed clock at each fire.

    python -m tests.orchestrator.crash_worker DATABASE_URL DAY JOB run|recover

``run`` prints ``target`` just before the job's fire runs (the test kills the process
at a random moment after it); run as a script, it then waits on its standard input, so
a kill that comes after the job has finished still finds it alive. ``recover`` runs the same fires again (those done are
left alone) and then, past the lease, takes over the killed run as the next attempt.
"""

from __future__ import annotations

import os
import sys
import time as time_module
from datetime import date, datetime, time, timedelta
from pathlib import Path

from services.common.clock import FixedClock
from services.common.database import create_db_engine, make_session_factory, migrate
from services.common.market_calendar import KRX_TZ, load_calendar
from services.orchestrator.jobs import JOBS, build_triggers
from services.orchestrator.replay import replay_fires
from services.orchestrator.runner import JobRunner
from tests.conftest import make_settings

LEASE_SECONDS = 5


def crash_settings(url: str):  # type: ignore[no-untyped-def]
    """A small market: 30 tickers, 80 sessions of history."""
    return make_settings(database_url=url, simulated_universe="30", bootstrap_sessions="80",
                         run_lease_seconds=str(LEASE_SECONDS))


def day_fires(runner: JobRunner, day: date, target: str) -> list:  # type: ignore[type-arg]
    """The day's fires up to the target's first one (risk checks only if targeted)."""
    jobs = [job for job in JOBS if job.name == target or job.name != "risk_checks"]
    fires = replay_fires(jobs, runner.triggers, datetime.combine(day, time(), KRX_TZ),
                         datetime.combine(day + timedelta(days=1), time(), KRX_TZ))
    end = next(index for index, fire in enumerate(fires) if fire.job == target)
    return fires[:end + 1]


def main(url: str, day_text: str, target: str, mode: str) -> float:
    """Returns how long the target's own run took (seconds)."""
    settings = crash_settings(url)
    engine = create_db_engine(url)
    migrate(engine)
    calendar = load_calendar(Path(os.environ["ORCHESTRATOR_CACHE_DIR"]))
    clock = FixedClock(datetime.combine(date.fromisoformat(day_text), time(), KRX_TZ))
    runner = JobRunner(settings=settings, session_factory=make_session_factory(engine), clock=clock,
                       calendar=calendar, triggers=build_triggers(settings, calendar))
    fires = day_fires(runner, date.fromisoformat(day_text), target)
    took = 0.0
    for fire in fires:
        clock.set(fire.at)
        if mode == "run" and fire is fires[-1]:
            print("target", flush=True)
        started = time_module.perf_counter()
        runner.run_fire(fire.job, fire.at)
        took = time_module.perf_counter() - started
    if mode == "recover":
        clock.set(fires[-1].at + timedelta(seconds=LEASE_SECONDS + 1))
        runner.recover_abandoned()
    runner.close()
    engine.dispose()
    return took


if __name__ == "__main__":
    main(*sys.argv[1:])
    if sys.argv[4] == "run":  # done before the kill came: wait for it, so it always finds a live process
        sys.stdin.readline()
