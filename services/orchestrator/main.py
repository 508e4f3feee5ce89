"""The command line: ``python -m services.orchestrator.main COMMAND``.

Each command parses its options, calls the library (``services.orchestrator.ops``)
and formats what it returns. Exit codes: 0 success, 1 a job or check failed, 2 bad
usage or configuration (one line on stderr, no traceback).
"""

import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.exc import SQLAlchemyError
from typer._click import exceptions as click_exceptions  # typer vendors click (0.29+)
from typer.core import TyperGroup

from services.common import notifications
from services.common.database import database_error_line
from services.common.logging_setup import configure_logging
from services.common.market_calendar import CalendarError
from services.common.setting_values import redact_passwords
from services.common.settings import (
    ENV_TO_FIELD,
    ConfigurationError,
    Settings,
    load_settings,
    read_env_file,
    unknown_variables,
)
from services.common.text import did_you_mean, printable
from services.orchestrator import ops
from services.orchestrator.jobs import JOB_NAMES, JOBS
from services.orchestrator.ledger import first_line
from services.orchestrator.ops.arguments import InvalidArgument, parse_day, parse_moment, parse_optional_day
from services.orchestrator.output import (
    DocumentFormat,
    Format,
    console,
    emit,
    print_run,
    print_start_banner,
    print_status,
    print_watchlist,
    progress_columns,
    styled,
    to_json,
)
from services.orchestrator.runtime import Runtime, announcing_a_new_database
from services.orchestrator.scheduler import StopOnSignal

logger = logging.getLogger("services.orchestrator")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class OneLineErrorGroup(TyperGroup):
    """Turns every usage or configuration error into one line on stderr and exit 2."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, windows_expand_args=windows_expand_args, **extra)
        except click_exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.format_message(), err=True)
            code = EXIT_USAGE
        except click_exceptions.UsageError as exc:
            code = _fail(_usage_message(exc, self), EXIT_USAGE)
        except InvalidArgument as exc:
            code = _fail(f"Invalid value for '--{exc.name.replace('_', '-')}': {exc}", EXIT_USAGE)
        except (ConfigurationError, CalendarError) as exc:
            code = _fail(str(exc), EXIT_USAGE)
        except SQLAlchemyError as exc:
            code = _fail(f"database error: {database_error_line(exc)}", EXIT_FAILED)
        except ops.replays.ReplayStopped as exc:
            code = _fail(f"replay stopped: {exc}", EXIT_FAILED)
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
TimezoneOption = typer.Option(None, "--timezone", help="Timezone of the schedule (IANA name, e.g. Asia/Seoul): "
                                                       "risk checks keep its wall clock; times are shown in it "
                                                       "unless ORCHESTRATOR_DISPLAY_TIMEZONE. Default "
                                                       "ORCHESTRATOR_TIMEZONE.")
DisplayTimezoneOption = typer.Option(None, "--timezone", help="Show every time in this zone (IANA name, e.g. UTC), "
                                                              "with its offset; the schedule stays in "
                                                              "ORCHESTRATOR_TIMEZONE. Default "
                                                              "ORCHESTRATOR_DISPLAY_TIMEZONE, else "
                                                              "ORCHESTRATOR_TIMEZONE.")
PortfolioOption = typer.Option(None, "--portfolio-value", help="Initial paper cash, KRW.")
DryRunOption = typer.Option(None, "--dry-run/--no-dry-run", help="Paper trading (default) or live.")
StartOption = typer.Option(..., "--start", help="First date, YYYY-MM-DD.")
EndOption = typer.Option(..., "--end", help="Last date, YYYY-MM-DD (included).")


def _settings(**cli: Any) -> Settings:
    settings = load_settings(cli)
    configure_logging(settings.log_level, settings.display_tz)
    names = {**read_env_file(Path.cwd() / ".env"), **os.environ}
    for name in unknown_variables(names, ENV_TO_FIELD):
        logger.warning("%s is not a known setting; ignored (%scheck its spelling)", name,
                       did_you_mean(name, ENV_TO_FIELD))
    return settings


@contextmanager
def _runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.create(settings)
    try:
        yield runtime
    finally:
        runtime.close()


@contextmanager
def _alerting(settings: Settings) -> Iterator[None]:
    """Incidents go to the channels (ORCHESTRATOR_NOTIFY_URLS, ORCHESTRATOR_ALERT_WEBHOOK_URL)
    while the command runs (what is queued is sent before it ends)."""
    with notifications.install(notifications.channels_of(settings), language=settings.notify_language,
                               timeout=settings.alert_timeout_seconds, tz=settings.display_tz):
        yield


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


def _since(moment: datetime, settings: Settings) -> str:
    return moment.astimezone(settings.display_tz).isoformat(timespec="minutes").replace("T", " ")


# --- commands ------------------------------------------------------------------------------


@app.command()
@with_disable_flags
def start(
    user_id: str | None = UserIdOption,
    timezone: str | None = TimezoneOption,
    portfolio_value: str | None = PortfolioOption,
    dry_run: bool | None = DryRunOption,
    api: bool | None = typer.Option(None, "--api/--no-api", help="Serve the console (REST API) too, on "
                                    "ORCHESTRATOR_API_HOST:ORCHESTRATOR_API_PORT (default ORCHESTRATOR_API, on)."),
    disabled: Any = None,
) -> None:
    """Run the scheduler until SIGINT/SIGTERM; the console (REST API) too unless --no-api,
    from when the scheduler is ready.

    Example: python -m services.orchestrator.main start --disable-risk-checks
    """
    settings = _settings(user_id=user_id, timezone=timezone, portfolio_value=portfolio_value,
                         dry_run=dry_run, api=api, **{f"enable_{name}": False for name in disabled})
    with _alerting(settings):
        if settings.api:
            _check_console_address(settings)  # beyond this machine without a token: exit 2 at once
        stop = StopOnSignal()
        with _runtime(settings) as runtime:
            startup = ops.service.start_up(runtime)
            try:
                server = _console_server(settings) if settings.api else None  # the port in use: exit 2
            except BaseException:
                stop.restore()
                startup.runner.close()
                raise
            try:
                print_start_banner(startup)
                ops.service.run_scheduler(startup, stop, on_ready=server.start_in_background if server else _nothing)
            finally:
                if server is not None:
                    server.stop()


@app.command("run-job")
def run_job(
    name: str = typer.Argument(..., help=f"One of: {', '.join(JOB_NAMES)}."),
    date_text: str | None = typer.Option(None, "--date", help="Trading date, YYYY-MM-DD."),
    user_id: str | None = UserIdOption,
    dry_run: bool | None = DryRunOption,
    timezone: str | None = DisplayTimezoneOption,
) -> None:
    """Run one job now and record it in the run ledger (exit 1 unless it succeeds).
    Prints the outcome (with the reason or error) and the job's summary as a table.

    Example: python -m services.orchestrator.main run-job data_collection --date 2026-11-20
    """
    day = parse_optional_day(date_text, "date")
    settings = _settings(user_id=user_id, dry_run=dry_run, display_timezone=timezone)
    with _alerting(settings), _runtime(settings) as runtime:
        run = ops.manual.run_job(runtime, name, day)
    record = run.record
    detail = record.error or record.reason
    print_run(run.job, run.trading_date, record.run_id, record.outcome.value,
              None if detail is None else _first_line(detail), record.summary)
    raise typer.Exit(EXIT_OK if run.succeeded else EXIT_FAILED)


@app.command()
def status(
    user_id: str | None = UserIdOption,
    timezone: str | None = DisplayTimezoneOption,
    fmt: DocumentFormat = typer.Option(DocumentFormat.table, "--format", help="table or json."),
) -> None:
    """Settings in force, the database in use, and each job: enabled, schedule, next
    fires, last run.

    JSON keys: now, halt (null if trading was never halted, else {halted, reason,
    halted_at, halted_by, resumed_at, resumed_by}), database (a SQLite database's
    absolute path, else the URL without its password), settings, calendar {valid_through,
    warning}, jobs [{job, enabled, service_installed, schedule, next_fire_times, last_run}],
    waiting_elsewhere [{run_id, job, user_id, dry_run, scheduled_for, lease_until}]: other
    accounts' runs whose holder died, left for an instance of their own account.

    Example: python -m services.orchestrator.main status --format json
    """
    with _runtime(_settings(user_id=user_id, display_timezone=timezone)) as runtime:
        document = ops.status.report(runtime).as_dict()
    if fmt is DocumentFormat.json:
        typer.echo(to_json(document))
        return
    print_status(document)


@app.command()
def calendar(
    start_text: str = StartOption,
    end_text: str = EndOption,
    timezone: str | None = DisplayTimezoneOption,
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
) -> None:
    """The KRX sessions, one row per weekday: date, open, close (HH:MM in the display
    zone), status.

    Example: python -m services.orchestrator.main calendar --start 2026-11-16 --end 2026-11-20
    """
    start_day, end_day = parse_day(start_text, "start"), parse_day(end_text, "end")
    settings = _settings(display_timezone=timezone)
    with _runtime(settings) as runtime:
        rows = ops.schedule.calendar_days(runtime, start_day, end_day)
    emit(rows, ["date", "open", "close", "status"], fmt, title=f"KRX calendar (times in {settings.display_zone})")


@app.command("next-runs")
def next_runs(
    jobs: list[str] | None = typer.Argument(None, help="Jobs to show (default: all enabled)."),
    start_text: str = typer.Option(..., "--start", help="ISO time (included); naive = configured tz."),
    end_text: str = typer.Option(..., "--end", help="ISO time (excluded)."),
    timezone: str | None = DisplayTimezoneOption,
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
) -> None:
    """Every fire time in [start, end), from the scheduler's own triggers.

    Example: python -m services.orchestrator.main next-runs data_collection
    --start 2026-11-16 --end 2026-11-21 --format csv
    """
    settings = _settings(display_timezone=timezone)
    start_at, end_at = (parse_moment(start_text, "start", settings.display_tz),
                        parse_moment(end_text, "end", settings.display_tz))
    with _runtime(settings) as runtime:
        rows = ops.schedule.fire_times(runtime, jobs or [], start_at, end_at)
    emit(rows, ["job", "fire_time"], fmt, title="Fire times")


@app.command()
def halt(
    reason: str = typer.Option(..., "--reason", help="Why trading stops (shown by status)."),
    user_id: str | None = UserIdOption,
    timezone: str | None = DisplayTimezoneOption,
) -> None:
    """Halt trading for a user until `resume`: no new positions open in any job
    (signal generation is skipped, open buys are cancelled at the next monitoring tick);
    protective exits still run. The halt is stored and survives restarts.

    Example: python -m services.orchestrator.main halt --reason "broker maintenance"
    """
    settings = _settings(user_id=user_id, display_timezone=timezone)
    with _alerting(settings), _runtime(settings) as runtime:
        change = ops.halts.halt(runtime, reason)
    current, since = change.halt, _since(change.halt.halted_at, settings)
    _echo(f"trading halted for {settings.user_id} since {since}: {current.reason}" if change.made else
          f"trading was already halted for {settings.user_id} since {since} (by {current.halted_by}): "
          f"{current.reason}")


@app.command()
def resume(user_id: str | None = UserIdOption, timezone: str | None = DisplayTimezoneOption) -> None:
    """End a trading halt. The loss limits then measure from the equity at the resume
    (a resume accepts the loss so far).

    Example: python -m services.orchestrator.main resume --user-id default_user
    """
    settings = _settings(user_id=user_id, display_timezone=timezone)
    with _alerting(settings), _runtime(settings) as runtime:
        resumed = ops.halts.resume(runtime)
    if resumed is None:
        _echo(f"trading is not halted for {settings.user_id}; nothing to resume")
        return
    _echo(f"trading resumed for {settings.user_id} (halted since {_since(resumed.halted_at, settings)}: "
          f"{resumed.reason})")


@app.command()
def history(
    job: str | None = typer.Option(None, "--job", help="Only this job."),
    limit: int = typer.Option(20, "--limit", min=1, max=100_000, help="Most recent N rows."),
    user_id: str | None = typer.Option(None, "--user-id", help="Only this user."),
    timezone: str | None = DisplayTimezoneOption,
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
) -> None:
    """The run ledger, newest first. The table shows each run's fire, trading date,
    outcome and detail: its origin unless the schedule, then its reason or error (one
    line, cut to the width); csv and json every column, in full.

    Example: python -m services.orchestrator.main history --job risk_checks --limit 5
    """
    settings = _settings(display_timezone=timezone)
    with _runtime(settings) as runtime:
        rows = ops.status.history(runtime, job=job, user_id=user_id, limit=limit)
    if fmt is not Format.table:
        columns = ["id", "job", "user_id", "scheduled_for", "trading_date", "origin", "dry_run", "outcome",
                   "started_at", "finished_at", "host", "pid", "reason", "error", "summary"]
        emit([{**row, "summary": to_json(row["summary"]).replace("\n", "") if row["summary"] else None}
              if fmt is Format.csv else row for row in rows], columns, fmt)
        return
    emit([_history_line(row) for row in rows], ["id", "job", "fire", "date", "outcome", "detail"], fmt,
         title=f"Run ledger (times in {settings.display_zone})")


def _history_line(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger row for the table: the fire's month, day and minute (its year is the
    trading date's, or the next), the origin when not the schedule's, and the first
    line of the reason or error."""
    detail = [f"[{row['origin']}]"] if row["origin"] != "schedule" else []
    if row["error"] or row["reason"]:
        detail.append(_first_line(row["error"] or row["reason"]))
    return {"id": row["id"], "job": row["job"], "fire": row["scheduled_for"][5:16].replace("T", " "),
            "date": row["trading_date"], "outcome": row["outcome"], "detail": " ".join(detail)}


@app.command()
def backfill(
    start_text: str = StartOption,
    end_text: str = EndOption,
    force: bool = typer.Option(False, "--force", help="Collect again dates already complete."),
    timezone: str | None = DisplayTimezoneOption,
) -> None:
    """Collect every session in the range, in date order, with a progress bar
    (exit 1 if a date failed).

    Example: python -m services.orchestrator.main backfill --start 2026-01-02 --end 2026-03-31
    """
    from rich.progress import Progress

    start_day, end_day = parse_day(start_text, "start"), parse_day(end_text, "end")
    with _runtime(_settings(display_timezone=timezone)) as runtime:
        days = ops.backfill.closed_sessions(runtime, start_day, end_day)
        if not days:
            _echo(f"no KRX sessions from {start_day} to {end_day}; nothing to collect")
            raise typer.Exit(EXIT_OK)
        collection = ops.backfill.Backfill(runtime, days)
        with Progress(*progress_columns(), console=console(), transient=False) as progress:
            task = progress.add_task("backfill", total=len(days))

            def advance(day: date, status: str) -> None:
                progress.update(task, advance=1, description=f"{day} {status}")

            report = collection.run(force=force, on_progress=advance)
    summary = report.summary()
    _echo(f"{summary['sessions_collected']} collected, {summary['sessions_skipped']} already complete, "
          f"{summary['sessions_failed']} failed; {summary['price_rows']} price rows, "
          f"{summary['rejected_rows']} rows rejected")
    for day, error in sorted(report.failed.items()):
        _echo(f"failed {day}: {error}", err=True)
    raise typer.Exit(EXIT_FAILED if report.failed else EXIT_OK)


@app.command()
@with_disable_flags
def simulate(
    start_text: str = StartOption,
    end_text: str = EndOption,
    user_id: str | None = UserIdOption,
    portfolio_value: str | None = PortfolioOption,
    timezone: str | None = DisplayTimezoneOption,
    report: Path | None = typer.Option(None, "--report", help="Directory for equity.png, snapshots.csv, "
                                                                 "ledger.csv."),
    database_url: str | None = typer.Option(None, "--database-url", help="Where the replay goes (default "
                                               "ORCHESTRATOR_SIMULATION_DATABASE_URL, apart from the live one)."),
    fresh: bool = typer.Option(False, "--fresh", help="Empty the simulation database first and replay from "
                               "scratch (needed to replay a database with other settings than its replay's)."),
    sweep: str | None = typer.Option(None, "--sweep", help="NAME=v1,v2,...: one replay per value of the setting "
                                     "NAME (e.g. ORCHESTRATOR_STOP_LOSS_PCT=3,5,7), each into a SQLite database "
                                     "of its own beside the simulation database, in parallel processes; one table."),
    notify: bool = typer.Option(False, "--notify", help="Send the replay's notifications (signal lists, fills, "
                                "daily reports, incidents) to the configured channels, as live runs do: for a "
                                "day or a week, not a year."),
    disabled: Any = None,
) -> None:
    """Replay the whole schedule from --start to --end on a virtual clock, in paper
    mode: every fire of the enabled jobs in time order, from the scheduler's own
    triggers, through the scheduler's own job wrapper. Prints a summary; --report DIR
    adds the charts and CSVs. A replay resumes one that was interrupted, and never
    runs a fire twice (one that failed on the database runs again). The settings are
recorded in the database: replaying it with other settings is refused (exit 2) unless
--fresh, which empties it and replays from scratch. It sends no notification unless
--notify. Exit 1 if a fire
    failed; exit 2 if --start is before the market-rule tables, or another replay is
    writing to the database.

    Example: python -m services.orchestrator.main simulate --start 2026-10-20 --end 2026-11-20 --report report
    """
    from rich.progress import Progress

    start_day, end_day = parse_day(start_text, "start"), parse_day(end_text, "end")
    settings = _settings(user_id=user_id, portfolio_value=portfolio_value, display_timezone=timezone, dry_run=True,
                         **{f"enable_{name}": False for name in disabled})
    if sweep is not None:
        _sweep(settings, sweep, start_day, end_day, fresh=fresh, refused={"--report": report is not None,
                                                                           "--notify": notify,
                                                                           "--database-url": database_url is not None})
        return
    plan = ops.replays.plan(settings, start_day, end_day, database_url=database_url, report_dir=report)
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("services").setLevel(logging.WARNING)  # the progress bar, not a line per fire
    with Progress(*progress_columns(), console=console(), transient=False) as progress:
        task = progress.add_task("replay")

        def announce(fires: Any) -> None:
            progress.update(task, total=len(fires))
            progress.console.print(styled(f"replaying {len(fires)} fires, {start_day} to {end_day}, for "
                                          f"{plan.settings.user_id} (paper) into "
                                          f"{plan.settings.redacted_database_url()}"))

        def advance(fire: Any, record: Any) -> None:
            progress.update(task, advance=1, description=f"{fire.at:%Y-%m-%d %H:%M} {fire.job}")

        with _alerting(plan.settings) if notify else nullcontext():
            result = ops.replays.run(plan, on_fires=announce, on_fire=advance, fresh=fresh)
    emit(result.summary.rows(), ["what", "value"], Format.table, title=f"Replay {start_day} to {end_day}")
    for path in result.report_files:
        _echo(f"wrote {path}")
    raise typer.Exit(EXIT_FAILED if result.failed else EXIT_OK)


def _sweep(settings: Settings, text: str, start: Any, end: Any, *, fresh: bool, refused: dict[str, bool]) -> None:
    """``simulate --sweep``: the replays, then one table (exit 1 if a fire failed)."""
    for option, given in refused.items():
        if given:
            raise InvalidArgument("sweep", f"--sweep replays into databases of its own, without {option}; "
                                           f"expected one of them")
    sweep = ops.sweeps.parse_sweep(text)
    ops.replays.plan(settings, start, end)  # the range and the market rules, checked once
    _echo(f"replaying {start} to {end} once per {sweep.env} value ({', '.join(sweep.values)}), in parallel ...")
    rows = ops.sweeps.run_sweep(settings, sweep, start, end, fresh=fresh)
    name = sweep.env.removeprefix("ORCHESTRATOR_").lower()
    emit([{name: row.value, **row.figures} for row in rows], [name, *ops.sweeps.SWEEP_COLUMNS], Format.table,
         title=f"Sweep of {sweep.env}, {start} to {end} (fees and taxes in KRW)")
    for row in rows:
        _echo(f"{sweep.env}={row.value}: {row.database}")
    raise typer.Exit(EXIT_FAILED if any(row.failed for row in rows) else EXIT_OK)


@app.command()
def watchlist(
    date_text: str | None = typer.Option(None, "--date", help="Session, YYYY-MM-DD (default: the latest list)."),
    user_id: str | None = UserIdOption,
    timezone: str | None = DisplayTimezoneOption,
    fmt: Format = typer.Option(Format.table, "--format", help="table, csv (the entries) or json."),
) -> None:
    """A user's watchlist: rank, score and factors, and each ticker's return and days on
    the list since it entered; then the tickers that left since the previous list.

    JSON keys: date, user_id, previous_date, entries [...], exits [...]. CSV: one row per
    entry, every field.

    Example: python -m services.orchestrator.main watchlist --date 2026-11-20
    """
    day = parse_day(date_text, "date") if date_text else None
    with _runtime(_settings(user_id=user_id, display_timezone=timezone)) as runtime:
        view = ops.watchlist.view(runtime, day)
    if fmt is Format.json:
        typer.echo(to_json(view))
        return
    if fmt is Format.csv:
        emit(view["entries"], list(view["entries"][0]) if view["entries"] else ["rank", "ticker"], fmt)
        return
    print_watchlist(view)


# --- the account: positions, orders, fills, pnl ---

AccountFormatOption = typer.Option(Format.table, "--format", help="table, csv or json.")
AccountStartOption = typer.Option(None, "--start", help="First trade date, YYYY-MM-DD (default: 29 days "
                                                        "before --end).")
AccountEndOption = typer.Option(None, "--end", help="Last trade date, YYYY-MM-DD, included (default: today).")


def _account_settings(user_id: str | None, dry_run: bool | None, timezone: str | None) -> Settings:
    return _settings(user_id=user_id, dry_run=dry_run, display_timezone=timezone)


def _who(settings: Settings) -> str:
    from services.orchestrator.output import account_label

    return account_label(settings.user_id, settings.dry_run)


@app.command()
def positions(
    user_id: str | None = UserIdOption,
    dry_run: bool | None = DryRunOption,
    timezone: str | None = DisplayTimezoneOption,
    fmt: Format = AccountFormatOption,
) -> None:
    """The account's open positions, valued at the latest stored closes: quantity,
    average cost (buy commissions included), last price, unrealised P&L and return,
    weight of the equity, days held. The table has the account's cash, equity, exposure
    and P&L (day, total) above it. --dry-run (default) is the paper account,
    --no-dry-run the live one.

    CSV and JSON (a list): ticker, name, quantity, average_cost, cost, last_price,
    priced, market_value, unrealised_pnl, unrealised_return, weight, opened_on,
    days_held (money in KRW, returns and weights as fractions).

    Example: python -m services.orchestrator.main positions --format csv
    """
    from services.orchestrator.output import print_positions

    settings = _account_settings(user_id, dry_run, timezone)
    with _runtime(settings) as runtime:
        view = ops.account.overview(runtime)
    if fmt is not Format.table:
        emit(view["positions"], ops.account.POSITION_FIELDS, fmt)
    elif view["positions"]:
        print_positions(view)
    else:
        if view["summary"]["cash"] is not None:  # an account that holds nothing now: its cash and P&L
            from services.orchestrator.output import print_account_summary

            print_account_summary(view["summary"])
        _echo(f"no open positions for {_who(settings)}")


@app.command()
def orders(
    status_name: str = typer.Option(ops.account.DEFAULT_ORDER_STATUS, "--status",
                                    help=f"One of: {', '.join(ops.account.ORDER_STATUSES)} (open: new or "
                                         "partially filled)."),
    limit: int = typer.Option(ops.account.DEFAULT_ORDER_LIMIT, "--limit", min=1, max=100_000,
                              help="The N latest orders."),
    user_id: str | None = UserIdOption,
    dry_run: bool | None = DryRunOption,
    timezone: str | None = DisplayTimezoneOption,
    fmt: Format = AccountFormatOption,
) -> None:
    """The account's latest orders, newest first (all statuses, 50, unless --status or
    --limit say otherwise).

    CSV and JSON (a list): id, trading_date, created_at, ticker, side, order_type,
    quantity, filled_quantity, limit_price, status, reason, broker_order_id.

    Example: python -m services.orchestrator.main orders --status open
    """
    from services.orchestrator.output import print_orders

    settings = _account_settings(user_id, dry_run, timezone)
    with _runtime(settings) as runtime:
        rows = ops.account.orders(runtime, status_name, limit)
    if fmt is not Format.table:
        emit(rows, ops.account.ORDER_FIELDS, fmt)
        return
    which = "" if status_name == "all" else f" {status_name}"
    if not rows:
        _echo(f"no{which} orders for {_who(settings)}")
        return
    print_orders(rows, f"{status_name.capitalize() + ' orders' if which else 'Orders'} of {_who(settings)}, "
                       "newest first")
    if len(rows) == limit:
        _echo(f"the latest {limit}; --limit N shows more")


@app.command()
def fills(
    start_text: str | None = AccountStartOption,
    end_text: str | None = AccountEndOption,
    user_id: str | None = UserIdOption,
    dry_run: bool | None = DryRunOption,
    timezone: str | None = DisplayTimezoneOption,
    fmt: Format = AccountFormatOption,
) -> None:
    """The account's fills traded from --start to --end (default: the last 30 days),
    oldest first, and what they add up to.

    CSV and JSON (a list): id, filled_at, trade_date, ticker, side, quantity, price,
    amount, commission, tax, cash_change, settles_on, order_id.

    Example: python -m services.orchestrator.main fills --start 2026-11-01 --end 2026-11-30
    """
    from services.orchestrator.output import print_fills

    start_day = parse_optional_day(start_text, "start")
    end_day = parse_optional_day(end_text, "end")
    settings = _account_settings(user_id, dry_run, timezone)
    with _runtime(settings) as runtime:
        start_day, end_day = ops.account.date_range(runtime, start_day, end_day)
        rows = ops.account.fills(runtime, start_day, end_day)
    if fmt is not Format.table:
        emit(rows, ops.account.FILL_FIELDS, fmt)
    elif not rows:
        _echo(f"no fills for {_who(settings)} from {start_day} to {end_day}")
    else:
        print_fills(rows, f"Fills of {_who(settings)}, {start_day} to {end_day} (times in {settings.display_zone})")


@app.command()
def pnl(
    start_text: str | None = AccountStartOption,
    end_text: str | None = AccountEndOption,
    user_id: str | None = UserIdOption,
    dry_run: bool | None = DryRunOption,
    timezone: str | None = DisplayTimezoneOption,
    fmt: Format = AccountFormatOption,
) -> None:
    """The account's P&L of each trading date from --start to --end (default: the last
    30 days), from its last portfolio snapshot of the day: equity, day P&L and return,
    cumulative return on the opening balance, drawdown from the peak, realised P&L,
    fees and taxes; the totals below.

    CSV: one row per date (date, snapshot_at, cash, market_value, equity, exposure,
    positions, day_pnl, day_return, cumulative_return, drawdown, realised_pnl,
    commission, tax). JSON: {user_id, mode, start, end, opening_balance, days [...],
    totals {days, start_equity, end_equity, pnl, return, cumulative_return,
    max_drawdown, realised_pnl, commission, tax}}.

    Example: python -m services.orchestrator.main pnl --start 2026-11-01
    """
    from services.orchestrator.output import print_pnl

    start_day = parse_optional_day(start_text, "start")
    end_day = parse_optional_day(end_text, "end")
    settings = _account_settings(user_id, dry_run, timezone)
    with _runtime(settings) as runtime:
        report = ops.account.pnl(runtime, start_day, end_day)
    if fmt is Format.json:
        typer.echo(to_json(report))
    elif fmt is Format.csv:
        emit(report["days"], ops.account.PNL_DAY_FIELDS, fmt)
    elif not report["days"]:
        _echo(f"no portfolio snapshots for {_who(settings)} from {report['start']} to {report['end']}")
    else:
        print_pnl(report, f"Daily P&L of {_who(settings)}, {report['start']} to {report['end']}")


# --- the console: serve ---


@app.command()
def serve(
    host: str | None = typer.Option(None, "--host", help="Address to listen on (default ORCHESTRATOR_API_HOST); "
                                    "one beyond this machine needs ORCHESTRATOR_API_TOKEN."),
    port: str | None = typer.Option(None, "--port", help="Port (default ORCHESTRATOR_API_PORT; 0: any "
                                    "free port)."),
    user_id: str | None = UserIdOption,
    dry_run: bool | None = DryRunOption,
    timezone: str | None = DisplayTimezoneOption,
) -> None:
    """Serve the console (REST API, OpenAPI at /docs) of an account against the
    database, without a scheduler (several can run beside one or more schedulers),
    until SIGINT/SIGTERM. Prints its URL. Exit 2 if the address is refused: in use, or
    beyond this machine without ORCHESTRATOR_API_TOKEN.

    Example: python -m services.orchestrator.main serve --port 8081
    """
    settings = _settings(api_host=host, api_port=port, user_id=user_id, dry_run=dry_run, display_timezone=timezone)
    server = _console_server(settings)
    _echo(f"console (REST API) of {_who(settings)} at {server.url} (OpenAPI at {server.url}docs); Ctrl-C stops it")
    with _alerting(settings):  # a halt or a resume made through it is sent
        server.serve()


@app.command("notify-test")
def notify_test(timezone: str | None = DisplayTimezoneOption) -> None:
    """Send one test message to each notification channel (ORCHESTRATOR_NOTIFY_URLS and
    ORCHESTRATOR_ALERT_WEBHOOK_URL), now, and print per channel (masked) delivered or
    why not. Exit 1 if one was not delivered, 2 if none is configured.

    Example: ORCHESTRATOR_NOTIFY_URLS="tgram://BOT_TOKEN/CHAT_ID" python -m services.orchestrator.main notify-test
    """
    settings = _settings(display_timezone=timezone)
    results = ops.notify.test_channels(settings)
    if not results:
        _fail("no notification channel is configured; set ORCHESTRATOR_NOTIFY_URLS (apprise URLs, e.g. "
              "tgram://BOT_TOKEN/CHAT_ID) or ORCHESTRATOR_ALERT_WEBHOOK_URL", EXIT_USAGE)
        raise typer.Exit(EXIT_USAGE)
    for result in results:
        _echo(f"{result.channel} ({result.level} and above): {result.result}")
    raise typer.Exit(EXIT_OK if all(r.delivered for r in results) else EXIT_FAILED)


def _console_server(settings: Settings) -> Any:
    """The console's server (``api.serving.ConsoleServer``) on its bound address; a
    ``ConfigurationError`` if the address is refused."""
    from services.orchestrator.api.serving import ConsoleServer

    return ConsoleServer.bind(settings)


def _check_console_address(settings: Settings) -> None:
    from services.orchestrator.api.serving import check_binding

    check_binding(settings)


def _nothing() -> None:
    pass


@app.command()
def migrate(timezone: str | None = DisplayTimezoneOption) -> None:
    """Apply database migrations (``start`` does this too).

    Example: DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/test python -m services.orchestrator.main migrate
    """
    settings = _settings(display_timezone=timezone)
    with announcing_a_new_database(settings):
        revision = ops.database.migrate(settings)
    _echo(f"database {settings.redacted_database_url()} is at revision {revision}")


def main() -> None:
    """The ``krx-orchestrator`` console script (``pip install -e .``), as
    ``python -m services.orchestrator.main``."""
    app()


if __name__ == "__main__":
    main()
