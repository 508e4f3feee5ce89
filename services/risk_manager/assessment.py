"""Assessing an account against the risk limits.

:func:`assess` is the one assessment: the ``risk_checks`` job runs it every 30
minutes around the clock, and the trading side's risk gate runs it before any job
places an order. It takes the account as plain data (:class:`AccountState`: cash,
valued holdings and the stored past, read by the trading side), computes the metrics,
records each breach once a day with the metrics that caused it, and halts trading
when the total-loss limit is reached. It reads and writes only the risk tables.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, event, literal, select

from services.common.alerts import Alert, raise_alert
from services.common.database import dialect_insert, fetch_typed
from services.common.job_api import Account
from services.common.market_calendar import KRX_TZ
from services.risk_manager.halts import Halt, halt_of, halt_trading, set_baseline_equity
from services.risk_manager.limits import Action, Breach, RiskLimits, find_breaches
from services.risk_manager.metrics import AccountHistory, Holding, PortfolioMetrics, portfolio_metrics
from services.risk_manager.models import RiskBreach, TradingHalt

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountState:
    """The account as an assessment sees it: now, and what its stored past says."""

    cash: int  # including cash held back for open buys
    holdings: Sequence[Holding]
    opening_balance: int | None  # what a paper account opened with; None: a live account
    first_equity: int | None  # the first stored equity (None: never snapshotted)
    previous_close: int | None  # the last stored equity before the assessed session
    peak: int | None  # the highest stored equity
    realised: int  # realised P&L of the closed trades
    peak_since: Callable[[datetime], int | None]  # the highest stored equity since a moment

    @property
    def equity(self) -> int:
        return self.cash + sum(h.value for h in self.holdings)


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


_BREACHES, _HALTS = RiskBreach.__table__, TradingHalt.__table__


def _risk_state_statement() -> Select[Any]:
    """The halt record and the session's daily-loss breach of an account, in one round trip."""
    blocked_today = (_BREACHES.c.user_id == bindparam("owner")) & (_BREACHES.c.dry_run == bindparam("dry_run")) \
        & (_BREACHES.c.trading_date == bindparam("day")) & (_BREACHES.c.action == Action.BLOCK_ENTRIES.value)
    blocked = [select(column).where(blocked_today).limit(1).scalar_subquery().label(f"blocked_{column.name}")
               for column in (_BREACHES.c.value, _BREACHES.c.threshold, _BREACHES.c.checked_at)]
    one_row = select(literal(1).label("one")).subquery()
    return select(*_HALTS.c, *blocked).select_from(
        one_row.outerjoin(_HALTS, _HALTS.c.user_id == bindparam("owner")))


# built once: the risk check runs every 30 minutes, and before every trading job
_RISK_STATE = _risk_state_statement()


def assess(connection: Connection, account: Account, state: AccountState, limits: RiskLimits, *, day: date,
           moment: datetime, checked_by: str) -> Assessment:
    """Measure ``account`` in ``state`` for the session ``day`` at ``moment``, record
    what breaches ``limits``, halt on the total-loss limit (the caller owns the
    transaction)."""
    (risk,) = fetch_typed(connection, _RISK_STATE, {"owner": account.user_id, "dry_run": account.dry_run, "day": day})
    record = halt_of(risk)
    baseline, since = _baseline(connection, record, account, state)
    metrics = portfolio_metrics(state.cash, state.holdings, _history(state, baseline, since))
    breaches = find_breaches(metrics, limits)
    _record_breaches(connection, account, day, breaches, metrics, moment, checked_by)
    halt = record if record is not None and record.halted else None
    halting = [b for b in breaches if b.action is Action.HALT]
    if halt is None and halting:
        halt, _ = halt_trading(connection, account.user_id, halting[0].describe(), by=checked_by, at=moment)
    return Assessment(metrics, breaches, halt, _entries_blocked(risk, breaches))


def _baseline(connection: Connection, record: Halt | None, account: Account,
              state: AccountState) -> tuple[int | None, datetime | None]:
    """What the loss limits measure from, and since when: the equity at the last resume
    of a loss halt (the first assessment after it records the equity it finds), or
    else the paper account's opening balance (a live account: its first snapshot)."""
    if record is not None and record.baseline_at is not None:
        recorded = record.baseline_of(account.dry_run)
        if recorded is None:
            set_baseline_equity(connection, account.user_id, account.dry_run, state.equity)
            return state.equity, record.baseline_at
        return recorded, record.baseline_at
    return state.opening_balance, None


def _history(state: AccountState, baseline_equity: int | None, since: datetime | None) -> AccountHistory:
    """The account's past: the equity at the close before the session, and the peak
    since ``since`` (None: ever) over ``baseline_equity`` (None: the first stored
    equity; without any, the equity now)."""
    baseline = state.first_equity if baseline_equity is None else baseline_equity
    if baseline is None:
        return AccountHistory(state.equity, None, None)
    peak = state.peak if since is None else state.peak_since(since)
    return AccountHistory(int(baseline), state.previous_close, peak, state.realised)


def _record_breaches(connection: Connection, account: Account, day: date, breaches: list[Breach],
                     metrics: PortfolioMetrics, moment: datetime, checked_by: str) -> None:
    """Each breach once per (account, trading date, limit, subject): the first sighting."""
    for breach in breaches:
        inserted = connection.execute(dialect_insert(connection, _BREACHES).values(
            user_id=account.user_id, dry_run=account.dry_run, trading_date=day, limit_name=breach.limit,
            subject=breach.subject, value=breach.value, threshold=breach.threshold, action=breach.action.value,
            checked_at=moment, checked_by=checked_by[:32], metrics=metrics.as_summary()).on_conflict_do_nothing()
            .returning(_BREACHES.c.id)).scalar()  # not rowcount: psycopg gives -1 for ON CONFLICT inserts
        if inserted is not None:
            alert = Alert("limit_breach", f"risk limit breached for {account.user_id} on {day} "
                          f"({breach.action.value}): {breach.describe()}", {
                              "user_id": account.user_id, "dry_run": account.dry_run, "trading_date": day.isoformat(),
                              "limit": breach.limit, "subject": breach.subject, "value": breach.value,
                              "threshold": breach.threshold, "action": breach.action.value,
                              "description": breach.describe()})
            # said once stored: a check that fails and rolls back recorded nothing
            event.listen(connection, "commit", functools.partial(_say, alert), once=True)


def _say(alert: Alert, _connection: Connection) -> None:
    raise_alert(logger, alert)


def _entries_blocked(risk: Row[Any], breaches: list[Breach]) -> str | None:
    """The daily-loss breach of the session (found now, or by an earlier check), described."""
    for breach in breaches:
        if breach.action is Action.BLOCK_ENTRIES:
            return breach.describe()
    if risk.blocked_checked_at is None:
        return None
    breach = Breach("max_daily_loss_pct", risk.blocked_value, risk.blocked_threshold, Action.BLOCK_ENTRIES)
    return f"{breach.describe()} at {risk.blocked_checked_at.astimezone(KRX_TZ):%H:%M}"
