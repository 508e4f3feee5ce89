"""Wiring: settings -> database, calendar, triggers and the job runner."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.clock import Clock, SystemClock
from services.common.database import create_db_engine, make_session_factory, migrate, sqlite_file
from services.common.job_api import Account, Origin
from services.common.market_calendar import MarketCalendar, default_cache_dir, get_calendar
from services.common.settings import Settings
from services.orchestrator.jobs import JOBS, JobSpec, build_triggers, enabled_jobs
from services.orchestrator.ledger import RunLedger
from services.orchestrator.runner import JobRunner
from services.orchestrator.triggers import CalendarTrigger

logger = logging.getLogger(__name__)


def load_market_calendar(settings: Settings) -> MarketCalendar:
    return get_calendar(settings.cache_dir or str(default_cache_dir()))


def _sqlite_path(url: str) -> str | None:
    """The absolute path of the file a SQLite URL names (None: not SQLite, or in memory)."""
    parsed = make_url(url)
    database = sqlite_file(parsed.database) if parsed.get_backend_name() == "sqlite" else None
    return os.path.abspath(database) if database else None


def database_location(settings: Settings, url: str | None = None) -> str:
    """Where the database is: a SQLite database's absolute file path (``:memory:`` for
    one in memory), any other's URL without its password."""
    url = url or settings.database_url
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_path(url) or ":memory:"
    return settings.redacted_database_url(url)


@contextmanager
def announcing_a_new_database(settings: Settings, url: str | None = None) -> Iterator[None]:
    """One INFO line if what runs inside creates the SQLite database file ``url``
    (default: the settings' database) names, so that a command run from an unexpected
    directory does not silently start an empty database there."""
    path = _sqlite_path(url or settings.database_url)
    new = path is not None and not os.path.exists(path)
    yield
    if new and path is not None and os.path.exists(path):
        logger.info("created a new database at %s", path)


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    calendar: MarketCalendar
    triggers: dict[str, CalendarTrigger]
    engine: Engine | None = None
    _session_factory: sessionmaker[DbSession] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        """Calendar and triggers only; the database is opened on first use."""
        calendar = load_market_calendar(settings)
        return cls(settings, clock or SystemClock(), calendar, build_triggers(settings, calendar))

    @property
    def enabled_jobs(self) -> list[JobSpec]:
        return enabled_jobs(self.settings)

    @property
    def all_jobs(self) -> tuple[JobSpec, ...]:
        return JOBS

    def session_factory(self, *, migrate_first: bool = True) -> sessionmaker[DbSession]:
        if self._session_factory is None:
            with announcing_a_new_database(self.settings):
                self.engine = create_db_engine(
                    self.settings.database_url, connect_timeout_seconds=self.settings.db_connect_timeout_seconds,
                    statement_timeout_seconds=self.settings.db_statement_timeout_seconds)
            if migrate_first:
                migrate(self.engine)
            self._session_factory = make_session_factory(self.engine)
        return self._session_factory

    def runner(self, origin: str = Origin.SCHEDULE.value) -> JobRunner:
        """A runner of the account's jobs; what they trade is told to the installed
        notification channels (``trading_notices``)."""
        from services.orchestrator.trading_notices import TradingNotices

        runner = JobRunner(
            settings=self.settings, session_factory=self.session_factory(), clock=self.clock,
            calendar=self.calendar, triggers=self.triggers, origin=origin,
        )
        notices = TradingNotices(self)
        runner.starting_listeners.append(notices.starting)
        runner.finished_listeners.append(notices.finished)
        return runner

    def ledger(self) -> RunLedger:
        return RunLedger(self.session_factory(), self.clock, timedelta(seconds=self.settings.run_lease_seconds),
                         Account.of(self.settings))

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
