import sys, pytest
from services.trading_engine import paper, fees
from services.trading_engine.orders import Side, OrderType
from tests.trading_engine import test_paper as tp
from tests.trading_engine.test_paper import property_engine  # noqa
orig_exec = paper.execution_price
def m_exec(side, ot, limit, observed):
    if ot is OrderType.LIMIT and side is Side.BUY:
        return limit if observed < limit else None
    return orig_exec(side, ot, limit, observed)
MUTANTS = {
  "strict_limit": lambda mp: mp.setattr(paper, "execution_price", m_exec),
  "no_selling": lambda mp: mp.setattr(paper.PaperBroker, "_selling", lambda self, t: 0),
  "round_commission": lambda mp: mp.setattr(fees.FeeSchedule, "commission", lambda self, a: round(a * self.commission_pct / 100)),
  "limit_fill_at_observed": lambda mp: mp.setattr(paper, "execution_price", lambda s, o, l, obs: obs if o is OrderType.MARKET or (s is Side.BUY and obs <= l) or (s is Side.SELL and obs >= l) else None),
  "no_hold_release": lambda mp: mp.setattr(paper.PaperBroker, "cancel", (lambda orig: (lambda self, oid, reason="cancelled": orig(self, oid, reason)))(paper.PaperBroker.cancel)),
}
@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant(name, monkeypatch, property_engine, krx_calendar):
    MUTANTS[name](monkeypatch)
    with pytest.raises(AssertionError):
        tp.test_random_operations_keep_the_account_consistent.hypothesis.inner_test(property_engine, krx_calendar, []) if False else tp.test_random_operations_keep_the_account_consistent(property_engine, krx_calendar)
