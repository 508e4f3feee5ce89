"""Faults: the database going away and coming back, or refusing writes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from services.common.clock import FixedClock
from services.common.database import create_db_engine, make_session_factory, migrate
from services.orchestrator.jobs import build_triggers
from services.orchestrator.runner import JobRunner
from tests.conftest import make_settings, subprocess_env
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


def read_only(url: str) -> tuple[str, str]:
    """``url`` opened read-only, and the error its database gives a write: a SQLite file
    opened ``mode=ro``; a PostgreSQL session whose transactions are read-only (as on a
    hot standby, or a database set ``default_transaction_read_only``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:///file:{parsed.database}?mode=ro&uri=true", "attempt to write a readonly database"
    options = f"{parsed.query.get('options', '')} -cdefault_transaction_read_only=on".strip()
    return (parsed.update_query_dict({"options": options}).render_as_string(hide_password=False),
            "cannot execute INSERT in a read-only transaction")


def test_a_database_refusing_writes_costs_the_scheduler_one_error_line(database_url, krx_calendar, caplog):
    migrate(create_db_engine(database_url))
    clock = FixedClock(datetime(2026, 11, 20, 10, 0, 1, tzinfo=KST))
    url, refusal = read_only(database_url)
    runner = runner_on(url, krx_calendar, clock)
    with caplog.at_level(logging.ERROR):
        assert runner.run_scheduled("risk_checks", datetime(2026, 11, 20, 10, 0, tzinfo=KST)) is None
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert line == f"risk_checks fire at 2026-11-20T10:00:00+09:00 could not run: database error: {refusal}"
    assert ledger_rows(make_session_factory(create_db_engine(database_url))) == []
    assert runner.recover_abandoned() == []  # the sweep reads; it still works


def test_run_job_on_a_database_refusing_writes_is_one_line_and_writes_nothing(tmp_path, calendar_cache_dir):
    path = tmp_path / "ro.db"
    migrate(create_db_engine(f"sqlite:///{path}"))
    env = subprocess_env(ORCHESTRATOR_CACHE_DIR=str(calendar_cache_dir), LOG_LEVEL="CRITICAL",
                         DATABASE_URL=f"sqlite:///file:{path}?mode=ro&uri=true")
    result = subprocess.run([sys.executable, "-m", "services.orchestrator.main", "run-job", "risk_checks"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: database error: attempt to write a readonly database"
    assert ledger_rows(make_session_factory(create_db_engine(f"sqlite:///{path}"))) == []


def _page_limited(path: Path, spare_pages: int) -> Any:
    """An engine on the SQLite file ``path`` that may grow by ``spare_pages`` pages at
    most: a disk that is (nearly) full, as SQLite reports one (SQLITE_FULL)."""
    engine = create_db_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        limit = connection.execute(text("PRAGMA page_count")).scalar() + spare_pages

    @event.listens_for(engine, "connect")
    def _limit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {limit}")

    engine.dispose()
    return engine


def test_a_full_disk_fails_the_run_with_one_line_and_half_writes_nothing(tmp_path, krx_calendar, calendar_cache_dir,
                                                                          monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(calendar_cache_dir))
    path = tmp_path / "full.db"
    migrate(create_db_engine(f"sqlite:///{path}"))
    settings = make_settings(database_url=f"sqlite:///{path}", simulated_universe="30", bootstrap_sessions="80")
    clock = FixedClock(datetime(2026, 11, 20, 16, 0, 1, tzinfo=KST))

    def runner_with(engine: Any) -> JobRunner:
        return JobRunner(settings=settings, session_factory=make_session_factory(engine), clock=clock,
                         calendar=krx_calendar, triggers=build_triggers(settings, krx_calendar))

    full = runner_with(_page_limited(path, spare_pages=4))  # room for the ledger, not for a day of prices
    record = full.run_scheduled("data_collection", datetime(2026, 11, 20, 16, 0, tzinfo=KST))
    assert record is not None and record.outcome.value == "failed"
    assert record.error == "database error: database or disk is full"
    check = create_db_engine(f"sqlite:///{path}")
    with check.connect() as connection:  # whole sessions or nothing: each is complete or absent
        stored = connection.execute(text("SELECT date, count(*) FROM daily_prices GROUP BY date")).all()
        collected = connection.execute(text("SELECT date, price_rows FROM collected_sessions")).all()
        unfinished = connection.execute(text("SELECT count(*) FROM fundamentals WHERE date NOT IN "
                                             "(SELECT date FROM collected_sessions)")).scalar()
    assert sorted(map(tuple, stored)) == sorted(map(tuple, collected)) and unfinished == 0

    clock.set(datetime(2026, 11, 20, 16, 30, 1, tzinfo=KST))  # space freed: the next fire completes the day
    record = runner_with(check).run_scheduled("risk_checks", datetime(2026, 11, 20, 16, 30, tzinfo=KST))
    assert record is not None and record.outcome.value == "success"
    record = runner_with(check).run_now("data_collection", date(2026, 11, 20))
    assert record.outcome.value == "success"
    with check.connect() as connection:
        assert connection.execute(text(
            "SELECT count(*) = (SELECT price_rows FROM collected_sessions WHERE date = '2026-11-20') "
            "FROM daily_prices WHERE date = '2026-11-20'")).scalar() == 1
