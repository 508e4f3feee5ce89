"""Request pacing for the adapters that call rate-limited services (the KIS open API,
KRX's data site through pykrx): one small limiter, used by each under its own name.

A :class:`Throttle` gives each caller a start time at least ``interval`` seconds after
the previous caller's, and sleeps until then. Slots are taken under a lock and slept
for outside it, so callers on several threads each get their own slot. The clock and
the sleep are injected: tests pass fakes and never wait.

:data:`THROTTLES` keeps one throttle per name for the process (``"pykrx"``, one per KIS
host and app key), so every client of the same service in the process shares its pace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

Monotonic = Callable[[], float]
Sleep = Callable[[float], None]


class Throttle:
    """Starts calls at least ``interval`` seconds apart (a minimum-interval limiter)."""

    def __init__(self, interval: float, *, monotonic: Monotonic = time.monotonic, sleep: Sleep = time.sleep) -> None:
        self._interval = _checked_interval(interval)
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_slot: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def per_second(cls, rate: float, *, monotonic: Monotonic = time.monotonic,
                   sleep: Sleep = time.sleep) -> Throttle:
        """A throttle for at most ``rate`` calls a second."""
        return cls(interval_of(rate), monotonic=monotonic, sleep=sleep)

    @property
    def interval(self) -> float:
        return self._interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        with self._lock:
            self._interval = _checked_interval(seconds)

    def wait(self) -> float:
        """Take the next free slot, sleeping until it comes; returns the seconds slept."""
        with self._lock:
            now = self._monotonic()
            start = now if self._next_slot is None else max(now, self._next_slot)
            self._next_slot = start + self._interval
        delay = start - now
        if delay > 0:
            self._sleep(delay)
        return delay


class ThrottleRegistry:
    """One :class:`Throttle` per name; asking again for a name gives the same throttle
    (set to the interval asked for last)."""

    def __init__(self, *, monotonic: Monotonic = time.monotonic, sleep: Sleep = time.sleep) -> None:
        self._monotonic = monotonic
        self._sleep = sleep
        self._throttles: dict[str, Throttle] = {}
        self._lock = threading.Lock()

    def get(self, name: str, interval: float) -> Throttle:
        """The throttle called ``name``, pacing calls ``interval`` seconds apart."""
        with self._lock:
            throttle = self._throttles.get(name)
            if throttle is None:
                throttle = self._throttles[name] = Throttle(interval, monotonic=self._monotonic, sleep=self._sleep)
            elif throttle.interval != interval:
                logger.info("throttle %s: %.3f s between requests (was %.3f s)", name, interval, throttle.interval)
                throttle.interval = interval
            return throttle


#: the process's throttles, on the real clock
THROTTLES = ThrottleRegistry()


def interval_of(rate: float) -> float:
    """Seconds between calls for ``rate`` calls a second."""
    if not rate > 0:
        raise ValueError(f"a request rate is calls per second above 0; got {rate}")
    return 1.0 / rate


def _checked_interval(seconds: float) -> float:
    if not seconds >= 0:
        raise ValueError(f"a throttle's interval is seconds >= 0; got {seconds}")
    return float(seconds)
