"""The command line: ``python -m services.orchestrator.main COMMAND``.

Exit codes: 0 success, 1 a job or check failed, 2 bad usage or configuration (one
line on stderr, no traceback).
"""

import functools
import inspect
import logging
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional
from zoneinfo import ZoneInfo

import typer
from sqlalchemy.exc import SQLAlchemyError
from typer._click import exceptions as click_exceptions  # typer vendors click (0.29+)
from typer.core import TyperGroup

from services.common import alerts
from services.common.job_api import Outcome
from services.common.database import database_error_line
from services.common.logging_setup import configure_logging
from services.common.market_calendar import KRX_TZ, CalendarError
from services.common.settings import (
    ENV_TO_FIELD,
    ConfigurationError,
    Settings,
    load_settings,
    read_env_file,
    redact_passwords,
    unknown_variables,
)
from services.common.text import printable
from services.orchestrator import reports
from services.orchestrator.jobs import JOB_NAMES, JOBS, get_job
from services.orchestrator.output import Format, console, emit, progress_columns, styled, to_json
from services.orchestrator.runs import first_line
from services.orchestrator.runtime import Runtime, load_market_calendar
from services.orchestrator.scheduler import StopOnSignal, build_scheduler, schedule_catch_up

logger = logging.getLogger("services.orchestrator")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class OneLineErrorGroup(TyperGroup):
    """Turns every usage or configuration error into one line on stderr and exit 2."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except click_exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.format_message(), err=True)
            code = EXIT_USAGE
        except click_exceptions.UsageError as exc:
            code = _fail(_usage_message(exc, self), EXIT_USAGE)
        except (ConfigurationError, CalendarError) as exc:
            code = _fail(str(exc), EXIT_USAGE)
        except SQLAlchemyError as exc:
            code = _fail(f"database error: {database_error_line(exc)}", EXIT_FAILED)
        except click_exceptions.ClickException as exc:
            code = _fail(exc.format_message(), exc.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            code = _fail("aborted", 130)
        except Exception as exc:  # the CLI's edge: one line, the traceback only in the debug log
            logger.debug("unexpected error", exc_info=True)
            code = _fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_FAILED)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def _fail(message: str, code: int) -> int:
    _echo(f"Error: {redact_passwords(_first_line(message))}", err=True)
    return code


def _echo(message: str, err: bool = False) -> None:
    """One message line, its stored or typed text shown literally (control characters
    as escapes)."""
    typer.echo(printable(message), err=err)


def _first_line(text: str) -> str:
    return first_line(text) or "unknown error"


def _usage_message(exc: Exception, group: TyperGroup) -> str:
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = message.replace("Value error, ", "")
    if message.startswith("No such command"):
        message = f"{message.rstrip('.')}; known commands: {', '.join(group.list_commands(None))}"  # type: ignore[arg-type]
    return message


app = typer.Typer(
    cls=OneLineErrorGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Calendar-driven batch job scheduler for KRX trading.\n\n"
         "Example: python -m services.orchestrator.main status",
)

# --- shared options and helpers -------------------------------------------------------------

UserIdOption = typer.Option(None, "--user-id", help="Account the jobs work for.")
TimezoneOption = typer.Option(None, "--timezone", help="IANA timezone, e.g. Asia/Seoul.")
PortfolioOption = typer.Option(None, "--portfolio-value", help="Initial paper cash, KRW.")
DryRunOption = typer.Option(None, "--dry-run/--no-dry-run", help="Paper trading (default) or live.")


def _settings(**cli: Any) -> Settings:
    settings = load_settings(cli)
    configure_logging(settings.log_level)
    names = {**read_env_file(Path.cwd() / ".env"), **os.environ}
    for name in unknown_variables(names, ENV_TO_FIELD):
        logger.warning("%s is not a known setting; ignored (check its spelling)", name)
    return settings


@contextmanager
def _alerting(settings: Settings) -> Iterator[None]:
    """Alerts go to ``ORCHESTRATOR_ALERT_WEBHOOK_URL`` while the command runs (sent
    before it ends)."""
    sink = alerts.install(settings.alert_webhook_url, settings.alert_timeout_seconds)
    try:
        yield
    finally:
        if sink is not None:
            sink.close()


def with_disable_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add one ``--disable-<job>`` flag per registry job; the command gets ``disabled``."""
    signature = inspect.signature(func)
    params = [p for p in signature.parameters.values() if p.name != "disabled"]
    for job in JOBS:
        params.append(inspect.Parameter(
            f"disable_{job.name}", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
            default=typer.Option(False, job.disable_flag, help=f"Do not schedule {job.name}."),
        ))

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        disabled = {job.name for job in JOBS if kwargs.pop(f"disable_{job.name}", False)}
        return func(disabled=disabled, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper


def _parse_day(text: str, option: str) -> date:
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date; expected YYYY-MM-DD",
                                 param_hint=f"'{option}'") from None


def _parse_moment(text: str, option: str, tz: ZoneInfo) -> datetime:
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.+\-Z]*)?", text):
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time; expected e.g. 2026-11-23 or 2026-11-23T09:00+09:00",
            param_hint=f"'{option}'",
        ) from None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def _require_in_calendar(runtime: Runtime, *days: date) -> None:
    """A date outside the calendar data is a usage error (exit 2) naming the range."""
    for day in days:
        runtime.calendar.session(day)


def _reject_csv(fmt: Format) -> None:
    if fmt is Format.csv:
        raise typer.BadParameter("csv is not offered here; expected table or json", param_hint="'--format'")


def _check_range(start: Any, end: Any, what: str) -> None:
    if start > end:
        raise typer.BadParameter(f"--start {start} is after --end {end}; expected start <= end",
                                 param_hint=what)


# --- commands ------------------------------------------------------------------------------


@app.command()
@with_disable_flags
def start(
    user_id: Optional[str] = UserIdOption,
    timezone: Optional[str] = TimezoneOption,
    portfolio_value: Optional[str] = PortfolioOption,
    dry_run: Optional[bool] = DryRunOption,
    disabled: Any = None,
) -> None:
    """Run the scheduler until SIGINT/SIGTERM.

    Example: python -m services.orchestrator.main start --disable-risk-checks
    """
    settings = _settings(user_id=user_id, timezone=timezone, portfolio_value=portfolio_value,
                         dry_run=dry_run, **{f"enable_{name}": False for name in disabled})
    with _alerting(settings):
        _start(settings)


def _start(settings: Settings) -> None:
    stop = StopOnSignal()
    runtime = Runtime.create(settings)
    runner = runtime.runner()
    jobs = [job for job in runtime.enabled_jobs if job.service_available()]
    for job in jobs:
        job.run_preflight(settings, runtime.clock, runtime.calendar)
    abandoned = runner.expire_dead_runs()
    if abandoned:
        logger.warning("%d runs left unfinished by a dead process go to the recovery sweep", abandoned)
    now = runtime.clock.now()
    _print_start_banner(runtime, jobs, now)
    runner.check_calendar(now)
    scheduler = build_scheduler(runner, jobs, now)
    if schedule_catch_up(scheduler, runner, now):
        logger.info("catching up: fires missed while down, and missing history")
    try:
        stop.run(scheduler, on_stop=runner.request_stop)
    finally:
        stop.restore()
        runner.close()
        runtime.close()


def _warn_live(settings: Settings) -> None:
    host = settings.kis_live_host if settings.kis_environment == "live" else settings.kis_paper_host
    logger.warning("!" * 72)
    logger.warning("LIVE TRADING (--no-dry-run): orders go to the KIS %s account at %s",
                   settings.kis_environment.upper(), host)
    logger.warning("!" * 72)


def _print_start_banner(runtime: Runtime, jobs: List[Any], now: datetime) -> None:
    settings = runtime.settings
    if not settings.dry_run:
        _warn_live(settings)
    statuses = reports.job_statuses(runtime.all_jobs, settings, runtime.triggers, now, {})
    rows = [{
        "job": s.name,
        "state": "scheduled" if s.name in {j.name for j in jobs}
        else ("disabled" if not s.enabled else "not installed"),
        "next fire": _short_time(s.next_fires[0].isoformat()) if s.next_fires else "",
        "schedule": s.schedule,
    } for s in statuses]
    out = console()
    out.print(styled("KRX orchestrator for ", (settings.user_id, "bold"),
                     f" ({'dry run' if settings.dry_run else 'LIVE'}, {settings.timezone}, "
                     f"data: {settings.data_provider}, db: {settings.redacted_database_url()})"))
    emit(rows, ["job", "state", "next fire", "schedule"], Format.table, title="Schedule")
    _print_halt(reports.halt_view(_halt_record(runtime, settings.user_id), settings.tz), settings.user_id)


@app.command("run-job")
def run_job(
    name: str = typer.Argument(..., help=f"One of: {', '.join(JOB_NAMES)}."),
    date_text: Optional[str] = typer.Option(None, "--date", help="Trading date, YYYY-MM-DD."),
    user_id: Optional[str] = UserIdOption,
    dry_run: Optional[bool] = DryRunOption,
) -> None:
    """Run one job now and record it in the run ledger (exit 1 unless it succeeds).

    Example: python -m services.orchestrator.main run-job data_collection --date 2026-11-20
    """
    job = get_job(name)
    settings = _settings(user_id=user_id, dry_run=dry_run)
    runtime = Runtime.create(settings)
    now = runtime.clock.now()
    trading_date = _trading_date_for_manual_run(runtime, job.name, date_text, now)
    job.run_preflight(settings, runtime.clock, runtime.calendar)
    if not settings.dry_run and job.trades:
        _warn_live(settings)
    with _alerting(settings):
        record = runtime.runner().run_now(job.name, trading_date)
    detail = _first_line(record.error or record.reason or to_json(record.summary or {}).replace("\n", " "))
    _echo(f"{job.name} {trading_date}: {record.outcome.value}: {detail}")
    runtime.close()
    raise typer.Exit(EXIT_OK if record.outcome is Outcome.SUCCESS else EXIT_FAILED)


def _trading_date_for_manual_run(runtime: Runtime, job_name: str, text: Optional[str],
                                 now: datetime) -> date:
    trigger, calendar = runtime.triggers[job_name], runtime.calendar
    today = now.astimezone(KRX_TZ).date()
    if text is None:
        latest = trigger.previous_fire_time(now)
        return trigger.trading_date(latest) if latest else today
    day = _parse_day(text, "--date")
    _require_in_calendar(runtime, day)
    if day > today:
        raise typer.BadParameter(f"{day} is in the future; expected {today} or earlier",
                                 param_hint="'--date'")
    if get_job(job_name).sessions_only and calendar.session(day) is None:
        before, after = calendar.previous_session(day), calendar.next_session(day)
        nearest = " and ".join(str(s.date) for s in (before, after) if s is not None)
        raise typer.BadParameter(f"{day} is not a KRX session; nearest sessions: {nearest}",
                                 param_hint="'--date'")
    return day


@app.command()
def status(
    user_id: Optional[str] = UserIdOption,
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """Settings in force and each job: enabled, schedule, next fires, last run.

    JSON keys: now, halt (null if trading was never halted, else {halted, reason,
    halted_at, halted_by, resumed_at, resumed_by}), settings, calendar {valid_through,
    warning}, jobs [{job, enabled, service_installed, schedule, next_fire_times, last_run}],
    waiting_elsewhere [{run_id, job, user_id, dry_run, scheduled_for, lease_until}]: other
    accounts' runs whose holder died, left for an instance of their own account.

    Example: python -m services.orchestrator.main status --format json
    """
    _reject_csv(fmt)
    settings = _settings(user_id=user_id)
    runtime = Runtime.create(settings)
    now = runtime.clock.now()
    ledger = runtime.ledger()
    last_runs = ledger.last_runs()
    statuses = reports.job_statuses(runtime.all_jobs, settings, runtime.triggers, now, last_runs)
    warning = reports.calendar_warning(runtime.calendar, now, [f for s in statuses for f in s.next_fires])
    document = {
        "now": now.astimezone(settings.tz).isoformat(),
        "halt": reports.halt_view(_halt_record(runtime, settings.user_id), settings.tz),
        "settings": reports.settings_summary(settings),
        "calendar": {"valid_through": runtime.calendar.valid_through.isoformat(), "warning": warning},
        "jobs": [s.as_dict() for s in statuses],
        "waiting_elsewhere": [reports.lapsed_run_view(row, settings.tz) for row in ledger.lapsed_elsewhere(now)],
    }
    runtime.close()
    if fmt is Format.json:
        typer.echo(to_json(document))
        return
    _print_status(document)


def _print_status(document: dict[str, Any]) -> None:
    out = console()
    _print_halt(document["halt"], document["settings"]["user_id"])
    for key, value in document["settings"].items():
        out.print(styled(f"{key:>22}: {value}"))
    if document["settings"]["data_provider"] == "simulated":
        out.print(styled(("market data is SIMULATED (ORCHESTRATOR_DATA_PROVIDER=simulated)", "yellow")))
    rows = []
    for job in document["jobs"]:
        last = job["last_run"]
        state = "on" if job["enabled"] else "off"
        if not job["service_installed"]:
            state += " (not installed)"
        rows.append({
            "job": job["job"],
            "state": state,
            "schedule": job["schedule"],
            "next fire": _short_time(job["next_fire_times"][0]) if job["next_fire_times"] else "",
            "last run": "" if last is None
            else f"{_short_time(last['scheduled_for'])} {last['outcome']}",
        })
    emit(rows, ["job", "state", "next fire", "last run", "schedule"], Format.table,
         title=f"Jobs at {_short_time(document['now'])}")
    if document["calendar"]["warning"]:
        out.print(styled(("warning:", "bold yellow"), f" {document['calendar']['warning']}"))
    for run in document["waiting_elsewhere"]:
        mode = "paper" if run["dry_run"] else "LIVE"
        out.print(styled(("waiting:", "bold yellow"), f" run {run['run_id']} ({run['job']}, fire "
                         f"{_short_time(run['scheduled_for'])}) of {run['user_id']} ({mode}) lost its holder; "
                         "an instance of that account recovers it, not this one"))
    _print_halt(document["halt"], document["settings"]["user_id"])


def _halt_record(runtime: Runtime, user_id: str) -> Any:
    from services.common.database import snapshot_transaction
    from services.risk_manager.halts import halt_record

    with snapshot_transaction(runtime.session_factory()) as connection:
        return halt_record(connection, user_id)


def _print_halt(halt: Optional[dict[str, Any]], user_id: str) -> None:
    """A halt in force, in bold red (status shows it above and below the table)."""
    if halt is None or not halt["halted"]:
        return
    out = console()
    out.print(styled((f"TRADING HALTED for {user_id} since {_short_time(halt['halted_at'])} "
                      f"(by {halt['halted_by']}): {halt['reason']}", "bold red")))
    out.print(styled(("no new positions open; protective exits still run. Resume with: "
                      f"python -m services.orchestrator.main resume --user-id {user_id}", "red")))


def _short_time(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")


@app.command()
def calendar(
    start_text: str = typer.Option(..., "--start", help="First date, YYYY-MM-DD."),
    end_text: str = typer.Option(..., "--end", help="Last date, YYYY-MM-DD (included)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
) -> None:
    """The KRX sessions, one row per weekday: date, open, close, status.

    Example: python -m services.orchestrator.main calendar --start 2026-11-16 --end 2026-11-20
    """
    start_day, end_day = _parse_day(start_text, "--start"), _parse_day(end_text, "--end")
    _check_range(start_day, end_day, "'--start'")
    settings = _settings()
    runtime = Runtime.create(settings)
    _require_in_calendar(runtime, start_day, end_day)
    rows = reports.calendar_rows(runtime.calendar, start_day, end_day, settings.tz)
    emit(rows, ["date", "open", "close", "status"], fmt, title="KRX calendar")


@app.command("next-runs")
def next_runs(
    jobs: Optional[List[str]] = typer.Argument(None, help="Jobs to show (default: all enabled)."),
    start_text: str = typer.Option(..., "--start", help="ISO time (included); naive = configured tz."),
    end_text: str = typer.Option(..., "--end", help="ISO time (excluded)."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
) -> None:
    """Every fire time in [start, end), from the scheduler's own triggers.

    Example: python -m services.orchestrator.main next-runs data_collection --start 2026-11-16 --end 2026-11-21 --format csv
    """
    selected = [get_job(name) for name in dict.fromkeys(jobs)] if jobs else list(JOBS)
    settings = _settings()
    start_at = _parse_moment(start_text, "--start", settings.tz)
    end_at = _parse_moment(end_text, "--end", settings.tz)
    _check_range(start_at, end_at, "'--start'")
    runtime = Runtime.create(settings)
    try:
        first_day, last_day = start_at.astimezone(KRX_TZ).date(), (end_at - timedelta(microseconds=1)).astimezone(KRX_TZ).date()
    except OverflowError:
        raise typer.BadParameter("the window is outside the calendar data", param_hint="'--start'") from None
    _require_in_calendar(runtime, first_day, last_day)
    enabled = [job for job in selected if settings.job_enabled(job.name)]
    rows = reports.next_runs(enabled, runtime.triggers, start_at, end_at)
    emit(rows, ["job", "fire_time"], fmt, title="Fire times")


ReasonOption = typer.Option(..., "--reason", help="Why trading stops (shown by status).")


@app.command()
def halt(reason: str = ReasonOption, user_id: Optional[str] = UserIdOption) -> None:
    """Halt trading for a user until `resume`: no new positions open in any job
    (signal generation is skipped, open buys are cancelled at the next monitoring tick);
    protective exits still run. The halt is stored and survives restarts.

    Example: python -m services.orchestrator.main halt --reason "broker maintenance"
    """
    from services.risk_manager.halts import MANUAL, halt_trading

    text = " ".join(reason.split())
    if not text or len(text) > 300:
        raise typer.BadParameter(f"expected a reason of 1 to 300 characters, got {len(text)}",
                                 param_hint="'--reason'")
    settings = _settings(user_id=user_id)
    runtime = Runtime.create(settings)
    with _alerting(settings), runtime.session_factory().begin() as session:
        current, made = halt_trading(session.connection(), settings.user_id, text, by=MANUAL,
                                     at=runtime.clock.now())
    runtime.close()
    since = current.halted_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M")
    _echo(f"trading halted for {settings.user_id} since {since}: {current.reason}" if made else
          f"trading was already halted for {settings.user_id} since {since} (by {current.halted_by}): "
          f"{current.reason}")


@app.command()
def resume(user_id: Optional[str] = UserIdOption) -> None:
    """End a trading halt. The loss limits then measure from the equity at the resume
    (a resume accepts the loss so far).

    Example: python -m services.orchestrator.main resume --user-id default_user
    """
    from services.risk_manager.halts import MANUAL, resume_trading

    settings = _settings(user_id=user_id)
    runtime = Runtime.create(settings)
    with runtime.session_factory().begin() as session:
        resumed = resume_trading(session.connection(), settings.user_id, by=MANUAL, at=runtime.clock.now())
    runtime.close()
    if resumed is None:
        _echo(f"trading is not halted for {settings.user_id}; nothing to resume")
        return
    since = resumed.halted_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M")
    _echo(f"trading resumed for {settings.user_id} (halted since {since}: {resumed.reason})")


@app.command()
def history(
    job: Optional[str] = typer.Option(None, "--job", help="Only this job."),
    limit: int = typer.Option(20, "--limit", min=1, max=100_000, help="Most recent N rows."),
    user_id: Optional[str] = typer.Option(None, "--user-id", help="Only this user."),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """The run ledger, newest first.

    Example: python -m services.orchestrator.main history --job risk_checks --limit 5
    """
    _reject_csv(fmt)
    if job is not None:
        get_job(job)
    settings = _settings()
    runtime = Runtime.create(settings)
    runs = runtime.ledger().history(job_name=job, user_id=user_id, limit=limit)
    rows = [reports.history_row(run, settings.tz) for run in runs]
    runtime.close()
    columns = ["id", "job", "scheduled_for", "trading_date", "origin", "outcome", "reason", "error"]
    emit(rows, columns, fmt, title="Run ledger")


@app.command()
def backfill(
    start_text: str = typer.Option(..., "--start", help="First date, YYYY-MM-DD."),
    end_text: str = typer.Option(..., "--end", help="Last date, YYYY-MM-DD (included)."),
    force: bool = typer.Option(False, "--force", help="Collect again dates already complete."),
) -> None:
    """Collect every session in the range, in date order, with a progress bar
    (exit 1 if a date failed).

    Example: python -m services.orchestrator.main backfill --start 2026-01-02 --end 2026-03-31
    """
    from rich.progress import Progress

    from services.data_collector.collector import backfill as collect_range
    from services.data_collector.providers.factory import make_provider

    start_day, end_day = _parse_day(start_text, "--start"), _parse_day(end_text, "--end")
    _check_range(start_day, end_day, "'--start'")
    settings = _settings()
    runtime = Runtime.create(settings)
    days = _closed_sessions(runtime, start_day, end_day)
    if not days:
        _echo(f"no KRX sessions from {start_day} to {end_day}; nothing to collect")
        raise typer.Exit(EXIT_OK)
    provider = make_provider(settings, runtime.clock, runtime.calendar)
    session_factory = runtime.session_factory()
    with Progress(*progress_columns(), console=console(), transient=False) as progress:
        task = progress.add_task("backfill", total=len(days))

        def advance(day: date, status: str) -> None:
            progress.update(task, advance=1, description=f"{day} {status}")

        report = collect_range(days, session_factory=session_factory, provider=provider,
                               now=runtime.clock.now, force=force, on_progress=advance)
    runtime.close()
    summary = report.summary()
    _echo(f"{summary['sessions_collected']} collected, {summary['sessions_skipped']} already complete, "
          f"{summary['sessions_failed']} failed; {summary['price_rows']} price rows, "
          f"{summary['rejected_rows']} rows rejected")
    for day, error in sorted(report.failed.items()):
        _echo(f"failed {day}: {error}", err=True)
    raise typer.Exit(EXIT_FAILED if report.failed else EXIT_OK)


def _closed_sessions(runtime: Runtime, start_day: date, end_day: date) -> List[date]:
    calendar, now = runtime.calendar, runtime.clock.now()
    _require_in_calendar(runtime, start_day, end_day)
    sessions = calendar.sessions(start_day, end_day)
    open_ones = [s for s in sessions if s.close > now]
    if open_ones:
        last = calendar.session_on_or_before(now.astimezone(KRX_TZ).date())
        while last is not None and last.close > now:
            last = calendar.previous_session(last.date)
        raise typer.BadParameter(
            f"the session of {open_ones[0].date} has not closed yet; expected dates up to "
            f"{last.date if last else start_day}", param_hint="'--end'")
    return [s.date for s in sessions]


@app.command()
@with_disable_flags
def simulate(
    start_text: str = typer.Option(..., "--start", help="First date, YYYY-MM-DD."),
    end_text: str = typer.Option(..., "--end", help="Last date, YYYY-MM-DD (included)."),
    user_id: Optional[str] = UserIdOption,
    portfolio_value: Optional[str] = PortfolioOption,
    report: Optional[Path] = typer.Option(None, "--report", help="Directory for equity.png, snapshots.csv, "
                                                                 "ledger.csv."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Where the replay goes (default "
                                               "ORCHESTRATOR_SIMULATION_DATABASE_URL, apart from the live one)."),
    disabled: Any = None,
) -> None:
    """Replay the whole schedule from --start to --end on a virtual clock, in paper
    mode: every fire of the enabled jobs in time order, from the scheduler's own
    triggers, through the scheduler's own job wrapper. Prints a summary; --report DIR
    adds the charts and CSVs. A replay resumes one that was interrupted, and never
    runs a fire twice (one that failed on the database runs again). Exit 1 if a fire
    failed; exit 2 if --start is before the market-rule tables, or another replay is
    writing to the database.

    Example: python -m services.orchestrator.main simulate --start 2026-10-20 --end 2026-11-20 --report report
    """
    from rich.progress import Progress

    from services.common.settings import parse_database_url
    from services.orchestrator.replay import OutsideMarketRules, check_market_rules
    from services.orchestrator.replay import simulate as replay_schedule
    from services.orchestrator.replay_lock import ReplayBusy
    from services.orchestrator.replay_report import summarize, write_report

    start_day, end_day = _parse_day(start_text, "--start"), _parse_day(end_text, "--end")
    _check_range(start_day, end_day, "'--start'")
    settings = _settings(user_id=user_id, portfolio_value=portfolio_value, dry_run=True,
                         **{f"enable_{name}": False for name in disabled})
    url = settings.simulation_database_url if database_url is None else _database_option(database_url,
                                                                                         parse_database_url)
    if _same_database(url, settings.database_url):
        raise typer.BadParameter(f"{settings.redacted_database_url(url)} is the live database (DATABASE_URL); "
                                 "expected another one: a replay never writes to the live account",
                                 param_hint="'--database-url'")
    if report is not None and report.exists() and not report.is_dir():
        raise typer.BadParameter(f"{report} is a file; expected a directory (new or existing)",
                                 param_hint="'--report'")
    settings = replace(settings, database_url=url)
    try:
        check_market_rules(settings, start_day)
    except OutsideMarketRules as exc:
        raise typer.BadParameter(str(exc), param_hint="'--start'") from None
    calendar = load_market_calendar(settings)
    for day in (start_day, end_day):
        calendar.session(day)  # a date outside the calendar data: one line, exit 2
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("services").setLevel(logging.WARNING)  # the progress bar, not a line per fire
    with Progress(*progress_columns(), console=console(), transient=False) as progress:
        task = progress.add_task("replay")

        def announce(fires: Any) -> None:
            progress.update(task, total=len(fires))
            progress.console.print(styled(f"replaying {len(fires)} fires, {start_day} to {end_day}, for "
                                          f"{settings.user_id} (paper) into {settings.redacted_database_url()}"))

        def advance(fire: Any, record: Any) -> None:
            progress.update(task, advance=1, description=f"{fire.at:%Y-%m-%d %H:%M} {fire.job}")

        try:
            simulation = replay_schedule(settings, start_day, end_day, on_fires=announce, on_fire=advance)
        except ReplayBusy as exc:
            raise typer.BadParameter(f"{exc}: wait for it to end, or replay into another database",
                                     param_hint="'--database-url'") from None
    runtime, jobs = simulation.runtime, sorted({fire.job for fire in simulation.fires}, key=JOB_NAMES.index)
    try:
        sessions = len(runtime.calendar.sessions(start_day, end_day))
        summary = summarize(runtime.session_factory(), user_id=settings.user_id, start=start_day, end=end_day,
                            sessions=sessions, jobs=jobs, initial_cash=settings.portfolio_value)
        emit(summary.rows(), ["what", "value"], Format.table, title=f"Replay {start_day} to {end_day}")
        if report is not None:
            for path in write_report(report, runtime.session_factory(), user_id=settings.user_id,
                                     start=start_day, end=end_day, tz=settings.tz,
                                     initial_equity=summary.initial_equity):
                _echo(f"wrote {path}")
    finally:
        runtime.close()
    raise typer.Exit(EXIT_FAILED if simulation.failed else EXIT_OK)


def _same_database(first: str, second: str) -> bool:
    """Whether two URLs name one database (SQLite files compared by their full path)."""
    from sqlalchemy.engine import make_url

    from services.common.database import sqlite_file

    a, b = make_url(first), make_url(second)
    if a.get_backend_name() == b.get_backend_name() == "sqlite":
        file_a, file_b = sqlite_file(a.database), sqlite_file(b.database)
        return bool(file_a and file_b) and Path(file_a).resolve() == Path(file_b).resolve()
    return (a.get_backend_name(), a.host, a.port, a.database) == (b.get_backend_name(), b.host, b.port, b.database)


def _database_option(text: str, parse: Callable[[str], str]) -> str:
    try:
        return parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--database-url'") from None


@app.command()
def watchlist(
    date_text: Optional[str] = typer.Option(None, "--date", help="Session, YYYY-MM-DD (default: the latest list)."),
    user_id: Optional[str] = UserIdOption,
    fmt: Format = typer.Option(Format.table, "--format", help="table or json."),
) -> None:
    """A user's watchlist: rank, score and factors, and each ticker's return and days on
    the list since it entered; then the tickers that left since the previous list.

    JSON keys: date, user_id, previous_date, entries [...], exits [...].

    Example: python -m services.orchestrator.main watchlist --date 2026-11-20
    """
    from services.watchlist_manager.manager import latest_watchlist_date, watchlist_view

    _reject_csv(fmt)
    settings = _settings(user_id=user_id)
    runtime = Runtime.create(settings)
    today = runtime.clock.now().astimezone(KRX_TZ).date()
    day = _parse_day(date_text, "--date") if date_text else today
    _require_in_calendar(runtime, day)
    factory = runtime.session_factory()
    shown = latest_watchlist_date(factory, settings.user_id, day)  # the list in force on that day
    if shown is None:
        runtime.close()
        raise typer.BadParameter(f"no watchlist for {settings.user_id} on or before {day}; run "
                                 "`run-job watchlist_update` first", param_hint="'--date'")
    view = watchlist_view(factory, runtime.calendar, settings.user_id, shown)
    runtime.close()
    if fmt is Format.json:
        typer.echo(to_json(view))
        return
    rows = [{**entry, "factors": " ".join(f"{name[:2].title()}{entry[name]:.2f}" for name in
                                          ("trend", "momentum", "volatility", "liquidity", "value")),
             "return": f"{entry['return_since_entry']:+.2%}", "days": entry["days_on_list"]}
            for entry in view["entries"]]
    emit(rows, ["rank", "ticker", "name", "score", "factors", "entered_on", "days", "return"], Format.table,
         title=f"Watchlist of {view['user_id']} on {view['date']} (factors: Tr trend, Mo momentum, "
               "Vo volatility, Li liquidity, Va value)")
    if view["exits"]:
        exits = [{**exit_, "return": "" if exit_["return_since_entry"] is None
                  else f"{exit_['return_since_entry']:+.2%}"} for exit_ in view["exits"]]
        emit(exits, ["ticker", "name", "entered_on", "entry_close", "close", "return"],
             Format.table, title=f"Left the list since {view['previous_date']}")


@app.command()
def migrate() -> None:
    """Apply database migrations (``start`` does this too).

    Example: DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/test python -m services.orchestrator.main migrate
    """
    from services.common.database import create_db_engine, migrate as apply_migrations

    settings = _settings()
    engine = create_db_engine(settings.database_url, connect_timeout_seconds=settings.db_connect_timeout_seconds,
                              statement_timeout_seconds=settings.db_statement_timeout_seconds)
    revision = apply_migrations(engine)
    engine.dispose()
    _echo(f"database {settings.redacted_database_url()} is at revision {revision}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
