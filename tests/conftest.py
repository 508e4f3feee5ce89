"""Shared fixtures: settings without the host's environment, the calendar built once,
and migrated databases (SQLite always; PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from scripts.benchkit.fixtures import make_settings as make_settings  # the tests import it from here
from scripts.benchkit.fixtures import postgres_schema_url
from services.common.database import create_db_engine, make_session_factory, migrate
from services.common.market_calendar import MarketCalendar, load_calendar

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
DATA_DIR = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def calendar_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A calendar disk cache shared by the run (and by the CLI subprocesses it starts)."""
    return tmp_path_factory.mktemp("calendar-cache")


@pytest.fixture(scope="session")
def krx_calendar(calendar_cache_dir: Path) -> MarketCalendar:
    """The real corrected KRX calendar, built once for the whole run."""
    return load_calendar(calendar_cache_dir)


def subprocess_env(**values: str) -> dict[str, str]:
    """The environment for a subprocess under test: the host's, without its
    orchestrator settings (ORCHESTRATOR_*, KIS_*, DATABASE_URL, LOG_LEVEL), plus ``values``."""
    host = {name: value for name, value in os.environ.items()
            if not name.startswith(("ORCHESTRATOR_", "KIS_")) and name not in ("DATABASE_URL", "LOG_LEVEL")}
    return {**host, **values}


def in_process_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path,
                   now: Any) -> Any:
    """The CLI, invoked in this process as ``cli(*args, env=None)``: none of the host's
    ORCHESTRATOR_/KIS_ variables, ``tmp_path`` as working directory (its SQLite
    database under ./data), the clock standing at ``now``."""
    from typer.testing import CliRunner

    from services.common.clock import FixedClock
    from services.orchestrator import runtime as runtime_module
    from services.orchestrator.main import app

    for name in list(os.environ):
        if name.startswith(("ORCHESTRATOR_", "KIS_")) or name in ("DATABASE_URL", "LOG_LEVEL"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(calendar_cache_dir))
    monkeypatch.setattr(runtime_module, "SystemClock", lambda: FixedClock(now))
    runner = CliRunner()
    return lambda *args, env=None: runner.invoke(app, list(args), env=env)


def terminate_backend(admin: Any, pid: int) -> None:
    """``pg_terminate_backend(pid)`` through the engine ``admin``, returning once that
    backend has exited (failing the test if it has not within 30 s)."""
    with admin.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        for _ in range(3000):
            if not connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                      {"pid": pid}).scalar():
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} still runs 30 s after pg_terminate_backend")


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The root logger's handlers and level, put back after the test (for tests that
    call ``configure_logging``)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind (PostgreSQL: a throwaway schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(TEST_DATABASE_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_schema_url(TEST_DATABASE_URL, schema)
    finally:
        with admin.begin() as connection:  # a connection the test left open fails it, never hangs the run
            connection.execute(text("SET LOCAL lock_timeout = '60s'"))
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[Any]:
    engine = create_db_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(migrated_engine: Any) -> Any:
    return make_session_factory(migrated_engine)
