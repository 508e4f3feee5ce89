"""The indicator_calculation job: inputs, incremental dates, idempotence, storage."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, text

from services.common.clock import FixedClock
from services.common.job_api import JobContext, Outcome
from services.data_collector import collector as data_collector
from services.data_collector.providers import ProviderUnavailable
from services.data_collector.providers.simulated import SimulatedProvider
from services.indicator_calculator import calculator
from services.indicator_calculator.models import CalculatedSession, TechnicalIndicator
from services.indicator_calculator.technical import compute_indicators
from tests.conftest import make_settings

KST = ZoneInfo("Asia/Seoul")
D = date(2026, 11, 20)
SETTINGS = {"simulated_universe": "30", "simulated_seed": "5", "bootstrap_sessions": "250"}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 20, 17, 0, tzinfo=KST))


def collect(session_factory: Any, calendar: Any, clock: FixedClock, start: date, end: date) -> None:
    provider = SimulatedProvider(calendar=calendar, clock=clock, seed=5, universe_size=30)
    days = [s.date for s in calendar.sessions(start, end)]
    data_collector.backfill(days, session_factory=session_factory, provider=provider, now=clock.now)


def context(session_factory: Any, calendar: Any, clock: FixedClock, day: date = D) -> JobContext:
    return JobContext(job_name="indicator_calculation", trading_date=day, scheduled_for=clock.now(),
                      settings=make_settings(**SETTINGS), session_factory=session_factory, clock=clock,
                      calendar=calendar, dry_run=True, user_id="default_user")


def dump(session_factory: Any) -> list[tuple[Any, ...]]:
    with session_factory() as session:
        return sorted((tuple(row) for row in session.execute(text(
            "SELECT * FROM technical_indicators UNION ALL SELECT date, ticker, per, pbr, eps, bps, "
            "dividend_yield, roe, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
            "FROM financial_indicators"))), key=repr)


def test_the_job_completes_its_lookback_then_stores_every_ticker_of_its_date(
    session_factory, krx_calendar, clock
):
    collect(session_factory, krx_calendar, clock, date(2026, 10, 1), D)
    result = calculator.run(context(session_factory, krx_calendar, clock))
    assert result.status is Outcome.SUCCESS
    assert result.summary["dates"] == 1
    with session_factory() as session:
        tickers = session.execute(text("SELECT count(*) FROM daily_prices WHERE date = :d"), {"d": D}).scalar()
        sessions = session.execute(text("SELECT count(*) FROM collected_sessions")).scalar()
        stored = session.scalars(select(TechnicalIndicator).where(TechnicalIndicator.date == D)).all()
        marker = session.get(CalculatedSession, D)
    # the missing history of the lookback (the longest warm-up plus a margin) was collected first
    assert sessions == calculator.LOOKBACK_SESSIONS
    assert marker.lookback_start == krx_calendar.sessions(date(2025, 1, 1), D)[-calculator.LOOKBACK_SESSIONS].date
    assert len(stored) == tickers == marker.tickers
    # a ticker listed for the whole lookback has every indicator; NULL (never NaN) only in warm-up
    complete = [row for row in stored if row.sma_120 is not None]
    assert complete and all(row.macd_signal is not None and row.stoch_d is not None for row in complete)


def test_recomputing_a_date_leaves_identical_rows(session_factory, krx_calendar, clock):
    collect(session_factory, krx_calendar, clock, date(2026, 10, 1), D)
    calculator.run(context(session_factory, krx_calendar, clock))
    before = dump(session_factory)
    calculator.run(context(session_factory, krx_calendar, clock))
    assert dump(session_factory) == before


def test_every_session_since_the_last_calculated_one_is_computed_in_order(session_factory, krx_calendar, clock):
    collect(session_factory, krx_calendar, clock, date(2026, 10, 1), D)
    calculator.run(context(session_factory, krx_calendar, clock, date(2026, 11, 16)))
    result = calculator.run(context(session_factory, krx_calendar, clock))
    assert result.summary["dates"] == 4  # 11-17, 18, 19 (exam day) and 20
    assert result.summary["first_date"] == "2026-11-17"
    with session_factory() as session:
        done = sorted(session.scalars(select(CalculatedSession.date)))
    assert done == [date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19), D]


def test_missing_market_data_is_collected_first(session_factory, krx_calendar, clock):
    collect(session_factory, krx_calendar, clock, date(2026, 10, 1), date(2026, 11, 18))
    result = calculator.run(context(session_factory, krx_calendar, clock))
    assert result.status is Outcome.SUCCESS
    with session_factory() as session:
        assert session.get(CalculatedSession, D) is not None
        collected = session.execute(text("SELECT count(*) FROM collected_sessions WHERE date >= :d"),
                                    {"d": date(2026, 11, 19)}).scalar()
    assert collected == 2


def test_without_market_data_and_no_way_to_get_it_the_job_is_skipped(
    session_factory, krx_calendar, clock, monkeypatch
):
    def unavailable(*_args: Any) -> Any:
        raise ProviderUnavailable("the pykrx provider needs KRX_ID and KRX_PW in the environment")

    monkeypatch.setattr("services.data_collector.providers.factory.make_provider", unavailable)
    result = calculator.run(context(session_factory, krx_calendar, clock))
    assert result.status is Outcome.SKIPPED
    assert result.reason == ("input missing: no market data for 2026-11-20 "
                             "(the pykrx provider needs KRX_ID and KRX_PW in the environment)")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_incremental_run_equals_a_computation_over_all_history(session_factory, krx_calendar, clock):
    # 300 sessions stored; the job reads only its lookback (240 sessions)
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), D)
    calculator.run(context(session_factory, krx_calendar, clock))
    with session_factory() as session:
        prices = pd.DataFrame(session.execute(text(
            "SELECT ticker, date, open, high, low, close, volume FROM daily_prices")).all(),
            columns=["ticker", "date", "open", "high", "low", "close", "volume"])
        stored = pd.read_sql(text("SELECT * FROM technical_indicators"), session.connection())
    prices["date"] = pd.to_datetime(prices["date"])
    full = pd.concat([prices[["ticker", "date"]], compute_indicators(prices)], axis=1)
    full = full[full["date"] == pd.Timestamp(D)].set_index("ticker").sort_index()
    stored = stored.set_index("ticker").sort_index()
    price_level = full["ema_26"].to_numpy(float)
    for column in ("ema_26", "rsi_14", "macd", "macd_signal", "macd_hist", "atr_14", "sma_120", "stoch_d"):
        expected, got = full[column].to_numpy(float), stored[column].to_numpy(float)
        assert np.array_equal(np.isnan(expected), np.isnan(got)), column
        known = ~np.isnan(expected)
        # MACD values cross zero: their error is measured against the price level instead
        scale = price_level[known] if column.startswith("macd") else np.abs(expected[known])
        assert np.all(np.abs(got[known] - expected[known]) <= 1e-6 * scale + 1e-9), column
