"""The operations' arguments: dates and times read from text, ranges, and days the
calendar data must cover. A bad one raises :class:`InvalidArgument`."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.common.market_calendar import MarketCalendar
from services.common.settings import ConfigurationError


class InvalidArgument(ConfigurationError):
    """An argument that is not accepted. ``name`` is the argument (``date``, ``start``,
    ``database_url``); the message says what was received and what is expected."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def parse_day(text: str, name: str) -> date:
    """``YYYY-MM-DD`` as a date."""
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(name, f"{text!r} is not a date; expected YYYY-MM-DD") from None


def parse_optional_day(text: str | None, name: str) -> date | None:
    """:func:`parse_day` of an option that may be left out (None)."""
    return None if text is None else parse_day(text, name)


def parse_moment(text: str, name: str, tz: ZoneInfo) -> datetime:
    """An ISO 8601 date or time; without an offset, a time in ``tz``."""
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.+\-Z]*)?", text):
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            name, f"{text!r} is not an ISO 8601 time; expected e.g. 2026-11-23 or 2026-11-23T09:00+09:00"
        ) from None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def check_range(start: Any, end: Any) -> None:
    """``start`` must not be after ``end`` (dates or times)."""
    if start > end:
        raise InvalidArgument("start", f"--start {start} is after --end {end}; expected start <= end")


def require_in_calendar(calendar: MarketCalendar, *days: date) -> None:
    """A day outside the calendar data raises ``CalendarError`` naming the range."""
    for day in days:
        calendar.session(day)
