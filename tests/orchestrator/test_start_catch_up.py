"""The history catch-up of ``start``: the first start fills what is missing; a restart
with nothing missing records nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from services.common.clock import FixedClock
from services.orchestrator import catch_up
from services.orchestrator.scheduler import log_ready
from tests.orchestrator.test_runs import at, ledger_rows, make_runner

SMALL = {"simulated_universe": "20"}


def test_a_restart_with_nothing_missing_writes_no_ledger_rows(session_factory: Any, krx_calendar: Any) -> None:
    clock = FixedClock(at("2026-11-20T20:00:00"))  # Friday evening: the session's data is due
    first = catch_up.history_on_start(make_runner(session_factory, krx_calendar, clock, values=SMALL), clock.now())
    assert [(r.job_name, r.outcome.value) for r in first] == [
        ("data_collection", "success"), ("indicator_calculation", "success"), ("watchlist_update", "success")]
    rows = [(r.id, r.job_name, r.outcome) for r in ledger_rows(session_factory)]

    restarted = make_runner(session_factory, krx_calendar, clock, values=SMALL)
    assert catch_up.history_on_start(restarted, clock.now()) == []
    assert [(r.id, r.job_name, r.outcome) for r in ledger_rows(session_factory)] == rows


def test_the_ready_line_names_the_next_fire(session_factory: Any, krx_calendar: Any,
                                            caplog: pytest.LogCaptureFixture) -> None:
    clock = FixedClock(at("2026-11-20T20:10:00"))  # Friday evening: risk checks every 30 minutes
    with caplog.at_level(logging.INFO, logger="services.orchestrator.scheduler"):
        log_ready(make_runner(session_factory, krx_calendar, clock))
    ready, started = [r.getMessage() for r in caplog.records]
    assert ready == "ready: next fire risk_checks at 2026-11-20T20:30+09:00"
    assert started.startswith("the scheduler of default_user (paper) started on ")  # the incident, for the channels


def test_the_garbage_collector_is_as_before_after_the_catch_up_even_when_it_fails(
    session_factory: Any, krx_calendar: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    clock = FixedClock(at("2026-11-20T20:00:00"))
    runner = make_runner(session_factory, krx_calendar, clock, values=SMALL)
    during: list[tuple[int, tuple[int, ...]]] = []

    def fails(*_args: Any, **_kwargs: Any) -> Any:
        during.append((gc.get_freeze_count(), gc.get_threshold()))
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_now", fails)
    before = (gc.get_freeze_count(), gc.get_threshold())
    with pytest.raises(KeyboardInterrupt):
        catch_up.history_on_start(runner, clock.now())
    assert during and during[0][0] > 0 and during[0][1][0] >= 5_000  # older objects frozen, fewer passes
    assert (gc.get_freeze_count(), gc.get_threshold()) == before
