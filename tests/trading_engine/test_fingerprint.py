"""The account fingerprint while this process is its database's sole writer (a replay):
one read serves until a commit other than a ledger row's, and then it is read again."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert

from services.common.clock import FixedClock
from services.common.database import sole_writer, write_generation
from services.common.job_api import Account, JobContext
from services.common.market_calendar import KRX_TZ
from services.orchestrator.ledger import RunLedger
from services.risk_manager.halts import halt_trading
from services.trading_engine import fingerprint
from services.trading_engine.fingerprint import account_fingerprint
from services.trading_engine.models import PaperAccount
from tests.conftest import make_settings

NIGHT = datetime(2026, 11, 17, 22, 0, tzinfo=KRX_TZ)


def ctx(session_factory, krx_calendar) -> JobContext:
    return JobContext(job_name="risk_checks", trading_date=NIGHT.date(), scheduled_for=NIGHT,
                      settings=make_settings(user_id="solo"), session_factory=session_factory,
                      clock=FixedClock(NIGHT), calendar=krx_calendar, origin="simulate")


def test_a_sole_writer_reads_the_fingerprint_again_only_after_a_commit_that_is_not_a_ledger_row(
        session_factory, krx_calendar, monkeypatch):
    engine = session_factory.kw["bind"]
    with session_factory.begin() as db:
        db.execute(insert(PaperAccount).values(user_id="solo", initial_cash=1_000, cash=1_000, opened_at=NIGHT))
    reads = []
    read = fingerprint.fetch_compiled

    def counted(*args, **kwargs):
        reads.append(1)
        return read(*args, **kwargs)

    monkeypatch.setattr(fingerprint, "fetch_compiled", counted)  # the fingerprint's one read
    day = NIGHT.date()
    with sole_writer(engine):
        first = account_fingerprint(ctx(session_factory, krx_calendar), day, day)
        ledger = RunLedger(session_factory, FixedClock(NIGHT), timedelta(minutes=5), Account("solo", True))
        ledger.claim("risk_checks", NIGHT, trading_date=day, origin="simulate")
        assert account_fingerprint(ctx(session_factory, krx_calendar), day, day) == first
        assert len(reads) == 1
        with session_factory.begin() as db:
            halt_trading(db.connection(), "solo", "by hand", by="manual", at=NIGHT)
        assert account_fingerprint(ctx(session_factory, krx_calendar), day, day) != first
        assert len(reads) == 2
    assert write_generation(engine) is None  # others may write again: every fingerprint is read
    account_fingerprint(ctx(session_factory, krx_calendar), day, day)
    assert len(reads) == 3


def test_a_fingerprint_kept_in_one_replay_is_not_served_in_the_next(session_factory, krx_calendar):
    # both stretches count from no commit: what the first kept must not pass for the second's
    engine = session_factory.kw["bind"]
    day = NIGHT.date()
    with sole_writer(engine):
        first = account_fingerprint(ctx(session_factory, krx_calendar), day, day)
    with session_factory.begin() as db:
        db.execute(insert(PaperAccount).values(user_id="solo", initial_cash=1_000, cash=1_000, opened_at=NIGHT))
    with sole_writer(engine):
        assert account_fingerprint(ctx(session_factory, krx_calendar), day, day) != first
