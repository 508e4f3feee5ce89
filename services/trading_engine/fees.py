"""What a trade costs: the broker's commission and the dated sell-side tax (pure)."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from services.common.market_rules import market_rules
from services.common.settings import Settings


class NoTaxRate(ValueError):
    """The sell-tax table has no rate for the trade date."""


@dataclass(frozen=True)
class FeeSchedule:
    """Commission per side (percent) and the sell tax by trade date (percent from each
    date on). Amounts are whole KRW, floored."""

    commission_pct: float  # today's (the latest of ``commission_table``)
    tax_table: tuple[tuple[date, float], ...]
    #: the commission by trade date, when it changed over time (empty: ``commission_pct`` always)
    commission_table: tuple[tuple[date, float], ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> FeeSchedule:
        """The settings' commission and sell-tax schedule or, where they give none, the
        dated KRX rules' (the tax the same in KOSPI and KOSDAQ on every date)."""
        rules = market_rules()
        taxes = tuple(settings.sell_tax_schedule.rates) or rules.sell_tax_schedule()
        if settings.commission_pct is not None:
            return cls(settings.commission_pct, taxes)
        commissions = rules.commission_schedule()
        return cls(commissions[-1][1], taxes, commissions)

    def commission(self, amount: int, trade_date: date | None = None) -> int:
        """The commission on a trade of ``amount`` KRW (on ``trade_date``, if the rate
        changed over time; without it, today's)."""
        return _floor_percent(amount, self.commission_pct_on(trade_date))

    def commission_pct_on(self, trade_date: date | None) -> float:
        if trade_date is None or not self.commission_table:
            return self.commission_pct
        index = bisect.bisect_right([day for day, _ in self.commission_table], trade_date) - 1
        return self.commission_table[max(index, 0)][1]

    @property
    def taxed_since(self) -> date:
        """The first trade date the sell-tax table has a rate for."""
        return self.tax_table[0][0]

    def sell_tax_pct(self, trade_date: date) -> float:
        days = [day for day, _ in self.tax_table]
        index = bisect.bisect_right(days, trade_date) - 1
        if index < 0:
            raise NoTaxRate(f"no sell-tax rate for {trade_date}: the sell-tax schedule starts {self.taxed_since}")
        return self.tax_table[index][1]

    def sell_tax(self, amount: int, trade_date: date) -> int:
        """The transaction tax on selling ``amount`` KRW on ``trade_date``."""
        return _floor_percent(amount, self.sell_tax_pct(trade_date))

    def buy_cost(self, quantity: int, price: int) -> int:
        """Cash a buy takes: the amount plus commission."""
        amount = quantity * price
        return amount + self.commission(amount)

    def affordable_quantity(self, cash: int, price: int) -> int:
        """The most whole shares ``cash`` buys at ``price``, commission included."""
        if price <= 0 or cash <= 0:
            return 0
        quantity = int(cash // (price * (1 + self.commission_pct / 100)))
        while quantity > 0 and self.buy_cost(quantity, price) > cash:
            quantity -= 1
        while self.buy_cost(quantity + 1, price) <= cash:
            quantity += 1
        return quantity


def _floor_percent(amount: int, percent: float) -> int:
    # exact arithmetic on the percent as written (0.015, not 0.01499999...) avoids float noise
    return math.floor(amount * Fraction(repr(percent)) / 100) if amount > 0 else 0
