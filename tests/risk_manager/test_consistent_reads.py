"""Every account read is one consistent state: a risk check racing a process that
commits fills never sees an equity that no committed state had (SQLite and
PostgreSQL, two real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from services.common.database import create_db_engine, make_session_factory, migrate
from services.data_collector.models import CollectedSession, DailyPrice
from tests.conftest import subprocess_env
from tests.risk_manager.account_race_worker import CLOSE, MOMENT, USER

ROOT = Path(__file__).resolve().parents[2]
CHECKS = 150
EQUITY = 10_000_000  # of every committed state: no fees, every fill at the valuation price


def stored_close(database_url: str) -> None:
    """RACE closed at 10,000 on 2026-11-20 (the session before the race's Saturday)."""
    engine = create_db_engine(database_url)
    migrate(engine)
    day = MOMENT.date().replace(day=20)
    with make_session_factory(engine).begin() as session:
        session.execute(insert(DailyPrice).values(
            date=day, ticker="RACE", open=CLOSE, high=CLOSE, low=CLOSE, close=CLOSE, volume=10**7,
            value=CLOSE * 10**7, change_pct=0.0, market_cap=CLOSE * 10**9, market="KOSPI", halted=False))
        session.execute(insert(CollectedSession).values(
            date=day, provider="simulated", stock_rows=1, price_rows=1, fundamental_rows=0, rejected_rows=0,
            collected_at=MOMENT))
    engine.dispose()


def worker(database_url: str, role: str, workdir: Path, calendar_cache_dir: Path) -> subprocess.Popen[str]:
    (workdir / "cache").mkdir(exist_ok=True)
    env = subprocess_env(ORCHESTRATOR_CACHE_DIR=str(calendar_cache_dir), LOG_LEVEL="WARNING")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.risk_manager.account_race_worker", database_url, role, str(CHECKS),
         str(workdir)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_risk_check_racing_fills_sees_only_committed_equities(database_url: Any, tmp_path: Path,
                                                                 calendar_cache_dir: Path) -> None:
    stored_close(database_url)
    filler = worker(database_url, "fills", tmp_path, calendar_cache_dir)
    checker = worker(database_url, "checks", tmp_path, calendar_cache_dir)
    checked, check_errors = checker.communicate(timeout=300)
    traded, trade_errors = filler.communicate(timeout=300)
    assert (checker.returncode, filler.returncode) == (0, 0), check_errors + trade_errors
    seen = json.loads(checked)
    assert len(seen) == CHECKS and int(traded) >= CHECKS // 10  # trades went on all through the checks
    assert sorted({equity for equity, _ in seen}) == [EQUITY], f"{USER}'s checks saw {seen}"
