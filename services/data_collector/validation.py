"""Checks a provider's snapshot before anything is stored.

Whole-frame problems (empty, zero-filled as KRX answers a holiday) reject the date;
row problems reject the row and are counted by reason, so a partly bad frame stores
its good rows and the run summary says what was dropped and why.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

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


class InvalidSnapshot(ValueError):
    """Nothing of the snapshot can be stored."""


@dataclass(frozen=True)
class ValidatedSnapshot:
    snapshot: MarketSnapshot
    stocks: pd.DataFrame
    prices: pd.DataFrame  # with a ``halted`` column (no trade: volume 0)
    fundamentals: pd.DataFrame
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())


def validate_snapshot(snapshot: MarketSnapshot) -> ValidatedSnapshot:
    """The storable part of ``snapshot``; raises :class:`InvalidSnapshot` if none is."""
    _require_columns(snapshot.prices, PRICE_COLUMNS, "prices")
    _require_columns(snapshot.fundamentals, FUNDAMENTAL_COLUMNS, "fundamentals")
    _require_columns(snapshot.stocks, STOCK_COLUMNS, "stocks")
    prices = snapshot.prices
    if prices.empty:
        raise InvalidSnapshot(f"{snapshot.trading_date}: empty price frame; the provider returned no rows")
    if _zero_filled(prices):
        raise InvalidSnapshot(
            f"{snapshot.trading_date}: zero-filled price frame (KRX answers a holiday this way)"
        )
    rejected: Counter[str] = Counter()
    good_prices = _valid_prices(prices, snapshot, rejected)
    if good_prices.empty:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in rejected.most_common())
        raise InvalidSnapshot(f"{snapshot.trading_date}: every price row was rejected ({reasons})")
    good_fundamentals = _valid_fundamentals(snapshot.fundamentals, snapshot, rejected)
    good_stocks = _valid_stocks(snapshot.stocks, rejected)
    return ValidatedSnapshot(snapshot, good_stocks, good_prices, good_fundamentals, rejected)


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidSnapshot(f"{what} frame lacks columns {missing}; expected {columns}")


def _zero_filled(prices: pd.DataFrame) -> bool:
    """Every open, high, low and close is 0."""
    fields = prices[_PRICE_FIELDS]
    if all(isinstance(dtype, np.dtype) and dtype.kind in "iuf" for dtype in fields.dtypes):
        return bool((fields.to_numpy() == 0).all())
    return bool((fields == 0).all(axis=None))


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
    reasons = np.select(conditions, [reason for reason, _ in checks], default="")
    failing = reasons != ""
    if failing.any():
        rejected.update(Counter(reasons[failing].tolist()))
        kept: np.ndarray = keep & ~failing
        return kept
    return keep


def _common_row_checks(frame: pd.DataFrame, snapshot: MarketSnapshot, what: str,
                       rejected: Counter[str]) -> tuple[pd.Series, np.ndarray]:
    """The cleaned tickers, and which rows pass the ticker, date and duplicate checks."""
    cleaned, ok = _clean_tickers(frame["ticker"])
    tickers = pd.Series(cleaned, index=frame.index)
    return tickers, _reject_first_failure(np.ones(len(frame), dtype=bool), [
        (f"{what}: bad ticker", ~ok),
        (f"{what}: wrong date", (frame["date"] != snapshot.trading_date).to_numpy()),
        (f"{what}: duplicate ticker", tickers.duplicated(keep=False).to_numpy()),
    ], rejected)


_SEEN_TICKERS: dict[str, tuple[str, bool]] = {}


def _clean_tickers(tickers: pd.Series) -> tuple[list[str], np.ndarray]:
    """Tickers as stripped strings, and which are 6 characters of 0-9/A-Z (memoized:
    the same few thousand codes come every day)."""
    cleaned, ok = [], np.empty(len(tickers), dtype=bool)
    for i, raw in enumerate(tickers.tolist()):
        known = _SEEN_TICKERS.get(raw) if isinstance(raw, str) else None
        if known is None:
            text = str(raw).strip()
            known = (text, _TICKER.match(text) is not None)
            if isinstance(raw, str) and len(_SEEN_TICKERS) < 100_000:
                _SEEN_TICKERS[raw] = known
        cleaned.append(known[0])
        ok[i] = known[1]
    return cleaned, ok


def _numbers(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """``columns`` as a rows x columns float array; anything not a number is NaN."""
    return np.column_stack([_floats(frame[column]) for column in columns]).reshape(len(frame), len(columns))


def _floats(column: pd.Series) -> np.ndarray:
    """A column as floats: a numeric one as it is, anything else through ``to_numeric``."""
    if not pd.api.types.is_numeric_dtype(column.dtype):
        column = pd.to_numeric(column, errors="coerce")
    if isinstance(column.dtype, np.dtype):  # NaN is NaN already
        return cast(np.ndarray, column.to_numpy(dtype=float))
    return cast(np.ndarray, column.to_numpy(dtype=float, na_value=np.nan))


def _kept(column: pd.Series, keep: np.ndarray) -> pd.Series:
    """``column``'s kept values (same dtype), indexed from 0 as the arrays of a new frame."""
    return (column if keep.all() else column[keep]).reset_index(drop=True)


_PRICE_NUMBERS = _PRICE_FIELDS + ["volume", "value", "change_pct", "market_cap"]


def _valid_prices(prices: pd.DataFrame, snapshot: MarketSnapshot, rejected: Counter[str]) -> pd.DataFrame:
    tickers, keep = _common_row_checks(prices, snapshot, "prices", rejected)
    numbers = _numbers(prices, _PRICE_NUMBERS)
    price_values = numbers[:, :4]
    o, h, lo, c, volume, value, _, market_cap = numbers.T
    with np.errstate(invalid="ignore"):
        keep = _reject_first_failure(keep, [
            ("prices: NaN or infinite price", (~np.isfinite(price_values)).any(axis=1)),
            ("prices: non-positive price", (price_values <= 0).any(axis=1)),
            ("prices: non-integer price", (price_values != np.round(price_values)).any(axis=1)),
            ("prices: high below low", h < lo),
            ("prices: open or close outside high-low",
             (np.maximum(o, c) > h) | (np.minimum(o, c) < lo)),
            ("prices: missing or negative volume",
             ~np.isfinite(volume) | ~np.isfinite(value) | (volume < 0) | (value < 0)),
            ("prices: value out of range", (volume > _MAX_INT) | (value > _MAX_INT) | (market_cap > _MAX_INT)),
            ("prices: missing market cap", ~np.isfinite(market_cap)),
        ], rejected)
    kept = numbers[keep]
    integers = kept[:, [0, 1, 2, 3, 4, 5, 7]].astype(np.int64)  # every one is finite now
    return pd.DataFrame({
        "ticker": _kept(tickers, keep), "date": _kept(prices["date"], keep),
        **{column: integers[:, index] for index, column in enumerate(_PRICE_FIELDS + ["volume", "value"])},
        "change_pct": np.where(np.isnan(kept[:, 6]), 0.0, kept[:, 6]),
        "market_cap": integers[:, 6], "market": _kept(prices["market"], keep),
        "halted": integers[:, 4] == 0,
    })


def _valid_fundamentals(frame: pd.DataFrame, snapshot: MarketSnapshot, rejected: Counter[str]) -> pd.DataFrame:
    tickers, keep = _common_row_checks(frame, snapshot, "fundamentals", rejected)
    numbers = _numbers(frame, ["bps", "per", "pbr", "eps", "div", "dps"])
    keep = _reject_first_failure(keep, [
        ("fundamentals: NaN or infinite value", ~np.isfinite(numbers).all(axis=1)),
    ], rejected)
    bps, per, pbr, eps, div, dps = numbers[keep].T
    return pd.DataFrame({
        "ticker": _kept(tickers, keep), "date": _kept(frame["date"], keep), "bps": bps.astype(np.int64),
        "per": per, "pbr": pbr, "eps": eps.astype(np.int64), "div": div, "dps": dps.astype(np.int64),
    })


def _valid_stocks(frame: pd.DataFrame, rejected: Counter[str]) -> pd.DataFrame:
    cleaned, ok = _clean_tickers(frame["ticker"])
    tickers = pd.Series(cleaned, index=frame.index)
    keep = _reject(np.ones(len(frame), dtype=bool), ~ok, "stocks: bad ticker", rejected)
    names = frame["name"]
    keep = _reject(keep, (names.isna() | (names.astype(str).str.strip() == "")).to_numpy(),
                   "stocks: missing name", rejected)
    keep = _reject(keep, tickers.where(keep).duplicated(keep=False).to_numpy(), "stocks: duplicate ticker",
                   rejected)
    return pd.DataFrame({"ticker": _kept(tickers, keep), "name": _kept(names, keep),
                         "market": _kept(frame["market"], keep)})

