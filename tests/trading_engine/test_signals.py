"""Entry and exit signals from hand-written watchlist rows and positions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from services.trading_engine.signals import SignalRules, entry_signals, exit_signals, intraday_exits
from tests.conftest import make_settings

RULES = SignalRules(entry_conditions=(("trend", ">=", 0.75), ("momentum", ">=", 0.5), ("rsi_14", "<", 70.0)))


def candidate(ticker: str, *, rank: int, score: float, trend: float = 1.0, momentum: float = 0.8,
              rsi: float = 60.0, close: float = 10_000.0, halted: bool = False) -> dict[str, object]:
    return {"ticker": ticker, "rank": rank, "score": score, "trend": trend, "momentum": momentum,
            "volatility": 0.5, "liquidity": 0.5, "value": 0.5, "close": close, "halted": halted,
            "rsi_14": rsi, "macd_hist": 1.0, "volume_ratio_20": 1.0}


def test_default_entry_rules_come_from_settings() -> None:
    rules = SignalRules.from_settings(make_settings())
    assert rules.entry_conditions == (("trend", ">=", 0.75), ("momentum", ">=", 0.5), ("rsi_14", "<", 70.0))
    assert (rules.stop_loss_pct, rules.take_profit_pct, rules.trailing_stop_pct) == (5.0, 15.0, 8.0)


def test_entry_needs_every_rule_and_is_ordered_by_watchlist_score() -> None:
    frame = pd.DataFrame([
        candidate("000010", rank=3, score=0.70),
        candidate("000020", rank=1, score=0.90),
        candidate("000030", rank=2, score=0.80, trend=0.5),    # trend fails
        candidate("000040", rank=4, score=0.60, rsi=75.0),     # overbought
        candidate("000050", rank=5, score=0.55, momentum=0.49),
    ])
    signals = entry_signals(frame, held=set(), rules=RULES)
    assert signals["ticker"].tolist() == ["000020", "000010"]
    assert signals["strength"].tolist() == [0.9, 0.7]
    assert signals["kind"].unique().tolist() == ["entry"]
    assert signals["reference_price"].tolist() == [10_000, 10_000]
    assert signals["reason"].iloc[0].startswith("watchlist rank 1 (score 0.900): trend 1>=0.75")


def test_no_entry_for_a_held_halted_or_unpriced_ticker() -> None:
    frame = pd.DataFrame([
        candidate("000010", rank=1, score=0.9),
        candidate("000020", rank=2, score=0.8, halted=True),
        candidate("000030", rank=3, score=0.7, close=math.nan),
    ])
    assert entry_signals(frame, held={"000010"}, rules=RULES).empty


POSITIONS = pd.DataFrame({
    "ticker": ["A", "B", "C", "D", "E", "F", "G"],
    "quantity": [10] * 7,
    "average_price": [10_000.0] * 7,
    "high_water": [10_000.0, 12_000.0, 10_000.0, 10_000.0, 10_000.0, 10_000.0, 10_000.0],
})
#: previous session: A down 5% (stop), B 10,900 is 9.2% under its 12,000 high (trailing),
#: C up 15% (profit), D under its 60-day average, E fine but off the watchlist, F fine,
#: G halted
MARKET = pd.DataFrame({
    "ticker": ["A", "B", "C", "D", "E", "F", "G"],
    "close": [9_500.0, 10_900.0, 11_500.0, 10_100.0, 10_200.0, 10_300.0, 5_000.0],
    "halted": [False, False, False, False, False, False, True],
    "sma_60": [9_000.0, 9_000.0, 9_000.0, 10_200.0, 9_000.0, 9_000.0, 9_000.0],
})


def test_exit_reasons_in_priority_order() -> None:
    signals = exit_signals(POSITIONS, MARKET, watchlist={"A", "B", "C", "D", "F", "G"}, rules=RULES)
    reasons = dict(zip(signals["ticker"], signals["reason"].str.split(":").str[0]))
    assert reasons == {"A": "stop loss", "B": "trailing stop", "C": "take profit", "D": "trend break",
                       "E": "dropped from the watchlist"}
    assert dict(zip(signals["ticker"], signals["strength"])) == {"A": 1.0, "B": 1.0, "C": 0.8, "D": 0.6, "E": 0.4}


def test_no_exit_signal_without_previous_session_data() -> None:
    signals = exit_signals(POSITIONS, MARKET[MARKET["ticker"] != "A"], watchlist=set("ABCDEFG"), rules=RULES)
    assert "A" not in set(signals["ticker"])


def test_switched_off_exits_do_not_fire() -> None:
    quiet = SignalRules(RULES.entry_conditions, stop_loss_pct=0, take_profit_pct=0, trailing_stop_pct=0,
                        exit_on_trend_break=False, exit_on_watchlist_drop=False)
    assert exit_signals(POSITIONS, MARKET, watchlist=set(), rules=quiet).empty


def test_intraday_exits_use_the_observed_price_and_raise_the_high_water() -> None:
    positions = pd.DataFrame({"ticker": ["A", "B", "C"], "average_price": [10_000.0, 10_000.0, 10_000.0],
                              "high_water": [10_000.0, 10_000.0, 13_000.0]})
    # A 9,499 <= 9,500 stop; B 10,500 holds; C 11,950 <= 13,000 x 0.92 = 11,960 trailing
    signals = intraday_exits(positions, {"A": 9_499, "B": 10_500, "C": 11_950}, RULES)
    assert dict(zip(signals["ticker"], signals["reason"].str.split(":").str[0])) == {
        "A": "stop loss", "C": "trailing stop"}
    assert signals["reference_price"].tolist() == [9_499, 11_950]


def test_a_ticker_without_a_price_is_left_alone_intraday() -> None:
    positions = pd.DataFrame({"ticker": ["A"], "average_price": [10_000.0], "high_water": [10_000.0]})
    assert intraday_exits(positions, {}, RULES).empty


@pytest.mark.parametrize("text", ["trend>=", "price>3", "trend=>0.5", ""])
def test_bad_entry_rules_are_refused_with_what_is_accepted(text: str) -> None:
    from services.common.settings import SettingsError

    with pytest.raises(SettingsError, match="ORCHESTRATOR_ENTRY_RULES|--entry-rules"):
        make_settings(entry_rules=text)


def test_price_exit_reasons_vectorised() -> None:
    from services.trading_engine.signals import price_exit_reasons

    got = price_exit_reasons(np.array([9_500.0, 11_500.0, 10_000.0]), np.array([10_000.0] * 3),
                             np.array([10_000.0] * 3), RULES)
    assert got.tolist() == ["stop loss", "take profit", ""]
