"""Checks a provider's snapshot before anything is stored.

Whole-frame problems (empty, zero-filled as KRX answers a holiday) reject the date;
row problems reject the row and are counted by reason, so a partly bad frame stores
its good rows and the run summary says what was dropped and why.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
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
    if (prices[_PRICE_FIELDS] == 0).all(axis=None):
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


def _reject(frame: pd.DataFrame, bad: pd.Series, reason: str, rejected: Counter[str]) -> pd.DataFrame:
    count = int(bad.sum())
    if count:
        rejected[reason] += count
        return frame[~bad]
    return frame


def _reject_first_failure(frame: pd.DataFrame, checks: list[tuple[str, np.ndarray]],
                          rejected: Counter[str]) -> pd.DataFrame:
    """Drop every row failing a check, counted once under its first failing check."""
    if frame.empty:
        return frame
    conditions = [np.asarray(bad, dtype=bool) for _, bad in checks]
    reasons = np.select(conditions, [reason for reason, _ in checks], default="")
    failing = reasons != ""
    if failing.any():
        rejected.update(Counter(reasons[failing].tolist()))
        return frame[~failing]
    return frame


def _common_row_checks(frame: pd.DataFrame, snapshot: MarketSnapshot, what: str,
                       rejected: Counter[str]) -> pd.DataFrame:
    frame = frame.copy()
    frame["ticker"], ok = _clean_tickers(frame["ticker"])
    return _reject_first_failure(frame, [
        (f"{what}: bad ticker", ~ok),
        (f"{what}: wrong date", (frame["date"] != snapshot.trading_date).to_numpy()),
        (f"{what}: duplicate ticker", frame["ticker"].duplicated(keep=False).to_numpy()),
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


def _numeric(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame[columns].apply(pd.to_numeric, errors="coerce").astype(float)


def _valid_prices(prices: pd.DataFrame, snapshot: MarketSnapshot, rejected: Counter[str]) -> pd.DataFrame:
    frame = _common_row_checks(prices[PRICE_COLUMNS], snapshot, "prices", rejected)
    n = _numeric(frame, _PRICE_FIELDS + ["volume", "value", "change_pct", "market_cap"])
    o, h, lo, c = (n[column].to_numpy() for column in _PRICE_FIELDS)
    volume, value = n["volume"].to_numpy(), n["value"].to_numpy()
    price_values = n[_PRICE_FIELDS].to_numpy()
    with np.errstate(invalid="ignore"):
        frame = _reject_first_failure(frame, [
            ("prices: NaN or infinite price", (~np.isfinite(price_values)).any(axis=1)),
            ("prices: non-positive price", (price_values <= 0).any(axis=1)),
            ("prices: non-integer price", (price_values != np.round(price_values)).any(axis=1)),
            ("prices: high below low", h < lo),
            ("prices: open or close outside high-low",
             (np.maximum(o, c) > h) | (np.minimum(o, c) < lo)),
            ("prices: missing or negative volume",
             ~np.isfinite(volume) | ~np.isfinite(value) | (volume < 0) | (value < 0)),
            ("prices: value out of range", (volume > _MAX_INT) | (value > _MAX_INT)
             | (n["market_cap"].to_numpy() > _MAX_INT)),
            ("prices: missing market cap", ~np.isfinite(n["market_cap"].to_numpy())),
        ], rejected)
    n = n.loc[frame.index]
    frame = frame.assign(
        **{column: n[column].astype(np.int64) for column in _PRICE_FIELDS + ["volume", "value"]},
        change_pct=n["change_pct"].fillna(0.0),
        market_cap=n["market_cap"].astype(np.int64),
    )
    return frame.assign(halted=frame["volume"] == 0).reset_index(drop=True)


def _valid_fundamentals(frame: pd.DataFrame, snapshot: MarketSnapshot, rejected: Counter[str]) -> pd.DataFrame:
    frame = _common_row_checks(frame[FUNDAMENTAL_COLUMNS], snapshot, "fundamentals", rejected)
    n = _numeric(frame, ["bps", "per", "pbr", "eps", "div", "dps"])
    frame = _reject_first_failure(frame, [
        ("fundamentals: NaN or infinite value", ~np.isfinite(n.to_numpy()).all(axis=1)),
    ], rejected)
    n = n.loc[frame.index]
    return frame.assign(
        bps=n["bps"].astype(np.int64), eps=n["eps"].astype(np.int64), dps=n["dps"].astype(np.int64),
        per=n["per"], pbr=n["pbr"], div=n["div"],
    ).reset_index(drop=True)


def _valid_stocks(frame: pd.DataFrame, rejected: Counter[str]) -> pd.DataFrame:
    frame = frame[STOCK_COLUMNS].copy()
    frame["ticker"], ok = _clean_tickers(frame["ticker"])
    frame = _reject(frame, pd.Series(~ok, index=frame.index), "stocks: bad ticker", rejected)
    frame = _reject(frame, frame["name"].isna() | (frame["name"].astype(str).str.strip() == ""),
                    "stocks: missing name", rejected)
    return _reject(frame, frame["ticker"].duplicated(keep=False), "stocks: duplicate ticker",
                   rejected).reset_index(drop=True)
