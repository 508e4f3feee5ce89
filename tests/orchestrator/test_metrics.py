"""``GET /metrics``'s body (``services.orchestrator.api.metrics``), parsed as Prometheus
parses it and checked against what the database says, worked out here on its own.

On an empty database every family is there, with zero counts and no account figures.
On a replayed week (2026-11-16 to 11-20, the simulated market, every job) with, by
hand through the real run ledger: scheduled fires with known lateness and duration, a
missed fire, a manual run, and runs of two other accounts (another user; the same
user's live account) that must not be counted.

SQLite always; PostgreSQL as well when TEST_DATABASE_URL is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from services.common.clock import FixedClock
from services.common.job_api import Account, Outcome
from services.orchestrator.api.metrics import DURATION_BUCKETS, HISTOGRAM_WINDOW, LATENESS_BUCKETS, render_metrics
from services.orchestrator.jobs import JOBS
from services.orchestrator.ledger import MANUAL, SCHEDULE, RunLedger
from services.orchestrator.models import JobRun
from services.orchestrator.ops import halts
from services.orchestrator.replay import simulate
from services.orchestrator.runtime import Runtime
from services.trading_engine.models import PaperAccount, PortfolioSnapshot, PositionRow
from tests.conftest import make_settings, scratch_database

KST = ZoneInfo("Asia/Seoul")
START, END = date(2026, 11, 16), date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 20, 0, tzinfo=KST)  # after the week's last watchlist update
USER = "default_user"
JOB_NAMES = [job.name for job in JOBS]
FAMILIES = {
    "krx_orchestrator_account_info": "gauge", "krx_orchestrator_runs": "counter",
    "krx_orchestrator_runs_in_progress": "gauge", "krx_orchestrator_run_duration_seconds": "histogram",
    "krx_orchestrator_fire_lateness_seconds": "histogram",
    "krx_orchestrator_last_success_timestamp_seconds": "gauge",
    "krx_orchestrator_next_fire_timestamp_seconds": "gauge", "krx_orchestrator_equity_krw": "gauge",
    "krx_orchestrator_cash_krw": "gauge", "krx_orchestrator_exposure_ratio": "gauge",
    "krx_orchestrator_drawdown_ratio": "gauge", "krx_orchestrator_day_pnl_krw": "gauge",
    "krx_orchestrator_portfolio_snapshot_timestamp_seconds": "gauge",
    "krx_orchestrator_open_positions": "gauge", "krx_orchestrator_halted": "gauge",
    "krx_orchestrator_calendar_days_left": "gauge",
}
ACCOUNT_GAUGES = ["equity_krw", "cash_krw", "exposure_ratio", "drawdown_ratio", "day_pnl_krw",
                  "portfolio_snapshot_timestamp_seconds"]
#: by hand, in the last 24 hours, through the real ledger: (job, fire, started after it,
#: lasted, outcome, origin). Risk checks fire on :00 and :30, so :07 and :17 are free.
HAND_RUNS = [
    ("risk_checks", datetime(2026, 11, 20, 19, 7, tzinfo=KST), 0.07, 2.0, Outcome.SUCCESS, SCHEDULE),
    ("risk_checks", datetime(2026, 11, 20, 19, 17, tzinfo=KST), 0.3, 0.02, Outcome.FAILED, SCHEDULE),
    ("risk_checks", datetime(2026, 11, 20, 19, 27, tzinfo=KST), 40.0, 0.6, Outcome.SUCCESS, MANUAL),
]
MISSED_FIRE = ("data_collection", datetime(2026, 11, 20, 16, 7, tzinfo=KST))


def families(runtime: Runtime) -> dict[str, Any]:
    body, content_type = render_metrics(runtime)
    assert content_type == CONTENT_TYPE_LATEST
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def samples(family: Any, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
    """The family's samples named ``<family><suffix>``, by their labels."""
    return {tuple(sorted(sample.labels.items())): sample.value for sample in family.samples
            if sample.name == family.name + suffix}


def value(metrics: dict[str, Any], name: str) -> float | None:
    found = samples(metrics["krx_orchestrator_" + name])
    return found[()] if found else None


def by_job(family: Any, suffix: str = "") -> dict[str, float]:
    return {dict(labels)["job"]: number for labels, number in samples(family, suffix).items()}


def histogram(family: Any, job: str) -> tuple[dict[str, float], float, float]:
    """A job's buckets (by ``le``), count and sum."""
    buckets = {sample.labels["le"]: sample.value for sample in family.samples
               if sample.name == family.name + "_bucket" and sample.labels["job"] == job}
    return buckets, by_job(family, "_count")[job], by_job(family, "_sum")[job]


# --- an empty database -------------------------------------------------------------------------------


@pytest.fixture
def empty(database_url: str, calendar_cache_dir: Path) -> Iterator[Runtime]:
    runtime = Runtime.create(make_settings(database_url=database_url, cache_dir=str(calendar_cache_dir)),
                             clock=FixedClock(NOW))
    yield runtime
    runtime.close()


def test_an_empty_database_gives_every_family_with_zero_counts_and_no_account_figures(empty: Runtime) -> None:
    metrics = families(empty)
    assert {name: family.type for name, family in metrics.items()} == FAMILIES
    runs = samples(metrics["krx_orchestrator_runs"], "_total")
    assert runs == {(("job", job), ("outcome", outcome)): 0.0 for job in JOB_NAMES
                    for outcome in ("success", "failed", "skipped", "missed")}
    assert by_job(metrics["krx_orchestrator_runs_in_progress"]) == dict.fromkeys(JOB_NAMES, 0.0)
    for name in ("run_duration_seconds", "fire_lateness_seconds"):
        family = metrics["krx_orchestrator_" + name]
        assert by_job(family, "_count") == dict.fromkeys(JOB_NAMES, 0.0)
        assert set(by_job(family, "_bucket").values()) == {0.0}
    assert samples(metrics["krx_orchestrator_last_success_timestamp_seconds"]) == {}
    assert all(value(metrics, name) is None for name in ACCOUNT_GAUGES)
    assert value(metrics, "open_positions") == 0
    assert value(metrics, "halted") == 0
    assert samples(metrics["krx_orchestrator_account_info"]) == {(("mode", "paper"), ("user_id", USER)): 1.0}
    assert value(metrics, "calendar_days_left") == (empty.calendar.valid_through - NOW.date()).days
    assert value(metrics, "calendar_days_left") == 41  # reviewed through 2026-12-31; NOW is 2026-11-20


def test_next_fires_are_the_triggers_own_and_a_disabled_job_has_none(empty: Runtime) -> None:
    expected = {job: empty.triggers[job].get_next_fire_time(None, NOW).timestamp() for job in JOB_NAMES}
    assert by_job(families(empty)["krx_orchestrator_next_fire_timestamp_seconds"]) == expected
    at = {job: datetime(2026, 11, 23, h, m, tzinfo=KST).timestamp() for job, (h, m) in {  # the Monday after NOW
        "signal_generation": (8, 45), "position_monitoring": (9, 0), "data_collection": (16, 0),
        "indicator_calculation": (17, 0), "watchlist_update": (18, 0)}.items()}
    at["risk_checks"] = datetime(2026, 11, 20, 20, 0, tzinfo=KST).timestamp()  # NOW is on its half-hour: it fires now
    assert expected == at
    disabled = Runtime.create(make_settings(database_url=empty.settings.database_url,
                                            cache_dir=empty.settings.cache_dir, enable_risk_checks="false"),
                              clock=FixedClock(NOW))
    try:
        shown = by_job(families(disabled)["krx_orchestrator_next_fire_timestamp_seconds"])
    finally:
        disabled.close()
    assert shown == {job: fire for job, fire in expected.items() if job != "risk_checks"}


def test_a_halt_sets_halted_and_a_resume_clears_it(empty: Runtime) -> None:
    halts.halt(empty, "metrics test")
    assert value(families(empty), "halted") == 1
    halts.resume(empty)
    assert value(families(empty), "halted") == 0


# --- a replayed week ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def replayed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             calendar_cache_dir: Path) -> Iterator[str]:
    """The URL of a database holding the replayed week and the hand-made runs."""
    with scratch_database(request.param, tmp_path_factory.mktemp("metrics")) as url:
        settings = make_settings(database_url=url, cache_dir=str(calendar_cache_dir), simulated_universe="30",
                                 bootstrap_sessions="130")
        simulation = simulate(settings, START, END)
        simulation.runtime.close()
        assert simulation.failed == 0
        _write_hand_runs(url, calendar_cache_dir)
        yield url


def _write_hand_runs(url: str, cache_dir: Path) -> None:
    clock = FixedClock(NOW)
    runtime = Runtime.create(make_settings(database_url=url, cache_dir=str(cache_dir)), clock=clock)
    try:
        factory, lease = runtime.session_factory(), timedelta(minutes=5)
        ledger = RunLedger(factory, clock, lease, Account(USER, True))
        for job, fire, late, lasted, outcome, origin in HAND_RUNS:
            clock.set(fire + timedelta(seconds=late))
            run_id = ledger.claim(job, fire, trading_date=END, origin=origin)
            assert run_id is not None
            clock.advance(timedelta(seconds=lasted))
            ledger.finish(run_id, outcome)
        clock.set(NOW)
        job, fire = MISSED_FIRE
        assert ledger.record_many([(job, fire, END)], Outcome.MISSED, "missed by hand", origin=SCHEDULE)
        still = ledger.claim("watchlist_update", datetime(2026, 11, 20, 19, 37, tzinfo=KST), trading_date=END,
                             origin=SCHEDULE)  # still running
        assert still is not None
        for account in (Account("someone_else", True), Account(USER, False)):  # not this account
            other = RunLedger(factory, clock, lease, account)
            for job, fire, _, _, outcome, origin in HAND_RUNS:
                run_id = other.claim(job, fire, trading_date=END, origin=origin)
                assert run_id is not None
                other.finish(run_id, outcome)
    finally:
        runtime.close()


@pytest.fixture
def paper(replayed: str, calendar_cache_dir: Path) -> Iterator[Runtime]:
    runtime = Runtime.create(make_settings(database_url=replayed, cache_dir=str(calendar_cache_dir)),
                             clock=FixedClock(NOW))
    yield runtime
    runtime.close()


def _rows(runtime: Runtime, statement: Any) -> list[Any]:
    with runtime.session_factory()() as session:
        return list(session.execute(statement).all())


MINE = (JobRun.user_id == USER, JobRun.dry_run.is_(True))


def test_runs_total_is_the_account_s_ledger_count_by_job_and_outcome(paper: Runtime) -> None:
    counted = {(job, outcome): count for job, outcome, count in _rows(paper, select(
        JobRun.job_name, JobRun.outcome, func.count()).where(*MINE).group_by(JobRun.job_name, JobRun.outcome))}
    everyone = sum(count for (count,) in _rows(paper, select(func.count()).select_from(JobRun)))
    metrics = families(paper)
    shown = {(dict(labels)["job"], dict(labels)["outcome"]): number
             for labels, number in samples(metrics["krx_orchestrator_runs"], "_total").items()}
    assert {key: number for key, number in shown.items() if number} == {
        key: count for key, count in counted.items() if key[1] != "running"}
    assert shown[("data_collection", "missed")] == 1 and shown[("risk_checks", "failed")] == 1
    assert sum(shown.values()) + 1 < everyone  # the other accounts' runs are in the ledger, not here
    assert by_job(metrics["krx_orchestrator_runs_in_progress"])["watchlist_update"] == 1


def test_the_histograms_are_the_window_s_runs_bucketed_here(paper: Runtime) -> None:
    since = NOW - HISTOGRAM_WINDOW
    rows = _rows(paper, select(JobRun.job_name, JobRun.outcome, JobRun.origin, JobRun.scheduled_for,
                               JobRun.started_at, JobRun.finished_at).where(*MINE, JobRun.scheduled_for >= since))
    metrics = families(paper)
    for name, bounds, of in (
            ("run_duration_seconds", DURATION_BUCKETS,
             lambda row: (row.finished_at - row.started_at).total_seconds()
             if row.outcome not in ("running", "missed") else None),
            ("fire_lateness_seconds", LATENESS_BUCKETS,
             lambda row: max(0.0, (row.started_at - row.scheduled_for).total_seconds())
             if row.origin in ("schedule", "catch_up") and row.outcome != "missed" else None)):
        for job in JOB_NAMES:
            observed = [seconds for row in rows if row.job_name == job and (seconds := of(row)) is not None]
            buckets, count, total = histogram(metrics["krx_orchestrator_" + name], job)
            assert buckets == {**{repr(bound): float(sum(1 for s in observed if s <= bound)) for bound in bounds},
                               "+Inf": float(len(observed))}, (name, job)
            assert (count, total) == (len(observed), pytest.approx(sum(observed), abs=1e-3)), (name, job)
    # the hand-made runs, by hand: two scheduled fires 0.07 s and 0.3 s late, the manual run not timed
    buckets, count, total = histogram(metrics["krx_orchestrator_fire_lateness_seconds"], "risk_checks")
    assert (buckets["0.05"], buckets["0.1"], buckets["0.5"], count) == (0, 1, 2, 2)
    assert total == pytest.approx(0.37, abs=1e-3)
    buckets, count, total = histogram(metrics["krx_orchestrator_run_duration_seconds"], "risk_checks")
    assert total == pytest.approx(2.62, abs=1e-3)  # the replay's runs take no virtual time


def test_last_success_is_each_job_s_latest_successful_finish(paper: Runtime) -> None:
    latest = dict(_rows(paper, select(JobRun.job_name, func.max(JobRun.finished_at)).where(
        *MINE, JobRun.outcome == "success").group_by(JobRun.job_name)))
    shown = by_job(families(paper)["krx_orchestrator_last_success_timestamp_seconds"])
    assert shown == {job: _aware(finished).timestamp() for job, finished in latest.items()}
    assert set(shown) == set(JOB_NAMES)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_the_account_figures_are_its_latest_snapshot_s(paper: Runtime) -> None:
    snapshots = _rows(paper, select(PortfolioSnapshot).where(
        PortfolioSnapshot.user_id == USER, PortfolioSnapshot.dry_run.is_(True)).order_by(PortfolioSnapshot.taken_at))
    (opening,) = _rows(paper, select(PaperAccount.initial_cash).where(PaperAccount.user_id == USER))[0]
    held = _rows(paper, select(PositionRow.ticker).where(PositionRow.user_id == USER, PositionRow.dry_run.is_(True),
                                                          PositionRow.quantity > 0))
    latest = snapshots[-1][0]
    previous = [row[0] for row in snapshots if row[0].trading_date < latest.trading_date][-1]
    peak = max([opening] + [row[0].equity for row in snapshots])
    metrics = families(paper)
    assert latest.trading_date == END and held  # the week traded, and holds positions
    assert value(metrics, "equity_krw") == latest.equity
    assert value(metrics, "cash_krw") == latest.cash
    assert value(metrics, "exposure_ratio") == pytest.approx(latest.exposure)
    assert value(metrics, "drawdown_ratio") == pytest.approx(1 - latest.equity / peak)
    assert value(metrics, "day_pnl_krw") == latest.equity - previous.equity
    assert value(metrics, "portfolio_snapshot_timestamp_seconds") == _aware(latest.taken_at).timestamp()
    assert value(metrics, "open_positions") == len(held)
    assert value(metrics, "halted") == 0


def test_the_live_account_of_the_same_user_has_its_own_figures(replayed: str, calendar_cache_dir: Path) -> None:
    runtime = Runtime.create(make_settings(database_url=replayed, cache_dir=str(calendar_cache_dir),
                                           dry_run="false"), clock=FixedClock(NOW))
    try:
        metrics = families(runtime)
    finally:
        runtime.close()
    runs = samples(metrics["krx_orchestrator_runs"], "_total")
    assert {labels: number for labels, number in runs.items() if number} == {
        (("job", "risk_checks"), ("outcome", "failed")): 1.0, (("job", "risk_checks"), ("outcome", "success")): 2.0}
    assert samples(metrics["krx_orchestrator_account_info"]) == {(("mode", "live"), ("user_id", USER)): 1.0}
    assert all(value(metrics, name) is None for name in ACCOUNT_GAUGES)  # never snapshotted
