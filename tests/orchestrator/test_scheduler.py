"""The APScheduler wiring and the shutdown contract of `start`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.common.clock import FixedClock
from services.orchestrator.jobs import JOBS
from services.orchestrator.models import JobRun
from services.orchestrator.scheduler import RECOVERY_JOB, StopOnSignal, build_scheduler
from tests.conftest import read_until as _read_until
from tests.orchestrator.test_runs import make_runner

KST = ZoneInfo("Asia/Seoul")
REPO = Path(__file__).resolve().parents[2]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=KST)


@pytest.fixture
def sqlite_factory(tmp_path: Path) -> Any:
    from services.common.database import create_db_engine, make_session_factory, migrate

    engine = create_db_engine(f"sqlite:///{tmp_path / 'sched.db'}")
    migrate(engine)
    yield make_session_factory(engine)
    engine.dispose()


def test_every_job_is_scheduled_with_coalescing_one_instance_and_no_apscheduler_grace(
    sqlite_factory: Any, krx_calendar: Any
) -> None:
    runner = make_runner(sqlite_factory, krx_calendar, FixedClock(at("2026-11-20T10:00")))
    scheduler = build_scheduler(runner, list(JOBS))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    recovery = jobs.pop(RECOVERY_JOB)
    assert list(jobs) == [job.name for job in JOBS]
    assert (recovery.func, recovery.trigger.interval) == (runner.recover_abandoned, timedelta(seconds=60))
    assert (recovery.coalesce, recovery.max_instances) == (True, 1)
    for name, job in jobs.items():
        assert job.trigger is runner.triggers[name]
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, None)
        assert job.args == (name,)


def test_sigterm_lets_the_running_job_finish_and_record_before_returning(
    sqlite_factory: Any, krx_calendar: Any
) -> None:
    runner = make_runner(sqlite_factory, krx_calendar, FixedClock(at("2026-11-20T10:00:01")),
                         risk_checks="slow")
    scheduler = build_scheduler(runner, [])
    scheduler.add_job(runner.run_fire, args=["risk_checks", at("2026-11-20T10:00")], id="now")
    threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
    StopOnSignal().run(scheduler)
    with sqlite_factory() as session:
        [row] = session.scalars(select(JobRun)).all()
    assert (row.job_name, row.outcome, row.summary) == ("risk_checks", "success", {"slept": 1})
    assert row.finished_at is not None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_start_runs_until_signalled_and_exits_0(tmp_path: Path, calendar_cache_dir: Path, signum: int) -> None:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("ORCHESTRATOR_") and key != "DATABASE_URL"}
    env.update({"ORCHESTRATOR_CACHE_DIR": str(calendar_cache_dir), "PYTHONPATH": str(REPO),
                "ORCHESTRATOR_API_PORT": "0"})  # the console on any free port
    process = subprocess.Popen(
        [sys.executable, "-m", "services.orchestrator.main", "start"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        banner = _read_until(process, "Schedule", timeout=30)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, banner + output
    assert "Traceback" not in banner + output
    assert "scheduler stopped" in output
    assert (tmp_path / "data" / "orchestrator.db").exists()


def test_a_stop_signal_swallowed_by_a_job_submission_still_stops_the_scheduler(caplog: Any) -> None:
    from services.orchestrator.scheduler import StopOnSignal, StoppableScheduler

    stop = StopOnSignal()
    scheduler = StoppableScheduler(timezone="Asia/Seoul")
    scheduler.add_job(print, "interval", hours=1, next_run_time=datetime.now(ZoneInfo("Asia/Seoul")))

    def submit_while_signalled(job: Any, run_times: Any) -> None:  # SIGTERM lands inside APScheduler's try
        stop._handle(signal.SIGTERM, None)

    scheduler.add_executor("threadpool", "default")
    scheduler._executors["default"].submit_job = submit_while_signalled  # type: ignore[method-assign]
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("did not stop")))
    signal.alarm(20)  # a hang fails the test instead of blocking for the hour to the next fire
    try:
        stop.run(scheduler)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not scheduler.running
    assert [r.getMessage() for r in caplog.records if r.levelno >= 40] == []
