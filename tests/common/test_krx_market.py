"""KRX tick sizes and the daily price band (DESIGN.md section 9), at every band edge.

Every expected value below is worked out by hand from the rules:
ticks since 2023-01-25: below 2,000 KRW 1; below 5,000 5; below 20,000 10; below 50,000 50;
below 200,000 100; below 500,000 500; else 1,000. Band: +-30% of the previous close,
the lower limit rounded up and the upper limit rounded down onto the tick grid.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from services.common.krx_market import (
    grid_on,
    price_limits,
    price_limits_array,
    round_to_tick,
    round_to_ticks,
    tick_size,
    ticks_of,
)
from services.common.market_rules import OutsideMarketRules

TICKS = [
    (1, 1), (1_999, 1),
    (2_000, 5), (4_995, 5),
    (5_000, 10), (19_990, 10),
    (20_000, 50), (49_950, 50),
    (50_000, 100), (199_900, 100),
    (200_000, 500), (499_500, 500),
    (500_000, 1_000), (1_000_000, 1_000), (3_000_000, 1_000),
]


@pytest.mark.parametrize("price, tick", TICKS)
def test_tick_size_at_each_band_edge(price, tick):
    assert tick_size(price) == tick


def test_ticks_of_gives_the_same_ticks_for_an_array():
    prices = np.array([price for price, _ in TICKS], dtype=float)
    assert ticks_of(prices).tolist() == [tick for _, tick in TICKS]


def test_a_fraction_below_a_bound_still_has_the_finer_tick():
    assert tick_size(1_999.99) == 1 and tick_size(4_999.5) == 5 and tick_size(499_999.9) == 500


# (price, down, up, nearest): halves round up
ROUNDING = [
    (1_999, 1_999, 1_999, 1_999),  # on the 1-won grid
    (1_999.4, 1_999, 2_000, 1_999),
    (1_999.5, 1_999, 2_000, 2_000),  # rounds up into the 5-won band, onto its first tick
    (2_000, 2_000, 2_000, 2_000),
    (2_001, 2_000, 2_005, 2_000),
    (2_002.5, 2_000, 2_005, 2_005),
    (4_995, 4_995, 4_995, 4_995),
    (4_997, 4_995, 5_000, 4_995),
    (4_998, 4_995, 5_000, 5_000),
    (5_000, 5_000, 5_000, 5_000),
    (5_004, 5_000, 5_010, 5_000),
    (5_005, 5_000, 5_010, 5_010),
    (19_990, 19_990, 19_990, 19_990),
    (19_994, 19_990, 20_000, 19_990),
    (19_995, 19_990, 20_000, 20_000),
    (20_000, 20_000, 20_000, 20_000),
    (20_020, 20_000, 20_050, 20_000),
    (20_025, 20_000, 20_050, 20_050),
    (49_950, 49_950, 49_950, 49_950),
    (49_974, 49_950, 50_000, 49_950),
    (49_975, 49_950, 50_000, 50_000),
    (50_000, 50_000, 50_000, 50_000),
    (50_049, 50_000, 50_100, 50_000),
    (50_050, 50_000, 50_100, 50_100),
    (199_900, 199_900, 199_900, 199_900),
    (199_949, 199_900, 200_000, 199_900),
    (199_950, 199_900, 200_000, 200_000),
    (200_000, 200_000, 200_000, 200_000),
    (200_249, 200_000, 200_500, 200_000),
    (200_250, 200_000, 200_500, 200_500),
    (499_500, 499_500, 499_500, 499_500),
    (499_749, 499_500, 500_000, 499_500),
    (499_750, 499_500, 500_000, 500_000),
    (500_000, 500_000, 500_000, 500_000),
    (500_499, 500_000, 501_000, 500_000),
    (500_500, 500_000, 501_000, 501_000),
    (1_000_000, 1_000_000, 1_000_000, 1_000_000),
    (1_000_400, 1_000_000, 1_001_000, 1_000_000),
]


@pytest.mark.parametrize("price, down, up, nearest", ROUNDING)
def test_round_to_tick_down_up_and_nearest(price, down, up, nearest):
    assert round_to_tick(price, "down") == down
    assert round_to_tick(price, "up") == up
    assert round_to_tick(price, "nearest") == nearest
    assert round_to_tick(price) == nearest


@pytest.mark.parametrize("direction, column", [("down", 1), ("up", 2), ("nearest", 3)])
def test_round_to_ticks_gives_the_same_prices_for_an_array(direction, column):
    prices = np.array([case[0] for case in ROUNDING], dtype=float)
    expected = [case[column] for case in ROUNDING]
    rounded = round_to_ticks(prices, direction)
    assert rounded.dtype == np.int64
    assert rounded.tolist() == expected


def test_rounded_prices_are_whole_won_integers():
    assert type(round_to_tick(4_997.3, "up")) is int


# previous close -> (lowest, highest) allowed today
LIMITS = [
    (1_999, (1_400, 2_595)),  # 1,399.3 up -> 1,400; 2,598.7 on the 5-won grid down -> 2,595
    (2_000, (1_400, 2_600)),
    (4_995, (3_500, 6_490)),  # 3,496.5 up on 5 -> 3,500; 6,493.5 down on 10 -> 6,490
    (5_000, (3_500, 6_500)),
    (19_990, (14_000, 25_950)),  # 13,993 up on 10 -> 14,000; 25,987 down on 50 -> 25,950
    (20_000, (14_000, 26_000)),
    (49_950, (35_000, 64_900)),  # 34,965 up on 50 -> 35,000; 64,935 down on 100 -> 64,900
    (50_000, (35_000, 65_000)),
    (199_900, (140_000, 259_500)),  # 139,930 up on 100 -> 140,000; 259,870 down on 500 -> 259,500
    (200_000, (140_000, 260_000)),
    (499_500, (350_000, 649_000)),  # 349,650 up on 500 -> 350,000; 649,350 down on 1,000 -> 649,000
    (500_000, (350_000, 650_000)),
    (1_000_000, (700_000, 1_300_000)),
]


@pytest.mark.parametrize("previous_close, limits", LIMITS)
def test_price_limits_at_each_band_edge(previous_close, limits):
    assert price_limits(previous_close) == limits


def test_price_limits_array_gives_the_same_limits():
    lower, upper = price_limits_array(np.array([close for close, _ in LIMITS], dtype=float))
    assert list(zip(lower.tolist(), upper.tolist())) == [limits for _, limits in LIMITS]


def price_grid() -> np.ndarray:
    """Every quarter-won within 60 KRW of each band bound, plus a coarse sweep to 1.2 M."""
    bounds = [2_000, 5_000, 20_000, 50_000, 200_000, 500_000, 1_000_000]
    near = [np.arange(bound - 60, bound + 60, 0.25) for bound in bounds]
    return np.concatenate(near + [np.arange(1, 1_200_000, 997.3)])


def test_vectorized_and_scalar_forms_agree_on_a_grid_of_prices():
    prices = price_grid()
    assert ticks_of(prices).tolist() == [tick_size(p) for p in prices]
    for direction in ("down", "up", "nearest"):
        assert round_to_ticks(prices, direction).tolist() == [round_to_tick(p, direction) for p in prices]
    closes = np.unique(round_to_ticks(prices[prices >= 1]))
    lower, upper = price_limits_array(closes)
    assert list(zip(lower.tolist(), upper.tolist())) == [price_limits(c) for c in closes]


def krx_tick(prices: np.ndarray) -> np.ndarray:
    """The tick by price, written from the rule above (not the code under test)."""
    return np.select([prices < 2_000, prices < 5_000, prices < 20_000, prices < 50_000,
                      prices < 200_000, prices < 500_000], [1, 5, 10, 50, 100, 500], default=1_000)


def test_the_limits_are_the_outermost_ticks_inside_the_30_percent_band():
    closes = np.unique(round_to_ticks(price_grid()[price_grid() >= 10]))
    lower, upper = price_limits_array(closes)
    assert (lower % krx_tick(lower) == 0).all() and (upper % krx_tick(upper) == 0).all()
    assert (lower >= 0.7 * closes - 1e-6).all() and (upper <= 1.3 * closes + 1e-6).all()
    # one tick further out is outside the band
    assert (lower - krx_tick(lower - 0.5) < 0.7 * closes).all()
    assert (upper + krx_tick(upper) > 1.3 * closes).all()


@pytest.mark.parametrize(("day", "market", "price", "expected"), [
    (date(2021, 1, 22), "KOSPI", 150_050, 150_500),  # KOSPI 2011 table: 100,000-500,000 in 500s
    (date(2021, 1, 22), "KOSDAQ", 150_050, 150_100),  # KOSDAQ 2011 table: 100s from 50,000 up
    (date(2024, 1, 22), "KOSPI", 150_050, 150_100),  # the shared table of 2023-01-25: 50,000-200,000 in 100s
])
def test_a_limit_goes_on_the_grid_of_its_market_and_date(day, market, price, expected):
    assert grid_on(day, market).round_to_tick(price, "up") == expected


def test_the_price_band_was_15_percent_before_2015_06_15():
    assert grid_on(date(2014, 6, 2), "KOSPI").price_limits(10_000) == (8_500, 11_500)
    assert grid_on(date(2015, 6, 15), "KOSPI").price_limits(10_000) == (7_000, 13_000)


def test_a_date_before_the_tables_is_refused_in_one_line():
    with pytest.raises(OutsideMarketRules, match="2010-12-30 is outside the KRX market rules"):
        grid_on(date(2010, 12, 30), "KOSDAQ")
