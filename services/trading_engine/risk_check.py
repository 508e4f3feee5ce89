"""The ``risk_checks`` job: the account, as its broker holds it now, against the risk
limits (the risk manager's assessment). Breaches are recorded; a total-loss breach
halts trading.

Its fingerprint (:func:`state`): outside the session, or holding no position, a paper
account's assessment reads only the database, so a check that finds the same session,
limits, latest collected prices (holding positions), orders, fills, cash, stored
equity, breaches and halt as the last one would assess the same and is recorded
``skipped`` instead (nights, weekends, and the days a replay's account stays flat).
Holding positions during the session (their prices move), for a live account (its
broker holds the truth) and when run by hand (``run-job``), every check runs."""

from __future__ import annotations

from services.common.job_api import JobContext, JobResult
from services.common.market_calendar import KRX_TZ
from services.risk_manager.assessment import assess
from services.risk_manager.limits import RiskLimits
from services.trading_engine.broker import open_account
from services.trading_engine.fingerprint import account_fingerprint
from services.trading_engine.history import account_state
from services.trading_engine.prices import valuation_prices


def state(ctx: JobContext) -> str | None:
    """What the check would read, as one string (:mod:`fingerprint`); None when it
    cannot tell: a live account, or positions held during the session."""
    if not ctx.account.dry_run:
        return None
    moment = min(ctx.clock.now(), ctx.scheduled_for)
    today = moment.astimezone(KRX_TZ).date()
    in_session = ctx.calendar.session(today)
    session = ctx.calendar.session_on_or_before(today)
    fingerprint = account_fingerprint(ctx, session.date if session else today, today)
    if fingerprint.positions and in_session is not None and in_session.open <= moment <= in_session.close:
        return None  # their prices move
    # the latest collected closes value the positions: nothing of a flat account
    return f"{fingerprint.text}|{fingerprint.collected if fingerprint.positions else '-'}"


def run(ctx: JobContext) -> JobResult:
    """``risk_checks``: the account of the instance against the limits, now. The
    summary holds the metrics."""
    moment = min(ctx.clock.now(), ctx.scheduled_for)
    today = moment.astimezone(KRX_TZ).date()
    session = ctx.calendar.session_on_or_before(today)
    day = session.date if session is not None else today
    with open_account(ctx) as trading, trading.transaction() as connection:
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
                             dry_run=ctx.account.dry_run)
