"""The KRX market calendar: pandas-market-calendars underneath, reviewed overrides on top.

The session table is built once per process and cached on disk, so a cold CLI call does
not pay the second the library needs to build its schedule (of which it would spend
another second on holidays from 1970 to 2200 first: :func:`_library_days` asks for the
calendar's years only). The cache file's name is a
key of all that decides the table (the cache format, the library versions, the date
range, the overrides file and this module's code): a file from another version of any
of them is never read. The cache lives in the configured directory; only when that one
cannot be written does it go to a directory of the system temp dir, and that one is
used only if it is this user's own (not a link, nobody else may write it).
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from services.common.private_files import make_private_dir, open_private

logger = logging.getLogger(__name__)

KRX_TZ = ZoneInfo("Asia/Seoul")
OVERRIDES_PATH = Path(__file__).with_name("krx_calendar_overrides.csv")
LIBRARY_CALENDAR = "XKRX"
#: Sessions before this date are not needed by any job (history starts here).
CALENDAR_START = date(2015, 1, 1)
#: The regular session hours in effect from each date (KRX extended the close to 15:30
#: on 2016-08-01). Used to tell a "regular" session from a "special" one.
REGULAR_HOURS: tuple[tuple[date, time, time], ...] = (
    (date(2000, 1, 1), time(9, 0), time(15, 0)),
    (date(2016, 8, 1), time(9, 0), time(15, 30)),
)
#: KRX opens the first session of every year an hour late, at 10:00, for its opening
#: ceremony (each year's notice says so; the overrides list the reviewed years).
FIRST_SESSION_OPEN = time(10, 0)
_CACHE_FORMAT = 2


class CalendarError(ValueError):
    """The calendar cannot answer: a date outside its data, or a bad overrides file."""


@dataclass(frozen=True, slots=True)
class Session:
    """One KRX trading session; ``open`` and ``close`` are aware (Asia/Seoul)."""

    date: date
    open: datetime
    close: datetime

    @property
    def status(self) -> str:
        """``regular`` for the hours in effect that day, else ``special``."""
        regular_open, regular_close = regular_hours_on(self.date)
        local_open, local_close = self.open.astimezone(KRX_TZ), self.close.astimezone(KRX_TZ)
        if local_open.time() == regular_open and local_close.time() == regular_close:
            return "regular"
        return "special"


@dataclass(frozen=True, slots=True)
class Override:
    date: date
    kind: str  # "closed" | "session"
    open: time | None
    close: time | None
    source: str


@dataclass(frozen=True, slots=True)
class Overrides:
    valid_through: date
    entries: tuple[Override, ...]


def regular_hours_on(day: date) -> tuple[time, time]:
    """The regular open and close (Asia/Seoul) in effect on ``day``."""
    hours = REGULAR_HOURS[0]
    for candidate in REGULAR_HOURS:
        if candidate[0] <= day:
            hours = candidate
    return hours[1], hours[2]


# --- overrides file -------------------------------------------------------------------


def parse_overrides(text: str, name: str = OVERRIDES_PATH.name) -> Overrides:
    """Parse the overrides CSV; a bad line raises :class:`CalendarError` naming it."""
    valid_through: date | None = None
    data_lines: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        match = re.fullmatch(r"#\s*valid_through:\s*(\S+)", stripped)
        if match:
            valid_through = _parse_date(match[1], name, number)
        elif stripped and not stripped.startswith("#"):
            data_lines.append((number, line))
    if valid_through is None:
        raise CalendarError(f"{name}: no '# valid_through: YYYY-MM-DD' line; expected one")
    if not data_lines or data_lines[0][1].strip() != "date,kind,open,close,source":
        raise CalendarError(f"{name}: expected the header line 'date,kind,open,close,source'")
    entries = [_parse_override(number, line, name) for number, line in data_lines[1:]]
    seen: set[date] = set()
    for entry, (number, _) in zip(entries, data_lines[1:]):
        if entry.date in seen:
            raise CalendarError(f"{name} line {number}: {entry.date} is listed twice; expected one row a date")
        seen.add(entry.date)
    return Overrides(valid_through, tuple(entries))


def _parse_override(number: int, line: str, name: str) -> Override:
    row = next(csv.reader([line]))
    where = f"{name} line {number}"
    if len(row) != 5:
        raise CalendarError(f"{where}: {len(row)} fields; expected 5 (date,kind,open,close,source)")
    day_text, kind, open_text, close_text, source = (cell.strip() for cell in row)
    day = _parse_date(day_text, name, number)
    if not source:
        raise CalendarError(f"{where}: no source; every override names the KRX notice or law")
    if kind == "closed":
        if open_text or close_text:
            raise CalendarError(f"{where}: a closed day has no open/close; leave both empty")
        return Override(day, kind, None, None, source)
    if kind == "session":
        open_time = _parse_time(open_text, where, "open")
        close_time = _parse_time(close_text, where, "close")
        if open_time >= close_time:
            raise CalendarError(f"{where}: open {open_text} is not before close {close_text}")
        return Override(day, kind, open_time, close_time, source)
    raise CalendarError(f"{where}: kind {kind!r}; expected 'closed' or 'session'")


def _parse_date(text: str, name: str, number: int) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CalendarError(f"{name} line {number}: {text!r} is not a date; expected YYYY-MM-DD") from None


def _parse_time(text: str, where: str, label: str) -> time:
    match = re.fullmatch(r"(\d{2}):(\d{2})", text)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise CalendarError(f"{where}: {label} {text!r} is not a time; expected HH:MM")
    return time(int(match[1]), int(match[2]))


# --- building the table (pure) ---------------------------------------------------------


def apply_overrides(
    library_sessions: Iterable[Session], overrides: Iterable[Override]
) -> list[Session]:
    """The library's sessions corrected by ``overrides``; sorted by date.

    An override the library already agrees with leaves its session unchanged.
    """
    by_date = {session.date: session for session in library_sessions}
    for override in overrides:
        if override.kind == "closed":
            by_date.pop(override.date, None)
        else:
            assert override.open is not None and override.close is not None
            by_date[override.date] = make_session(override.date, override.open, override.close)
    return [by_date[day] for day in sorted(by_date)]


def open_first_sessions_late(sessions: Sequence[Session], after: date) -> list[Session]:
    """``sessions`` with each year's first session after ``after`` (the reviewed data)
    opening at :data:`FIRST_SESSION_OPEN`: KRX's yearly rule, before its notice is in
    the overrides. Sorted input; the close is kept."""
    result, years_seen = [], set()
    for session in sessions:
        first_of_year = session.date.year not in years_seen
        years_seen.add(session.date.year)
        if first_of_year and session.date > after and session.open.time() < FIRST_SESSION_OPEN:
            session = make_session(session.date, FIRST_SESSION_OPEN, session.close.time())
        result.append(session)
    return result


def make_session(day: date, open_time: time, close_time: time) -> Session:
    return Session(
        day,
        datetime.combine(day, open_time, KRX_TZ),
        datetime.combine(day, close_time, KRX_TZ),
    )


# --- the calendar ---------------------------------------------------------------------


class MarketCalendar:
    """Answers session questions from a fixed session table.

    ``first_date``..``last_date`` bound what it knows; asking outside raises
    :class:`CalendarError`. ``valid_through`` is the last date its data was reviewed
    against KRX notices; beyond it the library's rules alone decide.
    """

    def __init__(
        self, sessions: Sequence[Session], *, first_date: date, last_date: date, valid_through: date
    ) -> None:
        self._sessions = list(sessions)
        self._dates = [session.date for session in self._sessions]
        self._by_date = {session.date: session for session in self._sessions}
        self.first_date = first_date
        self.last_date = last_date
        self.valid_through = valid_through

    def _check(self, day: date) -> None:
        if not self.first_date <= day <= self.last_date:
            raise CalendarError(
                f"{day} is outside the KRX calendar data "
                f"({self.first_date} to {self.last_date}); expected a date in that range"
            )

    def session(self, day: date) -> Session | None:
        self._check(day)
        return self._by_date.get(day)

    def is_session(self, day: date) -> bool:
        return self.session(day) is not None

    def sessions(self, start: date, end: date) -> list[Session]:
        """Sessions from ``start`` to ``end``, both included (clipped to the data)."""
        lo = bisect.bisect_left(self._dates, start)
        hi = bisect.bisect_right(self._dates, end)
        return self._sessions[lo:hi]

    def previous_session(self, day: date) -> Session | None:
        """The last session strictly before ``day``."""
        index = bisect.bisect_left(self._dates, day)
        return self._sessions[index - 1] if index > 0 else None

    def next_session(self, day: date) -> Session | None:
        """The first session strictly after ``day`` (``None`` past the data)."""
        index = bisect.bisect_right(self._dates, day)
        return self._sessions[index] if index < len(self._sessions) else None

    def session_on_or_after(self, day: date) -> Session | None:
        index = bisect.bisect_left(self._dates, day)
        return self._sessions[index] if index < len(self._sessions) else None

    def session_on_or_before(self, day: date) -> Session | None:
        index = bisect.bisect_right(self._dates, day)
        return self._sessions[index - 1] if index > 0 else None

    def iter_from(self, day: date) -> Iterable[Session]:
        """Sessions on or after ``day``, in order."""
        return iter(self._sessions[bisect.bisect_left(self._dates, day):])

    def iter_back_from(self, day: date) -> Iterable[Session]:
        """Sessions on or before ``day``, newest first."""
        return reversed(self._sessions[: bisect.bisect_right(self._dates, day)])


# --- loading (library + cache) ---------------------------------------------------------


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "krx-orchestrator"


def calendar_end(overrides: Overrides) -> date:
    """Holidays are decided about a year ahead: know one year past the reviewed data."""
    return date(overrides.valid_through.year + 1, 12, 31)


def load_calendar(cache_dir: Path | None = None, overrides_path: Path = OVERRIDES_PATH) -> MarketCalendar:
    """Build (or read from the disk cache) the corrected KRX calendar."""
    overrides_text = overrides_path.read_text(encoding="utf-8")
    overrides = parse_overrides(overrides_text, overrides_path.name)
    end = calendar_end(overrides)
    name = _cache_name(overrides_text, end)
    directory = _usable_cache_dir(cache_dir, name) if cache_dir is not None else None
    sessions = _read_cache(directory / name, end) if directory else None
    if sessions is None:
        sessions = open_first_sessions_late(apply_overrides(_library_sessions(CALENDAR_START, end),
                                                            overrides.entries), overrides.valid_through)
        if directory:
            _write_cache(directory / name, sessions)
    return MarketCalendar(
        sessions, first_date=CALENDAR_START, last_date=end, valid_through=overrides.valid_through
    )


@lru_cache(maxsize=4)
def get_calendar(cache_dir: str = "") -> MarketCalendar:
    """The process-wide calendar (built once); ``cache_dir`` '' means the default."""
    return load_calendar(Path(cache_dir) if cache_dir else default_cache_dir())


def _library_sessions(start: date, end: date) -> list[Session]:
    """The library's schedule of ``start``..``end`` (``MarketCalendar.schedule``), its
    sessions as ours."""
    import warnings

    import pandas_market_calendars as mcal

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # discontinued lunch-break columns
        calendar = mcal.get_calendar(LIBRARY_CALENDAR)
        schedule = calendar.schedule_from_days(_library_days(calendar, start, end))
    opens = schedule["market_open"].dt.tz_convert(KRX_TZ)
    closes = schedule["market_close"].dt.tz_convert(KRX_TZ)
    return [
        Session(day.date(), o.to_pydatetime(), c.to_pydatetime())
        for day, o, c in zip(schedule.index, opens, closes)
    ]


def _library_days(calendar: Any, start: date, end: date) -> Any:
    """The library's valid days of ``start``..``end`` (``MarketCalendar.valid_days``),
    its regular holidays computed for those years only: ``valid_days`` first computes
    them for 1970-2200, a second of a cold start."""
    import pandas as pd
    from pandas.tseries.offsets import CustomBusinessDay

    holidays = list(calendar.adhoc_holidays)
    if calendar.regular_holidays is not None:
        holidays += list(calendar.regular_holidays.holidays(start.isoformat(), end.isoformat()))
    return pd.date_range(start.isoformat(), end.isoformat(), normalize=True, tz="UTC",
                         freq=CustomBusinessDay(holidays=holidays, weekmask=calendar.weekmask))


def _library_versions() -> str:
    versions = []
    for package in ("pandas_market_calendars", "exchange_calendars"):
        try:
            versions.append(f"{package}={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package}=?")
    return ";".join(versions)


def _cache_name(overrides_text: str, end: date) -> str:
    """The cache file's name: a key of everything the session table is made of."""
    key = hashlib.sha256(
        f"{_CACHE_FORMAT}|{_library_versions()}|{_code_version()}|{CALENDAR_START}|{end}|{overrides_text}".encode()
    ).hexdigest()[:16]
    return f"krx_sessions_{key}.json"


@lru_cache(maxsize=1)
def _code_version() -> str:
    """A digest of this module (the code that builds the table): a cache written by
    other code is another file, whether or not ``_CACHE_FORMAT`` was bumped."""
    try:
        return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    except OSError:  # no source to read: the other parts of the key still apply
        return "?"


def _usable_cache_dir(cache_dir: Path, name: str) -> Path | None:
    """Where the cache is read and written: ``cache_dir`` when it holds the file or can
    be written; else :func:`fallback_cache_dir` if it is private to this user; else
    nowhere (the table is built, not cached)."""
    if _is_file(cache_dir / name) or _writable_dir(cache_dir):
        return cache_dir
    fallback = fallback_cache_dir()
    if _writable_dir(fallback) and _private_to_this_user(fallback):
        logger.info("the calendar cache directory %s cannot be written; using %s", cache_dir, fallback)
        return fallback
    logger.warning("the calendar cache directory %s cannot be written, nor a private %s; "
                   "the calendar is built without a cache", cache_dir, fallback)
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a directory this user may not enter
        return False


def _writable_dir(directory: Path) -> bool:
    try:
        make_private_dir(directory)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)


def _private_to_this_user(directory: Path) -> bool:
    """A real directory (not a link) owned by this user that no one else may write:
    what another user put in a shared temp dir is not trusted."""
    try:
        status = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.getuid() and not status.st_mode & 0o022


def _read_cache(path: Path, end: date) -> list[Session] | None:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        sessions = [_cached_session(row) for row in rows]
        _check_cached_sessions(sessions, end)
        return sessions
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("ignoring unreadable calendar cache %s: %s", path, exc)
        return None


def _cached_session(row: list[str]) -> Session:
    day, opens, closes = row
    session = Session(date.fromisoformat(day), datetime.fromisoformat(opens), datetime.fromisoformat(closes))
    if session.open.tzinfo is None or session.close.tzinfo is None:
        raise ValueError(f"naive time in cached session {day}")
    return Session(session.date, session.open.astimezone(KRX_TZ), session.close.astimezone(KRX_TZ))


def _check_cached_sessions(sessions: list[Session], end: date) -> None:
    """A cache that cannot be the calendar (empty, unordered, outside its dates, odd
    times) is rebuilt."""
    if len(sessions) < 200:
        raise ValueError(f"only {len(sessions)} sessions")
    if sessions[0].date < CALENDAR_START or sessions[-1].date > end:
        raise ValueError(f"sessions {sessions[0].date} to {sessions[-1].date}; expected {CALENDAR_START} to {end}")
    for before, after in zip(sessions, sessions[1:]):
        if not before.date < after.date:
            raise ValueError(f"sessions out of order at {after.date}")
    for session in sessions:
        if session.open.date() != session.date or not session.open < session.close:
            raise ValueError(f"implausible session {session.date}")


def _write_cache(path: Path, sessions: Sequence[Session]) -> None:
    rows = [[s.date.isoformat(), s.open.isoformat(), s.close.isoformat()] for s in sessions]
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_TRUNC), "w", encoding="utf-8") as handle:
            handle.write(json.dumps(rows))
        tmp.replace(path)
    except OSError as exc:
        logger.warning("cannot write the calendar cache %s: %s", path, exc)


def fallback_cache_dir() -> Path:
    """Where the cache goes when the configured directory cannot be written (used only
    if private to this user)."""
    return Path(tempfile.gettempdir()) / f"krx-orchestrator-{os.getuid()}"


def weekdays(start: date, end: date) -> list[date]:
    """Monday-Friday dates from ``start`` to ``end`` inclusive."""
    days, day = [], start
    while day <= end:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days
