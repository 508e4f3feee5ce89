"""Corporate actions read from KRX's change against the base price (pure)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from services.data_collector.adjustments import adjustment_ratio, share_ratio


def test_samsung_electronics_50_for_1_split_is_read_from_its_first_day_after():
    # 2018-05-04: previous close 2,650,000 (2018-04-27), base price 53,000, close 51,900,
    # change -2.08% (KRX): 2,650,000 * 0.9792 / 51,900 = 49.998
    assert adjustment_ratio(2_650_000, 51_900, -2.08) == pytest.approx(49.998, abs=1e-3)
    assert share_ratio(2_650_000, 51_900, -2.08) == Fraction(50)


def test_an_ordinary_session_has_ratio_one_and_changes_no_holding():
    # 2021-01-22, Samsung Electronics: previous close 88,100, close 86,800, change -1.48%
    assert adjustment_ratio(88_100, 86_800, -1.48) == 1.0
    assert share_ratio(88_100, 86_800, -1.48) is None


def test_a_reverse_split_1_for_10_divides_the_shares():
    # previous close 500; base price 5,000; close 5,100 = +2.00%
    assert share_ratio(500, 5_100, 2.0) == Fraction(1, 10)


def test_a_rights_issue_adjusts_prices_but_no_holding():
    # previous close 10,000; base price 9,260 (ex-rights); close 9,260, change 0: ratio 1.0799
    assert adjustment_ratio(10_000, 9_260, 0.0) == pytest.approx(1.0799, abs=1e-4)
    assert share_ratio(10_000, 9_260, 0.0) is None


def test_a_missing_previous_close_is_an_ordinary_session():
    assert adjustment_ratio(0, 9_260, 0.0) == 1.0
