"""The KRX market rules by date, from one declared data file
(``krx_market_rules.csv``, each row with its source): tick-size tables (KOSPI's and
KOSDAQ's apart before 2023-01-25), the daily price band, the securities transaction tax
and the rural special tax by market, and the default commission.

Each row applies from its ``since`` date until the next row of the same rule and
market (a row of market ``ALL`` holds for both). A date before a rule's first row is
outside the tables: :class:`OutsideMarketRules`, said in one line.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

RULES_FILE = Path(__file__).with_name("krx_market_rules.csv")
MARKETS = ("KOSPI", "KOSDAQ")
RULES = ("tick_table", "price_band", "securities_tax", "rural_tax", "commission")
_HEADER = ["rule", "market", "since", "value", "source"]


class OutsideMarketRules(ValueError):
    """A date the rule tables do not cover (before a rule's first row)."""


#: a tick table: (upper bound exclusive, tick) pairs, then the tick at and above the last bound
TickTable = tuple[tuple[tuple[int, int], ...], int]


@dataclass(frozen=True)
class Rule:
    rule: str
    market: str  # KOSPI, KOSDAQ or ALL
    since: date
    value: str
    source: str


@dataclass(frozen=True)
class DayRules:
    """The rules of one market on one trading date."""

    day: date
    market: str
    tick_table: TickTable
    price_band_pct: float
    securities_tax_pct: float
    rural_tax_pct: float
    commission_pct: float

    def tick(self, price: int) -> int:
        """The tick of ``price`` (KRW) that day in that market."""
        pairs, top = self.tick_table
        return next((tick for bound, tick in pairs if price < bound), top)

    @property
    def sell_tax_pct(self) -> float:
        """What a sale pays in tax: the securities transaction tax and the rural special tax."""
        return round(self.securities_tax_pct + self.rural_tax_pct, 6)


class MarketRules:
    """The rows of the rules file, looked up by rule, market and date."""

    def __init__(self, rows: Iterable[Rule]) -> None:
        self.rows = sorted(rows, key=lambda row: (row.rule, row.since))
        self._of = {(rule, market): [row for row in self.rows if row.rule == rule and row.market in (market, "ALL")]
                    for rule in RULES for market in MARKETS}

    def row(self, rule: str, market: str, day: date) -> Rule:
        """The row of ``rule`` in force for ``market`` on ``day``."""
        if market not in MARKETS:
            raise ValueError(f"market {market!r}; expected one of {', '.join(MARKETS)}")
        rows = self._of.get((rule, market), [])
        applying = [row for row in rows if row.since <= day]
        if not applying:
            first = min((row.since for row in rows), default=None)
            raise OutsideMarketRules(
                f"{day} is outside the KRX market rules: the {rule.replace('_', ' ')} of {market} is known from "
                f"{first} on (services/common/{RULES_FILE.name})")
        return applying[-1]

    def on(self, day: date, market: str) -> DayRules:
        """Every rule of ``market`` in force on ``day``."""
        return DayRules(
            day, market, parse_tick_table(self.row("tick_table", market, day).value),
            float(self.row("price_band", market, day).value), float(self.row("securities_tax", market, day).value),
            float(self.row("rural_tax", market, day).value), float(self.row("commission", market, day).value))

    def first_day(self) -> date:
        """The first date every rule of every market is known on."""
        return max(min(row.since for row in self.rows if row.rule == rule and row.market in (market, "ALL"))
                   for rule in RULES for market in MARKETS)

    @functools.cache  # noqa: B019 (the rules are read once and live as long as the process)
    def sell_tax_schedule(self) -> tuple[tuple[date, float], ...]:
        """The sell-side tax (both taxes) from each date it changed, the same in both
        markets (a ValueError if the file says otherwise on some date)."""
        days = sorted({row.since for row in self.rows if row.rule in ("securities_tax", "rural_tax")})
        schedule: list[tuple[date, float]] = []
        for day in days:
            kospi, kosdaq = (self.on_taxes(day, market) for market in MARKETS)
            if kospi != kosdaq:
                raise ValueError(f"the sell tax differs between KOSPI ({kospi}%) and KOSDAQ ({kosdaq}%) on {day}; "
                                 "a paper fill needs its ticker's market")
            if not schedule or schedule[-1][1] != kospi:
                schedule.append((day, kospi))
        return tuple(schedule)

    @functools.cache  # noqa: B019 (as above)
    def commission_schedule(self) -> tuple[tuple[date, float], ...]:
        """The default commission (percent per side) from each date it changed."""
        rows = [row for row in self.rows if row.rule == "commission" and row.market in ("ALL", "KOSPI")]
        return tuple((row.since, float(row.value)) for row in rows)

    def on_taxes(self, day: date, market: str) -> float:
        return round(float(self.row("securities_tax", market, day).value)
                     + float(self.row("rural_tax", market, day).value), 6)


def parse_tick_table(text: str) -> TickTable:
    """'2000:1,5000:5,...,top:1000' -> (((2000, 1), (5000, 5), ...), 1000)."""
    pairs, top = [], None
    for part in text.split(","):
        bound, _, tick = part.partition(":")
        if bound.strip() == "top":
            top = int(tick)
        else:
            pairs.append((int(bound), int(tick)))
    if top is None or [bound for bound, _ in pairs] != sorted({bound for bound, _ in pairs}):
        raise ValueError(f"tick table {text!r}: expected increasing bound:tick pairs, then top:tick")
    return tuple(pairs), top


def read_rules(path: Path = RULES_FILE) -> MarketRules:
    """The rules of ``path``; a ValueError names the line that is not accepted and why."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    reader = csv.reader(lines)
    header = next(reader, None)
    if header != _HEADER:
        raise ValueError(f"{path.name}: expected the header {','.join(_HEADER)}")
    rows = []
    for number, fields in enumerate(reader, start=2):
        try:
            rows.append(_rule(fields))
        except ValueError as exc:
            raise ValueError(f"{path.name}, row {number}: {exc}") from None
    return MarketRules(rows)


def _rule(fields: list[str]) -> Rule:
    if len(fields) != len(_HEADER):
        raise ValueError(f"expected {len(_HEADER)} fields ({','.join(_HEADER)}), got {len(fields)}")
    rule, market, since, value, source = (field.strip() for field in fields)
    if rule not in RULES:
        raise ValueError(f"rule {rule!r}; expected one of {', '.join(RULES)}")
    if market not in (*MARKETS, "ALL"):
        raise ValueError(f"market {market!r}; expected KOSPI, KOSDAQ or ALL")
    if not source:
        raise ValueError("every row names its source")
    if rule == "tick_table":
        parse_tick_table(value)
    elif not 0 <= float(value) <= 100:
        raise ValueError(f"{rule} {value}: expected a percentage")
    return Rule(rule, market, date.fromisoformat(since), value, source)


@functools.cache
def market_rules() -> MarketRules:
    """The rules of the declared file, read once."""
    return read_rules()
