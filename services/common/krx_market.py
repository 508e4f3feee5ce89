"""KRX market rules used by the simulator and the paper broker: tick sizes and the
daily price band, of a market on a date (:func:`grid_on`) or in force today (the
module functions). Pure functions, scalar and vectorized (numpy) forms."""

from __future__ import annotations

import functools
from datetime import date
from typing import Literal

import numpy as np

from services.common.market_rules import TickTable, market_rules

Direction = Literal["down", "up", "nearest"]

_RULES = market_rules()
_LATEST = date.max  # the rules from their latest change on

#: The rules in force today (services/common/krx_market_rules.csv, where each is dated
#: and sourced): the tick table KOSPI, KOSDAQ and KONEX share from :data:`TICK_TABLE_SINCE`
#: on ((upper bound exclusive, tick) pairs; at and above the last bound :data:`TOP_TICK`),
#: and the daily price limit of +-:data:`PRICE_LIMIT` of the previous close from
#: :data:`PRICE_LIMIT_SINCE` on. Earlier dates have other rules: :func:`grid_on`.
TICK_TABLE_SINCE = _RULES.row("tick_table", "KOSPI", _LATEST).since
TICK_TABLE, TOP_TICK = _RULES.on(_LATEST, "KOSPI").tick_table
PRICE_LIMIT_SINCE = _RULES.row("price_band", "KOSPI", _LATEST).since
PRICE_LIMIT = _RULES.on(_LATEST, "KOSPI").price_band_pct / 100


class PriceGrid:
    """A tick table and a daily price band: where prices may be quoted in one market on
    one date."""

    def __init__(self, table: TickTable, band: float) -> None:
        pairs, top = table
        self.band = band  # a fraction: 0.3 for +-30%
        self._bounds = np.array([bound for bound, _ in pairs], dtype=np.float64)
        self._ticks = np.array([tick for _, tick in pairs] + [top], dtype=np.int64)

    def tick_size(self, price: float) -> int:
        """The tick of ``price`` (KRW)."""
        return int(self.ticks_of(np.array([price], dtype=np.float64))[0])

    def round_to_tick(self, price: float, direction: Direction = "nearest") -> int:
        """``price`` on the tick grid: buy limits round up, sell limits down."""
        return int(self.round_to_ticks(np.array([price], dtype=np.float64), direction)[0])

    def ticks_of(self, prices: np.ndarray) -> np.ndarray:
        """Vectorized :meth:`tick_size`."""
        ticks: np.ndarray = self._ticks[np.searchsorted(self._bounds, prices, side="right")]
        return ticks

    def round_to_ticks(self, prices: np.ndarray, direction: Direction = "nearest") -> np.ndarray:
        """Vectorized :meth:`round_to_tick` (int64)."""
        prices = np.asarray(prices, dtype=np.float64)
        ticks = self.ticks_of(prices)
        rounded: np.ndarray = (_rounded(prices / ticks, direction) * ticks).astype(np.int64)
        # a value that crossed into a coarser band (e.g. 1,999.6 -> 2,000) is re-gridded
        coarse = self.ticks_of(rounded.astype(np.float64))
        off_grid = rounded % coarse != 0
        if off_grid.any():
            fix = _rounded(rounded[off_grid].astype(np.float64) / coarse[off_grid], direction, exact=True)
            rounded[off_grid] = (fix * coarse[off_grid]).astype(np.int64)
        return rounded

    def price_limits(self, previous_close: float) -> tuple[int, int]:
        """The lowest and highest price allowed (on the tick grid, inside the band)."""
        return (self.round_to_tick(previous_close * (1 - self.band), "up"),
                self.round_to_tick(previous_close * (1 + self.band), "down"))

    def price_limits_array(self, previous_close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        previous_close = np.asarray(previous_close, dtype=np.float64)
        return (self.round_to_ticks(previous_close * (1 - self.band), "up"),
                self.round_to_ticks(previous_close * (1 + self.band), "down"))


def _rounded(steps: np.ndarray, direction: Direction, exact: bool = False) -> np.ndarray:
    slack = 0.0 if exact else 1e-9
    if direction == "down":
        return np.floor(steps + slack)
    if direction == "up":
        return np.ceil(steps - slack)
    return np.floor(steps + 0.5)


@functools.lru_cache(maxsize=256)
def grid_on(day: date, market: str) -> PriceGrid:
    """The tick table and price band of ``market`` (KOSPI or KOSDAQ) on ``day``; a day
    before the tables raises :class:`~services.common.market_rules.OutsideMarketRules`."""
    rules = _RULES.on(day, market)
    return PriceGrid(rules.tick_table, rules.price_band_pct / 100)


#: the market whose grid applies where a ticker's is not known (no stored row before the date)
FALLBACK_MARKET = "KOSPI"

TODAY = PriceGrid((TICK_TABLE, TOP_TICK), PRICE_LIMIT)

tick_size = TODAY.tick_size
round_to_tick = TODAY.round_to_tick
ticks_of = TODAY.ticks_of
round_to_ticks = TODAY.round_to_ticks
price_limits = TODAY.price_limits
price_limits_array = TODAY.price_limits_array
