"""Calendar-aware APScheduler triggers.

Pure: every answer comes from the arguments and the market calendar, never the clock.
``get_next_fire_time(previous, now)`` follows APScheduler's contract: with a previous
fire time it returns the first fire strictly after it (so the scheduler can see
misfires), without one the first fire at or after ``now``; ``None`` when the calendar
data ends. The scheduler, ``next-runs``, ``status`` and replays all read these classes.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from services.common.market_calendar import KRX_TZ, MarketCalendar, Session, get_calendar

_ONE_DAY = timedelta(days=1)
_MINUTES_PER_DAY = 24 * 60


class TriggerError(ValueError):
    """A trigger cannot be built from the values given."""


def _require_aware(moment: datetime, label: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TriggerError(f"{label} must be timezone-aware; got naive {moment.isoformat()}")


class CalendarTrigger(BaseTrigger):
    """Base of the calendar triggers: the shared search loop and pickling."""

    def __init__(self, timezone: str, calendar: MarketCalendar | None = None) -> None:
        self.timezone = ZoneInfo(timezone)
        self._calendar = calendar

    @property
    def calendar(self) -> MarketCalendar:
        if self._calendar is None:
            self._calendar = get_calendar()
        return self._calendar

    # -- the one abstract idea: fire times near a day -----------------------------------

    @abstractmethod
    def _fires_from(self, moment: datetime) -> Iterator[datetime]:
        """Fire times at or after ``moment``, ascending, in the exchange's timezone."""

    @abstractmethod
    def _fires_back_from(self, moment: datetime) -> Iterator[datetime]:
        """Fire times at or before ``moment``, descending."""

    @abstractmethod
    def trading_date(self, fire_time: datetime) -> date:
        """The trading date a fire works on."""

    @abstractmethod
    def market_deadline(self, fire_time: datetime) -> datetime | None:
        """The latest moment the fire is still useful, by the market; ``None`` = no bound."""

    @abstractmethod
    def describe(self) -> str:
        """The schedule in words."""

    # -- derived API ----------------------------------------------------------------------

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:
            _require_aware(previous_fire_time, "previous_fire_time")
            threshold = previous_fire_time + timedelta(microseconds=1)
        else:
            _require_aware(now, "now")
            threshold = now
        fire = next(self._fires_from(threshold), None)
        return None if fire is None else fire.astimezone(self.timezone)

    def previous_fire_time(self, now: datetime) -> datetime | None:
        """The latest fire at or before ``now`` (the fire a late run belongs to)."""
        _require_aware(now, "now")
        fire = next(self._fires_back_from(now), None)
        return None if fire is None else fire.astimezone(self.timezone)

    def fire_times(self, start: datetime, end: datetime) -> list[datetime]:
        """Every fire with ``start <= t < end``, in the configured timezone."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        fires = []
        for fire in self._fires_from(start):
            if fire >= end:
                break
            fires.append(fire.astimezone(self.timezone))
        return fires

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_calendar"] = None  # rebuilt from the process-wide calendar on unpickling
        state["timezone"] = str(self.timezone)
        state["version"] = 1
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if state.pop("version", 1) > 1:
            raise TriggerError(f"cannot unpickle {type(self).__name__} state of a newer version")
        state["timezone"] = ZoneInfo(state["timezone"])
        self.__dict__.update(state)

    def __str__(self) -> str:
        return self.describe()


class _SessionTrigger(CalendarTrigger):
    """Triggers whose fires belong to KRX sessions."""

    @abstractmethod
    def session_fires(self, session: Session) -> list[datetime]:
        """The fires of one session, ascending."""

    def _fires_from(self, moment: datetime) -> Iterator[datetime]:
        start_day = moment.astimezone(KRX_TZ).date() - _ONE_DAY
        for session in self.calendar.iter_from(start_day):
            for fire in self.session_fires(session):
                if fire >= moment:
                    yield fire

    def _fires_back_from(self, moment: datetime) -> Iterator[datetime]:
        start_day = moment.astimezone(KRX_TZ).date() + _ONE_DAY
        for session in self.calendar.iter_back_from(start_day):
            for fire in reversed(self.session_fires(session)):
                if fire <= moment:
                    yield fire

    def session_of(self, fire_time: datetime) -> Session | None:
        """The session a fire time belongs to, if it is one of this trigger's fires."""
        day = fire_time.astimezone(KRX_TZ).date()
        for session in self.calendar.sessions(day - _ONE_DAY, day + _ONE_DAY):
            if fire_time in self.session_fires(session):
                return session
        return None

    def trading_date(self, fire_time: datetime) -> date:
        session = self.session_of(fire_time)
        if session is None:
            raise TriggerError(f"{fire_time.isoformat()} is not a fire time of '{self.describe()}'")
        return session.date


class SessionAnchoredTrigger(_SessionTrigger):
    """Once per session at the actual open or close plus an offset.

    Built from clock times read against the regular session (see
    :meth:`from_clock_time`): 16:00 is "close + 30 min", so on the 16:30 exam-day close
    it fires at 17:00.
    """

    def __init__(
        self,
        anchor: str,
        offset: timedelta,
        timezone: str,
        *,
        deadline_lead: timedelta = timedelta(0),
        calendar: MarketCalendar | None = None,
    ) -> None:
        super().__init__(timezone, calendar)
        if anchor not in ("open", "close"):
            raise TriggerError(f"anchor {anchor!r}; expected 'open' or 'close'")
        if abs(offset) >= timedelta(hours=12):
            raise TriggerError(f"offset {offset} is half a day or more from the {anchor}")
        self.anchor = anchor
        self.offset = offset
        self.deadline_lead = deadline_lead

    @classmethod
    def from_clock_time(
        cls,
        job_time: time,
        *,
        anchor: str,
        regular_open: time,
        regular_close: time,
        timezone: str,
        label: str = "job time",
        deadline_lead: timedelta = timedelta(0),
        calendar: MarketCalendar | None = None,
    ) -> SessionAnchoredTrigger:
        """Read ``job_time`` against the regular session: pre-open jobs anchor to the open
        (and must come before it), post-close jobs to the close (and must not precede it)."""
        minutes = _minutes(job_time)
        if anchor == "open":
            offset = minutes - _minutes(regular_open)
            if offset >= 0:
                raise TriggerError(
                    f"{label} {job_time:%H:%M} is not before the market open {regular_open:%H:%M}; "
                    "a pre-open job must run before the open"
                )
        else:
            offset = minutes - _minutes(regular_close)
            if offset < 0:
                raise TriggerError(
                    f"{label} {job_time:%H:%M} is before the market close {regular_close:%H:%M}; "
                    "a post-close job must run at or after the close"
                )
        return cls(anchor, timedelta(minutes=offset), timezone,
                   deadline_lead=deadline_lead, calendar=calendar)

    def session_fires(self, session: Session) -> list[datetime]:
        base = session.open if self.anchor == "open" else session.close
        return [base + self.offset]

    def market_deadline(self, fire_time: datetime) -> datetime | None:
        session = self.session_of(fire_time)
        if session is None:
            return None
        if self.anchor == "open":
            return session.open  # a pre-open job is useful until the open
        following = self.calendar.next_session(session.date)
        # a post-close job is useful until the next session's pre-open jobs
        return None if following is None else following.open - self.deadline_lead

    def describe(self) -> str:
        minutes = int(self.offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        return f"KRX sessions at {self.anchor} {sign} {abs(minutes)} min"

    def __repr__(self) -> str:
        return f"<SessionAnchoredTrigger ({self.describe()}, timezone='{self.timezone}')>"


@functools.lru_cache(maxsize=512)
def _interval_fires(open_: datetime, close: datetime, interval: timedelta, zone: Any) -> tuple[datetime, ...]:
    """Every ``interval`` from ``open_`` to ``close``, both included, in ``open_``'s zone
    (a key apart: equal instants hash alike), asked at every tick of a session."""
    count = int((close - open_) / interval)
    return tuple(open_ + k * interval for k in range(count + 1))


class InSessionIntervalTrigger(_SessionTrigger):
    """Every ``interval`` from the actual open to the actual close, both included."""

    def __init__(self, interval: timedelta, timezone: str, *,
                 calendar: MarketCalendar | None = None) -> None:
        super().__init__(timezone, calendar)
        if interval <= timedelta(0):
            raise TriggerError(f"interval {interval} must be positive")
        self.interval = interval

    def session_fires(self, session: Session) -> list[datetime]:
        return list(_interval_fires(session.open, session.close, self.interval, session.open.tzinfo))

    def market_deadline(self, fire_time: datetime) -> datetime | None:
        return fire_time + self.interval  # a tick is useful until the next tick

    def describe(self) -> str:
        return f"every {int(self.interval.total_seconds() // 60)} min from open to close of KRX sessions"

    def __repr__(self) -> str:
        return f"<InSessionIntervalTrigger ({self.describe()}, timezone='{self.timezone}')>"


class ClockAlignedIntervalTrigger(CalendarTrigger):
    """Every ``interval_minutes`` on the wall clock of ``timezone`` (00:00, 00:30, ...),
    every day of the year. The interval divides a day."""

    def __init__(self, interval_minutes: int, timezone: str, *,
                 calendar: MarketCalendar | None = None) -> None:
        super().__init__(timezone, calendar)
        if interval_minutes <= 0 or _MINUTES_PER_DAY % interval_minutes:
            raise TriggerError(
                f"interval {interval_minutes} min must be positive and divide a day (1440 min)"
            )
        self.interval_minutes = interval_minutes

    def day_fires(self, day: date) -> list[datetime]:
        """The fires of one local day, skipping wall times a DST change makes nonexistent."""
        midnight = datetime.combine(day, time(0), self.timezone)
        step = timedelta(minutes=self.interval_minutes)
        fires = [midnight + k * step for k in range(_MINUTES_PER_DAY // self.interval_minutes)]
        next_midnight = datetime.combine(day + _ONE_DAY, time(0), self.timezone)
        if midnight.utcoffset() == next_midnight.utcoffset():
            return fires
        return [f for f in fires if f.astimezone(ZoneInfo("UTC")).astimezone(self.timezone) == f]

    def _fires_from(self, moment: datetime) -> Iterator[datetime]:
        """Not bounded by the calendar data: the clock needs no calendar."""
        day = moment.astimezone(self.timezone).date()
        while day < date.max:
            for fire in self.day_fires(day):
                if fire >= moment:
                    yield fire
            day += _ONE_DAY

    def _fires_back_from(self, moment: datetime) -> Iterator[datetime]:
        day = moment.astimezone(self.timezone).date()
        while day > date.min:
            for fire in reversed(self.day_fires(day)):
                if fire <= moment:
                    yield fire
            day -= _ONE_DAY

    def trading_date(self, fire_time: datetime) -> date:
        return fire_time.astimezone(KRX_TZ).date()

    def market_deadline(self, fire_time: datetime) -> datetime | None:
        return None

    def describe(self) -> str:
        return f"every {self.interval_minutes} min, clock-aligned, every day"

    def __repr__(self) -> str:
        return f"<ClockAlignedIntervalTrigger ({self.describe()}, timezone='{self.timezone}')>"


def minutes_of_day(clock: time) -> int:
    return clock.hour * 60 + clock.minute


_minutes = minutes_of_day
