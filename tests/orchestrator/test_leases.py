"""Exactly once across instances: claims with leases, a dead holder's run recovered by
another instance, and real processes racing over the same fires (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.common.clock import FixedClock
from services.common.database import create_db_engine, make_session_factory
from services.common.job_api import Outcome
from services.orchestrator.models import JobRun
from tests.conftest import subprocess_env
from tests.orchestrator import fake_services
from tests.orchestrator.test_runs import ledger_rows, make_runner

KST = ZoneInfo("Asia/Seoul")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    fake_services.CALLS.clear()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=KST)


def claim_as_another_instance(runner: Any, job: str, fire: datetime) -> int:
    run_id = runner.ledger.claim(job, fire, trading_date=fire.date(), origin="schedule")
    assert run_id is not None
    return run_id


def test_a_claim_carries_a_lease_that_renewing_extends(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    runner = make_runner(session_factory, krx_calendar, clock)
    run_id = claim_as_another_instance(runner, "risk_checks", at("2026-11-20T10:00"))
    [row] = ledger_rows(session_factory)
    assert (row.attempt, row.lease_until) == (1, at("2026-11-20T10:01:00"))
    clock.set(at("2026-11-20T10:00:50"))
    runner.ledger.renew([run_id])
    clock.set(at("2026-11-20T10:01:30"))
    assert runner.recover_abandoned() == []  # renewed until 10:01:50: its holder is alive
    assert [r.outcome for r in ledger_rows(session_factory)] == ["running"]
    assert ledger_rows(session_factory)[0].lease_until == at("2026-11-20T10:01:50")


def test_a_run_whose_lease_lapsed_is_recorded_abandoned_and_run_again(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    dead = make_runner(session_factory, krx_calendar, clock)
    claim_as_another_instance(dead, "position_monitoring", at("2026-11-20T10:00"))
    clock.set(at("2026-11-20T10:01:01"))  # the lease (60 s) has lapsed, the tick is still useful
    alive = make_runner(session_factory, krx_calendar, clock, position_monitoring="succeed")
    [record] = alive.recover_abandoned()
    assert (record.job_name, record.outcome) == ("position_monitoring", record.outcome.SUCCESS)
    first, second = ledger_rows(session_factory)
    assert (first.attempt, first.outcome) == (1, "failed")
    assert first.error.startswith("abandoned: the lease of ") and "lapsed at 2026-11-20T10:01:00+09:00" in first.error
    assert (second.attempt, second.outcome, second.origin, second.scheduled_for) == (
        2, "success", "recovery", at("2026-11-20T10:00"))
    assert fake_services.CALLS == [("position_monitoring", "2026-11-20")]
    assert alive.recover_abandoned() == []  # nothing left to recover


def test_a_lapsed_run_past_its_deadline_is_recorded_but_not_run_again(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    dead = make_runner(session_factory, krx_calendar, clock)
    claim_as_another_instance(dead, "position_monitoring", at("2026-11-20T10:00"))
    clock.set(at("2026-11-20T10:20:00"))  # the next tick (10:15) has come: this one is useless now
    alive = make_runner(session_factory, krx_calendar, clock, position_monitoring="succeed")
    assert alive.recover_abandoned() == []
    [row] = ledger_rows(session_factory)
    assert (row.outcome, row.attempt) == ("failed", 1) and row.error.startswith("abandoned")
    assert row.error.endswith("lapsed at 2026-11-20T10:01:00+09:00")
    assert fake_services.CALLS == []


def test_only_one_instance_recovers_a_lapsed_run(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    dead = make_runner(session_factory, krx_calendar, clock)
    run_id = claim_as_another_instance(dead, "risk_checks", at("2026-11-20T10:00"))
    clock.set(at("2026-11-20T10:02:00"))
    first = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed")
    second = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed")
    assert first.ledger.abandon(run_id, clock.now(), "abandoned: test") is True
    assert second.ledger.abandon(run_id, clock.now(), "abandoned: test") is False
    assert second.recover_abandoned() == []


def test_of_two_sweeping_instances_one_runs_the_lapsed_fire_again(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    claim_as_another_instance(make_runner(session_factory, krx_calendar, clock), "risk_checks", at("2026-11-20T10:00"))
    clock.set(at("2026-11-20T10:02:00"))
    first = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed")
    second = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed")
    assert [r.outcome.value for r in first.recover_abandoned()] == ["success"]
    assert second.recover_abandoned() == []
    assert fake_services.CALLS == [("risk_checks", "2026-11-20")]
    assert [(r.attempt, r.outcome) for r in ledger_rows(session_factory)] == [(1, "failed"), (2, "success")]


def _worker(database_url: str, entry: str, start: str, end: str, env: dict[str, str],
            lease: str = "60") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.orchestrator.race_worker", database_url, "risk_checks", entry, start, end,
         lease], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _env(calendar_cache_dir: Path, **extra: str) -> dict[str, str]:
    return subprocess_env(ORCHESTRATOR_CACHE_DIR=str(calendar_cache_dir), LOG_LEVEL="WARNING", **extra)


def test_three_processes_racing_over_the_same_fires_run_each_exactly_once(
        database_url, calendar_cache_dir, tmp_path):
    log = tmp_path / "fires.log"
    env = _env(calendar_cache_dir, RACE_LOG=str(log))
    create_db_engine(database_url).dispose()
    workers = [_worker(database_url, "record_fire", "2026-11-16T00:00", "2026-11-19T00:00", env)
               for _ in range(3)]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    ran = Counter(" ".join(line.split()[:2]) for line in log.read_text().splitlines())
    assert len(ran) == 3 * 48 and set(ran.values()) == {1}  # every fire, each once
    engine = create_db_engine(database_url)
    with make_session_factory(engine)() as session:
        rows = session.execute(select(JobRun.scheduled_for, JobRun.outcome)).all()
    engine.dispose()
    assert len(rows) == 3 * 48 and {outcome for _, outcome in rows} == {"success"}


def test_a_killed_holder_s_run_is_recovered_by_another_process(database_url, calendar_cache_dir, krx_calendar):
    env = _env(calendar_cache_dir)
    holder = _worker(database_url, "hang", "2026-11-20T10:00", "2026-11-20T10:01", env, lease="5")
    engine = create_db_engine(database_url)
    factory = make_session_factory(engine)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while not [r for r in ledger_rows(factory) if r.outcome == "running"]:
            assert time.monotonic() < deadline, "the holder never claimed its fire"
            time.sleep(0.05)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    [row] = ledger_rows(factory)
    clock = FixedClock(row.lease_until + timedelta(seconds=1))  # the 5 s lease, unrenewed, has lapsed
    survivor = make_runner(factory, krx_calendar, clock, risk_checks="succeed")
    [record] = survivor.recover_abandoned()
    first, second = ledger_rows(factory)
    engine.dispose()
    assert (first.outcome, first.pid, first.attempt) == ("failed", holder.pid, 1)
    assert (second.outcome, second.attempt, second.scheduled_for) == ("success", 2, at("2026-11-20T10:00"))
    assert record.run_id == second.id


def test_a_run_that_finishes_after_being_taken_over_keeps_its_abandoned_record(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    slow = make_runner(session_factory, krx_calendar, clock)
    run_id = claim_as_another_instance(slow, "risk_checks", at("2026-11-20T10:00"))
    clock.set(at("2026-11-20T10:01:30"))
    assert slow.ledger.abandon(run_id, clock.now(), "abandoned: test")
    from services.common.job_api import Outcome

    slow.ledger.finish(run_id, Outcome.SUCCESS)  # the slow holder comes back: fenced off
    [row] = ledger_rows(session_factory)
    assert (row.outcome, row.error) == ("failed", "abandoned: test")


def test_an_interrupted_manual_run_is_recorded_and_never_run_again_by_others(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    runner = make_runner(session_factory, krx_calendar, clock, risk_checks="interrupt")
    with pytest.raises(KeyboardInterrupt):
        runner.run_now("risk_checks", at("2026-11-20T10:00").date())
    [row] = ledger_rows(session_factory)
    assert (row.outcome, row.error) == ("failed", "interrupted: KeyboardInterrupt")


def test_a_manual_run_whose_lease_lapsed_is_not_run_again(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    dead = make_runner(session_factory, krx_calendar, clock)
    dead.ledger.claim("risk_checks", at("2026-11-20T10:00"), trading_date=at("2026-11-20T10:00").date(),
                      origin="manual")
    clock.set(at("2026-11-20T10:01:01"))
    alive = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed")
    assert alive.recover_abandoned() == []
    [row] = ledger_rows(session_factory)
    assert row.outcome == "failed" and fake_services.CALLS == []


def test_the_heartbeat_moves_a_running_job_s_lease_forward(session_factory, krx_calendar):
    from services.orchestrator.leases import Heartbeat

    clock = FixedClock(at("2026-11-20T10:00:00"))
    runner = make_runner(session_factory, krx_calendar, clock)
    run_id = claim_as_another_instance(runner, "risk_checks", at("2026-11-20T10:00"))
    beat = Heartbeat(runner.ledger, 0.05)
    with beat.holding(run_id):
        clock.set(at("2026-11-20T10:00:50"))
        deadline = time.monotonic() + 10
        while ledger_rows(session_factory)[0].lease_until != at("2026-11-20T10:01:50"):
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.02)
    beat.stop()
    clock.set(at("2026-11-20T10:01:30"))
    assert runner.recover_abandoned() == []  # renewed: not taken over


# --- never two runs of a job at once, across instances ---------------------------------------------


def test_a_fire_while_another_instance_still_runs_the_job_is_skipped_and_alerted(session_factory, krx_calendar,
                                                                                 caplog):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    other = make_runner(session_factory, krx_calendar, clock)
    run_id = claim_as_another_instance(other, "risk_checks", at("2026-11-20T10:00"))
    clock.set(at("2026-11-20T10:30:01"))
    other.ledger.renew([run_id])  # its holder is alive: the 10:00 run is still going at 10:30
    this = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed")
    with caplog.at_level(logging.ERROR):
        record = this.run_fire("risk_checks", at("2026-11-20T10:30"))
    assert record is not None and record.outcome.value == "skipped"
    [alert] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert alert.getMessage() == (
        f"risk_checks 2026-11-20: the fire at 2026-11-20T10:30:00+09:00 was skipped: {record.reason}")
    assert record.reason.startswith(f"previous run still running (run {run_id}, fire 2026-11-20T10:00:00+09:00")
    assert fake_services.CALLS == []
    assert [(r.scheduled_for, r.outcome) for r in ledger_rows(session_factory)] == [
        (at("2026-11-20T10:00"), "running"), (at("2026-11-20T10:30"), "skipped")]


def test_a_catch_up_beside_another_instances_is_skipped_quietly(session_factory, krx_calendar, caplog):
    clock = FixedClock(at("2026-11-20T20:00:00"))
    other = make_runner(session_factory, krx_calendar, clock)
    run_id = other.ledger.claim("watchlist_update", at("2026-11-20T19:59:59"),
                                trading_date=at("2026-11-20T18:00").date(), origin="catch_up")  # started together
    this = make_runner(session_factory, krx_calendar, clock, watchlist_update="succeed")
    with caplog.at_level(logging.INFO):
        record = this.run_now("watchlist_update", at("2026-11-20T18:00").date(), origin="catch_up")
    assert record.outcome.value == "skipped"
    assert record.reason.startswith(f"previous run still running (run {run_id}, fire 2026-11-20T19:59:59+09:00")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert fake_services.CALLS == []


def test_a_fire_after_the_other_instance_died_runs(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    claim_as_another_instance(make_runner(session_factory, krx_calendar, clock), "risk_checks",
                              at("2026-11-20T10:00"))
    clock.set(at("2026-11-20T10:30:01"))  # never renewed: its lease lapsed at 10:01
    this = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed")
    record = this.run_fire("risk_checks", at("2026-11-20T10:30"))
    assert record is not None and record.outcome.value == "success"


def test_a_lapsed_fire_waits_while_another_run_of_the_job_holds_then_runs(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    dead = make_runner(session_factory, krx_calendar, clock)
    claim_as_another_instance(dead, "risk_checks", at("2026-11-20T10:00"))
    clock.set(at("2026-11-20T10:01:01"))
    busy = dead.ledger.claim("risk_checks", at("2026-11-20T10:01"), trading_date=at("2026-11-20T10:01").date(),
                             origin="catch_up")
    alive = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed")
    assert alive.recover_abandoned() == []  # left for a later sweep, not abandoned, not skipped
    assert [r.outcome for r in ledger_rows(session_factory)] == ["running", "running"]
    dead.ledger.finish(busy, Outcome.SUCCESS)
    clock.set(at("2026-11-20T10:02:00"))
    [record] = alive.recover_abandoned()
    assert (record.outcome.value, fake_services.CALLS) == ("success", [("risk_checks", "2026-11-20")])
    first, _, second = ledger_rows(session_factory)
    assert (first.outcome, second.attempt, second.origin) == ("failed", 2, "recovery")


def test_a_manual_run_holds_back_no_scheduled_fire(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:30:01"))
    other = make_runner(session_factory, krx_calendar, clock)
    other.ledger.claim("risk_checks", at("2026-11-20T10:29"), trading_date=at("2026-11-20T10:29").date(),
                       origin="manual")
    this = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed")
    record = this.run_fire("risk_checks", at("2026-11-20T10:30"))
    assert record is not None and record.outcome.value == "success"
