"""KRX market rules used by the simulator and the paper broker: tick sizes and the
daily price band in force today. Pure functions, scalar and vectorized (numpy) forms."""

from __future__ import annotations

from datetime import date
from typing import Literal

import numpy as np

from services.common.market_rules import market_rules

_RULES = market_rules()
_LATEST = date.max  # the rules from their latest change on

#: The rules in force today (services/common/krx_market_rules.csv, where each is dated
#: and sourced): the tick table KOSPI, KOSDAQ and KONEX share from :data:`TICK_TABLE_SINCE`
#: on ((upper bound exclusive, tick) pairs; at and above the last bound :data:`TOP_TICK`),
#: and the daily price limit of +-:data:`PRICE_LIMIT` of the previous close from
#: :data:`PRICE_LIMIT_SINCE` on. Before those days the rules were others (and KOSDAQ's
#: ticks unlike KOSPI's): these functions do not cover them.
TICK_TABLE_SINCE = _RULES.row("tick_table", "KOSPI", _LATEST).since
TICK_TABLE, TOP_TICK = _RULES.on(_LATEST, "KOSPI").tick_table
PRICE_LIMIT_SINCE = _RULES.row("price_band", "KOSPI", _LATEST).since
PRICE_LIMIT = _RULES.on(_LATEST, "KOSPI").price_band_pct / 100

_BOUNDS = np.array([bound for bound, _ in TICK_TABLE], dtype=np.float64)
_TICKS = np.array([tick for _, tick in TICK_TABLE] + [TOP_TICK], dtype=np.int64)


def tick_size(price: float) -> int:
    """The tick of ``price`` (KRW)."""
    return int(ticks_of(np.array([price], dtype=np.float64))[0])


def round_to_tick(price: float, direction: Literal["down", "up", "nearest"] = "nearest") -> int:
    """``price`` on the tick grid: buy limits round up, sell limits down."""
    return int(round_to_ticks(np.array([price], dtype=np.float64), direction)[0])


def ticks_of(prices: np.ndarray) -> np.ndarray:
    """Vectorized :func:`tick_size`."""
    return _TICKS[np.searchsorted(_BOUNDS, prices, side="right")]


def round_to_ticks(prices: np.ndarray, direction: Literal["down", "up", "nearest"] = "nearest") -> np.ndarray:
    """Vectorized :func:`round_to_tick` (int64)."""
    prices = np.asarray(prices, dtype=np.float64)
    ticks = ticks_of(prices)
    steps = prices / ticks
    rounded: np.ndarray
    if direction == "down":
        rounded = np.floor(steps + 1e-9) * ticks
    elif direction == "up":
        rounded = np.ceil(steps - 1e-9) * ticks
    else:
        rounded = np.floor(steps + 0.5) * ticks
    rounded = rounded.astype(np.int64)
    # a value that crossed into a coarser band (e.g. 1,999.6 -> 2,000) is re-gridded
    coarse = ticks_of(rounded.astype(np.float64))
    off_grid = rounded % coarse != 0
    if off_grid.any():
        fix = rounded[off_grid].astype(np.float64) / coarse[off_grid]
        fix = np.floor(fix) if direction == "down" else (np.ceil(fix) if direction == "up" else np.floor(fix + 0.5))
        rounded[off_grid] = (fix * coarse[off_grid]).astype(np.int64)
    return rounded


def price_limits(previous_close: float) -> tuple[int, int]:
    """The lowest and highest price allowed today (on the tick grid, inside the band)."""
    return (
        round_to_tick(previous_close * (1 - PRICE_LIMIT), "up"),
        round_to_tick(previous_close * (1 + PRICE_LIMIT), "down"),
    )


def price_limits_array(previous_close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    previous_close = np.asarray(previous_close, dtype=np.float64)
    return (
        round_to_ticks(previous_close * (1 - PRICE_LIMIT), "up"),
        round_to_ticks(previous_close * (1 + PRICE_LIMIT), "down"),
    )
