"""Crash safety: each job's process is SIGKILLed at a random moment of its run; another
process takes the run over once its lease lapses, and the database ends as one clean
run leaves it: no duplicate, no half-written trading date, no order placed twice. Every
job on SQLite and on PostgreSQL (copies of one base database)."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from services.common.database import create_db_engine
from services.orchestrator.replay import simulate
from tests.conftest import TEST_DATABASE_URL, subprocess_env
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
            columns = [c["name"] for c in inspect(connection).get_columns(table)
                       if c["name"] not in SURROGATES | WHEN_WRITTEN]
            rows = connection.execute(text(f"SELECT {', '.join(columns)} FROM {table}")).all()
            contents[table] = sorted((tuple(row) for row in rows), key=repr)
    engine.dispose()
    return contents


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory, calendar_cache_dir: Path) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("crash") / "base.db"
    with pytest.MonkeyPatch.context() as patch:  # for this build only, not for the tests after it
        patch.setenv("ORCHESTRATOR_CACHE_DIR", str(calendar_cache_dir))
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
    env = subprocess_env(ORCHESTRATOR_CACHE_DIR=str(cache_dir), LOG_LEVEL="CRITICAL")
    worker = subprocess.Popen([sys.executable, "-m", "tests.orchestrator.crash_worker", url, DAY, job, "run"],
                              cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
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
    assert_run_once_after_the_kill(crashed, job)


def assert_run_once_after_the_kill(url: str, job: str) -> None:
    """Killed after its claim: taken over as attempt 2; killed before it: the re-run
    claimed it. Either way one success."""
    engine = create_db_engine(url)
    with engine.connect() as connection:
        attempts = connection.execute(text(
            "SELECT attempt, outcome, substr(coalesce(error, ''), 1, 10) FROM job_runs "
            "WHERE job_name = :job AND trading_date = :day ORDER BY attempt"), {"job": job, "day": DAY}).all()
    engine.dispose()
    assert [tuple(a) for a in attempts] in ([(1, "failed", "abandoned:"), (2, "success", "")], [(1, "success", "")])


def test_orders_carry_an_idempotency_key_from_user_date_ticker_and_signal(base_db):
    engine = create_db_engine(f"sqlite:///{base_db}")
    with engine.connect() as connection:
        keys = connection.execute(text("SELECT client_order_id FROM orders")).scalars().all()
        rows = connection.execute(text("SELECT client_order_id, trading_date, ticker, side FROM orders")).all()
    engine.dispose()
    assert keys and all(key.split(":")[0] == "paper" and key.split(":")[1] == "default_user" for key in keys)
    for key, day, ticker, side in rows:  # paper:<user>:<trading date>:<ticker>:<signal>
        signal = key.rsplit(":", 1)[1]
        assert key == f"paper:default_user:{day}:{ticker}:{signal}"
        assert (side == "buy") == (signal == "entry")
    assert len(keys) == len(set(keys))
    assert {key.split(":")[-1] for key in keys} <= {"entry", "exit", "intraday-exit"}


@pytest.fixture(scope="module")
def postgres_copies(calendar_cache_dir: Path) -> Iterator[Callable[[], str]]:
    """PostgreSQL databases holding the base days: the base is built once in its own
    database, and each call returns a new database copied from it (``CREATE DATABASE
    ... TEMPLATE``); all are dropped afterwards."""
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    tag = uuid.uuid4().hex[:8]
    base, made = f"crash_base_{tag}", []

    def url_of(name: str) -> str:
        return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)

    def copy() -> str:
        name = f"crash_{tag}_{len(made)}"
        with admin.connect() as connection:  # a template must have no other session
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = :base AND pid <> pg_backend_pid()"), {"base": base})
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{base}"'))
        made.append(name)
        return url_of(name)

    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{base}"'))
        made.append(base)
        build_base(url_of(base), calendar_cache_dir)
        yield copy
    finally:
        with admin.connect() as connection:
            for name in reversed(made):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize("job", JOBS)
def test_a_job_killed_on_postgresql_ends_as_one_clean_run(job, postgres_copies, monkeypatch, calendar_cache_dir):
    clean, crashed = postgres_copies(), postgres_copies()
    took = clean_run(clean, job, monkeypatch, calendar_cache_dir)
    delay = random.Random(f"postgresql {job}").uniform(0, took)
    assert killed_run(crashed, job, calendar_cache_dir, delay) == -signal.SIGKILL
    crash_worker.main(crashed, DAY, job, "recover")
    assert table_contents(crashed) == table_contents(clean)
    assert_run_once_after_the_kill(crashed, job)
