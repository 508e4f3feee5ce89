"""KIS's answers read into ours: fields in either case, numbers as text with commas,
an ``output`` as rows. What the rows mean (orders, quotes) is read where they are
asked for: :mod:`.quotes`, and the live adapter's ``kis.order_rows``."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from services.trading_engine.kis_api.errors import KisError


def field(row: Mapping[str, Any], name: str) -> Any:
    """A field in whichever case KIS used (order answers are UPPERCASE, lists lowercase)."""
    for key in (name, name.lower(), name.upper()):
        if key in row:
            return row[key]
    return None


def text(row: Mapping[str, Any], name: str) -> str:
    value = field(row, name)
    return str(value).strip() if value is not None else ""


def number(row: Mapping[str, Any], name: str) -> Decimal:
    """A number KIS gave as text (``"1,234.5"``); missing or empty is 0."""
    value = text(row, name).replace(",", "")
    if not value:
        return Decimal(0)
    try:
        return Decimal(value)
    except InvalidOperation:
        raise KisError(f"KIS answered {name}={value!r}; expected a number") from None


def whole(row: Mapping[str, Any], name: str) -> int:
    """A number of KRW or shares, rounded to a whole one."""
    return int(number(row, name).to_integral_value())


def rows(value: Any) -> list[dict[str, Any]]:
    """An ``output`` as a list of rows (KIS gives one row as an object)."""
    if isinstance(value, dict):
        return [value]
    return [row for row in value or [] if isinstance(row, dict)]
