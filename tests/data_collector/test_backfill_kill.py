"""A backfill killed with SIGKILL at random points, then run again, leaves every
session complete and no duplicate row (a real subprocess, a real SQLite file)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from services.common.clock import FixedClock
from services.data_collector.providers.simulated import SimulatedProvider

REPO = Path(__file__).resolve().parents[2]
START, END = date(2026, 1, 2), date(2026, 10, 30)  # ~200 sessions: long enough to be killed mid-way


def _backfill(tmp_path: Path, cache_dir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_") and k != "DATABASE_URL"}
    env.update({"PYTHONPATH": str(REPO), "ORCHESTRATOR_CACHE_DIR": str(cache_dir),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'kill.db'}",
                "ORCHESTRATOR_SIMULATED_UNIVERSE": "300", "ORCHESTRATOR_SIMULATED_SEED": "11"})
    return subprocess.Popen(
        [sys.executable, "-m", "services.orchestrator.main", "backfill",
         "--start", START.isoformat(), "--end", END.isoformat()],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _complete(tmp_path: Path) -> int:
    import sqlite3

    database = tmp_path / "kill.db"
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(database, timeout=5) as connection:
            return connection.execute("SELECT count(*) FROM collected_sessions").fetchone()[0]
    except sqlite3.OperationalError:  # not migrated yet
        return 0


def _wait_for_progress(tmp_path: Path, before: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _complete(tmp_path) > before:
            return
        time.sleep(0.02)
    raise AssertionError("the backfill made no progress")


def test_a_backfill_killed_at_random_points_completes_without_duplicates(
    tmp_path: Path, calendar_cache_dir: Path, krx_calendar
) -> None:
    chance = random.Random(20261121)
    sessions = [s.date for s in krx_calendar.sessions(START, END)]
    interrupted = 0
    for _ in range(3):
        before = _complete(tmp_path)
        if before == len(sessions):
            break
        process = _backfill(tmp_path, calendar_cache_dir)
        _wait_for_progress(tmp_path, before, timeout=60)  # it is writing: now kill it at a random point
        time.sleep(chance.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        interrupted += 0 < _complete(tmp_path) < len(sessions)
    assert interrupted >= 1  # at least one kill landed mid-backfill
    final = _backfill(tmp_path, calendar_cache_dir)
    assert final.wait(timeout=120) == 0

    provider = SimulatedProvider(calendar=krx_calendar, seed=11, universe_size=300,
                                 clock=FixedClock(datetime(2026, 11, 21, tzinfo=UTC)))
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
