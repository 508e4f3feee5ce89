"""Indicator tables, keyed by (ticker, date) like the market data (stored date-first)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.database import Base, UTCDateTime

_TABLE_ARGS = {"sqlite_with_rowid": False}


class TechnicalIndicator(Base):
    __tablename__ = "technical_indicators"
    __table_args__ = _TABLE_ARGS

    date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    sma_5: Mapped[float | None] = mapped_column(Float)
    sma_20: Mapped[float | None] = mapped_column(Float)
    sma_60: Mapped[float | None] = mapped_column(Float)
    sma_120: Mapped[float | None] = mapped_column(Float)
    ema_12: Mapped[float | None] = mapped_column(Float)
    ema_26: Mapped[float | None] = mapped_column(Float)
    ema_20: Mapped[float | None] = mapped_column(Float)
    rsi_14: Mapped[float | None] = mapped_column(Float)
    macd: Mapped[float | None] = mapped_column(Float)
    macd_signal: Mapped[float | None] = mapped_column(Float)
    macd_hist: Mapped[float | None] = mapped_column(Float)
    bb_upper: Mapped[float | None] = mapped_column(Float)
    bb_middle: Mapped[float | None] = mapped_column(Float)
    bb_lower: Mapped[float | None] = mapped_column(Float)
    atr_14: Mapped[float | None] = mapped_column(Float)
    stoch_k: Mapped[float | None] = mapped_column(Float)
    stoch_d: Mapped[float | None] = mapped_column(Float)
    volume_ratio_20: Mapped[float | None] = mapped_column(Float)
    # the recursions' internal states, so the next session is one step (incremental.py)
    state_macd_fast: Mapped[float | None] = mapped_column(Float)
    state_macd_slow: Mapped[float | None] = mapped_column(Float)
    state_rsi_gain: Mapped[float | None] = mapped_column(Float)
    state_rsi_loss: Mapped[float | None] = mapped_column(Float)


class FinancialIndicator(Base):
    __tablename__ = "financial_indicators"
    __table_args__ = _TABLE_ARGS

    date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    per: Mapped[float | None] = mapped_column(Float)
    pbr: Mapped[float | None] = mapped_column(Float)
    eps: Mapped[float | None] = mapped_column(Float)
    bps: Mapped[float | None] = mapped_column(Float)
    dividend_yield: Mapped[float | None] = mapped_column(Float)
    roe: Mapped[float | None] = mapped_column(Float)
    earnings_positive: Mapped[bool | None]
    market_cap: Mapped[int | None] = mapped_column(BigInteger)
    market_cap_rank: Mapped[int | None]


class CalculatedSession(Base):
    """A trading date whose indicators are complete: written in the same transaction."""

    __tablename__ = "calculated_sessions"

    date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    tickers: Mapped[int]
    lookback_start: Mapped[dt.date] = mapped_column(Date)
    calculated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
