"""The watchlist score (services/watchlist_manager/scoring.py) on small hand-built frames.

Every expected value is worked by hand in a comment; none comes from the code under test.
A percentile rank here is pandas' ``rank(pct=True, method="average")``: position among
the n ranked values (ties share the mean of their positions) divided by n.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from services.common.setting_values import parse_weight_pairs
from services.watchlist_manager.scoring import (
    DEFAULT_WEIGHTS,
    FACTORS,
    WatchlistRules,
    eligibility,
    factor_scores,
    score_universe,
    select_watchlist,
)

NAN = float("nan")

#: An eligible ticker under the default rules (close >= 1,000, value >= 1e9, warm-up done).
BASE = {"ticker": "000000", "close": 10_000.0, "value": 5e9, "halted": False, "sma_20": 9_000.0,
        "sma_60": 8_000.0, "sma_120": 7_000.0, "rsi_14": 60.0, "macd_hist": 0.0, "atr_14": 100.0,
        "per": 10.0, "pbr": 1.0}
ALL_FACTORS = ", ".join(FACTORS)


def universe(*rows: dict) -> pd.DataFrame:
    """One row per ticker: BASE with the given changes; tickers 000001, 000002, ... unless given."""
    return pd.DataFrame([{**BASE, "ticker": f"{index:06d}", **row} for index, row in enumerate(rows, 1)])


def only(factor: str) -> WatchlistRules:
    return WatchlistRules(weights={factor: 1.0})


# --- each factor ------------------------------------------------------------------------------


def test_trend_is_the_share_of_the_four_conditions_with_a_missing_average_not_holding():
    frame = universe(
        # close 10,000 above all three; sma_20 9,000 > sma_60 8,000: 4 of 4
        {"sma_20": 9_000.0, "sma_60": 8_000.0, "sma_120": 7_000.0},
        # below all three; sma_20 11,000 < sma_60 12,000: 0 of 4
        {"sma_20": 11_000.0, "sma_60": 12_000.0, "sma_120": 13_000.0},
        # above sma_20 and sma_60, below sma_120 11,000; sma_20 9,000 < sma_60 9,500: 2 of 4
        {"sma_20": 9_000.0, "sma_60": 9_500.0, "sma_120": 11_000.0},
        # sma_120 missing: close > sma_120 does not hold: 3 of 4
        {"sma_20": 9_000.0, "sma_60": 8_000.0, "sma_120": NAN},
        # sma_60 and sma_120 missing: only close > sma_20 holds (sma_20 > NaN does not): 1 of 4
        {"sma_20": 9_000.0, "sma_60": NAN, "sma_120": NAN},
    )
    assert factor_scores(frame)["trend"].tolist() == [1.0, 0.0, 0.5, 0.75, 0.25]


@pytest.mark.parametrize("rsi, part", [
    (60.0, 1.0),                 # the peak
    (50.0, 0.75), (70.0, 0.75),  # 1 - 10/40
    (40.0, 0.5), (80.0, 0.5),    # 1 - 20/40
    (20.0, 0.0), (100.0, 0.0),   # 1 - 40/40
    (10.0, 0.0), (0.0, 0.0),     # beyond: clipped at 0, not negative
    (NAN, 0.0),                  # unknown RSI earns nothing
])
def test_the_rsi_half_of_momentum_peaks_at_60_and_reaches_0_at_20_and_100(rsi, part):
    # alone in the frame, macd_hist / close has rank 1 / 1 = 1: momentum = part / 2 + 1 / 2
    momentum = factor_scores(universe({"rsi_14": rsi}))["momentum"].iloc[0]
    assert momentum == pytest.approx(0.5 * part + 0.5)


def test_the_macd_half_of_momentum_ranks_macd_hist_relative_to_the_close():
    frame = universe(
        {"macd_hist": 100.0, "close": 10_000.0},  # 0.01  -> 2nd of 3 -> 2/3
        {"macd_hist": 50.0, "close": 1_000.0},    # 0.05  -> 3rd of 3 -> 1 (smaller hist, bigger per won)
        {"macd_hist": -20.0, "close": 2_000.0},   # -0.01 -> 1st of 3 -> 1/3
        {"macd_hist": NAN},                       # unknown -> rank 0
    )
    # rsi 60 everywhere: momentum = 1/2 + rank/2
    assert factor_scores(frame)["momentum"].tolist() == pytest.approx([5 / 6, 1.0, 2 / 3, 0.5])


def test_volatility_is_one_minus_the_rank_of_atr_over_close():
    frame = universe(
        {"atr_14": 100.0, "close": 10_000.0},  # 0.01 -> rank 1/4 -> 3/4
        {"atr_14": 300.0, "close": 10_000.0},  # 0.03 -> rank 3/4 -> 1/4
        {"atr_14": 100.0, "close": 5_000.0},   # 0.02 -> rank 2/4 -> 1/2
        {"atr_14": 50.0, "close": 1_000.0},    # 0.05 -> rank 4/4 -> 0
    )
    assert factor_scores(frame)["volatility"].tolist() == pytest.approx([0.75, 0.25, 0.5, 0.0])


def test_liquidity_is_the_rank_of_traded_value():
    frame = universe({"value": 2e9}, {"value": 8e9}, {"value": 4e9}, {"value": 4e9})
    # 2e9 1st -> 1/4; 4e9 tied 2nd and 3rd -> 2.5/4; 8e9 4th -> 1
    assert factor_scores(frame)["liquidity"].tolist() == pytest.approx([0.25, 1.0, 0.625, 0.625])


def test_value_scores_a_loss_making_per_as_an_earnings_yield_of_zero():
    frame = universe(
        {"per": 10.0, "pbr": 2.0},   # earnings yield 0.1, book yield 0.5
        {"per": 5.0, "pbr": 0.5},    # 0.2, 2
        {"per": -3.0, "pbr": 1.0},   # a loss: 0 (not -0.33), 1
        {"per": 0.0, "pbr": 1.0},    # 0, 1
        {"per": NAN, "pbr": NAN},    # unknown: 0, 0
    )
    # earnings yields [0.1, 0.2, 0, 0, 0]: the three zeros share positions 1-3 -> 2/5 = 0.4,
    #   0.1 -> 4/5 = 0.8, 0.2 -> 5/5 = 1
    # book yields [0.5, 2, 1, 1, 0]: 0 -> 1/5 = 0.2, 0.5 -> 2/5 = 0.4, the two 1s share 3-4 -> 0.7, 2 -> 1
    # value = half of each: 0.6, 1.0, 0.55, 0.55, 0.3
    assert factor_scores(frame)["value"].tolist() == pytest.approx([0.6, 1.0, 0.55, 0.55, 0.3])


def test_ranks_are_taken_among_the_eligible_tickers_only():
    frame = universe(
        {"ticker": "000001", "value": 3e9},
        {"ticker": "000002", "value": 2e9},
        {"ticker": "000003", "value": 1e9},
        {"ticker": "000004", "value": 9e9, "halted": True},   # left out: would rank first
        {"ticker": "000005", "value": 8e9, "close": 500.0},   # left out: price below 1,000
    )
    scored = score_universe(frame, only("liquidity"))
    # among the 3 eligible: 3e9 -> 3/3, 2e9 -> 2/3, 1e9 -> 1/3 (among all 5 it would be 3/5 ...)
    assert scored["ticker"].tolist() == ["000001", "000002", "000003"]
    assert scored["liquidity"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert scored["score"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])


# --- filters --------------------------------------------------------------------------------


FILTER_CASES = [
    ({"ticker": "000001"}, ""),
    ({"ticker": "000002", "halted": True}, "halted"),
    ({"ticker": "000003", "close": 999.0}, "price below the minimum"),
    ({"ticker": "000004", "close": 1_000.0}, ""),  # the minimum itself passes
    ({"ticker": "000005", "value": 999_999_999.0}, "traded value below the minimum"),
    ({"ticker": "000006", "value": 1_000_000_000.0}, ""),
    ({"ticker": "000007", "sma_20": NAN}, "indicators in warm-up"),
    ({"ticker": "000008", "rsi_14": NAN}, "indicators in warm-up"),
    ({"ticker": "000009", "atr_14": NAN}, "indicators in warm-up"),
    ({"ticker": "000010", "sma_60": NAN, "sma_120": NAN, "macd_hist": NAN}, ""),  # not required
    ({"ticker": "000011", "halted": True, "close": 500.0, "value": 0.0}, "halted"),  # the first reason
    ({"ticker": "000012", "close": 500.0, "value": 0.0}, "price below the minimum"),
]


def test_each_filter_gives_its_reason():
    frame = universe(*(row for row, _ in FILTER_CASES))
    rules = WatchlistRules(min_price=1_000, min_value=1_000_000_000)
    assert dict(zip(frame["ticker"], eligibility(frame, rules))) == {
        row["ticker"]: reason for row, reason in FILTER_CASES}


def test_only_tickers_without_a_reason_are_scored():
    frame = universe(*(row for row, _ in FILTER_CASES))
    scored = score_universe(frame, WatchlistRules(min_price=1_000, min_value=1_000_000_000))
    assert sorted(scored["ticker"]) == ["000001", "000004", "000006", "000010"]


def test_the_minimums_come_from_the_rules():
    frame = universe({"close": 999.0, "value": 10.0})
    assert eligibility(frame, WatchlistRules(min_price=0, min_value=0)).tolist() == [""]
    assert eligibility(frame, WatchlistRules(min_price=0, min_value=11)).tolist() == [
        "traded value below the minimum"]


def test_no_eligible_ticker_gives_an_empty_list_with_the_columns():
    scored = score_universe(universe({"halted": True}), WatchlistRules())
    assert scored.empty
    assert list(scored.columns) == ["ticker", "close", "score", "rank", *FACTORS]


def test_a_missing_column_is_named():
    with pytest.raises(ValueError, match=r"scoring needs columns \['pbr'\]"):
        score_universe(universe({}).drop(columns="pbr"), WatchlistRules())


# --- weights, ranking and size -------------------------------------------------------------


#: Four eligible tickers whose factors all differ from one another's order.
VARIED = universe(
    {"value": 2e9, "atr_14": 300.0, "sma_20": 11_000.0, "macd_hist": 10.0, "per": 8.0, "rsi_14": 45.0},
    {"value": 4e9, "atr_14": 100.0, "sma_120": 12_000.0, "macd_hist": -5.0, "per": -1.0},
    {"value": 3e9, "atr_14": 200.0, "sma_60": 9_500.0, "macd_hist": 30.0, "pbr": 0.5, "rsi_14": 75.0},
    {"value": 1e9, "atr_14": 400.0, "macd_hist": 20.0, "per": 4.0, "pbr": 3.0, "rsi_14": 58.0},
)


@pytest.mark.parametrize("factor", FACTORS)
def test_a_single_non_zero_weight_makes_the_score_that_factor(factor):
    weights = {name: 0.0 for name in FACTORS} | {factor: 0.4}
    scored = score_universe(VARIED, WatchlistRules(weights=weights))
    assert scored["score"].tolist() == pytest.approx(scored[factor].tolist())
    assert scored[factor].is_monotonic_decreasing


def test_weights_are_normalised_by_their_sum():
    frame = universe(
        {"ticker": "000001", "value": 2e9},  # trend 4/4 = 1; liquidity 1/2
        {"ticker": "000002", "value": 4e9,  # trend 0/4 (below every average, sma_20 < sma_60); liquidity 2/2
         "sma_20": 11_000.0, "sma_60": 12_000.0, "sma_120": 13_000.0},
    )
    scored = score_universe(frame, WatchlistRules(weights={"trend": 3.0, "liquidity": 1.0}))
    # 000001: (3 * 1 + 1 * 0.5) / 4 = 0.875; 000002: (3 * 0 + 1 * 1) / 4 = 0.25
    assert scored[["ticker", "score", "rank"]].values.tolist() == [["000001", 0.875, 1], ["000002", 0.25, 2]]
    doubled = score_universe(frame, WatchlistRules(weights={"trend": 6.0, "liquidity": 2.0}))
    assert doubled["score"].tolist() == pytest.approx([0.875, 0.25])


def test_ranks_follow_the_score_and_ties_go_to_the_lower_ticker():
    frame = universe(
        {"ticker": "000300", "value": 2e9},
        {"ticker": "000100", "value": 2e9},
        {"ticker": "000900", "value": 5e9},
        {"ticker": "000200", "value": 2e9},
    )
    scored = score_universe(frame, only("liquidity"))
    # 5e9 -> 4/4; the three 2e9 share positions 1-3 -> 2/4, ordered by ticker
    assert scored[["ticker", "score", "rank"]].values.tolist() == [
        ["000900", 1.0, 1], ["000100", 0.5, 2], ["000200", 0.5, 3], ["000300", 0.5, 4]]


def test_the_watchlist_is_the_top_n():
    frame = universe(*({"value": value * 1e9} for value in (2, 7, 5, 3, 6)))
    top = select_watchlist(frame, WatchlistRules(size=3, weights={"liquidity": 1.0}))
    assert top["ticker"].tolist() == ["000002", "000005", "000003"]  # 7e9, 6e9, 5e9
    assert top["rank"].tolist() == [1, 2, 3]
    everyone = select_watchlist(frame, WatchlistRules(size=20, weights={"liquidity": 1.0}))
    assert len(everyone) == 5


# --- the weights setting and WatchlistRules ------------------------------------------------------


@pytest.mark.parametrize("text, weights", [
    ("trend=0.3,momentum=0.25,volatility=0.15,liquidity=0.15,value=0.15", DEFAULT_WEIGHTS),
    (" trend = 1 , value=0 ,", {"trend": 1.0, "value": 0.0}),
    ("liquidity=2", {"liquidity": 2.0}),
    ("momentum=.5,volatility=1e-1", {"momentum": 0.5, "volatility": 0.1}),
])
def test_the_weights_setting_accepts(text, weights):
    assert parse_weight_pairs(text, FACTORS) == weights


@pytest.mark.parametrize("text, message", [
    ("bogus=1", f"expected factor=weight pairs of {ALL_FACTORS}"),
    ("Trend=1", f"expected factor=weight pairs of {ALL_FACTORS}"),
    ("trend", f"expected factor=weight pairs of {ALL_FACTORS}"),
    ("trend=", f"expected factor=weight pairs of {ALL_FACTORS}"),
    ("trend=abc", "expected a number for trend"),
    ("trend=1,value=-0.1", "expected a finite weight of 0 or more for value"),
    ("trend=nan", "expected a finite weight of 0 or more for trend"),
    ("", f"expected factor=weight pairs of {ALL_FACTORS} with a positive, finite sum"),
    (" , ", f"expected factor=weight pairs of {ALL_FACTORS} with a positive, finite sum"),
    ("trend=0,value=0", f"expected factor=weight pairs of {ALL_FACTORS} with a positive, finite sum"),
])
def test_the_weights_setting_rejects_with_a_message(text, message):
    with pytest.raises(ValueError) as caught:
        parse_weight_pairs(text, FACTORS)
    assert str(caught.value) == message


@pytest.mark.parametrize("text", ["trend=inf", "trend=1,value=1e999"])
def test_the_weights_setting_rejects_an_infinite_weight(text):
    with pytest.raises(ValueError):
        parse_weight_pairs(text, FACTORS)


def test_the_default_rules_use_the_documented_weights():
    rules = WatchlistRules()
    assert (rules.size, rules.min_price, rules.min_value) == (20, 1_000, 1_000_000_000)
    assert rules.weights == {"trend": 0.30, "momentum": 0.25, "volatility": 0.15, "liquidity": 0.15,
                             "value": 0.15}


@pytest.mark.parametrize("weights", [
    {"trend": 1.0, "bogus": 1.0},    # unknown factor
    {"trend": 1.0, "value": -0.5},  # negative
    {"trend": 0.0, "value": 0.0},   # all zero
    {},                             # none
])
def test_rules_reject_unknown_negative_and_all_zero_weights(weights):
    with pytest.raises(ValueError, match=f"expected non-negative weights of {ALL_FACTORS}"):
        WatchlistRules(weights=weights)


@pytest.mark.parametrize("weight", [math.nan, math.inf])
def test_rules_reject_a_non_finite_weight(weight):
    with pytest.raises(ValueError):
        WatchlistRules(weights={"trend": 1.0, "value": weight})


def test_factor_ranks_are_pandas_percentile_ranks_with_ties_infinities_and_gaps():
    """The liquidity factor is the percentile rank of the traded value, as pandas'
    ``rank(pct=True, method="average")`` gives it (NaN: 0)."""
    values = [3e9, 1e9, math.inf, 3e9, NAN, 2e9, 3e9, -math.inf, 0.0, 1e9]
    frame = universe(*({"value": value} for value in values))
    expected = pd.Series(values).rank(pct=True, method="average").fillna(0.0).tolist()
    assert factor_scores(frame)["liquidity"].tolist() == expected
