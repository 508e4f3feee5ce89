"""Entry and exit signals (pure): data in, signals out.

Before a session, from the previous session's data:
- **entry**: a watchlist ticker not held that meets every entry rule
  (``ORCHESTRATOR_ENTRY_RULES``, e.g. ``trend>=0.75,momentum>=0.5,rsi_14<70``);
  strength = its watchlist score.
- **exit** of a held ticker, the first that applies: stop loss (close at or below
  average cost - stop %), trailing stop (close at or below the high since entry -
  trailing %), take profit (close at or above cost + profit %), trend break (close
  below its 60-session average), dropped from the watchlist. Strength: 1.0 for the
  stops, 0.8 take profit, 0.6 trend break, 0.4 dropped.
No signal for a ticker halted in, or missing from, the previous session.
During a session only the price exits (stops, take profit) are checked, on the
observed price.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from services.common.settings import Settings

SIGNAL_COLUMNS = ["ticker", "kind", "reason", "strength", "reference_price"]
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
EXIT_STRENGTH = {"stop loss": 1.0, "trailing stop": 1.0, "take profit": 0.8, "trend break": 0.6,
                 "dropped from the watchlist": 0.4}


@dataclass(frozen=True)
class SignalRules:
    entry_conditions: tuple[tuple[str, str, float], ...]
    stop_loss_pct: float = 5.0
    take_profit_pct: float = 15.0
    trailing_stop_pct: float = 8.0
    exit_on_trend_break: bool = True
    exit_on_watchlist_drop: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> SignalRules:
        return cls(settings.entry_rules.conditions, settings.stop_loss_pct,
                   settings.take_profit_pct, settings.trailing_stop_pct, settings.exit_on_trend_break,
                   settings.exit_on_watchlist_drop)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame``'s rows as dicts of plain Python values, like ``to_dict("records")``
    but without building a row object per row (signals are read at every tick)."""
    columns = list(frame.columns)
    return [dict(zip(columns, values)) for values in zip(*(frame[column].tolist() for column in columns))]


_EMPTY = pd.DataFrame({"ticker": pd.Series(dtype=str), "kind": pd.Series(dtype=str),
                       "reason": pd.Series(dtype=str), "strength": pd.Series(dtype=float),
                       "reference_price": pd.Series(dtype="int64")})


def _empty() -> pd.DataFrame:
    return _EMPTY.copy()


def entry_signals(candidates: pd.DataFrame, held: set[str], rules: SignalRules) -> pd.DataFrame:
    """Entry signals among ``candidates`` (the previous session's watchlist joined with
    its prices and indicators: ticker, close, halted, score, rank, factors, rsi_14,
    macd_hist, volume_ratio_20), strongest first."""
    if candidates.empty:
        return _empty()
    usable = candidates[~candidates["ticker"].isin(held) & candidates["close"].notna()
                        & ~candidates["halted"].fillna(True).astype(bool)]
    passed = pd.Series(True, index=usable.index)
    for name, op, value in rules.entry_conditions:
        passed &= _OPERATORS[op](usable[name].astype(float), value).fillna(False).astype(bool)
    chosen = usable[passed].sort_values(["score", "ticker"], ascending=[False, True])
    if chosen.empty:
        return _empty()
    reasons = [_entry_reason(row, rules) for row in records(chosen)]
    return pd.DataFrame({"ticker": chosen["ticker"].to_numpy(), "kind": "entry", "reason": reasons,
                         "strength": chosen["score"].astype(float).round(6).to_numpy(),
                         "reference_price": chosen["close"].astype("int64").to_numpy()})


def _entry_reason(row: Mapping[str, Any], rules: SignalRules) -> str:
    tests = ", ".join(f"{name} {float(row[name]):.4g}{op}{value:g}"
                      for name, op, value in rules.entry_conditions)
    return f"watchlist rank {int(row['rank'])} (score {float(row['score']):.3f}): {tests}"


def exit_signals(positions: pd.DataFrame, market: pd.DataFrame, watchlist: set[str],
                 rules: SignalRules) -> pd.DataFrame:
    """Exit signals for ``positions`` (ticker, quantity, average_price, high_water) from
    ``market``, the previous session's rows of the held tickers (ticker, close, halted,
    sma_60); ``watchlist`` is the previous session's list."""
    if positions.empty:
        return _empty()
    rows = positions.merge(market, on="ticker", how="inner")
    rows = rows[rows["close"].notna() & ~rows["halted"].fillna(True).astype(bool)]
    if rows.empty:
        return _empty()
    close = rows["close"].astype(float)
    high = np.maximum(rows["high_water"].astype(float), close)
    reason = price_exit_reasons(close.to_numpy(), rows["average_price"].astype(float).to_numpy(),
                                high.to_numpy(), rules)
    if rules.exit_on_trend_break:
        broke = (close < rows["sma_60"].astype(float)).fillna(False).to_numpy()
        reason = np.where((reason == "") & broke, "trend break", reason)
    if rules.exit_on_watchlist_drop:
        dropped = ~rows["ticker"].isin(watchlist).to_numpy()
        reason = np.where((reason == "") & dropped, "dropped from the watchlist", reason)
    chosen = rows[reason != ""]
    if chosen.empty:
        return _empty()
    reasons = reason[reason != ""]
    details = [_exit_detail(kind, row) for kind, row in zip(reasons, records(chosen))]
    return pd.DataFrame({"ticker": chosen["ticker"].to_numpy(), "kind": "exit", "reason": details,
                         "strength": [EXIT_STRENGTH[kind] for kind in reasons],
                         "reference_price": chosen["close"].astype("int64").to_numpy()})


def _exit_detail(kind: str, row: Mapping[str, object]) -> str:
    close, cost = float(row["close"]), float(row["average_price"])  # type: ignore[arg-type]
    return f"{kind}: close {close:.0f} vs average cost {cost:.0f} ({close / cost - 1:+.2%})"


def price_exit_reasons(price: np.ndarray, average_price: np.ndarray, high_water: np.ndarray,
                       rules: SignalRules) -> np.ndarray:
    """'stop loss' | 'trailing stop' | 'take profit' | '' for each position at ``price``."""
    conditions, names = [], []
    if rules.stop_loss_pct > 0:
        conditions.append(price <= average_price * (1 - rules.stop_loss_pct / 100))
        names.append("stop loss")
    if rules.trailing_stop_pct > 0:
        conditions.append(price <= high_water * (1 - rules.trailing_stop_pct / 100))
        names.append("trailing stop")
    if rules.take_profit_pct > 0:
        conditions.append(price >= average_price * (1 + rules.take_profit_pct / 100))
        names.append("take profit")
    if not conditions:
        return np.full(len(price), "", dtype=object)
    return np.select(conditions, names, default="").astype(object)


def intraday_exits(positions: pd.DataFrame, prices: Mapping[str, int], rules: SignalRules) -> pd.DataFrame:
    """Price exits of ``positions`` at the observed ``prices`` (tickers without a price
    are left alone)."""
    if positions.empty:
        return _empty()
    priced = np.array([ticker in prices for ticker in positions["ticker"].tolist()], dtype=bool)
    if not priced.any():
        return _empty()
    rows = positions[priced].copy()
    close = np.array([prices[ticker] for ticker in rows["ticker"].tolist()], dtype=float)
    high = np.maximum(rows["high_water"].to_numpy(dtype=float), close)
    reason = price_exit_reasons(close, rows["average_price"].to_numpy(dtype=float), high, rules)
    if not (reason != "").any():  # the usual tick: nothing to sell, no frame to build
        return _empty()
    rows["close"] = close
    chosen = rows[reason != ""]
    reasons = reason[reason != ""]
    details = [_exit_detail(kind, row).replace("close", "price", 1) for kind, row in
               zip(reasons, records(chosen))]
    return pd.DataFrame({"ticker": chosen["ticker"].to_numpy(), "kind": "exit", "reason": details,
                         "strength": [EXIT_STRENGTH[kind] for kind in reasons],
                         "reference_price": chosen["close"].astype("int64").to_numpy()})
