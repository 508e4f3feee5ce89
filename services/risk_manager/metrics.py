"""Portfolio metrics (pure): what the account is worth and how much it has lost.

Percentages are in percent (3.0 = 3%), like the limits they are compared with.

- equity = cash (including cash held back for open buys) + market value
- daily P&L = equity - the equity at the previous session's close
- peak equity = the highest of the baseline, every stored equity since it, and now;
  drawdown = (peak - equity) / peak
- the baseline is the account's initial value, or its equity when trading was last
  resumed after a halt (a resume accepts the loss so far)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Holding:
    """A position valued at ``price`` (its latest known price)."""

    ticker: str
    quantity: int
    cost: int  # what was paid, buy commissions included
    price: int

    @property
    def value(self) -> int:
        return self.quantity * self.price


@dataclass(frozen=True)
class AccountHistory:
    """What the stored snapshots and trades say about the account's past."""

    baseline_equity: int
    previous_close_equity: int | None  # None: no snapshot before this session
    peak_equity: int | None  # highest stored equity since the baseline; None: none stored
    realised_pnl: int = 0


@dataclass(frozen=True)
class PortfolioMetrics:
    equity: int
    cash: int
    market_value: int
    exposure_pct: float
    weights_pct: dict[str, float] = field(repr=False)
    daily_pnl: int
    daily_pnl_pct: float
    peak_equity: int
    drawdown_pct: float
    baseline_equity: int
    return_pct: float  # since the baseline; negative is a loss
    realised_pnl: int
    unrealised_pnl: int
    positions: int
    largest_position: str | None
    largest_position_pct: float

    @property
    def daily_loss_pct(self) -> float:
        return max(0.0, -self.daily_pnl_pct)

    @property
    def total_loss_pct(self) -> float:
        return max(0.0, -self.return_pct)

    def as_summary(self) -> dict[str, Any]:
        """The metrics as plain JSON values (a run summary, a breach record)."""
        return {
            "equity": self.equity, "cash": self.cash, "market_value": self.market_value,
            "exposure_pct": round(self.exposure_pct, 4), "daily_pnl": self.daily_pnl,
            "daily_pnl_pct": round(self.daily_pnl_pct, 4), "peak_equity": self.peak_equity,
            "drawdown_pct": round(self.drawdown_pct, 4), "baseline_equity": self.baseline_equity,
            "return_pct": round(self.return_pct, 4), "realised_pnl": self.realised_pnl,
            "unrealised_pnl": self.unrealised_pnl, "positions": self.positions,
            "largest_position": self.largest_position,
            "largest_position_pct": round(self.largest_position_pct, 4),
            "weights_pct": {ticker: round(weight, 4) for ticker, weight in self.weights_pct.items()},
        }


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


def portfolio_metrics(cash: int, holdings: Sequence[Holding], history: AccountHistory) -> PortfolioMetrics:
    """The metrics of an account holding ``cash`` and ``holdings`` now."""
    market_value = sum(h.value for h in holdings)
    equity = cash + market_value
    weights = {h.ticker: _pct(h.value, equity) for h in sorted(holdings, key=lambda h: h.ticker)}
    largest = max(weights, key=lambda ticker: (weights[ticker], ticker), default=None)
    previous = history.previous_close_equity if history.previous_close_equity is not None \
        else history.baseline_equity
    peak = max(history.baseline_equity, history.peak_equity or 0, equity)
    return PortfolioMetrics(
        equity=equity,
        cash=cash,
        market_value=market_value,
        exposure_pct=_pct(market_value, equity),
        weights_pct=weights,
        daily_pnl=equity - previous,
        daily_pnl_pct=_pct(equity - previous, previous),
        peak_equity=peak,
        drawdown_pct=_pct(peak - equity, peak),
        baseline_equity=history.baseline_equity,
        return_pct=_pct(equity - history.baseline_equity, history.baseline_equity),
        realised_pnl=history.realised_pnl,
        unrealised_pnl=market_value - sum(h.cost for h in holdings),
        positions=len(holdings),
        largest_position=largest,
        largest_position_pct=weights[largest] if largest is not None else 0.0,
    )
