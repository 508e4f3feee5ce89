"""The contract between the orchestrator and the services: one entry point per job,
``run(ctx: JobContext) -> JobResult``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.clock import Clock
from services.common.market_calendar import MarketCalendar
from services.common.settings import Settings


class Outcome(str, Enum):
    """What became of a fire. ``running`` only while a claim is held."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    MISSED = "missed"




class Origin(str, Enum):
    """Why a run happened: its fire came (``schedule``), the start-up or downtime
    catch-up ran it, an operator's ``run-job``, the recovery sweep took over a dead
    holder's run, or a replay (``simulate``)."""

    SCHEDULE = "schedule"
    CATCH_UP = "catch_up"
    MANUAL = "manual"
    RECOVERY = "recovery"
    SIMULATE = "simulate"


@dataclass(frozen=True)
class Account:
    """Whose money a run acts on: a user's paper (``dry_run``) or live account.

    An instance has exactly one, made from its own settings; nothing builds one from a
    stored row, so no run of this instance can act for another user or mode."""

    user_id: str
    dry_run: bool

    @classmethod
    def of(cls, settings: Settings) -> Account:
        return cls(settings.user_id, settings.dry_run)

    @property
    def mode(self) -> str:
        """'paper' or 'live'."""
        return "paper" if self.dry_run else "live"

    @property
    def key(self) -> str:
        """E.g. 'alice:paper': what an account transaction locks."""
        return f"{self.user_id}:{self.mode}"

    def describe(self) -> str:
        """E.g. 'alice (paper)' or 'alice (LIVE)'."""
        return f"{self.user_id} ({'paper' if self.dry_run else 'LIVE'})"


@dataclass(frozen=True)
class JobContext:
    """Everything a job may use; nothing else (no globals, no clock reads). The account
    (user and mode) is the settings' own: a context cannot name another."""

    job_name: str
    trading_date: date
    scheduled_for: datetime
    settings: Settings
    session_factory: sessionmaker[DbSession]
    clock: Clock
    calendar: MarketCalendar
    run_id: int | None = None
    origin: str = Origin.SCHEDULE.value  # an Origin's value

    @property
    def account(self) -> Account:
        """The one account of the run: the user and mode of the instance's settings."""
        return Account.of(self.settings)

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose lines carry the job name and trading date."""
        return _JobLogAdapter(
            logging.getLogger(f"services.jobs.{self.job_name}"),
            {"job": self.job_name, "trading_date": self.trading_date.isoformat()},
        )


class _JobLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[{extra['job']} {extra['trading_date']}] {msg}", kwargs


@dataclass(frozen=True)
class JobResult:
    """A job's own verdict: status, a small summary of counts, and a reason if skipped."""

    status: Outcome
    summary: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    @classmethod
    def success(cls, **summary: Any) -> JobResult:
        return cls(Outcome.SUCCESS, dict(summary))

    @classmethod
    def skipped(cls, reason: str, **summary: Any) -> JobResult:
        return cls(Outcome.SKIPPED, dict(summary), reason)

    @classmethod
    def failed(cls, reason: str, **summary: Any) -> JobResult:
        return cls(Outcome.FAILED, dict(summary), reason)


JobEntryPoint = Callable[[JobContext], JobResult]
