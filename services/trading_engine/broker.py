"""The account a run trades for: whose money, which broker holds it, and how its orders
reach that broker. Made once per run, from the instance's own settings
(:func:`open_account`); in dry run the live adapter is not even imported.

The paper and the live account differ in three things only, and those live here:
which broker a transaction gets (:meth:`TradingAccount.broker`), whether the
transaction takes the database's write lock at once (a live one first talks to KIS),
and sending: a live account's orders are recorded in the job's transaction and sent
after it commits (:meth:`TradingAccount.send`); the paper broker places them in it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from services.common.clock import Clock, FixedClock
from services.common.database import account_transaction
from services.common.job_api import Account, JobContext
from services.common.market_calendar import Session
from services.common.settings import Settings
from services.trading_engine.bar_settlement import Settlement, settle_daily_bars
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.orders import Broker
from services.trading_engine.paper import PaperBroker, QuoteSource, settlement_date
from services.trading_engine.signals import SignalRules

logger = logging.getLogger(__name__)


class TradingAccount(ABC):
    """One run's account: ``account`` (user and mode) and its broker."""

    #: take the database's write lock when the transaction begins (SQLite): a paper
    #: account's reads are all in the database; a live one first reads KIS over HTTP
    lock_at_begin: bool

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.account: Account = ctx.account

    def transaction(self) -> AbstractContextManager[Connection]:
        """The transaction the job reads and changes its account in (its connection):
        one writer per account at a time, so every read in it sees one committed state
        (a risk check never sees a tick's fills half-way). Committed at the end."""
        return account_transaction(self.ctx.session_factory, self.account.key, immediate=self.lock_at_begin)

    @abstractmethod
    def broker(self, connection: Connection, at: datetime | None = None) -> Broker:
        """The broker on ``connection``, its clock standing at ``at`` (the market moment
        the job acts at; None: the run's clock)."""

    def send(self, *, buys_refused: str | None = None, sells_only: bool = False) -> dict[str, int]:
        """Send the orders recorded and not yet at the broker (after the job's
        transaction has committed); the counts a job summary reports ({}: nothing is
        ever sent later)."""
        return {}

    def has_unsent(self) -> bool:
        """Whether orders are recorded and not yet at the broker."""
        return False

    def settle(self, connection: Connection, now: datetime) -> Settlement:
        """Settle the sessions whose daily bar came in since (a paper account on a
        provider without intraday prices); nothing elsewhere."""
        return Settlement()

    def _clock(self, at: datetime | None) -> Clock:
        return FixedClock(at) if at is not None else self.ctx.clock


class PaperTrading(TradingAccount):
    """The paper account: the paper broker in the database, filling at the simulated
    market's intraday prices, or with a daily-bar provider (pykrx, stored history) on
    each session's bar once it is stored (:mod:`bar_settlement`)."""

    lock_at_begin = True

    def __init__(self, ctx: JobContext) -> None:
        super().__init__(ctx)
        self.quote_source = self._quote_source()
        self.daily_bars = self.quote_source is None

    def broker(self, connection: Connection, at: datetime | None = None) -> Broker:
        return self._paper(connection, self._clock(at))

    def settle(self, connection: Connection, now: datetime) -> Settlement:
        if not self.daily_bars:
            return Settlement()
        return settle_daily_bars(connection, lambda clock: self._paper(connection, clock), self.ctx.calendar,
                                 SignalRules.from_settings(self.ctx.settings), now)

    def _paper(self, connection: Connection, clock: Clock) -> PaperBroker:
        settings = self.ctx.settings
        return PaperBroker(connection, user_id=self.account.user_id, fees=FeeSchedule.from_settings(settings),
                           calendar=self.ctx.calendar, clock=clock, initial_cash=settings.portfolio_value,
                           quote_source=self.quote_source, expire_at_close=not self.daily_bars)

    def _quote_source(self) -> QuoteSource | None:
        """The simulated market's intraday path (its provider made at the first quote)."""
        settings, clock, calendar = self.ctx.settings, self.ctx.clock, self.ctx.calendar
        if settings.data_provider != "simulated":
            return None

        def quotes_at(moment: datetime) -> Mapping[str, int]:
            from services.data_collector.providers.factory import make_provider

            provider: Any = make_provider(settings, clock, calendar)
            return provider.quotes_at(moment)  # type: ignore[no-any-return]

        return quotes_at


class LiveTrading(TradingAccount):
    """The live account: KIS, with this instance's credentials."""

    lock_at_begin = False

    def __init__(self, ctx: JobContext) -> None:
        super().__init__(ctx)
        from services.trading_engine import kis

        settings = ctx.settings
        self.adapter = kis.make_kis_broker(
            settings, cache_dir=Path(settings.cache_dir or _default_cache_dir()), clock=ctx.clock,
            settlement_date=lambda day: settlement_date(ctx.calendar, day))

    def broker(self, connection: Connection, at: datetime | None = None) -> Broker:
        from services.trading_engine.live_broker import LiveBroker

        return LiveBroker(self.adapter, connection, user_id=self.account.user_id, clock=self._clock(at))

    def send(self, *, buys_refused: str | None = None, sells_only: bool = False) -> dict[str, int]:
        from services.trading_engine.live_orders import send_pending

        report = send_pending(self.adapter, self.ctx.session_factory, self.account.user_id, self.ctx.clock,
                              buys_refused=buys_refused, sells_only=sells_only)
        if report.in_doubt or report.unsent:
            self.ctx.log.warning("%d live order(s) in doubt and %d unsent: the next run tries again",
                                 report.in_doubt, report.unsent)
        return report.summary()


    def has_unsent(self) -> bool:
        from services.trading_engine.live_orders import has_pending

        return has_pending(self.ctx.session_factory, self.account.user_id)


def _default_cache_dir() -> str:
    from services.common.market_calendar import default_cache_dir

    return str(default_cache_dir())


def open_account(ctx: JobContext) -> TradingAccount:
    """The account of ``ctx``'s instance: paper unless its settings say live."""
    return PaperTrading(ctx) if ctx.account.dry_run else LiveTrading(ctx)


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
