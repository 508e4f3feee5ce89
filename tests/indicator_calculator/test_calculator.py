"""The indicator_calculation job: inputs, incremental dates, idempotence, storage."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select, text

from services.common.clock import FixedClock
from services.common.job_api import JobContext, Outcome
from services.data_collector import collector as data_collector
from services.data_collector.models import CorporateAction
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
                      calendar=calendar)


def dump(session_factory: Any) -> list[tuple[Any, ...]]:
    with session_factory() as session:
        rows = [tuple(row) for table in ("technical_indicators", "financial_indicators")
                for row in session.execute(text(f"SELECT * FROM {table}"))]
    return sorted(rows, key=repr)


def test_the_lookback_is_the_longest_warm_up_plus_a_settling_margin():
    # sma_120 needs 119 sessions before its first value; EMAs and Wilder averages settle
    # within 120 more. The data collection of a date completes this many sessions.
    assert calculator.LOOKBACK_SESSIONS == 119 + 1 + 120 == data_collector.INDICATOR_LOOKBACK_SESSIONS


def test_the_job_reads_its_lookback_and_stores_every_ticker_of_its_date(session_factory, krx_calendar, clock):
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), D)
    result = calculator.run(context(session_factory, krx_calendar, clock))
    assert result.status is Outcome.SUCCESS
    assert result.summary["dates"] == 1
    with session_factory() as session:
        tickers = session.execute(text("SELECT count(*) FROM daily_prices WHERE date = :d"), {"d": D}).scalar()
        stored = session.scalars(select(TechnicalIndicator).where(TechnicalIndicator.date == D)).all()
        marker = session.get(CalculatedSession, D)
    # the lookback: the last 240 sessions up to D (2025-11-27 is the 240th before 2026-11-20)
    assert marker.lookback_start == date(2025, 11, 27)
    assert len(stored) == tickers == marker.tickers
    # a ticker listed for the whole lookback has every indicator; NULL (never NaN) only in warm-up
    complete = [row for row in stored if row.sma_120 is not None]
    assert complete and all(row.macd_signal is not None and row.stoch_d is not None for row in complete)


def test_recomputing_a_date_leaves_identical_rows(session_factory, krx_calendar, clock):
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), D)
    calculator.run(context(session_factory, krx_calendar, clock))
    before = dump(session_factory)
    calculator.run(context(session_factory, krx_calendar, clock))
    assert dump(session_factory) == before


def test_every_session_since_the_last_calculated_one_is_computed_in_order(session_factory, krx_calendar, clock):
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), D)
    calculator.run(context(session_factory, krx_calendar, clock, date(2026, 11, 16)))
    result = calculator.run(context(session_factory, krx_calendar, clock))
    assert result.summary["dates"] == 4  # 11-17, 18, 19 (exam day) and 20
    assert result.summary["first_date"] == "2026-11-17"
    with session_factory() as session:
        done = sorted(session.scalars(select(CalculatedSession.date)))
    assert done == [date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19), D]


def test_the_job_only_reads_market_data_and_is_skipped_naming_the_sessions_missing(
    session_factory, krx_calendar, clock, monkeypatch
):
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), date(2026, 11, 18))

    def never(*_args: Any) -> Any:
        raise AssertionError("the indicator job collected market data (the data_collection job does)")

    monkeypatch.setattr("services.data_collector.providers.factory.make_provider", never)
    result = calculator.run(context(session_factory, krx_calendar, clock))
    assert result.status is Outcome.SKIPPED
    assert result.reason == "input missing: no market data for 2 sessions (2026-11-19 .. 2026-11-20)"
    with session_factory() as session:
        assert session.get(CalculatedSession, D) is None
        assert session.execute(text("SELECT count(*) FROM collected_sessions WHERE date >= :d"),
                               {"d": date(2026, 11, 19)}).scalar() == 0


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


def _stored(session_factory: Any, day: date) -> pd.DataFrame:
    with session_factory() as session:
        frame = pd.read_sql(text("SELECT * FROM technical_indicators WHERE date = :d"), session.connection(),
                            params={"d": day})
    return frame.set_index("ticker").sort_index()


def test_a_daily_step_continues_the_stored_series_exactly(session_factory, krx_calendar, clock, monkeypatch):
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), D)
    previous = date(2026, 11, 19)
    calculator.calculate([previous], session_factory=session_factory, calendar=krx_calendar, now=clock.now)
    # the previous session's values are stored: D is one step of each recursion, no batch
    monkeypatch.setattr(calculator, "_calculate_batch", lambda *a, **k: pytest.fail("batch used"))
    calculator.calculate([D], session_factory=session_factory, calendar=krx_calendar, now=clock.now)
    monkeypatch.undo()
    start = calculator.lookback_start(krx_calendar, previous)
    with session_factory() as session:
        prices = calculator.load_prices(session.connection(), start, D)
    batch = pd.concat([prices[["ticker", "date"]], compute_indicators(prices)], axis=1)
    batch = batch[batch["date"] == pd.Timestamp(D)].set_index("ticker").sort_index()
    stored = _stored(session_factory, D)
    assert list(stored.index) == list(batch.index)
    scale = batch["close"] if "close" in batch else batch["ema_26"].abs()
    for column in batch.columns.drop("date"):
        expected, got = batch[column].to_numpy(float), stored[column].to_numpy(float)
        assert np.array_equal(np.isnan(expected), np.isnan(got)), column
        known = ~np.isnan(expected)
        assert np.all(np.abs(got[known] - expected[known]) <= 1e-9 * scale.to_numpy()[known] + 1e-9), column


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_ticker_without_yesterdays_values_is_computed_from_its_lookback(session_factory, krx_calendar, clock):
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), D)
    previous = date(2026, 11, 19)
    calculator.calculate([previous], session_factory=session_factory, calendar=krx_calendar, now=clock.now)
    with session_factory.begin() as session:
        ticker = session.execute(text("SELECT min(ticker) FROM technical_indicators")).scalar()
        session.execute(text("DELETE FROM technical_indicators WHERE ticker = :t"), {"t": ticker})
    calculator.calculate([D], session_factory=session_factory, calendar=krx_calendar, now=clock.now)
    with session_factory() as session:
        prices = calculator.load_prices(session.connection(), calculator.lookback_start(krx_calendar, D), D)
    mine = prices[prices["ticker"] == ticker]
    expected = compute_indicators(mine).iloc[-1]
    got = _stored(session_factory, D).loc[ticker]
    for column in ("sma_120", "ema_26", "rsi_14", "macd_signal", "stoch_d"):
        assert got[column] == pytest.approx(expected[column], rel=1e-9), column


def test_a_session_missing_in_the_lookback_skips_the_job(session_factory, krx_calendar, clock):
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), D)
    with session_factory.begin() as session:
        for table in ("daily_prices", "fundamentals", "collected_sessions"):
            session.execute(text(f"DELETE FROM {table} WHERE date = :d"), {"d": date(2026, 11, 10)})
    result = calculator.run(context(session_factory, krx_calendar, clock))
    assert result.status is Outcome.SKIPPED
    assert result.reason == "input missing: no market data for 2026-11-10"
    with session_factory() as session:
        assert session.get(CalculatedSession, D) is None


SPLIT = date(2026, 11, 16)  # a 1-for-2 reverse split of one ticker takes effect (a Monday)


def _reverse_split(session_factory: Any, ticker: str) -> None:
    """From SPLIT on, the ticker quoted in new shares, each worth two old ones (its
    change on SPLIT, against the base price of twice the previous close, unchanged)."""
    with session_factory.begin() as session:
        session.execute(text("UPDATE daily_prices SET open = open * 2, high = high * 2, low = low * 2, "
                             "close = close * 2 WHERE ticker = :t AND date >= :d"), {"t": ticker, "d": SPLIT})
        session.execute(insert(CorporateAction).values(date=SPLIT, ticker=ticker, ratio=0.5))
        for table in ("technical_indicators", "financial_indicators", "calculated_sessions"):
            session.execute(text(f"DELETE FROM {table}"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("stepped", [False, True])
def test_indicators_read_prices_adjusted_for_a_split(session_factory, krx_calendar, clock, stepped):
    # in adjusted prices the ticker's history is the same series doubled: every price level
    # doubles, every ratio (RSI, stochastics) stays
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), D)
    calculator.calculate([D], session_factory=session_factory, calendar=krx_calendar, now=clock.now)
    before = _stored(session_factory, D)
    ticker = before.index[0]
    _reverse_split(session_factory, ticker)
    if stepped:  # D-1 stored: D is a step for the others, a batch for the split ticker
        calculator.calculate([date(2026, 11, 19)], session_factory=session_factory, calendar=krx_calendar,
                             now=clock.now)
    calculator.calculate([D], session_factory=session_factory, calendar=krx_calendar, now=clock.now)
    after = _stored(session_factory, D)
    for column in ("sma_5", "sma_20", "sma_120", "ema_26", "bb_upper", "atr_14", "macd"):
        assert after.loc[ticker, column] == pytest.approx(2 * before.loc[ticker, column], rel=1e-9), column
    for column in ("rsi_14", "stoch_k"):
        assert after.loc[ticker, column] == pytest.approx(before.loc[ticker, column], rel=1e-9), column
    others = before.index.drop(ticker)
    assert np.allclose(after.loc[others, "sma_20"], before.loc[others, "sma_20"], rtol=1e-9)


def test_a_session_that_resets_a_base_price_is_recorded_as_a_corporate_action(session_factory, krx_calendar,
                                                                              clock):
    collect(session_factory, krx_calendar, clock, date(2026, 11, 2), date(2026, 11, 13))
    with session_factory() as session:
        ticker, close = session.execute(text("SELECT ticker, close FROM daily_prices WHERE date = :d LIMIT 1"),
                                         {"d": date(2026, 11, 13)}).one()
    prices = {"ticker": [ticker], "close": [close // 50], "change_pct": [0.0]}  # a 50-for-1 split, flat
    with session_factory.begin() as session:
        rows = data_collector.action_rows(session.connection(), SPLIT, prices)
    assert rows == [{"date": SPLIT, "ticker": ticker, "ratio": pytest.approx(close / (close // 50))}]


def _keep_prices_of(session_factory: Any, ticker: str, *, from_day: date, until: date | None = None) -> None:
    """Delete ``ticker``'s prices before ``from_day`` (listed then), or from ``from_day``
    up to ``until`` (a gap without rows)."""
    where = "date < :f" if until is None else "date >= :f AND date < :u"
    with session_factory.begin() as session:
        session.execute(text(f"DELETE FROM daily_prices WHERE ticker = :t AND {where}"),
                        {"t": ticker, "f": from_day, "u": until})


def _batches_calculating(day: date, session_factory: Any, calendar: Any, clock: FixedClock,
                         monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Calculate ``day``: the tickers of each batch of their own it ran."""
    batched: list[list[str]] = []
    with_batch_of = calculator._with_batch_of
    monkeypatch.setattr(calculator, "_with_batch_of", lambda technical, connection, tickers, *rest: batched.append(
        tickers) or with_batch_of(technical, connection, tickers, *rest))
    calculator.calculate([day], session_factory=session_factory, calendar=calendar, now=clock.now)
    return batched


def _a_ticker(session_factory: Any) -> str:
    with session_factory() as session:
        return str(session.execute(text("SELECT min(ticker) FROM daily_prices WHERE date = :d"), {"d": D}).scalar())


def _batch_of(session_factory: Any, calendar: Any, ticker: str, day: date) -> pd.Series:
    with session_factory() as session:
        prices = calculator.load_prices(session.connection(), calculator.lookback_start(calendar, day), day)
    return compute_indicators(prices[prices["ticker"] == ticker]).iloc[-1]


def _assert_values_equal(got: pd.Series, expected: pd.Series) -> None:
    for column in ("sma_5", "sma_60", "sma_120", "ema_26", "rsi_14", "macd_signal", "atr_14", "bb_upper",
                   "stoch_d", "volume_ratio_20"):
        if np.isnan(expected[column]):
            assert np.isnan(got[column]), column
        else:
            assert got[column] == pytest.approx(expected[column], rel=1e-9), column


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_ticker_listed_inside_the_window_steps_once_its_averages_have_values(
        session_factory, krx_calendar, clock, monkeypatch):
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), D)
    ticker, listed = _a_ticker(session_factory), date(2026, 8, 3)  # 80 sessions before D: no sma_120
    _keep_prices_of(session_factory, ticker, from_day=listed)
    previous = date(2026, 11, 19)
    calculator.calculate([previous], session_factory=session_factory, calendar=krx_calendar, now=clock.now)
    monkeypatch.setattr(calculator, "_with_batch_of", lambda *a, **k: pytest.fail("batch used"))
    calculator.calculate([D], session_factory=session_factory, calendar=krx_calendar, now=clock.now)
    expected = _batch_of(session_factory, krx_calendar, ticker, D)
    assert np.isnan(expected["sma_120"]) and not np.isnan(expected["sma_60"])
    _assert_values_equal(_stored(session_factory, D).loc[ticker], expected)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_ticker_with_a_gap_at_the_start_of_its_window_gets_a_batch(session_factory, krx_calendar, clock,
                                                                      monkeypatch):
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), D)
    ticker = _a_ticker(session_factory)  # no rows in the window's first 30 sessions, priced before them
    window = [s.date for s in krx_calendar.sessions(date(2026, 1, 1), D)][-calculator.incremental.WINDOW:]
    _keep_prices_of(session_factory, ticker, from_day=window[0], until=window[30])
    previous = date(2026, 11, 19)
    calculator.calculate([previous], session_factory=session_factory, calendar=krx_calendar, now=clock.now)
    assert _batches_calculating(D, session_factory, krx_calendar, clock, monkeypatch) == [[ticker]]
    expected = _batch_of(session_factory, krx_calendar, ticker, D)
    assert not np.isnan(expected["sma_120"])  # from the prices before the gap
    _assert_values_equal(_stored(session_factory, D).loc[ticker], expected)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_ticker_relisted_inside_its_window_gets_a_batch_while_its_state_holds_an_older_price(
        session_factory, krx_calendar, clock, monkeypatch):
    collect(session_factory, krx_calendar, clock, date(2025, 9, 1), D)
    ticker, previous = _a_ticker(session_factory), date(2026, 11, 19)
    window = [s.date for s in krx_calendar.sessions(date(2026, 1, 1), D)][-calculator.incremental.WINDOW:]
    # priced on the first session of the previous date's lookback (one before D's), then not
    # until 30 sessions into D's window: D's own lookback holds only the recent prices
    older = calculator.lookback_start(krx_calendar, previous)
    assert older < calculator.lookback_start(krx_calendar, D)
    _keep_prices_of(session_factory, ticker, from_day=krx_calendar.next_session(older).date, until=window[30])
    calculator.calculate([previous], session_factory=session_factory, calendar=krx_calendar, now=clock.now)
    assert _batches_calculating(D, session_factory, krx_calendar, clock, monkeypatch) == [[ticker]]
    _assert_values_equal(_stored(session_factory, D).loc[ticker], _batch_of(session_factory, krx_calendar, ticker, D))
