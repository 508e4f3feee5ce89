"""Sending without blocking: a queue emptied by one worker thread, each message to each
channel whose level it reaches, retried with backoff, then given up in one logged line.
An incident already sent is not sent again until it clears.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, tzinfo

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from services.common.notifications.channels import Channel
from services.common.notifications.delivery import deliver, without_url
from services.common.notifications.messages import Message

logger = logging.getLogger(__name__)

ATTEMPTS = 3
BACKOFF_SECONDS = 1.0  # then 2 s
CLOSE_SECONDS = 30.0  # how long a stop waits for what is queued
#: an incident not cleared is said again after this long (its clear may have come from
#: another process: a resume, another instance's success)
REMIND_SECONDS = 6 * 3600.0

Send = Callable[[Channel, Message, float, tzinfo], str | None]


class NotDelivered(Exception):
    """One attempt failed; the message is the reason."""


class Notifier:
    def __init__(self, channels: Sequence[Channel], *, timeout: float = 10.0, tz: tzinfo = UTC,
                 send: Send = deliver, attempts: int = ATTEMPTS, backoff: float = BACKOFF_SECONDS,
                 remind_seconds: float = REMIND_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.channels = tuple(channels)
        self.timeout, self.tz, self._send = timeout, tz, send
        self.attempts, self.backoff = attempts, backoff
        self.remind_seconds, self._clock = remind_seconds, clock
        self._queue: queue.Queue[Message | None] = queue.Queue()
        self._open_incidents: dict[str, float] = {}  # key -> when it was said
        self._closed = False
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="notifications", daemon=True)
        self._worker.start()

    def notify(self, message: Message) -> bool:
        """Queue ``message`` for every channel that takes its level; False (nothing
        queued) if no channel takes it, or it tells of an incident already said, not
        cleared, and said less than ``remind_seconds`` ago."""
        if not any(channel.takes(message.level) for channel in self.channels):
            return False
        if message.key is not None:
            with self._lock:
                said = self._open_incidents.get(message.key)
                if said is not None and self._clock() - said < self.remind_seconds:
                    logger.debug("not sent again until it clears: %s", message.title)
                    return False
                self._open_incidents[message.key] = self._clock()
        if self._closed:
            logger.warning("notifications are stopped; not sent: %s", message.title)
            return False
        self._queue.put(message)
        return True

    def clear(self, keys: Sequence[str]) -> None:
        """The incidents of ``keys`` are over: the next one of each is sent."""
        with self._lock:
            for key in keys:
                self._open_incidents.pop(key, None)

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Send what is queued (waiting at most ``timeout``), then stop."""
        self._closed = True
        self._queue.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            logger.warning("notifications: %d message(s) still queued after %.0f s were dropped",
                           self._queue.qsize(), timeout)

    def _work(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                return
            delivered = [self._deliver(channel, message) for channel in self.channels
                         if channel.takes(message.level)]
            if message.key is not None and not any(delivered):
                self.clear([message.key])  # heard nowhere: the next one is tried again

    def _deliver(self, channel: Channel, message: Message) -> bool:
        retrying = Retrying(stop=stop_after_attempt(self.attempts), retry=retry_if_exception_type(NotDelivered),
                            wait=wait_exponential(multiplier=self.backoff, max=30))
        try:
            for attempt in retrying:
                with attempt:
                    reason = self._try(channel, message)
                    if reason is not None:
                        raise NotDelivered(reason)
        except RetryError as exc:
            reason = str(exc.last_attempt.exception())
            logger.warning("notification to %s not delivered after %d attempts (%s): %s", channel.name,
                           self.attempts, reason, message.title)
            return False
        return True

    def _try(self, channel: Channel, message: Message) -> str | None:
        try:
            return self._send(channel, message, self.timeout, self.tz)
        except Exception as exc:  # noqa: BLE001 (a channel's failure must never stop the worker)
            return without_url(f"{type(exc).__name__}: {exc}", channel.url)
