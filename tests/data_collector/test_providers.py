"""Market data providers: one contract for both, then what is particular to each.

The pykrx provider runs against ``FakePykrxStock`` (recorded KRX answers in
tests/data/pykrx, see tests/data/README.md), never the network and never the real
pykrx package. Expected values are read off those CSVs or worked out by hand.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from services.common.clock import FixedClock
from services.common.market_calendar import MarketCalendar, load_calendar
from services.common.throttle import ThrottleRegistry
from services.data_collector.providers import (
    FUNDAMENTAL_COLUMNS,
    PRICE_COLUMNS,
    STOCK_COLUMNS,
    MarketDataProvider,
    MarketSnapshot,
    ProviderUnavailable,
    SessionNotAvailable,
    TransientProviderError,
    pykrx_provider,
)
from services.data_collector.providers.pykrx_provider import (
    PykrxProvider,
    fundamentals_frame,
    import_pykrx_stock,
    ohlcv_to_prices,
)
from services.data_collector.providers.simulated import SimulatedProvider
from services.data_collector.validation import InvalidSnapshot, validate_snapshot
from tests.data_collector.fake_pykrx import FakePykrxStock, FakeTimer

KST = ZoneInfo("Asia/Seoul")

# The canonical columns, as DESIGN.md section 7 lists them.
STOCKS = ["ticker", "name", "market"]
PRICES = ["ticker", "date", "open", "high", "low", "close", "volume", "value", "change_pct",
          "market_cap", "market"]
FUNDAMENTALS = ["ticker", "date", "bps", "per", "pbr", "eps", "div", "dps"]
OHLC = ["open", "high", "low", "close"]
TICKER = re.compile(r"^[0-9A-Z]{6}$")

RECORDED_SESSION = date(2021, 1, 22)  # the session tests/data/pykrx was recorded on
AFTER_EVERY_CLOSE = datetime(2027, 12, 31, 23, 59, tzinfo=KST)  # past the calendar's data


def kst(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=KST)


def make_pykrx(calendar: MarketCalendar, clock: FixedClock, fake: FakePykrxStock | None = None,
               timer: FakeTimer | None = None, **options: float) -> PykrxProvider:
    fake = fake if fake is not None else FakePykrxStock()
    timer = timer if timer is not None else FakeTimer()
    return PykrxProvider(calendar=calendar, clock=clock, stock_api=fake, sleep=timer.sleep,
                         monotonic=timer.monotonic, **options)


# --- the contract: both providers --------------------------------------------------------


@dataclass(frozen=True)
class ContractCase:
    """A provider and the dates it is asked about."""

    make: Callable[[MarketCalendar, FixedClock], MarketDataProvider]
    session: date
    close: str  # the session's close, HH:MM KST
    before_close: datetime
    after_close: datetime
    closed_day: date


CASES = {
    # the exam day (수능): trading shifted one hour, close 16:30
    "simulated": ContractCase(
        make=lambda calendar, clock: SimulatedProvider(calendar=calendar, clock=clock),
        session=date(2026, 11, 19), close="16:30",
        before_close=kst(2026, 11, 19, 16, 0), after_close=kst(2026, 11, 19, 16, 31),
        closed_day=date(2026, 7, 17),  # Constitution Day, a public holiday again from 2026
    ),
    # the recorded session: a regular day, close 15:30
    "pykrx": ContractCase(
        make=lambda calendar, clock: make_pykrx(calendar, clock),
        session=RECORDED_SESSION, close="15:30",
        before_close=kst(2021, 1, 22, 15, 0), after_close=kst(2021, 1, 22, 15, 31),
        closed_day=date(2021, 1, 23),  # the day of the recorded zero-filled frame (a Saturday)
    ),
}


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest) -> ContractCase:
    return CASES[request.param]


@pytest.fixture
def snapshot(case: ContractCase, krx_calendar: MarketCalendar) -> MarketSnapshot:
    return case.make(krx_calendar, FixedClock(case.after_close)).fetch_session(case.session)


def test_the_frames_have_the_canonical_columns_in_order(snapshot):
    assert list(snapshot.stocks.columns) == STOCKS == STOCK_COLUMNS
    assert list(snapshot.prices.columns) == PRICES == PRICE_COLUMNS
    assert list(snapshot.fundamentals.columns) == FUNDAMENTALS == FUNDAMENTAL_COLUMNS


def test_tickers_are_six_character_strings(snapshot):
    for frame in (snapshot.stocks, snapshot.prices, snapshot.fundamentals):
        tickers = frame["ticker"].tolist()
        assert tickers and all(isinstance(t, str) and TICKER.match(t) for t in tickers)


def test_the_whole_market_comes_in_one_call_kospi_and_kosdaq(snapshot):
    assert set(snapshot.prices["market"]) == {"KOSPI", "KOSDAQ"}
    assert set(snapshot.stocks["market"]) == {"KOSPI", "KOSDAQ"}


def test_every_row_is_dated_the_trading_date(snapshot, case):
    assert snapshot.trading_date == case.session
    assert set(snapshot.prices["date"]) == {case.session}
    assert set(snapshot.fundamentals["date"]) == {case.session}


def test_every_priced_ticker_is_in_the_stock_master_with_a_name(snapshot):
    stocks = snapshot.stocks.set_index("ticker")
    assert set(snapshot.prices["ticker"]) <= set(stocks.index)
    assert set(snapshot.fundamentals["ticker"]) <= set(stocks.index)
    assert (stocks["name"].str.strip() != "").all()
    market_of = snapshot.prices.set_index("ticker")["market"]
    assert (stocks.loc[market_of.index, "market"] == market_of).all()


def test_validation_accepts_the_snapshot_whole(snapshot):
    validated = validate_snapshot(snapshot)
    assert validated.rejected == Counter()
    assert len(validated.prices) == len(snapshot.prices)
    assert len(validated.fundamentals) == len(snapshot.fundamentals)
    assert len(validated.stocks) == len(snapshot.stocks)


def test_prices_are_positive_and_high_and_low_bound_open_and_close(snapshot):
    p = snapshot.prices
    assert (p[OHLC] > 0).all(axis=None)
    assert (p["high"] >= p[["open", "close"]].max(axis=1)).all()
    assert (p["low"] <= p[["open", "close"]].min(axis=1)).all()


def test_traded_value_lies_between_volume_times_low_and_volume_times_high(snapshot):
    p = snapshot.prices
    assert (p["volume"] >= 0).all()
    assert (p["value"] >= p["volume"] * p["low"]).all()
    assert (p["value"] <= p["volume"] * p["high"]).all()


def test_a_day_that_is_not_a_session_is_refused(case, krx_calendar):
    provider = case.make(krx_calendar, FixedClock(AFTER_EVERY_CLOSE))
    with pytest.raises(SessionNotAvailable, match=f"{case.closed_day} is not a KRX session"):
        provider.fetch_session(case.closed_day)


def test_a_session_is_refused_until_its_close_has_happened(case, krx_calendar):
    clock = FixedClock(case.before_close)
    provider = case.make(krx_calendar, clock)
    with pytest.raises(SessionNotAvailable, match=f"close \\({case.close}\\) has not happened yet"):
        provider.fetch_session(case.session)
    clock.set(case.after_close)
    assert provider.fetch_session(case.session).trading_date == case.session


# --- pykrx: the real provider against recorded answers ---------------------------------


@pytest.fixture
def fake() -> FakePykrxStock:
    return FakePykrxStock()


@pytest.fixture
def timer() -> FakeTimer:
    return FakeTimer()


@pytest.fixture
def pykrx(krx_calendar, fake, timer) -> PykrxProvider:
    return make_pykrx(krx_calendar, FixedClock(kst(2021, 1, 22, 16, 0)), fake, timer, min_interval=0.5)


def row(frame: pd.DataFrame, ticker: str) -> dict:
    rows = frame[frame["ticker"] == ticker]
    assert len(rows) == 1, f"{ticker}: {len(rows)} rows"
    return rows.iloc[0].to_dict()


def test_korean_ohlcv_columns_are_mapped_to_ours(pykrx):
    prices = pykrx.fetch_session(RECORDED_SESSION).prices
    # ohlcv_KOSPI_20210122.csv, 005930 (삼성전자)
    assert row(prices, "005930") == {
        "ticker": "005930", "date": RECORDED_SESSION, "open": 89000, "high": 89700, "low": 86800,
        "close": 86800, "volume": 30861661, "value": 2717635251520, "change_pct": -1.48,
        "market_cap": 518177125340000, "market": "KOSPI",
    }
    # ohlcv_KOSDAQ_20210122.csv, 091990 (셀트리온헬스케어)
    assert row(prices, "091990") == {
        "ticker": "091990", "date": RECORDED_SESSION, "open": 143000, "high": 146300, "low": 141600,
        "close": 144600, "volume": 1434036, "value": 206480262100, "change_pct": 1.12,
        "market_cap": 21951700261200, "market": "KOSDAQ",
    }


def test_fundamental_columns_are_mapped_to_ours(fake):
    # the recorded 2021-01-08 answer (fundamental_KOSPI_20210108.csv), 005930
    recorded = fake.get_market_fundamental("20210108", market="KOSPI")
    frame = fundamentals_frame(recorded, date(2021, 1, 8))
    assert row(frame, "005930") == {"ticker": "005930", "date": date(2021, 1, 8), "bps": 37528,
                                    "per": 28.05, "pbr": 2.37, "eps": 3166, "div": 1.59, "dps": 1416}


def test_a_fetch_carries_both_markets_fundamentals(pykrx):
    fundamentals = pykrx.fetch_session(RECORDED_SESSION).fundamentals
    assert row(fundamentals, "005930") == {"ticker": "005930", "date": RECORDED_SESSION, "bps": 37528,
                                           "per": 27.42, "pbr": 2.31, "eps": 3166, "div": 1.63, "dps": 1416}
    # KRX reports 0 for "not available" (no KOSDAQ figures in the recording: derived rows)
    assert row(fundamentals, "035760") == {"ticker": "035760", "date": RECORDED_SESSION, "bps": 0,
                                           "per": 0.0, "pbr": 0.0, "eps": 0, "div": 0.0, "dps": 0}


@pytest.mark.parametrize("ticker, market, close", [("000210", "KOSPI", 83000), ("079190", "KOSDAQ", 2780)])
def test_a_halted_stock_is_a_no_trade_day_at_its_close(pykrx, ticker, market, close):
    # pykrx answers a halted stock with open/high/low 0 and only the close
    halted = row(pykrx.fetch_session(RECORDED_SESSION).prices, ticker)
    assert (halted["open"], halted["high"], halted["low"], halted["close"]) == (close, close, close, close)
    assert (halted["volume"], halted["value"], halted["market"]) == (0, 0, market)


def test_validation_marks_exactly_the_halted_stocks(pykrx):
    prices = validate_snapshot(pykrx.fetch_session(RECORDED_SESSION)).prices
    assert set(prices.loc[prices["halted"], "ticker"]) == {"000210", "079190"}


def test_an_alphanumeric_ticker_is_kept_as_a_string(pykrx):
    snapshot = pykrx.fetch_session(RECORDED_SESSION)
    assert row(snapshot.prices, "00104K")["close"] == 81500
    assert row(snapshot.fundamentals, "00104K")["dps"] == 1900
    assert row(snapshot.stocks, "00104K") == {"ticker": "00104K", "name": "CJ4우(전환)", "market": "KOSPI"}


def test_names_come_from_the_ticker_list(pykrx):
    stocks = pykrx.fetch_session(RECORDED_SESSION).stocks
    names = dict(zip(stocks["ticker"], stocks["name"]))
    assert names == {
        "005930": "삼성전자", "000660": "SK하이닉스", "095570": "AJ네트웍스", "006840": "AK홀딩스",
        "282330": "BGF리테일", "000210": "대림산업", "00104K": "CJ4우(전환)",
        "060310": "3S", "054620": "APS홀딩스", "035760": "CJ ENM", "091990": "셀트리온헬스케어",
        "079190": "EMW",
    }


def test_market_caps_come_from_get_market_cap_when_the_ohlcv_lacks_them(krx_calendar):
    # pykrx before 1.2: no 시가총액 column in the market-wide OHLCV
    fake = FakePykrxStock(without_market_cap=True)
    provider = make_pykrx(krx_calendar, FixedClock(kst(2021, 1, 22, 16, 0)), fake)
    prices = provider.fetch_session(RECORDED_SESSION).prices
    assert row(prices, "005930")["market_cap"] == 518177125340000
    assert row(prices, "079190")["market_cap"] == 88360067660
    assert [call.kwargs["market"] for call in fake.calls_of("get_market_cap")] == ["KOSPI", "KOSDAQ"]


def test_the_zero_filled_holiday_frame_is_rejected_by_validation(fake):
    holiday = date(2021, 1, 23)
    recorded = fake.get_market_ohlcv("20210123", market="KOSPI")
    assert len(recorded) == 7 and (recorded == 0).all(axis=None)
    snapshot = MarketSnapshot(
        holiday,
        stocks=pd.DataFrame({"ticker": ["005930"], "name": ["삼성전자"], "market": ["KOSPI"]}),
        prices=ohlcv_to_prices(recorded, holiday, "KOSPI"),
        fundamentals=pd.DataFrame(columns=FUNDAMENTALS),
    )
    with pytest.raises(InvalidSnapshot, match="zero-filled"):
        validate_snapshot(snapshot)


def test_a_day_that_is_not_a_session_is_refused_before_asking_pykrx(pykrx, fake):
    with pytest.raises(SessionNotAvailable):
        pykrx.fetch_session(date(2021, 1, 23))
    with pytest.raises(SessionNotAvailable):
        pykrx.fetch_session(date(2021, 2, 12))  # Seollal
    assert fake.calls == []


def test_a_session_before_its_close_is_refused_before_asking_pykrx(krx_calendar, fake):
    provider = make_pykrx(krx_calendar, FixedClock(kst(2021, 1, 22, 15, 29)), fake)
    with pytest.raises(SessionNotAvailable):
        provider.fetch_session(RECORDED_SESSION)
    assert fake.calls == []


def test_an_empty_answer_is_retried_with_backoff_then_fails_naming_the_call(pykrx, fake, timer):
    fake.empty_first("get_market_fundamental", 3)
    with pytest.raises(TransientProviderError) as raised:
        pykrx.fetch_session(RECORDED_SESSION)
    message = str(raised.value)
    assert "get_market_fundamental" in message and "20210122" in message
    assert "empty answer" in message and "3 attempts" in message
    assert len(fake.calls_of("get_market_fundamental")) == 3
    # the OHLCV request at t=0; then 0.5 s throttle wait, backoff 1 s, backoff 2 s
    # (no throttle wait after a backoff: it already spaced the requests)
    assert timer.sleeps == [0.5, 1.0, 2.0]


def test_an_exception_is_retried_the_same_way(pykrx, fake, timer):
    fake.raise_first("get_market_fundamental", 3, ConnectionError("KRX read timed out"))
    with pytest.raises(TransientProviderError) as raised:
        pykrx.fetch_session(RECORDED_SESSION)
    assert "get_market_fundamental" in str(raised.value)
    assert "ConnectionError: KRX read timed out" in str(raised.value)
    assert timer.sleeps == [0.5, 1.0, 2.0]


def test_a_request_that_succeeds_on_its_last_attempt_delivers_the_date(pykrx, fake, timer):
    fake.raise_first("get_market_ohlcv", 1, ConnectionError("reset by peer"))
    fake.empty_first("get_market_ohlcv", 1)
    snapshot = pykrx.fetch_session(RECORDED_SESSION)
    assert row(snapshot.prices, "005930")["close"] == 86800
    assert [c.kwargs["market"] for c in fake.calls_of("get_market_ohlcv")] == ["KOSPI"] * 3 + ["KOSDAQ"]
    assert timer.sleeps[:2] == [1.0, 2.0]  # first request: no throttle wait, only the backoffs


def test_requests_are_spaced_by_min_interval(krx_calendar):
    timer = FakeTimer()
    fake = FakePykrxStock(timer=timer, latency=0.2)  # each request takes 0.2 s
    provider = make_pykrx(krx_calendar, FixedClock(kst(2021, 1, 22, 16, 0)), fake, timer, min_interval=1.0)
    provider.fetch_session(RECORDED_SESSION)
    market_wide = [call.at for call in fake.calls if call.function != "get_market_ticker_name"]
    assert market_wide[0] == 0.0
    assert min(np.diff(market_wide)) >= 1.0 - 1e-9
    timer.now += 5.0  # long after the last request; names are known now
    calls_before, sleeps_before = len(fake.calls), len(timer.sleeps)
    provider.fetch_session(RECORDED_SESSION)
    second = fake.calls[calls_before:]
    assert {call.function for call in second} == {
        "get_market_ohlcv", "get_market_fundamental", "get_market_ticker_list", "get_index_ohlcv"}
    # no wait before the first request of the second fetch, 1 s minus the 0.2 s taken before each later one
    assert timer.sleeps[sleeps_before:] == pytest.approx([0.8] * (len(second) - 1))


def test_providers_without_a_clock_of_their_own_share_the_pykrx_throttle(krx_calendar, monkeypatch):
    timer = FakeTimer()
    monkeypatch.setattr(pykrx_provider, "THROTTLES", ThrottleRegistry(monotonic=timer.monotonic, sleep=timer.sleep))
    fake = FakePykrxStock(timer=timer, latency=0.2)
    first, second = (PykrxProvider(calendar=krx_calendar, clock=FixedClock(kst(2021, 1, 22, 16, 0)), stock_api=fake,
                                   min_interval=1.0) for _ in range(2))
    first.fetch_session(RECORDED_SESSION)
    second.fetch_session(RECORDED_SESSION)
    market_wide = [call.at for call in fake.calls if call.function != "get_market_ticker_name"]
    assert len(market_wide) == 16  # 8 each: 6 for the markets, 2 for their indices
    assert min(np.diff(market_wide)) >= 1.0 - 1e-9  # the second provider's first request too


def test_an_empty_ticker_list_is_a_failed_request_and_is_retried(pykrx, fake):
    fake.empty_first("get_market_ticker_list", 1)
    stocks = pykrx.fetch_session(RECORDED_SESSION).stocks
    assert len(fake.calls_of("get_market_ticker_list")) == 3  # KOSPI twice, KOSDAQ once
    assert set(stocks["market"]) == {"KOSPI", "KOSDAQ"}


def test_a_fetch_waits_for_its_market_wide_requests_only(pykrx, timer):
    pykrx.fetch_session(RECORDED_SESSION)
    # eight market-wide requests (OHLCV, fundamentals, ticker list, index x KOSPI, KOSDAQ) and
    # at most one for pykrx's name table: eight waits of 0.5 s at most, none per ticker
    assert sum(timer.sleeps) <= 8 * 0.5


def test_missing_credentials_are_one_line_naming_the_variables(monkeypatch, krx_calendar):
    monkeypatch.delenv("KRX_ID", raising=False)
    monkeypatch.delenv("KRX_PW", raising=False)
    monkeypatch.setitem(sys.modules, "pykrx", None)  # never the real package
    with pytest.raises(ProviderUnavailable) as raised:
        PykrxProvider(calendar=krx_calendar, clock=FixedClock(AFTER_EVERY_CLOSE))
    message = str(raised.value)
    assert "KRX_ID and KRX_PW" in message and "\n" not in message
    monkeypatch.setenv("KRX_ID", "member")
    with pytest.raises(ProviderUnavailable, match="needs KRX_PW in") as raised:
        import_pykrx_stock()
    assert "KRX_ID" not in str(raised.value)


def test_pykrx_not_installed_is_one_line_saying_how_to_install_it(monkeypatch):
    monkeypatch.setenv("KRX_ID", "member")
    monkeypatch.setenv("KRX_PW", "secret")
    monkeypatch.setitem(sys.modules, "pykrx", None)  # as if not installed, whatever the venv holds
    with pytest.raises(ProviderUnavailable) as raised:
        import_pykrx_stock()
    assert "pip install" in str(raised.value) and "\n" not in str(raised.value)


# --- simulated: the offline default ------------------------------------------------------


def simulated(calendar: MarketCalendar, **options: int) -> SimulatedProvider:
    return SimulatedProvider(calendar=calendar, clock=FixedClock(AFTER_EVERY_CLOSE), **options)


def krx_tick(prices: np.ndarray) -> np.ndarray:
    """The KRX tick by price, from DESIGN.md section 9 (written here, independently)."""
    return np.select(
        [prices < 2_000, prices < 5_000, prices < 20_000, prices < 50_000, prices < 200_000,
         prices < 500_000],
        [1, 5, 10, 50, 100, 500],
        default=1_000,
    )


@pytest.fixture(scope="module")
def year_2025(krx_calendar) -> list[MarketSnapshot]:
    provider = simulated(krx_calendar)
    sessions = krx_calendar.sessions(date(2025, 1, 1), date(2025, 12, 31))
    return [provider.fetch_session(session.date) for session in sessions]


def consecutive(snapshots: list[MarketSnapshot]):
    """(previous, today) price rows of every ticker listed on both sessions."""
    for before, after in zip(snapshots, snapshots[1:]):
        yield before.prices.merge(after.prices, on="ticker", suffixes=("_prev", ""))


def test_same_seed_and_date_give_identical_frames_in_any_order(calendar_cache_dir):
    d1, d2 = date(2026, 11, 18), date(2026, 11, 19)
    first = simulated(load_calendar(calendar_cache_dir))
    first.fetch_session(d2)
    later = first.fetch_session(d1)
    fresh = simulated(load_calendar(calendar_cache_dir))  # another calendar object: nothing shared
    assert fresh.market is not first.market
    alone = fresh.fetch_session(d1)
    assert_frame_equal(later.prices, alone.prices)
    assert_frame_equal(later.fundamentals, alone.fundamentals)
    assert_frame_equal(later.stocks, alone.stocks)


def test_a_different_seed_gives_a_different_market(krx_calendar):
    day = date(2026, 11, 19)
    a = simulated(krx_calendar, seed=42).fetch_session(day)
    b = simulated(krx_calendar, seed=7).fetch_session(day)
    assert set(a.prices["ticker"]) != set(b.prices["ticker"])
    assert not a.prices["close"].equals(b.prices["close"])


def test_the_default_universe_is_300_tickers_across_both_markets_some_alphanumeric(krx_calendar):
    universe = simulated(krx_calendar).market.universe
    tickers = [str(t) for t in universe.tickers]
    assert len(tickers) == len(set(tickers)) == 300
    assert all(TICKER.match(t) for t in tickers)
    alphanumeric = [t for t in tickers if not t.isdigit()]
    assert 1 <= len(alphanumeric) <= 30  # "a few"
    assert set(universe.markets) == {"KOSPI", "KOSDAQ"}


def test_the_universe_size_is_configurable(krx_calendar):
    assert len(simulated(krx_calendar, universe_size=40).market.universe.tickers) == 40


def test_every_price_is_on_the_krx_tick_grid(year_2025):
    for snapshot in year_2025:
        prices = snapshot.prices[OHLC].to_numpy()
        off_grid = prices % krx_tick(prices) != 0
        assert not off_grid.any(), f"{snapshot.trading_date}: {prices[off_grid.any(axis=1)]}"


def test_every_price_stays_within_30_percent_of_the_previous_close(year_2025):
    pairs = 0
    for both in consecutive(year_2025):
        previous = both["close_prev"].to_numpy()
        for column in OHLC:
            assert (np.abs(both[column].to_numpy() - previous) <= 0.30 * previous).all()
        pairs += len(both)
    assert pairs > 200 * 250


def test_change_pct_is_the_close_against_the_previous_close(year_2025):
    for both in consecutive(year_2025):
        expected = (both["close"] / both["close_prev"] - 1) * 100
        assert np.abs(both["change_pct"] - expected).max() <= 0.005 + 1e-9


def test_a_halted_stock_trades_nothing_at_the_previous_close(year_2025):
    halts = 0
    for both in consecutive(year_2025):
        halted = both[both["volume"] == 0]
        for column in OHLC:
            assert (halted[column] == halted["close_prev"]).all()
        assert (halted["value"] == 0).all()
        halts += len(halted)
    assert halts > 0


def test_stocks_are_listed_and_delisted_over_time(krx_calendar):
    provider = simulated(krx_calendar)
    in_2016 = set(provider.fetch_session(date(2016, 1, 4)).stocks["ticker"])
    in_2026 = set(provider.fetch_session(date(2026, 11, 19)).stocks["ticker"])
    assert in_2016 - in_2026, "nothing delisted"
    assert in_2026 - in_2016, "nothing listed"


def test_fundamentals_change_between_quarters_not_within_one(krx_calendar):
    provider = simulated(krx_calendar)

    def eps(day: date) -> pd.Series:
        return provider.fetch_session(day).fundamentals.set_index("ticker")["eps"]

    january, march, april = eps(date(2026, 1, 5)), eps(date(2026, 3, 31)), eps(date(2026, 4, 1))
    both = january.index.intersection(march.index)
    assert (january[both] == march[both]).all()
    both = march.index.intersection(april.index)
    changed = march[both] != april[both]
    assert changed.mean() > 0.9
    relative = ((april[both] - march[both]).abs() / march[both].abs()).median()
    assert relative < 0.10  # slowly: a few percent a quarter


def test_a_calendar_update_leaves_the_other_days_of_the_simulated_market_alone():
    from datetime import date as day_

    import numpy as np

    from services.data_collector.providers.simulated import SimulatedMarket

    weekdays = [d.date() for d in pd.bdate_range("2025-01-02", "2025-12-30")]
    base = SimulatedMarket(weekdays, seed=3, universe_size=200)
    closed = SimulatedMarket([d for d in weekdays if d != day_(2025, 6, 10)], seed=3, universe_size=200)
    longer = SimulatedMarket(weekdays + [d.date() for d in pd.bdate_range("2026-01-02", "2026-03-31")],
                             seed=3, universe_size=200)
    later = day_(2025, 9, 1)
    a = base.snapshot(base.index_of[later]).prices.set_index("ticker")
    b = closed.snapshot(closed.index_of[later]).prices.set_index("ticker")
    c = longer.snapshot(longer.index_of[later]).prices.set_index("ticker")
    pd.testing.assert_frame_equal(a, c)  # a longer calendar changes no past day
    # a new past closure only regroups that day's draw into the next session's move (a halt or
    # the daily limit on one of the two days can still make a difference)
    same = (a["close"] == b["close"]).mean()
    assert same >= 0.98
    assert np.array_equal(a.index, b.index)


def test_the_market_indices_closes_come_with_the_session(pykrx):
    # KRX's published closes of 2021-01-22: KOSPI 3,140.63, KOSDAQ 979.98
    indices = pykrx.fetch_session(RECORDED_SESSION).indices
    assert sorted(zip(indices["name"], indices["close"])) == [("KOSDAQ", 979.98), ("KOSPI", 3140.63)]


def test_an_index_krx_does_not_answer_for_is_left_out_and_the_session_kept(pykrx, fake):
    fake.empty_first("get_index_ohlcv", 3)  # every attempt at KOSPI's
    snapshot = pykrx.fetch_session(RECORDED_SESSION)
    assert snapshot.indices["name"].tolist() == ["KOSDAQ"]
    assert len(snapshot.prices) > 0


def test_a_collected_pykrx_session_comes_back_whole_from_stored_history(pykrx, krx_calendar, tmp_path):
    # the recorded 2021-01-22 through the collector into one database, then read back by the
    # stored provider (what a replay of real history collects from)
    from services.common.database import create_db_engine, make_session_factory, migrate
    from services.data_collector.collector import collect_session
    from services.data_collector.providers.stored import StoredHistoryProvider

    url = f"sqlite:///{tmp_path / 'history.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    clock = FixedClock(kst(2021, 1, 22, 16, 0))
    collect_session(RECORDED_SESSION, session_factory=make_session_factory(engine), provider=pykrx, now=clock.now)
    engine.dispose()
    stored = StoredHistoryProvider(url=url, shown_url=url, calendar=krx_calendar, clock=clock)
    replayed, original = stored.fetch_session(RECORDED_SESSION), pykrx.fetch_session(RECORDED_SESSION)
    assert stored.name == "stored(pykrx)"
    key = ["ticker"]
    columns = ["ticker", "open", "high", "low", "close", "volume", "value", "change_pct", "market_cap", "market"]
    assert replayed.prices[columns].sort_values(key).reset_index(drop=True).equals(
        original.prices[columns].sort_values(key).reset_index(drop=True).astype(replayed.prices[columns].dtypes))
    assert sorted(zip(replayed.indices["name"], replayed.indices["close"])) == [("KOSDAQ", 979.98),
                                                                              ("KOSPI", 3140.63)]
    assert set(replayed.stocks["ticker"]) == set(original.prices["ticker"])
