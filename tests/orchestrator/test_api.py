"""The console's REST API (``services.orchestrator.api``) and its serving (``serve``,
``start``'s console).

Every endpoint against an empty database and against an account replayed for a week
(2026-11-16 to 2026-11-20, the exam day 11-19 included; every job, risk checks too) on
the simulated market, the clock standing on the Saturday after. Values are checked
against facts worked out by hand (the exam day's session and fires) and against the
CLI's JSON of the same data (``positions``, ``orders``, ``fills`` ``--format json``).
SQLite always; PostgreSQL as well when TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient

from services.common.clock import FixedClock
from services.common.job_api import Account
from services.orchestrator.api.app import create_app
from services.orchestrator.heartbeats import SchedulerBeat
from services.orchestrator.jobs import JOBS
from services.orchestrator.replay import simulate
from services.orchestrator.runtime import Runtime
from tests.conftest import (
    in_process_cli,
    make_settings,
    scratch_database,
    subprocess_env,
)
from tests.conftest import (
    read_until as _read_until,
)

REPO = Path(__file__).resolve().parents[2]
KST = ZoneInfo("Asia/Seoul")
START, END = date(2026, 11, 16), date(2026, 11, 20)
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=KST)  # the Saturday after: the closes of 11-20 are in
OFFSET = re.compile(r".*T[0-9:.]+\+09:00")


def _settings(url: str, cache_dir: Path, **values: str) -> Any:
    return make_settings(database_url=url, cache_dir=str(cache_dir), simulated_universe="30",
                         bootstrap_sessions="130", **values)


def _client(settings: Any, now: datetime = NOW) -> TestClient:
    return TestClient(create_app(settings, runtime_factory=lambda s: Runtime.create(s, FixedClock(now))))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def replayed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             calendar_cache_dir: Path) -> Iterator[str]:
    """The URL of a database holding a week's replay of every job."""
    with scratch_database(request.param, tmp_path_factory.mktemp("api")) as url:
        simulation = simulate(_settings(url, calendar_cache_dir), START, END)
        simulation.runtime.close()
        assert simulation.failed == 0
        yield url


@pytest.fixture(scope="module")
def api(replayed: str, calendar_cache_dir: Path) -> Iterator[TestClient]:
    with _client(_settings(replayed, calendar_cache_dir)) as client:
        yield client


@pytest.fixture
def empty(database_url: str, calendar_cache_dir: Path) -> Iterator[TestClient]:
    with _client(_settings(database_url, calendar_cache_dir)) as client:
        yield client


def _get(client: TestClient, path: str, status: int = 200) -> Any:
    response = client.get(path)
    assert response.status_code == status, response.text
    return response.json()


# --- an empty database ----------------------------------------------------------------------------


def test_every_endpoint_answers_on_an_empty_database(empty: TestClient) -> None:
    assert _get(empty, "/health") == {"status": "ok"}
    status = _get(empty, "/api/status")
    assert status["halt"] is None and [job["job"] for job in status["jobs"]] == [job.name for job in JOBS]
    assert [job["job"] for job in _get(empty, "/api/jobs")] == [job.name for job in JOBS]
    assert all(job["last_run"] is None for job in _get(empty, "/api/jobs"))
    assert _get(empty, "/api/runs") == {"runs": [], "next_before": None}
    assert len(_get(empty, "/api/calendar")) == 21  # the weekdays of November 2026
    account = _get(empty, "/api/account")
    assert (account["user_id"], account["mode"], account["cash"], account["positions"]) == (
        "default_user", "paper", None, 0)
    for path in ("/api/positions", "/api/orders", "/api/fills", "/api/equity"):
        assert _get(empty, path) == []
    assert _get(empty, "/api/watchlist", 404) == {
        "detail": "no watchlist for default_user on or before 2026-11-21; run `run-job watchlist_update` first"}
    risk = _get(empty, "/api/risk")
    assert (risk["latest_check"], risk["breaches"], risk["halt"]) == (None, [], None)
    assert risk["limits"] == {"max_position_size_pct": 10.0, "max_positions": 20, "max_daily_loss_pct": 3.0,
                              "max_total_loss_pct": 15.0}
    assert _get(empty, "/ready", 503)["reason"] == "no scheduler of default_user (paper) is running (no heartbeat)"
    assert empty.get("/docs").status_code == 200
    assert {"/health", "/ready", "/api/status", "/api/jobs", "/api/jobs/{name}/next-runs", "/api/runs",
            "/api/calendar", "/api/account", "/api/positions", "/api/orders", "/api/fills", "/api/equity",
            "/api/watchlist", "/api/risk", "/api/timeline"} <= set(_get(empty, "/openapi.json")["paths"])
    today = _get(empty, "/api/timeline")  # Saturday 2026-11-21 10:00: 48 risk checks, none run
    assert (today["date"], today["session"], len(today["items"])) == ("2026-11-21", None, 48)
    assert [item["outcome"] for item in today["items"]] == ["not run"] * 21 + ["upcoming"] * 27


def test_the_dashboard_page_and_its_assets_are_served(empty: TestClient) -> None:
    page = empty.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    for asset in re.findall(r'(?:href|src)="(/dashboard/[^"]+)"', page.text):
        response = empty.get(asset)
        assert response.status_code == 200 and response.content, asset
    assert {"/dashboard/dashboard.js", "/dashboard/dashboard.css"} <= set(re.findall(r'"(/dashboard/[^"]+)"',
                                                                                      page.text))
    assert "http" not in re.sub(r"http://www\.w3\.org/2000/svg", "", empty.get("/dashboard/dashboard.js").text), \
        "the dashboard loads nothing from the network"


@pytest.mark.parametrize("path, detail", [
    ("/api/runs?limit=x", "Invalid value for 'limit': Input should be a valid integer, unable to parse string as "
                          "an integer"),
    ("/api/runs?limit=0", "Invalid value for 'limit': 0 is not a number of runs; expected 1 to 1000"),
    ("/api/runs?outcome=won", "Invalid value for 'outcome': 'won' is not an outcome; expected one of running, "
                              "success, failed, skipped, missed"),
    ("/api/runs?job=data-colection", "unknown job 'data-colection'; did you mean 'data_collection'? known jobs: "
                                     "signal_generation, position_monitoring, data_collection, "
                                     "indicator_calculation, watchlist_update, risk_checks"),
    ("/api/runs?before=0", "Invalid value for 'before': 0 is not a run id; expected 1 or more"),
    ("/api/jobs/nope/next-runs", "unknown job 'nope'; known jobs: signal_generation, position_monitoring, "
                                 "data_collection, indicator_calculation, watchlist_update, risk_checks"),
    ("/api/jobs/risk_checks/next-runs?start=tomorrow", "Invalid value for 'start': 'tomorrow' is not an ISO 8601 "
                                                       "time; expected e.g. 2026-11-23 or 2026-11-23T09:00+09:00"),
    ("/api/jobs/risk_checks/next-runs?start=2026-11-21&end=2026-11-20",
     "Invalid value for 'start': --start 2026-11-21 00:00:00+09:00 is after --end 2026-11-20 00:00:00+09:00; "
     "expected start <= end"),
    ("/api/calendar?start=2026-02-30", "Invalid value for 'start': '2026-02-30' is not a date; expected YYYY-MM-DD"),
    ("/api/fills?start=2026-11-20&end=2026-11-01", "Invalid value for 'start': --start 2026-11-20 is after --end "
                                                   "2026-11-01; expected start <= end"),
    ("/api/equity?end=20261120", "Invalid value for 'end': '20261120' is not a date; expected YYYY-MM-DD"),
    ("/api/orders?status=pending", "Invalid value for 'status': 'pending' is not an order status; expected one of "
                                   "open, filled, cancelled, rejected, all"),
    ("/api/orders?limit=-1", "Invalid value for 'limit': -1 is not a number of orders; expected 1 or more"),
    ("/api/timeline?date=2026-13-01", "Invalid value for 'date': '2026-13-01' is not a date; expected YYYY-MM-DD"),
    ("/api/watchlist?date=yesterday", "Invalid value for 'date': 'yesterday' is not a date; expected YYYY-MM-DD"),
])
def test_a_bad_parameter_is_422_with_one_line(empty: TestClient, path: str, detail: str) -> None:
    response = empty.get(path)
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": detail}
    assert "\n" not in detail


def test_a_calendar_outside_the_data_is_422_with_one_line(empty: TestClient) -> None:
    body = _get(empty, "/api/calendar?start=1990-01-01&end=1990-01-31", 422)
    assert "\n" not in body["detail"] and "1990-01-01" in body["detail"]


# --- /ready ---------------------------------------------------------------------------------------


def test_ready_needs_a_fresh_heartbeat_of_a_scheduler_of_the_account(database_url: str,
                                                                     calendar_cache_dir: Path) -> None:
    settings = _settings(database_url, calendar_cache_dir)
    with _client(settings) as client:
        assert _get(client, "/ready", 503)["reason"] == ("no scheduler of default_user (paper) is running "
                                                         "(no heartbeat)")
        factory = client.app.state.runtime.session_factory()  # type: ignore[attr-defined]
        other = SchedulerBeat(factory, FixedClock(NOW), Account("someone_else", True))
        other.beat()  # another account's scheduler is not this one's
        assert _get(client, "/ready", 503)["reason"].startswith("no scheduler of default_user (paper)")
        beat = SchedulerBeat(factory, FixedClock(NOW - timedelta(seconds=90)), Account("default_user", True))
        beat.beat()
        assert _get(client, "/ready") == {"ready": True, "reason": None, "revision": "0016_stored_revisions",
                                          "heartbeat_at": "2026-11-21T09:58:30+09:00"}
    with _client(settings, NOW + timedelta(minutes=1)) as client:  # the beat is now 2.5 minutes old
        assert _get(client, "/ready", 503)["reason"] == (
            "no scheduler heartbeat of default_user (paper) since 2026-11-21T09:58:30+09:00 (more than 120 s ago)")
    beat.stop()  # a scheduler that stops cleanly removes its row
    with _client(settings) as client:
        assert _get(client, "/ready", 503)["reason"].endswith("(no heartbeat)")


def test_ready_is_503_when_the_database_is_unreachable(calendar_cache_dir: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://nobody:secret@127.0.0.1:{port}/nothing"
    with _client(_settings(url, calendar_cache_dir, db_connect_timeout_seconds="2")) as client:
        body = _get(client, "/ready", 503)
        assert body["ready"] is False and body["reason"].startswith("database unusable: ")
        assert "\n" not in body["reason"] and "secret" not in body["reason"]
        assert _get(client, "/health") == {"status": "ok"}
        assert _get(client, "/api/account", 503)["detail"].startswith("database error: ")


# --- a replayed account ---------------------------------------------------------------------------


def test_status_and_jobs_show_the_replayed_runs(api: TestClient) -> None:
    status = _get(api, "/api/status")
    assert OFFSET.fullmatch(status["now"]) and status["now"].startswith("2026-11-21T10:00:00")
    jobs = {job["job"]: job for job in _get(api, "/api/jobs")}
    assert jobs == {job["job"]: job for job in status["jobs"]}
    last = jobs["watchlist_update"]["last_run"]
    assert (last["outcome"], last["trading_date"]) == ("success", "2026-11-20")
    assert jobs["data_collection"]["next_fire_times"][0] == "2026-11-23T16:00:00+09:00"


def test_next_runs_and_the_calendar_know_the_exam_day(api: TestClient) -> None:
    assert _get(api, "/api/jobs/data-collection/next-runs?start=2026-11-18&end=2026-11-20") == [
        {"job": "data_collection", "fire_time": "2026-11-18T16:00:00+09:00"},
        {"job": "data_collection", "fire_time": "2026-11-19T17:00:00+09:00"}]  # the exam day closes at 16:30
    default_window = _get(api, "/api/jobs/watchlist_update/next-runs")  # from now, 7 days
    assert [row["fire_time"] for row in default_window] == [f"2026-11-{day}T18:00:00+09:00"
                                                            for day in (23, 24, 25, 26, 27)]
    week = _get(api, "/api/calendar?start=2026-11-16&end=2026-11-20")
    assert week[3] == {"date": "2026-11-19", "open": "10:00", "close": "16:30", "status": "special"}
    assert [row["status"] for row in week] == ["regular", "regular", "regular", "special", "regular"]


def test_the_timeline_pairs_each_fire_of_the_day_with_its_run(api: TestClient) -> None:
    exam_day = _get(api, "/api/timeline?date=2026-11-19")  # the exam day: 10:00-16:30
    assert exam_day["session"] == {"date": "2026-11-19", "open": "10:00", "close": "16:30", "status": "special"}
    items = exam_day["items"]
    # 1 signal list, 27 monitoring ticks (10:00 to 16:30), 3 after-close jobs, 48 risk checks: all replayed,
    # the risk checks that found nothing changed since the last one recorded skipped
    assert len(items) == 79 and {(item["outcome"], item["origin"], item["scheduled"]) for item in items
                                 if item["job"] != "risk_checks"} == {("success", "simulate", True)}
    assert {item["outcome"] for item in items if item["job"] == "risk_checks"} == {"success", "skipped"}
    by_job = {job.name: [item["fire_time"][11:16] for item in items if item["job"] == job.name] for job in JOBS}
    assert by_job["signal_generation"] == ["09:45"] and by_job["data_collection"] == ["17:00"]
    assert by_job["position_monitoring"][0] == "10:00" and by_job["position_monitoring"][-1] == "16:30"
    assert len(by_job["position_monitoring"]) == 27 and len(by_job["risk_checks"]) == 48
    assert [item["fire_time"] for item in items] == sorted(item["fire_time"] for item in items)


def test_runs_are_paged_newest_first_by_a_cursor(api: TestClient) -> None:
    everything = _get(api, "/api/runs?limit=1000")
    assert everything["next_before"] is None
    ids = [run["id"] for run in everything["runs"]]
    assert len(ids) > 200 and ids == sorted(ids, reverse=True)
    paged, before = [], None
    while True:
        page = _get(api, "/api/runs?limit=97" + (f"&before={before}" if before else ""))
        paged += page["runs"]
        before = page["next_before"]
        if before is None:
            break
        assert before == page["runs"][-1]["id"]
    assert paged == everything["runs"]
    run = paged[0]
    assert set(run) == {"id", "job", "user_id", "scheduled_for", "trading_date", "origin", "dry_run", "outcome",
                        "started_at", "finished_at", "host", "pid", "reason", "error", "summary"}
    assert OFFSET.fullmatch(run["scheduled_for"]) and OFFSET.fullmatch(run["started_at"])
    checks = _get(api, "/api/runs?job=risk-checks&outcome=success&limit=5")
    assert len(checks["runs"]) == 5 and checks["next_before"] == checks["runs"][-1]["id"]
    assert {(run["job"], run["outcome"]) for run in checks["runs"]} == {("risk_checks", "success")}


def test_the_account_agrees_with_the_cli(api: TestClient, replayed: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> None:
    cli = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)
    env = {"DATABASE_URL": replayed}

    def cli_json(*args: str) -> Any:
        result = cli(*args, "--format", "json", env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    positions = _get(api, "/api/positions")
    assert positions and positions == cli_json("positions")
    assert _get(api, "/api/orders?limit=500") == cli_json("orders", "--limit", "500")
    assert _get(api, "/api/orders?status=filled&limit=3") == cli_json("orders", "--status", "filled", "--limit", "3")
    fills = _get(api, "/api/fills?start=2026-11-01&end=2026-11-30")
    assert fills and fills == cli_json("fills", "--start", "2026-11-01", "--end", "2026-11-30")
    account = _get(api, "/api/account")
    assert account["valued_on"] == "2026-11-20" and account["positions"] == len(positions)
    assert account["market_value"] == sum(position["market_value"] for position in positions)
    assert account["equity"] == account["cash"] + account["market_value"]
    assert account["cash"] == 100_000_000 + sum(fill["cash_change"] for fill in fills)
    assert account["as_of"] == "2026-11-21T10:00:00+09:00"
    # the replayed week as counted from the fills table by SQL, not by the code: 17 fills, 9 open
    # positions, the opening 100,000,000 less 45,648,478 of net purchases
    assert (len(fills), len(positions), account["cash"], account["equity"]) == (17, 9, 54_351_522, 98_740_192)


def test_equity_is_the_portfolio_snapshots(api: TestClient) -> None:
    snapshots = _get(api, "/api/equity?start=2026-11-16&end=2026-11-20")
    assert snapshots and {row["trading_date"] for row in snapshots} <= {f"2026-11-{d}" for d in range(16, 21)}
    assert [row["taken_at"] for row in snapshots] == sorted(row["taken_at"] for row in snapshots)
    assert all(OFFSET.fullmatch(row["taken_at"]) for row in snapshots)
    assert all(row["equity"] == row["cash"] + row["market_value"] for row in snapshots)
    last = _get(api, "/api/equity?start=2026-11-20&end=2026-11-20")
    assert last == [row for row in snapshots if row["trading_date"] == "2026-11-20"]
    assert _get(api, "/api/equity") == [row for row in snapshots]  # the 30 days up to today hold them all
    assert len(snapshots) == 135  # 27 ticks a session x 5 sessions, counted in the table by SQL
    assert (snapshots[0]["taken_at"], snapshots[-1]["equity"]) == ("2026-11-16T09:00:00+09:00", 98_740_192)


def test_watchlist_and_risk(api: TestClient) -> None:
    watchlist = _get(api, "/api/watchlist?date=2026-11-20")
    assert (watchlist["date"], watchlist["user_id"]) == ("2026-11-20", "default_user")
    assert 0 < len(watchlist["entries"]) <= 20 and [entry["rank"] for entry in watchlist["entries"]] == list(
        range(1, len(watchlist["entries"]) + 1))
    assert _get(api, "/api/watchlist") == watchlist  # the latest on or before today
    assert _get(api, "/api/watchlist?date=2026-11-19")["date"] == "2026-11-19"
    risk = _get(api, "/api/risk")
    check = risk["latest_check"]
    # the last check that ran: after Friday's collection; the later ones found nothing changed
    assert check["scheduled_for"] == "2026-11-20T16:00:00+09:00"
    assert check["unchanged_through"] == "2026-11-20T23:30:00+09:00"  # the last fire of the replay
    assert set(check["metrics"]) >= {"equity", "cash", "drawdown_pct", "daily_pnl", "positions", "breaches"}
    assert risk["halt"] is None and isinstance(risk["breaches"], list)


def test_every_time_is_in_the_display_zone(replayed: str, calendar_cache_dir: Path) -> None:
    utc = re.compile(r".*T[0-9:.]+\+00:00")
    with _client(_settings(replayed, calendar_cache_dir, display_timezone="UTC")) as client:
        assert utc.fullmatch(_get(client, "/api/status")["now"])
        assert all(utc.fullmatch(run["scheduled_for"]) for run in _get(client, "/api/runs?limit=20")["runs"])
        assert all(utc.fullmatch(row["filled_at"]) for row in _get(client, "/api/fills?start=2026-11-01"))
        assert all(utc.fullmatch(row["taken_at"]) for row in _get(client, "/api/equity"))
        assert _get(client, "/api/jobs/data_collection/next-runs?start=2026-11-19T00:00%2B09:00"
                            "&end=2026-11-20T00:00%2B09:00") == [
            {"job": "data_collection", "fire_time": "2026-11-19T08:00:00+00:00"}]
        assert utc.fullmatch(_get(client, "/api/risk")["latest_check"]["checked_at"])
    with _client(_settings(replayed, calendar_cache_dir, display_timezone="America/New_York")) as client:
        # New York's 2026-11-18 holds Seoul's exam-day session of 11-19 (10:00-16:30 KST)
        timeline = _get(client, "/api/timeline?date=2026-11-18")
        assert timeline["session"] == {"date": "2026-11-19", "open": "20:00", "close": "02:30", "status": "special"}
        fires = [item["fire_time"] for item in timeline["items"]]
        assert fires[0] == "2026-11-18T00:00:00-05:00" and all(fire.startswith("2026-11-18T") for fire in fires)
        assert "2026-11-18T19:45:00-05:00" in fires  # the exam day's signal generation, 09:45 KST


# --- serving --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["serve", "--host", "0.0.0.0"], ["start"]])
def test_an_address_beyond_this_machine_without_a_token_is_refused(
        command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> None:
    cli = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)
    result = cli(*command, env={"ORCHESTRATOR_API_HOST": "0.0.0.0"})
    assert result.exit_code == 2, result.output
    assert result.stderr == ("Error: refusing to serve the console on 0.0.0.0: an address beyond this machine "
                             "needs ORCHESTRATOR_API_TOKEN; set it, or listen on 127.0.0.1\n")
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def test_a_port_in_use_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              calendar_cache_dir: Path) -> None:
    cli = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ") and result.stderr.count("\n") == 1
    bad = cli("serve", "--port", "70000")
    assert (bad.exit_code, bad.stderr) == (2, "Error: --port='70000': expected a TCP port from 1 to 65535, or 0 for "
                                              "any free port\n")


def _start(args: list[str], cwd: Path, calendar_cache_dir: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "services.orchestrator.main", *args], cwd=cwd,
                            env=subprocess_env(PYTHONPATH=str(REPO), ORCHESTRATOR_CACHE_DIR=str(calendar_cache_dir),
                                               **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    return rest


def test_serve_serves_on_a_free_port_until_sigterm(tmp_path: Path, calendar_cache_dir: Path) -> None:
    process = _start(["serve"], tmp_path, calendar_cache_dir)  # ORCHESTRATOR_API_PORT=0: any free port
    output = _read_until(process, "console (REST API)")
    url = re.search(r"at (http://127\.0\.0\.1:([0-9]+)/) ", output)
    assert url is not None and int(url[2]) > 0, output
    try:
        assert httpx.get(url[1] + "health", timeout=10).json() == {"status": "ok"}
        ready = httpx.get(url[1] + "ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["reason"].endswith("(no heartbeat)")
    finally:
        output += _stop(process)
    assert process.returncode == 0, output
    assert "Traceback" not in output


def test_start_serves_the_console_once_ready_and_not_with_no_api(tmp_path: Path, calendar_cache_dir: Path) -> None:
    disable = [job.disable_flag for job in JOBS]  # nothing runs: the console is under test
    process = _start(["start", *disable], tmp_path, calendar_cache_dir)
    output = _read_until(process, "console (REST API) at")
    try:
        assert output.index("ready: ") < output.index("console (REST API) at")
        url = re.search(r"at (http://127\.0\.0\.1:[0-9]+/) ", output)
        assert url is not None, output
        ready = httpx.get(url[1] + "ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["ready"] is True  # its own heartbeat
    finally:
        output += _stop(process)
    assert process.returncode == 0 and "scheduler stopped" in output, output

    with socket.socket() as probe:  # a free port, given to a start that must not bind it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = _start(["start", "--no-api", *disable], tmp_path, calendar_cache_dir, ORCHESTRATOR_API_PORT=str(port))
    output = _read_until(process, "ready: ")
    try:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    finally:
        output += _stop(process)
    assert process.returncode == 0, output
    assert "console (REST API)" not in output


def test_metrics_are_served_in_the_prometheus_format(api: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    runs = {(sample.labels["job"], sample.labels["outcome"]): sample.value
            for sample in families["krx_orchestrator_runs"].samples if sample.name.endswith("_total")}
    replayed = _get(api, "/api/runs?job=risk_checks&outcome=success&limit=1000")["runs"]
    unchanged = _get(api, "/api/runs?job=risk_checks&outcome=skipped&limit=1000")["runs"]
    assert runs[("risk_checks", "success")] == len(replayed) > 0
    assert runs[("risk_checks", "skipped")] == len(unchanged) > 0
    assert len(replayed) + len(unchanged) == 240  # 48 a day x 5 days, counted by SQL
    [equity] = families["krx_orchestrator_equity_krw"].samples
    assert equity.value == _get(api, "/api/equity")[-1]["equity"] == 98_740_192
