"""Scheduler heartbeats: a running scheduler says it is alive.

``start`` writes a row of its own to ``scheduler_heartbeats`` (its instance id, account,
host and pid) and renews ``beat_at`` every ``BEAT_SECONDS`` from a daemon thread, until
it stops (the row is then deleted; a killed scheduler's row just grows old). The REST
API's ``/ready`` reads the latest beat of its account: fresher than ``FRESH``, a
scheduler of the account is alive.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from services.common.clock import Clock
from services.common.database import database_error_line, upsert
from services.common.job_api import Account
from services.orchestrator import ledger
from services.orchestrator.models import SchedulerHeartbeat

logger = logging.getLogger(__name__)

BEAT_SECONDS = 20.0
#: a scheduler whose latest beat is older than this is taken for dead (``/ready``)
FRESH = timedelta(minutes=2)
_BEATS = SchedulerHeartbeat.__table__


class SchedulerBeat:
    """Renews this scheduler's heartbeat row every ``interval`` seconds from a daemon
    thread, between :meth:`start` and :meth:`stop`. A beat the database refuses is
    logged and tried again at the next one."""

    def __init__(self, session_factory: sessionmaker[DbSession], clock: Clock, account: Account,
                 interval: float = BEAT_SECONDS) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._account = account
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = clock.now()
        self.instance_id = ledger.INSTANCE_ID

    def start(self) -> None:
        """Beat once now, then every ``interval`` seconds."""
        self.beat()
        self._thread = threading.Thread(target=self._run, name="scheduler-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        row = {"instance_id": self.instance_id, "user_id": self._account.user_id,
               "dry_run": self._account.dry_run, "host": socket.gethostname()[:255], "pid": os.getpid(),
               "started_at": self._started_at, "beat_at": self._clock.now()}
        try:
            with self._sessions.begin() as session:
                upsert(session.connection(), _BEATS, [row], ["instance_id"], keep=["started_at"])
        except SQLAlchemyError as exc:  # the database may be away a moment
            logger.warning("could not write the scheduler heartbeat (database error: %s)", database_error_line(exc))

    def stop(self) -> None:
        """Stop beating, and delete the row: this scheduler no longer runs."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with self._sessions.begin() as session:
                session.execute(delete(SchedulerHeartbeat).where(SchedulerHeartbeat.instance_id == self.instance_id))
        except SQLAlchemyError as exc:
            logger.warning("could not remove the scheduler heartbeat (database error: %s)", database_error_line(exc))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat()


def latest_beat(connection: Connection, account: Account) -> datetime | None:
    """When a scheduler of ``account`` last beat; None if none runs (or ever ran)."""
    beat: datetime | None = connection.scalar(select(SchedulerHeartbeat.beat_at).where(
        SchedulerHeartbeat.user_id == account.user_id, SchedulerHeartbeat.dry_run.is_(account.dry_run))
        .order_by(SchedulerHeartbeat.beat_at.desc()).limit(1))
    return beat
