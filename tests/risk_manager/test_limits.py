"""The risk limits: which metrics breach them, and which entries the gate refuses."""

from __future__ import annotations

from services.risk_manager.limits import Action, Breach, Commitments, RiskLimits, entry_refusal, find_breaches
from services.risk_manager.metrics import AccountHistory, Holding, portfolio_metrics

LIMITS = RiskLimits(max_position_pct=10.0, max_positions=2, max_daily_loss_pct=3.0, max_total_loss_pct=15.0)


def metrics(cash: int, previous: int, peak: int, *holdings: Holding, baseline: int = 10_000_000):  # type: ignore[no-untyped-def]
    return portfolio_metrics(cash, list(holdings), AccountHistory(baseline, previous, peak))


def test_a_healthy_account_breaches_nothing() -> None:
    assert find_breaches(metrics(9_500_000, 10_000_000, 10_000_000, Holding("A", 50, 500_000, 10_000)),
                         LIMITS) == []


def test_a_daily_loss_at_the_limit_blocks_entries() -> None:
    # equity 9,700,000 against a 10,000,000 close: exactly 3%
    found = find_breaches(metrics(9_700_000, 10_000_000, 10_000_000), LIMITS)
    assert found == [Breach("max_daily_loss_pct", 3.0, 3.0, Action.BLOCK_ENTRIES)]
    assert found[0].describe() == "daily loss 3% reached ORCHESTRATOR_MAX_DAILY_LOSS_PCT 3%"


def test_a_loss_just_under_the_limit_is_no_breach() -> None:
    assert find_breaches(metrics(9_700_001, 10_000_000, 10_000_000), LIMITS) == []


def test_a_drawdown_past_the_total_limit_halts() -> None:
    # peak 12,000,000, equity 10,000,000: drawdown 16.67%; no loss from the 10,000,000 baseline
    found = find_breaches(metrics(10_000_000, 10_000_000, 12_000_000), LIMITS)
    assert found == [Breach("max_total_loss_pct", 16.6667, 15.0, Action.HALT, "drawdown")]
    assert found[0].describe() == "drawdown from the peak 16.6667% reached ORCHESTRATOR_MAX_TOTAL_LOSS_PCT 15%"


def test_a_loss_from_the_initial_value_past_the_total_limit_halts() -> None:
    found = find_breaches(metrics(8_400_000, 8_400_000, 10_000_000), LIMITS)  # 16% below both
    assert [(b.limit, b.subject, b.value, b.action) for b in found] == [
        ("max_total_loss_pct", "drawdown", 16.0, Action.HALT), ("max_total_loss_pct", "baseline", 16.0, Action.HALT)]


def test_too_many_or_too_large_positions_are_warnings() -> None:
    held = [Holding("A", 100, 1_000_000, 12_000), Holding("B", 10, 100_000, 10_000), Holding("C", 10, 100_000, 10_000)]
    found = find_breaches(metrics(8_600_000, 10_000_000, 10_000_000, *held), LIMITS)  # equity 10,000,000
    assert found == [Breach("max_positions", 3, 2, Action.WARN),
                     Breach("max_position_size_pct", 12.0, 10.0, Action.WARN, "A")]


# --- the entry check -----------------------------------------------------------------------------

EMPTY = Commitments({}, set())


def refusal(ticker: str = "A", value: int = 900_000, committed: Commitments = EMPTY, **state: object) -> str | None:
    values = {"equity": 10_000_000, "halted": None, "entries_blocked": None, **state}
    return entry_refusal(ticker, value, committed=committed, limits=LIMITS, **values)  # type: ignore[arg-type]


def test_an_entry_within_every_limit_passes() -> None:
    assert refusal() is None
    assert refusal(value=1_000_000) is None  # exactly 10%


def test_no_entry_while_halted_or_after_the_daily_loss_limit() -> None:
    assert refusal(halted="manual stop") == "trading halted: manual stop"
    assert refusal(entries_blocked="daily loss 3.2%") == "new entries blocked for the session: daily loss 3.2%"


def test_no_entry_past_the_position_count() -> None:
    full = Commitments({"B": 1, "C": 1}, {"B", "C"})
    assert refusal(committed=full) == ("ORCHESTRATOR_MAX_POSITIONS (2) reached: 2 positions held or being bought")
    assert refusal("B", 100_000, committed=full) is None  # adding to a held position takes no new slot


def test_no_entry_that_makes_a_position_too_large() -> None:
    assert refusal(value=1_000_001) == ("A would hold 1000001 KRW, over ORCHESTRATOR_MAX_POSITION_SIZE_PCT "
                                        "(10%) of equity 10000000 KRW")
    held = Commitments({"A": 600_000}, {"A"})
    assert refusal(value=500_000, committed=held) is not None  # 1,100,000 together
    assert refusal(value=400_000, committed=held) is None
