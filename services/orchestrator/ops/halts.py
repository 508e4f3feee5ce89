"""Halting and resuming an account's trading by hand (stored; survives restarts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.orchestrator.ops.arguments import InvalidArgument
from services.orchestrator.runtime import Runtime

if TYPE_CHECKING:
    from services.risk_manager.halts import Halt

MAX_REASON = 300


@dataclass(frozen=True)
class HaltChange:
    halt: Halt  # the halt in force
    made: bool  # False: it was already in force, and is kept as it was


def halt(runtime: Runtime, reason: str) -> HaltChange:
    """Halt trading for the account: no new positions open until :func:`resume`.
    ``reason`` (whitespace runs made one space) must be 1 to 300 characters."""
    from services.risk_manager.halts import MANUAL, halt_trading

    text = " ".join(reason.split())
    if not text or len(text) > MAX_REASON:
        raise InvalidArgument("reason", f"expected a reason of 1 to {MAX_REASON} characters, got {len(text)}")
    with runtime.session_factory().begin() as session:
        current, made = halt_trading(session.connection(), runtime.settings.user_id, text, by=MANUAL,
                                     at=runtime.clock.now())
    return HaltChange(current, made)


def resume(runtime: Runtime) -> Halt | None:
    """End the account's halt; the halt that ended, or None if trading was not halted."""
    from services.risk_manager.halts import MANUAL, resume_trading

    with runtime.session_factory().begin() as session:
        return resume_trading(session.connection(), runtime.settings.user_id, by=MANUAL, at=runtime.clock.now())
