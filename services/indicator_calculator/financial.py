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
    close = merged["close"].astype(float)
    eps = merged["eps"].astype(float).where(lambda v: v != 0)  # 0 = not reported
    bps = merged["bps"].astype(float).where(lambda v: v > 0)
    dps = merged["dps"].astype(float)  # NaN: no fundamentals row, so no known dividend
    with np.errstate(divide="ignore", invalid="ignore"):
        result = pd.DataFrame({
            "ticker": merged["ticker"],
            "date": merged["date"],
            "per": (close / eps).where(eps > 0),
            "pbr": close / bps,
            "eps": eps,
            "bps": bps,
            "dividend_yield": (dps / close * 100).where(close > 0),
            "roe": eps / bps,
            "earnings_positive": (eps > 0).astype(float).where(eps.notna()),
            "market_cap": merged["market_cap"].astype(float),
        })
    result["market_cap_rank"] = result.groupby("date")["market_cap"].rank(ascending=False, method="min")
    numeric = result.columns.difference(["ticker", "date"])
    result[numeric] = result[numeric].replace([np.inf, -np.inf], np.nan)
    return result[["ticker", "date"] + FINANCIAL_COLUMNS]
