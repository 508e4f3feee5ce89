"""The command line contract (DESIGN.md section 4), invoked as a user would."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from services.common.clock import FixedClock
from services.common.database import head_revision
from services.orchestrator import ops
from services.orchestrator import runtime as runtime_module
from services.orchestrator.jobs import JOBS
from services.orchestrator.main import app
from services.orchestrator.ops.arguments import InvalidArgument
from services.orchestrator.output import to_json
from tests.conftest import make_settings, subprocess_env, terminate_backend

KST = ZoneInfo("Asia/Seoul")
REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 16, 0, 1, tzinfo=KST)  # a Friday, just after data collection's fire


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> Any:
    """Run the CLI in an empty working directory with a clean environment and a fixed clock."""
    for name in list(__import__("os").environ):
        if name.startswith("ORCHESTRATOR_") or name in ("DATABASE_URL", "LOG_LEVEL"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(calendar_cache_dir))
    monkeypatch.setattr(runtime_module, "SystemClock", lambda: FixedClock(NOW))
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
        return runner.invoke(app, list(args), env=env)

    return invoke


def test_calendar_csv_shows_the_exam_day_late_session_and_holidays(cli: Any) -> None:
    result = cli("calendar", "--start", "2026-11-16", "--end", "2026-11-22", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "date,open,close,status\n"
        "2026-11-16,09:00,15:30,regular\n"
        "2026-11-17,09:00,15:30,regular\n"
        "2026-11-18,09:00,15:30,regular\n"
        "2026-11-19,10:00,16:30,special\n"
        "2026-11-20,09:00,15:30,regular\n"
    )


def test_calendar_json_lists_closed_days_with_empty_times(cli: Any) -> None:
    result = cli("calendar", "--start", "2026-07-16", "--end", "2026-07-17", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {"date": "2026-07-16", "open": "09:00", "close": "15:30", "status": "regular"},
        {"date": "2026-07-17", "open": "", "close": "", "status": "closed"},
    ]


def test_calendar_times_follow_the_configured_timezone(cli: Any) -> None:
    result = cli("calendar", "--start", "2026-01-02", "--end", "2026-01-02", "--format", "csv",
                 env={"ORCHESTRATOR_TIMEZONE": "UTC"})
    assert result.stdout == "date,open,close,status\n2026-01-02,01:00,06:30,special\n"


def test_next_runs_csv_on_the_exam_day_follows_the_late_session(cli: Any) -> None:
    result = cli("next-runs", "position_monitoring", "data_collection", "indicator_calculation",
                 "watchlist_update", "--start", "2026-11-19T16:00", "--end", "2026-11-19T19:00",
                 "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "job,fire_time\n"
        "position_monitoring,2026-11-19T16:00:00+09:00\n"
        "position_monitoring,2026-11-19T16:15:00+09:00\n"
        "position_monitoring,2026-11-19T16:30:00+09:00\n"
        "data_collection,2026-11-19T17:00:00+09:00\n"
        "indicator_calculation,2026-11-19T18:00:00+09:00\n"
    )


def test_next_runs_json_is_sorted_by_time_then_job_and_leaves_disabled_jobs_out(cli: Any) -> None:
    result = cli("next-runs", "--start", "2026-11-20T08:30", "--end", "2026-11-20T09:01",
                 "--format", "json", env={"ORCHESTRATOR_ENABLE_POSITION_MONITORING": "false"})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"job": "risk_checks", "fire_time": "2026-11-20T08:30:00+09:00"},
        {"job": "signal_generation", "fire_time": "2026-11-20T08:45:00+09:00"},
        {"job": "risk_checks", "fire_time": "2026-11-20T09:00:00+09:00"},
    ]


def test_next_runs_on_a_holiday_has_only_risk_checks(cli: Any) -> None:
    result = cli("next-runs", "--start", "2026-07-17T00:00+09:00", "--end", "2026-07-18T00:00+09:00",
                 "--format", "json")
    fires = json.loads(result.stdout)
    assert {fire["job"] for fire in fires} == {"risk_checks"}
    assert len(fires) == 48


def test_run_job_records_a_ledger_row_that_history_shows(cli: Any) -> None:
    result = cli("run-job", "risk_checks")
    assert result.exit_code == 0, result.output
    first, *table = result.stdout.splitlines()
    assert first == "risk_checks 2026-11-20: success (run 1)"
    assert table[0].split() == ["what", "value"]  # the summary as a small table
    assert "equity                 100,000,000" in result.stdout
    history = cli("history", "--format", "json")
    [row] = json.loads(history.stdout)
    assert (row["job"], row["origin"], row["outcome"], row["trading_date"]) == (
        "risk_checks", "manual", "success", "2026-11-20")
    assert row["summary"]["equity"] == row["summary"]["cash"]  # a new paper account: all cash


def test_run_job_defaults_to_the_trading_date_of_the_latest_fire(cli: Any) -> None:
    result = cli("run-job", "signal_generation")
    assert result.stdout.startswith("signal_generation 2026-11-20: ")


def test_status_json_shows_settings_jobs_and_the_calendar_horizon(cli: Any, tmp_path: Path) -> None:
    result = cli("status", "--format", "json", env={"ORCHESTRATOR_ENABLE_WATCHLIST_UPDATE": "no"})
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"now", "halt", "database", "settings", "calendar", "jobs", "waiting_elsewhere"}
    assert document["halt"] is None  # trading was never halted here
    assert document["database"] == str(tmp_path / "data" / "orchestrator.db")
    assert document["calendar"]["valid_through"] == "2026-12-31"
    assert document["calendar"]["warning"] is None
    jobs = {job["job"]: job for job in document["jobs"]}
    assert list(jobs) == [job.name for job in JOBS]
    assert jobs["watchlist_update"]["enabled"] is False
    assert jobs["data_collection"]["next_fire_times"] == [
        "2026-11-23T16:00:00+09:00", "2026-11-24T16:00:00+09:00", "2026-11-25T16:00:00+09:00"]
    assert document["settings"]["dry_run"] is True


def test_status_warns_when_the_schedule_nears_the_end_of_the_reviewed_calendar(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "SystemClock",
                        lambda: FixedClock(datetime(2026, 12, 10, 12, 0, tzinfo=KST)))
    document = json.loads(cli("status", "--format", "json").stdout)
    assert document["calendar"]["warning"].startswith(
        "the KRX calendar data is reviewed only through 2026-12-31")
    table = cli("status")
    assert "warning: the KRX calendar data is reviewed only through 2026-12-31" in table.stdout


def test_status_names_the_database_in_use_a_relative_sqlite_path_made_absolute(cli: Any, tmp_path: Path) -> None:
    table = cli("status", env={"DATABASE_URL": "sqlite:///state/orders.db"})
    assert table.exit_code == 0, table.stderr
    assert f"              database: {tmp_path / 'state' / 'orders.db'}\n" in table.stdout
    document = json.loads(cli("status", "--format", "json", env={"DATABASE_URL": "sqlite:///state/orders.db"}).stdout)
    assert document["database"] == str(tmp_path / "state" / "orders.db")


def test_the_database_location_hides_a_server_s_password() -> None:
    def location(url: str) -> str:
        return runtime_module.database_location(make_settings(), url)

    server = location("postgresql+psycopg://bob:hunter2@db.example:5432/krx?sslpassword=s3cret")
    assert server.startswith("postgresql+psycopg://bob:***@db.example:5432/krx?sslpassword=")
    assert "hunter2" not in server and "s3cret" not in server
    assert location("sqlite://") == ":memory:"
    assert location("sqlite:////var/lib/krx/../krx/orchestrator.db") == "/var/lib/krx/orchestrator.db"


def test_the_first_command_in_a_fresh_directory_announces_the_new_database_and_the_next_does_not(
    cli: Any, tmp_path: Path
) -> None:
    announcement = f"created a new database at {tmp_path / 'data' / 'orchestrator.db'}"
    first = cli("status")
    assert first.exit_code == 0, first.stderr
    assert first.stderr.count(announcement) == 1
    assert [line for line in first.stderr.splitlines() if "INFO" in line and announcement in line]
    assert announcement not in first.stdout  # stdout stays the report (json stays parseable)
    second = cli("status", "--format", "json")
    assert second.exit_code == 0
    assert "created a new database" not in second.stderr
    assert json.loads(second.stdout)["database"] == str(tmp_path / "data" / "orchestrator.db")


def test_migrate_announces_a_database_it_creates(cli: Any, tmp_path: Path) -> None:
    first, second = cli("migrate"), cli("migrate")
    assert first.stderr.count(f"created a new database at {tmp_path / 'data' / 'orchestrator.db'}") == 1
    assert "created a new database" not in second.stderr
    assert first.stdout == second.stdout  # the revision line, as before


def test_migrate_reports_the_revision(cli: Any) -> None:
    result = cli("migrate")
    assert result.exit_code == 0
    assert result.stdout.strip().endswith(f"is at revision {head_revision()}")


def test_start_offers_a_disable_flag_for_every_registered_job(cli: Any) -> None:
    result = cli("start", "--help")
    assert result.exit_code == 0
    for job in JOBS:
        assert job.disable_flag in result.stdout


BAD_INVOCATIONS = [
    (["frobnicate"], "Error: No such command 'frobnicate'; known commands: start, run-job, status"),
    (["run-job", "data_colection"],
     "Error: unknown job 'data_colection'; did you mean 'data_collection'? known jobs: signal_generation"),
    (["run-job", "data_collection", "--date", "2026-02-30"],
     "Error: Invalid value for '--date': '2026-02-30' is not a date; expected YYYY-MM-DD"),
    (["run-job", "data_collection", "--date", "2026-07-17"],
     "Error: Invalid value for '--date': 2026-07-17 is not a KRX session; nearest sessions: 2026-07-16 and 2026-07-20"),
    (["run-job", "data_collection", "--date", "2026-12-01"],
     "Error: Invalid value for '--date': 2026-12-01 is in the future; expected 2026-11-20 or earlier"),
    (["calendar", "--start", "2026-12-01"], "Error: Missing option '--end'"),
    (["calendar", "--start", "2026-12-31", "--end", "2026-12-01"],
     "Error: Invalid value for '--start': --start 2026-12-31 is after --end 2026-12-01"),
    (["calendar", "--start", "1999-01-04", "--end", "1999-01-08"],
     "Error: 1999-01-04 is outside the KRX calendar data (2015-01-01 to 2027-12-31)"),
    (["calendar", "--start", "2026-01-01", "--end", "2026-01-02", "--format", "xml"],
     "Error: Invalid value for '--format': 'xml' is not one of 'table', 'csv', 'json'"),
    (["next-runs", "--start", "tomorrow", "--end", "2026-11-30"],
     "Error: Invalid value for '--start': 'tomorrow' is not an ISO 8601 time"),
    (["next-runs", "risk_check", "--start", "2026-11-23", "--end", "2026-11-24"],
     "Error: unknown job 'risk_check'; did you mean 'risk_checks'? known jobs:"),
    (["history", "--limit", "0"], "Error: Invalid value for '--limit'"),
    (["history", "--job", "nope"], "Error: unknown job 'nope'"),
    (["start", "--timezone", "Asia/Seol"],
     "Error: --timezone='Asia/Seol': unknown timezone; expected an IANA name such as Asia/Seoul or UTC"),
    (["start", "--portfolio-value", "-100"], "Error: --portfolio-value='-100': expected a whole number above 0"),
    (["start", "--disable-everything"], "Error: No such option: --disable-everything"),
    (["status", "--format", "csv"],  # status is one document: table or json, as its help says
     "Error: Invalid value for '--format': 'csv' is not one of 'table', 'json'."),
    (["history", "--format", "xml"],
     "Error: Invalid value for '--format': 'xml' is not one of 'table', 'csv', 'json'."),
    (["status", "--timezone", "Asia/Seol"],
     "Error: --timezone='Asia/Seol': unknown timezone; expected an IANA name such as Asia/Seoul or UTC"),
]


@pytest.mark.parametrize("args, message", BAD_INVOCATIONS, ids=[" ".join(case[0]) for case in BAD_INVOCATIONS])
def test_bad_invocations_exit_2_with_one_line(cli: Any, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr + result.stdout


BAD_ENVIRONMENT = [
    ({"ORCHESTRATOR_DRY_RUN": "maybe"}, "Error: ORCHESTRATOR_DRY_RUN='maybe': expected one of true/false/1/0/yes/no"),
    ({"ORCHESTRATOR_DATA_COLLECTION_TIME": "25:00"},
     "Error: ORCHESTRATOR_DATA_COLLECTION_TIME='25:00': expected a time HH:MM between 00:00 and 23:59"),
    ({"ORCHESTRATOR_DATA_COLLECTION_TIME": "15:00"},
     "Error: ORCHESTRATOR_DATA_COLLECTION_TIME 15:00 is before the market close 15:30; "
     "a post-close job must run at or after the close"),
    ({"ORCHESTRATOR_SIGNAL_GENERATION_TIME": "09:30"},
     "Error: ORCHESTRATOR_SIGNAL_GENERATION_TIME 09:30 is not before the market open 09:00"),
    ({"ORCHESTRATOR_RISK_CHECK_INTERVAL": "50"},
     "Error: ORCHESTRATOR_RISK_CHECK_INTERVAL='50': the interval must divide a day evenly"),
    ({"ORCHESTRATOR_TIMEZONE": "KST"}, "Error: ORCHESTRATOR_TIMEZONE='KST': unknown timezone"),
    ({"DATABASE_URL": "orchestrator.db"}, "Error: DATABASE_URL='orchestrator.db': expected a SQLAlchemy URL"),
]


@pytest.mark.parametrize("env, message", BAD_ENVIRONMENT, ids=[next(iter(e)) + "=" + next(iter(e.values()))
                                                                for e, _ in BAD_ENVIRONMENT])
def test_bad_environment_values_exit_2_with_one_line(cli: Any, env: dict[str, str], message: str) -> None:
    result = cli("status", env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


def test_a_bad_env_file_line_exits_2(cli: Any, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ORCHESTRATOR_MAX_POSITIONS=many\n")
    result = cli("status")
    assert result.exit_code == 2
    assert result.stderr == "Error: ORCHESTRATOR_MAX_POSITIONS (in .env)='many': expected a whole number above 0\n"


def test_an_unreachable_database_is_one_line_and_exit_1(cli: Any) -> None:
    result = cli("history", env={"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: database error: ")
    assert result.stderr.count("\n") == 1


def test_a_refused_connection_is_one_line_without_the_password(cli: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli("status", env={"DATABASE_URL": f"postgresql+psycopg://bob:hunter2@127.0.0.1:{port}/none"})
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (f'Error: database error: connection failed: connection to server at "127.0.0.1", '
                             f"port {port} failed: Connection refused\n")


def test_a_database_server_that_never_answers_is_one_line_within_the_connect_timeout(
    tmp_path: Path, calendar_cache_dir: Path
) -> None:
    with socket.socket() as server:  # accepts connections (the kernel's backlog), never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        env = subprocess_env(DATABASE_URL=f"postgresql+psycopg://bob:hunter2@127.0.0.1:{port}/db",
                             ORCHESTRATOR_DB_CONNECT_TIMEOUT_SECONDS="2",
                             ORCHESTRATOR_CACHE_DIR=str(calendar_cache_dir), PYTHONPATH=str(REPO))
        result = subprocess.run([sys.executable, "-m", "services.orchestrator.main", "status"], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=60)  # a hang fails here
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "Error: database error: connection timeout expired\n"


def test_the_database_and_caches_are_created_private_whatever_the_umask(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.common import market_calendar

    cache = tmp_path / "home" / ".cache" / "krx"  # none of it exists yet
    monkeypatch.setattr(market_calendar, "fallback_cache_dir", lambda: tmp_path / "fallback")
    previous = os.umask(0)
    try:
        assert cli("migrate").exit_code == 0
        assert cli("status", env={"ORCHESTRATOR_CACHE_DIR": str(cache)}).exit_code == 0
        with closing(sqlite3.connect(tmp_path / "data" / "orchestrator.db")) as connection:
            connection.execute("SELECT count(*) FROM job_runs").fetchall()  # WAL: -wal and -shm while open
            modes = {path.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(path.stat().st_mode))
                     for path in [tmp_path / "data", *(tmp_path / "data").iterdir(), tmp_path / "home",
                                  tmp_path / "home" / ".cache", cache, *cache.iterdir()]}
    finally:
        os.umask(previous)
    [cache_file] = [name for name in modes if name.startswith("home/.cache/krx/")]
    assert modes == {"data": "0o700", "data/orchestrator.db": "0o600", "data/orchestrator.db-wal": "0o600",
                     "data/orchestrator.db-shm": "0o600", "data/orchestrator.db.migrate.lock": "0o600",
                     "home": "0o700", "home/.cache": "0o700", "home/.cache/krx": "0o700", cache_file: "0o600"}


def test_a_connection_killed_mid_command_is_one_line(
    cli: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    from sqlalchemy import create_engine

    from services.risk_manager import halts

    admin = create_engine(database_url)
    read_halt = halts.halt_record

    def killed_first(connection: Any, user_id: str) -> Any:  # the administrator ends our session
        terminate_backend(admin, connection.exec_driver_sql("SELECT pg_backend_pid()").scalar())
        return read_halt(connection, user_id)

    monkeypatch.setattr(halts, "halt_record", killed_first)
    result = cli("status", env={"DATABASE_URL": database_url})
    admin.dispose()
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "Error: database error: terminating connection due to administrator command\n"


def test_the_readme_job_table_is_the_registry_rendered() -> None:
    from services.orchestrator.jobs import job_table_markdown
    from tests.conftest import make_settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert job_table_markdown(make_settings()) in readme


def test_an_unexpected_error_is_one_line_and_exit_1(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runtime_module.Runtime, "create", broken)
    result = cli("status")
    assert result.exit_code == 1
    assert result.stderr == "Error: unexpected RuntimeError: disk on fire\n"


def test_an_unwritable_database_directory_is_a_configuration_error(cli: Any) -> None:
    result = cli("history", env={"DATABASE_URL": "sqlite:////proc/no/such/dir/x.db"})
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: DATABASE_URL: cannot create the directory /proc/no/such/dir")


def test_next_runs_refuses_a_window_past_the_calendar_data(cli: Any) -> None:
    result = cli("next-runs", "--start", "2027-12-30", "--end", "2028-01-10")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: 2028-01-09 is outside the KRX calendar data")


# --- the library the commands call (services.orchestrator.ops) -------------------------------


def _runtime(tmp_path: Path, calendar_cache_dir: Path) -> Any:
    """The runtime the CLI fixture's commands use: its database, calendar and clock."""
    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'data' / 'orchestrator.db'}",
                             cache_dir=str(calendar_cache_dir))
    return runtime_module.Runtime.create(settings, clock=FixedClock(NOW))


def test_a_halt_made_on_the_command_line_is_in_the_library_s_status_report(
    cli: Any, tmp_path: Path, calendar_cache_dir: Path
) -> None:
    assert cli("halt", "--reason", "broker maintenance").stdout == (
        "trading halted for default_user since 2026-11-20 16:00+09:00: broker maintenance\n")
    runtime = _runtime(tmp_path, calendar_cache_dir)
    try:
        report = ops.status.report(runtime)
    finally:
        runtime.close()
    assert report.halt is not None
    assert (report.halt["halted"], report.halt["reason"], report.halt["halted_by"]) == (
        True, "broker maintenance", "manual")
    assert json.loads(to_json(report.as_dict())) == json.loads(cli("status", "--format", "json").stdout)


def test_the_library_refuses_an_argument_by_its_name(tmp_path: Path, calendar_cache_dir: Path) -> None:
    runtime = _runtime(tmp_path, calendar_cache_dir)
    with pytest.raises(InvalidArgument) as reversed_range:
        ops.schedule.calendar_days(runtime, date(2026, 12, 31), date(2026, 12, 1))
    with pytest.raises(InvalidArgument) as future:
        ops.manual.run_job(runtime, "data_collection", date(2026, 12, 1))
    with pytest.raises(InvalidArgument) as empty:
        ops.halts.halt(runtime, " \t ")
    assert [(e.value.name, str(e.value)) for e in (reversed_range, future, empty)] == [
        ("start", "--start 2026-12-31 is after --end 2026-12-01; expected start <= end"),
        ("date", "2026-12-01 is in the future; expected 2026-11-20 or earlier"),
        ("reason", "expected a reason of 1 to 300 characters, got 0"),
    ]
