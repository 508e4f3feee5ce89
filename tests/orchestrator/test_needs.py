"""Declared dependencies: a job's missing upstream work runs first, each as its own
ledger row, on SQLite and PostgreSQL.

The real services run the first test (a simulated market of 30 tickers); the others run
the real registry's schedules and needs with test entry points and a test probe
(``fake_services.present``: the output of a (job, trading date) is there once
``fake_services.produce`` did it).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.common.clock import FixedClock
from services.common.job_api import Outcome
from services.orchestrator.jobs import JOBS, REGISTRY, PostClose, PreOpen, build_triggers
from services.orchestrator.runner import JobRunner
from services.watchlist_manager.models import WatchlistRun
from tests.conftest import make_settings
from tests.orchestrator import fake_services
from tests.orchestrator.test_runs import ledger_rows

KST = ZoneInfo("Asia/Seoul")
D19, D20 = date(2026, 11, 19), date(2026, 11, 20)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=KST)


@pytest.fixture(autouse=True)
def _clear_fakes() -> None:
    fake_services.CALLS.clear()
    fake_services.DONE.clear()


def faked(**entry_points: str) -> dict[str, Any]:
    """The real registry (schedules and needs) with test entry points, and the test
    probe for every job that declares one."""
    jobs = dict(REGISTRY)
    for name, function in entry_points.items():
        jobs[name] = replace(jobs[name], entry_point=f"tests.orchestrator.fake_services:{function}", state=None)
    for name, job in jobs.items():
        if job.output is not None:
            jobs[name] = replace(job, output=replace(job.output, probe="tests.orchestrator.fake_services:present"))
    return jobs


def runner_on(session_factory: Any, krx_calendar: Any, clock: FixedClock, jobs: dict[str, Any] = REGISTRY,
              **values: str) -> JobRunner:
    settings = make_settings(**values)
    return JobRunner(settings=settings, session_factory=session_factory, clock=clock, calendar=krx_calendar,
                     triggers=build_triggers(settings, krx_calendar), jobs=jobs)


def runs(session_factory: Any) -> list[tuple[Any, ...]]:
    """(job, fire time, trading date, origin, attempt, outcome) of every row, in claim order."""
    return [(row.job_name, row.scheduled_for, row.trading_date, row.origin, row.attempt, row.outcome)
            for row in ledger_rows(session_factory)]


# --- the real services -------------------------------------------------------------------------


def test_a_watchlist_update_without_indicators_or_data_first_records_their_catch_up_runs_then_succeeds(
        session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T18:00:01"))
    market = {"simulated_universe": "30", "bootstrap_sessions": "5"}
    alice = runner_on(session_factory, krx_calendar, clock, user_id="alice", **market)
    record = alice.run_fire("watchlist_update", at("2026-11-20T18:00"))
    assert record is not None and record.outcome is Outcome.SUCCESS
    assert runs(session_factory) == [
        ("watchlist_update", at("2026-11-20T18:00"), D20, "schedule", 1, "success"),
        ("indicator_calculation", at("2026-11-20T17:00"), D20, "catch_up", 1, "success"),  # its own fire
        ("data_collection", at("2026-11-20T16:00"), D20, "catch_up", 1, "success"),
    ]
    [*_, data] = ledger_rows(session_factory)
    assert data.summary["sessions_collected"] == 240  # the lookback the indicators of 11-20 read

    # another account: the data and indicators are there (no row of its own says so); only its list runs
    bob = runner_on(session_factory, krx_calendar, clock, user_id="bob", **market)
    assert bob.run_now("watchlist_update", D20).outcome is Outcome.SUCCESS
    assert [(row.job_name, row.user_id, row.origin) for row in ledger_rows(session_factory)[3:]] == [
        ("watchlist_update", "bob", "manual")]
    with session_factory() as session:
        assert sorted(session.scalars(select(WatchlistRun.user_id).where(WatchlistRun.date == D20))) == [
            "alice", "bob"]


# --- the runner, on test services --------------------------------------------------------------


def test_a_signal_run_with_the_watchlist_missing_records_the_upstream_chain_of_the_previous_session(
        session_factory, krx_calendar):
    jobs = faked(signal_generation="produce", watchlist_update="produce", indicator_calculation="produce",
                 data_collection="produce")
    clock = FixedClock(at("2026-11-20T08:45:01"))
    record = runner_on(session_factory, krx_calendar, clock, jobs).run_fire("signal_generation",
                                                                           at("2026-11-20T08:45"))
    assert record is not None and record.outcome is Outcome.SUCCESS
    assert runs(session_factory) == [
        ("signal_generation", at("2026-11-20T08:45"), D20, "schedule", 1, "success"),
        # each under its own fire of 11-19, the exam day: it closed at 16:30, an hour late
        ("watchlist_update", at("2026-11-19T19:00"), D19, "catch_up", 1, "success"),
        ("indicator_calculation", at("2026-11-19T18:00"), D19, "catch_up", 1, "success"),
        ("data_collection", at("2026-11-19T17:00"), D19, "catch_up", 1, "success"),
    ]
    assert fake_services.CALLS == [("data_collection", "2026-11-19"), ("indicator_calculation", "2026-11-19"),
                                   ("watchlist_update", "2026-11-19"), ("signal_generation", "2026-11-20")]


def test_upstream_work_already_present_records_nothing_new(session_factory, krx_calendar):
    fake_services.DONE.add(("watchlist_update", "2026-11-19"))  # e.g. written by a replay: no row says so
    jobs = faked(signal_generation="produce", watchlist_update="explode", indicator_calculation="explode",
                 data_collection="explode")
    clock = FixedClock(at("2026-11-20T08:45:01"))
    record = runner_on(session_factory, krx_calendar, clock, jobs).run_fire("signal_generation",
                                                                           at("2026-11-20T08:45"))
    assert record is not None and record.outcome is Outcome.SUCCESS
    assert [row[0] for row in runs(session_factory)] == ["signal_generation"]
    assert fake_services.CALLS == [("signal_generation", "2026-11-20")]


def test_an_upstream_that_fails_makes_the_job_skipped_with_input_missing(session_factory, krx_calendar):
    jobs = faked(watchlist_update="produce", indicator_calculation="produce", data_collection="explode")
    clock = FixedClock(at("2026-11-20T18:00:01"))
    record = runner_on(session_factory, krx_calendar, clock, jobs).run_fire("watchlist_update",
                                                                           at("2026-11-20T18:00"))
    assert record is not None and record.outcome is Outcome.SKIPPED
    watchlist, indicators, data = ledger_rows(session_factory)
    assert (data.job_name, data.origin, data.outcome, data.error) == (
        "data_collection", "catch_up", "failed", "RuntimeError: provider answered 503")
    assert (indicators.outcome, indicators.reason) == ("skipped", (
        f"input missing: no market data for 2026-11-20 (data_collection run {data.id} failed: "
        "RuntimeError: provider answered 503)"))
    assert (watchlist.outcome, watchlist.reason) == ("skipped", (
        f"input missing: no indicators for 2026-11-20 (indicator_calculation run {indicators.id} skipped: "
        f"{indicators.reason})"))
    assert fake_services.CALLS == [("data_collection", "2026-11-20")]  # neither job itself ran


def test_an_upstream_that_skips_makes_the_job_skipped_with_its_reason(session_factory, krx_calendar):
    jobs = faked(indicator_calculation="produce", data_collection="skip_input_missing")
    clock = FixedClock(at("2026-11-20T17:00:01"))
    record = runner_on(session_factory, krx_calendar, clock, jobs).run_fire("indicator_calculation",
                                                                           at("2026-11-20T17:00"))
    assert record is not None and record.outcome is Outcome.SKIPPED
    assert record.reason == (f"input missing: no market data for 2026-11-20 (data_collection run "
                             f"{record.run_id + 1} skipped: input missing: no data_collection for this date)")


def test_an_upstream_the_database_failed_fails_the_job_with_that_error(session_factory, krx_calendar):
    jobs = faked(indicator_calculation="produce", data_collection="database_refuses")
    clock = FixedClock(at("2026-11-20T17:00:01"))
    record = runner_on(session_factory, krx_calendar, clock, jobs).run_fire("indicator_calculation",
                                                                           at("2026-11-20T17:00"))
    assert record is not None and record.outcome is Outcome.FAILED
    assert record.error == (f"database error: database is locked (in data_collection run {record.run_id + 1} "
                            "for 2026-11-20)")


def test_a_fire_of_the_upstream_that_failed_before_runs_again_as_its_next_attempt(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T16:00:01"))
    broken = runner_on(session_factory, krx_calendar, clock, faked(data_collection="explode"))
    assert broken.run_fire("data_collection", at("2026-11-20T16:00")).outcome is Outcome.FAILED
    clock.set(at("2026-11-20T17:00:01"))
    fixed = runner_on(session_factory, krx_calendar, clock,
                      faked(data_collection="produce", indicator_calculation="produce"))
    assert fixed.run_fire("indicator_calculation", at("2026-11-20T17:00")).outcome is Outcome.SUCCESS
    assert runs(session_factory) == [
        ("data_collection", at("2026-11-20T16:00"), D20, "schedule", 1, "failed"),
        ("indicator_calculation", at("2026-11-20T17:00"), D20, "schedule", 1, "success"),
        ("data_collection", at("2026-11-20T16:00"), D20, "catch_up", 2, "success"),
    ]


def test_an_upstream_still_running_skips_the_job_and_runs_nothing_beside_it(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T17:00:01"))
    runner = runner_on(session_factory, krx_calendar, clock,
                       faked(data_collection="produce", indicator_calculation="produce"))
    running = runner.ledger.claim("data_collection", at("2026-11-20T16:00"), trading_date=D20, origin="schedule")
    record = runner.run_fire("indicator_calculation", at("2026-11-20T17:00"))
    assert record is not None and record.outcome is Outcome.SKIPPED
    assert (record.reason or "").startswith(
        f"input missing: no market data for 2026-11-20 (data_collection: previous run still running (run {running}, "
        "fire 2026-11-20T16:00:00+09:00, ")
    assert [row[0] for row in runs(session_factory)] == ["data_collection", "indicator_calculation"]
    assert fake_services.CALLS == []


def test_an_upstream_whose_fire_has_not_come_runs_now_and_its_fire_still_runs(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T12:00:00"))
    runner = runner_on(session_factory, krx_calendar, clock,
                       faked(data_collection="produce", indicator_calculation="produce"))
    assert runner.run_now("indicator_calculation", D20).outcome is Outcome.SUCCESS
    clock.set(at("2026-11-20T16:00:01"))
    assert runner.run_fire("data_collection", at("2026-11-20T16:00")).outcome is Outcome.SUCCESS
    assert runs(session_factory) == [
        ("indicator_calculation", at("2026-11-20T12:00"), D20, "manual", 1, "success"),
        ("data_collection", at("2026-11-20T12:00"), D20, "catch_up", 1, "success"),
        ("data_collection", at("2026-11-20T16:00"), D20, "schedule", 1, "success"),
    ]


def test_a_replays_upstream_runs_are_the_replays_own(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T17:00"))
    runner = runner_on(session_factory, krx_calendar, clock,
                       faked(data_collection="produce", indicator_calculation="produce"))
    runner.run_fire("indicator_calculation", at("2026-11-20T17:00"), origin="simulate")
    assert [(row[0], row[3]) for row in runs(session_factory)] == [
        ("indicator_calculation", "simulate"), ("data_collection", "simulate")]


def test_a_job_on_a_day_that_is_no_session_runs_no_upstream(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-21T12:00"))  # a Saturday
    runner = runner_on(session_factory, krx_calendar, clock,
                       faked(data_collection="produce", indicator_calculation="produce"))
    record = runner.run_now("indicator_calculation", date(2026, 11, 21))
    assert record.outcome is Outcome.SKIPPED and (record.reason or "").startswith("not a session")
    assert len(runs(session_factory)) == 1 and fake_services.CALLS == []


# --- the registry ----------------------------------------------------------------------------


def test_every_job_needed_runs_once_per_session_declares_its_output_and_no_need_loops():
    for job in JOBS:
        for need in job.needs:
            upstream = REGISTRY[need.job]
            assert isinstance(upstream.schedule, (PreOpen, PostClose)), need
            assert upstream.output is not None, need
    for job in JOBS:  # following the needs from any job ends
        seen, todo = set(), [job.name]
        while todo:
            name = todo.pop()
            assert name not in seen, f"{job.name}'s needs come back to {name}"
            seen.add(name)
            todo.extend(need.job for need in REGISTRY[name].needs)


def test_the_registry_declares_the_pipeline_of_a_trading_day():
    assert {job.name: [need.describe() for need in job.needs] for job in JOBS if job.needs} == {
        "indicator_calculation": ["data_collection of the same session"],
        "watchlist_update": ["indicator_calculation of the same session"],
        "signal_generation": ["watchlist_update of the previous session"],
    }
    assert {job.name: job.output.name for job in JOBS if job.output} == {
        "data_collection": "market data", "indicator_calculation": "indicators", "watchlist_update": "watchlist"}
