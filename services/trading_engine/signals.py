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
from services.watchlist_manager.scoring import best_first

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
    if frame.empty:  # the usual tick
        return []
    columns = list(frame.columns)
    return [dict(zip(columns, values)) for values in zip(*(frame[column].tolist() for column in columns))]


_EMPTY = pd.DataFrame({"ticker": pd.Series(dtype=str), "kind": pd.Series(dtype=str),
                       "reason": pd.Series(dtype=str), "strength": pd.Series(dtype=float),
                       "reference_price": pd.Series(dtype="int64")})


def _empty() -> pd.DataFrame:
    return _EMPTY.copy(deep=False)  # copy-on-write: the caller cannot alter _EMPTY


def _signal_frame(tickers: Any, kind: str, reasons: list[str], strength: Any,
                  reference_price: np.ndarray) -> pd.DataFrame:
    """Signals in the columns of :data:`SIGNAL_COLUMNS`."""
    return pd.DataFrame({"ticker": tickers, "kind": kind, "reason": reasons, "strength": strength,
                         "reference_price": reference_price})


def _floats(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as floats, NaN where missing."""
    values: np.ndarray = frame[name].to_numpy(dtype=float, na_value=np.nan)
    return values


def _trading(frame: pd.DataFrame) -> np.ndarray:
    """Whether each row is priced and not halted (a missing halt flag counts as halted)."""
    halted = frame["halted"]
    flags = halted.to_numpy() if halted.dtype == bool else halted.fillna(True).astype(bool).to_numpy()
    trading: np.ndarray = ~np.isnan(_floats(frame, "close")) & ~flags
    return trading


def entry_signals(candidates: pd.DataFrame, held: set[str], rules: SignalRules) -> pd.DataFrame:
    """Entry signals among ``candidates`` (the previous session's watchlist joined with
    its prices and indicators: ticker, close, halted, score, rank, factors, rsi_14,
    macd_hist, volume_ratio_20), strongest first."""
    if candidates.empty:
        return _empty()
    tickers = candidates["ticker"].to_numpy()
    passed = np.array([ticker not in held for ticker in tickers.tolist()], dtype=bool) & _trading(candidates)
    for name, op, value in rules.entry_conditions:
        passed &= _OPERATORS[op](_floats(candidates, name), value)
    chosen = np.flatnonzero(passed)
    if not len(chosen):
        return _empty()
    score = _floats(candidates, "score")
    chosen = chosen[best_first(score[chosen], tickers[chosen])]  # as the watchlist ranks
    names = list(dict.fromkeys(["rank", "score", *(name for name, _, _ in rules.entry_conditions)]))
    rows = [dict(zip(names, values))
            for values in zip(*(candidates[name].to_numpy()[chosen].tolist() for name in names))]
    return _signal_frame(tickers[chosen], "entry", [_entry_reason(row, rules) for row in rows],
                         np.round(score[chosen], 6), _floats(candidates, "close")[chosen].astype("int64"))


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
    rows = rows[_trading(rows)]
    if rows.empty:
        return _empty()
    close = _floats(rows, "close")
    high = np.maximum(_floats(rows, "high_water"), close)
    reason = price_exit_reasons(close, _floats(rows, "average_price"), high, rules)
    if rules.exit_on_trend_break:
        broke = close < _floats(rows, "sma_60")
        reason = np.where((reason == "") & broke, "trend break", reason)
    if rules.exit_on_watchlist_drop:
        dropped = np.array([ticker not in watchlist for ticker in rows["ticker"].tolist()], dtype=bool)
        reason = np.where((reason == "") & dropped, "dropped from the watchlist", reason)
    return _exit_frame(rows["ticker"].to_numpy(), reason, close, rows["average_price"].to_numpy(), "close")


def _exit_frame(tickers: np.ndarray, reason: np.ndarray, close: np.ndarray, average_price: np.ndarray,
                price_label: str) -> pd.DataFrame:
    """The exits of the rows with a ``reason``, at ``close``, detailed against the
    average cost (the price called ``price_label``)."""
    chosen = np.flatnonzero(reason != "")
    if not len(chosen):
        return _empty()
    kinds: list[str] = reason[chosen].tolist()
    details = [_exit_detail(kind, price, cost, price_label) for kind, price, cost in
               zip(kinds, close[chosen].tolist(), average_price[chosen].tolist())]
    return _signal_frame(tickers[chosen], "exit", details, [EXIT_STRENGTH[kind] for kind in kinds],
                         close[chosen].astype("int64"))


def _exit_detail(kind: str, close: float, cost: float, price_label: str = "close") -> str:
    close, cost = float(close), float(cost)
    return f"{kind}: {price_label} {close:.0f} vs average cost {cost:.0f} ({close / cost - 1:+.2%})"


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
    tickers = positions["ticker"].to_numpy()
    priced = [i for i, ticker in enumerate(tickers.tolist()) if ticker in prices]
    if not priced:
        return _empty()
    close = np.array([prices[ticker] for ticker in tickers[priced].tolist()], dtype=float)
    high = np.maximum(_floats(positions, "high_water")[priced], close)
    average_price = positions["average_price"].to_numpy()[priced]
    reason = price_exit_reasons(close, average_price.astype(float), high, rules)
    return _exit_frame(tickers[priced], reason, close, average_price, "price")
