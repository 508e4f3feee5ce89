"""One orchestrator instance for the race and crash tests (and the benchmark): runs the
given job's fires in a window through the real runner, on the real clock's behalf.

    python -m tests.orchestrator.race_worker DATABASE_URL JOB ENTRY START END [LEASE_SECONDS]

ENTRY names a function of tests/orchestrator/fake_services.py; START and END are ISO
times (Asia/Seoul). Prints the seconds it spent per fire on its last line.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from services.common.clock import FixedClock
from services.common.database import create_db_engine, make_session_factory, migrate
from services.common.market_calendar import load_calendar
from services.orchestrator.jobs import build_triggers
from services.orchestrator.runs import JobRunner
from tests.conftest import make_settings
from tests.orchestrator.test_runs import registry_with

KST = ZoneInfo("Asia/Seoul")


def main(url: str, job: str, entry: str, start: str, end: str, lease: str = "60") -> None:
    settings = make_settings(database_url=url, run_lease_seconds=lease)
    engine = create_db_engine(url)
    migrate(engine)
    cache = os.environ.get("ORCHESTRATOR_CACHE_DIR")
    calendar = load_calendar(Path(cache) if cache else None)
    triggers = build_triggers(settings, calendar)
    fires = triggers[job].fire_times(datetime.fromisoformat(start).replace(tzinfo=KST),
                                     datetime.fromisoformat(end).replace(tzinfo=KST))
    clock = FixedClock(fires[0])
    runner = JobRunner(settings=settings, session_factory=make_session_factory(engine), clock=clock,
                       calendar=calendar, triggers=triggers, jobs=registry_with(**{job: entry}))
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
