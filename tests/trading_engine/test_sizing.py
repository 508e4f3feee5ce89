"""Position sizing: fixed fraction, half-Kelly from the closed-trade history, and the caps."""

from __future__ import annotations

from datetime import date

import pytest

from services.trading_engine.fees import FeeSchedule
from services.trading_engine.sizing import Fraction, SizingRules, kelly_fraction, position_fraction, size_entries

NO_FEES = FeeSchedule(0.0, ((date(2000, 1, 1), 0.0),))
RULES = SizingRules(fraction_pct=5.0, max_position_pct=10.0, max_positions=3, kelly_min_trades=4)


def test_kelly_fraction_from_win_rate_and_win_loss_ratio() -> None:
    # 3 wins of +10%, 1 loss of -10%: W = 0.75, R = 1 -> f = 0.75 - 0.25 / 1 = 0.5
    assert kelly_fraction([0.1, 0.1, 0.1, -0.1]) == pytest.approx(0.5)
    # 2 wins of +20%, 2 losses of -10%: W = 0.5, R = 2 -> f = 0.5 - 0.5 / 2 = 0.25
    assert kelly_fraction([0.2, -0.1, 0.2, -0.1]) == pytest.approx(0.25)
    # 1 win of +5%, 3 losses of -10%: W = 0.25, R = 0.5 -> f = 0.25 - 0.75 / 0.5 = -1.25
    assert kelly_fraction([0.05, -0.1, -0.1, -0.1]) == pytest.approx(-1.25)


def test_fixed_fraction_until_enough_trades() -> None:
    assert position_fraction([0.1, 0.1, -0.1], RULES) == Fraction(0.05, "fixed")


def test_half_kelly_once_enough_trades_capped_by_max_position_size() -> None:
    # f = 0.25 -> half 0.125, capped at 10%
    assert position_fraction([0.2, -0.1, 0.2, -0.1], RULES) == Fraction(0.10, "half_kelly")
    # 3 wins of +10%, 2 losses of -10%: W = 0.6, R = 1 -> f = 0.2, half 0.1
    # with a 20% cap: 0.1
    wide = SizingRules(5.0, 20.0, 3, 4)
    assert position_fraction([0.1, 0.1, 0.1, -0.1, -0.1], wide).value == pytest.approx(0.1)


def test_negative_kelly_means_no_trade() -> None:
    fraction = position_fraction([0.05, -0.1, -0.1, -0.1], RULES)
    assert fraction == Fraction(0.0, "half_kelly")
    sized = size_entries([("A", 10_000)], equity=100_000_000, cash=100_000_000, open_positions=0,
                         fraction=fraction, rules=RULES, fees=NO_FEES)
    assert sized[0].quantity == 0 and "not positive" in sized[0].note


def test_entries_share_slots_and_cash_whole_shares_after_commission() -> None:
    fees = FeeSchedule(0.015, NO_FEES.tax_table)
    # equity 10,000,000 x 5% = 500,000 per position; at 30,000 KRW: 16 shares = 480,000 + 72 commission
    sized = size_entries([("A", 30_000), ("B", 30_000), ("C", 30_000), ("D", 30_000)], equity=10_000_000,
                         cash=1_000_000, open_positions=1, fraction=Fraction(0.05, "fixed"), rules=RULES, fees=fees)
    assert [(s.ticker, s.quantity) for s in sized] == [("A", 16), ("B", 16), ("C", 0), ("D", 0)]
    # after A and B 1,000,000 - 2 x 480,072 = 39,856 is left, but C has no slot (3 positions max)
    assert "MAX_POSITIONS" in sized[2].note


def test_cash_limits_the_last_entry() -> None:
    # budget 500,000, cash 100,000: 100,000 // 30,004.5 -> 3 shares (90,013.5 KRW with commission)
    fees = FeeSchedule(0.015, NO_FEES.tax_table)
    sized = size_entries([("A", 30_000)], equity=10_000_000, cash=100_000, open_positions=0,
                         fraction=Fraction(0.05, "fixed"), rules=RULES, fees=fees)
    assert sized[0].quantity == 3


def test_a_share_dearer_than_the_budget_is_not_bought() -> None:
    sized = size_entries([("A", 900_000)], equity=10_000_000, cash=10_000_000, open_positions=0,
                         fraction=Fraction(0.05, "fixed"), rules=RULES, fees=NO_FEES)
    assert sized[0].quantity == 0 and sized[0].note == "position budget below one share"
