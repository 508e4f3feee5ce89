"""Wiring: settings -> database, calendar, triggers and the job runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.clock import Clock, SystemClock
from services.common.database import create_db_engine, make_session_factory, migrate
from services.common.job_api import Account, Origin
from services.common.market_calendar import MarketCalendar, default_cache_dir, get_calendar
from services.common.settings import Settings
from services.orchestrator.jobs import JOBS, JobSpec, build_triggers, enabled_jobs
from services.orchestrator.ledger import RunLedger
from services.orchestrator.runner import JobRunner
from services.orchestrator.triggers import CalendarTrigger


def load_market_calendar(settings: Settings) -> MarketCalendar:
    return get_calendar(settings.cache_dir or str(default_cache_dir()))


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
            self.engine = create_db_engine(
                self.settings.database_url, connect_timeout_seconds=self.settings.db_connect_timeout_seconds,
                statement_timeout_seconds=self.settings.db_statement_timeout_seconds)
            if migrate_first:
                migrate(self.engine)
            self._session_factory = make_session_factory(self.engine)
        return self._session_factory

    def runner(self, origin: str = Origin.SCHEDULE.value) -> JobRunner:
        return JobRunner(
            settings=self.settings, session_factory=self.session_factory(), clock=self.clock,
            calendar=self.calendar, triggers=self.triggers, origin=origin,
        )

    def ledger(self) -> RunLedger:
        return RunLedger(self.session_factory(), self.clock, timedelta(seconds=self.settings.run_lease_seconds),
                         Account.of(self.settings))

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
