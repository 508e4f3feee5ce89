"""What people read: one display zone for every time shown or exported, tables that
stay readable at 80 columns, every ``--format`` its help offers, and names that are
forgiven (``data-collection``) or corrected (the closest known one)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.orchestrator.main import app
from tests.conftest import in_process_cli

KST = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 11, 20, 16, 0, 1, tzinfo=KST)  # a Friday, just after data collection's fire
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?([+-]\d\d:\d\d|Z)?")
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}([+-]\d\d:\d\d)) (INFO|WARNING|ERROR|DEBUG)")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> Any:
    """The CLI in an empty working directory, a clean environment, a fixed clock and a
    terminal of 80 columns."""
    monkeypatch.delenv("COLUMNS", raising=False)
    invoke = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)
    return lambda *args, env=None: invoke(*args, env={"COLUMNS": "80", **(env or {})})


def _offsets(document: Any) -> set[str]:
    """The UTC offsets of every ISO time in a JSON document (a time without one is ``None``)."""
    return {match.group(1) for match in ISO_TIME.finditer(json.dumps(document))}


# --- one time zone ---------------------------------------------------------------------------


@pytest.mark.parametrize("zone, offset", [(None, "+09:00"), ("UTC", "+00:00"), ("America/New_York", "-05:00")])
def test_every_time_status_shows_is_in_the_display_zone_with_its_offset(cli: Any, zone: str | None,
                                                                        offset: str) -> None:
    assert cli("run-job", "risk_checks").exit_code == 0  # a last run, stored in UTC
    assert cli("halt", "--reason", "audit").exit_code == 0
    args = ("status", "--format", "json", *(("--timezone", zone) if zone else ()))
    document = json.loads(cli(*args).stdout)
    assert _offsets(document) == {offset}
    jobs = {job["job"]: job for job in document["jobs"]}
    assert jobs["risk_checks"]["last_run"]["scheduled_for"].endswith(offset)
    assert document["halt"]["halted_at"].endswith(offset)


def test_status_table_names_the_zone_its_times_are_in(cli: Any) -> None:
    assert "times in Asia/Seoul, UTC+09:00" in cli("status").stdout
    assert "times in UTC, UTC+00:00" in cli("status", "--timezone", "UTC").stdout


def test_history_and_next_runs_follow_the_timezone_option(cli: Any) -> None:
    assert cli("run-job", "risk_checks").exit_code == 0
    [run] = json.loads(cli("history", "--format", "json", "--timezone", "UTC").stdout)
    assert _offsets(run) == {"+00:00"}
    assert run["scheduled_for"] == "2026-11-20T07:00:01+00:00"  # NOW, 16:00:01 in Seoul
    fires = json.loads(cli("next-runs", "signal_generation", "--start", "2026-11-23T00:00+09:00",
                           "--end", "2026-11-24T00:00+09:00", "--format", "json", "--timezone", "UTC").stdout)
    assert fires == [{"job": "signal_generation", "fire_time": "2026-11-22T23:45:00+00:00"}]


@pytest.mark.parametrize("zone, offset", [(None, "+09:00"), ("UTC", "+00:00")])
def test_log_lines_are_timed_in_the_display_zone(cli: Any, zone: str | None, offset: str) -> None:
    result = cli("run-job", "risk_checks", *(("--timezone", zone) if zone else ()))
    lines = [LOG_LINE.match(line) for line in result.stderr.splitlines() if line]
    assert lines and all(lines), result.stderr
    assert {match.group(2) for match in lines if match} == {offset}


def test_every_command_takes_the_timezone_option(cli: Any) -> None:
    import typer

    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"start", "status", "history", "positions", "orders", "fills", "pnl", "backfill"} <= commands
    for command in sorted(commands):  # every command shows a time, if only in its log lines
        assert "--timezone" in cli(command, "--help").stdout, command


# --- readable output -------------------------------------------------------------------------


def test_tables_fit_80_columns_with_one_line_per_job(cli: Any) -> None:
    lines = cli("status").stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("Jobs at")):]
    assert max(len(line) for line in table if not line.startswith("warning:")) <= 80
    rows = [line for line in lines if line.split() and line.split()[0] in {
        "signal_generation", "position_monitoring", "data_collection", "indicator_calculation",
        "watchlist_update", "risk_checks"}]
    assert len(rows) == 6  # each job on one line, none wrapped


def test_a_long_reason_is_one_clipped_line_in_the_history_table(cli: Any) -> None:
    reason = "the broker announced maintenance " * 8
    assert cli("halt", "--reason", reason.strip()).exit_code == 0
    skipped = cli("run-job", "signal_generation")
    assert skipped.exit_code == 1 and "signal_generation 2026-11-20: skipped: " in skipped.stdout
    title, header, _rule, *rows = cli("history").stdout.splitlines()
    assert header.split() == ["id", "job", "fire", "date", "outcome", "detail"]
    assert rows and all(row.split()[0].isdigit() and len(row) <= 80 for row in rows)  # one line a run
    [signals] = [row for row in rows if "signal_generation" in row]
    assert signals.rstrip().endswith("…")
    [full] = json.loads(cli("history", "--job", "signal_generation", "--format", "json").stdout)
    assert full["reason"] in skipped.stdout  # json keeps the whole reason


def test_history_offers_csv_with_every_column(cli: Any) -> None:
    assert cli("run-job", "risk_checks").exit_code == 0
    rows = list(csv.DictReader(io.StringIO(cli("history", "--format", "csv").stdout)))
    assert len(rows) == 1
    assert list(rows[0]) == ["id", "job", "user_id", "scheduled_for", "trading_date", "origin", "dry_run",
                             "outcome", "started_at", "finished_at", "host", "pid", "reason", "error", "summary"]
    assert rows[0]["job"] == "risk_checks" and json.loads(rows[0]["summary"])["equity"] == 100_000_000


def test_run_job_prints_its_summary_as_a_small_table(cli: Any) -> None:
    first, header, _rule, *rows = cli("run-job", "risk_checks").stdout.splitlines()
    assert first == "risk_checks 2026-11-20: success (run 1)"
    assert header.split() == ["what", "value"]
    values = {row.split()[0]: row.split()[1:] for row in rows if row.strip()}
    assert values["equity"] == ["100,000,000"] and values["positions"] == ["0"]


def test_a_disabled_job_shows_no_next_fire(cli: Any) -> None:
    env = {"ORCHESTRATOR_ENABLE_WATCHLIST_UPDATE": "false"}
    jobs = {job["job"]: job for job in json.loads(cli("status", "--format", "json", env=env).stdout)["jobs"]}
    assert jobs["watchlist_update"]["enabled"] is False and jobs["watchlist_update"]["next_fire_times"] == []
    assert len(jobs["data_collection"]["next_fire_times"]) == 3
    [row] = [line for line in cli("status", env=env).stdout.splitlines() if line.startswith("watchlist_update")]
    assert row.split() == ["watchlist_update", "off"]


# --- names forgiven and corrected ----------------------------------------------------------


def test_a_job_name_with_hyphens_is_the_job(cli: Any) -> None:
    result = cli("run-job", "risk-checks")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("risk_checks 2026-11-20: success")
    assert json.loads(cli("history", "--job", "risk-checks", "--format", "json").stdout)[0]["job"] == "risk_checks"


def test_an_unknown_job_suggests_the_closest(cli: Any) -> None:
    result = cli("run-job", "watchlist-updat")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: unknown job 'watchlist-updat'; did you mean 'watchlist_update'? ")


def test_an_unknown_variable_suggests_the_closest_setting(cli: Any) -> None:
    result = cli("status", env={"ORCHESTRATOR_DRYRUN": "false"})
    assert result.exit_code == 0
    assert ("ORCHESTRATOR_DRYRUN is not a known setting; ignored (did you mean 'ORCHESTRATOR_DRY_RUN'? "
            "check its spelling)") in result.stderr


ONLY_MONITORING = ("--disable-signal-generation", "--disable-data-collection", "--disable-indicator-calculation",
                   "--disable-watchlist-update", "--disable-risk-checks")


@pytest.mark.parametrize("zone, offset", [(None, "+09:00"), ("UTC", "+00:00")])
def test_the_replay_reports_csvs_share_the_display_zone(cli: Any, tmp_path: Path, zone: str | None,
                                                         offset: str) -> None:
    result = cli("simulate", "--start", "2026-11-20", "--end", "2026-11-20", *ONLY_MONITORING, "--report", "out",
                 *(("--timezone", zone) if zone else ()))
    assert result.exit_code == 0, result.output
    snapshots = list(csv.DictReader((tmp_path / "out" / "snapshots.csv").open()))
    ledger = list(csv.DictReader((tmp_path / "out" / "ledger.csv").open()))
    assert len(snapshots) == 1 and len(ledger) == 27  # a regular session's ticks, 09:00 to 15:30
    assert {_offsets(row["taken_at"]).pop() for row in snapshots} == {offset}
    assert {_offsets(row["scheduled_for"]).pop() for row in ledger} == {offset}
    close = datetime.fromisoformat(snapshots[0]["taken_at"])
    assert close == datetime(2026, 11, 20, 15, 30, tzinfo=KST)  # the session's close, whatever the zone


def test_the_timezone_option_of_a_display_command_moves_no_fire(cli: Any) -> None:
    env = {"ORCHESTRATOR_RISK_CHECK_INTERVAL": "120"}  # on the schedule zone's (Seoul's) even hours

    def next_risk_check(*args: str) -> datetime:
        jobs = json.loads(cli("status", "--format", "json", *args, env=env).stdout)["jobs"]
        [risk] = [job for job in jobs if job["job"] == "risk_checks"]
        return datetime.fromisoformat(risk["next_fire_times"][0])

    seoul, kathmandu = next_risk_check(), next_risk_check("--timezone", "Asia/Kathmandu")  # UTC+05:45
    assert seoul == kathmandu == datetime(2026, 11, 20, 18, 0, tzinfo=KST)
    assert kathmandu.isoformat() == "2026-11-20T14:45:00+05:45"


def test_the_display_zone_can_be_set_apart_from_the_schedule_zone(cli: Any) -> None:
    env = {"ORCHESTRATOR_DISPLAY_TIMEZONE": "UTC"}
    document = json.loads(cli("status", "--format", "json", env=env).stdout)
    assert document["settings"]["timezone"] == "Asia/Seoul" and document["settings"]["display_timezone"] == "UTC"
    assert _offsets(document) == {"+00:00"}
