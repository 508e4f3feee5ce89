"""The indicator windows, kept between runs in one process.

A step of the indicators reads each session of its window as one row (the date, its
tickers and their prices as joined texts: ``data_collector.queries.close_window``). A
replay steps one session after another, and each step would read again the 120
sessions the last one read; here a session's row is kept with the ``revision`` of its
``collected_sessions`` row (each collection of the date adds one) and served while that
revision is still the stored one, so a step reads the new session only. A window with a
session that has no ``collected_sessions`` row is read whole and nothing of it is kept.
(The version also holds when the date was first collected: a date emptied and collected
again starts again at revision 1.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, bindparam, select

from services.data_collector.models import CollectedSession

#: reads the window's rows of the sessions from a date to a date (both included)
WindowRead = Callable[[Connection, date, date], list[Any]]

_VERSIONS = select(CollectedSession.date, CollectedSession.revision, CollectedSession.collected_at).where(
    CollectedSession.date.between(bindparam("start"), bindparam("end")))
#: a stored session's version: its revision, and when it was first collected (a date
#: emptied and collected again starts again at revision 1)
Version = tuple[int, datetime]

#: per engine, per window read: each kept session's (version, row: None if it has none),
#: the last window's only
_kept: WeakKeyDictionary[Engine, dict[WindowRead, dict[date, tuple[Version, Any]]]] = WeakKeyDictionary()
_lock = threading.Lock()


def session_rows(connection: Connection, read: WindowRead, sessions: Sequence[date]) -> list[Any]:
    """``read``'s rows of ``sessions`` (consecutive, oldest first), in date order: those
    kept from an earlier window whose version is unchanged, the others read now."""
    if not sessions:
        return []
    versions = {day: (revision, collected_at) for day, revision, collected_at in connection.execute(
        _VERSIONS, {"start": sessions[0], "end": sessions[-1]})}
    if any(day not in versions for day in sessions):
        return read(connection, sessions[0], sessions[-1])
    with _lock:
        kept = dict(_kept.setdefault(connection.engine, {}).get(read, {}))
    stale = [day for day in sessions if kept.get(day, (None,))[0] != versions[day]]
    if stale:
        fresh = {row[0]: row for row in read(connection, stale[0], sessions[-1])}
        for day in sessions:
            if day >= stale[0]:
                kept[day] = (versions[day], fresh.get(day))
    window = {day: kept[day] for day in sessions if day in kept}
    with _lock:
        _kept.setdefault(connection.engine, {})[read] = window
    return [row for _, row in window.values() if row is not None]
