"""Request pacing for the adapters that call rate-limited services (the KIS open API,
KRX's data site through pykrx): one small limiter, used by each under its own name.

A :class:`Throttle` gives each caller a start time at least ``interval`` seconds after
the previous caller's, and sleeps until then. Slots are taken under a lock and slept
for outside it, so callers on several threads each get their own slot. The clock and
the sleep are injected: tests pass fakes and never wait.

:data:`THROTTLES` keeps one throttle per name for the process (``"pykrx"``; KIS's,
where its pacing file cannot be used), so every client of the same service in the
process shares its pace. A :class:`SharedThrottle` paces every process that names the
same file (KIS's limit is per app key, whichever process asks: a live instance and a
paper one reading quotes share it).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from services.common.private_files import make_private_dir, open_private

logger = logging.getLogger(__name__)

Monotonic = Callable[[], float]
Sleep = Callable[[float], None]


class Pace(Protocol):
    """What a paced client needs: the next slot, slept for."""

    def wait(self) -> float: ...


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


class SharedThrottle:
    """:class:`Throttle` across processes: the next free slot is kept in ``path``, read
    and moved under an exclusive ``flock`` (and, within the process, a lock of the
    path), so processes and threads pacing on the same file start their calls
    ``interval`` seconds apart. Slots are on ``CLOCK_MONOTONIC``, which every process of
    the machine shares and no wall-clock step moves. A slot more than
    :data:`FAR_SLOTS` intervals ahead (the file outlived a reboot) is not waited for.
    Where the file cannot be used (a read-only directory), the ``fallback`` paces this
    process alone, with a warning (once per file and process)."""

    def __init__(self, path: Path, interval: float, *, fallback: Pace, clock: Monotonic = time.monotonic,
                 sleep: Sleep = time.sleep) -> None:
        self.path = Path(path)
        self.interval = _checked_interval(interval)
        self._fallback = fallback
        self._clock = clock
        self._sleep = sleep

    def wait(self) -> float:
        """Take the next free slot of every process pacing on the file, sleeping until it
        comes; returns the seconds slept."""
        try:
            with _path_lock(self.path):  # flock may not exclude threads (NFS emulates it per process)
                start, now = self._take_slot()
        except OSError as exc:
            if self.path not in _WARNED:  # once per process: a client is made per run
                logger.warning("cannot pace through %s (%s); pacing this process alone", self.path, exc.strerror)
                _WARNED.add(self.path)
            return self._fallback.wait()
        delay = start - now
        if delay > 0:
            self._sleep(delay)
        return delay

    def _take_slot(self) -> tuple[float, float]:
        """The slot taken, and now."""
        make_private_dir(self.path.parent)  # the cache dir, as the token file beside it
        with os.fdopen(open_private(self.path, os.O_RDWR), "r+b") as file:  # 0600, created if missing
            fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
            now = self._clock()
            start = _next_slot(file.read(64), now, self.interval)
            file.seek(0)
            file.truncate()
            file.write(repr(start + self.interval).encode("ascii"))
            file.flush()
        return start, now


#: a shared slot further ahead than this many intervals is not waited for (see
#: :class:`SharedThrottle`): far beyond any real queue of requests
FAR_SLOTS = 64


def _next_slot(stored: bytes, now: float, interval: float) -> float:
    """When the next call may start: the stored slot, or now if it has passed, is
    unreadable, or lies implausibly far ahead."""
    try:
        slot = float(stored.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return now
    return slot if now < slot <= now + FAR_SLOTS * max(interval, 1.0) else now


_PATH_LOCKS: dict[Path, threading.Lock] = {}
_WARNED: set[Path] = set()  # the pacing files this process could not use, said once
_PATH_LOCKS_LOCK = threading.Lock()


def _path_lock(path: Path) -> threading.Lock:
    """The process's lock of a pacing file."""
    with _PATH_LOCKS_LOCK:
        return _PATH_LOCKS.setdefault(path.resolve(), threading.Lock())


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
