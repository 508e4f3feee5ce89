"""The job registry: every job, its schedule and the upstream work it needs, declared once.

The scheduler, the ``--disable-*`` flags, the ``ORCHESTRATOR_ENABLE_*`` switches,
``status``, ``next-runs`` and the README's job table all read :data:`JOBS`; the runner
reads each job's ``needs`` (and the probe of each job needed) before it runs the job.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

from services.common.job_api import JobContext, JobEntryPoint
from services.common.market_calendar import MarketCalendar
from services.common.settings import ConfigurationError, Settings
from services.common.text import did_you_mean
from services.orchestrator.triggers import (
    CalendarTrigger,
    ClockAlignedIntervalTrigger,
    InSessionIntervalTrigger,
    SessionAnchoredTrigger,
    TriggerError,
)
from services.orchestrator.triggers import (
    minutes_of_day as _minutes,
)


class UnknownJobError(ConfigurationError):
    """A job name that is not in the registry."""


class ServiceUnavailableError(LookupError):
    """The job's service package is not part of this build."""


@dataclass(frozen=True)
class PreOpen:
    """Once per session, before the actual open; ``time_setting`` is read against the
    regular open (08:45 = open - 15 min)."""

    time_setting: str


@dataclass(frozen=True)
class PostClose:
    """Once per session, after the actual close; ``time_setting`` is read against the
    regular close (16:00 = close + 30 min)."""

    time_setting: str


@dataclass(frozen=True)
class DuringSession:
    """Every ``interval_setting`` minutes from the actual open to the actual close."""

    interval_setting: str


@dataclass(frozen=True)
class AroundTheClock:
    """Every ``interval_setting`` minutes, aligned to the clock, every day."""

    interval_setting: str


Schedule = PreOpen | PostClose | DuringSession | AroundTheClock


@dataclass(frozen=True)
class Need:
    """Upstream work a job needs for its trading date D: ``job``'s work for D, or for the
    session before D (``previous_session``)."""

    job: str
    previous_session: bool = False

    def trading_date(self, calendar: MarketCalendar, day: date) -> date | None:
        """The upstream's trading date for ``day``; None when the calendar holds no
        session before it."""
        if not self.previous_session:
            return day
        previous = calendar.previous_session(day)
        return None if previous is None else previous.date

    def describe(self) -> str:
        """E.g. 'watchlist_update of the previous session'."""
        return f"{self.job} of the {'previous' if self.previous_session else 'same'} session"


@dataclass(frozen=True)
class Output:
    """What a job leaves for a trading date, for the jobs that need it: its name in words
    (``watchlist``), and its probe, "module:function(ctx) -> bool": whether it is there
    for ``ctx.trading_date``, whoever wrote it (a ``backfill`` or a replay leaves no row
    of the job)."""

    name: str
    probe: str


@dataclass(frozen=True)
class JobSpec:
    name: str
    summary: str
    entry_point: str  # "package.module:function"
    schedule: Schedule
    #: on ``start``, run once for the latest trading date so missing history is filled
    catch_up_on_start: bool = False
    #: "module:function(settings, clock, calendar)" run by ``start`` before scheduling:
    #: raises ConfigurationError when the job cannot work here (e.g. missing credentials)
    preflight: str | None = None
    #: places orders: with --no-dry-run it talks to the live broker
    trades: bool = False
    #: upstream work run first (each as its own ledger row) when its output is missing
    needs: tuple[Need, ...] = ()
    #: what the job leaves and how to tell it is there: every job another one needs has one
    output: Output | None = None
    #: "module:function(ctx) -> str | None": a fingerprint of everything the job reads (None:
    #: it cannot tell); a fire whose fingerprint is the one the job's last successful run
    #: recorded is recorded ``skipped`` (unchanged since) and not run
    state: str | None = None
    #: reads and writes market data only, never an account's: a replay may run its fires
    #: ahead of the account's, in a process of its own (``replay_ahead``)
    market_only: bool = False

    @property
    def sessions_only(self) -> bool:
        return not isinstance(self.schedule, AroundTheClock)

    @property
    def enable_variable(self) -> str:
        return f"ORCHESTRATOR_ENABLE_{self.name.upper()}"

    @property
    def disable_flag(self) -> str:
        return f"--disable-{self.name.replace('_', '-')}"

    @property
    def service_module(self) -> str:
        return self.entry_point.split(":", 1)[0]

    def service_available(self) -> bool:
        try:
            return importlib.util.find_spec(self.service_module) is not None
        except ModuleNotFoundError:
            return False

    def run_preflight(self, settings: Settings, clock: Any, calendar: MarketCalendar) -> None:
        if self.preflight and self.service_available():
            module_name, function_name = self.preflight.split(":", 1)
            getattr(importlib.import_module(module_name), function_name)(settings, clock, calendar)

    def load_entry_point(self) -> JobEntryPoint:
        if not self.service_available():
            raise ServiceUnavailableError(
                f"service {self.service_module} is not installed in this build"
            )
        return _load(self.entry_point)  # type: ignore[no-any-return]

    def state_of(self, ctx: JobContext) -> str | None:
        """The job's fingerprint of what it would read for ``ctx`` (see :attr:`state`)."""
        return None if self.state is None else _load(self.state)(ctx)

    def work_done(self, ctx: JobContext) -> bool:
        """Whether the job's output for ``ctx.trading_date`` is there (its probe)."""
        if self.output is None:
            raise ConfigurationError(f"{self.name} declares no output; a job that others need declares one")
        probe: Callable[[JobContext], bool] = _load(self.output.probe)
        return bool(probe(ctx))


def _load(reference: str) -> Any:
    """The function a "module:function" reference names."""
    module_name, function_name = reference.split(":", 1)
    return getattr(importlib.import_module(module_name), function_name)  # waits for a module another thread imports


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        "signal_generation",
        "pre-open entry and exit signals from the previous session's watchlist",
        "services.trading_engine.engine:run",
        PreOpen("signal_generation_time"),
        preflight="services.trading_engine.broker:preflight",
        trades=True,
        needs=(Need("watchlist_update", previous_session=True),),
    ),
    JobSpec(
        "position_monitoring",
        "price open positions, fill paper orders, apply exits, snapshot the portfolio",
        "services.trading_engine.monitor:run",
        DuringSession("position_monitor_interval"),
        preflight="services.trading_engine.broker:preflight",
        trades=True,
        state="services.trading_engine.monitor:state",
    ),
    JobSpec(
        "data_collection",
        "collect the session's prices, fundamentals and stock master",
        "services.data_collector.collector:run",
        PostClose("data_collection_time"),
        catch_up_on_start=True,
        preflight="services.data_collector.collector:preflight",
        output=Output("market data", "services.data_collector.collector:history_complete"),
        market_only=True,
    ),
    JobSpec(
        "indicator_calculation",
        "technical and financial indicators for the session",
        "services.indicator_calculator.calculator:run",
        PostClose("indicator_calculation_time"),
        catch_up_on_start=True,
        needs=(Need("data_collection"),),
        output=Output("indicators", "services.indicator_calculator.calculator:indicators_stored"),
        market_only=True,
    ),
    JobSpec(
        "watchlist_update",
        "score the universe and store each user's watchlist for the session",
        "services.watchlist_manager.manager:run",
        PostClose("watchlist_update_time"),
        catch_up_on_start=True,
        needs=(Need("indicator_calculation"),),
        output=Output("watchlist", "services.watchlist_manager.manager:watchlist_stored"),
        market_only=True,
    ),
    JobSpec(
        "risk_checks",
        "portfolio metrics against the risk limits; halts trading on a breach",
        "services.trading_engine.risk_check:run",
        AroundTheClock("risk_check_interval"),
        preflight="services.trading_engine.broker:preflight",
        state="services.trading_engine.risk_check:state",
    ),
)

REGISTRY: dict[str, JobSpec] = {job.name: job for job in JOBS}
JOB_NAMES: tuple[str, ...] = tuple(REGISTRY)


def get_job(name: str, jobs: Mapping[str, JobSpec] | None = None) -> JobSpec:
    """The job called ``name`` (``data-collection`` is ``data_collection``); an unknown
    name suggests the closest known one and lists them all."""
    jobs = REGISTRY if jobs is None else jobs
    try:
        return jobs[name.strip().replace("-", "_")]
    except KeyError:
        raise UnknownJobError(f"unknown job {name!r}; {did_you_mean(name, jobs)}known jobs: "
                              f"{', '.join(jobs)}") from None


def enabled_jobs(settings: Settings) -> list[JobSpec]:
    return [job for job in JOBS if settings.job_enabled(job.name)]


def _pre_open_lead(settings: Settings) -> timedelta:
    """How long before the open the earliest pre-open job runs (bounds post-close jobs)."""
    leads = [
        _minutes(settings.market_open_time) - _minutes(getattr(settings, job.schedule.time_setting))
        for job in JOBS
        if isinstance(job.schedule, PreOpen)
    ]
    return timedelta(minutes=max([lead for lead in leads if lead > 0], default=0))


def build_trigger(
    job: JobSpec, settings: Settings, calendar: MarketCalendar | None = None
) -> CalendarTrigger:
    """The trigger for ``job`` under ``settings``; a bad combination raises
    :class:`ConfigurationError` naming the variable."""
    schedule, tz = job.schedule, settings.timezone
    try:
        if isinstance(schedule, (PreOpen, PostClose)):
            return SessionAnchoredTrigger.from_clock_time(
                getattr(settings, schedule.time_setting),
                anchor="open" if isinstance(schedule, PreOpen) else "close",
                regular_open=settings.market_open_time,
                regular_close=settings.market_close_time,
                timezone=tz,
                label=f"ORCHESTRATOR_{schedule.time_setting.upper()}",
                deadline_lead=_pre_open_lead(settings),
                calendar=calendar,
            )
        if isinstance(schedule, DuringSession):
            minutes = getattr(settings, schedule.interval_setting)
            return InSessionIntervalTrigger(timedelta(minutes=minutes), tz, calendar=calendar)
        return ClockAlignedIntervalTrigger(
            getattr(settings, schedule.interval_setting), tz, calendar=calendar
        )
    except TriggerError as exc:
        raise ConfigurationError(str(exc)) from None


def build_triggers(
    settings: Settings, calendar: MarketCalendar | None = None, jobs: tuple[JobSpec, ...] = JOBS
) -> dict[str, CalendarTrigger]:
    return {job.name: build_trigger(job, settings, calendar) for job in jobs}


def schedule_in_words(job: JobSpec, settings: Settings) -> str:
    """E.g. '16:00 on sessions (close + 30 min)': the configured time and its anchor."""
    schedule = job.schedule
    if isinstance(schedule, PreOpen):
        at: time = getattr(settings, schedule.time_setting)
        lead = _minutes(settings.market_open_time) - _minutes(at)
        return f"{at:%H:%M} on sessions (open - {lead} min)"
    if isinstance(schedule, PostClose):
        at = getattr(settings, schedule.time_setting)
        lag = _minutes(at) - _minutes(settings.market_close_time)
        return f"{at:%H:%M} on sessions (close + {lag} min)"
    if isinstance(schedule, DuringSession):
        return f"every {getattr(settings, schedule.interval_setting)} min, open to close, sessions"
    return f"every {getattr(settings, schedule.interval_setting)} min on the clock, every day"


def job_table_markdown(settings: Settings) -> str:
    """The README's job table, rendered from the registry."""
    lines = [
        "| job | schedule (defaults) | service entry point | what it does |",
        "|---|---|---|---|",
    ]
    for job in JOBS:
        lines.append(
            f"| `{job.name}` | {schedule_in_words(job, settings)} | `{job.entry_point}` | {job.summary} |"
        )
    return "\n".join(lines)


