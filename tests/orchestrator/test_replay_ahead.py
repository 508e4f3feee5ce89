"""A replay whose market-data fires run ahead in a second process writes, row for row,
the database a replay running every fire itself writes (the answer: that replay, by
the code every other replay test pins down), resumes the same way, and stops with one
line when the process ahead stops."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest

from services.common.market_calendar import KRX_TZ
from services.orchestrator.replay import Fire, simulate
from services.orchestrator.replay_ahead import AheadStopped, usable
from tests.conftest import in_process_cli, make_settings
from tests.orchestrator.test_replay import replay_settings

#: eleven sessions around the exam day, into a database that starts empty
WINDOW = (date(2026, 11, 10), date(2026, 11, 24))
FIRST_HALF_END = date(2026, 11, 16)
MARKET_JOBS = {"data_collection", "indicator_calculation", "watchlist_update"}
RUN_COLUMNS_OF_THE_PROCESS = ("id", "host", "pid", "instance_id")  # which process, and its row's number


def settings_in(directory: Path, cache_dir: Path) -> Any:
    directory.mkdir(parents=True, exist_ok=True)
    return replay_settings(directory, cache_dir)


def replayed(settings: Any, start: date, end: date, *, ahead: bool, **options: Any) -> Any:
    simulation = simulate(settings, start, end, ahead=ahead, **options)
    simulation.runtime.close()
    return simulation


def database_rows(settings: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows as stored, in storage order (rowid, or key for a table without
    one); the ledger's without the columns that say which process wrote a row, sorted."""
    path = settings.database_url.removeprefix("sqlite:///")
    connection = sqlite3.connect(path)
    try:
        tables = [name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT GLOB 'sqlite_*'")]
        rows = {}
        for table in tables:
            columns = [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]
            if table == "job_runs":
                kept = ", ".join(f'"{c}"' for c in columns if c not in RUN_COLUMNS_OF_THE_PROCESS)
                rows[table] = sorted(connection.execute(f"SELECT {kept} FROM job_runs"), key=repr)
            else:
                rows[table] = list(connection.execute(f'SELECT * FROM "{table}"'))
        return rows
    finally:
        connection.close()


def run_pids(settings: Any) -> tuple[set[tuple[str, date]], set[tuple[str, date]]]:
    """(job, trading date) of the runs this process made, and of those another made."""
    path = settings.database_url.removeprefix("sqlite:///")
    connection = sqlite3.connect(path)
    try:
        here, elsewhere = set(), set()
        for job, day, pid in connection.execute("SELECT job_name, trading_date, pid FROM job_runs"):
            (here if pid == os.getpid() else elsewhere).add((job, date.fromisoformat(day)))
        return here, elsewhere
    finally:
        connection.close()


@pytest.fixture(scope="module")
def on_its_own(tmp_path_factory: pytest.TempPathFactory, calendar_cache_dir: Path) -> Any:
    settings = settings_in(tmp_path_factory.mktemp("on-its-own"), calendar_cache_dir)
    replayed(settings, *WINDOW, ahead=False)
    return database_rows(settings)


def test_market_data_run_ahead_writes_every_row_a_replay_on_its_own_writes(
        on_its_own: Any, tmp_path: Path, calendar_cache_dir: Path) -> None:
    settings = settings_in(tmp_path, calendar_cache_dir)
    simulation = replayed(settings, *WINDOW, ahead=True)
    assert simulation.failed == 0
    rows = database_rows(settings)
    assert rows == on_its_own
    assert len(rows["fills"]) > 0 and len(rows["daily_prices"]) > 0 and len(rows["watchlist_entries"]) > 0
    here, ahead = run_pids(settings)
    assert {job for job, _ in here} == {"risk_checks", "signal_generation", "position_monitoring", *MARKET_JOBS}
    assert {job for job, _ in ahead} == MARKET_JOBS
    assert {day for job, day in here if job in MARKET_JOBS} == {date(2026, 11, 9)}  # the first signals' needs
    assert sorted(path.name for path in tmp_path.iterdir() if "ahead" in path.name) == []


def test_a_replay_run_ahead_on_an_earlier_one_goes_on_from_it_as_one_on_its_own_does(
        on_its_own: Any, tmp_path: Path, calendar_cache_dir: Path) -> None:
    settings = settings_in(tmp_path, calendar_cache_dir)
    replayed(settings, WINDOW[0], FIRST_HALF_END, ahead=True)
    replayed(settings, *WINDOW, ahead=True)
    assert database_rows(settings) == on_its_own


def child_processes() -> list[int]:
    """The processes this one started that are still running."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def test_when_the_process_ahead_dies_the_replay_stops_with_one_line_and_the_next_one_completes_it(
        on_its_own: Any, tmp_path: Path, calendar_cache_dir: Path) -> None:
    settings = settings_in(tmp_path, calendar_cache_dir)

    def kill_it_before_the_first_signals(fire: Fire, _record: Any) -> None:
        if fire == first_fire:  # the first night's risk check: the market data is not there yet
            for pid in child_processes():
                os.kill(pid, signal.SIGKILL)

    first_fire = Fire(datetime.combine(WINDOW[0], time(), KRX_TZ), "risk_checks")
    with pytest.raises(AheadStopped, match=r"^the market-data process stopped before data_collection "
                                           r"2026-11-10T16:00:00\+09:00$"):
        simulate(settings, *WINDOW, ahead=True, on_fire=kill_it_before_the_first_signals)
    assert child_processes() == []
    replayed(settings, *WINDOW, ahead=True)
    assert database_rows(settings) == on_its_own


def test_what_the_process_ahead_logs_is_logged_here(
        tmp_path: Path, calendar_cache_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    replayed(settings_in(tmp_path, calendar_cache_dir), date(2026, 11, 16), date(2026, 11, 17), ahead=True)
    ahead = [record for record in caplog.records if record.process != os.getpid()]
    assert any(record.name == "services.jobs.data_collection" and "] started (run " in record.getMessage()
               for record in ahead)


@pytest.mark.parametrize(("url", "sessions", "expected"), [
    ("sqlite:////data/replay.db", 20, True),
    ("sqlite:////data/replay.db", 19, False),  # too short to be worth a second process
    ("postgresql+psycopg://u@db/replays", 244, False),
])
def test_a_replay_runs_market_data_ahead_on_a_sqlite_file_over_twenty_sessions(
        monkeypatch: pytest.MonkeyPatch, url: str, sessions: int, expected: bool) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert usable(make_settings(database_url=url), sessions) is expected


def test_a_replay_on_one_cpu_runs_every_fire_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert not usable(make_settings(database_url="sqlite:////data/replay.db"), 244)
    assert usable(make_settings(database_url="sqlite:////data/replay.db"), 2, wanted=True)


def test_simulate_says_in_one_line_that_the_process_ahead_stopped_and_exits_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> None:
    from services.orchestrator import replay_ahead

    def stopped(_self: Any, item: Any) -> None:
        raise AheadStopped("the market-data process stopped: MemoryError: ")

    monkeypatch.setattr(replay_ahead, "_cpus", lambda: 2)
    monkeypatch.setattr(replay_ahead.MarketAhead, "take", stopped)
    cli = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, datetime(2026, 11, 23, 9, 0, tzinfo=KRX_TZ))
    result = cli("simulate", "--start", "2026-10-20", "--end", "2026-11-20")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: replay stopped: the market-data process stopped: MemoryError: ; replaying the range again goes on "
        "from there"]


SCHEMA = ("CREATE TABLE prices (ticker TEXT NOT NULL, day DATE NOT NULL, close REAL, PRIMARY KEY (ticker, day)) "
          "WITHOUT ROWID",
          "CREATE TABLE names (id INTEGER PRIMARY KEY, ticker TEXT NOT NULL UNIQUE, name TEXT)")
#: what the process ahead writes, fire by fire (each a list of statements)
FIRES = (
    ["INSERT INTO prices VALUES ('A', '2026-11-02', 100.5), ('B', '2026-11-02', 7.25)",
     "INSERT INTO names VALUES (1, 'A', 'Alpha')"],
    ["UPDATE prices SET close = 101.125 WHERE ticker = 'A'", "INSERT INTO prices VALUES ('C', '2026-11-02', 3)",
     "INSERT INTO names VALUES (2, 'B', 'Beta') ON CONFLICT (id) DO UPDATE SET name = excluded.name",
     "UPDATE names SET name = 'Alpha Two' WHERE id = 1"],
    ["DELETE FROM prices WHERE ticker = 'B'", "DELETE FROM names WHERE id = 1",
     "INSERT INTO names VALUES (3, 'A', 'Alpha Three')"],  # a new row of a deleted one's unique ticker
    ["INSERT INTO prices VALUES ('B', '2026-11-02', 8.5)", "UPDATE prices SET close = NULL WHERE ticker = 'C'"],
    ["DELETE FROM prices", "UPDATE names SET name = 'Beta Four' WHERE id = 2"],
    ["INSERT OR REPLACE INTO names VALUES (4, 'B', 'Beta Five')"],  # replaces row 2 (its ticker): a delete
    ["INSERT INTO prices VALUES ('D', '2026-11-03', 1.5)"],
)


def test_each_fires_rows_are_copied_as_they_stood_after_it_whatever_the_process_ahead_did_since(
        tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from services.orchestrator.replay_ahead import _Copier, _log_writes, _LogPositions, logging_deletes_replaced

    ahead_path, here_path = tmp_path / "ahead.db", tmp_path / "here.db"
    for path in (ahead_path, here_path):
        with sqlite3.connect(path) as connection:
            for statement in SCHEMA:
                connection.execute(statement)
    tables = _log_writes(ahead_path)
    ahead, here = create_engine(f"sqlite:///{ahead_path}"), create_engine(f"sqlite:///{here_path}")
    logging_deletes_replaced(ahead)
    positions, states = [], []
    for fire in FIRES:  # all of them run before the first is copied: the process is far ahead
        with ahead.begin() as connection:
            for statement in fire:
                connection.exec_driver_sql(statement)
        positions.append(_LogPositions(ahead).now())
        states.append(table_rows(ahead_path))
    copier = _Copier(here, ahead_path, tables)
    try:
        copied = []
        for upto in positions:
            copier.copy(upto)
            copied.append(table_rows(here_path))
    finally:
        copier.close()
    assert copied == states
    assert states[2]["names"] == [(2, "B", "Beta"), (3, "A", "Alpha Three")]  # the answers, by hand
    assert states[5]["names"] == [(3, "A", "Alpha Three"), (4, "B", "Beta Five")]


def table_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    connection = sqlite3.connect(path)
    try:
        return {table: list(connection.execute(f"SELECT * FROM {table}")) for table in ("prices", "names")}
    finally:
        connection.close()
