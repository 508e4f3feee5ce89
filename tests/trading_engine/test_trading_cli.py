"""The trading jobs from the command line: live mode refuses a bad KIS configuration
with one line (exit 2), and never shows credentials."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import in_process_cli

NOW = datetime(2026, 11, 20, 8, 50, tzinfo=ZoneInfo("Asia/Seoul"))
SECRET = "S3CR3T" * 30
KEY = "PSkey" * 7


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> Any:
    return in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)


LIVE_REFUSALS = [
    ({}, "Error: KIS trading (--no-dry-run) needs KIS_APP_KEY, KIS_APP_SECRET, KIS_ACCOUNT"),
    ({"KIS_APP_KEY": KEY, "KIS_APP_SECRET": SECRET, "KIS_ACCOUNT": "12345678-01",
      "ORCHESTRATOR_KIS_PAPER_HOST": "https://openapi.koreainvestment.com:9443"}, "Error: "),
    ({"KIS_APP_KEY": KEY, "KIS_APP_SECRET": SECRET, "KIS_ACCOUNT": "12345678-01",
      "ORCHESTRATOR_KIS_ENVIRONMENT": "live",
      "ORCHESTRATOR_KIS_LIVE_TR_IDS": "buy=VTTC0012U,sell=VTTC0011U,cancel=VTTC0013U,balance=VTTC8434R,"
                                      "fills=VTTC0081R,quote=FHKST01010100"}, "Error: "),
]


@pytest.mark.parametrize("command", [["run-job", "signal_generation", "--no-dry-run"],
                                     ["start", "--no-dry-run"]])
@pytest.mark.parametrize("env, message", LIVE_REFUSALS, ids=["no credentials", "paper host is live",
                                                             "live with paper tr_ids"])
def test_live_mode_with_a_bad_kis_configuration_exits_2_with_one_line(
        cli: Any, command: list[str], env: dict[str, str], message: str) -> None:
    result = cli(*command, env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert SECRET not in result.stderr + result.stdout and KEY not in result.stderr + result.stdout


BAD_TRADING_SETTINGS = [
    ({"ORCHESTRATOR_SELL_TAX_SCHEDULE": "2025-13-01=0.15"},
     "Error: ORCHESTRATOR_SELL_TAX_SCHEDULE='2025-13-01=0.15': '2025-13-01' is not a date; "
     "expected YYYY-MM-DD=percent pairs"),
    ({"ORCHESTRATOR_COMMISSION_PCT": "7"},
     "Error: ORCHESTRATOR_COMMISSION_PCT='7': expected a percentage from 0 up to 5"),
    ({"ORCHESTRATOR_STOP_LOSS_PCT": "-1"},
     "Error: ORCHESTRATOR_STOP_LOSS_PCT='-1': expected a percentage from 0 (off) to 100"),
    ({"ORCHESTRATOR_ENTRY_RULES": "price>3"},
     "Error: ORCHESTRATOR_ENTRY_RULES='price>3': cannot read 'price>3'; expected conditions such as"),
    ({"ORCHESTRATOR_KIS_ENVIRONMENT": "demo"},
     "Error: ORCHESTRATOR_KIS_ENVIRONMENT='demo': expected paper (KIS 모의투자) or live (실전투자)"),
    ({"ORCHESTRATOR_KIS_PAPER_TR_IDS": "buy=VTTC0012U"},
     "Error: ORCHESTRATOR_KIS_PAPER_TR_IDS='buy=VTTC0012U': no tr_id for sell, cancel, balance, fills, quote"),
    ({"ORCHESTRATOR_KIS_LIVE_HOST": "openapi.koreainvestment.com"},
     "Error: ORCHESTRATOR_KIS_LIVE_HOST='openapi.koreainvestment.com': expected a URL such as"),
    ({"ORCHESTRATOR_PAPER_QUOTES": "maybe"},
     "Error: ORCHESTRATOR_PAPER_QUOTES='maybe': expected auto (KIS quotes when KIS_APP_KEY and KIS_APP_SECRET "
     "are set), kis or off"),
    ({"ORCHESTRATOR_PAPER_QUOTES": "kis"},
     "Error: ORCHESTRATOR_PAPER_QUOTES=kis prices dry run from KIS, but ORCHESTRATOR_DATA_PROVIDER=simulated"),
    ({"ORCHESTRATOR_PAPER_QUOTES": "kis", "ORCHESTRATOR_DATA_PROVIDER": "pykrx", "KIS_APP_SECRET": SECRET},
     "Error: ORCHESTRATOR_PAPER_QUOTES=kis needs KIS_APP_KEY, not set in the environment or .env"),
]


@pytest.mark.parametrize("env, message", BAD_TRADING_SETTINGS,
                         ids=[f"{next(iter(e))}={next(iter(e.values()))}" for e, _ in BAD_TRADING_SETTINGS])
def test_bad_trading_settings_exit_2_with_one_line(cli: Any, env: dict[str, str], message: str) -> None:
    result = cli("run-job", "position_monitoring", env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


def test_a_malformed_account_number_is_refused_without_echoing_it(cli: Any) -> None:
    result = cli("status", env={"KIS_ACCOUNT": "98765-4321-0"})
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: KIS_ACCOUNT=(hidden): expected the 10-digit account number")
    assert "98765" not in result.stderr


def test_settings_repr_hides_the_credentials() -> None:
    from tests.conftest import make_settings

    settings = make_settings(kis_app_key=KEY, kis_app_secret=SECRET, kis_account="12345678-01")
    assert KEY not in repr(settings) and SECRET not in repr(settings) and "12345678" not in repr(settings)


def test_run_job_signal_generation_reports_a_missing_watchlist_as_skipped(cli: Any) -> None:
    result = cli("run-job", "signal_generation", "--date", "2026-11-20",
                 env={"ORCHESTRATOR_DATA_PROVIDER": "pykrx"})
    # pykrx without KRX credentials cannot produce the 11-19 watchlist: skipped, exit 1
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith(
        "signal_generation 2026-11-20: skipped: input missing: no watchlist for 2026-11-19")
