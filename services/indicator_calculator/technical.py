"""Technical indicators for a whole universe at once, defined as TA-Lib defines them.

``compute_indicators(prices)`` lays the rows out as a (row-of-ticker x ticker) matrix,
so every indicator is a numpy operation over all tickers together; recursive ones
(EMA, Wilder smoothing) loop over time steps, never over tickers. Each ticker's rows
are its sessions in date order (gaps in dates are simply the rows it has).

Definitions and first valid row (warm-up), as TA-Lib with its default settings:

=================  ==========================================================  =====
column             definition                                                  first
=================  ==========================================================  =====
sma_n              simple mean of the last n closes                             n-1
ema_n              EMA, k = 2/(n+1), seeded with the SMA of the first n closes  n-1
rsi_14             Wilder: gains/losses seeded by their 14-change means         14
macd*              EMA12 - EMA26, both started at row 25 (EMA12 seeded with     33
                   the SMA of closes 14..25); signal EMA9 of MACD seeded with
                   the mean of MACD 25..33; hist = macd - signal
bb_*               SMA20 +- 2 population standard deviations                    19
atr_14             true range from row 1; SMA of TR 1..14, then Wilder          14
stoch_k, stoch_d   fast %K 14 (0 when the range is 0), slow %K = SMA3,          17
                   %D = SMA3 of slow %K; both reported from row 17
volume_ratio_20    volume / SMA20(volume); NaN when that mean is 0              19
=================  ==========================================================  =====
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

INPUT_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume"]
INDICATOR_COLUMNS = [
    "sma_5", "sma_20", "sma_60", "sma_120", "ema_12", "ema_26", "ema_20", "rsi_14",
    "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower", "atr_14",
    "stoch_k", "stoch_d", "volume_ratio_20",
]
_TA_ZERO = 1e-8  # TA-Lib's TA_IS_ZERO threshold


#: The recursive states behind the indicators (not part of the contract): stored so the
#: next session can be computed by one step of each recursion (see incremental.py).
STATE_COLUMNS = ["state_macd_fast", "state_macd_slow", "state_rsi_gain", "state_rsi_loss"]


def compute_indicators(prices: pd.DataFrame) -> pd.DataFrame:
    """One row of indicators per input row (same index), NaN during warm-up."""
    return _compute(prices, with_state=False)


def compute_indicators_with_state(prices: pd.DataFrame) -> pd.DataFrame:
    """:func:`compute_indicators` plus the :data:`STATE_COLUMNS`."""
    return _compute(prices, with_state=True)


def _compute(prices: pd.DataFrame, *, with_state: bool) -> pd.DataFrame:
    missing = [column for column in INPUT_COLUMNS if column not in prices.columns]
    if missing:
        raise ValueError(f"prices lack columns {missing}; expected {INPUT_COLUMNS}")
    names = INDICATOR_COLUMNS + (STATE_COLUMNS if with_state else [])
    if prices.empty:
        return pd.DataFrame(np.nan, index=prices.index, columns=names, dtype=float)
    layout = _Layout(prices)
    close, high, low = layout.matrix("close"), layout.matrix("high"), layout.matrix("low")
    volume = layout.matrix("volume")
    # one contiguous row per indicator (pandas keeps columns that way: no transposing
    # copy); each indicator matrix is gathered as soon as it exists and then dropped,
    # so the temporaries stay few and their memory is reused
    values = np.empty((len(names), len(prices)))
    position = {name: index for index, name in enumerate(names)}
    for name, matrix in _indicator_matrices(close, high, low, volume, with_state=with_state):
        values[position[name]] = layout.rows(matrix)
    return pd.DataFrame(values.T, index=prices.index, columns=names, copy=False)


def _indicator_matrices(close: np.ndarray, high: np.ndarray, low: np.ndarray, volume: np.ndarray,
                        *, with_state: bool) -> Iterator[tuple[str, np.ndarray]]:
    for period in (5, 20, 60, 120):
        yield f"sma_{period}", sma(close, period)
    for period in (12, 26, 20):
        yield f"ema_{period}", ema(close, period)
    yield "rsi_14", rsi(close, 14)
    yield "atr_14", atr(high, low, close, 14)
    yield "volume_ratio_20", volume_ratio(volume, 20)
    yield from zip(("macd", "macd_signal", "macd_hist"), macd(close, 12, 26, 9))
    yield from zip(("bb_upper", "bb_middle", "bb_lower"), bollinger(close, 20, 2.0))
    yield from zip(("stoch_k", "stoch_d"), stochastic(high, low, close, 14, 3, 3))
    if with_state:
        yield from zip(("state_macd_fast", "state_macd_slow"), macd_emas(close, 12, 26))
        yield from zip(("state_rsi_gain", "state_rsi_loss"), rsi_averages(close, 14))


class _Layout:
    """Rows grouped by ticker in date order, placed in a matrix: row = the ticker's
    n-th session, column = the ticker. Works on integer codes (no string sorting)."""

    def __init__(self, prices: pd.DataFrame) -> None:
        ticker_codes, tickers = pd.factorize(prices["ticker"].astype(str), sort=False)
        date_codes, dates = pd.factorize(prices["date"], sort=False)
        date_rank = np.empty(len(dates), dtype=np.int64)
        date_rank[np.argsort(pd.to_datetime(pd.Index(dates)).to_numpy(), kind="stable")] = np.arange(len(dates))
        key = ticker_codes.astype(np.int64) * len(dates) + date_rank[date_codes]
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        duplicated = sorted_key[1:] == sorted_key[:-1]
        if duplicated.any():
            row = order[int(np.flatnonzero(duplicated)[0])]
            raise ValueError(f"duplicate rows for ticker {prices['ticker'].iloc[row]} on "
                             f"{pd.Timestamp(prices['date'].iloc[row]).date()}; "
                             "expected one row per (ticker, date)")
        sorted_tickers = ticker_codes[order]
        new_ticker = np.r_[True, sorted_tickers[1:] != sorted_tickers[:-1]]
        starts = np.flatnonzero(new_ticker)
        columns_sorted = np.cumsum(new_ticker) - 1
        positions_sorted = np.arange(len(order)) - starts[columns_sorted]
        # per original row: where it sits in the matrix
        self.positions = np.empty(len(order), dtype=np.int64)
        self.codes = np.empty(len(order), dtype=np.int64)
        self.positions[order] = positions_sorted
        self.codes[order] = columns_sorted
        self.shape = (int(positions_sorted.max()) + 1, len(starts))
        self._prices = prices

    def matrix(self, column: str) -> np.ndarray:
        values = np.full(self.shape, np.nan)
        values[self.positions, self.codes] = self._prices[column].to_numpy(dtype=float)
        return values

    def rows(self, matrix: np.ndarray) -> np.ndarray:
        return matrix[self.positions, self.codes]


# --- building blocks over (time x ticker) matrices ------------------------------------------


def sma(values: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average; NaN until ``period`` rows (or if the window holds a NaN)."""
    out = np.full(values.shape, np.nan)
    if len(values) < period:
        return out
    nan = np.isnan(values)
    has_nan = bool(nan.any())
    sums = np.zeros((len(values) + 1, values.shape[1]))
    np.cumsum(np.where(nan, 0.0, values) if has_nan else values, axis=0, out=sums[1:])
    np.subtract(sums[period:], sums[:-period], out=out[period - 1:])
    out[period - 1:] /= period
    if has_nan:  # a window holding a NaN (a ticker's padding) has no mean
        nans = np.zeros((len(values) + 1, values.shape[1]))
        np.cumsum(nan, axis=0, out=nans[1:])
        out[period - 1:][(nans[period:] - nans[:-period]) > 0] = np.nan
    return out


#: Up to this many tickers a recursion runs on plain floats, one ticker at a time: a
#: numpy call per time step costs more than the arithmetic of a few tickers.
_FLOAT_LOOP_TICKERS = 16


def _recursive(values: np.ndarray, start: int, seed: np.ndarray, weight: float) -> np.ndarray:
    """out[start] = seed; out[t] = out[t-1] + weight * (values[t] - out[t-1])."""
    out = np.full(values.shape, np.nan)
    if start >= len(values):
        return out
    out[start] = seed
    if values.shape[1] <= _FLOAT_LOOP_TICKERS:  # the same IEEE operations, in the same order
        for column in range(values.shape[1]):
            out[start + 1:, column] = _float_recursion(values[start + 1:, column].tolist(),
                                                       float(out[start, column]), weight)
        return out
    for t in range(start + 1, len(values)):
        out[t] = out[t - 1] + weight * (values[t] - out[t - 1])
    return out


def _float_recursion(values: list[float], previous: float, weight: float) -> list[float]:
    """:func:`_recursive` of one ticker after its seed."""
    out = []
    for value in values:
        previous = previous + weight * (value - previous)
        out.append(previous)
    return out


def ema_from(values: np.ndarray, period: int, start: int) -> np.ndarray:
    """TA-Lib's EMA begun at row ``start``, seeded with the SMA of the ``period`` rows
    ending there."""
    if start >= len(values):
        return np.full(values.shape, np.nan)
    seed = sma(values[start - period + 1:start + 1], period)[-1]
    return _recursive(values, start, seed, 2.0 / (period + 1))


def ema(values: np.ndarray, period: int) -> np.ndarray:
    return ema_from(values, period, period - 1)


def wilder_from(values: np.ndarray, period: int, start: int, seed: np.ndarray) -> np.ndarray:
    """Wilder smoothing: out[t] = (out[t-1] * (period - 1) + values[t]) / period."""
    return _recursive(values, start, seed, 1.0 / period)


def _previous(values: np.ndarray) -> np.ndarray:
    return np.vstack([np.full((1, values.shape[1]), np.nan), values[:-1]])


def rsi_averages(close: np.ndarray, period: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """Wilder's average gain and loss (seeded by the means of the first changes)."""
    change = close - _previous(close)
    gain, loss = np.where(change > 0, change, 0.0), np.where(change < 0, -change, 0.0)
    gain[np.isnan(change)] = np.nan
    loss[np.isnan(change)] = np.nan
    if len(close) <= period:
        return np.full(close.shape, np.nan), np.full(close.shape, np.nan)
    return (wilder_from(gain, period, period, gain[1:period + 1].mean(axis=0)),
            wilder_from(loss, period, period, loss[1:period + 1].mean(axis=0)))


def rsi_from_averages(average_gain: np.ndarray, average_loss: np.ndarray) -> np.ndarray:
    total = average_gain + average_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(np.abs(total) < _TA_ZERO, 0.0, 100.0 * average_gain / total)
    value[np.isnan(total)] = np.nan
    return value


def rsi(close: np.ndarray, period: int = 14) -> np.ndarray:
    return rsi_from_averages(*rsi_averages(close, period))


def macd_emas(close: np.ndarray, fast: int = 12, slow: int = 26) -> tuple[np.ndarray, np.ndarray]:
    """MACD's own fast and slow EMAs: both start where the slow one can (row slow-1)."""
    begin = slow - 1
    return ema_from(close, fast, begin), ema_from(close, slow, begin)


def macd(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    begin = slow - 1
    fast_ema, slow_ema = macd_emas(close, fast, slow)
    line = fast_ema - slow_ema
    signal_line = ema_from(line, signal, begin + signal - 1) if len(close) > begin + signal - 1 \
        else np.full(close.shape, np.nan)
    first = begin + signal - 1
    line[:first] = np.nan
    return line, signal_line, line - signal_line


def bollinger(close: np.ndarray, period: int = 20, width: float = 2.0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    middle = sma(close, period)
    # population variance from running sums, as TA-Lib computes it; the prices are
    # shifted by each ticker's first close first, which keeps the sums small and exact
    shifted = close - close[:1]
    variance = sma(shifted * shifted, period) - sma(shifted, period) ** 2
    deviation = np.sqrt(np.where(variance < 1e-14, 0.0, variance))
    return middle + width * deviation, middle, middle - width * deviation


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    previous = _previous(close)
    ranges = np.stack([high - low, np.abs(high - previous), np.abs(low - previous)])
    out: np.ndarray = ranges.max(axis=0)
    out[np.isnan(previous)] = np.nan  # TA-Lib's true range starts at row 1
    return out


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    ranges = true_range(high, low, close)
    if len(close) <= period:
        return np.full(close.shape, np.nan)
    return wilder_from(ranges, period, period, ranges[1:period + 1].mean(axis=0))


def stochastic(high: np.ndarray, low: np.ndarray, close: np.ndarray, fast_k: int = 14,
               slow_k: int = 3, slow_d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    fast = np.full(close.shape, np.nan)
    if len(close) >= fast_k:
        highest = np.lib.stride_tricks.sliding_window_view(high, fast_k, axis=0).max(axis=-1)
        lowest = np.lib.stride_tricks.sliding_window_view(low, fast_k, axis=0).min(axis=-1)
        spread = highest - lowest
        with np.errstate(invalid="ignore", divide="ignore"):
            fast[fast_k - 1:] = np.where(spread != 0, 100.0 * (close[fast_k - 1:] - lowest) / spread, 0.0)
        fast[fast_k - 1:][np.isnan(spread)] = np.nan
    k = sma(fast, slow_k)
    d = sma(k, slow_d)
    first = fast_k + slow_k + slow_d - 3  # TA-Lib reports both from the same row
    k[:first] = np.nan
    return k, d


def volume_ratio(volume: np.ndarray, period: int = 20) -> np.ndarray:
    average = sma(volume, period)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(average > 0, volume / average, np.nan)
