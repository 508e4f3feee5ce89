"""The risk limits (pure): which metrics breach them, and whether a new entry is allowed.

- ``ORCHESTRATOR_MAX_DAILY_LOSS_PCT``: a daily loss at or past it blocks new entries
  for the rest of the session (exits stay allowed).
- ``ORCHESTRATOR_MAX_TOTAL_LOSS_PCT``: a drawdown from the peak, or a loss from the
  baseline, at or past it halts trading until a person resumes it.
- ``ORCHESTRATOR_MAX_POSITIONS`` and ``ORCHESTRATOR_MAX_POSITION_SIZE_PCT``: no entry
  may open a position past either; an existing position that grew past the size
  limit, or a count past the limit, is recorded as a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import Enum

from services.common.settings import Settings
from services.risk_manager.metrics import PortfolioMetrics


class Action(str, Enum):
    WARN = "warn"
    BLOCK_ENTRIES = "block_entries"
    HALT = "halt"


@dataclass(frozen=True)
class RiskLimits:
    """The limits in force; their defaults live in the settings, nowhere else."""

    max_position_pct: float
    max_positions: int
    max_daily_loss_pct: float
    max_total_loss_pct: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskLimits:
        return cls(settings.max_position_size_pct, settings.max_positions, settings.max_daily_loss_pct,
                   settings.max_total_loss_pct)


@dataclass(frozen=True)
class Breach:
    limit: str  # the setting's field name
    value: float
    threshold: float
    action: Action
    #: "" for the whole account; a ticker; for the total loss "drawdown" (from the
    #: peak) or "baseline" (from the initial value)
    subject: str = ""

    def describe(self) -> str:
        what = {"max_daily_loss_pct": "daily loss", "max_positions": "open positions",
                "max_total_loss_pct": "drawdown from the peak" if self.subject == "drawdown"
                else "loss from the initial value",
                "max_position_size_pct": f"position {self.subject}"}[self.limit]
        unit = "" if self.limit == "max_positions" else "%"
        return f"{what} {self.value:g}{unit} reached ORCHESTRATOR_{self.limit.upper()} {self.threshold:g}{unit}"


def _loss_reached(loss_pct: float, limit_pct: float) -> bool:
    return loss_pct > 0 and loss_pct >= limit_pct


def find_breaches(metrics: PortfolioMetrics, limits: RiskLimits) -> list[Breach]:
    """Every limit ``metrics`` breach, the account-wide ones first."""
    found = []
    if _loss_reached(metrics.daily_loss_pct, limits.max_daily_loss_pct):
        found.append(Breach("max_daily_loss_pct", round(metrics.daily_loss_pct, 4), limits.max_daily_loss_pct,
                            Action.BLOCK_ENTRIES))
    if _loss_reached(metrics.drawdown_pct, limits.max_total_loss_pct):
        found.append(Breach("max_total_loss_pct", round(metrics.drawdown_pct, 4), limits.max_total_loss_pct,
                            Action.HALT, "drawdown"))
    if _loss_reached(metrics.total_loss_pct, limits.max_total_loss_pct):
        found.append(Breach("max_total_loss_pct", round(metrics.total_loss_pct, 4), limits.max_total_loss_pct,
                            Action.HALT, "baseline"))
    if metrics.positions > limits.max_positions:
        found.append(Breach("max_positions", metrics.positions, limits.max_positions, Action.WARN))
    for ticker, weight in metrics.weights_pct.items():
        if weight > limits.max_position_pct:
            found.append(Breach("max_position_size_pct", round(weight, 4), limits.max_position_pct, Action.WARN,
                                ticker))
    return found


@dataclass(frozen=True)
class Commitments:
    """What the account holds or is buying: value per ticker, and the tickers that take
    a position slot (held, even while being sold, or being bought)."""

    values: Mapping[str, int]
    slots: AbstractSet[str]


def entry_refusal(ticker: str, value: int, *, equity: int, committed: Commitments, halted: str | None,
                  entries_blocked: str | None, limits: RiskLimits) -> str | None:
    """Why a buy of ``value`` KRW of ``ticker`` may not be placed, or None if it may."""
    if halted:
        return f"trading halted: {halted}"
    if entries_blocked:
        return f"new entries blocked for the session: {entries_blocked}"
    if ticker not in committed.slots and len(committed.slots) >= limits.max_positions:
        return (f"ORCHESTRATOR_MAX_POSITIONS ({limits.max_positions}) reached: "
                f"{len(committed.slots)} positions held or being bought")
    after = committed.values.get(ticker, 0) + value
    if equity <= 0 or after > equity * limits.max_position_pct / 100:
        return (f"{ticker} would hold {after} KRW, over ORCHESTRATOR_MAX_POSITION_SIZE_PCT "
                f"({limits.max_position_pct:g}%) of equity {equity} KRW")
    return None
