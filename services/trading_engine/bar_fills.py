"""Paper fills from a session's daily bar (pure): the conservative model used when the
data provider gives daily bars only (pykrx, stored history), so nothing is observed
during the session.

The session is walked as four points, the adverse extreme first (the book holds long
positions only, so the adverse extreme is the low)::

    open (at the open) -> low (1/3 of the session) -> high (2/3) -> close (at the close)

- Orders fill through the paper broker's own rules at each point: an order placed
  before the open fills at the open price (a market order, or a limit order the open
  trades through, as the opening auction fills it); a limit buy at its limit when the
  path reaches down to it (the limit inside [low, high]), a limit sell when it reaches
  up to it; each point's fill is capped at the share of the previous session's volume
  the monitor caps a tick at.
- A position held from before the session takes its price exit (stop loss, trailing
  stop, take profit) at the first point of the path that calls for it, at the level
  crossed: the open if the session opened through it, else the stop level (rounded
  down to the tick) on the falling legs, the take-profit level (rounded up) on the
  rising one. The trailing stop's high-water mark rises with the path (to the high,
  before the last leg).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from services.common.market_calendar import Session
from services.trading_engine.signals import SignalRules, price_exit_reasons

#: the points of the path, in order
POINTS = ("open", "low", "high", "close")
#: ``(price, "up" | "down") -> price on the tick grid`` (the ticker's market and date)
TickRounding = Callable[[float, Literal["down", "up", "nearest"]], int]


@dataclass(frozen=True)
class Bar:
    """One ticker's session, in whole KRW."""

    open: int
    high: int
    low: int
    close: int

    def path(self) -> tuple[int, int, int, int]:
        """The prices at the points of :data:`POINTS`."""
        return self.open, self.low, self.high, self.close


@dataclass(frozen=True)
class BarExit:
    point: int  # index into POINTS
    price: int
    reason: str  # 'stop loss' | 'trailing stop' | 'take profit'


def path_moments(session: Session) -> tuple[datetime, datetime, datetime, datetime]:
    """When each point of the path happens: the open, a third and two thirds into the
    session, the close."""
    length = session.close - session.open
    return session.open, session.open + length / 3, session.open + length * 2 / 3, session.close


def bar_exit(average_price: float, high_water: int, bar: Bar, rules: SignalRules,
             tick: TickRounding) -> BarExit | None:
    """The price exit a position held into the session takes on the bar's path, or None."""
    previous: int | None = None
    mark = high_water
    for point, price in enumerate(bar.path()):
        reason = str(price_exit_reasons(np.array([float(price)]), np.array([average_price]),
                                        np.array([float(max(mark, price))]), rules)[0])
        if reason and previous is None:  # the session opened through it
            return BarExit(point, price, reason)
        if reason:
            return _crossing(point, average_price, mark, previous, price, rules, tick)  # type: ignore[arg-type]
        mark, previous = max(mark, price), price
    return None


def _crossing(point: int, average_price: float, mark: int, previous: int, price: int, rules: SignalRules,
              tick: TickRounding) -> BarExit:
    """The exit where the leg from ``previous`` to ``price`` crossed a level: on a
    rising leg the take profit (rounded up to the tick), on a falling one the higher of
    the stop levels it went through (rounded down); inside the leg."""
    low, high = min(previous, price), max(previous, price)
    if price > previous:
        level = tick(average_price * (1 + rules.take_profit_pct / 100), "up")
        return BarExit(point, min(max(level, low), high), "take profit")
    levels = []
    if rules.stop_loss_pct > 0:
        levels.append((average_price * (1 - rules.stop_loss_pct / 100), "stop loss"))
    if rules.trailing_stop_pct > 0:
        levels.append((mark * (1 - rules.trailing_stop_pct / 100), "trailing stop"))
    crossed, reason = max((entry for entry in levels if entry[0] >= price), default=(float(price), "stop loss"))
    return BarExit(point, min(max(tick(crossed, "down"), low), high), reason)
