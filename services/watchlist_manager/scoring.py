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
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from services.common.setting_values import WATCHLIST_FACTORS
from services.common.settings import Settings

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

    @classmethod
    def from_settings(cls, settings: Settings) -> WatchlistRules:
        return cls(size=settings.watchlist_size, min_price=settings.watchlist_min_price,
                   min_value=settings.watchlist_min_value, weights=settings.watchlist_weights.as_dict())


#: the reasons a ticker is left out, in the order they are checked
EXCLUSIONS = ("halted", "price below the minimum", "traded value below the minimum", "indicators in warm-up")


def _exclusions(columns: Mapping[str, np.ndarray], rules: WatchlistRules) -> list[np.ndarray]:
    """For each of :data:`EXCLUSIONS`, whether it applies to each ticker."""
    warming_up = np.isnan(columns["sma_20"]) | np.isnan(columns["rsi_14"]) | np.isnan(columns["atr_14"])
    return [columns["halted"], columns["close"] < rules.min_price, columns["value"] < rules.min_value,
            warming_up]


def is_eligible(columns: Mapping[str, np.ndarray], rules: WatchlistRules) -> np.ndarray:
    """Whether each ticker of ``columns`` (arrays: bool ``halted``, float prices and
    indicators, NaN where missing) passes the filters."""
    eligible: np.ndarray = ~np.logical_or.reduce(_exclusions(columns, rules))
    return eligible


def eligibility(frame: pd.DataFrame, rules: WatchlistRules) -> pd.Series:
    """Why each ticker is left out ('' when it is eligible)."""
    columns = {name: _column(frame, name) for name in ("close", "value", "sma_20", "rsi_14", "atr_14")}
    columns["halted"] = frame["halted"].astype(bool).to_numpy()
    reasons = np.select(_exclusions(columns, rules), list(EXCLUSIONS), default="")
    return pd.Series(reasons, index=frame.index)


def _rank(values: np.ndarray) -> np.ndarray:
    """Percentile rank in (0, 1] as pandas' ``rank(pct=True, method="average")``: the
    mean of the tied positions over the count of values; NaN ranks lowest (0)."""
    ranks = np.zeros(len(values))
    known = np.flatnonzero(~np.isnan(values))
    if not len(known):
        return ranks
    order = known[np.argsort(values[known], kind="stable")]
    ordered = values[order]
    new_value = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(new_value)  # 0-based positions where each run of ties starts and ends
    ends = np.r_[starts[1:], len(ordered)] - 1
    ranks[order] = ((starts + ends) / 2 + 1)[np.cumsum(new_value) - 1] / len(ordered)
    return ranks


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as floats, NaN where missing."""
    values: np.ndarray = frame[name].to_numpy(dtype=float, na_value=np.nan)
    return values


_FACTOR_INPUTS = ("close", "sma_20", "sma_60", "sma_120", "rsi_14", "macd_hist", "atr_14", "value", "per", "pbr")


def factor_values(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each factor of each ticker of ``columns`` (float arrays, NaN where missing)."""
    close, sma_20, sma_60, sma_120, rsi, macd_hist, atr, value, per, pbr = (columns[name] for name in _FACTOR_INPUTS)
    with np.errstate(divide="ignore", invalid="ignore"):
        trend = ((close > sma_20).astype(float) + (close > sma_60) + (close > sma_120) + (sma_20 > sma_60)) / 4
        rsi_score = np.clip(1 - np.abs(rsi - 60) / 40, 0, 1)
        rsi_score[np.isnan(rsi_score)] = 0.0
        momentum = 0.5 * rsi_score + 0.5 * _rank(macd_hist / close)
        volatility = 1 - _rank(atr / close)  # eligible tickers all have an ATR
        earnings_yield = np.where(per > 0, 1 / per, 0.0)
        book_yield = np.where(pbr > 0, 1 / pbr, 0.0)
    return {"trend": trend, "momentum": momentum, "volatility": volatility,
            "liquidity": _rank(value), "value": 0.5 * _rank(earnings_yield) + 0.5 * _rank(book_yield)}


def factor_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`factor_values` of ``frame``'s rows."""
    return pd.DataFrame(factor_values({name: _column(frame, name) for name in _FACTOR_INPUTS}), index=frame.index)


def rank_eligible(columns: Mapping[str, np.ndarray],
                  rules: WatchlistRules) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The positions of the (eligible) tickers of ``columns`` best first (ties by
    ticker), with each one's weighted score and factors."""
    factors = factor_values(columns)
    total = sum(rules.weights.values())
    score = sum((factors[name] * weight for name, weight in rules.weights.items()),
                np.zeros(len(columns["ticker"]))) / total
    return best_first(score, columns["ticker"]), score, factors


def best_first(score: np.ndarray, tickers: np.ndarray) -> np.ndarray:
    """Positions by descending score, ties by ticker; a missing score comes last
    (as ``sort_values(["score", "ticker"], ascending=[False, True])``)."""
    by_ticker = np.argsort(tickers.astype(str), kind="stable")
    order: np.ndarray = by_ticker[np.argsort(-score[by_ticker], kind="stable")]
    return order


def score_universe(frame: pd.DataFrame, rules: WatchlistRules) -> pd.DataFrame:
    """Every eligible ticker with its factors, weighted score and rank (1 = best)."""
    missing = [column for column in ("ticker",) + REQUIRED if column not in frame.columns]
    if missing:
        raise ValueError(f"scoring needs columns {missing}")
    return score_eligible(frame[(eligibility(frame, rules) == "").to_numpy()], rules)


def score_eligible(eligible: pd.DataFrame, rules: WatchlistRules) -> pd.DataFrame:
    """:func:`score_universe` of tickers already known to be eligible."""
    if eligible.empty:
        return pd.DataFrame(columns=["ticker", "close", "score", "rank", *FACTORS])
    columns = {name: _column(eligible, name) for name in _FACTOR_INPUTS}
    order, score, factors = rank_eligible({**columns, "ticker": eligible["ticker"].to_numpy()}, rules)
    return pd.DataFrame({"ticker": eligible["ticker"].array[order], "close": eligible["close"].array[order],
                         "score": score[order], "rank": np.arange(1, len(order) + 1),
                         **{name: factors[name][order] for name in FACTORS}})


def select_watchlist(frame: pd.DataFrame, rules: WatchlistRules) -> pd.DataFrame:
    """The top ``rules.size`` of :func:`score_universe`."""
    return score_universe(frame, rules).head(rules.size)
