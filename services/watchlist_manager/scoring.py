"""The watchlist score: transparent factors, each in [0, 1], and their weighted mean.

Factors (for the tickers that pass the filters; ranks are percentile ranks among them):

- ``trend``: the share of these that hold: close > sma_20, close > sma_60,
  close > sma_120, sma_20 > sma_60 (a missing average counts as not holding).
- ``momentum``: half RSI (1 at rsi_14 = 60, falling linearly to 0 at 20 and 100,
  so an overbought stock is not rewarded), half the rank of macd_hist / close.
- ``volatility``: 1 - rank of atr_14 / close (calmer is better).
- ``liquidity``: rank of the session's traded value.
- ``value``: half the rank of the earnings yield (1 / PER, 0 for a loss), half the
  rank of the book yield (1 / PBR).

Filters: not halted, close >= ``min_price``, traded value >= ``min_value``, and
sma_20, rsi_14 and atr_14 known. Ties in score are broken by ticker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from services.common.settings import WATCHLIST_FACTORS, parse_weight_pairs

FACTORS = WATCHLIST_FACTORS
DEFAULT_WEIGHTS = {"trend": 0.30, "momentum": 0.25, "volatility": 0.15, "liquidity": 0.15, "value": 0.15}
REQUIRED = ("close", "value", "halted", "sma_20", "sma_60", "sma_120", "rsi_14", "macd_hist", "atr_14",
            "per", "pbr")


@dataclass(frozen=True)
class WatchlistRules:
    size: int = 20
    min_price: float = 1_000
    min_value: float = 1_000_000_000  # KRW traded in the session
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(FACTORS)
        values = list(self.weights.values())
        if unknown or not values or not all(math.isfinite(w) and w >= 0 for w in values) \
                or not 0 < sum(values) < math.inf:
            raise ValueError(f"weights {self.weights}; expected non-negative weights of {', '.join(FACTORS)}")


def eligibility(frame: pd.DataFrame, rules: WatchlistRules) -> pd.Series:
    """Why each ticker is left out ('' when it is eligible)."""
    reasons = np.select(
        [frame["halted"].astype(bool).to_numpy(),
         (frame["close"] < rules.min_price).to_numpy(),
         (frame["value"] < rules.min_value).to_numpy(),
         frame[["sma_20", "rsi_14", "atr_14"]].isna().any(axis=1).to_numpy()],
        ["halted", "price below the minimum", "traded value below the minimum", "indicators in warm-up"],
        default="",
    )
    return pd.Series(reasons, index=frame.index)


def _rank(values: pd.Series) -> pd.Series:
    """Percentile rank in (0, 1]; NaN ranks lowest (0)."""
    return values.rank(pct=True, method="average").fillna(0.0)


def factor_scores(frame: pd.DataFrame) -> pd.DataFrame:
    close = frame["close"].astype(float)
    trend = pd.concat([
        close > frame["sma_20"], close > frame["sma_60"], close > frame["sma_120"],
        frame["sma_20"] > frame["sma_60"],
    ], axis=1).mean(axis=1)
    rsi_score = (1 - (frame["rsi_14"] - 60).abs() / 40).clip(0, 1).fillna(0.0)
    momentum = 0.5 * rsi_score + 0.5 * _rank(frame["macd_hist"] / close)
    volatility = 1 - _rank(frame["atr_14"] / close)  # eligible tickers all have an ATR
    liquidity = _rank(frame["value"].astype(float))
    earnings_yield = (1 / frame["per"]).where(frame["per"] > 0, 0.0).fillna(0.0)
    book_yield = (1 / frame["pbr"]).where(frame["pbr"] > 0, 0.0).fillna(0.0)
    value = 0.5 * _rank(earnings_yield) + 0.5 * _rank(book_yield)
    return pd.DataFrame({"trend": trend, "momentum": momentum, "volatility": volatility,
                         "liquidity": liquidity, "value": value}, index=frame.index).astype(float)


def score_universe(frame: pd.DataFrame, rules: WatchlistRules) -> pd.DataFrame:
    """Every eligible ticker with its factors, weighted score and rank (1 = best)."""
    missing = [column for column in ("ticker",) + REQUIRED if column not in frame.columns]
    if missing:
        raise ValueError(f"scoring needs columns {missing}")
    eligible = frame[eligibility(frame, rules) == ""]
    if eligible.empty:
        return pd.DataFrame(columns=["ticker", "close", "score", "rank", *FACTORS])
    factors = factor_scores(eligible)
    total = sum(rules.weights.values())
    score = sum(factors[name] * weight for name, weight in rules.weights.items()) / total
    scored = pd.concat([eligible[["ticker", "close"]], factors], axis=1).assign(score=score)
    scored = scored.sort_values(["score", "ticker"], ascending=[False, True]).reset_index(drop=True)
    scored["rank"] = np.arange(1, len(scored) + 1)
    return scored[["ticker", "close", "score", "rank", *FACTORS]]


def select_watchlist(frame: pd.DataFrame, rules: WatchlistRules) -> pd.DataFrame:
    """The top ``rules.size`` of :func:`score_universe`."""
    return score_universe(frame, rules).head(rules.size)


def parse_weights(text: str) -> dict[str, float]:
    """'trend=0.3,momentum=0.25,...' -> weights (see services.common.settings)."""
    return parse_weight_pairs(text, FACTORS)
