"""How a replay performed, from plain values: the account's closing equity each session,
its closed trades, what it traded, and a benchmark index over the same sessions.

Conventions (the usual ones, stated): returns are session to session, annualized over
252 sessions a year; the risk-free rate is 0 (Sharpe and Sortino are of the raw
returns); Sortino's downside deviation is the root mean square of the negative returns
over all sessions; the drawdown's duration counts sessions from the peak until the
equity is back at it (or until the end, if it never is); turnover is the amount traded
(buys and sells) over the average equity; alpha is annualized, beta and alpha from the
session returns against the benchmark's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

SESSIONS_PER_YEAR = 252


@dataclass(frozen=True)
class Trade:
    opened_on: date
    closed_on: date
    pnl: int  # after fees and taxes


@dataclass(frozen=True)
class Performance:
    sessions: int
    total_return: float
    cagr: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float  # a fraction of the peak
    max_drawdown_sessions: int
    trades: int
    win_rate: float | None
    profit_factor: float | None  # None: no losing trade (or none at all)
    average_holding_days: float | None  # calendar days
    turnover: float | None
    exposure: float | None
    benchmark_return: float | None
    beta: float | None
    alpha: float | None


def measure(equity: Sequence[float], *, trades: Sequence[Trade] = (), traded: float = 0.0,
            exposures: Sequence[float] = (), benchmark: Sequence[float] | None = None) -> Performance:
    """``equity``: the starting equity, then each session's closing equity; ``benchmark``
    (optional): the index level on the same days (one more value than sessions)."""
    levels = np.asarray(equity, dtype=np.float64)
    sessions = len(levels) - 1
    returns = levels[1:] / levels[:-1] - 1 if sessions > 0 else np.array([])
    total = float(levels[-1] / levels[0] - 1) if sessions > 0 else 0.0
    drawdown, duration = _max_drawdown(levels)
    bench = None if benchmark is None else np.asarray(benchmark, dtype=np.float64)
    if bench is not None and len(bench) != len(levels):
        raise ValueError(f"the benchmark has {len(bench)} levels for {len(levels)} equities")
    beta, alpha = _beta_alpha(returns, None if bench is None else bench[1:] / bench[:-1] - 1)
    wins = [trade.pnl for trade in trades if trade.pnl > 0]
    losses = [trade.pnl for trade in trades if trade.pnl < 0]
    return Performance(
        sessions=sessions, total_return=total,
        cagr=(float(levels[-1] / levels[0]) ** (SESSIONS_PER_YEAR / sessions) - 1) if sessions > 0 else None,
        volatility=_annualized_std(returns), sharpe=_sharpe(returns), sortino=_sortino(returns),
        max_drawdown=drawdown, max_drawdown_sessions=duration, trades=len(trades),
        win_rate=len(wins) / len(trades) if trades else None,
        profit_factor=sum(wins) / -sum(losses) if losses else None,
        average_holding_days=(sum((t.closed_on - t.opened_on).days for t in trades) / len(trades)) if trades else None,
        turnover=traded / float(levels.mean()) if sessions > 0 and levels.mean() > 0 else None,
        exposure=float(np.mean(exposures)) if len(exposures) else None,
        benchmark_return=None if bench is None or sessions == 0 else float(bench[-1] / bench[0] - 1),
        beta=beta, alpha=alpha)


def _max_drawdown(levels: np.ndarray) -> tuple[float, int]:
    """The largest fall from a running peak (a fraction), and how many sessions from
    that peak until the equity was back at it (or until the end)."""
    worst, worst_peak_at, peak, peak_at = 0.0, 0, -math.inf, 0
    for index, level in enumerate(levels):
        if level >= peak:
            peak, peak_at = float(level), index
        elif peak > 0 and (peak - level) / peak > worst:
            worst, worst_peak_at = (peak - level) / peak, peak_at
    if worst == 0.0:
        return 0.0, 0
    recovered = next((index for index in range(worst_peak_at + 1, len(levels))
                      if levels[index] >= levels[worst_peak_at]), len(levels) - 1)
    return worst, recovered - worst_peak_at


def _annualized_std(returns: np.ndarray) -> float | None:
    if len(returns) < 2:
        return None
    return float(np.std(returns, ddof=1) * math.sqrt(SESSIONS_PER_YEAR))


def _sharpe(returns: np.ndarray) -> float | None:
    if len(returns) < 2 or np.std(returns, ddof=1) == 0:
        return None
    return float(np.mean(returns) / np.std(returns, ddof=1) * math.sqrt(SESSIONS_PER_YEAR))


def _sortino(returns: np.ndarray) -> float | None:
    if len(returns) < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside == 0:
        return None
    return float(np.mean(returns) / downside * math.sqrt(SESSIONS_PER_YEAR))


def _beta_alpha(returns: np.ndarray, benchmark: np.ndarray | None) -> tuple[float | None, float | None]:
    if benchmark is None or len(returns) < 2:
        return None, None
    variance = float(np.var(benchmark, ddof=1))
    if variance == 0:
        return None, None
    beta = float(np.cov(returns, benchmark, ddof=1)[0, 1] / variance)
    alpha = float((np.mean(returns) - beta * np.mean(benchmark)) * SESSIONS_PER_YEAR)
    return beta, alpha


def cap_weighted_index(days: Sequence[date], rows: Sequence[tuple[date, str, float, float]]) -> list[float]:
    """An index level per day of ``days`` (the first 100), chained from the returns of
    the tickers of ``rows`` (day, ticker, close, market cap), each weighted by its
    market cap on the day before; a ticker counts on a day only if it has a close on
    that day and the one before. A day without any such ticker keeps the level."""
    by_day: dict[date, dict[str, tuple[float, float]]] = {}
    for day, ticker, close, cap in rows:
        by_day.setdefault(day, {})[ticker] = (float(close), float(cap))
    levels = [100.0]
    for previous, day in zip(days, days[1:]):
        before, now = by_day.get(previous, {}), by_day.get(day, {})
        common = [ticker for ticker in now if ticker in before and before[ticker][0] > 0]
        weight = sum(before[ticker][1] for ticker in common)
        if not common or weight <= 0:
            levels.append(levels[-1])
            continue
        change = sum(before[t][1] * (now[t][0] / before[t][0] - 1) for t in common) / weight
        levels.append(levels[-1] * (1 + change))
    return levels
