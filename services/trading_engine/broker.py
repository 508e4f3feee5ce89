"""Choosing the broker: the paper broker in dry run, the KIS adapter only live.

The choice is made here and nowhere else, from the instance's own settings (the job
context has no account of its own): in dry run the live adapter is not even imported.
"""

from __future__ import annotations

import functools
import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping, Sequence

from sqlalchemy import Connection, Select, bindparam, func, select

from services.common.clock import FixedClock
from services.common.database import account_transaction as _account_transaction
from services.common.job_api import JobContext
from services.common.market_calendar import KRX_TZ, Session
from services.common.settings import Settings
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.orders import Broker
from services.trading_engine.paper import PaperBroker, settlement_date

logger = logging.getLogger(__name__)


def is_dry_run(ctx: JobContext) -> bool:
    """Paper unless the instance's settings say live."""
    return ctx.settings.dry_run


def account_transaction(ctx: JobContext) -> AbstractContextManager[Connection]:
    """The transaction a job reads and changes its account in (its connection): one
    writer per account at a time, so every read in it sees one committed state (a risk
    check never sees a tick's fills half-way). Committed at the end. A live account's
    positions and cash come from KIS over HTTP, not from the database: on SQLite its
    transaction takes the database's write lock at its first write, not before those
    calls (PostgreSQL's lock is the account's alone either way)."""
    return _account_transaction(ctx.session_factory, ctx.account.key, immediate=is_dry_run(ctx))


def make_broker(ctx: JobContext, connection: Connection, at: datetime | None = None) -> Broker:
    """The broker for ``ctx``: :class:`PaperBroker` on ``connection`` in dry run, its
    clock standing at ``at`` (the market moment the job acts at)."""
    fees = FeeSchedule.from_settings(ctx.settings)
    if is_dry_run(ctx):
        clock = FixedClock(at) if at is not None else ctx.clock
        return PaperBroker(connection, user_id=ctx.settings.user_id, fees=fees, calendar=ctx.calendar, clock=clock,
                           initial_cash=ctx.settings.portfolio_value)
    return live_broker(ctx)


def live_broker(ctx: JobContext) -> Broker:
    """The KIS adapter of the instance's live settings (it keeps no database state)."""
    if is_dry_run(ctx):
        raise ValueError("a dry-run instance has no live broker")
    from services.common.market_calendar import default_cache_dir
    from services.trading_engine import kis

    return kis.make_kis_broker(ctx.settings, cache_dir=Path(ctx.settings.cache_dir or default_cache_dir()),
                               clock=ctx.clock, settlement_date=lambda day: settlement_date(ctx.calendar, day))


def cash_balance(broker: Broker) -> int:
    """The account's cash, including what is held back for open buys (still cash)."""
    if isinstance(broker, PaperBroker):
        return int(broker.account().cash)
    return broker.cash().available


def market_moment(ctx: JobContext, session: Session, *, pre_open: bool) -> datetime:
    """When, in market time, the job acts: now, or for a run dated after its session
    (``run-job --date`` of a past day) the moment it stands in for: just before the
    open for pre-open work, the close for a session tick."""
    now = min(ctx.clock.now(), ctx.scheduled_for) if not pre_open else ctx.clock.now()
    if now < session.close:
        return now
    return session.open - timedelta(seconds=1) if pre_open else session.close


def preflight(settings: Settings, clock: object, calendar: object) -> None:
    """``start`` and ``run-job`` refuse live trading without a sound KIS configuration."""
    if settings.dry_run:
        return
    from services.trading_engine import kis

    kis.check_live_config(settings)


# --- prices to value and fill with -----------------------------------------------------------------


@dataclass(frozen=True)
class Quotes:
    """Prices of some tickers; ``observed`` means seen during the session now (orders
    may fill at them), otherwise they are the latest stored closes (valuation only)."""

    prices: dict[str, int]
    observed: bool


def current_quotes(ctx: JobContext, broker: Broker, connection: Connection, tickers: Sequence[str],
                   moment: datetime, session: Session) -> Quotes:
    """Prices at ``moment``: from the broker live; in dry run from the simulated
    provider's intraday path, or else the latest stored closes."""
    if not tickers:
        return Quotes({}, False)
    during = session.open <= moment
    if not is_dry_run(ctx) and during and hasattr(broker, "quotes"):
        return Quotes(dict(broker.quotes(list(tickers))), True)  # type: ignore[attr-defined]
    if is_dry_run(ctx) and during and ctx.settings.data_provider == "simulated":
        from services.data_collector.providers.factory import make_provider

        provider = make_provider(ctx.settings, ctx.clock, ctx.calendar)
        everything = provider.quotes_at(min(moment, session.close))  # type: ignore[attr-defined]
        return Quotes({t: everything[t] for t in tickers if t in everything}, True)
    return Quotes(stored_closes(connection, tickers, moment.astimezone(KRX_TZ).date()), False)


def stored_closes(connection: Connection, tickers: Sequence[str], before: object) -> dict[str, int]:
    """Each ticker's close in the latest collected session before ``before``."""
    rows = connection.execute(_price_statements()[0], {"before": before, "tickers": list(tickers)}).all()
    return {ticker: int(close) for ticker, close in rows}


def participation_caps(connection: Connection, tickers: Sequence[str], previous_day: object,
                       share: float = 0.05) -> Mapping[str, int]:
    """At most ``share`` of a ticker's previous-session volume fills at one observation."""
    rows = connection.execute(_price_statements()[1], {"day": previous_day, "tickers": list(tickers)}).all()
    return {ticker: max(1, int(volume * share)) for ticker, volume in rows}


@functools.lru_cache(maxsize=1)
def _price_statements() -> tuple[Select[Any], Select[Any]]:
    """Built once (read at every tick and risk check): the closes of the latest collected
    session before ``before``, and the volumes of ``day``, of some ``tickers``."""
    from services.data_collector.models import CollectedSession, DailyPrice

    tickers = DailyPrice.ticker.in_(bindparam("tickers", expanding=True))
    latest = select(func.max(CollectedSession.date)).where(CollectedSession.date < bindparam("before"))
    closes = select(DailyPrice.ticker, DailyPrice.close).where(DailyPrice.date == latest.scalar_subquery(), tickers)
    volumes = select(DailyPrice.ticker, DailyPrice.volume).where(DailyPrice.date == bindparam("day"), tickers)
    return closes, volumes

