"""Financial indicators per ticker and date, from KRX fundamentals and the close.

Missing or non-positive inputs give NaN (stored as NULL), never an infinity:

- ``per`` = close / EPS when EPS > 0 (a loss has no meaningful PER)
- ``pbr`` = close / BPS when BPS > 0
- ``roe`` = EPS / BPS when BPS > 0 and EPS is reported (negative for a loss)
- ``dividend_yield`` = DPS / close x 100 (0 when no dividend, NaN when unknown)
- ``earnings_positive``: EPS > 0 (NaN when KRX reports none)
- ``market_cap`` and ``market_cap_rank`` (1 = largest of the date)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FINANCIAL_COLUMNS = ["per", "pbr", "eps", "bps", "dividend_yield", "roe", "earnings_positive",
                     "market_cap", "market_cap_rank"]


def compute_financials(prices: pd.DataFrame, fundamentals: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``prices`` (ticker, date, close, market_cap) with their financial indicators.

    ``fundamentals`` has ticker, date, bps, eps, dps (KRX's 0 = not reported).
    """
    merged = prices[["ticker", "date", "close", "market_cap"]].merge(
        fundamentals[["ticker", "date", "bps", "eps", "dps"]], on=["ticker", "date"], how="left")
    dates = pd.factorize(merged["date"])[0]
    close, market_cap, eps, bps, dps = (merged[name].to_numpy(dtype=float)
                                        for name in ("close", "market_cap", "eps", "bps", "dps"))
    values = financial_values(close, market_cap, eps, bps, dps, dates)
    result = pd.DataFrame(values)
    result.insert(0, "date", merged["date"])
    result.insert(0, "ticker", merged["ticker"])
    return result


def financial_values(close: np.ndarray, market_cap: np.ndarray, eps: np.ndarray, bps: np.ndarray,
                     dps: np.ndarray, dates: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The :data:`FINANCIAL_COLUMNS` of aligned float arrays (NaN: no fundamentals row);
    ``dates`` groups the rows for the rank (integer codes; None: one date)."""
    eps = np.where(eps != 0, eps, np.nan)  # 0 = not reported
    bps = np.where(bps > 0, bps, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {
            "per": np.where(eps > 0, close / eps, np.nan),
            "pbr": close / bps,
            "eps": eps,
            "bps": bps,
            "dividend_yield": np.where(close > 0, dps / close * 100, np.nan),
            "roe": eps / bps,
            "earnings_positive": np.where(np.isnan(eps), np.nan, (eps > 0).astype(float)),
            "market_cap": market_cap.astype(float),
            "market_cap_rank": _rank_largest_first(market_cap, dates),
        }
    for column in values.values():
        column[np.isinf(column)] = np.nan
    return values


def _rank_largest_first(values: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Rank within each group, 1 = largest, ties sharing the best rank; NaN (and a row
    without a group, code -1) stays NaN."""
    ranks = np.full(len(values), np.nan)
    codes = np.zeros(len(values), dtype=np.int64) if groups is None else groups
    for code in np.unique(codes[codes >= 0]):
        members = np.flatnonzero((codes == code) & ~np.isnan(values))
        ordered = np.sort(values[members])
        larger = len(ordered) - np.searchsorted(ordered, values[members], side="right")
        ranks[members] = larger + 1.0
    return ranks
