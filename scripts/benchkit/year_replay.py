"""One year replay, timed, for ``scripts/benchmark.py``: run with ``PYTHONPATH`` set to
the checkout to measure (this one, or the baseline revision's worktree), so both run
the same way. Prints one JSON line: seconds, fires, sessions and each job's share.

    python scripts/benchkit/year_replay.py DATABASE_PATH CACHE_DIR UNIVERSE START END
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date


def main() -> None:
    from scripts.benchkit.fixtures import make_settings
    from services.orchestrator.replay import simulate

    database, cache_dir, universe, start, end = sys.argv[1:6]
    settings = make_settings(database_url=f"sqlite:///{database}", cache_dir=cache_dir,
                             simulated_universe=universe)
    per_job: dict[str, float] = {}
    fires: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    last = [0.0]

    def clock_fire(fire, record) -> None:  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        per_job[fire.job] = per_job.get(fire.job, 0.0) + now - last[0]
        fires[fire.job] = fires.get(fire.job, 0) + 1
        if record is not None:
            key = f"{fire.job}:{record.outcome.value}"
            outcomes[key] = outcomes.get(key, 0) + 1
        last[0] = now

    started = last[0] = time.perf_counter()
    simulation = simulate(settings, date.fromisoformat(start), date.fromisoformat(end), on_fire=clock_fire)
    seconds = time.perf_counter() - started
    sessions = len(simulation.runtime.calendar.sessions(date.fromisoformat(start), date.fromisoformat(end)))
    simulation.runtime.close()
    print(json.dumps({"seconds": seconds, "fires": len(simulation.fires), "sessions": sessions,
                      "failed": simulation.failed, "per_job": per_job, "fires_by_job": fires,
                      "outcomes": outcomes,
                      "ran_ahead": getattr(simulation, "ran_ahead", False)}))  # the baseline's has no such field


if __name__ == "__main__":
    main()
