"""Indicator tables, keyed by (ticker, date) like the market data (stored date-first)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import BigInteger, Date, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.database import Base, UTCDateTime

_TABLE_ARGS = {"sqlite_with_rowid": False}


class TechnicalIndicator(Base):
    __tablename__ = "technical_indicators"
    __table_args__ = _TABLE_ARGS

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    sma_5: Mapped[Optional[float]] = mapped_column(Float)
    sma_20: Mapped[Optional[float]] = mapped_column(Float)
    sma_60: Mapped[Optional[float]] = mapped_column(Float)
    sma_120: Mapped[Optional[float]] = mapped_column(Float)
    ema_12: Mapped[Optional[float]] = mapped_column(Float)
    ema_26: Mapped[Optional[float]] = mapped_column(Float)
    ema_20: Mapped[Optional[float]] = mapped_column(Float)
    rsi_14: Mapped[Optional[float]] = mapped_column(Float)
    macd: Mapped[Optional[float]] = mapped_column(Float)
    macd_signal: Mapped[Optional[float]] = mapped_column(Float)
    macd_hist: Mapped[Optional[float]] = mapped_column(Float)
    bb_upper: Mapped[Optional[float]] = mapped_column(Float)
    bb_middle: Mapped[Optional[float]] = mapped_column(Float)
    bb_lower: Mapped[Optional[float]] = mapped_column(Float)
    atr_14: Mapped[Optional[float]] = mapped_column(Float)
    stoch_k: Mapped[Optional[float]] = mapped_column(Float)
    stoch_d: Mapped[Optional[float]] = mapped_column(Float)
    volume_ratio_20: Mapped[Optional[float]] = mapped_column(Float)
    # the recursions' internal states, so the next session is one step (incremental.py)
    state_macd_fast: Mapped[Optional[float]] = mapped_column(Float)
    state_macd_slow: Mapped[Optional[float]] = mapped_column(Float)
    state_rsi_gain: Mapped[Optional[float]] = mapped_column(Float)
    state_rsi_loss: Mapped[Optional[float]] = mapped_column(Float)


class FinancialIndicator(Base):
    __tablename__ = "financial_indicators"
    __table_args__ = _TABLE_ARGS

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    per: Mapped[Optional[float]] = mapped_column(Float)
    pbr: Mapped[Optional[float]] = mapped_column(Float)
    eps: Mapped[Optional[float]] = mapped_column(Float)
    bps: Mapped[Optional[float]] = mapped_column(Float)
    dividend_yield: Mapped[Optional[float]] = mapped_column(Float)
    roe: Mapped[Optional[float]] = mapped_column(Float)
    earnings_positive: Mapped[Optional[bool]]
    market_cap: Mapped[Optional[int]] = mapped_column(BigInteger)
    market_cap_rank: Mapped[Optional[int]]


class CalculatedSession(Base):
    """A trading date whose indicators are complete: written in the same transaction."""

    __tablename__ = "calculated_sessions"

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    tickers: Mapped[int]
    lookback_start: Mapped[date] = mapped_column(Date)
    calculated_at: Mapped[datetime] = mapped_column(UTCDateTime())
