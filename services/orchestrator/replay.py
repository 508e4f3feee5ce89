"""Replay: the real schedule on a virtual clock.

The fire times come from the very triggers ``start`` schedules, and each fire runs
through the very wrapper ``start`` uses (:meth:`JobRunner.run_fire`: claim, guards,
job, ledger row), with the clock set to the fire time. Nothing sleeps and no schedule
or job is written a second time. Ledger rows are marked ``origin = simulate``: the
upstream runs a fire needs first (:mod:`needs`: the first signals of a replay into an
empty database produce the previous session's watchlist, indicators and data, under
that session's fires) are the replay's rows too.

One replay at a time writes to a database (:mod:`replay_lock`). A replay run again on
a range resumes it: fires already run are left as they are; a fire a killed replay left
running, or whose last attempt failed on the database or was interrupted, runs again
(as its next attempt). A fire failing on the database stops the replay there: the fires
after it would build on what it did not write.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from services.common.clock import FixedClock
from services.common.database import sole_writer
from services.common.job_api import Outcome
from services.common.market_calendar import KRX_TZ
from services.common.market_rules import RULES_FILE, market_rules
from services.common.settings import Settings
from services.orchestrator import replay_ahead
from services.orchestrator.jobs import JobSpec
from services.orchestrator.ledger import DATABASE_ERROR, SIMULATE, RunRecord
from services.orchestrator.replay_lock import replay_lock
from services.orchestrator.replay_settings import check_and_record, empty_database
from services.orchestrator.runner import JobRunner
from services.orchestrator.runtime import Runtime
from services.orchestrator.triggers import CalendarTrigger

logger = logging.getLogger(__name__)


class OutsideMarketRules(ValueError):
    """A replay from a day before a market-rule table the paper broker uses holds."""


def market_rules_start(settings: Settings) -> tuple[date, str]:
    """The first day all the dated market-rule tables cover, and the table that starts
    last (each table declares its own first day)."""
    from services.trading_engine.fees import FeeSchedule

    return max((market_rules().first_day(), f"the dated KRX market rules ({RULES_FILE.name})"),
               (FeeSchedule.from_settings(settings).taxed_since,
                "ORCHESTRATOR_SELL_TAX_SCHEDULE" if settings.sell_tax_schedule.rates else "the dated sell tax"))


def check_market_rules(settings: Settings, start: date) -> None:
    """Refuse a replay from ``start`` if a table does not cover it: its trades would be
    priced on the wrong tick grid or band, or have no sell tax and be cancelled."""
    first, table = market_rules_start(settings)
    if start < first:
        raise OutsideMarketRules(f"{start} is before {first}, the first day {table} covers; "
                                 f"expected {first} or later")


@dataclass(frozen=True)
class Fire:
    at: datetime
    job: str


def replay_window(start: date, end: date) -> tuple[datetime, datetime]:
    """From ``start`` 00:00 to the end of ``end``, Korean time: the fires of those KRX
    dates whatever timezone the schedule is shown in."""
    return (datetime.combine(start, time(), KRX_TZ), datetime.combine(end + timedelta(days=1), time(), KRX_TZ))


def replay_fires(jobs: Sequence[JobSpec], triggers: Mapping[str, CalendarTrigger], start: datetime,
                 end: datetime) -> list[Fire]:
    """Every fire of ``jobs`` with ``start <= t < end``, in time order; fires at the same
    moment in registry order (collection before indicators before the watchlist)."""
    order = {job.name: index for index, job in enumerate(jobs)}
    fires = [Fire(at, job.name) for job in jobs for at in triggers[job.name].fire_times(start, end)]
    return sorted(fires, key=lambda fire: (fire.at, order[fire.job]))


def replay(runner: JobRunner, clock: FixedClock, fires: Sequence[Fire],
           on_fire: Callable[[Fire, RunRecord | None], None] | None = None,
           ahead: replay_ahead.AheadProcess | None = None) -> list[RunRecord | None]:
    """Run ``fires`` in order on ``clock``, holding the database's replay lock. A fire an
    earlier replay of this database already ran is left as it is (``None``); one a killed
    replay left running, or whose last attempt failed on the database or was interrupted,
    runs again. Stops after a fire that failed on the database. The rows of fires skipped
    as unchanged are written in batches (``JobRunner.batching_unchanged``). With
    ``ahead``, the market-data fires run ahead in that process (:mod:`replay_ahead`) from
    the point :func:`_handover` gives."""
    released = runner.ledger.release_interrupted(SIMULATE)
    if released:
        logger.warning("%d fires left running by an interrupted replay will run again", released)
    retry = runner.ledger.retryable(SIMULATE)
    if retry:
        logger.warning("%d fires that failed on the database or were interrupted will run again", len(retry))
    recorded = runner.ledger.recorded_fires()
    plan = [(fire, retry.get((fire.job, fire.at))) for fire in fires]
    items = [None if attempt is None and (fire.job, fire.at) in recorded
             else replay_ahead.item_of(runner.job(fire.job), fire.at, attempt) for fire, attempt in plan]
    handover = _handover(items) if ahead is not None else None
    records: list[RunRecord | None] = []
    market: replay_ahead.MarketAhead | None = None
    with ExitStack() as stack:
        stack.enter_context(runner.batching_unchanged())
        stack.callback(setattr, runner, "produce_upstream", None)
        for index, ((fire, attempt), item) in enumerate(zip(plan, items)):
            if index == handover and ahead is not None:
                market = stack.enter_context(ahead.running(runner.session_factory.kw["bind"],
                                                           [item for item in items[index:] if item is not None]))
                runner.produce_upstream = market.produce
            clock.set(fire.at)
            if attempt is None and (fire.job, fire.at) in recorded:
                record = None  # as its claim would find: an earlier replay ran it
            else:
                record = _run(runner, fire, attempt, None if market is None else item, market)
            records.append(record)
            if on_fire is not None:
                on_fire(fire, record)
            if record is not None and record.outcome is Outcome.FAILED and (record.error or "").startswith(
                    DATABASE_ERROR):
                logger.warning("replay stopped at %s %s: %s; replaying the range again runs it again and goes on",
                               fire.job, fire.at.isoformat(), record.error)
                break
    return records


def _handover(items: Sequence[replay_ahead.Item | None]) -> int | None:
    """Where the process ahead takes over the market-data fires: after the first fire
    whose needs it would make (that one runs them here, as it starts: a replay into an
    empty database backfills its history there, as the process ahead gets ready), or at
    the first market-data fire; None: none left to run."""
    first = next((index for index, item in enumerate(items) if item is not None), None)
    if first is None:
        return None
    return first + 1 if items[first].kind == "needs" else first  # type: ignore[union-attr]


def _run(runner: JobRunner, fire: Fire, attempt: int | None, item: replay_ahead.Item | None,
         market: replay_ahead.MarketAhead | None) -> RunRecord | None:
    """Run ``fire`` (again, after ``attempt``), or take it (``item``) from the process ahead."""
    if market is not None and item is not None and item.kind != "needs":
        runner.write_unchanged()  # the rows of the fires before it come first, as a claim writes them
        return market.take(item)
    if market is not None and item is not None:
        market.expect_needs(item)
    if attempt is not None:
        record = runner.retry_fire(fire.job, fire.at, attempt + 1, origin=SIMULATE)
    else:
        record = runner.run_fire(fire.job, fire.at, origin=SIMULATE)
    if market is not None and item is not None:
        market.settle_needs()
    return record


@dataclass
class Simulation:
    runtime: Runtime
    fires: list[Fire]
    records: list[RunRecord | None]
    ran_ahead: bool = False  # the market-data fires ran ahead in a process of their own

    @property
    def failed(self) -> int:
        return sum(1 for record in self.records if record is not None and record.outcome is Outcome.FAILED)


def simulate(settings: Settings, start: date, end: date, *,
             on_fires: Callable[[list[Fire]], None] | None = None,
             on_fire: Callable[[Fire, RunRecord | None], None] | None = None,
             check_settings: bool = False, fresh: bool = False, ahead: bool | None = None) -> Simulation:
    """Replay every enabled job's fires from ``start`` to ``end`` (KRX dates, whatever
    the configured timezone) in paper mode, into ``settings.database_url``. With
    ``check_settings`` the settings are recorded in the database, and a database whose
    replay was made with other settings is refused (``replay_settings.SettingsChanged``)
    unless ``fresh``, which empties it first. The market-data fires run ahead in a
    process of their own where :func:`replay_ahead.usable` says so (``ahead`` True or
    False decides it where it can). The caller closes ``runtime``."""
    settings = replace(settings, dry_run=True, paper_quotes="off")  # KIS quotes are now's, never a past day's
    check_market_rules(settings, start)
    first, last = replay_window(start, end)
    clock = FixedClock(first)
    runtime = Runtime.create(settings, clock=clock)
    for day in (start, end):
        runtime.calendar.session(day)  # a date outside the calendar data raises CalendarError
    sessions = len(runtime.calendar.sessions(start, end))
    ran_ahead = replay_ahead.usable(settings, sessions, wanted=ahead)
    try:
        with replay_ahead.started(settings, first) if ran_ahead else nullcontext() as market_ahead:
            records, fires = _simulate(runtime, settings, clock, (start, end, first, last), on_fires, on_fire,
                                       check_settings=check_settings, fresh=fresh, ahead=market_ahead)
    except BaseException:
        runtime.close()
        raise
    return Simulation(runtime, fires, records, ran_ahead)


def _simulate(runtime: Runtime, settings: Settings, clock: FixedClock, window: tuple[date, date, datetime, datetime],
              on_fires: Callable[[list[Fire]], None] | None,
              on_fire: Callable[[Fire, RunRecord | None], None] | None, *, check_settings: bool, fresh: bool,
              ahead: replay_ahead.AheadProcess | None) -> tuple[list[RunRecord | None], list[Fire]]:
    start, end, first, last = window
    engine = runtime.session_factory().kw["bind"]  # migrated (under the migration lock) first
    with replay_lock(engine, f"simulate {start}..{end} pid {os.getpid()} on {socket.gethostname()}"):
        if fresh:
            empty_database(engine)
        if check_settings:
            check_and_record(engine, settings, clock.now())
        jobs = [job for job in runtime.enabled_jobs if job.service_available()]
        for job in jobs:
            job.run_preflight(settings, clock, runtime.calendar)  # as ``start`` does: e.g. pykrx credentials
        fires = replay_fires(jobs, runtime.triggers, first, last)
        if on_fires is not None:
            on_fires(fires)
        market = shared_market(settings, clock, runtime)
        with setup_frozen(), sole_writer(engine):
            records = replay(runtime.runner(origin=SIMULATE), clock, fires, on_fire, ahead)
        del market
    return records, fires


@contextmanager
def setup_frozen() -> Iterator[None]:
    """What the replay set up (calendar, market, modules) lives through it: the garbage
    collector leaves it out of its full passes, which otherwise walk it over and over."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def shared_market(settings: Settings, clock: FixedClock, runtime: Runtime) -> Any:
    """The simulated market, held for the whole replay: every job's provider shares it
    (its walk is built once) instead of building it again per fire."""
    if settings.data_provider != "simulated":
        return None
    from services.data_collector.providers.factory import make_provider

    return make_provider(settings, clock, runtime.calendar)
