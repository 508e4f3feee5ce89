"""A manual run cannot rewrite history: ``run-job`` refuses a trading job dated before
its account's latest fill or portfolio snapshot (one line naming ``simulate``, exit 2,
nothing written), and allows it on or after that day, for another account, and for the
jobs that do not trade."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, func, insert, select

from services.common.job_api import Account
from services.orchestrator.jobs import JOBS
from services.orchestrator.models import JobRun
from services.trading_engine.models import FillRow, OrderRow, PortfolioSnapshot
from services.trading_engine.queries import latest_activity
from tests.conftest import in_process_cli

KST = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 11, 20, 16, 0, 1, tzinfo=KST)  # a Friday, after the close
TRADING_JOBS = [job.name for job in JOBS if job.trades]
REFUSAL = ("Error: Invalid value for '--date': 2026-11-18 is before this account's latest activity (2026-11-20): "
           "a manual run cannot rewrite history; replay the past with `simulate` into its own database\n")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calendar_cache_dir: Path) -> Any:
    cli = in_process_cli(tmp_path, monkeypatch, calendar_cache_dir, NOW)
    assert cli("migrate").exit_code == 0
    return cli


@pytest.fixture
def db(cli: Any, tmp_path: Path) -> Any:
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'orchestrator.db'}")
    yield engine
    engine.dispose()


def book_fill(db: Any, day: date, *, user_id: str = "default_user", dry_run: bool = True) -> None:
    at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=KST)
    with db.begin() as connection:
        order_id = connection.execute(insert(OrderRow).values(
            user_id=user_id, client_order_id=f"test-{day}-{dry_run}", broker="paper", broker_order_id=None,
            trading_date=day, ticker="005930", side="buy", order_type="market", quantity=10, limit_price=None,
            status="filled", filled_quantity=10, reserved_cash=0, reason="test", dry_run=dry_run, created_at=at,
            updated_at=at, sent_at=None)).inserted_primary_key[0]
        connection.execute(insert(FillRow).values(
            order_id=order_id, fill_key=f"{order_id}:1", user_id=user_id, ticker="005930", side="buy",
            quantity=10, price=70_000, commission=105, tax=0, trade_date=day, settles_on=day, filled_at=at,
            dry_run=dry_run))


def take_snapshot(db: Any, day: date, *, user_id: str = "default_user", dry_run: bool = True) -> None:
    with db.begin() as connection:
        connection.execute(insert(PortfolioSnapshot).values(
            user_id=user_id, dry_run=dry_run, taken_at=datetime(day.year, day.month, day.day, 15, 30, tzinfo=KST),
            trading_date=day, cash=10_000_000, settled_cash=10_000_000, market_value=0, equity=10_000_000,
            exposure=0.0, unrealised_pnl=0, positions=0, prices_observed=True))


def counts(db: Any) -> tuple[int, ...]:
    with db.connect() as connection:
        return tuple(int(connection.scalar(select(func.count()).select_from(table)) or 0)
                     for table in (JobRun, OrderRow, FillRow, PortfolioSnapshot))


def test_the_latest_activity_is_the_later_of_the_account_s_fills_and_snapshots(db: Any) -> None:
    paper = Account("default_user", dry_run=True)
    with db.connect() as connection:
        assert latest_activity(connection, paper) is None
    book_fill(db, date(2026, 11, 18))
    take_snapshot(db, date(2026, 11, 17))
    book_fill(db, date(2026, 11, 25), user_id="someone_else")
    take_snapshot(db, date(2026, 11, 26), dry_run=False)
    with db.connect() as connection:
        assert latest_activity(connection, paper) == date(2026, 11, 18)
        assert latest_activity(connection, Account("default_user", dry_run=False)) == date(2026, 11, 26)
        assert latest_activity(connection, Account("someone_else", dry_run=True)) == date(2026, 11, 25)
    take_snapshot(db, date(2026, 11, 19))
    with db.connect() as connection:
        assert latest_activity(connection, paper) == date(2026, 11, 19)


@pytest.mark.parametrize("job", TRADING_JOBS)
def test_a_trading_job_dated_before_the_latest_fill_is_refused_with_one_line_and_writes_nothing(
        cli: Any, db: Any, job: str) -> None:
    book_fill(db, date(2026, 11, 20))
    before = counts(db)
    result = cli("run-job", job, "--date", "2026-11-18")
    assert (result.exit_code, result.stderr) == (2, REFUSAL), result.output
    assert "Traceback" not in result.output
    assert counts(db) == before


@pytest.mark.parametrize("job", TRADING_JOBS)
def test_a_trading_job_dated_before_the_latest_snapshot_is_refused(cli: Any, db: Any, job: str) -> None:
    take_snapshot(db, date(2026, 11, 20))
    before = counts(db)
    result = cli("run-job", job, "--date", "2026-11-18")
    assert (result.exit_code, result.stderr) == (2, REFUSAL), result.output
    assert counts(db) == before


def test_the_trading_jobs_are_signal_generation_and_position_monitoring() -> None:
    assert TRADING_JOBS == ["signal_generation", "position_monitoring"]


def test_a_past_date_on_an_account_without_activity_is_allowed(cli: Any, db: Any) -> None:
    result = cli("run-job", "position_monitoring", "--date", "2026-11-18")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("position_monitoring 2026-11-18: success")


def test_another_account_s_activity_does_not_hold_a_past_date_back(cli: Any, db: Any) -> None:
    book_fill(db, date(2026, 11, 20), user_id="someone_else")
    take_snapshot(db, date(2026, 11, 20), user_id="someone_else")
    result = cli("run-job", "position_monitoring", "--date", "2026-11-18")
    assert result.exit_code == 0, result.output


def test_a_date_equal_to_the_latest_activity_is_allowed(cli: Any, db: Any) -> None:
    book_fill(db, date(2026, 11, 18))
    take_snapshot(db, date(2026, 11, 18))
    result = cli("run-job", "position_monitoring", "--date", "2026-11-18")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("position_monitoring 2026-11-18: success")


@pytest.mark.parametrize("job", ["data_collection", "risk_checks"])
def test_a_job_that_does_not_trade_is_allowed_for_a_past_date(cli: Any, db: Any, job: str) -> None:
    book_fill(db, date(2026, 11, 20))
    take_snapshot(db, date(2026, 11, 20))
    result = cli("run-job", job, "--date", "2026-11-18")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{job} 2026-11-18: success")


def test_the_latest_fire_s_date_before_the_latest_activity_is_refused_too(cli: Any, db: Any) -> None:
    take_snapshot(db, date(2026, 11, 23))  # booked by a clock ahead of this one
    result = cli("run-job", "position_monitoring")
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "Error: Invalid value for '--date': 2026-11-20 (the trading date of position_monitoring's latest fire) "
        "is before this account's latest activity (2026-11-23): a manual run cannot rewrite history; replay the "
        "past with `simulate` into its own database\n")
