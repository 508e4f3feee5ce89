"""The replay's statistics against hand-computed answers (the arithmetic is in the
comments), and the cap-weighted index."""

from __future__ import annotations

from datetime import date

import pytest

from services.orchestrator.performance import Trade, cap_weighted_index, measure

D = [date(2026, 11, day) for day in (16, 17, 18, 19, 20)]


def test_a_hand_computed_example() -> None:
    # returns +10%, -10%, +10%: mean 0.0333..., sample sd 0.11547 (squared deviations
    # 0.004444, 0.017778, 0.004444 over 2), downside rms sqrt(0.01 / 3) = 0.057735
    p = measure([100, 110, 99, 108.9],
                trades=[Trade(D[0], D[2], 500), Trade(D[1], D[4], -200), Trade(D[0], D[1], 100)],
                traded=208.95,  # twice the average equity, (100 + 110 + 99 + 108.9) / 4 = 104.475
                exposures=[0.5, 0.3],
                benchmark=[100, 105, 99.75, 104.7375])  # +5%, -5%, +5%: exactly half the account's returns
    assert (p.sessions, p.total_return) == (3, pytest.approx(0.089))
    assert p.volatility == pytest.approx(0.1154701 * 252 ** 0.5, rel=1e-6)  # 1.83303
    assert p.sharpe == pytest.approx(0.0333333 / 0.1154701 * 252 ** 0.5, rel=1e-5)  # 4.58258
    assert p.sortino == pytest.approx(0.0333333 / 0.0577350 * 252 ** 0.5, rel=1e-5)  # 9.16515
    assert p.cagr == pytest.approx(1.089 ** 84 - 1)  # 3 sessions of 252 a year: the 84th power
    assert (p.max_drawdown, p.max_drawdown_sessions) == (pytest.approx(0.1), 2)  # 110 -> 99, never back at 110
    assert (p.trades, p.win_rate, p.profit_factor, p.average_holding_days) == (
        3, pytest.approx(2 / 3), pytest.approx(3.0), pytest.approx(2.0))  # wins 600 over losses 200; 2, 3, 1 days
    assert (p.turnover, p.exposure) == (pytest.approx(2.0), pytest.approx(0.4))
    assert (p.benchmark_return, p.beta, p.alpha) == (pytest.approx(0.047375), pytest.approx(2.0),
                                                     pytest.approx(0.0, abs=1e-12))


def test_a_drawdown_that_recovers_counts_the_sessions_to_its_recovery() -> None:
    p = measure([100, 120, 90, 100, 121, 80 + 40])  # 120 -> 90 (25%), back above 120 three sessions later
    assert (p.max_drawdown, p.max_drawdown_sessions) == (pytest.approx(0.25), 3)


def test_what_cannot_be_measured_is_none() -> None:
    p = measure([100, 100])
    assert (p.volatility, p.sharpe, p.sortino, p.win_rate, p.profit_factor, p.beta) == (None,) * 6
    assert (p.max_drawdown, p.max_drawdown_sessions, p.trades) == (0.0, 0, 0)


def test_the_index_chains_cap_weighted_returns_of_the_tickers_there_both_days() -> None:
    rows = [(D[0], "A", 100, 300), (D[0], "B", 50, 100), (D[1], "A", 110, 330), (D[1], "B", 45, 90),
            (D[2], "A", 110, 330)]  # B has no close on D[2]
    # D[1]: (300 x +10% + 100 x -10%) / 400 = +5%; D[2]: A alone, unchanged; D[3]: no row at all
    assert cap_weighted_index(D[:4], rows) == [100.0, pytest.approx(105.0), pytest.approx(105.0),
                                               pytest.approx(105.0)]


def test_the_summary_says_when_signals_placed_no_order_and_why() -> None:
    from services.orchestrator.replay_report import ReplaySummary, _unordered

    runs = [{"entries": 18, "orders": 0, "sizing": "half_kelly"}, {"entries": 3, "orders": 3, "sizing": "fixed"},
            {"entries": 0, "orders": 0, "sizing": "half_kelly"}, {"entries": 2, "orders": 0, "sizing": "fixed"}, None]
    assert _unordered(runs) == (2, 1)  # entries without orders on two runs, one of them by half-Kelly
    summary = ReplaySummary(D[0], D[-1], 5, {}, 0, 0, 0, 0, 100, 100, 0.0, 0, unordered_signals=(2, 1))
    assert {"what": "signals without orders", "value": "2 session(s) had entry signals and placed no order; 1 of "
            "them sized by half-Kelly, which bets nothing while the closed trades show no edge"} in summary.rows()
