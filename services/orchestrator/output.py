"""Rendering rows for people (rich tables) and tools (csv, json). CLI layer only."""

from __future__ import annotations

import csv
import io
import json
from enum import Enum
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def to_json(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2, default=str)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue()


def to_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row[c]) for c in columns))
    return table


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
