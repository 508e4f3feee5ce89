"""One orchestrator instance in its own process: runs one job's fires in a window
through the real runner, the clock set to each fire in turn, with the job's service
replaced by the entry point given.

    python -m scripts.benchkit.race_worker DATABASE_URL JOB MODULE:FUNCTION START END [LEASE_SECONDS]

START and END are ISO times (Asia/Seoul). Prints ``ready`` once set up, and the
seconds it spent per fire on its last line. Several of them racing over the same
fires must run each fire exactly once.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from scripts.benchkit.fixtures import make_settings
from services.common.clock import FixedClock
from services.common.database import create_db_engine, make_session_factory, migrate
from services.common.market_calendar import KRX_TZ, load_calendar
from services.orchestrator.jobs import REGISTRY, build_triggers
from services.orchestrator.runner import JobRunner


def main(url: str, job: str, entry_point: str, start: str, end: str, lease: str = "60") -> None:
    settings = make_settings(database_url=url, run_lease_seconds=lease)
    engine = create_db_engine(url)
    migrate(engine)
    cache = os.environ.get("ORCHESTRATOR_CACHE_DIR")
    calendar = load_calendar(Path(cache) if cache else None)
    triggers = build_triggers(settings, calendar)
    fires = triggers[job].fire_times(datetime.fromisoformat(start).replace(tzinfo=KRX_TZ),
                                     datetime.fromisoformat(end).replace(tzinfo=KRX_TZ))
    clock = FixedClock(fires[0])
    runner = JobRunner(settings=settings, session_factory=make_session_factory(engine), clock=clock,
                       calendar=calendar, triggers=triggers,
                       jobs={**REGISTRY, job: replace(REGISTRY[job], entry_point=entry_point, state=None)})
    print("ready", flush=True)
    started = time.perf_counter()
    for fire in fires:
        clock.set(fire)
        runner.run_fire(job, fire)
    print(f"{(time.perf_counter() - started) / len(fires):.6f}", flush=True)
    runner.close()
    engine.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:])
