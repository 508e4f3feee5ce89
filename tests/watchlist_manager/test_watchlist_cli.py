"""The ``watchlist`` command against a SQLite file holding three hand-written sessions
(the market of test_manager) and the lists of default_user for 11-18, 11-19 and 11-20."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from services.common.clock import FixedClock
from services.common.database import create_db_engine, make_session_factory, migrate
from services.orchestrator import runtime as runtime_module
from services.orchestrator.main import app
from services.watchlist_manager.manager import update_watchlist
from tests.watchlist_manager.test_manager import (
    D18,
    D19,
    D20,
    LIQUIDITY_TOP3,
    A,
    B,
    C,
    D,
    insert_market,
)

KST = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 11, 20, 20, 0, tzinfo=KST)  # after the 11-20 watchlist update


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The market and default_user's three lists, written once for the module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('watchlist') / 'orchestrator.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        insert_market(session.connection())
    for day in (D18, D19, D20):
        with factory.begin() as session:
            update_watchlist(session.connection(), "default_user", day, LIQUIDITY_TOP3)
    engine.dispose()
    return url


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path, database: str) -> Any:
    """The CLI in an empty directory, a clean environment, a fixed clock and the database above."""
    for name in list(os.environ):
        if name.startswith("ORCHESTRATOR_") or name in ("DATABASE_URL", "LOG_LEVEL"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(calendar_cache_dir))
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setattr(runtime_module, "SystemClock", lambda: FixedClock(NOW))
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, ["watchlist", *args])

    return invoke


def test_json_shows_the_latest_list_with_returns_days_and_exits(cli):
    result = cli("--format", "json")
    assert result.exit_code == 0, result.stderr
    view = json.loads(result.stdout)
    assert sorted(view) == ["date", "entries", "exits", "previous_date", "user_id"]
    assert (view["date"], view["user_id"], view["previous_date"]) == ("2026-11-20", "default_user", "2026-11-19")
    assert [(e["rank"], e["ticker"], e["entered_on"], e["days_on_list"], e["return_since_entry"])
            for e in view["entries"]] == [
        (1, A, "2026-11-18", 3, 0.2),         # 12,000 / 10,000 - 1
        (2, C, "2026-11-20", 1, 0.0),
        (3, D, "2026-11-19", 2, -0.047619),   # 10,000 / 10,500 - 1, rounded to 6 places
    ]
    assert view["exits"] == [{"ticker": B, "name": "Bravo", "entered_on": "2026-11-18", "entry_close": 10000,
                              "close": 9900, "return_since_entry": -0.01}]


def test_date_shows_that_day_s_list(cli):
    result = cli("--date", "2026-11-19", "--format", "json")
    assert result.exit_code == 0, result.stderr
    view = json.loads(result.stdout)
    assert (view["date"], view["previous_date"]) == ("2026-11-19", "2026-11-18")
    assert [e["ticker"] for e in view["entries"]] == [A, B, D]
    assert [(e["ticker"], e["close"], e["return_since_entry"]) for e in view["exits"]] == [(C, 9500, -0.05)]


def test_the_table_lists_the_tickers_then_the_exits(cli):
    result = cli("--date", "2026-11-20")
    assert result.exit_code == 0, result.stderr
    listed, _, left = result.stdout.partition("Left the list since 2026-11-19")
    assert "Watchlist of default_user on 2026-11-20" in listed
    assert all(ticker in listed for ticker in (A, C, D)) and B not in listed
    assert "+20.00%" in listed  # Alpha's return since 11-18
    assert B in left and "Bravo" in left


def test_an_unknown_user_is_one_line_and_exit_2(cli):
    result = cli("--user-id", "nobody")
    assert result.exit_code == 2
    assert result.stderr == ("Error: Invalid value for '--date': no watchlist for nobody on or before 2026-11-20; "
                             "run `run-job watchlist_update` first\n")
    assert result.stdout == ""


def test_an_unknown_user_with_a_date_is_exit_2(cli):
    result = cli("--user-id", "nobody", "--date", "2026-11-20", "--format", "json")
    assert result.exit_code == 2


def test_a_date_without_a_run_shows_the_list_in_force_that_day(cli):
    result = cli("--date", "2026-11-22", "--format", "json")  # a Sunday: Friday's list is in force
    assert result.exit_code == 0
    assert json.loads(result.stdout)["date"] == "2026-11-20"


@pytest.mark.parametrize("args, message", [
    (["--format", "xml"], "Error: Invalid value for '--format': 'xml' is not one of 'table', 'csv', 'json'.\n"),
    (["--date", "2026-13-01"], "Error: Invalid value for '--date': '2026-13-01' is not a date; expected YYYY-MM-DD\n"),
    (["--date", "20261120"], "Error: Invalid value for '--date': '20261120' is not a date; expected YYYY-MM-DD\n"),
    (["--date", "1990-01-03"], "Error: 1990-01-03 is outside the KRX calendar data"),
])
def test_bad_usage_is_one_line_and_exit_2(cli, args, message):
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
