"""Corporate actions read from the prices themselves (pure).

KRX quotes a session's change (``change_pct``, 등락률) against its base price (기준가),
which KRX resets on the day a split, a reverse split, a bonus issue or a rights issue
takes effect. So the previous close over the base price,
``previous_close * (1 + change_pct / 100) / close``, is 1 on an ordinary day and the
adjustment ratio on such a day (50 on Samsung Electronics' 50-for-1 split of
2018-05-04: 2,650,000 before, a base price of 53,000).

- :func:`adjustment_ratio`: the ratio older prices are divided by, so a price series
  is comparable across the action (adjusted prices for indicators and returns);
- :func:`share_ratio`: the ratio a holding's share count is multiplied by, for the
  actions that change it by a whole ratio (a split n-for-1, a reverse split 1-for-n);
  None for a rights issue or any other ratio, which changes no holding.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from fractions import Fraction

import numpy as np
import pandas as pd

#: a session whose ratio is within this of 1 is an ordinary one (KRX rounds change_pct to 0.01%)
ORDINARY = 0.005
#: how close to a whole n (or 1/n) a ratio must be to be read as a split (or reverse split)
WHOLE = 0.01


def adjustment_ratio(previous_close: int, close: int, change_pct: float) -> float:
    """The previous close over the session's base price; 1.0 on an ordinary session."""
    return float(adjustment_ratios(np.array([previous_close]), np.array([close]), np.array([change_pct]))[0])


def adjustment_ratios(previous_close: np.ndarray, close: np.ndarray, change_pct: np.ndarray) -> np.ndarray:
    """Vectorized :func:`adjustment_ratio` (a previous close of 0: none, an ordinary session)."""
    previous_close, close, change_pct = (np.asarray(values, dtype=float)
                                         for values in (previous_close, close, change_pct))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = previous_close * (1 + change_pct / 100) / close
    reset = (previous_close > 0) & (close > 0) & (change_pct > -100) & (np.abs(ratio - 1) > ORDINARY)
    return np.where(reset, ratio, 1.0)


def back_adjusted(prices: pd.DataFrame, actions: Iterable[tuple[date, str, float]]) -> pd.DataFrame:
    """``prices`` (ticker, date, open, high, low, close, volume, ...) with each row before
    an action of its ticker (date, ticker, ratio) divided by the ratio (volume
    multiplied), so the series compares with the last session's prices. Unchanged (the
    same frame) when no action falls in it."""
    factor = pd.Series(1.0, index=prices.index)
    for day, ticker, ratio in actions:
        before = (prices["ticker"] == ticker) & (prices["date"] < pd.Timestamp(day))
        factor[before] *= float(ratio)
    if (factor == 1.0).all():
        return prices
    adjusted = prices.copy()
    for column in ("open", "high", "low", "close"):
        adjusted[column] = prices[column].astype(float) / factor
    adjusted["volume"] = prices["volume"].astype(float) * factor
    return adjusted


def share_ratio(previous_close: int, close: int, change_pct: float) -> Fraction | None:
    """New shares per old share when the session begins a split (n) or reverse split
    (1/n); None otherwise."""
    ratio = adjustment_ratio(previous_close, close, change_pct)
    if ratio == 1.0:
        return None
    whole = round(ratio) if ratio >= 1 else round(1 / ratio)
    if whole < 2 or abs((ratio if ratio >= 1 else 1 / ratio) / whole - 1) > WHOLE:
        return None
    return Fraction(whole) if ratio >= 1 else Fraction(1, whole)
