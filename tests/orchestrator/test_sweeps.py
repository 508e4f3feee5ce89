"""simulate --sweep: one replay per value of a setting, each into its own database, in
parallel processes, and one table."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.orchestrator.ops.arguments import InvalidArgument
from services.orchestrator.ops.sweeps import parse_sweep, sweep_databases
from tests.conftest import in_process_cli, make_settings

KST = ZoneInfo("Asia/Seoul")


@pytest.mark.parametrize("text, message", [
    ("stop_los=3,5", "'stop_los' is not a setting a sweep can vary; did you mean 'stop_loss_pct'? expected "
                     "NAME=v1,v2,..."),
    ("ORCHESTRATOR_USER_ID=a,b", "'ORCHESTRATOR_USER_ID' is not a setting a sweep can vary"),
    ("stop_loss_pct=3", "'stop_loss_pct=3': expected two values or more, e.g. ORCHESTRATOR_STOP_LOSS_PCT=3,5,7"),
    ("stop_loss_pct=3,3", "'stop_loss_pct=3,3': a value is given twice"),
    ("MAX_POSITIONS=5,many", "ORCHESTRATOR_MAX_POSITIONS=many: "),
])
def test_a_sweep_not_accepted_says_why_in_one_line(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse_sweep(text)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_each_value_replays_into_a_database_beside_the_simulation_one(tmp_path: Path) -> None:
    sweep = parse_sweep("ORCHESTRATOR_STOP_LOSS_PCT=3,5.5")
    assert (sweep.env, sweep.values, sweep.parsed) == ("ORCHESTRATOR_STOP_LOSS_PCT", ["3", "5.5"], [3.0, 5.5])
    settings = make_settings(simulation_database_url=f"sqlite:///{tmp_path / 'sim.db'}")
    assert sweep_databases(settings, sweep) == [f"sqlite:///{tmp_path / 'sim-stop_loss_pct-3.db'}",
                                                f"sqlite:///{tmp_path / 'sim-stop_loss_pct-5.5.db'}"]
    on_a_server = make_settings(simulation_database_url="postgresql+psycopg://u@h/db")
    with pytest.raises(InvalidArgument, match="ORCHESTRATOR_SIMULATION_DATABASE_URL is not a SQLite file"):
        sweep_databases(on_a_server, sweep)


def test_a_sweep_replays_once_per_value_and_prints_one_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            calendar_cache_dir: Path) -> None:
    cli: Any = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, datetime(2026, 11, 21, 10, tzinfo=KST))
    env = {"ORCHESTRATOR_SIMULATED_UNIVERSE": "30", "ORCHESTRATOR_BOOTSTRAP_SESSIONS": "130"}
    result = cli("simulate", "--start", "2026-11-17", "--end", "2026-11-18", "--sweep", "max_positions=2,5", env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines if line.split() and line.split()[0] in ("2", "5")] == ["2", "5"]
    held = {}
    for value in ("2", "5"):
        database = sqlite3.connect(tmp_path / "data" / f"simulation-max_positions-{value}.db")
        [(recorded,)] = database.execute("SELECT settings FROM replay_settings").fetchall()
        [(bought,)] = database.execute("SELECT count(DISTINCT ticker) FROM fills WHERE side = 'buy' "
                                       "AND trade_date = '2026-11-17'").fetchall()
        database.close()
        assert f'"ORCHESTRATOR_MAX_POSITIONS": "{value}"' in recorded
        held[value] = bought
    assert held["2"] == 2 and held["5"] == 5  # the first day's buys, as many as each allows
    refused = cli("simulate", "--start", "2026-11-17", "--end", "2026-11-18", "--sweep", "max_positions=2,5",
                  "--report", "out", env=env)
    assert refused.exit_code == 2 and "without --report" in refused.stderr
