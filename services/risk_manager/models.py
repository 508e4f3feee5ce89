"""Risk tables: the trading halt of each user, and the breaches of the risk limits
with the metric values that caused them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Float, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.database import Base, UTCDateTime


class TradingHalt(Base):
    """A user's halt state: while ``halted``, no new position is opened in any mode
    (paper or live). Kept after a resume, so the last halt and resume stay visible."""

    __tablename__ = "trading_halts"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    halted: Mapped[bool]
    reason: Mapped[str] = mapped_column(String(300))
    halted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    halted_by: Mapped[str] = mapped_column(String(32))  # manual | risk_checks | a trading job
    resumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resumed_by: Mapped[str | None] = mapped_column(String(32))
    #: set when a loss halt is resumed: the loss limits measure from then, from the
    #: equity the first assessment of each mode after the resume finds (filled in by it):
    #: the paper account's in ``baseline_equity``, the live one's in ``live_baseline_equity``
    baseline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    baseline_equity: Mapped[int | None] = mapped_column(BigInteger)
    live_baseline_equity: Mapped[int | None] = mapped_column(BigInteger)


class RiskBreach(Base):
    """A limit found breached: recorded once per (account, trading date, limit, subject),
    at the first check that saw it, with the metrics of that check."""

    __tablename__ = "risk_breaches"
    __table_args__ = (UniqueConstraint("user_id", "dry_run", "trading_date", "limit_name", "subject",
                                       name="uq_risk_breaches_once_a_day"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool]
    trading_date: Mapped[date] = mapped_column(Date)
    limit_name: Mapped[str] = mapped_column(String(48))  # the setting, e.g. max_daily_loss_pct
    subject: Mapped[str] = mapped_column(String(16))  # a ticker, or "" for the account
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(16))  # warn | block_entries | halt
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    checked_by: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
