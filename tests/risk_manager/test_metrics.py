"""Portfolio metrics, every figure worked by hand.

Account: cash 4,000,000 KRW; 300 x AAA bought for 3,000,000 now at 9,000 (2,700,000);
100 x BBB bought for 2,000,000 now at 23,000 (2,300,000). Market value 5,000,000,
equity 9,000,000. The previous session closed at 9,500,000; the peak was 10,400,000;
the account opened with 10,000,000; closed trades made 150,000.
"""

from __future__ import annotations

import pytest

from services.risk_manager.metrics import AccountHistory, Holding, portfolio_metrics

HOLDINGS = [Holding("BBB", 100, 2_000_000, 23_000), Holding("AAA", 300, 3_000_000, 9_000)]
HISTORY = AccountHistory(baseline_equity=10_000_000, previous_close_equity=9_500_000, peak_equity=10_400_000,
                         realised_pnl=150_000)


def test_equity_is_cash_plus_the_positions_at_their_prices() -> None:
    m = portfolio_metrics(4_000_000, HOLDINGS, HISTORY)
    assert (m.equity, m.cash, m.market_value) == (9_000_000, 4_000_000, 5_000_000)
    assert m.exposure_pct == pytest.approx(100 * 5 / 9)  # 55.56%


def test_weights_and_the_largest_position_are_shares_of_equity() -> None:
    m = portfolio_metrics(4_000_000, HOLDINGS, HISTORY)
    assert m.weights_pct == pytest.approx({"AAA": 30.0, "BBB": 100 * 2.3 / 9})  # 30% and 25.56%
    assert list(m.weights_pct) == ["AAA", "BBB"]
    assert (m.largest_position, m.largest_position_pct) == ("AAA", pytest.approx(30.0))
    assert m.positions == 2


def test_daily_pnl_is_measured_from_the_previous_close() -> None:
    m = portfolio_metrics(4_000_000, HOLDINGS, HISTORY)
    assert m.daily_pnl == -500_000
    assert m.daily_pnl_pct == pytest.approx(-100 * 0.5 / 9.5)  # -5.26%
    assert m.daily_loss_pct == pytest.approx(100 * 0.5 / 9.5)


def test_drawdown_is_measured_from_the_peak_and_the_return_from_the_baseline() -> None:
    m = portfolio_metrics(4_000_000, HOLDINGS, HISTORY)
    assert m.peak_equity == 10_400_000
    assert m.drawdown_pct == pytest.approx(100 * 1.4 / 10.4)  # 13.46%
    assert m.return_pct == pytest.approx(-10.0) and m.total_loss_pct == pytest.approx(10.0)


def test_realised_and_unrealised_pnl() -> None:
    m = portfolio_metrics(4_000_000, HOLDINGS, HISTORY)
    assert m.realised_pnl == 150_000
    assert m.unrealised_pnl == (2_700_000 - 3_000_000) + (2_300_000 - 2_000_000)  # 0


def test_a_new_high_is_its_own_peak_and_gains_are_no_loss() -> None:
    m = portfolio_metrics(6_000_000, HOLDINGS, HISTORY)  # equity 11,000,000
    assert m.peak_equity == 11_000_000 and m.drawdown_pct == 0.0
    assert m.return_pct == pytest.approx(10.0) and m.total_loss_pct == 0.0
    assert m.daily_pnl == 1_500_000 and m.daily_loss_pct == 0.0


def test_without_a_previous_close_the_day_is_measured_from_the_baseline() -> None:
    m = portfolio_metrics(4_000_000, HOLDINGS, AccountHistory(10_000_000, None, None))
    assert m.daily_pnl == -1_000_000 and m.peak_equity == 10_000_000
    assert m.drawdown_pct == pytest.approx(10.0)


def test_an_empty_account_is_all_cash() -> None:
    m = portfolio_metrics(10_000_000, [], AccountHistory(10_000_000, 10_000_000, 10_000_000))
    assert (m.equity, m.market_value, m.exposure_pct, m.positions) == (10_000_000, 0, 0.0, 0)
    assert m.largest_position is None and m.largest_position_pct == 0.0 and m.weights_pct == {}


def test_the_summary_is_plain_json_values() -> None:
    summary = portfolio_metrics(4_000_000, HOLDINGS, HISTORY).as_summary()
    assert summary["equity"] == 9_000_000 and summary["drawdown_pct"] == 13.4615
    assert summary["weights_pct"] == {"AAA": 30.0, "BBB": 25.5556}
