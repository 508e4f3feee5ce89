"""Market data tables: the stock master, daily prices, fundamentals, market indices, and
the record of which trading dates are complete."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.database import Base, UTCDateTime


class Stock(Base):
    __tablename__ = "stocks"

    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    market: Mapped[str] = mapped_column(String(16))
    updated_on: Mapped[date] = mapped_column(Date)


#: Keyed by (ticker, date); stored date-first so that a trading date's rows are
#: appended together and date-range reads (indicator lookbacks) follow the key.
#: On SQLite the tables are WITHOUT ROWID: the key's B-tree is the table.
_MARKET_TABLE_ARGS = {"sqlite_with_rowid": False}


class DailyPrice(Base):
    """One ticker's session; prices and money in whole KRW. ``halted``: no trade."""

    __tablename__ = "daily_prices"
    __table_args__ = _MARKET_TABLE_ARGS

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    open: Mapped[int] = mapped_column(BigInteger)
    high: Mapped[int] = mapped_column(BigInteger)
    low: Mapped[int] = mapped_column(BigInteger)
    close: Mapped[int] = mapped_column(BigInteger)
    volume: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[int] = mapped_column(BigInteger)
    change_pct: Mapped[float] = mapped_column(Float)
    market_cap: Mapped[int] = mapped_column(BigInteger)
    market: Mapped[str] = mapped_column(String(16))
    halted: Mapped[bool]


class Fundamental(Base):
    """KRX's per-ticker fundamentals as published (0 = not available, KRX's convention)."""

    __tablename__ = "fundamentals"
    __table_args__ = _MARKET_TABLE_ARGS

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    bps: Mapped[int] = mapped_column(BigInteger)
    per: Mapped[float] = mapped_column(Float)
    pbr: Mapped[float] = mapped_column(Float)
    eps: Mapped[int] = mapped_column(BigInteger)
    div: Mapped[float] = mapped_column(Float)
    dps: Mapped[int] = mapped_column(BigInteger)


class MarketIndex(Base):
    """A market index's close as its provider published it (KOSPI, KOSDAQ)."""

    __tablename__ = "market_indices"
    __table_args__ = _MARKET_TABLE_ARGS

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    close: Mapped[float] = mapped_column(Float)


class CorporateAction(Base):
    """A session on which KRX reset a ticker's base price (a split, a reverse split, a
    bonus or rights issue): ``ratio`` is the previous close over the base price, what
    older prices are divided by to compare with this session's (:mod:`adjustments`)."""

    __tablename__ = "corporate_actions"
    __table_args__ = _MARKET_TABLE_ARGS

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    ratio: Mapped[float] = mapped_column(Float)


class CollectedSession(Base):
    """A trading date whose data is complete: written last, in the same transaction."""

    __tablename__ = "collected_sessions"

    date: Mapped[date] = mapped_column(Date, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    stock_rows: Mapped[int]
    price_rows: Mapped[int]
    fundamental_rows: Mapped[int]
    rejected_rows: Mapped[int]
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the date was first collected
    #: how many times the date's rows were stored: rows kept between reads are current
    #: while it is the one read with them (:mod:`indicator_calculator.windows`)
    revision: Mapped[int] = mapped_column(default=1, server_default="1")
