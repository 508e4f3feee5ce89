"""The work of a first ``start`` without the scheduler, for the start-up benchmark's
baseline: a fresh interpreter imports the services, opens (and migrates) the database
the settings name, then runs the history catch-up's jobs directly, each for its latest
trading date as ``start`` would (data collection, indicators, watchlist): no CLI, no
scheduler, no run ledger. Logs ``done`` on stderr at the end.

    python -m scripts.benchkit.raw_start
"""

from __future__ import annotations

import logging
import sys

from services.common.clock import SystemClock
from services.common.database import create_db_engine, make_session_factory, migrate
from services.common.job_api import JobContext, Origin
from services.common.market_calendar import default_cache_dir, get_calendar
from services.common.settings import load_settings
from services.orchestrator.jobs import JOBS, build_triggers


def main() -> None:
    settings = load_settings({})
    calendar = get_calendar(settings.cache_dir or str(default_cache_dir()))
    triggers = build_triggers(settings, calendar)
    engine = create_db_engine(settings.database_url)
    migrate(engine)
    factory, clock = make_session_factory(engine), SystemClock()
    for job in JOBS:
        if not job.catch_up_on_start:
            continue
        latest = triggers[job.name].previous_fire_time(clock.now())
        assert latest is not None, job.name
        ctx = JobContext(job_name=job.name, trading_date=triggers[job.name].trading_date(latest),
                         scheduled_for=latest, settings=settings, session_factory=factory, clock=clock,
                         calendar=calendar, origin=Origin.CATCH_UP.value)
        result = job.load_entry_point()(ctx)
        assert result.status.value == "success", (job.name, result)
    engine.dispose()
    print("done", file=sys.stderr, flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
