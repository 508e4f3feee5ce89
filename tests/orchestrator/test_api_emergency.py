"""``POST /api/emergency-stop``: halt, cancel every open order of the account, and
with ``flatten`` sell every position at market through the risk gate.

The paper account is built by the real jobs: a replay of 2026-11-09 and 11-10 on the
simulated market (positions bought), then signal_generation alone for 11-11 before
its open (its entry buys still open, holding cash back). Each test works on a copy
of that account under a user of its own, so the others' orders stay as they were.

SQLite always; PostgreSQL as well when TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, insert, select

from services.common.clock import FixedClock
from services.orchestrator.api.app import BAD_TOKEN, create_app
from services.orchestrator.models import ConsoleAudit
from services.orchestrator.replay import simulate
from services.orchestrator.runtime import Runtime
from services.trading_engine.models import OrderRow, PaperAccount, PositionRow
from tests.conftest import make_settings, scratch_database

KST = ZoneInfo("Asia/Seoul")
SESSION = date(2026, 11, 11)  # its entry orders are open: placed before its open
NOW = datetime(2026, 11, 11, 8, 45, tzinfo=KST)
TICK = datetime(2026, 11, 11, 9, 5, tzinfo=KST)  # a position_monitoring tick of the session
TOKEN = "s3cret-console-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
USER = "default_user"
SETTINGS = {"simulated_universe": "30", "bootstrap_sessions": "130", "enable_risk_checks": "false"}
OPEN = ("new", "partially_filled")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          calendar_cache_dir: Path) -> Iterator[dict[str, Any]]:
    """The database's URL and an engine on it, holding the account of ``USER``."""
    with scratch_database(request.param, tmp_path_factory.mktemp("emergency")) as url:
        settings = make_settings(database_url=url, cache_dir=str(calendar_cache_dir), **SETTINGS)
        simulation = simulate(settings, date(2026, 11, 9), date(2026, 11, 10))
        simulation.runtime.close()
        assert simulation.failed == 0
        runtime = Runtime.create(settings, FixedClock(NOW))
        try:
            record = runtime.runner("manual").run_now("signal_generation", SESSION)
        finally:
            runtime.close()
        assert record.outcome.value == "success", record
        engine = create_engine(url)
        try:
            assert _open_orders(engine, USER) and _positions(engine, USER)
            yield {"url": url, "engine": engine}
        finally:
            engine.dispose()


def _copy_account(engine: Engine, user: str) -> None:
    """``USER``'s paper account, positions and orders, as ``user``'s."""
    with engine.begin() as connection:
        for model in (PaperAccount, PositionRow, OrderRow):
            table = model.__table__
            rows = [dict(row._mapping) for row in connection.execute(select(table).where(table.c.user_id == USER))]
            for row in rows:
                row.pop("id", None)  # orders: a new id (the others are keyed by user)
                row["user_id"] = user
            if rows:
                connection.execute(insert(table), rows)


@pytest.fixture
def user(built: dict[str, Any]) -> str:
    name = f"u_{uuid.uuid4().hex[:10]}"
    _copy_account(built["engine"], name)
    return name


def _client(built: dict[str, Any], calendar_cache_dir: Path, user: str, clock: datetime = NOW) -> TestClient:
    settings = make_settings(database_url=built["url"], cache_dir=str(calendar_cache_dir), user_id=user,
                             api_token=TOKEN, **SETTINGS)
    return TestClient(create_app(settings, runtime_factory=lambda s: Runtime.create(s, FixedClock(clock))))


def _open_orders(engine: Engine, user: str) -> dict[int, int]:
    """The user's open paper orders: id -> cash held back."""
    with engine.connect() as connection:
        return {row.id: int(row.reserved_cash) for row in connection.execute(
            select(OrderRow.id, OrderRow.reserved_cash).where(OrderRow.user_id == user, OrderRow.status.in_(OPEN)))}


def _positions(engine: Engine, user: str) -> dict[str, int]:
    with engine.connect() as connection:
        return {row.ticker: int(row.quantity) for row in connection.execute(
            select(PositionRow.ticker, PositionRow.quantity).where(PositionRow.user_id == user,
                                                                   PositionRow.quantity > 0))}


def _available(engine: Engine, user: str) -> int:
    """The paper cash free for buys: the account's cash less what open orders hold back."""
    with engine.connect() as connection:
        cash = connection.execute(select(PaperAccount.cash).where(PaperAccount.user_id == user)).scalar_one()
        held = connection.execute(select(func.coalesce(func.sum(OrderRow.reserved_cash), 0)).where(
            OrderRow.user_id == user, OrderRow.status.in_(OPEN))).scalar_one()
    return int(cash) - int(held)


def _orders(engine: Engine, user: str, ids: list[int] | None = None, side: str | None = None) -> list[Any]:
    query = select(OrderRow).where(OrderRow.user_id == user)
    if ids is not None:
        query = query.where(OrderRow.id.in_(ids))
    if side is not None:
        query = query.where(OrderRow.side == side)
    with engine.connect() as connection:
        return list(connection.execute(query).all())


def _audits(engine: Engine, user: str) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(ConsoleAudit).where(
            ConsoleAudit.user_id == user, ConsoleAudit.action == "emergency-stop")).all())


def test_flatten_halts_cancels_every_open_order_and_sells_every_position(
        built: dict[str, Any], calendar_cache_dir: Path, user: str) -> None:
    engine = built["engine"]
    pending, held, available = _open_orders(engine, user), _positions(engine, user), _available(engine, user)
    others = _orders(engine, USER)
    assert pending and held and sum(pending.values()) > 0

    with _client(built, calendar_cache_dir, user) as api:
        response = api.post("/api/emergency-stop", json={"reason": "broker  outage", "flatten": True}, headers=AUTH)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert {key: answer[key] for key in ("halted", "halt_made", "cancelled", "exit_orders", "positions")} == {
            "halted": True, "halt_made": True, "cancelled": len(pending), "exit_orders": len(held),
            "positions": len(held)}
        assert answer["trading_date"] == SESSION.isoformat() and answer["halt"]["reason"] == "broker outage"
        assert api.get("/api/status").json()["halt"]["reason"] == "broker outage"
        still_open = api.get("/api/orders", params={"status": "open"}).json()
        assert sorted((o["ticker"], o["side"], o["quantity"]) for o in still_open) == sorted(
            (ticker, "sell", quantity) for ticker, quantity in held.items())  # the exits only
        audit = api.get("/api/audit").json()[0]
        assert (audit["action"], audit["status_code"], audit["detail"]["flatten"]) == ("emergency-stop", 200, True)

    cancelled = _orders(engine, user, list(pending))
    assert {row.status for row in cancelled} == {"cancelled"} and all(row.reserved_cash == 0 for row in cancelled)
    assert all("emergency stop: broker outage" in row.reason for row in cancelled)
    assert _available(engine, user) == available + sum(pending.values())  # the held-back cash is released
    sells = [row for row in _orders(engine, user, side="sell") if row.status in OPEN]
    assert sorted((row.ticker, row.quantity) for row in sells) == sorted(held.items())
    assert all(row.order_type == "market" and row.reason.startswith("emergency stop") and row.trading_date == SESSION
               for row in sells)
    assert len(_audits(engine, user)) == 1
    assert _orders(engine, USER) == others  # another account's orders are untouched

    # the exits fill like any other: at the session's next position_monitoring tick
    settings = make_settings(database_url=built["url"], cache_dir=str(calendar_cache_dir), user_id=user, **SETTINGS)
    runtime = Runtime.create(settings, FixedClock(TICK))
    try:
        record = runtime.runner("manual").run_now("position_monitoring", SESSION)
    finally:
        runtime.close()
    assert record.outcome.value == "success" and record.summary and record.summary["halted"] is True, record
    assert _positions(engine, user) == {}


def test_without_flatten_no_sell_is_placed_and_a_second_stop_keeps_the_halt(
        built: dict[str, Any], calendar_cache_dir: Path, user: str) -> None:
    engine = built["engine"]
    pending, held, available = _open_orders(engine, user), _positions(engine, user), _available(engine, user)
    with _client(built, calendar_cache_dir, user) as api:
        answer = api.post("/api/emergency-stop", json={"reason": "stop"}, headers=AUTH).json()
        assert (answer["halt_made"], answer["cancelled"], answer["exit_orders"], answer["positions"]) == (
            True, len(pending), 0, len(held))
        assert api.get("/api/orders", params={"status": "open"}).json() == []
        again = api.post("/api/emergency-stop", json={"reason": "again", "flatten": False}, headers=AUTH).json()
        assert (again["halt_made"], again["cancelled"], again["halt"]["reason"]) == (False, 0, "stop")
    assert not any(row.status in OPEN for row in _orders(engine, user, side="sell"))
    assert not any(row.reason.startswith("emergency stop") for row in _orders(engine, user, side="sell"))
    assert _positions(engine, user) == held and _available(engine, user) == available + sum(pending.values())
    assert len(_audits(engine, user)) == 2


def test_refused_without_the_token_or_a_reason(built: dict[str, Any], calendar_cache_dir: Path, user: str) -> None:
    engine = built["engine"]
    pending = _open_orders(engine, user)
    with _client(built, calendar_cache_dir, user) as api:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = api.post("/api/emergency-stop", json={"reason": "x", "flatten": True}, headers=headers)
            assert (response.status_code, response.json()) == (401, {"detail": BAD_TOKEN})
        for body in ({"reason": "   "}, {"reason": "x" * 301}, {"flatten": True}):
            response = api.post("/api/emergency-stop", json=body, headers=AUTH)
            assert response.status_code == 422, response.text
            assert "reason" in response.json()["detail"] and "\n" not in response.json()["detail"]
        assert api.get("/api/status").json()["halt"] is None
    assert _open_orders(engine, user) == pending
    assert [row.status_code for row in _audits(engine, user)] == [422, 422, 422]  # refused after the token


def test_a_live_account_without_kis_credentials_is_refused_and_nothing_changes(
        built: dict[str, Any], calendar_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KIS_APP_KEY", "KIS_APP_SECRET", "KIS_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    engine = built["engine"]
    pending = _open_orders(engine, USER)
    settings = make_settings(database_url=built["url"], cache_dir=str(calendar_cache_dir), dry_run="false",
                             api_token=TOKEN, **SETTINGS)
    with TestClient(create_app(settings, runtime_factory=lambda s: Runtime.create(s, FixedClock(NOW)))) as api:
        response = api.post("/api/emergency-stop", json={"reason": "x", "flatten": True}, headers=AUTH)
        assert response.status_code == 422, response.text
        assert "KIS_APP_KEY" in response.json()["detail"] and "\n" not in response.json()["detail"]
        assert api.get("/api/status").json()["halt"] is None
        assert api.get("/api/audit").json()[0]["status_code"] == 422
    assert _open_orders(engine, USER) == pending  # the paper account of the same user is not the live one
