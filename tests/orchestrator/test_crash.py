"""Crash safety: each job's process is SIGKILLed at a random moment of its run; another
process takes the run over once its lease lapses, and the database ends as one clean
run leaves it: no duplicate, no half-written trading date, no order placed twice."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import create_engine, inspect, text

from services.common.database import create_db_engine
from services.orchestrator.replay import simulate
from tests.conftest import TEST_DATABASE_URL, _postgres_schema_url
from tests.orchestrator import crash_worker

ROOT = Path(__file__).resolve().parents[2]
DAY = "2026-11-19"  # a Thursday; the base holds the sessions before it
JOBS = ["data_collection", "indicator_calculation", "watchlist_update", "signal_generation",
        "position_monitoring", "risk_checks"]
SURROGATES = {"id", "order_id", "fill_id", "fill_key"}  # numbered by the database, not by the data
WHEN_WRITTEN = {"created_at", "updated_at", "calculated_at", "collected_at"}  # a recovered attempt runs later


def build_base(url: str, cache_dir: Path, first: date = date(2026, 11, 17)) -> None:
    """Replayed sessions from ``first`` to 11-18 of a 30-ticker market, with 80 sessions
    of history."""
    settings = crash_worker.crash_settings(url)
    simulation = simulate(replace(settings, cache_dir=str(cache_dir)), first, date(2026, 11, 18))
    assert simulation.failed == 0
    simulation.runtime.close()


def table_contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table but the ledger, as sorted rows, without the columns numbered by the
    database or stamped with the moment of writing."""
    engine = create_db_engine(url)
    contents = {}
    with engine.connect() as connection:
        for table in sorted(inspect(connection).get_table_names()):
            if table in ("job_runs", "alembic_version"):
                continue
            columns = [c["name"] for c in inspect(connection).get_columns(table) if c["name"] not in SURROGATES | WHEN_WRITTEN]
            rows = connection.execute(text(f"SELECT {', '.join(columns)} FROM {table}")).all()
            contents[table] = sorted((tuple(row) for row in rows), key=repr)
    engine.dispose()
    return contents


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory, calendar_cache_dir: Path) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("crash") / "base.db"
    os.environ.setdefault("ORCHESTRATOR_CACHE_DIR", str(calendar_cache_dir))
    build_base(f"sqlite:///{path}", calendar_cache_dir)
    yield path


def copy_of(base: Path, tmp_path: Path, name: str) -> str:
    target = tmp_path / f"{name}.db"
    shutil.copy(base, target)
    return f"sqlite:///{target}"


def clean_run(url: str, job: str, monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> float:
    """The day's fires up to ``job``'s, uninterrupted; returns how long ``job`` took."""
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(cache_dir))
    return crash_worker.main(url, DAY, job, "run")


def killed_run(url: str, job: str, cache_dir: Path, delay: float) -> int | None:
    """Run the day up to ``job`` in a process killed ``delay`` s after the job's fire
    starts; returns its exit status (-9 when the kill found it running)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "KIS_"))}
    env.update({"ORCHESTRATOR_CACHE_DIR": str(cache_dir), "LOG_LEVEL": "CRITICAL"})
    worker = subprocess.Popen([sys.executable, "-m", "tests.orchestrator.crash_worker", url, DAY, job, "run"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert worker.stdout is not None
        for line in worker.stdout:
            if line.strip() == "target":
                break
        time.sleep(delay)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=60)
    return worker.returncode


@pytest.mark.parametrize("job", JOBS)
def test_a_job_killed_at_a_random_moment_ends_as_one_clean_run(job, base_db, tmp_path, monkeypatch,
                                                               calendar_cache_dir):
    clean = copy_of(base_db, tmp_path, "clean")
    took = clean_run(clean, job, monkeypatch, calendar_cache_dir)
    crashed = copy_of(base_db, tmp_path, "crashed")
    delay = random.Random(job).uniform(0, took)  # somewhere in the job's own run
    assert killed_run(crashed, job, calendar_cache_dir, delay) == -signal.SIGKILL
    crash_worker.main(crashed, DAY, job, "recover")
    assert table_contents(crashed) == table_contents(clean)
    engine = create_db_engine(crashed)
    with engine.connect() as connection:
        attempts = connection.execute(text(
            "SELECT attempt, outcome, substr(coalesce(error, ''), 1, 10) FROM job_runs "
            "WHERE job_name = :job AND trading_date = :day ORDER BY attempt"), {"job": job, "day": DAY}).all()
    engine.dispose()
    # killed after its claim: taken over as attempt 2; killed before it: the re-run claimed it
    assert [tuple(a) for a in attempts] in ([(1, "failed", "abandoned:"), (2, "success", "")], [(1, "success", "")])


def test_orders_carry_an_idempotency_key_from_user_date_ticker_and_signal(base_db):
    engine = create_db_engine(f"sqlite:///{base_db}")
    with engine.connect() as connection:
        keys = connection.execute(text("SELECT client_order_id FROM orders")).scalars().all()
    engine.dispose()
    assert keys and all(key.split(":")[0] == "paper" and key.split(":")[1] == "default_user" for key in keys)
    assert len(keys) == len(set(keys))
    assert {key.split(":")[-1] for key in keys} <= {"entry", "exit", "intraday-exit"}


@pytest.fixture
def postgres_schemas() -> Iterator[Any]:
    """Throwaway PostgreSQL schemas, as many as asked for, dropped afterwards."""
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    admin = create_engine(TEST_DATABASE_URL)
    made: list[str] = []

    def new_schema() -> str:
        schema = f"crash_{uuid.uuid4().hex[:10]}"
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return _postgres_schema_url(TEST_DATABASE_URL, schema)

    yield new_schema
    with admin.begin() as connection:
        for schema in made:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_signal_generation_killed_on_postgresql_places_no_order_twice(postgres_schemas, monkeypatch,
                                                                      calendar_cache_dir):
    clean, crashed = postgres_schemas(), postgres_schemas()
    for url in (clean, crashed):
        build_base(url, calendar_cache_dir, first=date(2026, 11, 18))
    took = clean_run(clean, "signal_generation", monkeypatch, calendar_cache_dir)
    delay = random.Random("postgresql").uniform(0, took)
    assert killed_run(crashed, "signal_generation", calendar_cache_dir, delay) == -signal.SIGKILL
    crash_worker.main(crashed, DAY, "signal_generation", "recover")
    assert table_contents(crashed) == table_contents(clean)
