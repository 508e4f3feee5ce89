"""Halting and resuming an account's trading by hand (stored; survives restarts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from services.orchestrator.ops.arguments import InvalidArgument
from services.orchestrator.runtime import Runtime

if TYPE_CHECKING:
    from services.risk_manager.halts import Halt

MAX_REASON = 300


@dataclass(frozen=True)
class HaltChange:
    halt: Halt  # the halt in force
    made: bool  # False: it was already in force, and is kept as it was


def halt(runtime: Runtime, reason: str,
         also: Callable[[Connection, HaltChange], None] | None = None) -> HaltChange:
    """Halt trading for the account: no new positions open until :func:`resume`.
    ``reason`` (whitespace runs made one space) must be 1 to 300 characters. ``also``
    is called with the change in the same transaction (the console's audit)."""
    from services.risk_manager.halts import MANUAL, halt_trading

    text = " ".join(reason.split())
    if not text or len(text) > MAX_REASON:
        raise InvalidArgument("reason", f"expected a reason of 1 to {MAX_REASON} characters, got {len(text)}")
    with runtime.session_factory().begin() as session:
        current, made = halt_trading(session.connection(), runtime.settings.user_id, text, by=MANUAL,
                                     at=runtime.clock.now())
        change = HaltChange(current, made)
        if also is not None:
            also(session.connection(), change)
    return change


def resume(runtime: Runtime, also: Callable[[Connection, Halt | None], None] | None = None) -> Halt | None:
    """End the account's halt; the halt that ended, or None if trading was not halted.
    ``also`` is called with that in the same transaction (the console's audit)."""
    from services.risk_manager.halts import MANUAL, resume_trading

    with runtime.session_factory().begin() as session:
        resumed = resume_trading(session.connection(), runtime.settings.user_id, by=MANUAL, at=runtime.clock.now())
        if also is not None:
            also(session.connection(), resumed)
    return resumed
