"""Position sizing (pure): how many shares each entry signal buys.

The fraction of equity per position is fixed (``ORCHESTRATOR_POSITION_FRACTION_PCT``)
until the account has ``ORCHESTRATOR_KELLY_MIN_TRADES`` closed trades; then it is half
the Kelly fraction of those trades (win rate W, win/loss ratio R of the average
returns: f = W - (1 - W) / R). A Kelly fraction at or below zero means no new trades.
Always capped by ``ORCHESTRATOR_MAX_POSITION_SIZE_PCT`` of equity, by the free slots
under ``ORCHESTRATOR_MAX_POSITIONS`` and by the cash available after commission;
whole shares only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.common.settings import Settings
from services.trading_engine.fees import FeeSchedule


@dataclass(frozen=True)
class SizingRules:
    """How entries are sized; the defaults live in the settings, nowhere else."""

    fraction_pct: float
    max_position_pct: float
    max_positions: int
    kelly_min_trades: int

    @classmethod
    def from_settings(cls, settings: Settings) -> SizingRules:
        return cls(settings.position_fraction_pct, settings.max_position_size_pct, settings.max_positions,
                   settings.kelly_min_trades)


@dataclass(frozen=True)
class Fraction:
    value: float  # of equity, 0..1
    method: str  # fixed | half_kelly


def kelly_fraction(trade_returns: Sequence[float]) -> float:
    """The full Kelly fraction of a history of trade returns (0.05 = +5%)."""
    wins = [r for r in trade_returns if r > 0]
    losses = [-r for r in trade_returns if r <= 0]
    if not trade_returns:
        return 0.0
    win_rate = len(wins) / len(trade_returns)
    if not wins:
        return -1.0
    average_loss = sum(losses) / len(losses) if losses else 0.0
    if average_loss == 0:
        return win_rate  # nothing was ever lost: R is unbounded, f -> W
    ratio = (sum(wins) / len(wins)) / average_loss
    return win_rate - (1 - win_rate) / ratio


def position_fraction(trade_returns: Sequence[float], rules: SizingRules) -> Fraction:
    """The fraction of equity for a new position (before the slot and cash limits)."""
    cap = rules.max_position_pct / 100
    if rules.kelly_min_trades > 0 and len(trade_returns) >= rules.kelly_min_trades:
        half = kelly_fraction(trade_returns) / 2
        return Fraction(max(0.0, min(half, cap)), "half_kelly")
    return Fraction(min(rules.fraction_pct / 100, cap), "fixed")


@dataclass(frozen=True)
class Sized:
    ticker: str
    quantity: int
    price: int
    note: str  # why fewer shares than the budget, or why none


def size_entries(entries: Sequence[tuple[str, int]], *, equity: int, cash: int, open_positions: int,
                 fraction: Fraction, rules: SizingRules, fees: FeeSchedule) -> list[Sized]:
    """Shares for each ``(ticker, order price)`` entry, strongest first: the position
    budget is ``fraction`` of equity, spent from ``cash`` until slots or cash run out."""
    slots = max(0, rules.max_positions - open_positions)
    budget = int(equity * fraction.value)
    sized = []
    for ticker, price in entries:
        if fraction.value <= 0:
            sized.append(Sized(ticker, 0, price, f"{fraction.method} fraction is not positive: no trade"))
            continue
        if slots <= 0:
            sized.append(Sized(ticker, 0, price, f"ORCHESTRATOR_MAX_POSITIONS ({rules.max_positions}) reached"))
            continue
        quantity = fees.affordable_quantity(min(budget, cash), price)
        if quantity < 1:
            sized.append(Sized(ticker, 0, price, "not enough cash for one share" if cash < budget
                               else "position budget below one share"))
            continue
        cash -= fees.buy_cost(quantity, price)
        slots -= 1
        sized.append(Sized(ticker, quantity, price, ""))
    return sized
