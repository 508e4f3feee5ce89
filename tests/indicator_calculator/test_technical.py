"""Technical indicators (DESIGN.md section 8): TA-Lib's definitions, vectorized over tickers.

No expected value here comes from the code under test. They are:

- TA-Lib's own outputs, in ``tests/data/indicators/expected.csv``, for the synthetic
  inputs in ``input.csv`` (both written by ``scripts/dev/make_talib_answers.py`` with the
  real TA-Lib, which is not a project dependency; see ``tests/data/README.md``);
- hand-worked cases on series whose indicators follow from the definitions;
- the worked RSI example StockCharts publishes in ChartSchool.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.indicator_calculator.technical import compute_indicators

ANSWERS = Path(__file__).parents[1] / "data" / "indicators"
INPUT_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume"]
#: The output columns of the contract, in its order (DESIGN.md section 8).
CONTRACT_COLUMNS = [
    "sma_5", "sma_20", "sma_60", "sma_120", "ema_12", "ema_26", "ema_20", "rsi_14",
    "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower", "atr_14",
    "stoch_k", "stoch_d", "volume_ratio_20",
]
#: First row of a ticker (0-based) with a value: TA-Lib's lookback for these settings.
FIRST_ROW = {
    "sma_5": 4, "sma_20": 19, "sma_60": 59, "sma_120": 119,
    "ema_12": 11, "ema_26": 25, "ema_20": 19, "rsi_14": 14,
    "macd": 33, "macd_signal": 33, "macd_hist": 33,
    "bb_upper": 19, "bb_middle": 19, "bb_lower": 19, "atr_14": 14,
    "stoch_k": 17, "stoch_d": 17, "volume_ratio_20": 19,
}
RTOL, ATOL = 1e-6, 1e-9  # relative, and absolute for values near zero


# --- helpers -----------------------------------------------------------------------------


def bars(close, *, high=None, low=None, volume=None, ticker: str = "000001",
         start: str = "2024-01-02") -> pd.DataFrame:
    """One ticker's sessions on consecutive business days; open = close, and high/low
    = close and volume 1,000 unless given."""
    close = np.asarray(close, dtype=float)
    return pd.DataFrame({
        "ticker": ticker,
        "date": pd.bdate_range(start, periods=len(close)),
        "open": close,
        "high": close if high is None else np.asarray(high, dtype=float),
        "low": close if low is None else np.asarray(low, dtype=float),
        "close": close,
        "volume": np.full(len(close), 1_000.0) if volume is None else volume,
    }).astype({"volume": float})


def assert_matches(actual, expected, what: str) -> None:
    """NaN exactly where ``expected`` is NaN; elsewhere equal to RTOL (ATOL near zero)."""
    actual, expected = pd.Series(actual), pd.Series(expected)
    got, want = actual.to_numpy(dtype=float), expected.to_numpy(dtype=float)
    assert len(got) == len(want), f"{what}: {len(got)} values, expected {len(want)}"
    nan_differs = np.isnan(got) != np.isnan(want)
    assert not nan_differs.any(), (
        f"{what}: {int(np.isnan(got).sum())} NaN, expected {int(np.isnan(want).sum())}; first "
        f"differences at {list(expected.index[nan_differs][:3])}: got {got[nan_differs][:3]}, "
        f"expected {want[nan_differs][:3]}")
    valued = ~np.isnan(want)
    error = np.abs(got[valued] - want[valued])
    off = error > np.maximum(RTOL * np.abs(want[valued]), ATOL)
    assert not off.any(), (
        f"{what}: {int(off.sum())} of {int(valued.sum())} values differ; first at "
        f"{list(expected.index[valued][off][:3])}: got {got[valued][off][:3]}, "
        f"expected {want[valued][off][:3]}")


def column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=float)


# --- the TA-Lib answer files ---------------------------------------------------------------


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    """The synthetic inputs, in the answer file's order (by ticker, then date)."""
    frame = pd.read_csv(ANSWERS / "input.csv", dtype={"ticker": str}, parse_dates=["date"])
    assert list(frame.columns) == INPUT_COLUMNS
    return frame


@pytest.fixture(scope="module")
def expected(prices: pd.DataFrame) -> pd.DataFrame:
    """TA-Lib's outputs keyed by (ticker, date); an empty cell is NaN."""
    frame = pd.read_csv(ANSWERS / "expected.csv", dtype={"ticker": str}, parse_dates=["date"])
    assert list(frame.columns) == ["ticker", "date"] + CONTRACT_COLUMNS
    frame = frame.set_index(["ticker", "date"])
    assert frame.index.equals(pd.MultiIndex.from_frame(prices[["ticker", "date"]]))
    return frame.astype(float)


@pytest.fixture(scope="module")
def shuffled(prices: pd.DataFrame) -> pd.DataFrame:
    """The inputs in random order, under a non-default index (descending, with holes)."""
    frame = prices.set_axis(10_000 - 7 * np.arange(len(prices)))
    return frame.iloc[np.random.default_rng(4).permutation(len(frame))]


@pytest.fixture(scope="module")
def output(shuffled: pd.DataFrame) -> pd.DataFrame:
    before = shuffled.copy()
    result = compute_indicators(shuffled)
    pd.testing.assert_frame_equal(shuffled, before)  # the input is left as it was
    return result


def test_output_is_one_row_per_input_row_with_its_index_and_order(shuffled, output):
    assert output.index.equals(shuffled.index)
    assert list(output.columns) == CONTRACT_COLUMNS
    assert (output.dtypes == np.float64).all()


@pytest.mark.parametrize("name", CONTRACT_COLUMNS)
def test_every_column_equals_talib_with_the_same_warmup(name, shuffled, output, expected):
    """Each output row is matched to the answer by its own input row's (ticker, date)."""
    keys = pd.MultiIndex.from_frame(shuffled[["ticker", "date"]])
    actual = pd.Series(output[name].to_numpy(), index=keys).reindex(expected.index)
    for ticker, answer in expected[name].groupby(level="ticker"):
        assert_matches(actual.loc[answer.index], answer, f"{name} of {ticker}")


def test_the_answer_files_warmups_are_talibs_lookbacks(expected):
    """The first-valid-row table used below is the one TA-Lib's answers show."""
    longest = expected.loc["005930"]
    assert {name: int(np.flatnonzero(longest[name].notna())[0]) for name in CONTRACT_COLUMNS} \
        == FIRST_ROW


# --- hand-worked cases (no TA-Lib) --------------------------------------------------------

LINEAR = np.arange(1, 151, dtype=float)  # close = t on row t - 1


@pytest.mark.parametrize("n", [5, 20, 60, 120])
def test_sma_of_a_linear_series_lags_it_by_half_the_window(n):
    """mean(t-n+1 .. t) = t - (n-1)/2, from the n-th row on."""
    sma = column(compute_indicators(bars(LINEAR)), f"sma_{n}")
    assert np.isnan(sma[:n - 1]).all()
    np.testing.assert_allclose(sma[n - 1:], LINEAR[n - 1:] - (n - 1) / 2, rtol=0, atol=1e-9)


@pytest.mark.parametrize("n", [12, 26, 20])
def test_sma_seeded_ema_of_a_linear_series_lags_it_by_half_the_window(n):
    """Seed: SMA_n = t - (n-1)/2. The step adds k*(t - ema) = 2/(n+1) * (n+1)/2 = 1, as
    the close does, so the EMA stays exactly (n-1)/2 behind."""
    ema = column(compute_indicators(bars(LINEAR)), f"ema_{n}")
    assert np.isnan(ema[:n - 1]).all()
    np.testing.assert_allclose(ema[n - 1:], LINEAR[n - 1:] - (n - 1) / 2, rtol=0, atol=1e-9)


def test_macd_of_a_linear_series_is_seven_with_signal_seven_from_row_33():
    """EMA12 - EMA26 = (t - 5.5) - (t - 12.5) = 7 once both run (row 25); the signal, an
    EMA9 of MACD seeded on rows 25..33, is 7 from row 33, where all three start."""
    out = compute_indicators(bars(LINEAR))
    for name, value in [("macd", 7.0), ("macd_signal", 7.0), ("macd_hist", 0.0)]:
        assert np.isnan(column(out, name)[:33]).all(), name
        np.testing.assert_allclose(column(out, name)[33:], value, rtol=0, atol=1e-9, err_msg=name)


def test_bollinger_bands_of_20_consecutive_integers_are_2_sqrt_399_12_either_side():
    """The population variance of 20 consecutive integers is (20**2 - 1) / 12."""
    out = compute_indicators(bars(LINEAR))
    middle, half_width = LINEAR[19:] - 9.5, 2 * math.sqrt(399 / 12)
    for name in ("bb_upper", "bb_middle", "bb_lower"):
        assert np.isnan(column(out, name)[:19]).all(), name
    np.testing.assert_allclose(column(out, "bb_middle")[19:], middle, rtol=0, atol=1e-9)
    np.testing.assert_allclose(column(out, "bb_upper")[19:], middle + half_width, rtol=0, atol=1e-9)
    np.testing.assert_allclose(column(out, "bb_lower")[19:], middle - half_width, rtol=0, atol=1e-9)


@pytest.mark.parametrize("close, rsi", [
    (LINEAR[:40], 100.0),  # only gains
    (LINEAR[:40][::-1], 0.0),  # only losses
    (np.full(40, 5_000.0), 0.0),  # no change at all: TA-Lib's 0 when gains + losses are 0
], ids=["rising", "falling", "flat"])
def test_rsi_of_a_monotone_series(close, rsi):
    values = column(compute_indicators(bars(close)), "rsi_14")
    assert np.isnan(values[:14]).all()
    np.testing.assert_allclose(values[14:], rsi, rtol=0, atol=1e-9)


def test_stochastic_of_a_series_closing_at_its_high_is_100():
    """high = low = close rising: the close is the 14-day high, fast %K = 100, so the
    3-day means slow %K and %D are 100, both from row 17."""
    out = compute_indicators(bars(LINEAR[:40]))
    for name in ("stoch_k", "stoch_d"):
        assert np.isnan(column(out, name)[:17]).all(), name
        np.testing.assert_allclose(column(out, name)[17:], 100.0, rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("frame", [
    bars(np.full(40, 1_000.0), high=np.full(40, 1_002.5), low=np.full(40, 997.5)),  # high - low
    bars(100.0 + 5.0 * np.arange(40)),  # high = low = close, 5 above the previous close
], ids=["daily-range", "gap-from-previous-close"])
def test_atr_of_a_constant_true_range_is_that_range(frame):
    """True range 5 on every row from row 1: the seed mean and every Wilder step are 5."""
    atr = column(compute_indicators(frame), "atr_14")
    assert np.isnan(atr[:14]).all()
    np.testing.assert_allclose(atr[14:], 5.0, rtol=0, atol=1e-9)


def test_volume_ratio_is_1_for_constant_volume_and_nan_after_20_idle_days():
    """30 days of 1,000 shares, then 25 of none: ratio 1 on rows 19..29, 0 on rows
    30..48 (no volume, a positive 20-day mean), NaN from row 49 (the mean is 0)."""
    volume = np.r_[np.full(30, 1_000.0), np.zeros(25)]
    ratio = column(compute_indicators(bars(np.full(55, 5_000.0), volume=volume)), "volume_ratio_20")
    assert np.isnan(ratio[:19]).all()
    np.testing.assert_allclose(ratio[19:30], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ratio[30:49], 0.0, rtol=0, atol=1e-12)
    assert np.isnan(ratio[49:]).all()


# --- a published example -------------------------------------------------------------------

#: StockCharts ChartSchool, "Relative Strength Index (RSI)", calculation example (QQQQ).
#: The closes of its spreadsheet (cs-rsi.xls), to four decimals; the page's table
#: prints them rounded to cents (TABLE_CLOSES).
CHARTSCHOOL_CLOSES = [
    44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433,
    46.0826, 45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116,
    46.2222, 45.6439, 46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288,
    44.1783, 44.2181, 44.5672, 43.4205, 42.6628, 43.1314,
]
TABLE_CLOSES = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03,
    45.61, 46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25, 45.71, 46.45,
    45.78, 45.35, 44.03, 44.18, 44.22, 44.57, 43.42, 42.66, 43.13,
]
#: The published 14-day RSI, from the 15th close on.
CHARTSCHOOL_RSI = [
    70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42,
    39.99, 41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
]


def test_rsi_reproduces_the_stockcharts_worked_example():
    """Published to two decimals, so equal to 0.01. The RSI is computed from the
    spreadsheet's closes: from the cent-rounded table closes, Wilder's RSI (TA-Lib's
    too) is up to 0.07 away from the published values (70.46 for 70.53 on day 15)."""
    assert np.round(CHARTSCHOOL_CLOSES, 2).tolist() == TABLE_CLOSES
    rsi = column(compute_indicators(bars(CHARTSCHOOL_CLOSES)), "rsi_14")
    assert np.isnan(rsi[:14]).all()
    np.testing.assert_allclose(rsi[14:], CHARTSCHOOL_RSI, rtol=0, atol=0.01)


# --- bad and unusual inputs ----------------------------------------------------------------


@pytest.mark.parametrize("rows", [10, 33, 34, 40, 119, 120])
def test_a_short_ticker_gets_nan_only_for_the_warmups_it_cannot_fill(rows, prices, expected):
    """A ticker of ``rows`` sessions beside a long one: NaN throughout for each indicator
    whose first row it does not reach, TA-Lib's values for every other one (a prefix of
    a series has the indicators of that series' first rows: every one looks back only)."""
    long = prices[prices["ticker"] == "005930"]
    short = long.iloc[:rows].assign(ticker="SHORT1")
    out = compute_indicators(pd.concat([long, short], ignore_index=True)).iloc[len(long):]
    answer = expected.loc["005930"].iloc[:rows]
    for name in CONTRACT_COLUMNS:
        if rows <= FIRST_ROW[name]:
            assert out[name].isna().all(), f"{name} has values in {rows} rows"
        else:
            assert out[name].notna().any(), f"{name} has no value in {rows} rows"
        assert_matches(out[name].to_numpy(), answer[name], f"{name} of {rows} rows")


def test_no_infinity_anywhere_with_halted_days(output):
    """The answer file's 000210 is halted 25 sessions (flat prices, no volume): ranges,
    changes and 20-day volume means of 0 give the TA-Lib values, never a division by 0."""
    assert not np.isinf(output.to_numpy(dtype=float)).any()


def test_a_ticker_halted_since_its_first_row_gets_talibs_flat_values():
    """Flat prices, no volume: RSI 0 (no gain, no loss), %K 0 (no range), ATR 0, bands on
    the price, volume ratio NaN (its mean is 0); finite everywhere else."""
    out = compute_indicators(bars(np.full(40, 83_000.0), volume=np.zeros(40)))
    assert not np.isinf(out.to_numpy(dtype=float)).any()
    for name, value in [("rsi_14", 0.0), ("stoch_k", 0.0), ("stoch_d", 0.0), ("atr_14", 0.0),
                        ("bb_upper", 83_000.0), ("bb_middle", 83_000.0), ("bb_lower", 83_000.0)]:
        np.testing.assert_allclose(column(out, name)[FIRST_ROW[name]:], value, rtol=0, atol=1e-9,
                                   err_msg=name)
    assert out["volume_ratio_20"].isna().all()


def test_gaps_in_dates_are_just_rows(prices):
    """079190 skips sessions (up to 18 days between rows); on consecutive days instead,
    its indicators are the same: rows count, not calendar days."""
    gapped = prices[prices["ticker"] == "079190"].reset_index(drop=True)
    assert gapped["date"].diff().max() > pd.Timedelta(days=14)
    dense = gapped.assign(date=pd.bdate_range("2020-01-01", periods=len(gapped)))
    pd.testing.assert_frame_equal(compute_indicators(gapped), compute_indicators(dense),
                                  check_exact=False, rtol=1e-12, atol=0)


def test_duplicate_ticker_and_date_rows_raise_naming_the_ticker(prices):
    twice = prices[prices["ticker"] == "00104K"].iloc[[3]].assign(close=20_000.0)
    with pytest.raises(ValueError, match="00104K"):
        compute_indicators(pd.concat([prices, twice], ignore_index=True))


def test_a_missing_column_raises_naming_it(prices):
    messages = {}
    for name in INPUT_COLUMNS:
        with pytest.raises(ValueError) as raised:
            compute_indicators(prices.drop(columns=name))
        messages[name] = str(raised.value)
        assert name in messages[name]
    # Each message says which column is missing, not only which ones are expected.
    assert len(set(messages.values())) == len(INPUT_COLUMNS)


def test_an_empty_frame_gives_an_empty_frame_with_the_18_columns():
    out = compute_indicators(pd.DataFrame({name: [] for name in INPUT_COLUMNS}))
    assert out.empty
    assert list(out.columns) == CONTRACT_COLUMNS


def test_many_tickers_give_the_same_values_as_each_ticker_alone(prices):
    """Vectorizing over tickers mixes none of them: tickers of different lengths and
    price levels (2,780 to 187,500 KRW) side by side, each as if computed alone."""
    together = compute_indicators(prices)
    for ticker, rows in prices.groupby("ticker"):
        pd.testing.assert_frame_equal(compute_indicators(rows), together.loc[rows.index],
                                      check_exact=False, rtol=1e-12, atol=0, obj=ticker)


def test_a_few_tickers_computed_on_plain_floats_equal_the_vectorized_values_exactly():
    """Recursions over a handful of tickers run one ticker at a time on Python floats
    (cheaper than a numpy call per row); they are the same IEEE operations, so the
    values equal those of the same tickers among many, to the last bit."""
    rng = np.random.default_rng(11)
    many = pd.concat([bars(np.round(np.exp(np.cumsum(rng.normal(0, 0.02, 150))) * 10_000),
                           volume=rng.integers(0, 10_000, 150).astype(float), ticker=f"{index:06d}")
                      for index in range(40)], ignore_index=True)
    together = compute_indicators(many)
    few = many[many["ticker"].isin(["000003", "000017"])]
    pd.testing.assert_frame_equal(compute_indicators(few), together.loc[few.index], check_exact=True)
