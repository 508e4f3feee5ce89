"""Validation before storage, on small hand-built snapshots.

Whole-frame problems (empty, zero-filled) reject the date; row problems reject the
row, counted under its reason; a frame with no good price row rejects the date.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from services.data_collector.providers import MarketSnapshot
from services.data_collector.validation import InvalidSnapshot, validate_snapshot

DAY = date(2021, 1, 22)
GOOD = ["005930", "000660", "00104K"]


def price(ticker: str, **changes: Any) -> dict[str, Any]:
    """A sound price row: open 100, high 110, low 90, close 105."""
    return {"ticker": ticker, "date": DAY, "open": 100, "high": 110, "low": 90, "close": 105,
            "volume": 1_000, "value": 102_000, "change_pct": 1.0, "market_cap": 10**9,
            "market": "KOSPI"} | changes


def fundamental(ticker: str, **changes: Any) -> dict[str, Any]:
    return {"ticker": ticker, "date": DAY, "bps": 50_000, "per": 10.5, "pbr": 1.2, "eps": 5_000,
            "div": 2.0, "dps": 1_000} | changes


def stock(ticker: str, **changes: Any) -> dict[str, Any]:
    return {"ticker": ticker, "name": f"종목{ticker}", "market": "KOSPI"} | changes


def snapshot(prices: list[dict], fundamentals: list[dict] | None = None,
             stocks: list[dict] | None = None) -> MarketSnapshot:
    """Defaults: a sound fundamentals and stock row for each good ticker."""
    return MarketSnapshot(
        DAY,
        stocks=pd.DataFrame(stocks if stocks is not None else [stock(t) for t in GOOD]),
        prices=pd.DataFrame(prices),
        fundamentals=pd.DataFrame(fundamentals if fundamentals is not None
                                  else [fundamental(t) for t in GOOD]),
    )


def good_prices() -> list[dict]:
    return [price(t) for t in GOOD]


def test_a_sound_snapshot_is_kept_whole():
    result = validate_snapshot(snapshot(good_prices()))
    assert result.rejected == Counter() and result.rejected_rows == 0
    assert result.prices["ticker"].tolist() == GOOD
    assert result.fundamentals["ticker"].tolist() == GOOD
    assert result.stocks["ticker"].tolist() == GOOD
    first = result.prices.iloc[0]
    assert [first[c] for c in ("open", "high", "low", "close", "volume")] == [100, 110, 90, 105, 1_000]


# --- price rows ------------------------------------------------------------------------


@pytest.mark.parametrize("bad, reason", [
    pytest.param(price("5930"), "prices: bad ticker", id="ticker read as a number, leading zeros lost"),
    pytest.param(price("0059300"), "prices: bad ticker", id="seven-character ticker"),
    pytest.param(price("00104k"), "prices: bad ticker", id="lower-case ticker"),
    pytest.param(price(""), "prices: bad ticker", id="empty ticker"),
    pytest.param(price("035720", date=date(2021, 1, 21)), "prices: wrong date", id="another date"),
    pytest.param(price("035720", close=math.nan), "prices: NaN or infinite price", id="NaN close"),
    pytest.param(price("035720", open=None), "prices: NaN or infinite price", id="missing open"),
    pytest.param(price("035720", open=0), "prices: non-positive price", id="zero open"),
    pytest.param(price("035720", low=-5), "prices: non-positive price", id="negative low"),
    pytest.param(price("035720", high=95, low=96, open=95, close=96), "prices: high below low",
                 id="high below low"),
    pytest.param(price("035720", open=111), "prices: open or close outside high-low", id="open above high"),
    pytest.param(price("035720", close=89), "prices: open or close outside high-low", id="close below low"),
    pytest.param(price("035720", volume=-1), "prices: missing or negative volume", id="negative volume"),
    pytest.param(price("035720", value=math.nan), "prices: missing or negative volume",
                 id="missing traded value"),
])
def test_a_bad_price_row_is_dropped_and_counted_under_its_reason(bad, reason):
    result = validate_snapshot(snapshot(good_prices() + [bad]))
    assert result.rejected == Counter({reason: 1})
    assert result.prices["ticker"].tolist() == GOOD


def test_every_copy_of_a_duplicated_ticker_is_dropped():
    result = validate_snapshot(snapshot(good_prices() + [price("035720"), price("035720", close=106)]))
    assert result.rejected == Counter({"prices: duplicate ticker": 2})
    assert result.prices["ticker"].tolist() == GOOD


def test_a_row_with_several_faults_is_counted_once_under_its_first():
    bad = price("035720", date=date(2021, 1, 21), close=math.nan, volume=-1)
    result = validate_snapshot(snapshot(good_prices() + [bad]))
    assert result.rejected == Counter({"prices: wrong date": 1})
    assert result.rejected_rows == 1


def test_tickers_are_stripped_of_surrounding_blanks():
    result = validate_snapshot(snapshot([price(" 005930 "), price("000660"), price("00104K")]))
    assert result.prices["ticker"].tolist() == GOOD
    assert result.rejected == Counter()


def test_a_partly_bad_frame_keeps_its_good_rows_and_counts_the_rest_by_reason():
    prices = good_prices() + [
        price("035720", close=math.nan), price("035420", close=math.nan),
        price("051910", high=80),  # high below low
        price("068270", date=date(2021, 1, 25)),
    ]
    result = validate_snapshot(snapshot(prices))
    assert result.prices["ticker"].tolist() == GOOD
    assert result.rejected == Counter({"prices: NaN or infinite price": 2, "prices: high below low": 1,
                                       "prices: wrong date": 1})
    assert result.rejected_rows == 4


def test_a_frame_with_no_good_row_stores_nothing_and_names_the_reasons():
    prices = [price("005930", close=math.nan), price("000660", open=math.nan),
              price("00104K", date=date(2021, 1, 21))]
    with pytest.raises(InvalidSnapshot) as raised:
        validate_snapshot(snapshot(prices))
    message = str(raised.value)
    assert "2021-01-22" in message and "every price row was rejected" in message
    assert "prices: NaN or infinite price: 2" in message and "prices: wrong date: 1" in message


def test_a_stock_with_no_trade_is_kept_and_marked_halted():
    prices = good_prices() + [price("000210", open=83_000, high=83_000, low=83_000, close=83_000,
                                    volume=0, value=0, change_pct=0.0)]
    result = validate_snapshot(snapshot(prices))
    assert result.rejected == Counter()
    assert dict(zip(result.prices["ticker"], result.prices["halted"])) == {
        "005930": False, "000660": False, "00104K": False, "000210": True}


# --- whole frames ----------------------------------------------------------------------


def test_an_empty_price_frame_rejects_the_date():
    empty = pd.DataFrame(columns=list(price("005930")))
    with pytest.raises(InvalidSnapshot, match="2021-01-22: empty price frame"):
        validate_snapshot(MarketSnapshot(DAY, pd.DataFrame([stock("005930")]), empty,
                                         pd.DataFrame([fundamental("005930")])))


def test_a_zero_filled_frame_rejects_the_date():
    # KRX answers a holiday with every listed stock and every number 0
    zeros = [price(t, open=0, high=0, low=0, close=0, volume=0, value=0, change_pct=0.0, market_cap=0)
             for t in GOOD]
    with pytest.raises(InvalidSnapshot, match="zero-filled"):
        validate_snapshot(snapshot(zeros))


def test_a_few_zero_rows_are_not_a_zero_filled_frame():
    zero = price("035720", open=0, high=0, low=0, close=0, volume=0, value=0)
    result = validate_snapshot(snapshot(good_prices() + [zero]))
    assert result.rejected == Counter({"prices: non-positive price": 1})
    assert result.prices["ticker"].tolist() == GOOD


def test_a_frame_missing_a_column_is_rejected_naming_it():
    prices = pd.DataFrame(good_prices()).drop(columns="market_cap")
    broken = MarketSnapshot(DAY, pd.DataFrame([stock(t) for t in GOOD]), prices,
                            pd.DataFrame([fundamental(t) for t in GOOD]))
    with pytest.raises(InvalidSnapshot, match=r"prices frame lacks columns \['market_cap'\]"):
        validate_snapshot(broken)


# --- fundamentals and stocks -----------------------------------------------------------


def test_nan_or_infinite_fundamentals_are_dropped():
    fundamentals = [fundamental(t) for t in GOOD] + [
        fundamental("035720", per=math.nan), fundamental("035420", pbr=np.inf),
        fundamental("051910", eps=-np.inf),
    ]
    result = validate_snapshot(snapshot(good_prices(), fundamentals=fundamentals))
    assert result.rejected == Counter({"fundamentals: NaN or infinite value": 3})
    assert result.fundamentals["ticker"].tolist() == GOOD
    assert result.prices["ticker"].tolist() == GOOD  # prices are not touched


def test_zero_fundamentals_are_kept_as_krx_reports_not_available_that_way():
    fundamentals = [fundamental(t) for t in GOOD[:2]] + [
        fundamental("00104K", bps=0, per=0.0, pbr=0.0, eps=0, div=2.33, dps=1_900)]
    result = validate_snapshot(snapshot(good_prices(), fundamentals=fundamentals))
    assert result.rejected == Counter()
    assert result.fundamentals["ticker"].tolist() == GOOD


def test_fundamental_rows_get_the_same_ticker_date_and_duplicate_checks():
    fundamentals = [fundamental(t) for t in GOOD] + [
        fundamental("5930"), fundamental("035720", date=date(2021, 1, 21)),
        fundamental("035420"), fundamental("035420"),
    ]
    result = validate_snapshot(snapshot(good_prices(), fundamentals=fundamentals))
    assert result.rejected == Counter({"fundamentals: bad ticker": 1, "fundamentals: wrong date": 1,
                                       "fundamentals: duplicate ticker": 2})
    assert result.fundamentals["ticker"].tolist() == GOOD


def test_stocks_without_a_name_are_dropped():
    stocks = [stock(t) for t in GOOD] + [
        stock("035720", name=None), stock("035420", name=""), stock("051910", name="   ")]
    result = validate_snapshot(snapshot(good_prices(), stocks=stocks))
    assert result.rejected == Counter({"stocks: missing name": 3})
    assert result.stocks["ticker"].tolist() == GOOD


def test_stocks_with_a_bad_or_duplicated_ticker_are_dropped():
    stocks = [stock(t) for t in GOOD] + [stock("5930"), stock("035720"), stock("035720", name="다른이름")]
    result = validate_snapshot(snapshot(good_prices(), stocks=stocks))
    assert result.rejected == Counter({"stocks: bad ticker": 1, "stocks: duplicate ticker": 2})
    assert result.stocks["ticker"].tolist() == GOOD


def test_counts_from_every_frame_add_up_in_one_summary():
    result = validate_snapshot(snapshot(
        good_prices() + [price("035720", close=math.nan)],
        fundamentals=[fundamental(t) for t in GOOD] + [fundamental("035720", per=math.nan)],
        stocks=[stock(t) for t in GOOD] + [stock("035720", name="")],
    ))
    assert result.rejected == Counter({"prices: NaN or infinite price": 1, "fundamentals: NaN or infinite value": 1,
                                       "stocks: missing name": 1})
    assert result.rejected_rows == 3


def test_infinite_or_fractional_prices_are_rejected_rows_not_a_crash() -> None:
    import math

    from services.data_collector.providers import MarketSnapshot
    from services.data_collector.validation import validate_snapshot

    day = date(2026, 11, 20)
    prices = pd.DataFrame({
        "ticker": ["000001", "000002", "000003", "000004"], "date": [day] * 4,
        "open": [100.0, math.inf, 100.5, 100.0], "high": [110.0, 110.0, 110.0, 110.0],
        "low": [90.0, 90.0, 90.0, 90.0], "close": [105.0, 105.0, 105.0, 105.0],
        "volume": [10.0, 10.0, 10.0, math.inf], "value": [1000.0] * 4, "change_pct": [0.0] * 4,
        "market_cap": [1e9] * 4, "market": ["KOSPI"] * 4,
    })
    empty_fundamentals = pd.DataFrame(columns=["ticker", "date", "bps", "per", "pbr", "eps", "div", "dps"])
    stocks = pd.DataFrame({"ticker": ["000001"], "name": ["A"], "market": ["KOSPI"]})
    validated = validate_snapshot(MarketSnapshot(day, stocks, prices, empty_fundamentals))
    assert list(validated.prices["ticker"]) == ["000001"]
    assert dict(validated.rejected) == {"prices: NaN or infinite price": 1, "prices: non-integer price": 1,
                                        "prices: missing or negative volume": 1}
