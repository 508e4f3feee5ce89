"""One replay per database at a time, by a lock that dies with its process.

Two replays into one database would interleave their fires on one paper account (and,
on SQLite, fail each other's writes with "database is locked"). The lock is a
PostgreSQL session advisory lock, on a connection of its own held for the replay, or,
for SQLite, an exclusive ``flock`` of ``<database>.replay.lock`` (mode 0600) beside the
file. Both are released by the system when the process ends, however it ends: a killed
replay never leaves its database locked.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from services.common.database import sqlite_file

#: The advisory lock's first key (the second is the schema's): ``database._PG_MIGRATION_LOCK`` + 1.
PG_REPLAY_LOCK = 727_002
_PG_NAME_LENGTH = 63  # application_name is cut there


class ReplayBusy(RuntimeError):
    """Another replay holds the database; the message names it."""


@contextmanager
def replay_lock(engine: Engine, holder: str) -> Iterator[None]:
    """Hold ``engine``'s database for one replay, described by ``holder`` (what a second
    replay's refusal names), while the block runs; raise :class:`ReplayBusy` if another
    replay holds it. An in-memory SQLite database is this process's alone: no lock."""
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        with _advisory_lock(engine, holder):
            yield
        return
    database = sqlite_file(engine.url.database) if backend == "sqlite" else None
    if database is None:
        yield
        return
    with _file_lock(f"{database}.replay.lock", holder):
        yield


def _refusal(holder: str) -> ReplayBusy:
    return ReplayBusy(f"another replay is writing to this database ({holder or 'starting'}); one replay at a time")


@contextmanager
def _file_lock(path: str, holder: str) -> Iterator[None]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _refusal(os.pread(descriptor, 1024, 0).decode("utf-8", "replace").strip()) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{holder}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


@contextmanager
def _advisory_lock(engine: Engine, holder: str) -> Iterator[None]:
    """A session advisory lock keyed by the schema (one PostgreSQL database may hold a
    replay per schema), on a connection outside the pool: closing it ends the session,
    so nothing of the lock outlives the replay. Its ``application_name`` is ``holder``."""
    lock_engine = create_engine(engine.url, poolclass=NullPool)
    try:
        with lock_engine.connect() as connection:
            schema = connection.scalar(text("SELECT current_schema()")) or ""
            key = {"lock_class": PG_REPLAY_LOCK, "lock_key": zlib.crc32(schema.encode("utf-8")) & 0x7FFF_FFFF}
            connection.execute(text("SELECT set_config('application_name', :name, false)"),
                               {"name": holder[:_PG_NAME_LENGTH]})
            taken = connection.scalar(text(
                "SELECT pg_try_advisory_lock(CAST(:lock_class AS integer), CAST(:lock_key AS integer))"), key)
            if not taken:
                other = _advisory_holder(connection, key)
                connection.rollback()
                raise _refusal(other)
            connection.commit()  # the lock is the session's: no transaction stays open for the replay
            yield
    finally:
        lock_engine.dispose()


def _advisory_holder(connection: Connection, key: dict[str, int]) -> str:
    """The ``application_name`` of the session holding the replay lock ('' if it just ended)."""
    return connection.scalar(text(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid::bigint = :lock_class AND l.objid::bigint = :lock_key LIMIT 1"), key) or ""
