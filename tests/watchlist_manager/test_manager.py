"""update_watchlist, the watchlist_update job and watchlist_view on SQLite and PostgreSQL,
over three sessions of hand-written prices and indicators.

The market (closes in KRW, traded values in billions of KRW; F is always below the
1,000 KRW minimum price, and would otherwise lead on traded value):

    ticker  name     11-18          11-19          11-20
    000010  Alpha    10,000  50     11,000  50     12,000  50
    000020  Bravo    10,000  40      9,000  40      9,900  halted
    000030  Charlie  10,000  30      9,500  15      9,000  45
    000040  Delta    10,000  20     10,500  35     10,000  35
    000050  Echo     10,000  10     10,000  10     10,000  10
    000060  Foxtrot     800 100        800 100        800 100

With ``LIQUIDITY_TOP3`` (weight on liquidity only, size 3) the score is the percentile
rank of traded value among the eligible tickers, so the lists are:

    11-18: A 5/5, B 4/5, C 3/5      (5 eligible)
    11-19: A 5/5, B 4/5, D 3/5      D enters, C exits
    11-20: A 4/4, C 3/4, D 2/4      C re-enters, B (halted) exits
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, text

from services.common.clock import FixedClock
from services.common.job_api import JobContext, Outcome
from services.data_collector.models import DailyPrice, Stock
from services.data_collector.providers import factory
from services.indicator_calculator.models import CalculatedSession, FinancialIndicator, TechnicalIndicator
from services.watchlist_manager import manager
from services.watchlist_manager.manager import update_watchlist, watchlist_view
from services.watchlist_manager.models import WatchlistEntry
from services.watchlist_manager.scoring import WatchlistRules
from tests.conftest import make_settings

KST = ZoneInfo("Asia/Seoul")
D18, D19, D20 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)
A, B, C, D, E, F = "000010", "000020", "000030", "000040", "000050", "000060"
NAMES = {A: "Alpha", B: "Bravo", C: "Charlie", D: "Delta", E: "Echo", F: "Foxtrot"}
HALTED = None  # a halted session: close carried from the previous one, no trade

#: (close, traded value in billions of KRW, or HALTED) per date and ticker
MARKET = {
    D18: {A: (10_000, 50), B: (10_000, 40), C: (10_000, 30), D: (10_000, 20), E: (10_000, 10), F: (800, 100)},
    D19: {A: (11_000, 50), B: (9_000, 40), C: (9_500, 15), D: (10_500, 35), E: (10_000, 10), F: (800, 100)},
    D20: {A: (12_000, 50), B: (9_900, HALTED), C: (9_000, 45), D: (10_000, 35), E: (10_000, 10),
          F: (800, 100)},
}
#: the same indicators every day: (sma_20, sma_60, sma_120, macd_hist, atr_14); rsi_14 is 60
TECHNICAL = {
    A: (9_000.0, 8_000.0, 9_500.0, 50.0, 500.0),
    B: (10_500.0, 8_000.0, None, 40.0, 400.0),
    C: (9_000.0, 8_000.0, None, 30.0, 300.0),
    D: (9_000.0, 8_000.0, None, 20.0, 200.0),
    E: (9_000.0, 8_000.0, None, 10.0, 100.0),
    F: (700.0, 650.0, 600.0, 5.0, 10.0),
}
#: (per, pbr); Delta has no financial row at all
FINANCIAL = {A: (10.0, 1.0), B: (20.0, 1.0), C: (-5.0, 1.0), E: (5.0, 1.0), F: (8.0, 1.0)}

LIQUIDITY_TOP3 = WatchlistRules(size=3, weights={"liquidity": 1.0})
CALMEST2 = WatchlistRules(size=2, weights={"volatility": 1.0})


def market_rows() -> dict[Any, list[dict[str, Any]]]:
    prices, technical, financial = [], [], []
    for day, tickers in MARKET.items():
        for ticker, (close, billions) in tickers.items():
            value = 0 if billions is HALTED else billions * 1_000_000_000
            prices.append({"date": day, "ticker": ticker, "open": close, "high": close, "low": close,
                           "close": close, "volume": value // close, "value": value, "change_pct": 0.0,
                           "market_cap": close * 1_000_000, "market": "KOSPI", "halted": billions is HALTED})
            sma_20, sma_60, sma_120, macd_hist, atr_14 = TECHNICAL[ticker]
            technical.append({"date": day, "ticker": ticker, "sma_20": sma_20, "sma_60": sma_60,
                              "sma_120": sma_120, "rsi_14": 60.0, "macd_hist": macd_hist, "atr_14": atr_14})
            if ticker in FINANCIAL:
                per, pbr = FINANCIAL[ticker]
                financial.append({"date": day, "ticker": ticker, "per": per, "pbr": pbr})
    stocks = [{"ticker": ticker, "name": name, "market": "KOSPI", "updated_on": D20}
              for ticker, name in NAMES.items()]
    return {Stock: stocks, DailyPrice: prices, TechnicalIndicator: technical, FinancialIndicator: financial}


def insert_market(connection: Any) -> None:
    """The market above, written straight into the tables the watchlist reads."""
    for model, rows in market_rows().items():
        connection.execute(insert(model), rows)


@pytest.fixture
def market(session_factory: Any) -> Any:
    with session_factory.begin() as session:
        insert_market(session.connection())
    return session_factory


def update(session_factory: Any, user: str, day: date, rules: WatchlistRules = LIQUIDITY_TOP3) -> Any:
    with session_factory.begin() as session:
        return update_watchlist(session.connection(), user, day, rules)


def stored(session_factory: Any, user: str, day: date) -> list[tuple[Any, ...]]:
    """(rank, ticker, score, close, entered_on, entry_close) of a stored list."""
    with session_factory() as session:
        return [(e.rank, e.ticker, pytest.approx(e.score), e.close, e.entered_on, e.entry_close)
                for e in session.scalars(select(WatchlistEntry).where(
                    WatchlistEntry.user_id == user, WatchlistEntry.date == day).order_by(WatchlistEntry.rank))]


def dump(session_factory: Any) -> list[tuple[Any, ...]]:
    with session_factory() as session:
        return [tuple(getattr(e, c.name) for c in WatchlistEntry.__table__.columns)
                for e in session.scalars(select(WatchlistEntry).order_by(
                    WatchlistEntry.user_id, WatchlistEntry.date, WatchlistEntry.rank))]


# --- update_watchlist ------------------------------------------------------------------------


def test_the_first_list_stores_rank_score_factors_close_and_entry(market):
    result = update(market, "alice", D18)
    assert (result.size, result.eligible, result.entries, result.exits) == (3, 5, [A, B, C], [])
    with market() as session:
        rows = {e.ticker: e for e in session.scalars(select(WatchlistEntry))}
    assert sorted(rows) == [A, B, C]
    # 11-18, the five eligible tickers all close at 10,000 and have rsi 60 (RSI part 1):
    #   trend: A above sma_20/60/120 and 9,000 > 8,000: 4/4; B below sma_20 10,500, sma_120
    #     missing: 2/4; C sma_120 missing: 3/4
    #   momentum: 1/2 + 1/2 rank of macd_hist (50, 40, 30, 20, 10): A 1, B 0.9, C 0.8
    #   volatility: 1 - rank of atr (500 ... 100): A 0, B 0.2, C 0.4
    #   liquidity: rank of value (50, 40, 30, 20, 10 bn): A 1, B 0.8, C 0.6
    #   value: earnings yields A 0.1, B 0.05, C 0 (loss), D 0 (no row), E 0.2 -> ranks 0.8, 0.6,
    #     0.3, 0.3, 1; book yields 1 except D's 0 -> A, B, C, E 0.7, D 0.2;
    #     A 0.75, B 0.65, C 0.5
    expected = {A: (1, 1.0, 1.0, 1.0, 0.0, 1.0, 0.75), B: (2, 0.8, 0.5, 0.9, 0.2, 0.8, 0.65),
                C: (3, 0.6, 0.75, 0.8, 0.4, 0.6, 0.5)}
    for ticker, (rank, score, trend, momentum, volatility, liquidity, value) in expected.items():
        row = rows[ticker]
        assert (row.user_id, row.date, row.rank) == ("alice", D18, rank)
        assert [row.score, row.trend, row.momentum, row.volatility, row.liquidity, row.value] == pytest.approx(
            [score, trend, momentum, volatility, liquidity, value])
        assert (row.close, row.entered_on, row.entry_close) == (10_000, D18, 10_000)


def test_a_ticker_that_stays_keeps_its_entry_and_entries_and_exits_follow_the_days(market):
    update(market, "alice", D18)
    day19 = update(market, "alice", D19)
    assert (day19.entries, day19.exits) == ([D], [C])
    assert stored(market, "alice", D19) == [
        (1, A, 1.0, 11_000, D18, 10_000),
        (2, B, 0.8, 9_000, D18, 10_000),
        (3, D, 0.6, 10_500, D19, 10_500),
    ]
    day20 = update(market, "alice", D20)
    assert (day20.size, day20.eligible, day20.entries, day20.exits) == (3, 4, [C], [B])
    assert stored(market, "alice", D20) == [
        (1, A, 1.0, 12_000, D18, 10_000),
        (2, C, 0.75, 9_000, D20, 9_000),   # re-entered: a new entry, not its 11-18 one
        (3, D, 0.5, 10_000, D19, 10_500),
    ]
    assert stored(market, "alice", D18)[0] == (1, A, 1.0, 10_000, D18, 10_000)  # earlier lists untouched


def test_updating_the_same_day_twice_leaves_identical_rows(market):
    update(market, "alice", D18)
    first = update(market, "alice", D19)
    rows = dump(market)
    again = update(market, "alice", D19)
    assert dump(market) == rows
    assert len(rows) == 6
    assert again == first


def test_a_new_rule_for_the_same_day_replaces_the_whole_list(market):
    update(market, "alice", D18)
    update(market, "alice", D18, WatchlistRules(size=2, weights={"liquidity": 1.0}))
    assert [row[1] for row in stored(market, "alice", D18)] == [A, B]  # C is not left behind


def test_two_users_have_independent_lists(market):
    bob18 = update(market, "bob", D18, CALMEST2)
    update(market, "alice", D18)
    alice19 = update(market, "alice", D19)
    bob19 = update(market, "bob", D19, CALMEST2)
    # bob, 11-18: 1 - rank of atr / close (all closes 10,000): E 1 - 1/5 = 0.8, D 1 - 2/5 = 0.6
    assert (bob18.entries, bob18.exits) == ([D, E], [])
    # alice's 11-19 follows her own 11-18 list, not bob's (which holds D and E)
    assert (alice19.entries, alice19.exits) == ([D], [C])
    # bob, 11-19: atr / close E 0.0100, D 0.0190, C 0.0316, B 0.0444, A 0.0455 -> E 0.8, D 0.6;
    # he keeps D from 11-18 though alice's D entered on 11-19
    assert (bob19.entries, bob19.exits) == ([], [])
    assert stored(market, "bob", D19) == [(1, E, 0.8, 10_000, D18, 10_000), (2, D, 0.6, 10_500, D18, 10_000)]
    assert [row[1] for row in stored(market, "alice", D19)] == [A, B, D]


def test_a_day_without_eligible_tickers_stores_nothing_and_everything_exits(market):
    update(market, "alice", D18)
    result = update(market, "alice", D19, WatchlistRules(size=3, min_price=1_000_000,
                                                          weights={"liquidity": 1.0}))
    assert (result.size, result.eligible, result.entries, result.exits) == (0, 0, [], [A, B, C])
    assert stored(market, "alice", D19) == []


def test_a_ticker_back_after_an_empty_day_is_a_new_entry(market):
    update(market, "alice", D18)                                   # A, B, C
    update(market, "alice", D19, WatchlistRules(size=3, min_price=1_000_000,
                                                weights={"liquidity": 1.0}))  # empty: A, B, C exit
    result = update(market, "alice", D20)                          # A, C, D: all three enter again
    assert (result.entries, result.exits) == ([A, C, D], [])
    assert [(row[1], row[4]) for row in stored(market, "alice", D20)] == [(A, D20), (C, D20), (D, D20)]


# --- the view --------------------------------------------------------------------------------


def test_the_view_shows_days_on_the_list_returns_and_exits(market, krx_calendar):
    for day in (D18, D19, D20):
        update(market, "alice", day)
    view = watchlist_view(market, krx_calendar, "alice", D20)
    assert (view["date"], view["user_id"], view["previous_date"]) == ("2026-11-20", "alice", "2026-11-19")
    brief = [(e["rank"], e["ticker"], e["name"], e["close"], e["entered_on"], e["days_on_list"],
              e["return_since_entry"]) for e in view["entries"]]
    assert brief == [
        (1, A, "Alpha", 12_000, "2026-11-18", 3, pytest.approx(0.2)),        # 12,000 / 10,000 - 1; 18, 19, 20
        (2, C, "Charlie", 9_000, "2026-11-20", 1, 0.0),                      # entered today
        (3, D, "Delta", 10_000, "2026-11-19", 2, pytest.approx(-0.047619)),  # 10,000 / 10,500 - 1
    ]
    first = view["entries"][0]
    assert {k: first[k] for k in ("score", "trend", "liquidity")} == {"score": 1.0, "trend": 1.0, "liquidity": 1.0}
    # Bravo, halted on 11-20 at 9,900, left: 9,900 / 10,000 - 1
    assert view["exits"] == [{"ticker": B, "name": "Bravo", "entered_on": "2026-11-18", "entry_close": 10_000,
                              "close": 9_900, "return_since_entry": pytest.approx(-0.01)}]


def test_days_on_the_list_count_sessions_not_calendar_days(market, krx_calendar):
    # a list for 2026-11-23 (Monday) with A entered on 11-18 (Wednesday): the sessions
    # 18, 19, 20 and 23 are 4; the weekend does not count (calendar days would be 6)
    with market.begin() as session:
        session.add(WatchlistEntry(user_id="carol", date=date(2026, 11, 23), ticker=A, rank=1, score=0.9,
                                   trend=1.0, momentum=1.0, volatility=0.5, liquidity=1.0, value=0.75,
                                   close=12_500, entered_on=D18, entry_close=10_000))
    view = watchlist_view(market, krx_calendar, "carol", date(2026, 11, 23))
    [entry] = view["entries"]
    assert (entry["days_on_list"], entry["return_since_entry"]) == (4, 0.25)
    assert (view["previous_date"], view["exits"]) == (None, [])


def test_an_exit_is_measured_to_the_close_of_the_day_viewed(market, krx_calendar):
    update(market, "alice", D18)
    update(market, "alice", D19)
    view = watchlist_view(market, krx_calendar, "alice", D19)
    # Charlie left on 11-19 at 9,500 after entering on 11-18 at 10,000
    assert view["exits"] == [{"ticker": C, "name": "Charlie", "entered_on": "2026-11-18", "entry_close": 10_000,
                              "close": 9_500, "return_since_entry": pytest.approx(-0.05)}]


# --- the job ---------------------------------------------------------------------------------


def job_context(session_factory: Any, calendar: Any, day: date, **settings: str) -> JobContext:
    clock = FixedClock(datetime(day.year, day.month, day.day, 19, 0, tzinfo=KST))
    return JobContext(job_name="watchlist_update", trading_date=day, scheduled_for=clock.now(),
                      settings=make_settings(**{"user_id": "alice", **settings}), session_factory=session_factory,
                      clock=clock, calendar=calendar, origin="manual")


def test_the_job_scores_a_date_whose_indicators_are_calculated(market, krx_calendar):
    with market.begin() as session:
        session.add(CalculatedSession(date=D18, tickers=6, lookback_start=D18,
                                      calculated_at=datetime(2026, 11, 18, 9, 0, tzinfo=UTC)))
    ctx = job_context(market, krx_calendar, D18, watchlist_size="3", watchlist_weights="liquidity=1")
    result = manager.run(ctx)
    assert (result.status, result.summary) == (Outcome.SUCCESS, {"size": 3, "eligible": 5, "entries": 3,
                                                                  "exits": 0})
    assert [row[1] for row in stored(market, "alice", D18)] == [A, B, C]


def test_the_job_only_reads_indicators_and_is_skipped_without_them(session_factory, krx_calendar, monkeypatch):
    def never(*args: Any) -> Any:
        raise AssertionError("the watchlist job collected market data (the registry's needs run that job)")

    monkeypatch.setattr(factory, "make_provider", never)
    ctx = job_context(session_factory, krx_calendar, D20, data_provider="simulated")
    result = manager.run(ctx)
    assert result.status is Outcome.SKIPPED
    assert result.reason == "input missing: no indicators for 2026-11-20"
    assert dump(session_factory) == []


def test_the_probe_sees_a_users_stored_list_even_an_empty_one(market, krx_calendar):
    ctx = job_context(market, krx_calendar, D18)
    assert not manager.watchlist_stored(ctx)
    with market.begin() as session:
        update_watchlist(session.connection(), "alice", D18, WatchlistRules(size=3, weights={"liquidity": 1.0},
                                                                            min_price=10**9))
    assert manager.watchlist_stored(ctx)
    assert not manager.watchlist_stored(job_context(market, krx_calendar, D18, user_id="bob"))


def test_a_day_filled_in_late_gives_the_lists_of_an_in_order_run(market):
    """Running 11-18, 11-20 and then the missed 11-19 ends as running them in order."""
    from services.watchlist_manager.manager import later_runs

    session_factory, rules = market, LIQUIDITY_TOP3

    def lists() -> list[tuple[Any, ...]]:
        with session_factory() as session:
            return sorted(tuple(row) for row in session.execute(text(
                "SELECT date, ticker, rank, entered_on, entry_close FROM watchlist_entries")))

    for day in (date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)):
        with session_factory.begin() as session:
            update_watchlist(session.connection(), "u", day, rules)
    in_order = lists()
    with session_factory.begin() as session:
        session.execute(text("DELETE FROM watchlist_entries"))
        session.execute(text("DELETE FROM watchlist_runs"))
    for day in (date(2026, 11, 18), date(2026, 11, 20), date(2026, 11, 19)):
        with session_factory.begin() as session:
            update_watchlist(session.connection(), "u", day, rules)
            for later in later_runs(session.connection(), "u", day):
                update_watchlist(session.connection(), "u", later, rules)
    assert lists() == in_order
