"""Write the indicator answer files: synthetic OHLCV inputs and TA-Lib's outputs for them.

Run with an interpreter that has the real TA-Lib (not a project dependency):

    /tmp/talib-venv/bin/python scripts/dev/make_talib_answers.py

It writes ``tests/data/indicators/input.csv`` (ticker, date, open, high, low, close,
volume) and ``tests/data/indicators/expected.csv`` (ticker, date and the 18 columns of
the indicator contract, DESIGN.md section 8; an empty cell is NaN). It imports nothing
from ``services/``: the answers must come from an independent reference, never from the
code under test (STYLE.md). The inputs are deterministic (fixed seed), so running it
again rewrites the same bytes for the same TA-Lib and numpy.
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import talib

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "tests" / "data" / "indicators"
SEED = 20240105
FIRST_DAY = "2023-01-02"
CALENDAR_DAYS = 420  # business days listed before the market's closures are removed
CLOSED_SHARE = 0.04  # share of business days dropped as market closures (date gaps)

COLUMNS = [
    "sma_5", "sma_20", "sma_60", "sma_120", "ema_12", "ema_26", "ema_20", "rsi_14",
    "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower", "atr_14",
    "stoch_k", "stoch_d", "volume_ratio_20",
]


@dataclass(frozen=True)
class Ticker:
    code: str
    rows: int
    price: int  # first previous close, KRW
    start: int  # first session, as an index into the market's sessions
    kind: str = "normal"  # normal | halted | gaps


TICKERS = [
    Ticker("005930", 300, 71_000, 0),  # longer than every warm-up
    Ticker("000660", 150, 128_000, 40),
    Ticker("035720", 40, 52_300, 200),  # shorter than sma_60 / sma_120
    Ticker("035420", 33, 187_500, 150),  # one row short of the MACD signal (34 rows)
    Ticker("00104K", 10, 19_850, 300),  # alphanumeric (preferred share); shorter than most
    Ticker("000210", 200, 83_000, 60, "halted"),  # 25 halted rows, 90..114
    Ticker("079190", 180, 2_780, 100, "gaps"),  # limit moves, a -80% gap, skipped dates
]
HALT = range(90, 115)


def sessions(rng: np.random.Generator) -> pd.DatetimeIndex:
    """Business days with a few market closures removed (gaps between dates)."""
    days = pd.bdate_range(FIRST_DAY, periods=CALENDAR_DAYS)
    return days[rng.random(len(days)) >= CLOSED_SHARE]


def bars(spec: Ticker, dates: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    """Integer-KRW OHLCV: a random walk of closes, opens near the previous close,
    highs/lows around them; ``halted`` rows repeat the previous close with volume 0;
    ``gaps`` rows jump the whole bar 20-30% (and once -80%) from the previous close."""
    rows = []
    previous = float(spec.price)
    jumps = {}
    if spec.kind == "gaps":
        for row in rng.choice(spec.rows, 12, replace=False):
            jumps[int(row)] = float(rng.choice([-1, 1]) * rng.uniform(0.2, 0.3))
        jumps[120] = -0.8
    for row in range(spec.rows):
        if spec.kind == "halted" and row in HALT:
            rows.append((previous, previous, previous, previous, 0))
            continue
        shift = jumps.get(row, 0.0)
        base = previous * (1.0 + shift)
        change = float(np.clip(rng.normal(0.0, 0.02), -0.25, 0.25))
        open_ = round(base * (1.0 + rng.normal(0.0, 0.008)))
        close = round(base * (1.0 + change))
        high = math.ceil(max(open_, close) * (1.0 + abs(rng.normal(0.0, 0.01))))
        low = math.floor(min(open_, close) * (1.0 - abs(rng.normal(0.0, 0.01))))
        volume = int(rng.lognormal(12.0, 0.8)) + 1
        rows.append((float(open_), float(high), float(low), float(close), volume))
        previous = float(close)
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"])
    chosen = dates[spec.start:]
    if spec.kind == "gaps":  # the ticker also skips two stretches of the market's sessions
        chosen = chosen.delete(list(range(30, 40)) + list(range(70, 73)))
    assert len(chosen) >= spec.rows, f"calendar too short for {spec.code}"
    frame.insert(0, "date", chosen[:spec.rows])
    frame.insert(0, "ticker", spec.code)
    return frame


def talib_answers(prices: pd.DataFrame) -> dict[str, np.ndarray]:
    """TA-Lib's outputs for one ticker's rows (in date order), contract column names."""
    open_, high, low, close, volume = (prices[c].to_numpy(dtype=float) for c in
                                       ("open", "high", "low", "close", "volume"))
    del open_  # no indicator of the contract reads the open
    out = {f"sma_{n}": talib.SMA(close, timeperiod=n) for n in (5, 20, 60, 120)}
    out.update({f"ema_{n}": talib.EMA(close, timeperiod=n) for n in (12, 26, 20)})
    out["rsi_14"] = talib.RSI(close, timeperiod=14)
    out["macd"], out["macd_signal"], out["macd_hist"] = talib.MACD(
        close, fastperiod=12, slowperiod=26, signalperiod=9)
    out["bb_upper"], out["bb_middle"], out["bb_lower"] = talib.BBANDS(
        close, timeperiod=20, nbdevup=2, nbdevdn=2, matype=0)
    out["atr_14"] = talib.ATR(high, low, close, timeperiod=14)
    out["stoch_k"], out["stoch_d"] = talib.STOCH(
        high, low, close, fastk_period=14, slowk_period=3, slowk_matype=0,
        slowd_period=3, slowd_matype=0)
    mean_volume = talib.SMA(volume, timeperiod=20)  # not a TA-Lib indicator: volume / SMA20
    with np.errstate(divide="ignore", invalid="ignore"):
        out["volume_ratio_20"] = np.where(mean_volume > 0, volume / mean_volume, np.nan)
    return out


def number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.17g}"


def write(frame: pd.DataFrame, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(frame.columns)
        for record in frame.itertuples(index=False):
            writer.writerow([record[0], record[1].date().isoformat(),
                             *(number(float(value)) for value in record[2:])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="directory for the two CSVs")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    market = sessions(rng)
    inputs = [bars(spec, market, rng) for spec in TICKERS]
    expected = [
        pd.concat([frame[["ticker", "date"]],
                   pd.DataFrame(talib_answers(frame), columns=COLUMNS)], axis=1)
        for frame in inputs
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    write(pd.concat(inputs, ignore_index=True), args.out / "input.csv")
    write(pd.concat(expected, ignore_index=True), args.out / "expected.csv")
    print(f"TA-Lib {talib.__version__} (C library {talib.__ta_version__.decode()}), numpy "
          f"{np.__version__}, seed {SEED}: {sum(len(f) for f in inputs)} rows, "
          f"{len(TICKERS)} tickers -> {args.out}")


if __name__ == "__main__":
    main()
