"""One account per instance: an instance claims, recovers and re-runs the fires of its
own user and mode only; another account's lapsed run waits for its own instance
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common.clock import FixedClock
from services.common.database import create_db_engine, make_session_factory
from tests.conftest import in_process_cli
from tests.orchestrator import fake_services
from tests.orchestrator.test_runs import ledger_rows, make_runner

KST = ZoneInfo("Asia/Seoul")
BOB_LIVE = {"user_id": "bob", "dry_run": "false"}
ALICE_PAPER = {"user_id": "alice"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=KST)


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    fake_services.CALLS.clear()
    fake_services.ACCOUNTS.clear()


def lapsed_run_of(session_factory: Any, krx_calendar: Any, clock: FixedClock, account: dict[str, str]) -> int:
    """A 10:00 risk check claimed by an instance of ``account`` that then died."""
    dead = make_runner(session_factory, krx_calendar, clock, values=account)
    run_id = dead.ledger.claim("risk_checks", at("2026-11-20T10:00"), trading_date=at("2026-11-20T10:00").date(),
                               origin="schedule")
    assert run_id is not None
    return run_id


def alerts_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if getattr(r, "alert", None) is not None]


def test_a_paper_instance_leaves_another_users_lapsed_live_run_alone(session_factory, krx_calendar, caplog):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    run_id = lapsed_run_of(session_factory, krx_calendar, clock, BOB_LIVE)
    clock.set(at("2026-11-20T10:01:01"))  # bob's 60 s lease has lapsed: bob's own instances sweep soon
    alice = make_runner(session_factory, krx_calendar, clock, values=ALICE_PAPER, risk_checks="record_account")
    with caplog.at_level(logging.ERROR):
        assert alice.recover_abandoned() == []
        assert alerts_in(caplog) == []
        clock.set(at("2026-11-20T10:02:01"))  # a whole lease later no instance of bob's took it over
        assert alice.recover_abandoned() == []
        assert alice.recover_abandoned() == []  # a third sweep: no second alert
    [row] = ledger_rows(session_factory)
    assert (row.id, row.user_id, row.dry_run, row.outcome) == (run_id, "bob", False, "running")
    assert fake_services.ACCOUNTS == []
    assert alerts_in(caplog) == [
        f"risk_checks 2026-11-20: run {run_id} of bob (LIVE) lapsed and waits for an instance of that account; "
        "this instance acts for alice (paper) only"]
    assert alice.ledger.lapsed_elsewhere(clock.now())[0].id == run_id


def test_the_lapsed_run_is_recovered_by_an_instance_of_its_own_account(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    lapsed_run_of(session_factory, krx_calendar, clock, BOB_LIVE)
    clock.set(at("2026-11-20T10:01:01"))
    make_runner(session_factory, krx_calendar, clock, values=ALICE_PAPER, risk_checks="record_account") \
        .recover_abandoned()
    bob = make_runner(session_factory, krx_calendar, clock, values=BOB_LIVE, risk_checks="record_account")
    [record] = bob.recover_abandoned()
    assert record.outcome.value == "success"
    assert fake_services.ACCOUNTS == [("risk_checks", "bob", False)]
    assert [(r.user_id, r.dry_run, r.attempt, r.outcome, r.origin) for r in ledger_rows(session_factory)] == [
        ("bob", False, 1, "failed", "schedule"), ("bob", False, 2, "success", "recovery")]


def test_an_instance_leaves_the_lapsed_runs_of_its_users_other_mode_alone(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    lapsed_run_of(session_factory, krx_calendar, clock, {"dry_run": "false"})
    clock.set(at("2026-11-20T10:01:01"))
    paper = make_runner(session_factory, krx_calendar, clock, risk_checks="record_account")
    assert paper.recover_abandoned() == []
    assert fake_services.ACCOUNTS == []
    assert [r.outcome for r in ledger_rows(session_factory)] == ["running"]


def test_a_paper_and_a_live_instance_of_one_user_each_run_their_own_fire(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:01"))
    paper = make_runner(session_factory, krx_calendar, clock, risk_checks="record_account")
    live = make_runner(session_factory, krx_calendar, clock, values={"dry_run": "false"},
                       risk_checks="record_account")
    assert paper.run_fire("risk_checks", at("2026-11-20T10:00")) is not None
    assert live.run_fire("risk_checks", at("2026-11-20T10:00")) is not None
    assert sorted(fake_services.ACCOUNTS) == [("risk_checks", "default_user", False),
                                              ("risk_checks", "default_user", True)]


def test_a_ledger_cannot_abandon_another_accounts_run(session_factory, krx_calendar):
    clock = FixedClock(at("2026-11-20T10:00:00"))
    run_id = lapsed_run_of(session_factory, krx_calendar, clock, BOB_LIVE)
    clock.set(at("2026-11-20T10:01:01"))
    alice = make_runner(session_factory, krx_calendar, clock, values=ALICE_PAPER)
    assert alice.ledger.abandon(run_id, clock.now(), "abandoned: test") is False
    assert [r.outcome for r in ledger_rows(session_factory)] == ["running"]


def test_status_lists_another_accounts_lapsed_run_as_waiting_for_its_own_instance(tmp_path, monkeypatch,
                                                                                    calendar_cache_dir):
    cli = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, at("2026-11-20T10:05"))
    assert cli("migrate").exit_code == 0
    factory = make_session_factory(create_db_engine(f"sqlite:///{tmp_path / 'data' / 'orchestrator.db'}"))
    lapsed_run_of(factory, None, FixedClock(at("2026-11-20T10:00:00")), BOB_LIVE)
    result = cli("status", "--format", "json")
    assert result.exit_code == 0, result.stderr
    [waiting] = json.loads(result.stdout)["waiting_elsewhere"]
    assert waiting == {"run_id": 1, "job": "risk_checks", "user_id": "bob", "dry_run": False,
                       "scheduled_for": "2026-11-20T10:00:00+09:00", "lease_until": "2026-11-20T10:01:00+09:00"}
    table = cli("status", env={"COLUMNS": "200"})
    assert ("waiting: run 1 (risk_checks, fire 2026-11-20 10:00) of bob (LIVE) lost its holder; an instance of "
            "that account recovers it, not this one") in table.stdout
