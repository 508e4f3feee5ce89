"""A backfill killed with SIGKILL at random points, then run again, leaves every
session complete and no duplicate row (a real subprocess, a real SQLite file)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, text

from services.common.clock import FixedClock
from services.data_collector.providers.simulated import SimulatedProvider

REPO = Path(__file__).resolve().parents[2]
START, END = date(2026, 8, 3), date(2026, 10, 30)


def _backfill(tmp_path: Path, cache_dir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_") and k != "DATABASE_URL"}
    env.update({"PYTHONPATH": str(REPO), "ORCHESTRATOR_CACHE_DIR": str(cache_dir),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'kill.db'}",
                "ORCHESTRATOR_SIMULATED_UNIVERSE": "300", "ORCHESTRATOR_SIMULATED_SEED": "11"})
    return subprocess.Popen(
        [sys.executable, "-m", "services.orchestrator.main", "backfill",
         "--start", START.isoformat(), "--end", END.isoformat()],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_backfill_killed_at_random_points_completes_without_duplicates(
    tmp_path: Path, calendar_cache_dir: Path, krx_calendar
) -> None:
    chance = random.Random(20261121)
    for _ in range(3):
        process = _backfill(tmp_path, calendar_cache_dir)
        time.sleep(chance.uniform(0.9, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    final = _backfill(tmp_path, calendar_cache_dir)
    assert final.wait(timeout=120) == 0

    sessions = [s.date for s in krx_calendar.sessions(START, END)]
    provider = SimulatedProvider(calendar=krx_calendar, seed=11, universe_size=300,
                                 clock=FixedClock(datetime(2026, 11, 21, tzinfo=timezone.utc)))
    engine = create_engine(f"sqlite:///{tmp_path / 'kill.db'}")
    with engine.connect() as connection:
        complete = {row[0] for row in connection.execute(text("SELECT date FROM collected_sessions"))}
        per_date = dict(connection.execute(text("SELECT date, count(*) FROM daily_prices GROUP BY date")).all())
        total, distinct = connection.execute(
            text("SELECT count(*), count(DISTINCT ticker || '/' || date) FROM daily_prices")).one()
    engine.dispose()
    assert complete == {day.isoformat() for day in sessions}
    assert total == distinct
    for day in sessions:
        assert per_date[day.isoformat()] == len(provider.fetch_session(day).prices), day
