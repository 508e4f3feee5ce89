"""The contract between the orchestrator and the services: one entry point per job,
``run(ctx: JobContext) -> JobResult``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any, Callable

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


FINAL_OUTCOMES = (Outcome.SUCCESS, Outcome.FAILED, Outcome.SKIPPED, Outcome.MISSED)


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
class JobContext:
    """Everything a job may use; nothing else (no globals, no clock reads)."""

    job_name: str
    trading_date: date
    scheduled_for: datetime
    settings: Settings
    session_factory: sessionmaker[DbSession]
    clock: Clock
    calendar: MarketCalendar
    dry_run: bool
    user_id: str
    run_id: int | None = None
    origin: str = Origin.SCHEDULE.value  # an Origin's value

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
    def success(cls, **summary: Any) -> "JobResult":
        return cls(Outcome.SUCCESS, dict(summary))

    @classmethod
    def skipped(cls, reason: str, **summary: Any) -> "JobResult":
        return cls(Outcome.SKIPPED, dict(summary), reason)

    @classmethod
    def failed(cls, reason: str, **summary: Any) -> "JobResult":
        return cls(Outcome.FAILED, dict(summary), reason)


JobEntryPoint = Callable[[JobContext], JobResult]
