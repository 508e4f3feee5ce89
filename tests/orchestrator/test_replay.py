"""Replays end to end: the real schedule, the real jobs, a virtual clock, SQLite.

The expected fire sequences are hand-written answer files (tests/data/replay/). No
week has both an exam day and a holiday (the exam is in mid-November, with no
holiday near it), so the exam week is replayed in full, and the new-year days around
the year-end closure, New Year's Day and the 10:00 first session are replayed
(without risk checks, to stay quick) for the determinism and resumption tests.

A replay into an empty database starts with signals whose input, the previous
session's watchlist, is missing: the runner produces it first (the registry's needs),
as runs of that session's watchlist, indicator and data fires, before the window.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from services.common.database import create_db_engine, make_session_factory
from services.common.job_api import Outcome
from services.data_collector.models import CollectedSession
from services.indicator_calculator.models import TechnicalIndicator
from services.orchestrator.jobs import JOB_NAMES, JOBS, build_triggers, enabled_jobs
from services.orchestrator.models import JobRun
from services.orchestrator.replay import Fire, replay_fires, replay_window, simulate
from services.trading_engine.models import FillRow, OrderRow, PaperAccount, PortfolioSnapshot, PositionRow, SignalRun
from services.watchlist_manager.models import WatchlistRun
from tests.conftest import DATA_DIR, in_process_cli, make_settings, subprocess_env

KST = ZoneInfo("Asia/Seoul")
ROOT = Path(__file__).resolve().parents[2]
EXAM_WEEK = (date(2026, 11, 16), date(2026, 11, 22))
SESSIONS = [date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]


def answer(name: str) -> list[tuple[str, str]]:
    """(``YYYY-MM-DD HH:MM``, job) for every fire of an answer file, in replay order."""
    fires = []
    for line in (DATA_DIR / "replay" / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        day, job, times = line.split()
        if "/" in times:
            span, step = times.split("/")
            first, last = (datetime.strptime(f"{day} {t}", "%Y-%m-%d %H:%M") for t in span.split("-"))
            moment = first
            while moment <= last:
                fires.append((moment.strftime("%Y-%m-%d %H:%M"), job))
                moment += timedelta(minutes=int(step))
        else:
            fires.append((f"{day} {times}", job))
    return sorted(fires, key=lambda fire: (fire[0], JOB_NAMES.index(fire[1])))


def replay_settings(directory: Path, cache_dir: Path, **values: str) -> Any:
    return make_settings(database_url=f"sqlite:///{directory / 'replay.db'}", cache_dir=str(cache_dir),
                         simulated_universe="30", bootstrap_sessions="130", **values)


def upstream_runs(rows: list[tuple[Any, ...]], day: date) -> list[tuple[str, str, date, str, str]]:
    """(job, fire time, trading date, origin, outcome) of the rows scheduled before
    ``day`` (the replay's first): the runs its first fires needed."""
    first = datetime.combine(day, datetime.min.time(), KST)
    return [(job, at.astimezone(KST).strftime("%Y-%m-%d %H:%M"), trading_date, origin, outcome)
            for job, at, trading_date, origin, outcome, *_ in rows if at < first]


def chain_before(day: str) -> list[tuple[str, str, date, str, str]]:
    """What the first signals of a replay into an empty database need before they run:
    session ``day``'s watchlist, its indicators, its market data, each run under its own
    fire of ``day`` and claimed in that order (each by the run that needs it)."""
    trading_date = date.fromisoformat(day)
    return [("watchlist_update", f"{day} 18:00", trading_date, "simulate", "success"),
            ("indicator_calculation", f"{day} 17:00", trading_date, "simulate", "success"),
            ("data_collection", f"{day} 16:00", trading_date, "simulate", "success")]


def ledger(runtime: Any) -> list[tuple[Any, ...]]:
    with runtime.session_factory()() as session:
        return [tuple(row) for row in session.execute(select(
            JobRun.job_name, JobRun.scheduled_for, JobRun.trading_date, JobRun.origin, JobRun.outcome,
            JobRun.reason, JobRun.error, JobRun.summary, JobRun.started_at, JobRun.finished_at).order_by(JobRun.id))]


def account(runtime: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every trading row of the replay, in a stable order."""
    tables = {"accounts": PaperAccount, "orders": OrderRow, "fills": FillRow, "positions": PositionRow,
              "snapshots": PortfolioSnapshot}
    with runtime.session_factory()() as session:
        return {name: [tuple(row) for row in session.execute(
            select(table.__table__).order_by(*table.__table__.primary_key.columns))]
            for name, table in tables.items()}


@pytest.fixture(scope="module")
def exam_week(tmp_path_factory: pytest.TempPathFactory, calendar_cache_dir: Path) -> Any:
    settings = replay_settings(tmp_path_factory.mktemp("exam-week"), calendar_cache_dir)
    simulation = simulate(settings, *EXAM_WEEK)
    yield simulation
    simulation.runtime.close()


def test_a_week_with_the_exam_day_replays_exactly_the_expected_fires_in_order(exam_week: Any) -> None:
    first = datetime.combine(EXAM_WEEK[0], datetime.min.time(), KST)
    ran = [(scheduled_for.astimezone(KST).strftime("%Y-%m-%d %H:%M"), job)
           for job, scheduled_for, *_ in ledger(exam_week.runtime) if scheduled_for >= first]
    assert ran == answer("exam_week_2026.txt")
    assert len(ran) == 5 * 31 + 7 * 48  # 5 sessions x (1 + 27 ticks + 3 post-close), 7 days of risk checks


def test_the_first_signals_run_the_missing_watchlist_indicators_and_data_of_the_session_before(
        exam_week: Any) -> None:
    rows = ledger(exam_week.runtime)
    assert upstream_runs(rows, EXAM_WEEK[0]) == chain_before("2026-11-13")  # Friday, before the week
    jobs = [job for job, *_ in rows]
    first_signals = jobs.index("signal_generation")  # after the night's risk checks; they come right after it
    assert jobs[first_signals:first_signals + 5] == ["signal_generation", "watchlist_update",
                                                     "indicator_calculation", "data_collection",
                                                     "position_monitoring"]
    [data] = [row for row in rows if row[0] == "data_collection" and row[2] == date(2026, 11, 13)]
    assert data[7]["sessions_collected"] == 240  # the lookback the indicators of 11-13 read


def test_every_fire_of_the_week_succeeds_and_is_marked_simulated(exam_week: Any) -> None:
    rows = ledger(exam_week.runtime)
    assert {(origin, outcome) for job, _, _, origin, outcome, *_ in rows if job != "risk_checks"} == {
        ("simulate", "success")}
    assert {(origin, outcome) for job, _, _, origin, outcome, *_ in rows if job == "risk_checks"} == {
        ("simulate", "success"), ("simulate", "skipped")}  # skipped: unchanged since the last check
    assert exam_week.failed == 0


def test_the_weekends_risk_checks_are_recorded_unchanged_since_fridays_last_change(exam_week: Any) -> None:
    # Friday 11-20: the 16:00 collection is the last change (watchlist_update changes nothing a
    # check reads); from 16:30 to Sunday 23:30 every check finds what the 16:00 one read
    first = datetime(2026, 11, 20, 16, 30, tzinfo=KST)
    after = [row for row in ledger(exam_week.runtime) if row[0] == "risk_checks" and row[1] >= first]
    assert len(after) == 15 + 2 * 48
    assert {(row[4], row[5]) for row in after} == {
        ("skipped", "unchanged since the run of 2026-11-20T16:00:00+09:00: nothing it reads has changed")}


def test_a_flat_accounts_ticks_run_at_the_open_and_the_close_and_are_unchanged_between(
        tmp_path: Path, calendar_cache_dir: Path) -> None:
    # no signal generation: the account never holds anything nor has an open order
    # (the second day in a replay of its own: the first tick's match comes from the ledger)
    settings = replay_settings(tmp_path, calendar_cache_dir, enable_signal_generation="false",
                               enable_risk_checks="false")
    simulate(settings, date(2026, 11, 17), date(2026, 11, 17)).runtime.close()
    simulation = simulate(settings, date(2026, 11, 18), date(2026, 11, 18))
    try:
        ticks = [(at.astimezone(KST).strftime("%m-%d %H:%M"), outcome, reason)
                 for job, at, _, _, outcome, reason, *_ in ledger(simulation.runtime) if job == "position_monitoring"]
        with simulation.runtime.session_factory()() as session:
            snapshots = session.scalars(select(PortfolioSnapshot.taken_at).order_by(PortfolioSnapshot.taken_at)).all()
            written = session.scalars(select(JobRun.scheduled_for).order_by(JobRun.id)).all()
    finally:
        simulation.runtime.close()
    # unchanged fires are written in batches: in fire order all the same, their records without a run id
    assert written == sorted(written)
    assert {record.run_id for record in simulation.records if record is not None and
            record.outcome is Outcome.SKIPPED} == {0}
    # the first day's 09:00 tick opens the account: the 09:15 one is the first to find it as it is
    for day, ran in (("11-17", ["09:00", "09:15", "15:30"]), ("11-18", ["09:00", "15:30"])):
        of_day = [tick for tick in ticks if tick[0].startswith(day)]
        assert len(of_day) == 27
        assert [at[-5:] for at, outcome, _ in of_day if outcome == "success"] == ran
        assert {(outcome, reason) for _, outcome, reason in of_day if outcome != "success"} == {
            ("skipped", f"unchanged since the run of 2026-{day}T{ran[-2]}:00+09:00: nothing it reads has changed")}
    assert [at.astimezone(KST).strftime("%m-%d %H:%M") for at in snapshots] == [
        "11-17 09:00", "11-17 09:15", "11-17 15:30", "11-18 09:00", "11-18 15:30"]


def test_every_session_has_its_data_indicators_watchlist_signals_fills_and_snapshots(exam_week: Any) -> None:
    def count(session: Any, table: Any, *where: Any) -> int:
        return session.scalar(select(func.count()).select_from(table).where(*where))

    with exam_week.runtime.session_factory()() as session:
        for day in SESSIONS:
            assert count(session, CollectedSession, CollectedSession.date == day) == 1, day
            assert count(session, TechnicalIndicator, TechnicalIndicator.date == day) > 0, day
            assert count(session, WatchlistRun, WatchlistRun.date == day) == 1, day
            assert count(session, SignalRun, SignalRun.trading_date == day) == 1, day
            assert count(session, FillRow, FillRow.trade_date == day) > 0, day
            assert count(session, PortfolioSnapshot, PortfolioSnapshot.trading_date == day) == 27, day


def test_the_new_year_week_walks_the_holidays_and_the_late_first_session(krx_calendar: Any) -> None:
    settings = make_settings()
    start, end = datetime(2025, 12, 29, tzinfo=KST), datetime(2026, 1, 5, tzinfo=KST)
    fires = replay_fires(JOBS, build_triggers(settings, krx_calendar), start, end)
    assert [(f.at.strftime("%Y-%m-%d %H:%M"), f.job) for f in fires] == answer("new_year_2026.txt")


def test_the_window_is_korean_dates_whatever_timezone_the_schedule_is_shown_in(krx_calendar: Any) -> None:
    settings = make_settings(timezone="America/New_York", enable_risk_checks="false")
    fires = replay_fires(enabled_jobs(settings), build_triggers(settings, krx_calendar),
                         *replay_window(date(2026, 11, 16), date(2026, 11, 16)))
    assert len(fires) == 31 and {f.at.astimezone(KST).date() for f in fires} == {date(2026, 11, 16)}
    assert (fires[0].job, fires[0].at.astimezone(KST).strftime("%H:%M")) == ("signal_generation", "08:45")


# --- the new-year days: determinism and resumption ------------------------------------------------

WINDOW = (date(2025, 12, 30), date(2026, 1, 2))  # Tue regular, Wed and Thu closed, Fri opens at 10:00


@pytest.fixture(scope="module")
def clean_replay(tmp_path_factory: pytest.TempPathFactory, calendar_cache_dir: Path) -> Any:
    settings = replay_settings(tmp_path_factory.mktemp("clean"), calendar_cache_dir, enable_risk_checks="false")
    simulation = simulate(settings, *WINDOW)
    yield simulation
    simulation.runtime.close()


def test_the_new_year_replay_runs_the_sessions_and_nothing_on_the_closed_days(clean_replay: Any) -> None:
    rows = ledger(clean_replay.runtime)
    first = datetime.combine(WINDOW[0], datetime.min.time(), KST)
    ran = [(at.astimezone(KST).strftime("%Y-%m-%d %H:%M"), job) for job, at, *_ in rows if at >= first]
    expected = [fire for fire in answer("new_year_2026.txt")
                if fire[1] != "risk_checks" and "2025-12-30" <= fire[0][:10] <= "2026-01-02"]
    assert ran == expected
    assert upstream_runs(rows, WINDOW[0]) == chain_before("2025-12-29")
    with clean_replay.runtime.session_factory()() as session:
        for day in (date(2025, 12, 30), date(2026, 1, 2)):
            assert session.scalar(select(func.count()).select_from(SignalRun).where(SignalRun.trading_date == day))
            assert session.scalar(select(func.count()).select_from(FillRow).where(FillRow.trade_date == day))
        assert not session.scalar(select(func.count()).select_from(PortfolioSnapshot).where(
            PortfolioSnapshot.trading_date.in_([date(2025, 12, 31), date(2026, 1, 1)])))


def test_two_replays_with_the_same_inputs_give_identical_ledgers_and_accounts(
        clean_replay: Any, tmp_path: Path, calendar_cache_dir: Path) -> None:
    again = simulate(replay_settings(tmp_path, calendar_cache_dir, enable_risk_checks="false"), *WINDOW)
    try:
        assert ledger(again.runtime) == ledger(clean_replay.runtime)
        assert account(again.runtime) == account(clean_replay.runtime)
        assert len(account(again.runtime)["fills"]) > 0
    finally:
        again.runtime.close()


class Interrupted(Exception):
    pass


def ran_once(runtime: Any) -> list[tuple[str, datetime]]:
    """(job, fire time) of every run of a replay's ledger: its fires and the runs they needed."""
    return sorted((job, at) for job, at, *_ in ledger(runtime))


def assert_same_as_the_clean_replay(resumed: Any, clean_replay: Any) -> None:
    """Every fire of the window (and every run the first ones needed) ran once and
    succeeded, and the account is the clean replay's."""
    rows = ledger(resumed.runtime)
    assert ran_once(resumed.runtime) == ran_once(clean_replay.runtime)
    assert {(f.job, f.at) for f in clean_replay.fires} <= set(ran_once(clean_replay.runtime))
    assert {row[4] for row in rows} == {Outcome.SUCCESS.value}
    assert account(resumed.runtime) == account(clean_replay.runtime)


def replay_interrupted_after(settings: Any, stop_after: int) -> None:
    """Replay :data:`WINDOW`, stopped by an exception after its first ``stop_after`` fires."""
    ran: list[Fire] = []

    def interrupt(fire: Fire, record: Any) -> None:
        ran.append(fire)
        if len(ran) == stop_after:
            raise Interrupted(fire)

    with pytest.raises(Interrupted):
        simulate(settings, *WINDOW, on_fire=interrupt)


def test_a_replay_on_an_interrupted_one_completes_it_without_duplicates(
        clean_replay: Any, tmp_path: Path, calendar_cache_dir: Path) -> None:
    settings = replay_settings(tmp_path, calendar_cache_dir, enable_risk_checks="false")
    stop_after = 20  # the first session's signal run and its ticks up to 13:45
    replay_interrupted_after(settings, stop_after)
    # the next fire's process was killed while it ran: its claim stays "running"
    killed = clean_replay.fires[stop_after]
    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                  text=True, check=True).stdout)
    engine = create_db_engine(settings.database_url)
    with make_session_factory(engine).begin() as session:
        session.add(JobRun(job_name=killed.job, user_id=settings.user_id, scheduled_for=killed.at,
                           trading_date=killed.at.date(), origin="simulate", dry_run=True, outcome="running",
                           started_at=killed.at, finished_at=None, host=socket.gethostname()[:255], pid=dead_pid))
    engine.dispose()

    resumed = simulate(settings, *WINDOW)
    try:
        assert resumed.records[:stop_after] == [None] * stop_after  # done before: left as they were
        assert_same_as_the_clean_replay(resumed, clean_replay)
    finally:
        resumed.runtime.close()


def at_url(url: str, cache_dir: Path) -> Any:
    """The new-year replay's settings, into ``url`` (SQLite or PostgreSQL)."""
    return make_settings(database_url=url, cache_dir=str(cache_dir), simulated_universe="30",
                         bootstrap_sessions="130", enable_risk_checks="false")


def attempts(runtime: Any) -> dict[tuple[str, datetime], list[tuple[int, str, str | None]]]:
    """(attempt, outcome, error) of every fire, by (job, fire time)."""
    found: dict[tuple[str, datetime], list[tuple[int, str, str | None]]] = {}
    with runtime.session_factory()() as session:
        for job, at, attempt, outcome, error in session.execute(select(
                JobRun.job_name, JobRun.scheduled_for, JobRun.attempt, JobRun.outcome, JobRun.error).order_by(
                JobRun.job_name, JobRun.scheduled_for, JobRun.attempt)):
            found.setdefault((job, at), []).append((attempt, outcome, error))
    return found


def test_a_killed_replays_fire_runs_again_though_its_row_has_this_host_and_pid(
        clean_replay: Any, database_url: str, calendar_cache_dir: Path) -> None:
    """Containers run every replay as pid 1 on a host name that may repeat: the running
    row a killed one left is told dead by its instance id, not by host and pid."""
    settings = at_url(database_url, calendar_cache_dir)
    stop_after = 20
    replay_interrupted_after(settings, stop_after)
    killed = clean_replay.fires[stop_after]  # killed while it ran, on this host, by a process of this pid
    engine = create_db_engine(settings.database_url)
    with make_session_factory(engine).begin() as session:
        session.add(JobRun(job_name=killed.job, user_id=settings.user_id, scheduled_for=killed.at,
                           trading_date=killed.at.date(), origin="simulate", dry_run=True, outcome="running",
                           started_at=killed.at, finished_at=None, host=socket.gethostname()[:255],
                           pid=os.getpid(), instance_id=uuid.uuid4().hex, lease_until=killed.at + timedelta(days=365)))
    engine.dispose()

    resumed = simulate(settings, *WINDOW)
    try:
        assert resumed.records[stop_after] is not None and resumed.records[stop_after].outcome is Outcome.SUCCESS
        assert_same_as_the_clean_replay(resumed, clean_replay)
    finally:
        resumed.runtime.close()


class Dropped:
    """``signal_generation``'s entry point, failing once on 2026-01-02 with ``error``."""

    def __init__(self, error: BaseException) -> None:
        from services.trading_engine import engine

        self.real, self.error, self.raised = engine.run, error, False

    def __call__(self, ctx: Any) -> Any:
        if ctx.trading_date == date(2026, 1, 2) and not self.raised:
            self.raised = True
            raise self.error
        return self.real(ctx)


@pytest.mark.parametrize("error, recorded", [
    (OperationalError("SELECT 1", None, Exception("server closed the connection unexpectedly")),
     "database error: "),
    (KeyboardInterrupt(), "interrupted: KeyboardInterrupt"),
], ids=["dropped-connection", "interrupted"])
def test_a_fire_that_failed_on_the_database_or_was_interrupted_runs_again_in_the_next_replay(
        clean_replay: Any, database_url: str, calendar_cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
        error: BaseException, recorded: str) -> None:
    from services.trading_engine import engine

    settings = at_url(database_url, calendar_cache_dir)
    monkeypatch.setattr(engine, "run", Dropped(error))
    [fire] = [f for f in clean_replay.fires if f.job == "signal_generation" and f.at.date() == date(2026, 1, 2)]
    try:
        first = simulate(settings, *WINDOW)
    except KeyboardInterrupt:
        pass
    else:  # the fires after it would build on what it did not write: the replay stops there
        first.runtime.close()
        assert len(first.records) == clean_replay.fires.index(fire) + 1 and first.failed == 1

    again = simulate(settings, *WINDOW)
    try:
        runs = attempts(again.runtime)
        tries = runs[(fire.job, fire.at)]
        assert [(attempt, outcome) for attempt, outcome, _ in tries] == [(1, "failed"), (2, "success")], tries
        assert tries[0][2].startswith(recorded) and tries[1][2] is None
        assert sorted(runs) == ran_once(clean_replay.runtime)
        assert {tries[-1][1] for tries in runs.values()} == {Outcome.SUCCESS.value}
        assert account(again.runtime) == account(clean_replay.runtime)  # as if it had run the first time
    finally:
        again.runtime.close()


def test_a_second_replay_into_the_same_database_is_refused_while_the_first_runs(
        database_url: str, tmp_path: Path, calendar_cache_dir: Path) -> None:
    env = subprocess_env(PYTHONPATH=str(ROOT), ORCHESTRATOR_CACHE_DIR=str(calendar_cache_dir),
                         ORCHESTRATOR_SIMULATED_UNIVERSE="30", ORCHESTRATOR_BOOTSTRAP_SESSIONS="130",
                         ORCHESTRATOR_ENABLE_RISK_CHECKS="false", LOG_LEVEL="ERROR")
    ready = tmp_path / "first-fire-done"
    first = subprocess.Popen([sys.executable, "-m", "tests.orchestrator.paused_replay_worker", database_url,
                              str(calendar_cache_dir), str(ready)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    command = [sys.executable, "-m", "services.orchestrator.main", "simulate", "--database-url", database_url,
               "--start", "2026-11-16", "--end", "2026-11-16"]
    try:
        wait_for(ready, first)  # it holds the lock, paused after its first fire until killed
        second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    finally:
        first.kill()
        first.wait(timeout=60)
    assert second.returncode == 2, second.stderr
    assert second.stderr.startswith(
        "Error: Invalid value for '--database-url': another replay is writing to this database (simulate "
        f"2026-11-16..2026-11-20 pid {first.pid} on "), second.stderr
    assert second.stderr.endswith("); one replay at a time: wait for it to end, or replay into another "
                                  "database\n") and second.stderr.count("\n") == 1
    # the lock died with the killed process: the next replay runs, and re-runs what it left running
    third = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(JobRun).where(JobRun.outcome == "running")) == 0
    engine.dispose()


def wait_for(ready: Path, process: Any, timeout: float = 120) -> None:
    """Until ``process`` has made the file ``ready`` (it fails the test if it ends first)."""
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            raise AssertionError(f"the first replay ended before its first fire: {process.stderr.read()}")
        assert time.monotonic() < deadline, "the first replay recorded no fire in time"
        time.sleep(0.05)


# --- the command -----------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> Any:
    return in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, datetime(2026, 11, 22, 12, 0, tzinfo=KST))


def test_simulate_replays_into_its_own_database_and_writes_the_report(cli: Any, tmp_path: Path) -> None:
    result = cli("simulate", "--start", "2026-11-21", "--end", "2026-11-21", "--report", "out")  # a Saturday
    assert result.exit_code == 0, result.output
    assert "replaying 48 fires, 2026-11-21 to 2026-11-21" in result.stdout
    # the first check opens the paper account, the second sees it opened; nothing changes after
    assert "fires: risk_checks" in result.stdout and "46 skipped, 2 success" in result.stdout
    assert (tmp_path / "data" / "simulation.db").exists() and not (tmp_path / "data" / "orchestrator.db").exists()
    ledger_csv = (tmp_path / "out" / "ledger.csv").read_text().splitlines()
    assert ledger_csv[0] == "job,scheduled_for,trading_date,outcome,reason,error,summary"
    assert len(ledger_csv) == 1 + 48 and ledger_csv[1].startswith("risk_checks,2026-11-21T00:00:00+09:00,")
    assert (tmp_path / "out" / "snapshots.csv").read_text().startswith("trading_date,taken_at,cash,")
    assert (tmp_path / "out" / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<title>Paper account default_user, 2026-11-21 to 2026-11-21, data: simulated</title>" in page
    for what in ("CAGR", "Sharpe / Sortino (risk-free 0)", "beta / alpha vs KOSPI", "fires: risk_checks"):
        assert f"<td>{what}</td>" in page, what
    assert '<img src="equity.png"' in page and "http" not in page  # nothing loaded from the network


def test_simulate_never_writes_to_the_live_database(cli: Any, tmp_path: Path) -> None:
    live = f"sqlite:///{tmp_path / 'data' / 'orchestrator.db'}"
    result = cli("simulate", "--start", "2026-11-21", "--end", "2026-11-21", "--database-url", "sqlite:///data/orchestrator.db")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Invalid value for '--database-url': ")
    assert "is the live database (DATABASE_URL)" in result.stderr
    result = cli("simulate", "--start", "2026-11-21", "--end", "2026-11-21", env={"DATABASE_URL": live,
                 "ORCHESTRATOR_SIMULATION_DATABASE_URL": live})
    assert result.exit_code == 2 and "is the live database" in result.stderr
    as_uri = f"sqlite:///file:{tmp_path / 'data' / 'orchestrator.db'}?uri=true"  # the same file, named otherwise
    result = cli("simulate", "--start", "2026-11-21", "--end", "2026-11-21", "--database-url", as_uri)
    assert result.exit_code == 2 and "is the live database" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--start", "2026-11-21", "--end", "2026-11-20"],
     "Error: Invalid value for '--start': --start 2026-11-21 is after --end 2026-11-20; expected start <= end"),
    (["--start", "2026-11-31", "--end", "2026-12-01"],
     "Error: Invalid value for '--start': '2026-11-31' is not a date; expected YYYY-MM-DD"),
    (["--start", "2026-11-20", "--end", "2030-01-01"],
     "Error: 2030-01-01 is outside the KRX calendar data (2015-01-01 to 2027-12-31)"),
    (["--start", "2010-05-31", "--end", "2010-06-07"],  # before the tick tables of 2011-01-03
     "Error: Invalid value for '--start': 2010-05-31 is before 2011-01-03, the first day the dated KRX market rules "
     "(krx_market_rules.csv) covers; expected 2011-01-03 or later"),
    (["--start", "2026-11-20", "--end", "2026-11-20", "--database-url", "mysql://x/y"],
     "Error: Invalid value for '--database-url': mysql is not supported"),
    (["--start", "2026-11-20", "--end", "2026-11-20", "--report", "README.md"],
     "Error: Invalid value for '--report': README.md is a file; expected a directory"),
])
def test_simulate_refuses_bad_input_with_one_line(cli: Any, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "README.md").write_text("not a directory")
    result = cli("simulate", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_simulate_of_stored_history_that_is_not_there_is_one_line_and_writes_nothing(cli: Any,
                                                                                     tmp_path: Path) -> None:
    result = cli("simulate", "--start", "2026-11-20", "--end", "2026-11-20",
                 env={"ORCHESTRATOR_DATA_PROVIDER": "stored", "ORCHESTRATOR_HISTORY_DATABASE_URL": "sqlite:///nope.db"})
    assert result.exit_code == 2
    assert result.stderr == ("Error: ORCHESTRATOR_HISTORY_DATABASE_URL: sqlite:///nope.db does not exist; expected "
                             "the database backfill collected the history into\n")
    assert not (tmp_path / "data").exists() and not (tmp_path / "nope.db").exists()


def test_simulate_refuses_a_start_before_the_sell_tax_schedule(cli: Any, tmp_path: Path) -> None:
    result = cli("simulate", "--start", "2024-12-30", "--end", "2025-01-03",
                 env={"ORCHESTRATOR_SELL_TAX_SCHEDULE": "2025-01-01=0.15"})
    assert result.exit_code == 2, result.output
    assert result.stderr == ("Error: Invalid value for '--start': 2024-12-30 is before 2025-01-01, the first day "
                             "ORCHESTRATOR_SELL_TAX_SCHEDULE covers; expected 2025-01-01 or later\n")
    assert not (tmp_path / "data" / "simulation.db").exists()
