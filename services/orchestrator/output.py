"""Rendering rows for people (rich tables) and tools (csv, json), and the commands'
views of what the library returns. CLI layer only.

Text from the database, the settings or the user is inert: never read as rich markup,
and its control characters shown as escapes (``services.common.text.printable``), so a
halt reason like ``[/oops]`` or ``\\x1b[2J`` is shown as typed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.common.text import printable

if TYPE_CHECKING:
    from services.orchestrator.ops.service import Startup

_RAW_IN_JSON = re.compile("[\x7f-\x9f]")  # json.dumps escapes C0 only; DEL and C1 too


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def to_json(document: Any) -> str:
    text = json.dumps(document, ensure_ascii=False, indent=2, default=str)
    return _RAW_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([printable(c) for c in columns])
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def to_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> Table:
    table = Table(title=None if title is None else Text(printable(title), style="table.title"), show_lines=False)
    for column in columns:
        table.add_column(Text(printable(column)))
    for row in rows:
        table.add_row(*(Text(_cell(row.get(c))) for c in columns))
    return table


def _cell(value: Any) -> str:
    return "" if value is None else printable(str(value))


def styled(*parts: str | tuple[str, str]) -> Text:
    """A line of literal text: each part a string, or (string, rich style), e.g.
    ``styled("halted: ", (reason, "bold red"))``; no markup is read from any part."""
    return Text.assemble(*(printable(part) if isinstance(part, str) else (printable(part[0]), part[1])
                           for part in parts))


def progress_columns() -> tuple[Any, ...]:
    """A progress bar's columns: description (never read as markup), bar, n/total, time."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    return (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn())


def console() -> Console:
    return Console(soft_wrap=True)


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: Format,
         title: str | None = None) -> None:
    """Print ``rows`` as a table, CSV or a JSON list."""
    if fmt is Format.json:
        print(to_json(list(rows)))
    elif fmt is Format.csv:
        print(to_csv(rows, columns), end="")
    else:
        console().print(to_table(rows, columns, title))


# --- the commands' views -----------------------------------------------------------------


def _short_time(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")


def print_status(document: dict[str, Any]) -> None:
    """``status`` for people: the halt, the settings and the database, the jobs' table,
    warnings."""
    out = console()
    _print_halt(document["halt"], document["settings"]["user_id"])
    for key, value in document["settings"].items():
        out.print(styled(f"{key:>22}: {value}"))
        if key == "database_url":  # where it is: a relative SQLite path resolved
            out.print(styled(f"{'database':>22}: {document['database']}"))
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


def _print_halt(halt: dict[str, Any] | None, user_id: str) -> None:
    """A halt in force, in bold red (status shows it above and below the table)."""
    if halt is None or not halt["halted"]:
        return
    out = console()
    out.print(styled((f"TRADING HALTED for {user_id} since {_short_time(halt['halted_at'])} "
                      f"(by {halt['halted_by']}): {halt['reason']}", "bold red")))
    out.print(styled(("no new positions open; protective exits still run. Resume with: "
                      f"python -m services.orchestrator.main resume --user-id {user_id}", "red")))


def print_start_banner(startup: Startup) -> None:
    """What ``start`` starts with: the account and mode, each job's state, the halt."""
    settings = startup.runtime.settings
    rows = [{"job": job.name, "state": job.state, "schedule": job.schedule,
             "next fire": _short_time(job.next_fire.isoformat()) if job.next_fire else ""}
            for job in startup.schedule]
    console().print(styled("KRX orchestrator for ", (settings.user_id, "bold"),
                           f" ({'dry run' if settings.dry_run else 'LIVE'}, {settings.timezone}, "
                           f"data: {settings.data_provider}, db: {settings.redacted_database_url()})"))
    emit(rows, ["job", "state", "next fire", "schedule"], Format.table, title="Schedule")
    _print_halt(startup.halt, settings.user_id)


def print_watchlist(view: dict[str, Any]) -> None:
    """A watchlist (``ops.watchlist.view``): its entries, then the tickers that left."""
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
