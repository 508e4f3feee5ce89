"""Rendering rows for people (rich tables) and tools (csv, json). CLI layer only.

Text from the database, the settings or the user is inert: never read as rich markup,
and its control characters shown as escapes (``services.common.text.printable``), so a
halt reason like ``[/oops]`` or ``\\x1b[2J`` is shown as typed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from enum import Enum
from typing import Any, Sequence, Tuple, Union

from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.common.text import printable

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


def styled(*parts: Union[str, Tuple[str, str]]) -> Text:
    """A line of literal text: each part a string, or (string, rich style), e.g.
    ``styled("halted: ", (reason, "bold red"))``; no markup is read from any part."""
    return Text.assemble(*(printable(part) if isinstance(part, str) else (printable(part[0]), part[1])
                           for part in parts))


def progress_columns() -> Tuple[Any, ...]:
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
