"""One answer per read, shared by every client asking for it within a second.

The console's reads (``GET /api/...``, ``GET /metrics``) are computed from the
database, from 2 ms to 30 ms each. Fifty clients polling ``/api/status`` need the same
answer, not fifty computations of it: :class:`SharedReads` computes a read once
(concurrent askers of the same URL wait for that one computation) and answers it again
from memory for ``seconds`` after it was computed. Only 200 answers are kept for later
askers (an error is shared only with those already waiting for it). A change (a POST:
halt, resume, a queued run, an emergency stop) empties the store when it starts, when
it answers and when it ends, and an answer computed across a change is not
kept, so a client never reads, after its change was answered, what was true before it.

A change made by another process (a second ``serve``, the scheduler) is seen at most
``seconds`` late. ``ORCHESTRATOR_API_CACHE_SECONDS=0`` turns sharing off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: the paths whose GET answers are shared
SHARED_PREFIXES = ("/api/", "/metrics")
#: answers kept at most (distinct URLs); past it, the expired ones are dropped
MAX_ENTRIES = 512

Key = tuple[str, bytes]


@dataclass
class _Answer:
    """A response as the ASGI messages that carried it."""

    messages: list[Message] = field(default_factory=list)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"]) if self.messages else 0

    async def replay(self, send: Send) -> None:
        for message in self.messages:
            await send(message)


@dataclass
class _Entry:
    answer: asyncio.Future[_Answer | None]
    expires: float = float("inf")  # while it is being computed


class SharedReads:
    """ASGI middleware sharing each read's answer for ``seconds`` (module docstring)."""

    def __init__(self, app: ASGIApp, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.seconds = seconds
        self.clock = clock
        self._entries: dict[Key, _Entry] = {}
        self._generation = 0  # bumped by every change: an answer computed across one is not kept

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0 or scope["method"] in ("HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
        elif scope["method"] != "GET":
            await self._change(scope, receive, send)
        elif str(scope["path"]).startswith(SHARED_PREFIXES):
            await self._read(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _change(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._forget()

        async def answer(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":  # committed: what was read meanwhile is old
                self._forget()
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            self._forget()

    def _forget(self) -> None:
        self._generation += 1
        self._entries.clear()

    def _drop_expired(self) -> None:
        now = self.clock()
        for key in [key for key, entry in self._entries.items() if entry.expires <= now]:
            del self._entries[key]
        if len(self._entries) >= MAX_ENTRIES:  # a flood of distinct URLs: askers keep their own futures
            self._entries.clear()

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> None:
        key: Key = (str(scope["path"]), bytes(scope.get("query_string", b"")))
        entry = self._entries.get(key)
        if entry is not None and entry.expires > self.clock():
            shared = await asyncio.shield(entry.answer)
            if shared is not None:
                await shared.replay(send)
                return
        await self._compute(key, scope, receive, send)

    async def _compute(self, key: Key, scope: Scope, receive: Receive, send: Send) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._drop_expired()
        entry = _Entry(asyncio.get_running_loop().create_future())
        self._entries[key] = entry
        generation = self._generation
        answer = _Answer()

        async def keep(message: MutableMapping[str, Any]) -> None:
            answer.messages.append(dict(message))

        complete = kept = False
        try:
            await self.app(scope, receive, keep)
            complete = True
            kept = answer.status == 200 and generation == self._generation
        finally:
            # the askers waiting get this answer, whatever it is; later ones only if kept
            # (after an error or a cancellation, each computes its own)
            entry.answer.set_result(answer if complete else None)
            if kept:
                entry.expires = self.clock() + self.seconds
            elif self._entries.get(key) is entry:
                del self._entries[key]
        await answer.replay(send)
