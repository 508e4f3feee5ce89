"""The console's mutations (``POST /api/halt``, ``/api/resume``, ``/api/jobs/{name}/run``):
the token, the audit (``GET /api/audit``), and a queued run executed by a real ``start``.

SQLite always; PostgreSQL as well when TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient

from services.common.clock import FixedClock
from services.common.job_api import Account
from services.orchestrator.api.app import BAD_TOKEN, NO_TOKEN, create_app
from services.orchestrator.heartbeats import SchedulerBeat
from services.orchestrator.jobs import JOBS
from services.orchestrator.runtime import Runtime
from services.trading_engine.models import PortfolioSnapshot
from tests.conftest import in_process_cli, make_settings
from tests.orchestrator.test_api import _read_until, _start, _stop

KST = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=KST)  # a Saturday
TOKEN = "s3cret-console-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OFFSET = re.compile(r".*T[0-9:.]+\+09:00")


def _client(database_url: str, cache_dir: Path, **values: str) -> TestClient:
    settings = make_settings(database_url=database_url, cache_dir=str(cache_dir), **values)
    return TestClient(create_app(settings, runtime_factory=lambda s: Runtime.create(s, FixedClock(NOW))))


@pytest.fixture
def api(database_url: str, calendar_cache_dir: Path) -> Iterator[TestClient]:
    with _client(database_url, calendar_cache_dir, api_token=TOKEN) as client:
        yield client


def _call(client: TestClient, path: str, status: int, body: Any = None, headers: dict[str, str] | None = None,
          ) -> Any:
    response = client.post(path, json=body, headers={**AUTH, **(headers or {})})
    assert response.status_code == status, response.text
    return response.json()


def _audit(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/api/audit")
    assert response.status_code == 200, response.text
    return list(response.json())


def _beat(client: TestClient) -> None:
    """A scheduler of the account, alive a minute ago."""
    factory = client.app.state.runtime.session_factory()  # type: ignore[attr-defined]
    SchedulerBeat(factory, FixedClock(NOW - timedelta(minutes=1)), Account("default_user", True)).beat()


MUTATIONS = [("/api/halt", {"reason": "broker maintenance"}), ("/api/resume", None),
             ("/api/jobs/risk_checks/run", {})]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                                     {"Authorization": f"Basic {TOKEN}"}])
def test_a_mutation_without_the_token_is_401(api: TestClient, headers: dict[str, str]) -> None:
    for path, body in MUTATIONS:
        response = api.post(path, json=body, headers=headers)
        assert (response.status_code, response.json()) == (401, {"detail": BAD_TOKEN}), path
        assert response.headers["www-authenticate"] == "Bearer"
    assert api.get("/api/status").json()["halt"] is None
    assert _audit(api) == []  # only what passed the token is audited


def test_mutations_are_refused_with_403_when_no_token_is_set(database_url: str, calendar_cache_dir: Path) -> None:
    with _client(database_url, calendar_cache_dir) as client:
        for path, body in MUTATIONS:
            response = client.post(path, json=body, headers=AUTH)
            assert (response.status_code, response.json()) == (403, {"detail": NO_TOKEN}), path
        assert "ORCHESTRATOR_API_TOKEN" in NO_TOKEN and "\n" not in NO_TOKEN
        assert client.get("/api/status").status_code == 200  # reads stay open
        assert _audit(client) == []


def test_halt_and_resume_round_trip_with_their_audit(api: TestClient, database_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     calendar_cache_dir: Path) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    made = _call(api, "/api/halt", 200, {"reason": "  broker   maintenance "}, forwarded)
    assert made["made"] is True
    assert made["halt"] == {"halted": True, "reason": "broker maintenance", "halted_at": "2026-11-21T10:00:00+09:00",
                            "halted_by": "manual", "resumed_at": None, "resumed_by": None}
    assert _call(api, "/api/halt", 200, {"reason": "again"}) == {**made, "made": False}
    status = api.get("/api/status").json()
    assert status["halt"] == made["halt"]
    cli = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)
    result = cli("status", "--format", "json", env={"DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["halt"] == made["halt"]

    resumed = _call(api, "/api/resume", 200)["halt"]
    assert (resumed["halted"], resumed["reason"], resumed["resumed_by"]) == (False, "broker maintenance", "manual")
    assert api.get("/api/status").json()["halt"]["halted"] is False
    assert _call(api, "/api/resume", 409) == {"detail": "trading is not halted"}

    audit = _audit(api)
    assert [(row["action"], row["status_code"], row["outcome"]) for row in audit] == [
        ("resume", 409, "trading is not halted"), ("resume", 200, "resumed"), ("halt", 200, "already halted"),
        ("halt", 200, "halted")]
    assert [row["id"] for row in audit] == sorted((row["id"] for row in audit), reverse=True)
    assert audit[-1]["client"] == "testclient:50000 (X-Forwarded-For: 203.0.113.7)"
    assert audit[0]["client"] == "testclient:50000"
    assert audit[-1]["detail"] == {"reason": "  broker   maintenance "}
    assert all(OFFSET.fullmatch(row["at"]) for row in audit)
    assert (audit[0]["user_id"], audit[0]["dry_run"]) == ("default_user", True)
    assert api.get("/api/audit?limit=1").json() == audit[:1]
    assert api.get("/api/audit?limit=0").json() == {
        "detail": "Invalid value for 'limit': 0 is not a number of entries; expected 1 to 1000"}


@pytest.mark.parametrize("path, body, detail", [
    ("/api/halt", {"reason": "   "}, "Invalid value for 'reason': expected a reason of 1 to 300 characters, got 0"),
    ("/api/halt", {"reason": "x" * 301},
     "Invalid value for 'reason': expected a reason of 1 to 300 characters, got 301"),
    ("/api/halt", {}, "Invalid value for 'reason': Field required"),
    ("/api/jobs/data-colection/run", {}, "unknown job 'data-colection'; did you mean 'data_collection'? known "
                                         "jobs: signal_generation, position_monitoring, data_collection, "
                                         "indicator_calculation, watchlist_update, risk_checks"),
    ("/api/jobs/data_collection/run", {"date": "yesterday"},
     "Invalid value for 'date': 'yesterday' is not a date; expected YYYY-MM-DD"),
    ("/api/jobs/data_collection/run", {"date": "2026-11-15"},
     "Invalid value for 'date': 2026-11-15 is not a KRX session; nearest sessions: 2026-11-13 and 2026-11-16"),
    ("/api/jobs/data_collection/run", {"date": "2026-11-23"},
     "Invalid value for 'date': 2026-11-23 is in the future; expected 2026-11-21 or earlier"),
])
def test_a_bad_mutation_is_422_with_one_line_and_audited(api: TestClient, path: str, body: Any,
                                                         detail: str) -> None:
    _beat(api)
    assert _call(api, path, 422, body) == {"detail": detail}
    assert "\n" not in detail
    [row] = _audit(api)
    assert (row["status_code"], row["outcome"]) == (422, detail)
    assert api.get("/api/status").json()["halt"] is None


def test_a_trading_run_before_the_accounts_history_is_422(api: TestClient) -> None:
    _beat(api)
    factory = api.app.state.runtime.session_factory()  # type: ignore[attr-defined]
    with factory.begin() as session:
        session.add(PortfolioSnapshot(user_id="default_user", dry_run=True, taken_at=NOW, trading_date=NOW.date()
                                      .replace(day=20), cash=1, settled_cash=1, market_value=0, equity=1,
                                      exposure=0.0, unrealised_pnl=0, positions=0, prices_observed=True))
    detail = _call(api, "/api/jobs/position_monitoring/run", 422, {"date": "2026-11-19"})["detail"]
    assert detail.startswith("Invalid value for 'date': 2026-11-19 is before this account's latest activity "
                             "(2026-11-20): a manual run cannot rewrite history")
    assert _audit(api)[0]["action"] == "run-job"


def test_a_run_with_no_live_scheduler_is_409(api: TestClient) -> None:
    assert _call(api, "/api/jobs/risk_checks/run", 409) == {
        "detail": "no scheduler of default_user (paper) is running (no heartbeat); start one (`start`) to run "
                  "queued jobs"}
    [row] = _audit(api)
    assert (row["action"], row["detail"], row["status_code"]) == ("run-job", {"name": "risk_checks", "date": None},
                                                                   409)
    assert api.get("/api/queued-runs/1").status_code == 404  # nothing was queued


def test_a_queued_run_is_run_by_a_running_scheduler(database_url: str, tmp_path: Path,
                                                    calendar_cache_dir: Path) -> None:
    disable = [job.disable_flag for job in JOBS]  # nothing scheduled: the queued run is the only one
    process = _start(["start", *disable], tmp_path, calendar_cache_dir, DATABASE_URL=database_url,
                     ORCHESTRATOR_API_TOKEN=TOKEN)
    output = _read_until(process, "console (REST API) at")
    try:
        found = re.search(r"at (http://127\.0\.0\.1:[0-9]+/) ", output)
        assert found is not None, output
        url = found[1]
        assert httpx.post(url + "api/jobs/risk_checks/run", json={}, timeout=10).status_code == 401
        response = httpx.post(url + "api/jobs/risk_checks/run", headers=AUTH, timeout=10)  # no body: latest fire
        assert response.status_code == 202, response.text
        queued = response.json()
        assert queued["job"] == "risk_checks" and isinstance(queued["queued_id"], int)
        deadline = time.monotonic() + 30
        while True:
            state = httpx.get(f"{url}api/queued-runs/{queued['queued_id']}", timeout=10).json()
            if state["status"] in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert state["status"] == "done", (state, output)
        assert state["run_id"] is not None and state["outcome"] in ("success", "skipped")
        runs = httpx.get(url + "api/runs?job=risk_checks", timeout=10).json()["runs"]
        [run] = [run for run in runs if run["id"] == state["run_id"]]
        assert (run["origin"], run["trading_date"]) == ("manual", queued["trading_date"])
        [audit] = httpx.get(url + "api/audit", timeout=10).json()
        assert audit["action"] == "run-job" and audit["status_code"] == 202
        assert re.fullmatch(r"127\.0\.0\.1:[0-9]+", audit["client"]), audit
    finally:
        output += _stop(process)
    assert process.returncode == 0, output
    assert "Traceback" not in output
