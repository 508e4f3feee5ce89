"""The console as ``start`` serves it, beside an APScheduler scheduler whose probe job
measures its own fire lateness: the server half of the ``api-load`` benchmark.

    python -m scripts.benchkit.console_under_load

Settings come from the environment only (``DATABASE_URL``, ``ORCHESTRATOR_*``; no
.env file). Prints the console's URL on stdout once it serves; then reads commands
from stdin: ``stop`` (or end of input) stops the scheduler and the server and prints,
on one line, the probe's samples as JSON: ``[[wall time (s), lateness (ms)], ...]``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from services.common.settings import load_settings
from services.orchestrator.api.serving import ConsoleServer
from services.orchestrator.scheduler import JOB_POLICY, MAX_WORKERS, FireTimeExecutor

PROBE_JOB = "lateness_probe"
PROBE_SECONDS = 0.1


def main() -> int:
    settings = load_settings({}, env_file=Path("/nonexistent/.env"))
    samples: list[tuple[float, float]] = []
    lock = threading.Lock()

    def probe(fire_time: datetime | None = None) -> None:  # the executor passes fire_time
        now = datetime.now(UTC)
        assert fire_time is not None
        with lock:
            samples.append((time.time(), (now - fire_time).total_seconds() * 1000))

    scheduler = BackgroundScheduler(timezone=settings.tz, job_defaults=JOB_POLICY,
                                    executors={"default": FireTimeExecutor(MAX_WORKERS, {PROBE_JOB})})
    scheduler.add_job(probe, IntervalTrigger(seconds=PROBE_SECONDS), id=PROBE_JOB, name=PROBE_JOB, **JOB_POLICY)
    server = ConsoleServer.bind(settings)
    server.start_in_background()
    scheduler.start()
    try:
        print(server.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "stop":
                break
    finally:
        scheduler.shutdown(wait=True)
        server.stop()
    with lock:
        print(json.dumps(samples), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
