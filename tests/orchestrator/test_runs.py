"""The run ledger and the job wrapper, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from services.common.clock import FixedClock
from services.common.job_api import Outcome
from services.orchestrator.jobs import REGISTRY, UnknownJobError, build_triggers
from services.orchestrator.models import JobRun
from services.orchestrator.runner import JobRunner
from tests.conftest import make_settings
from tests.orchestrator import fake_services

KST = ZoneInfo("Asia/Seoul")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=KST)


def registry_with(**entry_points: str) -> dict[str, Any]:
    """The real registry (real schedules) with test entry points for some jobs, which
    need nothing (tests/orchestrator/test_needs.py runs jobs with needs)."""
    jobs = dict(REGISTRY)
    for name, function in entry_points.items():
        jobs[name] = replace(jobs[name], entry_point=f"tests.orchestrator.fake_services:{function}", needs=(),
                             state=None)
    return jobs


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    fake_services.CALLS.clear()


def make_runner(session_factory: Any, krx_calendar: Any, clock: FixedClock, *,
                values: dict[str, str] | None = None, **entry_points: str) -> JobRunner:
    """A runner whose settings are the defaults plus ``values`` (default_user, paper)."""
    settings = make_settings(**(values or {}))
    return JobRunner(
        settings=settings, session_factory=session_factory, clock=clock, calendar=krx_calendar,
        triggers=build_triggers(settings, krx_calendar), jobs=registry_with(**entry_points),
    )


def ledger_rows(session_factory: Any) -> list[JobRun]:
    with session_factory() as session:
        return list(session.scalars(select(JobRun).order_by(JobRun.id)))


def test_a_fire_runs_once_and_is_recorded_with_its_trading_date_and_summary(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-19T17:00:01"))
    runner = make_runner(session_factory, krx_calendar, clock, data_collection="succeed")
    record = runner.run_fire("data_collection", at("2026-11-19T17:00"))
    assert record is not None and record.outcome is Outcome.SUCCESS
    [row] = ledger_rows(session_factory)
    assert (row.job_name, row.trading_date, row.outcome, row.origin) == (
        "data_collection", date(2026, 11, 19), "success", "schedule")
    assert row.scheduled_for == at("2026-11-19T17:00")
    assert row.summary == {"rows": 3, "trading_date": "2026-11-19"}
    assert row.dry_run is True and row.finished_at is not None
    assert fake_services.CALLS == [("data_collection", "2026-11-19")]


def test_a_fire_already_claimed_by_another_orchestrator_is_left_alone(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T16:00:01"))
    first = make_runner(session_factory, krx_calendar, clock, data_collection="succeed")
    second = make_runner(session_factory, krx_calendar, clock, data_collection="succeed")
    assert first.run_fire("data_collection", at("2026-11-20T16:00")) is not None
    assert second.run_fire("data_collection", at("2026-11-20T16:00")) is None
    assert len(ledger_rows(session_factory)) == 1
    assert fake_services.CALLS == [("data_collection", "2026-11-20")]


def test_a_failing_job_is_recorded_failed_and_the_next_job_still_runs(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T16:00:01"))
    runner = make_runner(session_factory, krx_calendar, clock,
                         data_collection="explode", indicator_calculation="succeed")
    failed = runner.run_fire("data_collection", at("2026-11-20T16:00"))
    clock.set(at("2026-11-20T17:00:01"))
    ok = runner.run_fire("indicator_calculation", at("2026-11-20T17:00"))
    assert failed is not None and failed.outcome is Outcome.FAILED
    assert failed.error == "RuntimeError: provider answered 503"
    assert ok is not None and ok.outcome is Outcome.SUCCESS
    assert [(r.job_name, r.outcome, r.error) for r in ledger_rows(session_factory)] == [
        ("data_collection", "failed", "RuntimeError: provider answered 503"),
        ("indicator_calculation", "success", None),
    ]


def test_a_job_that_skips_is_recorded_skipped_with_its_reason(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T17:00:01"))
    runner = make_runner(session_factory, krx_calendar, clock, indicator_calculation="skip_input_missing")
    record = runner.run_fire("indicator_calculation", at("2026-11-20T17:00"))
    assert record is not None and record.outcome is Outcome.SKIPPED
    [row] = ledger_rows(session_factory)
    assert (row.outcome, row.reason) == ("skipped", "input missing: no data_collection for this date")


def test_a_job_returning_something_else_than_a_result_is_a_failure(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T17:00:01"))
    runner = make_runner(session_factory, krx_calendar, clock, indicator_calculation="return_garbage")
    record = runner.run_fire("indicator_calculation", at("2026-11-20T17:00"))
    assert record is not None and record.outcome is Outcome.FAILED
    assert record.error == "job returned 'done'; expected a JobResult"


def test_a_pre_open_job_may_still_run_until_the_open(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T08:59:59"))
    runner = make_runner(session_factory, krx_calendar, clock, signal_generation="succeed")
    record = runner.run_fire("signal_generation", at("2026-11-20T08:45"))
    assert record is not None and record.outcome is Outcome.SUCCESS


def test_a_fire_past_its_deadline_is_recorded_missed_without_running(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T09:00:01"))
    runner = make_runner(session_factory, krx_calendar, clock, signal_generation="succeed")
    record = runner.run_fire("signal_generation", at("2026-11-20T08:45"))
    assert record is not None and record.outcome is Outcome.MISSED
    assert record.reason == "too late: 1 s past the deadline 2026-11-20T09:00:00+09:00"
    assert fake_services.CALLS == []


def test_deadlines_follow_the_market_and_the_grace_bounds_the_rest(session_factory, krx_calendar):
    runner = make_runner(session_factory, krx_calendar, FixedClock(at("2026-11-20T16:00")))
    # a Friday's post-close job is useful until Monday's pre-open jobs (08:45)
    assert runner.deadline("data_collection", at("2026-11-20T16:00")) == at("2026-11-23T08:45")
    # on the exam day the next session's pre-open job is still 08:45
    assert runner.deadline("watchlist_update", at("2026-11-19T19:00")) == at("2026-11-20T08:45")
    assert runner.deadline("position_monitoring", at("2026-11-20T10:15")) == at("2026-11-20T10:30")
    # risk checks have no market bound: ORCHESTRATOR_MISFIRE_GRACE_SECONDS (300)
    assert runner.deadline("risk_checks", at("2026-11-21T10:00")) == at("2026-11-21T10:05")


def test_a_long_grace_does_not_stretch_a_market_bound(session_factory, krx_calendar):
    settings = make_settings(misfire_grace_seconds="86400")
    runner = JobRunner(settings=settings, session_factory=session_factory,
                       clock=FixedClock(at("2026-11-20T09:00:01")), calendar=krx_calendar,
                       triggers=build_triggers(settings, krx_calendar), jobs=registry_with(signal_generation="succeed"))
    assert runner.deadline("signal_generation", at("2026-11-20T08:45")) == at("2026-11-20T09:00")
    assert runner.deadline("risk_checks", at("2026-11-21T10:00")) == at("2026-11-22T10:00")


def test_a_manual_run_on_a_holiday_is_skipped_as_not_a_session(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-21T10:00"))
    runner = make_runner(session_factory, krx_calendar, clock, data_collection="succeed")
    record = runner.run_now("data_collection", date(2026, 7, 17))
    assert record.outcome is Outcome.SKIPPED
    assert record.reason == "not a session: 2026-07-17 is a KRX holiday or weekend"
    assert fake_services.CALLS == []


def test_a_manual_run_is_recorded_like_a_scheduled_one(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-21T10:00"))
    runner = make_runner(session_factory, krx_calendar, clock, values={"user_id": "alice"},
                         data_collection="succeed")
    record = runner.run_now("data_collection", date(2026, 11, 19))
    [row] = ledger_rows(session_factory)
    assert record.outcome is Outcome.SUCCESS
    assert (row.origin, row.user_id, row.trading_date, row.scheduled_for) == (
        "manual", "alice", date(2026, 11, 19), at("2026-11-21T10:00"))


def test_a_job_whose_service_is_not_installed_is_skipped_with_that_reason(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-21T10:00"))
    runner = make_runner(session_factory, krx_calendar, clock)
    jobs = dict(runner.jobs)
    jobs["risk_checks"] = replace(jobs["risk_checks"], entry_point="services.not_a_service.manager:run")
    runner.jobs = jobs
    record = runner.run_now("risk_checks", date(2026, 11, 21))
    assert record.outcome is Outcome.SKIPPED
    assert record.reason == "service services.not_a_service.manager is not installed in this build"


def test_an_unknown_job_lists_the_known_ones(session_factory, krx_calendar):
    runner = make_runner(session_factory, krx_calendar, FixedClock(at("2026-11-21T10:00")))
    with pytest.raises(UnknownJobError, match=r"unknown job 'data_colection'; did you mean 'data_collection'\? "
                                              "known jobs: signal_generation, "):
        runner.run_now("data_colection", date(2026, 11, 20))


def test_a_fire_arriving_while_the_previous_run_still_runs_is_skipped_and_alerted(session_factory, krx_calendar,
                                                                                  caplog):
    runner = make_runner(session_factory, krx_calendar, FixedClock(at("2026-11-20T10:15:02")))
    with caplog.at_level(logging.ERROR):
        record = runner.record_overlap("position_monitoring", at("2026-11-20T10:15"))
    assert record is not None
    [row] = ledger_rows(session_factory)
    assert (row.outcome, row.reason, row.trading_date) == (
        "skipped", "previous run still running", date(2026, 11, 20))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "position_monitoring 2026-11-20: the fire at 2026-11-20T10:15:00+09:00 was skipped: previous run still running"]


def test_after_downtime_missed_fires_are_recorded_and_the_latest_runs_once(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T08:00:01"))
    runner = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed")
    runner.run_fire("risk_checks", at("2026-11-20T08:00"))
    # the process dies; it comes back at 10:03, within the 10:00 fire's 300 s grace
    clock.set(at("2026-11-20T10:03"))
    records = runner.catch_up_downtime(clock.now())
    assert [(r.scheduled_for.astimezone(KST).strftime("%H:%M"), r.outcome.value) for r in records] == [
        ("08:30", "missed"), ("09:00", "missed"), ("09:30", "missed"), ("10:00", "success"),
    ]
    assert fake_services.CALLS == [("risk_checks", "2026-11-20"), ("risk_checks", "2026-11-20")]
    # running the catch-up again finds nothing new and runs nothing twice
    assert runner.catch_up_downtime(clock.now()) == []
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(JobRun)) == 5


def test_downtime_over_a_weekend_records_every_missed_fire_of_the_scheduled_jobs(
    session_factory, krx_calendar
):
    clock = FixedClock(at("2026-11-20T15:00:01"))
    runner = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed",
                         data_collection="succeed", indicator_calculation="succeed")
    runner.run_fire("risk_checks", at("2026-11-20T15:00"))
    clock.set(at("2026-11-20T16:00:01"))
    runner.run_fire("data_collection", at("2026-11-20T16:00"))
    clock.set(at("2026-11-23T09:10"))  # back on Monday morning
    records = runner.catch_up_downtime(clock.now())
    by_job: dict[str, list[str]] = {}
    for record in records:
        by_job.setdefault(record.job_name, []).append(record.outcome.value)
    # Fri 15:30-23:30 (17) + Sat (48) + Sun (48) + Mon 00:00-09:00 (19) = 132 risk checks;
    # the latest (09:00) is past its 300 s grace too
    assert by_job["risk_checks"] == ["missed"] * 132
    # data_collection's next fire is Monday 16:00: nothing missed
    assert "data_collection" not in by_job
    # indicator_calculation never ran here: it has no history to catch up
    assert "indicator_calculation" not in by_job


def test_catch_up_leaves_disabled_jobs_alone(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T08:00:01"))
    runner = make_runner(session_factory, krx_calendar, clock, risk_checks="succeed")
    runner.run_fire("risk_checks", at("2026-11-20T08:00"))
    runner.settings = replace(runner.settings, enable_risk_checks=False)
    clock.set(at("2026-11-20T10:03"))
    assert runner.catch_up_downtime(clock.now()) == []
    assert fake_services.CALLS == [("risk_checks", "2026-11-20")]


def test_a_run_left_running_by_a_dead_process_is_recorded_failed_by_the_next_sweep(session_factory, krx_calendar):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    runner = make_runner(session_factory, krx_calendar, FixedClock(at("2026-11-20T10:00")))
    run_id = runner.ledger.claim("risk_checks", at("2026-11-20T09:30"), trading_date=date(2026, 11, 20),
                                 origin="schedule")
    with session_factory.begin() as session:
        session.get(JobRun, run_id).pid = int(dead.stdout)
    assert runner.expire_dead_runs() == 1
    assert runner.recover_abandoned() == []  # 09:30's risk check is past its grace: recorded, not re-run
    [row] = ledger_rows(session_factory)
    assert row.outcome == "failed"
    assert row.error.startswith("abandoned: the lease of ") and f" pid {int(dead.stdout)} lapsed at " in row.error


def test_a_run_under_this_host_and_pid_of_another_instance_is_left_to_its_lease(session_factory, krx_calendar):
    """Containers sharing a host name (host networking) each run as pid 1: a row of this
    host and pid under another instance id may be a live process elsewhere, so start-up
    does not end its lease (the lease lapses if it is dead)."""
    import os
    import socket
    import uuid

    runner = make_runner(session_factory, krx_calendar, FixedClock(at("2026-11-20T10:00")))
    ours = runner.ledger.claim("risk_checks", at("2026-11-20T09:45"), trading_date=date(2026, 11, 20),
                               origin="schedule")
    with session_factory.begin() as session:
        session.add(JobRun(job_name="risk_checks", user_id=runner.settings.user_id, dry_run=True,
                           scheduled_for=at("2026-11-20T09:30"), trading_date=date(2026, 11, 20), origin="schedule",
                           outcome="running", started_at=at("2026-11-20T09:30"), host=socket.gethostname()[:255],
                           pid=os.getpid(), instance_id=uuid.uuid4().hex, lease_until=at("2026-11-20T10:05")))
    assert runner.expire_dead_runs() == 0
    with session_factory() as session:
        leases = dict(session.execute(select(JobRun.id, JobRun.lease_until)).all())
    [theirs] = set(leases) - {ours}
    assert leases[theirs] == at("2026-11-20T10:05")  # left as it was
    assert leases[ours] > at("2026-11-20T10:00")


def test_a_job_that_never_ran_here_has_nothing_to_catch_up(session_factory, krx_calendar):
    runner = make_runner(session_factory, krx_calendar, FixedClock(at("2026-11-20T10:10")))
    assert runner.fires_missed_during_downtime(at("2026-11-20T10:10")) == []


def test_history_and_last_runs_read_back_the_ledger(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T16:00:01"))
    runner = make_runner(session_factory, krx_calendar, clock,
                         data_collection="succeed", indicator_calculation="explode")
    runner.run_fire("data_collection", at("2026-11-20T16:00"))
    clock.set(at("2026-11-20T17:00:01"))
    runner.run_fire("indicator_calculation", at("2026-11-20T17:00"))
    history = runner.ledger.history(limit=10)
    assert [run.job_name for run in history] == ["indicator_calculation", "data_collection"]
    assert [run.job_name for run in runner.ledger.history(job_name="data_collection")] == ["data_collection"]
    last = runner.ledger.last_runs()
    assert {name: run.outcome for name, run in last.items()} == {
        "data_collection": "success", "indicator_calculation": "failed"}


def test_a_batch_writes_its_unchanged_fires_with_the_next_claim_and_keeps_them_when_the_claim_is_refused(
        session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-17T22:00"))
    runner = make_runner(session_factory, krx_calendar, clock)
    # another run holds data_collection's fire of the 18th
    runner.ledger.claim("data_collection", at("2026-11-18T16:00"), trading_date=date(2026, 11, 18), origin="simulate")
    with runner.batching_unchanged():
        for moment in ("2026-11-17T22:00", "2026-11-17T22:30", "2026-11-17T23:00"):
            clock.set(at(moment))
            runner.run_fire("risk_checks", at(moment), origin="simulate")
        clock.set(at("2026-11-18T16:00"))
        assert runner.run_fire("data_collection", at("2026-11-18T16:00"), origin="simulate") is None
        assert ("risk_checks", at("2026-11-17T23:00"), "skipped") in [  # kept though the claim was refused
            (row.job_name, row.scheduled_for, row.outcome) for row in ledger_rows(session_factory)]
        clock.set(at("2026-11-18T16:30"))
        runner.run_fire("risk_checks", at("2026-11-18T16:30"), origin="simulate")
    assert [(row.job_name, row.scheduled_for, row.outcome) for row in ledger_rows(session_factory)] == [
        ("data_collection", at("2026-11-18T16:00"), "running"),
        ("risk_checks", at("2026-11-17T22:00"), "success"), ("risk_checks", at("2026-11-17T22:30"), "success"),
        ("risk_checks", at("2026-11-17T23:00"), "skipped"), ("risk_checks", at("2026-11-18T16:30"), "success")]


def test_a_batch_writes_its_unchanged_fires_when_it_ends_and_a_stop_is_reported_over_a_failed_write(
        session_factory, krx_calendar, monkeypatch):
    # 22:00 opens the paper account, 22:30 is the first check to find it: 23:00 finds what 22:30 read
    clock = FixedClock(at("2026-11-17T22:00"))
    runner = make_runner(session_factory, krx_calendar, clock)
    with runner.batching_unchanged():
        records = []
        for moment in ("2026-11-17T22:00", "2026-11-17T22:30", "2026-11-17T23:00"):
            clock.set(at(moment))
            records.append(runner.run_fire("risk_checks", at(moment), origin="simulate"))
        assert [row.scheduled_for for row in ledger_rows(session_factory)] == [
            at("2026-11-17T22:00"), at("2026-11-17T22:30")]
    assert [(record.run_id == 0, record.outcome) for record in records if record is not None] == [
        (False, Outcome.SUCCESS), (False, Outcome.SUCCESS), (True, Outcome.SKIPPED)]
    assert [(row.scheduled_for, row.outcome, row.reason) for row in ledger_rows(session_factory)] == [
        (at("2026-11-17T22:00"), "success", None), (at("2026-11-17T22:30"), "success", None),
        (at("2026-11-17T23:00"), "skipped",
         "unchanged since the run of 2026-11-17T22:30:00+09:00: nothing it reads has changed")]

    def unwritable(rows: Any) -> None:
        raise OperationalError("INSERT INTO job_runs", {}, Exception("disk I/O error"))

    monkeypatch.setattr(runner.ledger, "write_skipped", unwritable)
    with pytest.raises(KeyboardInterrupt), runner.batching_unchanged():  # not the failed write
        clock.set(at("2026-11-17T23:30"))
        assert runner.run_fire("risk_checks", at("2026-11-17T23:30"), origin="simulate").run_id == 0
        raise KeyboardInterrupt
