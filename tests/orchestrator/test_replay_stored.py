"""Replays of stored history (``ORCHESTRATOR_DATA_PROVIDER=stored``): the market data a
database holds (collected there by ``backfill``) replayed into another database through
the same triggers and jobs, the paper account settled on each session's daily bar.

The history here is the simulated market's, backfilled into a "live" database: what
matters is that the replay reads it only from there, never writes there, and trades on
the bars alone."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from services.common.clock import FixedClock
from services.common.database import create_db_engine
from services.common.market_calendar import KRX_TZ
from services.data_collector.models import CollectedSession, DailyPrice, MarketIndex
from services.orchestrator.models import JobRun
from services.orchestrator.ops import replays
from services.orchestrator.ops.backfill import Backfill
from services.orchestrator.runtime import Runtime
from services.trading_engine.models import FillRow, OrderRow, PaperAccount, SignalRow
from tests.conftest import make_settings

HISTORY = (date(2025, 2, 3), date(2026, 3, 13))
REPLAY = (date(2026, 3, 2), date(2026, 3, 13))  # 2026-03-02 is closed (a substitute holiday)
#: from the session before the replay's first (02-27) to its last: +5.00%
KOSPI_CLOSES = {date(2026, 2, 27): 2_500.0, date(2026, 3, 3): 2_480.0, date(2026, 3, 4): 2_510.5,
                date(2026, 3, 5): 2_530.0, date(2026, 3, 6): 2_550.25, date(2026, 3, 9): 2_540.0,
                date(2026, 3, 10): 2_575.0, date(2026, 3, 11): 2_590.0, date(2026, 3, 12): 2_610.0,
                date(2026, 3, 13): 2_625.0}


@pytest.fixture(scope="module")
def live_database(tmp_path_factory: pytest.TempPathFactory, calendar_cache_dir: Path) -> str:
    """A database holding HISTORY, backfilled from the simulated market (30 tickers)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('live') / 'live.db'}"
    settings = make_settings(database_url=url, cache_dir=str(calendar_cache_dir), simulated_universe="30")
    runtime = Runtime.create(settings, clock=FixedClock(datetime(2026, 3, 14, tzinfo=KRX_TZ)))
    try:
        days = [s.date for s in runtime.calendar.sessions(*HISTORY)]
        report = Backfill(runtime, days).run()
        assert not report.failed
        with runtime.session_factory().begin() as db:  # KOSPI's closes, as a provider publishes them
            db.execute(insert(MarketIndex), [{"date": day, "name": "KOSPI", "close": close}
                                             for day, close in KOSPI_CLOSES.items()])
    finally:
        runtime.close()
    return url


def replay_into(directory: Path, live_url: str, cache_dir: Path, *, ahead: bool | None = None,
                **values: str) -> replays.ReplayResult:
    settings = make_settings(database_url=live_url, cache_dir=str(cache_dir), data_provider="stored",
                             simulated_universe="30", enable_risk_checks="false", **values)
    plan = replays.plan(settings, *REPLAY, database_url=f"sqlite:///{directory / 'replay.db'}")
    return replays.run(plan, ahead=ahead)


def ledger(url: str) -> list[tuple[Any, ...]]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(
                select(OrderRow.client_order_id, OrderRow.status, OrderRow.limit_price, FillRow.quantity,
                       FillRow.price, FillRow.commission, FillRow.tax, FillRow.filled_at)
                .outerjoin(FillRow, FillRow.order_id == OrderRow.id).order_by(OrderRow.id, FillRow.id)).all()]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def replay(live_database: str, tmp_path_factory: pytest.TempPathFactory,
           calendar_cache_dir: Path) -> tuple[str, replays.ReplayResult]:
    directory = tmp_path_factory.mktemp("replay")
    result = replay_into(directory, live_database, calendar_cache_dir)
    assert result.failed == 0
    return f"sqlite:///{directory / 'replay.db'}", result


@pytest.fixture(scope="module")
def replayed(replay: tuple[str, replays.ReplayResult]) -> str:
    return replay[0]


def test_the_benchmark_is_kospis_published_closes_when_the_history_holds_them(replay: Any):
    summary = replay[1].summary
    assert summary.benchmark_source == "KRX index closes"
    assert summary.benchmark_levels == list(KOSPI_CLOSES.values())
    assert summary.performance is not None
    assert summary.performance.benchmark_return == pytest.approx(0.05)  # 2,625 / 2,500 - 1


def test_a_replay_of_stored_history_trades_and_is_the_same_twice(replayed: str, live_database: str, tmp_path: Path,
                                                                  calendar_cache_dir: Path):
    first = ledger(replayed)
    assert sum(1 for row in first if row[3]) > 5  # it traded
    replay_into(tmp_path, live_database, calendar_cache_dir)
    assert ledger(f"sqlite:///{tmp_path / 'replay.db'}") == first


def test_a_replay_never_prices_from_kis_even_told_to_with_keys_set(replayed: str, live_database: str,
                                                                  tmp_path: Path, calendar_cache_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a replay made a KIS quote source: KIS gives today's prices, not a past day's")

    monkeypatch.setattr("services.trading_engine.kis_api.quotes.KisQuotes", refuse)
    result = replay_into(tmp_path, live_database, calendar_cache_dir, paper_quotes="kis", kis_app_key="k" * 36,
                         kis_app_secret="s" * 180)
    assert result.failed == 0
    assert ledger(f"sqlite:///{tmp_path / 'replay.db'}") == ledger(replayed)


def test_every_fill_lies_inside_its_sessions_stored_bar(replayed: str):
    engine = create_db_engine(replayed)
    with engine.connect() as connection:
        rows = connection.execute(select(FillRow.ticker, FillRow.trade_date, FillRow.price, DailyPrice.low,
                                         DailyPrice.high).join(DailyPrice, (DailyPrice.ticker == FillRow.ticker)
                                                               & (DailyPrice.date == FillRow.trade_date))).all()
        fills = connection.scalar(select(func.count()).select_from(FillRow))
        settled = connection.scalar(select(PaperAccount.bars_settled_through))
    engine.dispose()
    assert len(rows) == fills > 0
    assert all(low <= price <= high for _, _, price, low, high in rows)
    assert settled == date(2026, 3, 12)  # the last session's bar is settled by the next trading run


def test_the_replay_collects_from_the_history_and_leaves_it_untouched(replayed: str, live_database: str,
                                                                      krx_calendar: Any):
    engine = create_db_engine(live_database)
    with engine.connect() as connection:
        sessions = connection.scalar(select(func.count()).select_from(CollectedSession))
        orders = connection.scalar(select(func.count()).select_from(OrderRow))
    engine.dispose()
    assert (sessions, orders) == (len(krx_calendar.sessions(*HISTORY)), 0)
    replay = create_db_engine(replayed)
    with replay.connect() as connection:
        providers = set(connection.scalars(select(CollectedSession.provider).distinct()))
        sources = set(connection.scalars(select(SignalRow.source).distinct()))
    replay.dispose()
    assert providers == {"stored(simulated(seed=42,universe=30))"}
    assert sources <= {"pre_open", "daily bar"}


def test_a_session_missing_from_the_history_fails_naming_the_backfill_to_run(live_database: str, tmp_path: Path,
                                                                            calendar_cache_dir: Path):
    settings = make_settings(database_url=live_database, cache_dir=str(calendar_cache_dir), data_provider="stored",
                             simulated_universe="30", enable_risk_checks="false")
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    result = replays.run(replays.plan(settings, date(2026, 3, 16), date(2026, 3, 16), database_url=url))
    assert result.failed > 0
    engine = create_db_engine(url)
    with engine.connect() as connection:
        errors = set(connection.scalars(select(JobRun.error).where(JobRun.job_name == "data_collection")))
    engine.dispose()
    assert any("2026-03-16 is not in the history of" in (error or "")
               and "backfill --start 2026-03-16 --end 2026-03-16" in error for error in errors)


@pytest.mark.parametrize("end", [REPLAY[1], date(2026, 3, 17)])  # the second: two sessions past the history
def test_a_replay_of_stored_history_with_its_market_data_ahead_writes_what_one_on_its_own_writes(
        live_database: str, tmp_path: Path, calendar_cache_dir: Path, end: date) -> None:
    from tests.orchestrator.test_replay_ahead import database_rows

    settings = make_settings(database_url=live_database, cache_dir=str(calendar_cache_dir), data_provider="stored",
                             simulated_universe="30", enable_risk_checks="false")
    written = {}
    for ahead in (False, True):
        url = f"sqlite:///{tmp_path / str(ahead) / 'replay.db'}"
        replays.run(replays.plan(settings, REPLAY[0], end, database_url=url), ahead=ahead)
        written[ahead] = database_rows(make_settings(database_url=url))
    assert written[True] == written[False]  # reasons naming another run by its id included
    assert written[True]["fills"] and written[True]["daily_prices"]
