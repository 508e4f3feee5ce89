"""Financial indicators: hand-worked values, and no infinity for losses or missing data."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from services.indicator_calculator.financial import FINANCIAL_COLUMNS, compute_financials

DAY = date(2026, 11, 20)


def frames(rows: list[tuple[str, int, int, int, int, int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """rows: ticker, close, market_cap, eps, bps, dps."""
    prices = pd.DataFrame([(t, DAY, close, cap) for t, close, cap, *_ in rows],
                          columns=["ticker", "date", "close", "market_cap"])
    fundamentals = pd.DataFrame([(t, DAY, bps, eps, dps) for t, _, _, eps, bps, dps in rows],
                                columns=["ticker", "date", "bps", "eps", "dps"])
    return prices, fundamentals


def test_ratios_of_a_profitable_dividend_payer() -> None:
    # close 50,000, EPS 5,000, BPS 40,000, DPS 1,500
    result = compute_financials(*frames([("005930", 50_000, 300_000_000, 5_000, 40_000, 1_500)]))
    row = result.iloc[0]
    assert row["per"] == pytest.approx(10.0)          # 50,000 / 5,000
    assert row["pbr"] == pytest.approx(1.25)          # 50,000 / 40,000
    assert row["roe"] == pytest.approx(0.125)         # 5,000 / 40,000
    assert row["dividend_yield"] == pytest.approx(3.0)  # 1,500 / 50,000 x 100
    assert row["earnings_positive"] == 1.0
    assert row["market_cap_rank"] == 1


def test_a_loss_has_no_per_but_a_negative_roe() -> None:
    result = compute_financials(*frames([("000001", 10_000, 1, -500, 20_000, 0)]))
    row = result.iloc[0]
    assert np.isnan(row["per"])
    assert row["roe"] == pytest.approx(-0.025)        # -500 / 20,000
    assert row["earnings_positive"] == 0.0
    assert row["dividend_yield"] == 0.0


def test_missing_fundamentals_are_nan_never_infinite() -> None:
    # KRX reports 0 for what it does not know; a ticker may have no fundamentals row at all
    prices, fundamentals = frames([("000002", 8_000, 5, 0, 0, 0), ("000003", 9_000, 7, 100, 1_000, 0)])
    prices = pd.concat([prices, pd.DataFrame([("000004", DAY, 3_000, 9)], columns=prices.columns)])
    result = compute_financials(prices, fundamentals).set_index("ticker")
    assert result.loc["000002", ["per", "pbr", "roe", "eps", "bps", "earnings_positive"]].isna().all()
    assert result.loc["000004", ["per", "pbr", "roe", "earnings_positive"]].isna().all()
    numeric = result[FINANCIAL_COLUMNS].to_numpy(dtype=float)
    assert not np.isinf(numeric).any()


def test_market_cap_rank_is_per_date_largest_first() -> None:
    prices, fundamentals = frames([("A00001", 1_000, 300, 10, 100, 0), ("A00002", 1_000, 900, 10, 100, 0),
                                   ("A00003", 1_000, 300, 10, 100, 0)])
    result = compute_financials(prices, fundamentals).set_index("ticker")
    assert result["market_cap_rank"].to_dict() == {"A00001": 2, "A00002": 1, "A00003": 2}
