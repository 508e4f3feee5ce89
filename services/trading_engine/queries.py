"""What the orchestrator reads of an account's trading: orders, fills and portfolio
snapshots over a range of trading dates, as plain values (replay reports; the
console of a later issue), and the latest day it traded (``run-job``'s guard)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, func, select

from services.common.job_api import Account
from services.trading_engine.models import FillRow, OrderRow, PaperAccount, PortfolioSnapshot


def order_count(connection: Connection, account: Account, start: date, end: date) -> int:
    """How many orders ``account`` recorded for the trading dates ``start`` to ``end``."""
    return int(connection.scalar(select(func.count()).select_from(OrderRow).where(
        OrderRow.user_id == account.user_id, OrderRow.dry_run.is_(account.dry_run),
        OrderRow.trading_date >= start, OrderRow.trading_date <= end)) or 0)


def fill_totals(connection: Connection, account: Account, start: date, end: date) -> tuple[int, int, int]:
    """``account``'s fills traded from ``start`` to ``end``: (how many, commission, tax)."""
    count, commission, tax = connection.execute(select(
        func.count(), func.coalesce(func.sum(FillRow.commission), 0), func.coalesce(func.sum(FillRow.tax), 0))
        .where(FillRow.user_id == account.user_id, FillRow.dry_run.is_(account.dry_run),
               FillRow.trade_date >= start, FillRow.trade_date <= end)).one()
    return int(count), int(commission), int(tax)


def equity_before(connection: Connection, account: Account, day: date) -> int | None:
    """``account``'s last snapshotted equity of a trading date before ``day``; None if none."""
    equity = connection.scalar(select(PortfolioSnapshot.equity).where(
        PortfolioSnapshot.user_id == account.user_id, PortfolioSnapshot.dry_run.is_(account.dry_run),
        PortfolioSnapshot.trading_date < day).order_by(PortfolioSnapshot.taken_at.desc()).limit(1))
    return None if equity is None else int(equity)


def latest_activity(connection: Connection, account: Account) -> date | None:
    """The latest trading date ``account`` has a fill or a portfolio snapshot of; None
    if it has neither (the day before which a manual trading run would rewrite history)."""
    fill = connection.scalar(select(func.max(FillRow.trade_date)).where(
        FillRow.user_id == account.user_id, FillRow.dry_run.is_(account.dry_run)))
    snapshot = connection.scalar(select(func.max(PortfolioSnapshot.trading_date)).where(
        PortfolioSnapshot.user_id == account.user_id, PortfolioSnapshot.dry_run.is_(account.dry_run)))
    return max((day for day in (fill, snapshot) if day is not None), default=None)


def paper_opening_cash(connection: Connection, user_id: str) -> int | None:
    """What ``user_id``'s paper account opened with; None if it was never opened."""
    cash = connection.scalar(select(PaperAccount.initial_cash).where(PaperAccount.user_id == user_id))
    return None if cash is None else int(cash)


def snapshots(connection: Connection, account: Account, start: date, end: date) -> list[Any]:
    """``account``'s portfolio snapshots of the trading dates ``start`` to ``end``, oldest first."""
    return list(connection.execute(select(PortfolioSnapshot.__table__).where(
        PortfolioSnapshot.user_id == account.user_id, PortfolioSnapshot.dry_run.is_(account.dry_run),
        PortfolioSnapshot.trading_date >= start, PortfolioSnapshot.trading_date <= end)
        .order_by(PortfolioSnapshot.taken_at)).all())
