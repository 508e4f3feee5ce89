"""One session of indicators from the previous session's stored values: one step of
each recursion (EMA, Wilder), and fresh windows for the rest.

Pure: arrays in, arrays out, one row per ticker. The formulas are the recurrences of
technical.py (TA-Lib's), so continuing a stored series gives what a batch computation
over the same history gives, to float rounding.

Inputs per ticker (rows = tickers, columns = sessions oldest..newest, newest = today):
``closes`` (WINDOW sessions), ``highs``/``lows``/``volumes`` (SHORT_WINDOW sessions),
and ``previous``: yesterday's stored ema_12, ema_26, ema_20, macd_signal, atr_14 and
the technical.STATE_COLUMNS.
"""

from __future__ import annotations

from typing import cast

import numpy as np

WINDOW = 120  # the longest simple window (sma_120)
SHORT_WINDOW = 20  # Bollinger, volume ratio, and the 14 + 2 + 2 rows of slow %K/%D
PREVIOUS = ["ema_12", "ema_26", "ema_20", "macd_signal", "atr_14",
            "state_macd_fast", "state_macd_slow", "state_rsi_gain", "state_rsi_loss"]
_TA_ZERO = 1e-8


def _ema_step(previous: np.ndarray, value: np.ndarray, period: int) -> np.ndarray:
    return cast(np.ndarray, previous + 2.0 / (period + 1) * (value - previous))


def _wilder_step(previous: np.ndarray, value: np.ndarray, period: int) -> np.ndarray:
    return cast(np.ndarray, previous + (value - previous) / period)


def _fast_k(closes: np.ndarray, highs: np.ndarray, lows: np.ndarray, end: int) -> np.ndarray:
    """Fast %K 14 at column ``end`` (negative, from the right) of the short windows."""
    stop = None if end == -1 else end + 1
    highest = highs[:, end - 13:stop].max(axis=1)
    lowest = lows[:, end - 13:stop].min(axis=1)
    spread = highest - lowest
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spread != 0, 100.0 * (closes[:, end] - lowest) / spread, 0.0)


def step(closes: np.ndarray, highs: np.ndarray, lows: np.ndarray, volumes: np.ndarray,
         previous: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Today's indicators and states for every ticker (row)."""
    close, prior_close = closes[:, -1], closes[:, -2]
    out: dict[str, np.ndarray] = {}
    for period in (5, 20, 60, 120):
        out[f"sma_{period}"] = closes[:, -period:].mean(axis=1)
    for period in (12, 26, 20):
        out[f"ema_{period}"] = _ema_step(previous[f"ema_{period}"], close, period)
    fast = _ema_step(previous["state_macd_fast"], close, 12)
    slow = _ema_step(previous["state_macd_slow"], close, 26)
    out["state_macd_fast"], out["state_macd_slow"] = fast, slow
    out["macd"] = fast - slow
    out["macd_signal"] = _ema_step(previous["macd_signal"], out["macd"], 9)
    out["macd_hist"] = out["macd"] - out["macd_signal"]
    change = close - prior_close
    gain = _wilder_step(previous["state_rsi_gain"], np.where(change > 0, change, 0.0), 14)
    loss = _wilder_step(previous["state_rsi_loss"], np.where(change < 0, -change, 0.0), 14)
    out["state_rsi_gain"], out["state_rsi_loss"] = gain, loss
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rsi_14"] = np.where(np.abs(total) < _TA_ZERO, 0.0, 100.0 * gain / total)
    short_closes = closes[:, -SHORT_WINDOW:]
    middle = short_closes.mean(axis=1)
    deviation = short_closes.std(axis=1)  # population, as TA-Lib
    out["bb_middle"], out["bb_upper"], out["bb_lower"] = middle, middle + 2 * deviation, middle - 2 * deviation
    high, low = highs[:, -1], lows[:, -1]
    true_range = np.maximum.reduce([high - low, np.abs(high - prior_close), np.abs(low - prior_close)])
    out["atr_14"] = _wilder_step(previous["atr_14"], true_range, 14)
    fast_k = np.column_stack([_fast_k(short_closes, highs, lows, end) for end in range(-5, 0)])
    slow_k = np.column_stack([fast_k[:, i:i + 3].mean(axis=1) for i in range(3)])
    out["stoch_k"], out["stoch_d"] = slow_k[:, -1], slow_k.mean(axis=1)
    average_volume = volumes.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["volume_ratio_20"] = np.where(average_volume > 0, volumes[:, -1] / average_volume, np.nan)
    return out
