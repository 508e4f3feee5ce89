"""Replaying the schedule on a virtual clock, in paper mode, into a database apart
from the live one; then its summary, and the charts and CSVs of a report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from services.common.settings import ConfigurationError, Settings
from services.orchestrator.jobs import JOB_NAMES
from services.orchestrator.ops.arguments import InvalidArgument, check_range, require_in_calendar
from services.orchestrator.runtime import load_market_calendar

if TYPE_CHECKING:
    from services.orchestrator.ledger import RunRecord
    from services.orchestrator.replay import Fire
    from services.orchestrator.replay_report import ReplaySummary


@dataclass(frozen=True)
class ReplayPlan:
    settings: Settings  # paper mode, into the replay's database
    start: date
    end: date
    report_dir: Path | None


@dataclass(frozen=True)
class ReplayResult:
    summary: ReplaySummary
    report_files: list[Path]  # written into the plan's report_dir
    failed: int  # fires that failed


def plan(settings: Settings, start: date, end: date, *, database_url: str | None = None,
                report_dir: Path | None = None) -> ReplayPlan:
    """Check a replay from ``start`` to ``end`` before it starts: into ``database_url``
    (default ``ORCHESTRATOR_SIMULATION_DATABASE_URL``), never the live database, from a
    day the market-rule tables cover."""
    from services.common.setting_values import parse_database_url
    from services.orchestrator.replay import OutsideMarketRules, check_market_rules

    check_range(start, end)
    if database_url is None:
        url = settings.simulation_database_url
    else:
        try:
            url = parse_database_url(database_url)
        except ValueError as exc:
            raise InvalidArgument("database_url", str(exc)) from None
    if _same_database(url, settings.database_url):
        raise InvalidArgument("database_url", f"{settings.redacted_database_url(url)} is the live database "
                              "(DATABASE_URL); expected another one: a replay never writes to the live account")
    if report_dir is not None and report_dir.exists() and not report_dir.is_dir():
        raise InvalidArgument("report", f"{report_dir} is a file; expected a directory (new or existing)")
    # the stored provider reads the live database's history (or the one named), never the replay's own
    settings = replace(settings, database_url=url, history_database_url=settings.history_database_url
                       or settings.database_url)
    try:
        check_market_rules(settings, start)
    except OutsideMarketRules as exc:
        raise InvalidArgument("start", str(exc)) from None
    calendar = load_market_calendar(settings)
    require_in_calendar(calendar, start, end)
    if settings.data_provider == "stored":  # its source is there and readable, before any progress is shown
        from services.common.clock import SystemClock
        from services.data_collector.providers.factory import make_provider

        make_provider(settings, SystemClock(), calendar)
    return ReplayPlan(settings, start, end, report_dir)


class ReplayStopped(RuntimeError):
    """A replay stopped before its end by what it cannot go on without (the process that
    runs its market data ahead); what it ran is kept."""


def run(plan: ReplayPlan, *, on_fires: Callable[[list[Fire]], None] | None = None,
               on_fire: Callable[[Fire, RunRecord | None], None] | None = None, fresh: bool = False,
               ahead: bool | None = None) -> ReplayResult:
    """Replay every fire of the enabled jobs in time order (``on_fires(fires)`` first,
    ``on_fire(fire, record)`` after each), then summarize it and write the report. The
    settings are recorded in the database: a database replayed with other settings is
    refused unless ``fresh``, which empties it first. ``ahead``: see ``replay.simulate``;
    should that process stop, :class:`ReplayStopped` says so."""
    from services.orchestrator.replay import simulate
    from services.orchestrator.replay_ahead import AheadStopped
    from services.orchestrator.replay_lock import ReplayBusy
    from services.orchestrator.replay_report import summarize, write_report
    from services.orchestrator.replay_settings import SettingsChanged

    settings, start, end = plan.settings, plan.start, plan.end
    try:
        simulation = simulate(settings, start, end, on_fires=on_fires, on_fire=on_fire, check_settings=True,
                              fresh=fresh, ahead=ahead)
    except SettingsChanged as exc:
        raise ConfigurationError(str(exc)) from None
    except ReplayBusy as exc:
        raise InvalidArgument("database_url", f"{exc}: wait for it to end, or replay into another "
                                              "database") from None
    except AheadStopped as exc:
        raise ReplayStopped(f"{exc}; replaying the range again goes on from there") from None
    runtime, jobs = simulation.runtime, sorted({fire.job for fire in simulation.fires}, key=JOB_NAMES.index)
    try:
        sessions = len(runtime.calendar.sessions(start, end))
        summary = summarize(runtime.session_factory(), user_id=settings.user_id, start=start, end=end,
                            sessions=sessions, jobs=jobs, initial_cash=settings.portfolio_value,
                            calendar=runtime.calendar)
        files = [] if plan.report_dir is None else write_report(
            plan.report_dir, runtime.session_factory(), user_id=settings.user_id, start=start, end=end,
            tz=settings.display_tz, initial_equity=summary.initial_equity, summary=summary,
            data_source=data_source(settings))
    finally:
        runtime.close()
    return ReplayResult(summary, list(files), simulation.failed)


def data_source(settings: Settings) -> str:
    """What the replay's prices came from, for the report's title."""
    if settings.data_provider == "stored":
        return f"KRX history stored in {settings.redacted_database_url(settings.history_database_url)}"
    return settings.data_provider


def _same_database(first: str, second: str) -> bool:
    """Whether two URLs name one database (SQLite files compared by their full path)."""
    from sqlalchemy.engine import make_url

    from services.common.database import sqlite_file

    a, b = make_url(first), make_url(second)
    if a.get_backend_name() == b.get_backend_name() == "sqlite":
        file_a, file_b = sqlite_file(a.database), sqlite_file(b.database)
        if not file_a or not file_b:
            return False
        return Path(file_a).resolve() == Path(file_b).resolve()
    return (a.get_backend_name(), a.host, a.port, a.database) == (b.get_backend_name(), b.host, b.port, b.database)
