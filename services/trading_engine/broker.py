"""The account a run trades for: whose money, which broker holds it, and how its orders
reach that broker. Made once per run, from the instance's own settings
(:func:`open_account`); in dry run the live adapter is not even imported.

The paper and the live account differ in four things only, and those live here:
which broker a transaction gets (:meth:`TradingAccount.broker`), whether the
transaction takes the database's write lock at once (a live one first talks to KIS),
sending: a live account's orders are recorded in the job's transaction and sent
after it commits (:meth:`TradingAccount.send`; the paper broker places them in it),
and closing: a live account's KIS connections end with its run
(``with open_account(ctx) as trading:``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from services.common.clock import Clock, FixedClock
from services.common.database import account_transaction, snapshot_transaction
from services.common.job_api import Account, JobContext
from services.common.market_calendar import KRX_TZ, Session
from services.common.settings import ConfigurationError, Settings
from services.trading_engine.bar_settlement import Settlement, settle_daily_bars
from services.trading_engine.fees import FeeSchedule
from services.trading_engine.orders import Broker
from services.trading_engine.paper import PaperBroker, Pricing, QuoteSource, settlement_date
from services.trading_engine.signals import SignalRules

if TYPE_CHECKING:
    from services.trading_engine.kis_api.quotes import KisQuotes

logger = logging.getLogger(__name__)

#: a tick is priced from KIS's quotes only if it runs this close to its moment: KIS
#: gives prices now, not at a past tick (catch-up, ``run-job --date``)
QUOTES_NOW = timedelta(minutes=2)


class TradingAccount(ABC):
    """One run's account: ``account`` (user and mode) and its broker."""

    #: take the database's write lock when the transaction begins (SQLite): a paper
    #: account's reads are all in the database (KIS's quotes are fetched before it
    #: begins); a live one first reads KIS over HTTP
    lock_at_begin: bool

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.account: Account = ctx.account

    def __enter__(self) -> TradingAccount:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 (a paper account holds nothing beyond the database)
        """Release what the run held beyond the database (a live account: its KIS
        connections). ``with open_account(ctx) as trading:`` closes it."""

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
    market's intraday prices; with a real provider (pykrx, stored history) at KIS's
    quotes when ``ORCHESTRATOR_PAPER_QUOTES`` allows, and on each session no tick
    priced, at its daily bar once it is stored (:mod:`bar_settlement`)."""

    lock_at_begin = True

    def __init__(self, ctx: JobContext) -> None:
        super().__init__(ctx)
        self.kis_quotes: KisTickQuotes | None = None
        self.pricing, self.quote_source = self._pricing()

    def transaction(self) -> AbstractContextManager[Connection]:
        """As every account's; on KIS's quotes, those of the account's tickers are
        fetched first, so that no HTTP call holds the database's lock."""
        if self.kis_quotes is not None and self._quotes_wanted_now():
            with snapshot_transaction(self.ctx.session_factory) as connection:
                paper = self._paper(connection, self.ctx.clock)
                tickers = sorted({p.ticker for p in paper.positions()} | {o.ticker for o in paper.open_orders()})
            self.kis_quotes.fetch(tickers)
        return super().transaction()

    def _quotes_wanted_now(self) -> bool:
        """Whether the run stands at its moment inside a session (a tick may be priced)."""
        now = self.ctx.clock.now()
        session = self.ctx.calendar.session(now.astimezone(KRX_TZ).date())
        return (session is not None and session.open <= now <= session.close + QUOTES_NOW
                and abs(now - self.ctx.scheduled_for) <= QUOTES_NOW)

    def broker(self, connection: Connection, at: datetime | None = None) -> Broker:
        return self._paper(connection, self._clock(at))

    def settle(self, connection: Connection, now: datetime) -> Settlement:
        if self.pricing is Pricing.INTRADAY:
            return Settlement()
        return settle_daily_bars(connection, lambda clock: self._paper(connection, clock), self.ctx.calendar,
                                 SignalRules.from_settings(self.ctx.settings), now)

    def _paper(self, connection: Connection, clock: Clock) -> PaperBroker:
        settings = self.ctx.settings
        return PaperBroker(connection, user_id=self.account.user_id, fees=FeeSchedule.from_settings(settings),
                           calendar=self.ctx.calendar, clock=clock, initial_cash=settings.portfolio_value,
                           quote_source=self.quote_source, pricing=self.pricing)

    def _pricing(self) -> tuple[Pricing, QuoteSource | None]:
        pricing = paper_pricing(self.ctx.settings)
        if pricing is Pricing.INTRADAY:
            return pricing, self._simulated_quotes()
        if pricing is Pricing.LIVE_QUOTES:
            from services.trading_engine.kis_api.quotes import KisQuotes, QuoteConfig  # live quotes only: httpx

            settings = self.ctx.settings
            source = KisQuotes(QuoteConfig.from_settings(settings), clock=self.ctx.clock,
                               cache_dir=Path(settings.cache_dir or _default_cache_dir()))
            self.kis_quotes = KisTickQuotes(source, self.ctx.clock)
            return pricing, self.kis_quotes
        return pricing, None

    def _simulated_quotes(self) -> QuoteSource:
        """The simulated market's intraday path (its provider made at the first quote)."""
        settings, clock, calendar = self.ctx.settings, self.ctx.clock, self.ctx.calendar

        def quotes_at(tickers: Sequence[str], moment: datetime) -> Mapping[str, int]:
            from services.data_collector.providers.factory import make_provider

            provider: Any = make_provider(settings, clock, calendar)
            return provider.quotes_at(moment)  # type: ignore[no-any-return]

        return quotes_at


class KisTickQuotes:
    """A paper account's :data:`QuoteSource` on KIS for one run: the quotes of the
    account's tickers fetched before its transaction (:meth:`fetch`), given to a tick
    that runs at its moment (:data:`QUOTES_NOW`); a late one observes nothing. A ticker
    not fetched before (an order placed since) is asked for then; after a failed fetch
    nothing is asked again in the transaction."""

    def __init__(self, source: KisQuotes, clock: Clock) -> None:
        self._source = source
        self._clock = clock
        self._fetched: dict[str, int] | None = None  # None: nothing fetched before the transaction
        self._failed = False

    def fetch(self, tickers: Sequence[str]) -> None:
        self._fetched = self._source.prices(tickers)
        self._failed = bool(tickers) and not self._fetched

    def __call__(self, tickers: Sequence[str], moment: datetime) -> Mapping[str, int]:
        late = abs(self._clock.now() - moment)
        if late > QUOTES_NOW:
            logger.info("tick at %s runs %s after its moment: KIS's quotes are not its prices", moment, late)
            return {}
        if self._fetched is None:
            return self._source.prices(tickers)
        missing = [ticker for ticker in tickers if ticker not in self._fetched]
        if missing:
            fetched = {} if self._failed else self._source.prices(missing)
            if not fetched:
                return {}
            self._fetched.update(fetched)
        return {ticker: self._fetched[ticker] for ticker in tickers}


#: where a paper account's fills are priced, as ``status`` says it
PAPER_PRICES = {Pricing.INTRADAY: "the simulated market's intraday path",
                Pricing.LIVE_QUOTES: "KIS quotes (read only); a session no tick priced settles on its daily bar",
                Pricing.DAILY_BARS: "daily bars (each session settled once its bar is collected)"}


def paper_pricing(settings: Settings) -> Pricing:
    """Where a paper account of ``settings`` takes its prices from."""
    if settings.data_provider == "simulated":
        return Pricing.INTRADAY
    return Pricing.LIVE_QUOTES if kis_quotes_wanted(settings) else Pricing.DAILY_BARS


def kis_quotes_wanted(settings: Settings) -> bool:
    """Whether a paper account on a real provider prices its ticks from KIS: ``kis``, or
    ``auto`` with the app key and secret set."""
    if settings.paper_quotes == "auto":
        return bool(settings.kis_app_key and settings.kis_app_secret)
    return settings.paper_quotes == "kis"


def check_paper_quotes(settings: Settings) -> None:
    """Refuse ``ORCHESTRATOR_PAPER_QUOTES=kis`` where it cannot work, with one line."""
    if settings.paper_quotes != "kis":
        return
    if settings.data_provider == "simulated":
        raise ConfigurationError(
            "ORCHESTRATOR_PAPER_QUOTES=kis prices dry run from KIS, but ORCHESTRATOR_DATA_PROVIDER=simulated "
            "prices its own ticks; expected a real provider (pykrx, stored) or ORCHESTRATOR_PAPER_QUOTES=auto/off")
    missing = [name for name, value in (("KIS_APP_KEY", settings.kis_app_key),
                                        ("KIS_APP_SECRET", settings.kis_app_secret)) if not value]
    if missing:
        raise ConfigurationError(
            f"ORCHESTRATOR_PAPER_QUOTES=kis needs {' and '.join(missing)}, not set in the environment or .env; "
            "expected the KIS open API app key and secret (no account number: quotes only), or "
            "ORCHESTRATOR_PAPER_QUOTES=auto/off")


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

    def close(self) -> None:
        self.adapter.close()

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
    """The account of ``ctx``'s instance: paper unless its settings say live (a context
    manager: the run's KIS connections are closed at its end)."""
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
    """``start`` and ``run-job`` refuse live trading without a sound KIS configuration,
    and dry run told to read KIS's quotes (``ORCHESTRATOR_PAPER_QUOTES=kis``) without
    what that needs."""
    if settings.dry_run:
        check_paper_quotes(settings)
        return
    from services.trading_engine import kis

    kis.check_live_config(settings)
