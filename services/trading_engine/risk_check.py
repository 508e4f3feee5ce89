"""The ``risk_checks`` job: the account, as its broker holds it now, against the risk
limits (the risk manager's assessment). Breaches are recorded; a total-loss breach
halts trading.

Its fingerprint (:func:`state`): outside the session a paper account's assessment
reads only the database, so a check that finds the same session, limits, latest
collected prices, orders, fills, cash, snapshots, breaches and halt as the last one
would assess the same and is recorded ``skipped`` instead (the nights and weekends of
a replay). During the session (prices move), for a live account (its broker holds
the truth) and when run by hand (``run-job``), every check runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select

from services.common.job_api import JobContext, JobResult
from services.common.market_calendar import KRX_TZ
from services.data_collector.models import CollectedSession
from services.risk_manager.assessment import assess
from services.risk_manager.limits import RiskLimits
from services.risk_manager.models import RiskBreach, TradingHalt
from services.trading_engine.broker import open_account
from services.trading_engine.history import account_state
from services.trading_engine.models import FillRow, OrderRow, PaperAccount, PortfolioSnapshot
from services.trading_engine.prices import valuation_prices


def _state_statement() -> Any:
    def latest(column: Any, *where: Any) -> Any:
        return select(func.max(column)).where(*where).scalar_subquery()

    orders, fills, snapshots = OrderRow.__table__.c, FillRow.__table__.c, PortfolioSnapshot.__table__.c
    account, halts, breaches = PaperAccount.__table__.c, TradingHalt.__table__.c, RiskBreach.__table__.c
    mine: tuple[Any, Any] = (bindparam("owner"), bindparam("mode"))
    return select(
        latest(CollectedSession.date, CollectedSession.date <= bindparam("today")),
        latest(orders.updated_at, orders.user_id == mine[0], orders.dry_run == mine[1]),
        latest(fills.id, fills.user_id == mine[0], fills.dry_run == mine[1]),
        latest(snapshots.taken_at, snapshots.user_id == mine[0], snapshots.dry_run == mine[1]),
        latest(breaches.id, breaches.user_id == mine[0], breaches.dry_run == mine[1]),
        select(account.cash).where(account.user_id == mine[0]).scalar_subquery(),
        select(account.bars_settled_through).where(account.user_id == mine[0]).scalar_subquery(),
        *(select(column).where(halts.user_id == mine[0]).scalar_subquery()
          for column in (halts.halted, halts.halted_at, halts.resumed_at, halts.baseline_at, halts.baseline_equity)),
    )


# built once: read before every risk check
_STATE = _state_statement()


def state(ctx: JobContext) -> str | None:
    """What the check would read, as one string; None when it cannot tell (in the
    session, or a live account)."""
    if not ctx.account.dry_run:
        return None
    moment = min(ctx.clock.now(), ctx.scheduled_for)
    today = moment.astimezone(KRX_TZ).date()
    in_session = ctx.calendar.session(today)
    if in_session is not None and in_session.open <= moment <= in_session.close:
        return None
    session = ctx.calendar.session_on_or_before(today)
    with ctx.session_factory.kw["bind"].connect() as connection:  # one read, no ORM session
        row = connection.execute(_STATE, {"owner": ctx.account.user_id, "mode": True, "today": today}).one()
    return "|".join(str(value) for value in (session.date if session else today, RiskLimits.from_settings(
        ctx.settings), *row))


def run(ctx: JobContext) -> JobResult:
    """``risk_checks``: the account of the instance against the limits, now. The
    summary holds the metrics."""
    moment = min(ctx.clock.now(), ctx.scheduled_for)
    today = moment.astimezone(KRX_TZ).date()
    session = ctx.calendar.session_on_or_before(today)
    day = session.date if session is not None else today
    trading = open_account(ctx)
    with trading.transaction() as connection:
        broker = trading.broker(connection, moment)
        positions = broker.positions()
        prices = valuation_prices(broker, connection, ctx.calendar, [p.ticker for p in positions], moment)
        state = account_state(connection, broker, positions, prices, day)
        assessment = assess(connection, trading.account, state, RiskLimits.from_settings(ctx.settings), day=day,
                            moment=moment, checked_by=ctx.job_name)
    metrics = assessment.metrics
    ctx.log.info("equity %d KRW, day %+.2f%%, drawdown %.2f%%, %d positions%s", metrics.equity,
                 metrics.daily_pnl_pct, metrics.drawdown_pct, metrics.positions,
                 "; TRADING HALTED" if assessment.halt else "")
    return JobResult.success(**assessment.summary(), session=day.isoformat(), priced=len(prices),
                             dry_run=trading.account.dry_run)
