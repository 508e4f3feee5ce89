"""The dated KRX market rules (services/common/krx_market_rules.csv): answers from the
exchange's and the tax law's published tables, by market and date."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from services.common import krx_market
from services.common.market_rules import RULES_FILE, OutsideMarketRules, market_rules, read_rules


@pytest.mark.parametrize("day, market, price, tick", [
    (date(2012, 3, 5), "KOSPI", 150_000, 500),  # 100,000-500,000: 500 on KOSPI
    (date(2012, 3, 5), "KOSDAQ", 150_000, 100),  # 50,000 and above: 100 on KOSDAQ
    (date(2012, 3, 5), "KOSPI", 999, 1),
    (date(2012, 3, 5), "KOSDAQ", 4_995, 5),
    (date(2023, 1, 24), "KOSPI", 1_500, 5),  # the last day of the old tables
    (date(2023, 1, 25), "KOSPI", 1_500, 1),  # the shared table of 2023-01-25
    (date(2023, 1, 25), "KOSDAQ", 150_000, 100),
    (date(2026, 11, 20), "KOSDAQ", 700_000, 1_000),
])
def test_the_tick_size_is_the_table_of_the_day_and_market(day: date, market: str, price: int, tick: int) -> None:
    assert market_rules().on(day, market).tick(price) == tick


@pytest.mark.parametrize("day, band", [(date(2015, 6, 12), 15.0), (date(2015, 6, 15), 30.0)])
def test_the_price_band_widened_on_2015_06_15(day: date, band: float) -> None:
    assert market_rules().on(day, "KOSPI").price_band_pct == market_rules().on(day, "KOSDAQ").price_band_pct == band


@pytest.mark.parametrize("day, market, securities, rural", [
    (date(2018, 5, 2), "KOSPI", 0.15, 0.15),
    (date(2018, 5, 2), "KOSDAQ", 0.30, 0.0),
    (date(2019, 6, 3), "KOSPI", 0.10, 0.15),
    (date(2025, 6, 2), "KOSPI", 0.0, 0.15),  # only the rural special tax in 2025
    (date(2025, 6, 2), "KOSDAQ", 0.15, 0.0),
    (date(2026, 11, 20), "KOSPI", 0.05, 0.15),
])
def test_the_sell_taxes_by_market_and_date(day: date, market: str, securities: float, rural: float) -> None:
    rules = market_rules().on(day, market)
    assert (rules.securities_tax_pct, rules.rural_tax_pct) == (securities, rural)
    assert rules.sell_tax_pct == round(securities + rural, 6)


def test_both_markets_pay_the_same_sell_tax_on_every_date() -> None:
    assert market_rules().sell_tax_schedule() == (
        (date(2000, 1, 1), 0.3), (date(2019, 6, 3), 0.25), (date(2021, 1, 1), 0.23), (date(2023, 1, 1), 0.2),
        (date(2024, 1, 1), 0.18), (date(2025, 1, 1), 0.15), (date(2026, 1, 1), 0.2))


def test_a_date_outside_the_tables_is_refused_in_one_line() -> None:
    with pytest.raises(OutsideMarketRules) as refused:
        market_rules().on(date(2010, 12, 31), "KOSDAQ")
    assert str(refused.value) == ("2010-12-31 is outside the KRX market rules: the tick table of KOSDAQ is known "
                                  "from 2011-01-03 on (services/common/krx_market_rules.csv)")
    with pytest.raises(ValueError, match="market 'KONEX'; expected one of KOSPI, KOSDAQ"):
        market_rules().on(date(2024, 1, 2), "KONEX")


def test_every_row_names_its_source_and_a_bad_row_is_named(tmp_path: Path) -> None:
    assert all(row.source for row in market_rules().rows)
    broken = tmp_path / "rules.csv"
    broken.write_text("rule,market,since,value,source\nprice_band,ALL,2015-06-15,30,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="rules.csv, row 2: every row names its source"):
        read_rules(broken)
    broken.write_text("rule,market,since,value,source\nprice_limit,ALL,2015-06-15,30,KRX\n", encoding="utf-8")
    with pytest.raises(ValueError, match="row 2: rule 'price_limit'; expected one of tick_table, price_band"):
        read_rules(broken)


def test_the_rules_in_force_today_are_the_files_latest() -> None:
    assert RULES_FILE.name == "krx_market_rules.csv"
    assert (krx_market.TICK_TABLE_SINCE, krx_market.PRICE_LIMIT_SINCE, krx_market.PRICE_LIMIT) == (
        date(2023, 1, 25), date(2015, 6, 15), 0.30)
    assert krx_market.tick_size(150_000) == 100 and krx_market.tick_size(1_999) == 1
