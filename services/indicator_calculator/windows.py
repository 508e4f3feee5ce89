"""The indicator windows, kept between runs in one process.

A step of the indicators reads each session of its window as one row (the date, its
tickers and their prices as joined texts: ``data_collector.queries.close_window``). A
replay steps one session after another, and each step would read again the 120
sessions the last one read; here a session's row is kept with the ``revision`` of its
``collected_sessions`` row (each collection of the date adds one) and served while that
revision is still the stored one, so a step reads the new session only. A window with a
session that has no ``collected_sessions`` row is read whole and nothing of it is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, bindparam, select

from services.data_collector.models import CollectedSession

#: reads the window's rows of the sessions from a date to a date (both included)
WindowRead = Callable[[Connection, date, date], list[Any]]

_REVISIONS = select(CollectedSession.date, CollectedSession.revision).where(
    CollectedSession.date.between(bindparam("start"), bindparam("end")))

#: per engine, per window read: each kept session's (revision, row), the last window's only
_kept: WeakKeyDictionary[Engine, dict[WindowRead, dict[date, tuple[int, Any]]]] = WeakKeyDictionary()
_lock = threading.Lock()


def session_rows(connection: Connection, read: WindowRead, sessions: Sequence[date]) -> list[Any]:
    """``read``'s rows of ``sessions`` (consecutive, oldest first), in date order: those
    kept from an earlier window whose revision is unchanged, the others read now."""
    if not sessions:
        return []
    revisions = dict(connection.execute(_REVISIONS, {"start": sessions[0], "end": sessions[-1]}).all())
    if any(day not in revisions for day in sessions):
        return read(connection, sessions[0], sessions[-1])
    with _lock:
        kept = dict(_kept.setdefault(connection.engine, {}).get(read, {}))
    stale = [day for day in sessions if kept.get(day, (None,))[0] != revisions[day]]
    if stale:
        fresh = {row[0]: row for row in read(connection, stale[0], sessions[-1])}
        kept.update({day: (revisions[day], fresh[day]) for day in sessions if day >= stale[0] and day in fresh})
    window = {day: kept[day] for day in sessions if day in kept}
    with _lock:
        _kept.setdefault(connection.engine, {})[read] = window
    return [row for _, row in window.values()]
