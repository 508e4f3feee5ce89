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

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.common.text import printable

if TYPE_CHECKING:
    from services.orchestrator.ops.service import Startup

_RAW_IN_JSON = re.compile("[\x7f-\x9f]")  # json.dumps escapes C0 only; DEL and C1 too


class Format(str, Enum):
    """Rows: a table for people, CSV or a JSON list for tools."""

    table = "table"
    csv = "csv"
    json = "json"


class DocumentFormat(str, Enum):
    """One document (``status``): a view for people or JSON; no CSV."""

    table = "table"
    json = "json"


#: Columns of free text (reasons, errors) kept to one line in a table, cut with an
#: ellipsis: a table stays readable at 80 columns; CSV and JSON carry the whole text.
CLIPPED_COLUMNS = frozenset({"reason", "error", "detail"})
#: Columns of words that wrap when a table is too wide; every other column (names,
#: times, numbers) stays on one line.
WRAPPING_COLUMNS = frozenset({"schedule", "factors", "what", "value"})


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


def to_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None,
             width: int | None = None) -> Table:
    """A table; a column of free text (``CLIPPED_COLUMNS``) is one line per row, cut to
    the width the other columns leave of ``width``."""
    table = Table(title=None if title is None else Text(printable(title), style="table.title"), show_lines=False,
                  box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    clipped_width = _clipped_width(rows, columns, width)
    for column in columns:
        clipped = column in CLIPPED_COLUMNS
        table.add_column(Text(printable(column)), no_wrap=column not in WRAPPING_COLUMNS,
                         overflow="ellipsis" if clipped else "fold",
                         max_width=clipped_width if clipped else None)
    for row in rows:
        table.add_row(*(Text(_cell(row.get(c))) for c in columns))
    return table


def _cell(value: Any) -> str:
    return "" if value is None else printable(str(value))


def _clipped_width(rows: Sequence[dict[str, Any]], columns: Sequence[str], width: int | None) -> int | None:
    """What each clipped column may take of ``width``: what the others leave (each
    column is padded by one space a side, and ruled by one), at least 8."""
    clipped = [column for column in columns if column in CLIPPED_COLUMNS]
    if width is None or not clipped:
        return None
    others = sum(max([cell_len(column), *(cell_len(_cell(row.get(column))) for row in rows)])
                 for column in columns if column not in CLIPPED_COLUMNS)
    return max(8, (width - others - 3 * len(columns) + 1) // len(clipped))


def zone_label(zone: str, moment: datetime) -> str:
    """The display zone as a heading says it: ``Asia/Seoul, UTC+09:00`` (the offset of
    the aware time ``moment``)."""
    offset = moment.strftime("%z")
    return f"{zone}, UTC{offset[:3]}:{offset[3:]}"


def print_run(job: str, trading_date: Any, run_id: int, outcome: str, detail: str | None,
              summary: dict[str, Any] | None) -> None:
    """``run-job``'s result: one line (the outcome, and the reason or error, else the
    run's ledger id), then the job's summary counts as a small table."""
    console().print(styled(f"{job} {trading_date}: {outcome}: {detail}" if detail
                           else f"{job} {trading_date}: {outcome} (run {run_id})"))
    counts = {key: value for key, value in (summary or {}).items() if key != "dry_run"}
    if counts:
        rows = [{"what": key, "value": _summary_value(value)} for key, value in counts.items()]
        console().print(to_table(rows, ["what", "value"]))


def _summary_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


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
        out = console()
        out.print(to_table(rows, columns, title, out.width))


# --- the commands' views -----------------------------------------------------------------


def _short_time(iso: str) -> str:
    """A time to the minute, under a heading that names its zone."""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")


def _time_with_offset(iso: str) -> str:
    """A time to the minute with its UTC offset: ``2026-11-20 16:00+09:00``."""
    return datetime.fromisoformat(iso).isoformat(timespec="minutes").replace("T", " ")


#: The terminal width from which a table adds its wide columns of words: ``status``
#: each job's schedule, ``watchlist`` the five factors.
WIDE_TABLE = 110
FACTORS = ("trend", "momentum", "volatility", "liquidity", "value")


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
    now = datetime.fromisoformat(document["now"])
    wide = out.width >= WIDE_TABLE  # at 80 columns: `start` and the json show schedules
    emit(rows, ["job", "state", "next fire", "last run", *(["schedule"] if wide else [])], Format.table,
         title=f"Jobs at {_short_time(document['now'])} (times in "
               f"{zone_label(document['settings']['display_timezone'], now)})")
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
    out.print(styled((f"TRADING HALTED for {user_id} since {_time_with_offset(halt['halted_at'])} "
                      f"(by {halt['halted_by']}): {halt['reason']}", "bold red")))
    out.print(styled(("no new positions open; protective exits still run. Resume with: "
                      f"python -m services.orchestrator.main resume --user-id {user_id}", "red")))


def print_start_banner(startup: Startup) -> None:
    """What ``start`` starts with: the account and mode, each job's state, the halt."""
    settings = startup.runtime.settings
    rows = [{"job": job.name, "state": job.state, "schedule": job.schedule,
             "next fire": "" if job.next_fire is None
             else _short_time(job.next_fire.astimezone(settings.display_tz).isoformat())}
            for job in startup.schedule]
    console().print(styled("KRX orchestrator for ", (settings.user_id, "bold"),
                           f" ({'dry run' if settings.dry_run else 'LIVE'}, {settings.timezone}, "
                           f"data: {settings.data_provider}, db: {settings.redacted_database_url()})"))
    emit(rows, ["job", "state", "next fire", "schedule"], Format.table,
         title=f"Schedule (times in {zone_label(settings.display_zone, startup.now.astimezone(settings.display_tz))})")
    _print_halt(startup.halt, settings.user_id)


def print_watchlist(view: dict[str, Any]) -> None:
    """A watchlist (``ops.watchlist.view``): its entries, then the tickers that left.
    The five factors are a column from ``WIDE_TABLE`` columns on (csv and json always
    have them)."""
    rows = [{**entry, "score": f"{entry['score']:.3f}",
             "factors": " ".join(f"{name[:2].title()}{entry[name]:.2f}" for name in FACTORS),
             "return": f"{entry['return_since_entry']:+.2%}", "days": entry["days_on_list"]}
            for entry in view["entries"]]
    wide = console().width >= WIDE_TABLE
    title = f"Watchlist of {view['user_id']} on {view['date']}"
    emit(rows, ["rank", "ticker", "name", "score", *(["factors"] if wide else []), "entered_on", "days", "return"],
         Format.table, title=f"{title} (factors: Tr trend, Mo momentum, Vo volatility, Li liquidity, Va value)"
         if wide else f"{title} (factors: --format csv or json, or {WIDE_TABLE} columns)")
    if view["exits"]:
        exits = [{**exit_, "entry_close": krw(exit_["entry_close"]), "close": krw(exit_["close"]),
                  "return": "" if exit_["return_since_entry"] is None else f"{exit_['return_since_entry']:+.2%}"}
                 for exit_ in view["exits"]]
        emit(exits, ["ticker", "name", "entered_on", "entry_close", "close", "return"],
             Format.table, title=f"Left the list since {view['previous_date']}")


# --- the account: positions, orders, fills, pnl (``ops.account``'s rows for people) --------------


def krw(value: int | None, signed: bool = False) -> str:
    """Whole KRW with thousands separators (``signed``: with its sign, ``+1,200``)."""
    if value is None:
        return ""
    return f"{value:+,}" if signed and value else f"{value:,}"


def percent(fraction: float | None, signed: bool = True) -> str:
    """A fraction as a percentage with two places (``+1.23%``)."""
    if fraction is None:
        return ""
    return f"{fraction:+.2%}" if signed else f"{fraction:.2%}"


def account_label(user_id: str, dry_run: bool) -> str:
    """``alice (paper)`` or ``alice (LIVE)``."""
    return f"{user_id} ({'paper' if dry_run else 'LIVE'})"


#: a view column: (row key, heading, justify, width): width None keeps the column as
#: wide as its widest cell; a number lets it shrink, cut with an ellipsis, down to
#: that many cells when the line would not fit (the free text, names); cells are text
_ViewColumn = tuple[str, str, str, int | None]
_SIGNED = re.compile(r"^[+-]")


def _view_table(rows: Sequence[dict[str, str]], columns: Sequence[_ViewColumn], title: str,
                total: dict[str, str] | None = None) -> Table:
    """A compact table (one space between columns, numbers on the right, a signed P&L
    or return green or red) with every row on one line: at 80 columns only the columns
    given a width shrink, cut with an ellipsis (csv and json carry every field whole);
    numbers are never cut: when they alone do not fit, the table is as wide as they need."""
    from rich.box import SIMPLE
    from rich.cells import cell_len

    widths = [max(cell_len(printable(cell)) for cell in [heading, *(row.get(key, "") for row in rows),
                                                          (total or {}).get(key, "")])
              for key, heading, *_ in columns]
    excess = sum(widths) + len(columns) - 1 - console().width  # one space between columns
    for index, (*_, floor) in enumerate(columns):
        if excess > 0 and floor is not None:
            cut = min(excess, max(0, widths[index] - floor))
            widths[index] -= cut
            excess -= cut
    needed = sum(widths) + len(columns) - 1
    table = Table(title=Text(printable(title), style="table.title"), box=SIMPLE, padding=(0, 0), show_edge=False,
                  show_footer=total is not None, width=needed if excess > 0 else None)
    for (key, heading, justify, _), width in zip(columns, widths):
        table.add_column(Text(printable(heading)), footer=Text(printable((total or {}).get(key, ""))),
                         justify="right" if justify == "right" else "left", no_wrap=True, overflow="ellipsis",
                         width=width)
    signed = {key for key, *_ in columns if key.endswith(("pnl", "return", "drawdown"))}
    for row in rows:
        table.add_row(*(Text(printable(row.get(key, "")),
                             style=("red" if row.get(key, "").startswith("-") else "green")
                             if key in signed and _SIGNED.match(row.get(key, "")) else "")
                        for key, *_ in columns))
    return table


def print_account_summary(summary: dict[str, Any]) -> None:
    """``ops.account.overview``'s summary in four lines: whose account and how it is
    valued; equity, cash, positions and exposure; P&L of the day and since it opened;
    realised and unrealised P&L."""
    out = console()
    who = account_label(summary["user_id"], summary["dry_run"])
    valued = f"at the closes of {summary['valued_on']}" if summary["valued_on"] else "no closes stored"
    out.print(styled((who, "bold"), f" at {_time_with_offset(summary['as_of'])}, {valued}"))
    if summary["cash"] is None:
        return
    cash_at = f" (at {_time_with_offset(summary['cash_at'])})" if summary["cash_at"] else ""
    out.print(styled(f"equity {krw(summary['equity'])} = cash {krw(summary['cash'])}{cash_at} + positions "
                     f"{krw(summary['market_value'])} (exposure {percent(summary['exposure'], signed=False)})"))
    day = f"day {krw(summary['day_pnl'], signed=True)} ({percent(summary['day_return'])})"
    total = "" if summary["total_pnl"] is None else (
        f", total {krw(summary['total_pnl'], signed=True)} ({percent(summary['total_return'])}) on "
        f"{krw(summary['opening_balance'])}")
    out.print(styled(f"P&L: {day}{total}"))
    out.print(styled(f"     realised {krw(summary['realised_pnl'], signed=True)} (closed trades), unrealised "
                     f"{krw(summary['unrealised_pnl'], signed=True)} (open positions)"))


def print_positions(view: dict[str, Any]) -> None:
    """``ops.account.overview``: the summary, then the open positions."""
    print_account_summary(view["summary"])
    rows = [{"ticker": p["ticker"], "name": p["name"], "quantity": krw(p["quantity"]),
             "average_cost": krw(p["average_cost"]), "last_price": krw(p["last_price"]) + ("" if p["priced"] else "*"),
             "unrealised_pnl": krw(p["unrealised_pnl"], signed=True),
             "unrealised_return": percent(p["unrealised_return"]), "weight": percent(p["weight"], signed=False),
             "days_held": str(p["days_held"])} for p in view["positions"]]
    columns: list[_ViewColumn] = [
        ("ticker", "ticker", "left", None), ("name", "name", "left", 8), ("quantity", "qty", "right", None),
        ("average_cost", "avg cost", "right", None), ("last_price", "last", "right", None),
        ("unrealised_pnl", "P&L", "right", None), ("unrealised_return", "return", "right", None),
        ("weight", "weight", "right", None), ("days_held", "days", "right", None)]
    console().print(_view_table(rows, columns, f"Open positions ({len(rows)})"))
    if any(not p["priced"] for p in view["positions"]):
        console().print(styled("* no close stored: valued at its average cost"))


def print_orders(rows: Sequence[dict[str, Any]], title: str) -> None:
    """``ops.account.orders``: one line per order (its reason cut to fit)."""
    view = [{"id": str(o["id"]), "trading_date": o["trading_date"], "ticker": o["ticker"], "side": o["side"],
             "filled": f"{o['filled_quantity']:,}/{o['quantity']:,}",
             "limit_price": krw(o["limit_price"]) if o["limit_price"] is not None else "market",
             "status": "partial" if o["status"] == "partially_filled" else o["status"], "reason": o["reason"]}
            for o in rows]
    columns: list[_ViewColumn] = [
        ("id", "id", "right", None), ("trading_date", "date", "left", None), ("ticker", "ticker", "left", None),
        ("side", "side", "left", None), ("filled", "filled", "right", None), ("limit_price", "limit", "right", None),
        ("status", "status", "left", None), ("reason", "reason", "left", 12)]
    console().print(_view_table(view, columns, title))


def print_fills(rows: Sequence[dict[str, Any]], title: str) -> None:
    """``ops.account.fills``: one line per fill, then what they add up to."""
    view = [{"filled_at": _short_time(f["filled_at"]), "ticker": f["ticker"], "side": f["side"],
             "quantity": krw(f["quantity"]), "price": krw(f["price"]), "amount": krw(f["amount"]),
             "commission": krw(f["commission"]), "tax": krw(f["tax"]), "order_id": str(f["order_id"])}
            for f in rows]
    columns: list[_ViewColumn] = [
        ("filled_at", "filled at", "left", None), ("ticker", "ticker", "left", None), ("side", "side", "left", None),
        ("quantity", "qty", "right", None), ("price", "price", "right", None), ("amount", "amount", "right", None),
        ("commission", "comm.", "right", None), ("tax", "tax", "right", None), ("order_id", "order", "right", None)]
    console().print(_view_table(view, columns, title))
    bought = sum(f["amount"] for f in rows if f["side"] == "buy")
    sold = sum(f["amount"] for f in rows if f["side"] == "sell")
    console().print(styled(f"{len(rows)} fills: bought {krw(bought)}, sold {krw(sold)}; commission "
                           f"{krw(sum(f['commission'] for f in rows))}, tax {krw(sum(f['tax'] for f in rows))}"))


def print_pnl(report: dict[str, Any], title: str) -> None:
    """``ops.account.pnl``: one line per trading date, the totals below."""
    view = [{"date": d["date"], "equity": krw(d["equity"]), "day_pnl": krw(d["day_pnl"], signed=True),
             "day_return": percent(d["day_return"]), "cumulative_return": percent(d["cumulative_return"]),
             "drawdown": percent(d["drawdown"]), "realised_pnl": krw(d["realised_pnl"], signed=True),
             "fees": krw(d["commission"] + d["tax"])} for d in report["days"]]
    totals = report["totals"]
    total = {"date": "total", "equity": krw(totals["end_equity"]), "day_pnl": krw(totals["pnl"], signed=True),
             "day_return": percent(totals["return"]), "cumulative_return": percent(totals["cumulative_return"]),
             "drawdown": percent(totals["max_drawdown"]), "realised_pnl": krw(totals["realised_pnl"], signed=True),
             "fees": krw(totals["commission"] + totals["tax"])}
    columns: list[_ViewColumn] = [
        ("date", "date", "left", None), ("equity", "equity", "right", None), ("day_pnl", "day P&L", "right", None),
        ("day_return", "day", "right", None), ("cumulative_return", "cumul.", "right", None),
        ("drawdown", "drawdown", "right", None), ("realised_pnl", "realised", "right", None),
        ("fees", "fees+tax", "right", None)]
    console().print(_view_table(view, columns, title, total))
