"""A replay answers for the settings it ran with: the same database replayed with other
settings is refused in one line unless --fresh, which replays it from scratch."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.orchestrator.replay_settings import differences, shaping
from tests.conftest import in_process_cli, make_settings

KST = ZoneInfo("Asia/Seoul")
SMALL = {"ORCHESTRATOR_SIMULATED_UNIVERSE": "30", "ORCHESTRATOR_BOOTSTRAP_SESSIONS": "130"}
DAYS = ("--start", "2026-11-18", "--end", "2026-11-18")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> Any:
    return in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, datetime(2026, 11, 21, 10, 0, tzinfo=KST))


def _fills(tmp_path: Path) -> int:
    database = sqlite3.connect(tmp_path / "data" / "simulation.db")
    try:
        [(count,)] = database.execute("SELECT count(*) FROM fills").fetchall()
    finally:
        database.close()
    return int(count)


def test_a_replay_with_other_settings_is_refused_unless_fresh(cli: Any, tmp_path: Path) -> None:
    assert cli("simulate", *DAYS, env=SMALL).exit_code == 0
    filled = _fills(tmp_path)
    again = cli("simulate", *DAYS, env={**SMALL, "ORCHESTRATOR_TIMEZONE": "Asia/Seoul"})  # the same values
    assert again.exit_code == 0, again.output
    shown_elsewhere = cli("simulate", *DAYS, "--timezone", "UTC", env=SMALL)  # shown in another zone: the same
    assert shown_elsewhere.exit_code == 0, shown_elsewhere.output

    refused = cli("simulate", *DAYS, env={**SMALL, "ORCHESTRATOR_MAX_POSITIONS": "3"})
    assert refused.exit_code == 2
    assert refused.stderr.splitlines()[-1] == (
        "Error: this database holds default_user's replay made with other settings (ORCHESTRATOR_MAX_POSITIONS=20, "
        "now 3): its results would not answer for these; replay with --fresh to start it again, or into another "
        "--database-url")
    assert _fills(tmp_path) == filled  # nothing was replayed or lost

    fresh = cli("simulate", *DAYS, "--fresh", env={**SMALL, "ORCHESTRATOR_MAX_POSITIONS": "3"})
    assert fresh.exit_code == 0, fresh.output
    assert 0 < _fills(tmp_path) <= 3  # from scratch, with at most three positions bought
    assert cli("simulate", *DAYS, env={**SMALL, "ORCHESTRATOR_MAX_POSITIONS": "3"}).exit_code == 0  # now recorded


def test_what_shapes_a_replay_and_what_does_not() -> None:
    base = shaping(make_settings())
    assert shaping(make_settings(display_timezone="UTC", log_level="DEBUG", notify_language="en")) == base
    assert differences(base, shaping(make_settings(stop_loss_pct="3", enable_risk_checks="false"))) == (
        "ORCHESTRATOR_ENABLE_RISK_CHECKS=true, now false; ORCHESTRATOR_STOP_LOSS_PCT=5.0, now 3.0")


def test_fresh_empties_either_database_and_records_the_new_settings(database_url: str,
                                                                     calendar_cache_dir: Path) -> None:
    from datetime import date

    from services.orchestrator.replay import simulate
    from services.orchestrator.replay_settings import SettingsChanged

    def settings(**values: str) -> Any:
        return make_settings(database_url=database_url, cache_dir=str(calendar_cache_dir), simulated_universe="30",
                             bootstrap_sessions="130", **values)

    day = date(2026, 11, 18)
    simulate(settings(), day, day, check_settings=True).runtime.close()
    with pytest.raises(SettingsChanged, match="ORCHESTRATOR_TAKE_PROFIT_PCT=15.0, now 4.0"):
        simulate(settings(take_profit_pct="4"), day, day, check_settings=True)
    fresh = simulate(settings(take_profit_pct="4"), day, day, check_settings=True, fresh=True)
    fresh.runtime.close()
    assert fresh.failed == 0
    simulate(settings(take_profit_pct="4"), day, day, check_settings=True).runtime.close()  # recorded anew
