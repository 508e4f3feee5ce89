"""Faults: the database going away and coming back, or refusing writes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from services.common.clock import FixedClock
from services.common.database import create_db_engine, make_session_factory, migrate
from services.orchestrator.jobs import build_triggers
from services.orchestrator.runs import JobRunner
from tests.conftest import make_settings
from tests.orchestrator.test_runs import ledger_rows, registry_with

KST = ZoneInfo("Asia/Seoul")
ROOT = Path(__file__).resolve().parents[2]


def runner_on(url: str, krx_calendar, clock: FixedClock) -> JobRunner:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url=url)
    return JobRunner(settings=settings, session_factory=make_session_factory(create_db_engine(url)), clock=clock,
                     calendar=krx_calendar, triggers=build_triggers(settings, krx_calendar),
                     jobs=registry_with(risk_checks="succeed"))


def test_the_database_dropping_every_connection_between_fires_is_survived(database_url, krx_calendar):
    if not database_url.startswith("postgresql"):
        pytest.skip("a server's connections can be cut; a SQLite file's cannot")
    migrate(create_db_engine(database_url))
    clock = FixedClock(datetime(2026, 11, 20, 10, 0, 1, tzinfo=KST))
    name = f"fault_test_{os.getpid()}"  # only this runner's sessions are cut
    runner = runner_on(make_url(database_url).update_query_dict({"application_name": name})
                       .render_as_string(hide_password=False), krx_calendar, clock)
    assert runner.run_scheduled("risk_checks", datetime(2026, 11, 20, 10, 0, tzinfo=KST)) is not None
    admin = create_db_engine(database_url)
    with admin.begin() as connection:  # as a database restart does: the runner's sessions end
        cut = connection.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                      "WHERE application_name = :name"), {"name": name}).scalar()
    assert cut >= 1
    admin.dispose()
    clock.set(datetime(2026, 11, 20, 10, 30, 1, tzinfo=KST))
    record = runner.run_scheduled("risk_checks", datetime(2026, 11, 20, 10, 30, tzinfo=KST))
    assert record is not None and record.outcome.value == "success"
    assert [r.outcome for r in ledger_rows(runner.session_factory)] == ["success", "success"]


def test_a_database_refusing_writes_costs_the_scheduler_one_error_line(tmp_path, krx_calendar, caplog):
    path = tmp_path / "ro.db"
    migrate(create_db_engine(f"sqlite:///{path}"))
    clock = FixedClock(datetime(2026, 11, 20, 10, 0, 1, tzinfo=KST))
    runner = runner_on(f"sqlite:///file:{path}?mode=ro&uri=true", krx_calendar, clock)
    with caplog.at_level(logging.ERROR):
        assert runner.run_scheduled("risk_checks", datetime(2026, 11, 20, 10, 0, tzinfo=KST)) is None
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert line == ("risk_checks fire at 2026-11-20T10:00:00+09:00 could not run: "
                    "database error: attempt to write a readonly database")
    assert ledger_rows(make_session_factory(create_db_engine(f"sqlite:///{path}"))) == []
    assert runner.recover_abandoned() == []  # the sweep reads; it still works


def test_run_job_on_a_database_refusing_writes_is_one_line_and_writes_nothing(tmp_path, calendar_cache_dir):
    path = tmp_path / "ro.db"
    migrate(create_db_engine(f"sqlite:///{path}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "KIS_"))}
    env.update({"ORCHESTRATOR_CACHE_DIR": str(calendar_cache_dir), "LOG_LEVEL": "CRITICAL",
                "DATABASE_URL": f"sqlite:///file:{path}?mode=ro&uri=true"})
    result = subprocess.run([sys.executable, "-m", "services.orchestrator.main", "run-job", "risk_checks"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: database error: (sqlite3.OperationalError) attempt to write a readonly database"
    assert ledger_rows(make_session_factory(create_db_engine(f"sqlite:///{path}"))) == []
