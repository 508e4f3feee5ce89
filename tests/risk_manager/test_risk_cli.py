"""``halt``, ``resume``, ``status`` and ``run-job risk_checks`` from the command line.

The halt is proven to survive restarts with separate processes: each command of the
first test is a fresh interpreter on the same database file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import in_process_cli, subprocess_env

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 20, 0, tzinfo=ZoneInfo("Asia/Seoul"))


@pytest.fixture
def cli(tmp_path: Path, calendar_cache_dir: Path) -> Any:
    env = subprocess_env(PYTHONPATH=str(REPO), ORCHESTRATOR_CACHE_DIR=str(calendar_cache_dir),
                         DATABASE_URL=f"sqlite:///{tmp_path / 'orchestrator.db'}", ORCHESTRATOR_USER_ID="trader")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services.orchestrator.main", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    return run


def test_a_halt_holds_across_processes_until_resumed(cli: Any) -> None:
    halted = cli("halt", "--reason", "broker maintenance")
    assert halted.returncode == 0, halted.stderr
    assert halted.stdout.startswith("trading halted for trader since ") and "broker maintenance" in halted.stdout

    status = cli("status", "--format", "json")
    halt = json.loads(status.stdout)["halt"]
    assert (halt["halted"], halt["reason"], halt["halted_by"], halt["resumed_at"]) == (
        True, "broker maintenance", "manual", None)
    table = cli("status")
    assert table.stdout.startswith("TRADING HALTED for trader since ")
    assert "resume --user-id trader" in table.stdout

    skipped = cli("run-job", "signal_generation", "--date", "2026-11-20")
    assert skipped.returncode == 1
    assert skipped.stdout.startswith("signal_generation 2026-11-20: skipped: trading halted: broker maintenance")

    resumed = cli("resume")
    assert resumed.returncode == 0 and resumed.stdout.startswith("trading resumed for trader")
    halt = json.loads(cli("status", "--format", "json").stdout)["halt"]
    assert halt["halted"] is False and halt["resumed_by"] == "manual"


# --- in-process (no restart to prove) -------------------------------------------------------------

@pytest.fixture
def app_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> Any:
    return in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)


def test_a_second_halt_keeps_the_first_and_a_resume_without_a_halt_says_so(app_cli: Any) -> None:
    assert app_cli("halt", "--reason", "broker maintenance").exit_code == 0
    again = app_cli("halt", "--reason", "another reason")
    assert again.exit_code == 0
    assert again.stdout == ("trading was already halted for default_user since 2026-11-20 20:00+09:00 (by manual): "
                            "broker maintenance\n")
    assert app_cli("resume").exit_code == 0
    assert "TRADING HALTED" not in app_cli("status").stdout
    nothing = app_cli("resume")
    assert nothing.exit_code == 0 and nothing.stdout == "trading is not halted for default_user; nothing to resume\n"


@pytest.mark.parametrize("reason", ["", "   ", "x" * 301])
def test_a_halt_needs_a_reason_of_1_to_300_characters(app_cli: Any, reason: str) -> None:
    result = app_cli("halt", "--reason", reason)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Invalid value for '--reason': expected a reason of 1 to 300 characters")
    assert result.stderr.count("\n") == 1


def test_a_risk_check_runs_at_any_time_and_its_ledger_row_holds_the_metrics(app_cli: Any) -> None:
    result = app_cli("run-job", "risk_checks")  # a Friday evening, after the close
    assert result.exit_code == 0, result.output
    [run] = json.loads(app_cli("history", "--job", "risk_checks", "--format", "json").stdout)
    assert run["outcome"] == "success"
    summary = run["summary"]
    assert (summary["equity"], summary["cash"], summary["positions"], summary["drawdown_pct"]) == (
        100_000_000, 100_000_000, 0, 0.0)
    assert summary["halted"] is False and summary["breaches"] == []
