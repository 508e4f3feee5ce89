"""Checks a provider's snapshot before anything is stored.

Whole-frame problems (empty, zero-filled as KRX answers a holiday) reject the date;
row problems reject the row and are counted by reason, so a partly bad frame stores
its good rows and the run summary says what was dropped and why.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.data_collector.providers import (
    FUNDAMENTAL_COLUMNS,
    PRICE_COLUMNS,
    STOCK_COLUMNS,
    MarketSnapshot,
)

_TICKER = re.compile(r"^[0-9A-Z]{6}$")
_PRICE_FIELDS = ["open", "high", "low", "close"]
_MAX_INT = 9.0e18  # BIGINT

#: A table's kept rows as columns of one length (numpy arrays, pandas Series indexed
#: from 0, or lists), in the order of the table's frame.
Columns = dict[str, Any]


class InvalidSnapshot(ValueError):
    """Nothing of the snapshot can be stored."""


@dataclass(frozen=True)
class ValidatedSnapshot:
    """The storable part of a snapshot: each table's kept rows as columns (what the
    collector stores), and as frames, built from them on first use. ``prices`` has a
    ``halted`` column (no trade: volume 0)."""

    snapshot: MarketSnapshot
    stock_columns: Columns
    price_columns: Columns
    fundamental_columns: Columns
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())

    @property
    def stock_rows(self) -> int:
        return _length(self.stock_columns)

    @property
    def price_rows(self) -> int:
        return _length(self.price_columns)

    @cached_property
    def stocks(self) -> pd.DataFrame:
        return pd.DataFrame(self.stock_columns)

    @cached_property
    def prices(self) -> pd.DataFrame:
        return pd.DataFrame(self.price_columns)

    @cached_property
    def fundamentals(self) -> pd.DataFrame:
        return pd.DataFrame(self.fundamental_columns)


def _length(columns: Columns) -> int:
    return len(next(iter(columns.values())))


def validate_snapshot(snapshot: MarketSnapshot) -> ValidatedSnapshot:
    """The storable part of ``snapshot``; raises :class:`InvalidSnapshot` if none is."""
    _require_columns(snapshot.prices, PRICE_COLUMNS, "prices")
    _require_columns(snapshot.fundamentals, FUNDAMENTAL_COLUMNS, "fundamentals")
    _require_columns(snapshot.stocks, STOCK_COLUMNS, "stocks")
    prices = snapshot.prices
    if prices.empty:
        raise InvalidSnapshot(f"{snapshot.trading_date}: empty price frame; the provider returned no rows")
    price_numbers = {name: prices[name] for name in _PRICE_NUMBERS}  # taken out once: it is slow
    if _zero_filled(prices, price_numbers):
        raise InvalidSnapshot(
            f"{snapshot.trading_date}: zero-filled price frame (KRX answers a holiday this way)"
        )
    rejected: Counter[str] = Counter()
    good_prices = _valid_prices(prices, price_numbers, snapshot, rejected)
    if not _length(good_prices):
        reasons = ", ".join(f"{reason}: {count}" for reason, count in rejected.most_common())
        raise InvalidSnapshot(f"{snapshot.trading_date}: every price row was rejected ({reasons})")
    good_fundamentals = _valid_fundamentals(snapshot.fundamentals, snapshot, rejected)
    good_stocks = _valid_stocks(snapshot.stocks, rejected)
    return ValidatedSnapshot(snapshot, good_stocks, good_prices, good_fundamentals, rejected)


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidSnapshot(f"{what} frame lacks columns {missing}; expected {columns}")


def _zero_filled(prices: pd.DataFrame, numbers: dict[str, pd.Series]) -> bool:
    """Every open, high, low and close is 0 (``numbers``: ``prices``' columns by name)."""
    columns = [numbers[name] for name in _PRICE_FIELDS]
    if all(isinstance(column.dtype, np.dtype) and column.dtype.kind in "iuf" for column in columns):
        return all(bool((column.to_numpy() == 0).all()) for column in columns)
    return bool((prices[_PRICE_FIELDS] == 0).all(axis=None))


def _reject(keep: np.ndarray, bad: np.ndarray, reason: str, rejected: Counter[str]) -> np.ndarray:
    """``keep`` without the kept rows that are ``bad``, counted under ``reason``."""
    dropped = keep & bad
    count = int(dropped.sum())
    if count:
        rejected[reason] += count
        kept: np.ndarray = keep & ~dropped
        return kept
    return keep


def _reject_first_failure(keep: np.ndarray, checks: list[tuple[str, npt.ArrayLike]],
                          rejected: Counter[str]) -> np.ndarray:
    """``keep`` without the rows failing a check, each counted once under its first
    failing check."""
    if not keep.any():
        return keep
    conditions = [np.asarray(bad, dtype=bool) & keep for _, bad in checks]
    failing = np.logical_or.reduce(conditions)
    if not failing.any():  # the usual case: nothing to name
        return keep
    reasons = np.select(conditions, [reason for reason, _ in checks], default="")
    rejected.update(Counter(reasons[failing].tolist()))
    kept: np.ndarray = keep & ~failing
    return kept


def _common_row_checks(frame: pd.DataFrame, dates: pd.Series, snapshot: MarketSnapshot, what: str,
                       rejected: Counter[str]) -> tuple[list[str], np.ndarray]:
    """The cleaned tickers, and which rows pass the ticker, date (``dates``: the frame's
    date column) and duplicate checks."""
    cleaned, ok = _clean_tickers(frame["ticker"])
    return cleaned, _reject_first_failure(np.ones(len(frame), dtype=bool), [
        (f"{what}: bad ticker", ~ok),
        (f"{what}: wrong date", _differs(dates, snapshot.trading_date)),
        (f"{what}: duplicate ticker", _duplicated(cleaned)),
    ], rejected)


def _differs(column: pd.Series, day: date) -> np.ndarray:
    """Which values are not ``day`` (``column != day``; compared value by value, in
    numpy, when every value is a ``date``, as the frames of a day usually hold)."""
    values = column.to_numpy()
    if not len(values):
        return np.zeros(0, dtype=bool)
    if values.dtype == object and _all_of_type(values, date):
        differs: np.ndarray = values != day
        return differs
    return cast(np.ndarray, (column != day).to_numpy())


def _all_of_type(values: Iterable[Any], kind: type) -> bool:
    """Every value is exactly a ``kind`` (no subclass); true of no values."""
    return set(map(type, values)) <= {kind}


def _duplicated(values: list[Any]) -> np.ndarray:
    """Which values occur more than once, every copy (pandas' ``duplicated(keep=False)``)."""
    if len(set(values)) == len(values):  # the usual case
        return np.zeros(len(values), dtype=bool)
    counts = Counter(values)
    return np.fromiter((counts[value] > 1 for value in values), dtype=bool, count=len(values))


_SEEN_TICKERS: dict[str, tuple[str, bool]] = {}
#: The codes of :data:`_SEEN_TICKERS` that are clean already: stripped and valid.
_CLEAN_TICKERS: set[str] = set()


def _clean_tickers(tickers: pd.Series) -> tuple[list[str], np.ndarray]:
    """Tickers as stripped strings, and which are 6 characters of 0-9/A-Z (memoized:
    the same few thousand codes come every day, usually all of them clean)."""
    values = tickers.tolist()
    if _all_of_type(values, str) and _CLEAN_TICKERS.issuperset(values):
        return values, np.ones(len(values), dtype=bool)
    cleaned, ok = [], np.empty(len(values), dtype=bool)
    for i, raw in enumerate(values):
        known = _SEEN_TICKERS.get(raw) if isinstance(raw, str) else None
        if known is None:
            text = str(raw).strip()
            known = (text, _TICKER.match(text) is not None)
            if isinstance(raw, str) and len(_SEEN_TICKERS) < 100_000:
                _SEEN_TICKERS[raw] = known
                if known == (raw, True):
                    _CLEAN_TICKERS.add(raw)
        cleaned.append(known[0])
        ok[i] = known[1]
    return cleaned, ok


def _blank(names: pd.Series) -> np.ndarray:
    """Which names are missing, or empty once stripped (as ``astype(str).str.strip()``)."""
    values = names.tolist()
    if _all_of_type(values, str):  # no str is missing
        return ~np.fromiter(map(bool, map(str.strip, values)), dtype=bool, count=len(values))
    blank = np.fromiter((not str(name).strip() for name in values), dtype=bool, count=len(values))
    missing: np.ndarray = names.isna().to_numpy() | blank
    return missing


def _numbers(columns: Iterable[pd.Series]) -> np.ndarray:
    """``columns`` as a columns x rows float array; anything not a number is NaN."""
    return np.stack([_floats(column) for column in columns])


def _floats(column: pd.Series) -> np.ndarray:
    """A column as floats: a numeric one as it is, anything else through ``to_numeric``."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
        return cast(np.ndarray, column.to_numpy(dtype=float))
    if not pd.api.types.is_numeric_dtype(column.dtype):
        column = pd.to_numeric(column, errors="coerce")
    if isinstance(column.dtype, np.dtype):  # NaN is NaN already
        return cast(np.ndarray, column.to_numpy(dtype=float))
    return cast(np.ndarray, column.to_numpy(dtype=float, na_value=np.nan))


def _kept(column: pd.Series, keep: np.ndarray) -> pd.Series:
    """``column``'s kept values (same dtype), indexed from 0 as the arrays of a new frame."""
    if keep.all() and _indexed_from_zero(column):  # as it is (the usual case)
        return column
    return (column if keep.all() else column[keep]).reset_index(drop=True)


def _indexed_from_zero(column: pd.Series) -> bool:
    """``column`` is indexed 0, 1, 2... with no index name (as ``reset_index`` leaves it)."""
    index = column.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None


def _kept_values(values: list[str], keep: np.ndarray) -> list[str] | pd.Series:
    """The kept ``values``; none kept: an empty column, of the dtype a frame gives them."""
    if not keep.any():
        return pd.Series(values)[:0]
    return values if keep.all() else [value for value, kept in zip(values, keep.tolist()) if kept]


_PRICE_NUMBERS = _PRICE_FIELDS + ["volume", "value", "change_pct", "market_cap"]


def _valid_prices(prices: pd.DataFrame, price_numbers: dict[str, pd.Series], snapshot: MarketSnapshot,
                  rejected: Counter[str]) -> Columns:
    """``price_numbers``: the columns of :data:`_PRICE_NUMBERS` by name."""
    dates = prices["date"]
    tickers, keep = _common_row_checks(prices, dates, snapshot, "prices", rejected)
    numbers = _numbers(price_numbers[name] for name in _PRICE_NUMBERS)
    price_values = numbers[:4]
    o, h, lo, c, volume, value, _, market_cap = numbers
    with np.errstate(invalid="ignore"):
        keep = _reject_first_failure(keep, [
            ("prices: NaN or infinite price", (~np.isfinite(price_values)).any(axis=0)),
            ("prices: non-positive price", (price_values <= 0).any(axis=0)),
            ("prices: non-integer price", (price_values != np.round(price_values)).any(axis=0)),
            ("prices: high below low", h < lo),
            ("prices: open or close outside high-low",
             (np.maximum(o, c) > h) | (np.minimum(o, c) < lo)),
            ("prices: missing or negative volume",
             ~np.isfinite(volume) | ~np.isfinite(value) | (volume < 0) | (value < 0)),
            ("prices: value out of range", (volume > _MAX_INT) | (value > _MAX_INT) | (market_cap > _MAX_INT)),
            ("prices: missing market cap", ~np.isfinite(market_cap)),
        ], rejected)
    kept = numbers if keep.all() else numbers[:, keep]
    # every one is finite now; one row per column
    integers = kept[[0, 1, 2, 3, 4, 5, 7]].astype(np.int64)
    change_pct = kept[6]
    return {
        "ticker": _kept_values(tickers, keep), "date": _kept(dates, keep),
        **{column: integers[index] for index, column in enumerate(_PRICE_FIELDS + ["volume", "value"])},
        "change_pct": np.where(np.isnan(change_pct), 0.0, change_pct),
        "market_cap": integers[6], "market": _kept(prices["market"], keep),
        "halted": integers[4] == 0,
    }


def _valid_fundamentals(frame: pd.DataFrame, snapshot: MarketSnapshot, rejected: Counter[str]) -> Columns:
    dates = frame["date"]
    tickers, keep = _common_row_checks(frame, dates, snapshot, "fundamentals", rejected)
    numbers = _numbers(frame[name] for name in ["bps", "per", "pbr", "eps", "div", "dps"])
    keep = _reject_first_failure(keep, [
        ("fundamentals: NaN or infinite value", ~np.isfinite(numbers).all(axis=0)),
    ], rejected)
    bps, per, pbr, eps, div, dps = numbers if keep.all() else numbers[:, keep]
    return {
        "ticker": _kept_values(tickers, keep), "date": _kept(dates, keep), "bps": bps.astype(np.int64),
        "per": per, "pbr": pbr, "eps": eps.astype(np.int64), "div": div, "dps": dps.astype(np.int64),
    }


def _valid_stocks(frame: pd.DataFrame, rejected: Counter[str]) -> Columns:
    tickers, ok = _clean_tickers(frame["ticker"])
    keep = _reject(np.ones(len(frame), dtype=bool), ~ok, "stocks: bad ticker", rejected)
    names = frame["name"]
    keep = _reject(keep, _blank(names), "stocks: missing name", rejected)
    # among the rows kept so far (the others are None here: dropped already)
    kept_tickers = tickers if keep.all() else [t if k else None for t, k in zip(tickers, keep.tolist())]
    keep = _reject(keep, _duplicated(kept_tickers), "stocks: duplicate ticker", rejected)
    return {"ticker": _kept_values(tickers, keep), "name": _kept(names, keep),
            "market": _kept(frame["market"], keep)}
