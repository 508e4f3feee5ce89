"""Fees (DESIGN.md section 9): commission per side floored to whole KRW, the sell tax
by trade date from a dated table in settings, and how many whole shares cash buys.

Every expected amount is worked out by hand in the comments, never by the code under
test."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trading_engine.fees import FeeSchedule, NoTaxRate
from tests.conftest import make_settings

#: The default sell-tax table as DESIGN.md section 9 and the settings' help state it.
#: the sell tax (securities transaction tax and, on KOSPI, the rural special tax) as the
#: tax law set it: 0.30% in both markets until the 2019 cut, then cut year by year
DEFAULT_TAX_TABLE = (
    (date(2000, 1, 1), 0.30),
    (date(2019, 6, 3), 0.25),
    (date(2021, 1, 1), 0.23),
    (date(2023, 1, 1), 0.20),
    (date(2024, 1, 1), 0.18),
    (date(2025, 1, 1), 0.15),
    (date(2026, 1, 1), 0.20),
)


@pytest.fixture
def fees() -> FeeSchedule:
    return FeeSchedule.from_settings(make_settings())


# --- commission ------------------------------------------------------------------------------------


def test_default_settings_give_a_commission_of_0_015_percent_and_the_dated_tax_table(fees: FeeSchedule) -> None:
    assert fees.commission_pct == 0.015
    assert fees.tax_table == DEFAULT_TAX_TABLE


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (10_000_000, 1_500),  # 10,000,000 x 0.015% = 1,500 exactly
        (99_999, 14),  # 99,999 x 0.00015 = 14.99985 -> floored to 14
        (100_000, 15),  # 15 exactly
        (6_667, 1),  # 1.00005 -> 1
        (6_666, 0),  # 0.9999 -> 0: a small trade pays no commission
        (123_456_789, 18_518),  # 18,518.51835 -> 18,518
        (0, 0),
    ],
)
def test_commission_is_0_015_percent_floored_to_whole_krw(fees: FeeSchedule, amount: int, expected: int) -> None:
    assert fees.commission(amount) == expected


def test_commission_percent_comes_from_settings() -> None:
    fees = FeeSchedule.from_settings(make_settings(commission_pct="0.1"))
    # 1,234,567 x 0.1% = 1,234.567 -> 1,234
    assert fees.commission(1_234_567) == 1_234


def test_commission_keeps_every_decimal_of_the_percent_setting() -> None:
    # the setting accepts any percentage from 0 up to 5; e.g. 0.0140527 (fees quoted to 7 decimals)
    fees = FeeSchedule.from_settings(make_settings(commission_pct="0.0140527"))
    # 100,000,000 x 0.0140527 / 100 = 14,052.7 -> 14,052
    assert fees.commission(100_000_000) == 14_052


# --- sell tax by trade date --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trade_date", "percent", "tax_on_10_million"),
    [
        (date(2024, 6, 3), 0.18, 18_000),  # 2024: 0.18%
        (date(2024, 12, 30), 0.18, 18_000),  # the last session of 2024
        (date(2025, 1, 2), 0.15, 15_000),  # the first session of 2025
        (date(2025, 3, 4), 0.15, 15_000),  # 2025: 0.15%
        (date(2025, 12, 30), 0.15, 15_000),  # the last session of 2025
        (date(2026, 1, 1), 0.20, 20_000),  # the boundary day itself takes the new rate
        (date(2026, 1, 2), 0.20, 20_000),  # from 2026-01-01: 0.20%
        (date(2019, 6, 3), 0.25, 25_000),  # the table's first day
    ],
)
def test_sell_tax_rate_depends_on_the_trade_date(fees: FeeSchedule, trade_date: date, percent: float,
                                                 tax_on_10_million: int) -> None:
    assert fees.sell_tax_pct(trade_date) == percent
    assert fees.sell_tax(10_000_000, trade_date) == tax_on_10_million


@pytest.mark.parametrize(
    ("amount", "trade_date", "expected"),
    [
        (99_999, date(2025, 3, 4), 149),  # 99,999 x 0.15% = 149.9985 -> 149
        (1_234_567, date(2024, 6, 3), 2_222),  # x 0.18% = 2,222.2206 -> 2,222
        (1_234_567, date(2026, 1, 2), 2_469),  # x 0.20% = 2,469.134 -> 2,469
        (666, date(2025, 3, 4), 0),  # 0.999 -> 0
        (0, date(2025, 3, 4), 0),
    ],
)
def test_sell_tax_is_floored_to_whole_krw(fees: FeeSchedule, amount: int, trade_date: date, expected: int) -> None:
    assert fees.sell_tax(amount, trade_date) == expected


def test_a_trade_date_before_the_first_rate_raises_no_tax_rate(fees: FeeSchedule) -> None:
    with pytest.raises(NoTaxRate, match="1999-12-31: the sell-tax schedule starts 2000-01-01"):
        fees.sell_tax(1_000_000, date(1999, 12, 31))
    assert fees.sell_tax(1_000_000, date(2019, 6, 2)) == 3_000  # 0.30% the day before the 2019 cut
    given = FeeSchedule.from_settings(make_settings(sell_tax_schedule="2019-06-03=0.25"))
    with pytest.raises(NoTaxRate):
        given.sell_tax_pct(date(2015, 1, 2))


def test_a_custom_tax_schedule_from_settings_applies_from_its_date_on() -> None:
    fees = FeeSchedule.from_settings(make_settings(sell_tax_schedule="2020-01-01=0.3"))
    assert fees.tax_table == ((date(2020, 1, 1), 0.3),)
    assert fees.commission_pct == 0.015  # untouched default
    # 1,000,000 x 0.3% = 3,000, the same on its first day and years later
    assert fees.sell_tax(1_000_000, date(2020, 1, 1)) == 3_000
    assert fees.sell_tax(1_000_000, date(2026, 6, 1)) == 3_000
    with pytest.raises(NoTaxRate, match="starts 2020-01-01"):
        fees.sell_tax(1_000_000, date(2019, 12, 31))


def test_a_custom_schedule_given_out_of_order_is_sorted_by_date() -> None:
    fees = FeeSchedule.from_settings(make_settings(sell_tax_schedule="2026-01-01=0.2,2025-01-01=0.15"))
    assert fees.sell_tax(1_000_000, date(2025, 12, 30)) == 1_500  # 0.15%
    assert fees.sell_tax(1_000_000, date(2026, 1, 2)) == 2_000  # 0.20%


# --- buy cost and affordable quantity -----------------------------------------------------------------


def test_buy_cost_is_the_amount_plus_its_floored_commission(fees: FeeSchedule) -> None:
    # 76 x 13,000 = 988,000; commission 148.2 -> 148
    assert fees.buy_cost(76, 13_000) == 988_148


@pytest.mark.parametrize(
    ("cash", "price", "expected"),
    [
        # 100 x 10,000 = 1,000,000 + commission 150 = 1,000,150 > 1,000,000;
        # 99 x 10,000 = 990,000 + 148 (148.5 floored) = 990,148 fits
        (1_000_000, 10_000, 99),
        (1_000_150, 10_000, 100),  # exactly the cost of 100 shares
        (1_000_149, 10_000, 99),  # one won short of it
        (6_666, 6_666, 1),  # 6,666 x 0.00015 = 0.9999 -> no commission: one share exactly
        (6_667, 6_667, 0),  # 6,667 + 1 commission > 6,667
        (999, 1_000, 0),
        (0, 1_000, 0),
        (1_000_000, 0, 0),  # no price, no shares
        (-5, 1_000, 0),
    ],
)
def test_affordable_quantity_examples(fees: FeeSchedule, cash: int, price: int, expected: int) -> None:
    assert fees.affordable_quantity(cash, price) == expected


def _hand_buy_cost(quantity: int, price: int, commission_millionths: int) -> int:
    """Amount plus the commission floored: ``commission_millionths`` is the percent x 10,000."""
    amount = quantity * price
    return amount + amount * commission_millionths // 1_000_000


@settings(max_examples=300, deadline=None, database=None)
@given(cash=st.integers(0, 10_000_000_000), price=st.integers(1, 3_000_000),
       commission_millionths=st.sampled_from([0, 1, 150, 1_500, 3_333, 49_999]))
def test_affordable_quantity_never_exceeds_cash_and_one_more_share_would(
        cash: int, price: int, commission_millionths: int) -> None:
    fees = FeeSchedule(commission_millionths / 10_000, DEFAULT_TAX_TABLE)
    quantity = fees.affordable_quantity(cash, price)
    assert quantity >= 0
    assert _hand_buy_cost(quantity, price, commission_millionths) <= cash
    assert _hand_buy_cost(quantity + 1, price, commission_millionths) > cash
