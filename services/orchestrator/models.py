"""The run ledger's table: one row per fire or manual run."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from services.common.database import Base, UTCDateTime


class JobRun(Base):
    """A fire claimed by one orchestrator: unique by ``(job_name, user_id, dry_run,
    scheduled_for, attempt)``; the first attempt is the claim every instance of the
    account (user and mode) races for."""

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job_name", "user_id", "dry_run", "scheduled_for", "attempt", name="uq_job_runs_fire"),
        Index("ix_job_runs_job_scheduled", "job_name", "scheduled_for"),
        # the running rows only: the lease sweep's, and nothing to update at every finish
        Index("ix_job_runs_lease", "lease_until", sqlite_where=text("outcome = 'running'"),
              postgresql_where=text("outcome = 'running'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_name: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime())
    trading_date: Mapped[date | None]
    origin: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool]
    outcome: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    # the writing process's random id: host and pid repeat (pid 1 in every container)
    instance_id: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # a fire is run again (attempt 2, ...) only after its holder died: its lease expired
    attempt: Mapped[int] = mapped_column(server_default="1")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())  # renewed while running


class SchedulerHeartbeat(Base):
    """A running scheduler (``start``): one row per process (its random instance id),
    ``beat_at`` renewed every few seconds while it runs, deleted when it stops cleanly.
    ``/ready`` looks for a fresh beat of its account's."""

    __tablename__ = "scheduler_heartbeats"
    __table_args__ = (Index("ix_scheduler_heartbeats_account", "user_id", "dry_run", "beat_at"),)

    instance_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool]
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsoleAudit(Base):
    """A mutation asked of the console (REST API) whose token was accepted: when, for
    which account, what (``action``, ``detail``), from where (``client``: the peer's
    host:port, with any X-Forwarded-For), and how it was answered (``status_code``, with
    ``outcome`` in words)."""

    __tablename__ = "console_audit"
    __table_args__ = (Index("ix_console_audit_account", "user_id", "dry_run", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_id: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool]
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    client: Mapped[str] = mapped_column(String(300))
    status_code: Mapped[int]
    outcome: Mapped[str | None] = mapped_column(Text)


class QueuedRun(Base):
    """A job run asked for through the console, waiting for (``queued``), run by
    (``running``) or run by (``done``; ``failed``: the run failed, or could not run) a
    scheduler of the account; ``run_id`` is its run in the ledger."""

    __tablename__ = "queued_runs"
    __table_args__ = (Index("ix_queued_runs_account_status", "user_id", "dry_run", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool]
    job_name: Mapped[str] = mapped_column(String(64))
    trading_date: Mapped[date | None]
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requested_by: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[int | None]
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReplaySettings(Base):
    """The settings a replay of ``user_id`` ran with in this (simulation) database: the
    values (as text) of those that shape its result (``replay_settings.SHAPING``)."""

    __tablename__ = "replay_settings"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    settings: Mapped[dict[str, str]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
