"""Each user's watchlist per session, with the factor breakdown of every score."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.database import Base


class WatchlistEntry(Base):
    __tablename__ = "watchlist_entries"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(12), primary_key=True)
    rank: Mapped[int]
    score: Mapped[float] = mapped_column(Float)
    trend: Mapped[float] = mapped_column(Float)
    momentum: Mapped[float] = mapped_column(Float)
    volatility: Mapped[float] = mapped_column(Float)
    liquidity: Mapped[float] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)
    close: Mapped[int] = mapped_column(BigInteger)
    entered_on: Mapped[dt.date] = mapped_column(Date)
    entry_close: Mapped[int] = mapped_column(BigInteger)


class WatchlistRun(Base):
    """The watchlist of (user, date) was computed (it may be empty): entries and exits
    are always measured against the previous run."""

    __tablename__ = "watchlist_runs"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    size: Mapped[int]
    eligible: Mapped[int]
