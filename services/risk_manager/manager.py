"""Assessing an account against the risk limits, and the ``risk_checks`` job.

:func:`assess` is the one assessment: the ``risk_checks`` job runs it every 30
minutes around the clock, and the risk gate runs it before any job places an order.
It computes the metrics from the stored account, records each breach once a day with
the metrics that caused it, and halts trading when the total-loss limit is reached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Mapping, Sequence

from sqlalchemy import Connection, Row, Select, bindparam, func, literal, select

from services.common.database import dialect_insert
from services.common.job_api import JobContext, JobResult
from services.common.market_calendar import KRX_TZ
from services.common.settings import Settings
from services.risk_manager.halts import Halt, halt_of, halt_trading, set_baseline_equity
from services.risk_manager.limits import Action, Breach, RiskLimits, find_breaches
from services.risk_manager.metrics import AccountHistory, Holding, PortfolioMetrics, portfolio_metrics
from services.risk_manager.models import RiskBreach, TradingHalt
from services.trading_engine.broker import (
    account_transaction,
    cash_balance,
    current_quotes,
    is_dry_run,
    make_broker,
    stored_closes,
)
from services.trading_engine.models import ClosedTrade, PaperAccount, PortfolioSnapshot
from services.trading_engine.orders import Broker, Position
from services.trading_engine.paper import PaperBroker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assessment:
    metrics: PortfolioMetrics
    breaches: list[Breach]  # found by this check
    halt: Halt | None  # in force after this check
    entries_blocked: str | None  # why new entries are blocked for the session, if they are

    def summary(self) -> dict[str, object]:
        return {**self.metrics.as_summary(), "breaches": [_breach_name(b) for b in self.breaches],
                "halted": self.halt is not None, "entries_blocked": self.entries_blocked is not None}


def _breach_name(breach: Breach) -> str:
    return f"{breach.limit}:{breach.subject}" if breach.subject else breach.limit


# --- reading the account -----------------------------------------------------------------------


def holdings_at(positions: Sequence[Position], prices: Mapping[str, int]) -> list[Holding]:
    """Positions valued at ``prices``; a ticker without a price at its average cost."""
    return [Holding(p.ticker, p.quantity, p.cost, int(prices.get(p.ticker) or round(p.average_price)))
            for p in positions]


_SNAPSHOTS, _TRADES, _BREACHES = PortfolioSnapshot.__table__, ClosedTrade.__table__, RiskBreach.__table__
_ACCOUNTS, _HALTS = PaperAccount.__table__, TradingHalt.__table__
_ACCOUNT_SNAPSHOTS = (_SNAPSHOTS.c.user_id == bindparam("owner")) & (_SNAPSHOTS.c.dry_run == bindparam("dry_run"))
_PEAK = select(_SNAPSHOTS.c.equity).where(_ACCOUNT_SNAPSHOTS).order_by(_SNAPSHOTS.c.equity.desc()).limit(1)


def _state_statement() -> Select[Any]:
    """Everything an assessment reads but positions and prices, in one round trip: the
    paper account, the halt record, the close before ``day``, the first and the peak
    equity (one probe of ix_snapshots_equity), the realised P&L and the session's
    daily-loss breach."""
    blocked_today = (_BREACHES.c.user_id == bindparam("owner")) & (_BREACHES.c.dry_run == bindparam("dry_run")) \
        & (_BREACHES.c.trading_date == bindparam("day")) & (_BREACHES.c.action == Action.BLOCK_ENTRIES.value)
    blocked = [select(column).where(blocked_today).limit(1).scalar_subquery().label(f"blocked_{column.name}")
               for column in (_BREACHES.c.value, _BREACHES.c.threshold, _BREACHES.c.checked_at)]
    one_row = select(literal(1).label("one")).subquery()
    return select(
        _ACCOUNTS.c.cash.label("paper_cash"), _ACCOUNTS.c.initial_cash, *_HALTS.c,
        select(_SNAPSHOTS.c.equity).where(_ACCOUNT_SNAPSHOTS, _SNAPSHOTS.c.trading_date < bindparam("day"))
        .order_by(_SNAPSHOTS.c.taken_at.desc()).limit(1).scalar_subquery().label("previous_close"),
        select(_SNAPSHOTS.c.equity).where(_ACCOUNT_SNAPSHOTS).order_by(_SNAPSHOTS.c.taken_at).limit(1)
        .scalar_subquery().label("first_equity"),
        _PEAK.scalar_subquery().label("peak"),
        select(func.coalesce(func.sum(_TRADES.c.pnl), 0)).where(
            _TRADES.c.user_id == bindparam("owner"), _TRADES.c.dry_run == bindparam("dry_run"))
        .scalar_subquery().label("realised"),
        *blocked,
    ).select_from(one_row.outerjoin(_ACCOUNTS, _ACCOUNTS.c.user_id == bindparam("owner"))
                  .outerjoin(_HALTS, _HALTS.c.user_id == bindparam("owner")))


# built once: the risk check runs every 30 minutes, and before every trading job
_STATE = _state_statement()
_PEAK_SINCE = _PEAK.where(_SNAPSHOTS.c.taken_at >= bindparam("since"))


def _history(connection: Connection, state: Row[Any], parameters: dict[str, Any], *,
             baseline_equity: int | None, since: datetime | None) -> AccountHistory | None:
    """The stored past of the account: the equity at the close before ``day``, and the
    peak since ``since`` (None: ever) over ``baseline_equity`` (None: the first stored
    equity). None when there is no baseline at all (a live account never
    snapshotted): the caller takes the equity now."""
    baseline = state.first_equity if baseline_equity is None else baseline_equity
    if baseline is None:
        return None
    peak = state.peak if since is None else connection.scalar(_PEAK_SINCE, {**parameters, "since": since})
    return AccountHistory(int(baseline), _int_or_none(state.previous_close), _int_or_none(peak),
                          int(state.realised or 0))


def _int_or_none(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


# --- the assessment ----------------------------------------------------------------------------


def assess(connection: Connection, broker: Broker, *, user_id: str, settings: Settings, day: date,
           moment: datetime, prices: Mapping[str, int], checked_by: str,
           positions: Sequence[Position] | None = None) -> Assessment:
    """Measure the account now (``positions``: the broker's, if the caller has them),
    record what breaches the limits, halt on the total-loss limit (the caller owns the
    transaction)."""
    dry_run = broker.dry_run
    held = broker.positions() if positions is None else positions
    parameters = {"owner": user_id, "dry_run": dry_run, "day": day}
    state = connection.execute(_STATE, parameters).one()
    cash, initial_cash = _cash_and_initial(broker, state)
    holdings = holdings_at(held, prices)
    equity = cash + sum(h.value for h in holdings)
    record = halt_of(state)
    baseline, since = _baseline(connection, record, initial_cash, user_id, dry_run, equity)
    history = _history(connection, state, parameters, baseline_equity=baseline, since=since) \
        or AccountHistory(equity, None, None)
    metrics = portfolio_metrics(cash, holdings, history)
    breaches = find_breaches(metrics, RiskLimits.from_settings(settings))
    _record_breaches(connection, user_id, dry_run, day, breaches, metrics, moment, checked_by)
    halt = record if record is not None and record.halted else None
    halting = [b for b in breaches if b.action is Action.HALT]
    if halt is None and halting:
        halt, _ = halt_trading(connection, user_id, halting[0].describe(), by=checked_by, at=moment)
    return Assessment(metrics, breaches, halt, _entries_blocked(state, breaches))


def _cash_and_initial(broker: Broker, state: Row[Any]) -> tuple[int, int | None]:
    """The account's cash, and what a paper account opened with (None live)."""
    if not isinstance(broker, PaperBroker):
        return cash_balance(broker), None
    if state.paper_cash is None:  # the paper account's first use opens it
        account = broker.account()
        return int(account.cash), int(account.initial_cash)
    return int(state.paper_cash), int(state.initial_cash)


def _baseline(connection: Connection, record: Halt | None, initial_cash: int | None, user_id: str,
              dry_run: bool, equity: int) -> tuple[int | None, datetime | None]:
    """What the loss limits measure from, and since when: the equity at the last resume
    of a loss halt (the first assessment after it records the equity it finds), or
    else the paper account's initial cash (a live account: its first snapshot)."""
    if record is not None and record.baseline_at is not None:
        recorded = record.baseline_of(dry_run)
        if recorded is None:
            set_baseline_equity(connection, user_id, dry_run, equity)
            return equity, record.baseline_at
        return recorded, record.baseline_at
    return initial_cash, None


def _record_breaches(connection: Connection, user_id: str, dry_run: bool, day: date, breaches: list[Breach],
                     metrics: PortfolioMetrics, moment: datetime, checked_by: str) -> None:
    """Each breach once per (account, trading date, limit, subject): the first sighting."""
    for breach in breaches:
        inserted = connection.execute(dialect_insert(connection, _BREACHES).values(
            user_id=user_id, dry_run=dry_run, trading_date=day, limit_name=breach.limit, subject=breach.subject,
            value=breach.value, threshold=breach.threshold, action=breach.action.value, checked_at=moment,
            checked_by=checked_by[:32], metrics=metrics.as_summary()).on_conflict_do_nothing()
            .returning(_BREACHES.c.id)).scalar()  # not rowcount: psycopg gives -1 for ON CONFLICT inserts
        if inserted is not None:
            level = logging.WARNING if breach.action is Action.WARN else logging.ERROR
            logger.log(level, "risk limit breached for %s on %s (%s): %s", user_id, day, breach.action.value,
                       breach.describe())


def _entries_blocked(state: Row[Any], breaches: list[Breach]) -> str | None:
    """The daily-loss breach of the session (found now, or by an earlier check), described."""
    for breach in breaches:
        if breach.action is Action.BLOCK_ENTRIES:
            return breach.describe()
    if state.blocked_checked_at is None:
        return None
    breach = Breach("max_daily_loss_pct", state.blocked_value, state.blocked_threshold, Action.BLOCK_ENTRIES)
    return f"{breach.describe()} at {state.blocked_checked_at.astimezone(KRX_TZ):%H:%M}"


# --- the job -----------------------------------------------------------------------------------


def valuation_prices(ctx: JobContext, broker: Broker, connection: Connection, tickers: Sequence[str],
                     moment: datetime) -> dict[str, int]:
    """Prices to value the positions at ``moment``: observed ones from the session's
    open on, else (or where none was observed) the latest stored closes, the day's own
    once collected."""
    if not tickers:
        return {}
    today = moment.astimezone(KRX_TZ).date()
    prices = stored_closes(connection, tickers, today + timedelta(days=1))
    session = ctx.calendar.session(today)
    if session is not None and moment >= session.open:
        quotes = current_quotes(ctx, broker, connection, tickers, moment, session)
        if quotes.observed:
            prices.update(quotes.prices)
    return prices


def run(ctx: JobContext) -> JobResult:
    """``risk_checks``: the account of ``ctx.user_id`` against the limits, now. The
    summary holds the metrics; breaches are recorded and a total-loss breach halts."""
    moment = min(ctx.clock.now(), ctx.scheduled_for)
    today = moment.astimezone(KRX_TZ).date()
    session = ctx.calendar.session_on_or_before(today)
    day = session.date if session is not None else today
    with account_transaction(ctx) as connection:
        broker = make_broker(ctx, connection, moment)
        positions = broker.positions()
        prices = valuation_prices(ctx, broker, connection, [p.ticker for p in positions], moment)
        assessment = assess(connection, broker, user_id=ctx.user_id, settings=ctx.settings, day=day,
                            moment=moment, prices=prices, checked_by=ctx.job_name, positions=positions)
    metrics = assessment.metrics
    ctx.log.info("equity %d KRW, day %+.2f%%, drawdown %.2f%%, %d positions%s", metrics.equity,
                 metrics.daily_pnl_pct, metrics.drawdown_pct, metrics.positions,
                 "; TRADING HALTED" if assessment.halt else "")
    return JobResult.success(**assessment.summary(), session=day.isoformat(), priced=len(prices),
                             dry_run=is_dry_run(ctx))
