"""A replay's market-data fires, run ahead in a process of their own.

The market-data jobs (``JobSpec.market_only``: collection, indicators, watchlist) read
and write market data only, never an account's, so a replay need not wait for them
fire by fire: a second process runs them, in fire order and through the same runner,
on a copy of the replay's database, while the replay runs the account's fires. The
copy is made where the process takes over (``replay._handover``: after the first fire
whose needs it would make, which the replay makes itself while the process starts).
Triggers in the copy log every row the market-data runs write (:class:`_Table`). When
the replay reaches a market-data fire it waits for that fire to be done ahead, then
writes the rows it wrote, as they stood at its end, and the ledger rows of its runs,
into its own database in one transaction, at the very point of the fire
(:class:`_Copier`): what the account's fires read is what they read when the replay
ran every fire itself, row for row. The upstream work a signal fire needs
(``needs.meet_needs``: market data only) is made ahead the same way and written when
the fire asks for it.

A replay uses it on a SQLite file (the copy, ``<database>.ahead.db``, lies beside it),
with two CPUs or more, over :data:`MIN_SESSIONS` sessions or more, when it sends no
notification (:func:`usable`). Should the process ahead stop, the replay stops at the
next fire it needs from it (:class:`AheadStopped`), and replaying the range again goes
on from there.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection as DbConnection
from sqlalchemy import Engine, event, make_url

from services.common.database import SQLITE_BEGIN, driver_cursor, sqlite_file
from services.common.job_api import Outcome
from services.common.private_files import create_private_file
from services.common.settings import Settings
from services.orchestrator import needs
from services.orchestrator.jobs import REGISTRY, JobSpec
from services.orchestrator.ledger import DATABASE_ERROR, SIMULATE, RunRecord

if TYPE_CHECKING:
    from services.orchestrator.runner import JobRunner

logger = logging.getLogger(__name__)

#: the shortest replay (in sessions) worth a second process: it starts in about a second
MIN_SESSIONS = 20
_CLOSING_SECONDS = 5.0  # how long a closing process ahead may take before it is killed
#: the tables whose rows are never copied back: the migration's own
_NOT_LOGGED = ("alembic_version",)
_RUNS = "job_runs"
_CHANGES = "_changes_"  # the log table of a table: its name with this before it
#: a run named in a reason or an error, as ``needs`` names one: "data_collection run 12"
_RUN_MENTION = re.compile(rf"\b({'|'.join(map(re.escape, REGISTRY))}) run (\d+)\b")


@dataclass(frozen=True)
class Item:
    """What the process ahead does at ``at``: run ``job``'s fire (``run``), run it again
    as ``attempt`` (``retry``), or make present what the fire of ``job`` (not a
    market-data job) needs (``needs``)."""

    kind: str
    job: str
    at: datetime
    attempt: int = 0


@dataclass(frozen=True)
class Done:
    """An item done ahead: its record (``run``, ``retry``), or the upstream runs made
    for it by (job, trading date) (``needs``), and how far each log table then reached."""

    item: Item
    record: RunRecord | None = None
    produced: dict[tuple[str, date], RunRecord | str] = field(default_factory=dict)
    upto: dict[str, int] = field(default_factory=dict)


class AheadStopped(RuntimeError):
    """The process running the market-data fires ahead stopped before the replay."""


def runs_ahead(job: JobSpec) -> bool:
    return job.market_only


def usable(settings: Settings, sessions: int, *, wanted: bool | None = None) -> bool:
    """Whether a replay of ``sessions`` sessions into ``settings.database_url`` runs its
    market-data fires ahead (see the module's docstring); ``wanted`` True or False
    decides it where it can (a SQLite file, no notification)."""
    from services.common import notifications

    url = make_url(settings.database_url)
    possible = (url.get_backend_name() == "sqlite" and sqlite_file(url.database) is not None
                and notifications.current() is None and _needs_are_market_data())
    if wanted is not None:
        return possible and wanted
    return possible and _cpus() >= 2 and sessions >= MIN_SESSIONS


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _needs_are_market_data() -> bool:
    """Every need in the registry is market data whose own needs are (what the process
    ahead may run for a fire of the replay's)."""
    return all(REGISTRY[need.job].market_only for job in REGISTRY.values() for need in job.needs)


def item_of(job: JobSpec, at: datetime, attempt: int | None) -> Item | None:
    """What the process ahead does for the fire of ``job`` at ``at`` that the replay runs
    (``attempt``: the last attempt of a fire it runs again): the market-data fire itself,
    or the needs of another fire that has some; None: nothing."""
    if runs_ahead(job):
        return Item("run", job.name, at) if attempt is None else Item("retry", job.name, at, attempt + 1)
    return Item("needs", job.name, at) if job.needs else None


# --- the replay's side ---------------------------------------------------------------------


class AheadProcess:
    """The process ahead, started as the replay starts so that it is ready (its modules
    imported, its calendar and market built) when the replay has planned its items
    (:meth:`running`). It is a new interpreter (not a fork of this one, nor one that
    imports the caller's main module), on one end of a socket pair: what it logs comes
    through it too. Closing it stops it and removes the database copy."""

    def __init__(self, settings: Settings, database: Path, first: datetime) -> None:
        self.copy = database.with_name(database.name + ".ahead.db")
        self._database = database
        self._made = False  # the copy: made (and removed) under the replay's lock only
        self._abandoned = self._closed = False
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])  # what holds the ``services`` package
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self._process = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import child_main; child_main({theirs.fileno()})"],
            pass_fds=(theirs.fileno(),), env=environment, stdin=subprocess.DEVNULL)
        theirs.close()
        self._connection = Connection(ours.detach())
        # stored history is read from ORCHESTRATOR_HISTORY_DATABASE_URL there too (unset: refused, as here)
        self._connection.send((replace(settings, database_url=f"sqlite:///{self.copy}"), first, _levels()))

    @contextmanager
    def running(self, engine: Engine, items: list[Item]) -> Iterator[MarketAhead]:
        """The process doing ``items`` on a copy of ``engine``'s database as committed now."""
        _remove(self.copy)
        self._made = True
        _copy_database(self._database, self.copy)
        copier = _Copier(engine, self.copy, _log_writes(self.copy))
        market = MarketAhead(self._connection, copier)
        try:
            with suppress(OSError):  # it stopped: the first item waited for says so
                self._connection.send(items)
            yield market
        finally:
            self._abandoned = market.taken < len(items)  # the replay stopped first
            copier.close()
            self.close()  # under the replay's lock, which the copy is made and removed under

    def close(self) -> None:
        """Stop the process: told there is nothing more to do, and waited for while what
        it logged is handled here; killed at once if it was given nothing to do, or the
        replay stopped before its end (it may be far ahead). Closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._abandoned or not self._made:
            self._process.kill()
        with suppress(OSError):
            self._connection.send(None)
        deadline = time.monotonic() + _CLOSING_SECONDS
        with suppress(OSError, EOFError):
            while self._connection.poll(max(0.0, deadline - time.monotonic())):
                _relay(self._connection.recv())
        self._connection.close()
        try:
            self._process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._made:
            _remove(self.copy)


def _relay(message: Any) -> Any:
    """A record the process ahead logged is handled here as this process's own (None);
    any other message is returned."""
    if isinstance(message, logging.LogRecord):
        logging.getLogger(message.name).handle(message)
        return None
    return message


@contextmanager
def started(settings: Settings, first: datetime) -> Iterator[AheadProcess]:
    """The process ahead for a replay into ``settings.database_url`` (a SQLite file)
    from ``first``, started now, stopped at the end."""
    ahead = AheadProcess(settings, Path(str(sqlite_file(make_url(settings.database_url).database))), first)
    try:
        yield ahead
    finally:
        ahead.close()


class MarketAhead:
    """The replay's end of the process ahead at work: waits for each item, and writes
    what each wrote into the replay's database (:class:`_Copier`)."""

    def __init__(self, connection: Any, copier: _Copier) -> None:
        self._connection, self._copier = connection, copier
        self._pending: Done | None = None
        self.taken = 0  # items done ahead and taken

    def take(self, item: Item) -> RunRecord | None:
        """Item ``item`` done ahead: its rows written here, its record (with this
        database's run id)."""
        done = self._next(item)
        self._copier.copy(done.upto)
        return None if done.record is None else self._copier.here(done.record)

    def expect_needs(self, item: Item) -> None:
        """The needs of the fire ``item`` are made ahead: the fire's runner asks for
        them (:meth:`produce`) when it finds them missing."""
        self._pending = self._next(item)

    def settle_needs(self) -> None:
        """After the fire: what was made ahead for it and not asked for is written too."""
        if self._pending is not None:
            self._copier.copy(self._pending.upto)
            self._pending = None

    def produce(self, runner: JobRunner, upstream: JobSpec, day: date, origin: str) -> RunRecord | str:
        """``needs.produce_here``'s stand-in: the upstream run made ahead for the fire."""
        done = self._pending
        if done is None or (upstream.name, day) not in done.produced:
            return f"{upstream.name} for {day} was not run ahead"
        self._copier.copy(done.upto)
        produced = done.produced[(upstream.name, day)]
        return produced if isinstance(produced, str) else self._copier.here(produced)

    def _next(self, item: Item) -> Done:
        message = None
        with suppress(EOFError, OSError):
            while (message := _relay(self._connection.recv())) is None:
                pass
        if isinstance(message, Done) and message.item == item:
            self.taken += 1
            return message
        raise AheadStopped(message if isinstance(message, str) else
                           f"the market-data process stopped before {item.job} {item.at.isoformat()}")


def _levels() -> dict[str, int]:
    return {name: logging.getLogger(name or None).level for name in ("", "services")}


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".migrate.lock"):
        with suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def _copy_database(source: Path, target: Path) -> None:
    """``source`` as committed now (WAL included), into the new file ``target`` (0600)."""
    create_private_file(target)
    with _sqlite(source) as reading, _sqlite(target) as writing:
        reading.backup(writing)


@contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, timeout=30)
    try:
        yield connection
    finally:
        connection.close()


def _log_writes(path: Path) -> dict[str, _Table]:
    """Triggers in the database at ``path`` that log each row written to each table in
    the table's log table, in order (:class:`_Table`); the tables, by name. Its writers
    connect through :func:`logging_deletes_replaced`."""
    with _sqlite(path) as connection:
        tables = {name: _table(connection, name) for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT GLOB 'sqlite_*'")
            if name not in _NOT_LOGGED}
        for table in tables.values():
            connection.executescript(table.logging_ddl())
        connection.commit()
    return tables


@dataclass(frozen=True)
class _Table:
    """A table of the copy, and how its writes are logged. A row inserted is logged by
    its key (``i``): its values are read from the table when it is copied, unless a later
    change logged them as they were (``u``, ``d``: the row before it was updated or
    deleted, whole). The ledger's rows are logged whole as written (``w``)."""

    name: str
    columns: tuple[tuple[str, str], ...]  # (name, declared type)
    key: tuple[str, ...]

    @property
    def log(self) -> str:
        return f'"{_CHANGES}{self.name}"'

    @property
    def names(self) -> str:
        return _quoted(name for name, _ in self.columns)

    @property
    def keys(self) -> str:
        return _quoted(self.key)

    def logging_ddl(self) -> str:
        declared = ", ".join(f'"{name}" {kind}' for name, kind in self.columns)
        table, log = f'"{self.name}"', self.log
        create = f"CREATE TABLE {log} (_n INTEGER PRIMARY KEY, _op TEXT NOT NULL, {declared});\n"
        if self.name == _RUNS:
            new = _quoted(self.columns, "NEW.")
            return create + "".join(
                f'CREATE TRIGGER "_log_{event}_{self.name}" AFTER {event} ON {table} BEGIN '
                f"INSERT INTO {log} (_op, {self.names}) VALUES ('w', {new}); END;\n" for event in ("INSERT", "UPDATE"))
        old, changed = _quoted(self.columns, "OLD."), " OR ".join(f'NEW."{k}" IS NOT OLD."{k}"' for k in self.key)
        return (create +
                f'CREATE INDEX "{_CHANGES}{self.name}_later" ON {log} (_n) WHERE _op <> \'i\';\n'
                f'CREATE TRIGGER "_log_insert_{self.name}" AFTER INSERT ON {table} BEGIN '
                f"INSERT INTO {log} (_op, {self.keys}) VALUES ('i', {_quoted(self.key, 'NEW.')}); END;\n"
                f'CREATE TRIGGER "_log_rekey_{self.name}" BEFORE UPDATE ON {table} WHEN {changed} BEGIN '
                f"SELECT RAISE(ABORT, 'a key of {self.name} was updated: the replay cannot copy that'); END;\n"
                f'CREATE TRIGGER "_log_update_{self.name}" AFTER UPDATE ON {table} BEGIN '
                f"INSERT INTO {log} (_op, {self.names}) VALUES ('u', {old}); END;\n"
                f'CREATE TRIGGER "_log_delete_{self.name}" AFTER DELETE ON {table} BEGIN '
                f"INSERT INTO {log} (_op, {self.names}) VALUES ('d', {old}); END;\n")


def _on_conflict(table: _Table) -> str:
    """A copied row replaces the row of its key already here, if any."""
    updates = [f'"{name}" = excluded."{name}"' for name, _ in table.columns if name not in table.key]
    return f" ON CONFLICT ({table.keys}) " + (f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING")


def _quoted(names: Any, prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{name if isinstance(name, str) else name[0]}"' for name in names)


def _table(connection: sqlite3.Connection, name: str) -> _Table:
    info = connection.execute(f'PRAGMA table_info("{name}")').fetchall()  # cid, name, type, notnull, default, pk
    columns = tuple((str(row[1]), str(row[2])) for row in info)
    key = tuple(str(row[1]) for row in sorted((row for row in info if row[5]), key=lambda row: row[5]))
    return _Table(name, columns, key or tuple(name for name, _ in columns))


class _Copier:
    """Writes the rows logged ahead into the replay's database, each batch in one
    transaction (counted by ``database.write_generation``): rows as they were stored
    there, the ledger's under run ids of this database's own."""

    def __init__(self, engine: Engine, copy: Path, tables: dict[str, _Table]) -> None:
        self._tables = tables
        # each copy one transaction from its first statement: what it reads of the copy is
        # one state of it, whatever the process ahead commits meanwhile (WAL)
        self._connection: DbConnection = engine.connect().execution_options(**{SQLITE_BEGIN: "DEFERRED"})
        self._connection.connection.driver_connection.execute(  # type: ignore[union-attr]
            "ATTACH DATABASE ? AS ahead", (str(copy),))  # before the first transaction: not inside one
        self._copied: dict[str, int] = {}
        self._run_ids: dict[int, int] = {}  # the run ids ahead -> here, of the runs made ahead
        self._copied_from = 0  # the last run id the copy was made with
        if _RUNS in tables:
            self._copied_from = int(self._connection.exec_driver_sql(
                f'SELECT coalesce(max(id), 0) FROM ahead."{_RUNS}"').scalar_one())
            self._connection.commit()

    def here(self, record: RunRecord) -> RunRecord:
        """``record`` of a run made ahead, as this database has it."""
        return replace(record, run_id=self._id_here(record.run_id) or record.run_id,
                       reason=self._mentions_here(record.reason), error=self._mentions_here(record.error))

    def copy(self, upto: dict[str, int]) -> None:
        due = {name: (self._copied.get(name, 0), last) for name, last in upto.items()
               if last > self._copied.get(name, 0)}
        if not due:
            return
        with self._connection.begin():
            for name, (after, last) in due.items():
                if name == _RUNS:
                    self._copy_runs(self._tables[name], after, last)
                else:
                    self._copy_rows(self._tables[name], after, last)
        self._copied.update({name: last for name, (_, last) in due.items()})

    def _copy_rows(self, table: _Table, after: int, last: int) -> None:
        """Each row written ahead in ``after``..``last``, as it stood at ``last``: deleted
        here if it was deleted then, else written with its values then (the table's, or
        those a later change logged), in the order the rows were first written."""
        with driver_cursor(self._connection, f"SELECT 1 FROM ahead.{table.log} WHERE _op <> 'i' AND _n > ? LIMIT 1",
                           (after,)) as cursor:
            inserted_only = cursor.fetchone() is None
        if inserted_only:
            self._copy_inserted(table, after, last)
            return
        run = self._connection.exec_driver_sql
        touched, keys = f'temp."_touched_{table.name}"', table.keys
        on_key = " AND ".join(f'{{0}}."{k}" = t."{k}"' for k in table.key)
        run(f"CREATE TEMP TABLE IF NOT EXISTS {touched} ({keys}, first_n INTEGER, last_n INTEGER, later_n INTEGER, "
            f"PRIMARY KEY ({keys}))")
        run(f"DELETE FROM {touched}")
        run(f"INSERT INTO {touched} ({keys}, first_n, last_n) SELECT {keys}, min(_n), max(_n) FROM ahead.{table.log} "
            f"WHERE _n > ? AND _n <= ? GROUP BY {keys}", (after, last))
        run(f"UPDATE {touched} AS t SET later_n = l.n FROM (SELECT {keys}, min(_n) AS n FROM ahead.{table.log} "
            f"WHERE _op <> 'i' AND _n > ? GROUP BY {keys}) AS l WHERE {on_key.format('l')}", (last,))
        run(f'DELETE FROM main."{table.name}" WHERE ({keys}) IN (SELECT {_quoted(table.key, "t.")} FROM {touched} '
            f"AS t JOIN ahead.{table.log} AS lo ON lo._n = t.last_n WHERE lo._op = 'd')")
        values = ", ".join(f'CASE WHEN t.later_n IS NULL THEN s."{name}" ELSE o."{name}" END'
                           for name, _ in table.columns)
        run(f'INSERT INTO main."{table.name}" ({table.names}) SELECT {values} FROM {touched} AS t '
            f"JOIN ahead.{table.log} AS lo ON lo._n = t.last_n LEFT JOIN ahead.{table.log} AS o ON o._n = t.later_n "
            f'LEFT JOIN ahead."{table.name}" AS s ON t.later_n IS NULL AND {on_key.format("s")} '
            f"WHERE lo._op <> 'd' ORDER BY t.first_n{_on_conflict(table)}")

    def _copy_inserted(self, table: _Table, after: int, last: int) -> None:
        """:meth:`_copy_rows` where nothing was updated or deleted ahead since ``after``:
        each key logged in ``after``..``last`` was inserted once, and the table holds it
        as it was then."""
        on_key = " AND ".join(f's."{k}" = lo."{k}"' for k in table.key)
        with driver_cursor(self._connection,
                           f'INSERT INTO main."{table.name}" ({table.names}) SELECT {_quoted(table.columns, "s.")} '
                           f'FROM ahead.{table.log} AS lo JOIN ahead."{table.name}" AS s ON {on_key} '
                           f"WHERE lo._n > ? AND lo._n <= ? ORDER BY lo._n{_on_conflict(table)}", (after, last)):
            pass

    def _copy_runs(self, table: _Table, after: int, last: int) -> None:
        """The ledger rows written ahead, as they stand at ``last``: a run's first row
        here gets a run id of this database's (the replay writes the ledger too), and a
        run named in a reason or an error ("data_collection run 12 failed") is named by
        its id here."""
        names = [name for name, _ in table.columns if name != "id"]
        quoted = ", ".join(f'"{name}"' for name in names)
        latest: dict[int, tuple[Any, ...]] = {}
        for row in self._connection.exec_driver_sql(
                f"SELECT _op, id, {quoted} FROM ahead.{table.log} WHERE _n > ? AND _n <= ? ORDER BY _n", (after, last)):
            latest[int(row[1])] = tuple(row[2:])
        assignments = ", ".join(f'"{name}" = ?' for name in names)
        for run_id, values in latest.items():
            here = self._id_here(run_id)
            if here is not None:
                self._connection.exec_driver_sql(f'UPDATE main."{_RUNS}" SET {assignments} WHERE id = ?',
                                                 (*values, here))
            else:
                inserted = self._connection.exec_driver_sql(
                    f'INSERT INTO main."{_RUNS}" ({quoted}) VALUES ({", ".join("?" for _ in names)})', values)
                self._run_ids[run_id] = int(inserted.lastrowid)
        texts = [names.index("reason"), names.index("error")]
        for run_id, values in latest.items():  # every run of the batch has its id here by now
            told = [values[index] for index in texts]
            retold = [self._mentions_here(text) for text in told]
            if retold != told:
                self._connection.exec_driver_sql(f'UPDATE main."{_RUNS}" SET reason = ?, error = ? WHERE id = ?',
                                                 (*retold, self._id_here(run_id)))

    def _id_here(self, run_id: int) -> int | None:
        """The id here of run ``run_id`` of the copy (None: not copied yet): the rows the
        copy was made with keep theirs."""
        return run_id if run_id <= self._copied_from else self._run_ids.get(run_id)

    def _mentions_here(self, text: Any) -> Any:
        if not isinstance(text, str):
            return text
        return _RUN_MENTION.sub(lambda found: f"{found[1]} run {self._id_here(int(found[2])) or found[2]}", text)

    def close(self) -> None:
        with suppress(Exception):
            self._connection.rollback()
            self._connection.connection.driver_connection.execute("DETACH DATABASE ahead")  # type: ignore[union-attr]
        self._connection.close()


# --- the process ahead -------------------------------------------------------------------


def child_main(descriptor: int) -> None:
    """The process ahead (:class:`AheadProcess` starts it): gets ready, waits for its
    items, does them in order, each reported when done (:class:`Done`); stops after a
    fire that failed on the database, as the replay does. What stops it is reported as
    one line."""
    connection = _Sending(Connection(descriptor))
    try:
        settings, first, levels = connection.recv()
        _log_to(connection, levels)
        _ready_then_run(settings, first, connection)
    except BaseException as exc:  # noqa: BLE001 (told to the replay, which stops)
        with suppress(OSError):
            connection.send(f"the market-data process stopped: {type(exc).__name__}: {exc}")
    finally:
        connection.close()


class _Sending:
    """The process ahead's end of the socket: one message at a time, whichever thread
    sends it (a log record may come from the lease heartbeat's)."""

    def __init__(self, connection: Connection) -> None:
        self._connection, self._lock = connection, threading.Lock()

    def send(self, message: Any) -> None:
        with self._lock:
            self._connection.send(message)

    def put_nowait(self, record: logging.LogRecord) -> None:  # as ``QueueHandler`` puts a record
        self.send(record)

    def recv(self) -> Any:
        return self._connection.recv()

    def close(self) -> None:
        self._connection.close()


def _log_to(connection: _Sending, levels: dict[str, int]) -> None:
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(connection)]  # type: ignore[arg-type]
    root.setLevel(levels.get("", logging.WARNING))
    logging.getLogger("services").setLevel(levels.get("services", logging.NOTSET))


def _ready_then_run(settings: Settings, first: datetime, connection: _Sending) -> None:
    from services.common.clock import FixedClock
    from services.common.database import sole_writer
    from services.orchestrator.replay import setup_frozen, shared_market
    from services.orchestrator.runtime import Runtime

    clock = FixedClock(first)
    runtime = Runtime.create(settings, clock=clock)
    try:
        for job in runtime.all_jobs:
            if runs_ahead(job) and job.service_available():
                job.load_entry_point()  # imported while the replay plans
        market = shared_market(settings, clock, runtime)
        items: list[Item] | None = connection.recv()
        if not items:
            return
        engine: Engine = runtime.session_factory().kw["bind"]
        logging_deletes_replaced(engine)
        runner = runtime.runner(origin=SIMULATE)
        written = _LogPositions(engine)
        with setup_frozen(), sole_writer(engine):
            for item in items:
                clock.set(item.at)
                done = _do(runner, item)
                connection.send(replace(done, upto=written.now()))
                if done.record is not None and done.record.outcome is Outcome.FAILED and (
                        done.record.error or "").startswith(DATABASE_ERROR):
                    break
        del market
    finally:
        runtime.close()


def _do(runner: JobRunner, item: Item) -> Done:
    if item.kind == "run":
        return Done(item, runner.run_fire(item.job, item.at, origin=SIMULATE))
    if item.kind == "retry":
        return Done(item, runner.retry_fire(item.job, item.at, item.attempt, origin=SIMULATE))
    job = runner.job(item.job)
    trading_date = runner.triggers[item.job].trading_date(item.at)
    produced: dict[tuple[str, date], RunRecord | str] = {}
    if job.sessions_only and not runner.calendar.is_session(trading_date):
        return Done(item)  # the fire is skipped before its needs (``JobRunner._execute``)

    def recording(runner: JobRunner, upstream: JobSpec, day: date, origin: str) -> RunRecord | str:
        produced[(upstream.name, day)] = result = needs.produce_here(runner, upstream, day, origin)
        return result

    runner.produce_upstream = recording
    try:
        needs.meet_needs(runner, job, runner.context(item.job, trading_date, item.at, SIMULATE))
    finally:
        runner.produce_upstream = None
    return Done(item, produced=produced)


def logging_deletes_replaced(engine: Engine) -> None:
    """``engine``'s connections fire the delete triggers for the rows an ``INSERT OR
    REPLACE`` (or a REPLACE conflict clause) deletes, which SQLite fires only with
    recursive triggers on: those rows are logged as deleted too."""
    event.listen(engine, "connect", lambda connection, _record: connection.execute("PRAGMA recursive_triggers=ON"))
    engine.dispose()  # the connections opened so far: opened again with it


class _LogPositions:
    """How far each log table of the database has reached (one statement)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        with engine.connect() as connection:
            logs = [str(row[0]) for row in connection.exec_driver_sql(
                f"SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB '{_CHANGES}*'")]
        self._statement = " UNION ALL ".join(
            f"SELECT '{name.removeprefix(_CHANGES)}', coalesce(max(_n), 0) FROM \"{name}\"" for name in logs)

    def now(self) -> dict[str, int]:
        with self._engine.connect() as connection:
            return {str(row[0]): int(row[1]) for row in connection.exec_driver_sql(self._statement)}
