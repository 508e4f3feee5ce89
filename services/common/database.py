"""Database: engine, sessions, the declarative base and migrations (Alembic)."""

from __future__ import annotations

import collections
import fcntl
import functools
import itertools
import logging
import os
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

from sqlalchemy import Date, DateTime, Engine, Table, create_engine, event, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from services.common.private_files import create_private_file, make_private_dir, open_private
from services.common.setting_values import redact_passwords
from services.common.settings import SETTING_FIELDS, ConfigurationError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_PG_MIGRATION_LOCK = 727_001  # advisory lock id: one migrator at a time
DEFAULT_CONNECT_TIMEOUT = int(SETTING_FIELDS["db_connect_timeout_seconds"].metadata["default"])
DEFAULT_STATEMENT_TIMEOUT = int(SETTING_FIELDS["db_statement_timeout_seconds"].metadata["default"])


class Base(DeclarativeBase):
    """Declarative base of every model."""

    __table__: ClassVar[Table]  # every model maps one table (SQLAlchemy types it as any FromClause)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored in UTC on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; expected an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def sqlite_file(database: str | None) -> str | None:
    """The file a SQLite URL's database names (None: in memory), a URI filename
    (``file:/path?mode=ro`` with ``uri=true``) included."""
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        parts = urllib.parse.urlsplit(database)
        memory = parts.path in ("", ":memory:") or "mode=memory" in parts.query
        return None if memory else parts.path
    return database


def create_db_engine(url: str, *, connect_timeout_seconds: int = DEFAULT_CONNECT_TIMEOUT,
                     statement_timeout_seconds: int = DEFAULT_STATEMENT_TIMEOUT) -> Engine:
    """An engine for ``url``; SQLite gets its directory and file (owner only), WAL and a
    busy timeout. Server connections are checked before use (a file has no connection to
    lose) and have a connect and a statement timeout (0: none)."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": parsed.get_backend_name() != "sqlite"}
    if parsed.get_backend_name() == "sqlite":
        database = sqlite_file(parsed.database)
        if database:
            directory = Path(database).parent
            try:
                make_private_dir(directory)
            except OSError as exc:
                raise ConfigurationError(
                    f"DATABASE_URL: cannot create the directory {directory} ({exc.strerror}); "
                    "expected a writable path") from None
            _create_sqlite_file(database)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["connect_args"] = _server_connect_args(parsed, connect_timeout_seconds, statement_timeout_seconds)
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: a process crash loses nothing committed
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MB of page cache for bulk writes
    cursor.close()


#: a connection execution option: how its SQLite transaction begins (``IMMEDIATE`` or
#: ``DEFERRED``); without it the driver begins one just before the first write, as always
SQLITE_BEGIN = "sqlite_begin"
_PG_ACCOUNT_LOCKS = 727_003  # advisory lock space: one account transaction per account at a time


def _sqlite_begin(connection: Any) -> None:
    """The driver opens no transaction for a read: each SELECT before the first write
    would see its own state. A transaction that must read one state begins at its first
    statement: ``BEGIN DEFERRED`` for a read-only snapshot (WAL), ``BEGIN IMMEDIATE``
    for an account transaction (the write lock from the start: a deferred transaction
    that read and then writes fails at once, 'database is locked', when another
    connection committed in between). Other transactions begin as the driver begins
    them, at their first write."""
    mode = connection.get_execution_options().get(SQLITE_BEGIN)
    if mode in ("IMMEDIATE", "DEFERRED"):
        connection.exec_driver_sql(f"BEGIN {mode}")


#: a connection execution option: its commits write nothing :func:`write_generation`
#: counts (the run ledger's rows: they change nothing a job reads)
UNCOUNTED = "uncounted_commits"
_sole_writers: WeakKeyDictionary[Engine, list[int]] = WeakKeyDictionary()
_stretches = itertools.count(1)  # each sole_writer stretch's own number: counts never meet across two


@contextmanager
def sole_writer(engine: Engine) -> Iterator[None]:
    """While this process alone writes ``engine``'s database (a replay holds its replay
    lock), count the commits on it (:func:`write_generation`)."""
    generation = [next(_stretches), 0]  # the stretch, and its commits

    def committed(connection: Any) -> None:
        if not connection.get_execution_options().get(UNCOUNTED):
            generation[1] += 1

    event.listen(engine, "commit", committed)
    _sole_writers[engine] = generation
    try:
        yield
    finally:
        _sole_writers.pop(engine, None)
        event.remove(engine, "commit", committed)


def write_generation(engine: Engine) -> tuple[int, int] | None:
    """Which stretch of :func:`sole_writer` this is and how many commits (but
    :data:`UNCOUNTED` ones) this process made on ``engine`` in it: what it read is still
    what is stored while the pair is the same. None when others may write."""
    generation = _sole_writers.get(engine)
    return None if generation is None else (generation[0], generation[1])


@contextmanager
def account_transaction(session_factory: sessionmaker[Session], account_key: str, *,
                        immediate: bool = True) -> Iterator[Any]:
    """A transaction (its connection) in which one account is read and written by one
    writer at a time, committed at the end: no other account transaction of the same
    account commits between its statements, so all it reads is one committed state.

    SQLite: ``BEGIN IMMEDIATE``, the database's write lock from the first statement
    (``immediate=False``: from the first write, for an account whose state is read from
    a broker over the network, so that no HTTP call holds the whole database's lock).
    PostgreSQL: a transaction-scoped advisory lock on the account, taken before any
    read; after it, each statement sees what the previous holder committed and nothing
    more can be committed to the account until this transaction ends."""
    with session_factory.begin() as session:
        options: dict[str, Any] | None = {SQLITE_BEGIN: "IMMEDIATE"} if immediate else None
        connection = session.connection(execution_options=options)
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(current_schema() || '/' || "
                                    ":account))"),
                               {"space": _PG_ACCOUNT_LOCKS, "account": account_key})
        yield connection


@contextmanager
def snapshot_transaction(session_factory: sessionmaker[Session]) -> Iterator[Any]:
    """A read-only transaction (its connection) that sees one committed state from its
    first read to its end: SQLite's deferred ``BEGIN`` in WAL mode, PostgreSQL's
    ``REPEATABLE READ``. Never blocks a writer, nor waits for one."""
    with session_factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            connection = session.connection(execution_options={"isolation_level": "REPEATABLE READ",
                                                               "postgresql_readonly": True})
        else:
            deferred: dict[str, Any] = {SQLITE_BEGIN: "DEFERRED"}
            connection = session.connection(execution_options=deferred)
        yield connection
        session.rollback()


def _create_sqlite_file(database: str) -> None:
    """The database file, made 0600 before SQLite opens it (its -wal and -shm files take
    the database file's mode)."""
    try:
        create_private_file(database)
    except OSError as exc:
        raise ConfigurationError(f"DATABASE_URL: cannot create the database file {database} ({exc.strerror}); "
                                 "expected a writable path") from None


def _server_connect_args(url: URL, connect_timeout_seconds: int, statement_timeout_seconds: int) -> dict[str, Any]:
    """libpq's connect timeout, and the statement timeout as a startup option (no round
    trip): put before the URL's own ``options``, which therefore keep the last word, as
    does a ``connect_timeout`` in the URL."""
    options = url.query.get("options", "")
    options = " ".join(options) if isinstance(options, tuple) else options
    arguments: dict[str, Any] = {
        "options": f"-c statement_timeout={statement_timeout_seconds * 1000} {options}".strip()}
    if "connect_timeout" not in url.query:
        arguments["connect_timeout"] = connect_timeout_seconds
    return arguments


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, *, head_schema: bool = True) -> str | None:
    """Apply every migration up to head; returns the revision now in force.

    A database already at head is only read. A new SQLite database (no table yet) is
    created at head from the schema the migrations build there
    (:mod:`services.migrations.sqlite_head`), in one transaction and without importing
    Alembic; ``head_schema=False`` runs the migrations instead. Concurrent migrators
    take turns: a PostgreSQL advisory lock, or a lock file beside the SQLite database,
    taken before the first connection: that one turns a new file to WAL, which two
    connections cannot do at once (SQLite answers the second 'database is locked'
    without waiting out its busy timeout).
    """
    from services.migrations import HEAD

    with _sqlite_migration_lock(engine):
        if _stored_revision(engine) == HEAD:
            return HEAD
        if head_schema and _create_sqlite_head(engine, HEAD):
            return HEAD
        from alembic import command

        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # no statement timeout: building an index of a large table, or waiting for
                # another migrator, may take longer than any statement of a job
                connection.execute(text("SET LOCAL statement_timeout = 0"))
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_MIGRATION_LOCK})
            command.upgrade(_alembic_config(connection), "head")
        return current_revision(engine)


def _create_sqlite_head(engine: Engine, head: str) -> bool:
    """Create the schema at ``head`` on a SQLite database that has no table yet, in one
    transaction; False (nothing done) for any other database, or if the stored schema
    is of another revision."""
    if engine.dialect.name != "sqlite":
        return False
    from services.migrations import sqlite_head

    if sqlite_head.REVISION != head:
        return False
    with engine.connect() as connection:
        connection.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})  # DDL inside the transaction too
        with connection.begin():
            if connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar():
                return False
            for statement in sqlite_head.STATEMENTS:
                connection.exec_driver_sql(statement)
            connection.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES (?)", (head,))
    return True


def sqlite_schema(connection: Any) -> list[str]:
    """The statements that create a SQLite database's schema as it stands, as SQLite
    stores them: tables, then indexes, views and triggers, each by name."""
    rows = connection.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND substr(name, 1, 7) != 'sqlite_'"
    ).all()
    order = {"table": 0, "index": 1, "view": 2, "trigger": 3}
    return [sql for _, _, sql in sorted(rows, key=lambda row: (order[row[0]], row[1]))]


SQLITE_HEAD_MODULE = MIGRATIONS_DIR / "sqlite_head.py"


def write_sqlite_head(path: Path = SQLITE_HEAD_MODULE) -> None:
    """Write :mod:`services.migrations.sqlite_head` from the migrations: run them on a
    new SQLite database and store its schema (after adding a migration)."""
    import tempfile

    from services.migrations import HEAD

    with tempfile.TemporaryDirectory(prefix="krx-schema-") as directory:
        engine = create_db_engine(f"sqlite:///{Path(directory) / 'schema.db'}")
        try:
            migrate(engine, head_schema=False)
            with engine.connect() as connection:
                statements = sqlite_schema(connection)
        finally:
            engine.dispose()
    body = "".join("    (\n" + "".join(f"        {piece!r}\n" for piece in _pieces(statement)) + "    ),\n"
                   for statement in statements)
    path.write_text(_SQLITE_HEAD_TEMPLATE.format(revision=HEAD, statements=body), encoding="utf-8")


def _pieces(text: str, width: int = 96) -> list[str]:
    """``text`` cut into short pieces (at its line ends, then at spaces) that join back to it."""
    pieces = []
    for line in text.splitlines(keepends=True):
        while len(line) > width:
            cut = line.rfind(" ", 0, width) + 1 or width
            pieces.append(line[:cut])
            line = line[cut:]
        pieces.append(line)
    return pieces


_SQLITE_HEAD_TEMPLATE = '''"""The schema the migrations build on SQLite at :data:`REVISION`, as SQLite stores it.

``migrate`` creates a new SQLite database from it, in one transaction, instead of
importing Alembic and running every migration (a fifth of a second of a first
``start``). Generated; tests/common/test_sqlite_head.py checks it against the
migrations. After adding a migration, write it again:

    python -c "from services.common.database import write_sqlite_head; write_sqlite_head()"
"""

REVISION = "{revision}"

STATEMENTS: tuple[str, ...] = (
{statements})
'''


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    database = sqlite_file(engine.url.database) if engine.url.get_backend_name() == "sqlite" else None
    if not database:
        yield
        return
    with os.fdopen(open_private(f"{database}.migrate.lock", os.O_RDWR | os.O_APPEND), "a+") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _stored_revision(engine: Engine) -> str | None:
    """The revision recorded in ``alembic_version`` (None on a new database)."""
    from sqlalchemy import inspect

    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def upsert(connection: Any, table: Any, rows: list[dict[str, Any]], key_columns: list[str],
           keep: list[str] | None = None, update_where: UpdateWhere | None = None) -> int:
    """Bulk ``INSERT ... ON CONFLICT (keys) DO UPDATE`` (SQLite and PostgreSQL).

    Idempotent: writing the same rows again leaves the table as it was. Columns in
    ``keep`` keep their first value (e.g. when a date was first collected). A stored
    row is replaced only where ``update_where(table, excluded)`` holds, if given (a
    module-level function: the statement is built once per shape).
    """
    if not rows:
        return 0
    names = tuple(c.name for c in table.columns if c.name not in keep) if keep else None
    statement = _cached_upsert_statement(connection.dialect.name, table, tuple(key_columns), names, update_where)
    connection.execute(statement, rows)
    return len(rows)


#: ``(table, excluded) -> condition``: when an upsert replaces the stored row
UpdateWhere = Callable[[Any, Any], Any]


@functools.lru_cache(maxsize=128)
def _cached_upsert_statement(dialect: str, table: Any, key_columns: tuple[str, ...],
                             update_only: tuple[str, ...] | None, update_where: UpdateWhere | None = None) -> Any:
    """:func:`upsert`'s statement, built once per table and shape (jobs upsert at every tick)."""
    return _upsert_statement(dialect, table, list(key_columns), update_where=update_where,
                             update_only=None if update_only is None else list(update_only))


@contextmanager
def driver_cursor(connection: Any, sql: str, arguments: Any) -> Iterator[Any]:
    """The driver's cursor, ``sql`` run on it with ``arguments`` (a list of them: once
    for each), in the connection's transaction; closed after the block.

    On SQLite the statement goes straight to the driver's own cursor, without
    SQLAlchemy's execution context and result objects, which cost a replay's tens of
    thousands of small statements as much again as SQLite's own work: the transaction
    begins as SQLAlchemy's autobegin begins it (its ``begin`` event, which takes
    :data:`SQLITE_BEGIN`), and a driver error is raised as SQLAlchemy raises it
    (``IntegrityError``, ``OperationalError``; a lost connection, or an interrupt during
    the statement, invalidates the connection). A connection SQLAlchemy would refuse
    (closed, invalidated, in a transaction that failed), and other backends, run it
    through ``exec_driver_sql``: SQLAlchemy's own checks and handling of a lost
    connection."""
    if connection.dialect.name != "sqlite" or not _usable_as_it_is(connection):
        result = connection.exec_driver_sql(sql, arguments)
        try:  # a write without rows has its cursor closed already: its count is the result's
            yield result.cursor if result.returns_rows else result
        finally:
            result.close()
        return
    if not connection.in_transaction():
        connection.begin()  # SQLAlchemy's autobegin, as before any statement it runs
    many, error = isinstance(arguments, list), connection.dialect.loaded_dbapi.Error
    cursor = None
    try:
        try:
            cursor = connection.connection.driver_connection.cursor()
            if many:
                cursor.executemany(sql, arguments)
            else:
                cursor.execute(sql, arguments)
        except error as exc:
            lost = connection.dialect.is_disconnect(exc, connection.connection, cursor)
            if lost:
                connection.invalidate(exc)
            raise DBAPIError.instance(sql, arguments, exc, error, connection_invalidated=lost,
                                      dialect=connection.dialect, ismulti=many) from exc
        except BaseException as exc:
            if not isinstance(exc, Exception):  # KeyboardInterrupt: the statement's state is unknown
                connection.invalidate(exc)
            raise
        yield cursor
    finally:
        if cursor is not None:
            with suppress(error):  # a connection lost meanwhile has no cursor left to close
                cursor.close()


def _usable_as_it_is(connection: Any) -> bool:
    """Whether SQLAlchemy would run a statement on ``connection`` without first raising
    or reconnecting: open, valid, and not in a transaction that failed."""
    if connection.closed or connection.invalidated:
        return False
    transaction = connection.get_nested_transaction() or connection.get_transaction()
    return transaction is None or bool(transaction.is_active)


def fetch_columns(connection: Any, sql: str, params: dict[str, Any], names: list[str]) -> dict[str, list[Any]]:
    """:func:`fetch_rows` as columns (lists), named ``names``."""
    rows = fetch_rows(connection, sql, params)
    if not rows:
        return {name: [] for name in names}
    return dict(zip(names, (list(column) for column in zip(*rows))))


def fetch_rows(connection: Any, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` (named ``:params``; a list value expands for ``IN``) with the driver's
    own cursor: plain tuples, no per-row result objects, for reads of hundreds of
    thousands of rows. Values are what the driver gives (SQLite dates are ISO text)."""
    from sqlalchemy import BindParameter, bindparam, text

    binds: list[BindParameter[Any]] = [bindparam(name, value, expanding=isinstance(value, (list, tuple)))
                                       for name, value in params.items()]
    compiled = text(sql).bindparams(*binds).compile(dialect=connection.dialect,
                                                   compile_kwargs={"render_postcompile": True})
    if compiled.positional and compiled.positiontup is not None:  # a positional compile lists its names
        arguments: Any = tuple(compiled.params[name] for name in compiled.positiontup)
    else:
        arguments = compiled.params
    with driver_cursor(connection, str(compiled), arguments) as cursor:
        rows: list[tuple[Any, ...]] = cursor.fetchall()  # the driver's own rows
        return rows


def fetch_compiled(connection: Any, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of a Core ``statement`` read thousands of times (a replay's fingerprints):
    compiled once per dialect, its parameters bound as SQLAlchemy binds them, and run
    with the driver's cursor, without SQLAlchemy's per-execution cache lookup and
    result objects. Values are what the driver gives (SQLite dates are ISO text)."""
    prepared = _prepared(connection.dialect, statement)
    with driver_cursor(connection, prepared.sql, prepared.arguments(params)) as cursor:
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def fetch_typed(connection: Any, statement: Any, params: dict[str, Any]) -> list[Any]:
    """The rows of a Core ``statement`` read at every fire (an account's, a session's
    market data), as SQLAlchemy gives them, run as :func:`fetch_compiled` runs it: each
    value through its type's result processor, each row a named tuple (``row.ticker``;
    by position too)."""
    prepared = _prepared(connection.dialect, statement)
    with driver_cursor(connection, prepared.sql, prepared.arguments(params)) as cursor:
        shape = _row_shape(connection.dialect, statement, tuple(column[1] for column in cursor.description))
        raw = cursor.fetchall()
    make, processors = shape
    if not any(processors):
        return [make(row) for row in raw]
    return [make(value if process is None else process(value) for process, value in zip(processors, row))
            for row in raw]


@functools.lru_cache(maxsize=64)
def _row_shape(dialect: Any, statement: Any, types: tuple[Any, ...]) -> tuple[Callable[[Any], Any],
                                                                               tuple[Any, ...]]:
    """How :func:`fetch_typed` makes a row of ``statement``: its named tuple's maker, and
    each column's result processor (``types``: the driver's column types)."""
    compiled = _prepared(dialect, statement).compiled
    columns = compiled._result_columns
    row = collections.namedtuple("Row", [column.keyname for column in columns], rename=True)  # type: ignore[misc]
    processors = tuple(column.type._cached_result_processor(dialect, kind) for column, kind in zip(columns, types))
    return row._make, processors


def execute_compiled(connection: Any, statement: Any, rows: Sequence[dict[str, Any]]) -> int:
    """A Core write ``statement`` run thousands of times (a replay's ledger rows), as
    :func:`fetch_compiled` runs a read: for each of ``rows`` (the driver's
    ``executemany`` for more than one); how many rows it changed."""
    prepared = _prepared(connection.dialect, statement)
    bound: dict[tuple[Any, ...], Any] = {}  # rows repeat their moments and dates: each bound once
    arguments = [prepared.arguments(row, bound) for row in rows]
    with driver_cursor(connection, prepared.sql, arguments if len(arguments) != 1 else arguments[0]) as cursor:
        return int(cursor.rowcount)


_MOMENTS = (datetime, date)  # the types :meth:`_Prepared.arguments` binds once per value


@dataclass(frozen=True)
class _Prepared:
    compiled: Any  # SQLAlchemy's compiled statement
    sql: str
    order: tuple[str, ...] | None  # the parameters' order (positional drivers), else None: named
    defaults: dict[str, Any]  # the statement's own values (its literals, limits), bound
    processors: dict[str, Callable[[Any], Any]]
    required: frozenset[str]  # the parameters without a value of their own

    def bind(self, name: str, value: Any) -> Any:
        """``value`` as SQLAlchemy binds it: through the type's processor, None included
        (a JSON column's None is JSON ``null``)."""
        process = self.processors.get(name)
        return value if process is None else process(value)

    @functools.cached_property
    def _steps(self) -> tuple[tuple[str, Callable[[Any], Any] | None, bool, Any], ...]:
        """Per positional parameter: its name, processor, and whether it has a default."""
        assert self.order is not None
        return tuple((name, self.processors.get(name), name not in self.required, self.defaults.get(name))
                     for name in self.order)

    def arguments(self, params: dict[str, Any], bound: dict[tuple[Any, ...], Any] | None = None) -> Any:
        """``params`` bound, as the driver takes them (a tuple for a positional one);
        ``bound``: the dates and datetimes bound so far, by processor, value, zone and
        fold (a processor gives the same result for the same four)."""
        if self.order is None:
            self._check(params)
            return {**self.defaults, **{name: self.bind(name, value) for name, value in params.items()}}
        values = []
        for name, process, has_default, default in self._steps:  # a replay binds thousands of rows
            if name in params:
                value = params[name]
                if process is None:
                    values.append(value)
                elif bound is not None and type(value) in _MOMENTS:
                    # equal datetimes may differ in zone or fold (a processor may keep either)
                    key = (process, value, getattr(value, "tzinfo", None), getattr(value, "fold", 0))
                    if key not in bound:
                        bound[key] = process(value)
                    values.append(bound[key])
                else:
                    values.append(process(value))
            elif has_default:
                values.append(default)
            else:
                raise ValueError(f"no value for the parameters {sorted(self.required.difference(params))}")
        return tuple(values)

    def _check(self, params: dict[str, Any]) -> None:
        if not self.required.issubset(params):
            raise ValueError(f"no value for the parameters {sorted(self.required.difference(params))}")


@functools.lru_cache(maxsize=128)
def _prepared(dialect: Any, statement: Any) -> _Prepared:
    compiled = statement.compile(dialect=dialect)
    if compiled.post_compile_params:
        raise ValueError("fetch_compiled takes no expanding IN: its SQL would change with each list")
    processors = dict(compiled._bind_processors)
    required = frozenset(bind.key for bind in compiled.binds.values() if bind.required)
    given = compiled.construct_params(dict.fromkeys(required))
    defaults = {name: (processors[name](value) if name in processors and name not in required else value)
                for name, value in given.items()}
    order = tuple(compiled.positiontup) if compiled.positional else None
    return _Prepared(compiled, str(compiled), order, defaults, processors, required)


def python_values(values: Any) -> list[Any]:
    """A column (a pandas Series, a numpy array or a list) as plain Python values for
    :func:`upsert_columns`: NaN becomes None (NULL on every backend), datetime64 becomes
    ``date``, no numpy scalars. A list is taken as it is."""
    if isinstance(values, list):
        return values
    import numpy as np
    import pandas as pd

    if isinstance(values, np.ndarray) and values.dtype.kind in "iub":
        return list(values.tolist())
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return _floats_or_none(values)
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(series):
        return [value.date() for value in series]
    if pd.api.types.is_float_dtype(series):
        return _floats_or_none(series.to_numpy(dtype=float))
    return list(series.tolist())


def _floats_or_none(values: Any) -> list[float | None]:
    import numpy as np

    floats = np.asarray(values, dtype=float)
    missing = np.isnan(floats)
    if not missing.any():
        return list(floats.tolist())
    return [None if gap else value for value, gap in zip(floats.tolist(), missing.tolist())]


def upsert_columns(connection: Any, table: Any, columns: dict[str, list[Any]],
                   key_columns: list[str], *, update_where: Any = None) -> int:
    """:func:`upsert` for large batches given as plain column lists (Python values).

    The statement is compiled once by SQLAlchemy for the connection's dialect and
    sent with the driver's ``executemany``: no per-row ORM or parameter processing.
    Values must already be what the driver stores (int, float, str, bool, date).
    """
    names = list(columns)
    count = len(columns[names[0]]) if names else 0
    if not count:
        return 0
    if connection.dialect.name == "sqlite":
        columns = {name: _sqlite_dates(values) if isinstance(table.c[name].type, Date) else values
                   for name, values in columns.items()}
    sql, positions = _compiled_upsert(connection.dialect, table, tuple(key_columns), tuple(names), update_where)
    if positions is not None:
        parameters: list[Any] = list(zip(*(columns[name] for name in positions)))
    else:
        parameters = [dict(zip(names, values)) for values in zip(*(columns[n] for n in names))]
    with driver_cursor(connection, sql, parameters):
        return count


@functools.lru_cache(maxsize=64)
def _compiled_upsert(dialect: Any, table: Any, key_columns: tuple[str, ...], names: tuple[str, ...],
                     update_where: Any) -> tuple[str, tuple[str, ...] | None]:
    """:func:`upsert_columns`'s SQL for the dialect, compiled once per shape, and the
    order of its positional parameters (None: named)."""
    statement = _upsert_statement(dialect.name, table, list(key_columns), list(names), update_where)
    compiled = statement.compile(dialect=dialect)
    return str(compiled), (tuple(compiled.positiontup) if compiled.positional else None)


def database_error_line(exc: BaseException) -> str:
    """What the database said, in one line: the driver's message without SQLAlchemy's
    statement and parameters (they go to the log, not to the ledger or an alert), and
    without a password (a driver may quote its connection string)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return redact_passwords(text.splitlines()[0]) if text else type(exc).__name__


def dialect_insert(connection: Any, table: Any) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the connection's dialect."""
    return dialect_insert_for(connection.dialect.name, table)


def dialect_insert_for(dialect: str, table: Any) -> Any:
    """:func:`dialect_insert` for the dialect named ``dialect``."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table)
    raise ConfigurationError(  # DATABASE_URL is validated to these two; a direct caller may not be
        f"database {dialect} is not supported; expected sqlite or postgresql")


def _sqlite_dates(values: list[Any]) -> list[Any]:
    """Dates as SQLAlchemy's SQLite ``Date`` stores them (ISO text), converted once each."""
    text_of = {value: value.isoformat() for value in set(values) if value is not None}
    return [text_of.get(value) for value in values]


def _upsert_statement(dialect: str, table: Any, key_columns: list[str],
                      names: list[str] | None = None, update_where: Any = None,
                      update_only: list[str] | None = None) -> Any:
    statement = dialect_insert_for(dialect, table)
    if names is not None:
        from sqlalchemy import bindparam

        statement = statement.values({name: bindparam(name) for name in names})
    updates = {c.name: statement.excluded[c.name] for c in table.columns
               if c.name not in key_columns and (names is None or c.name in names)
               and (update_only is None or c.name in update_only)}
    if not updates:
        return statement.on_conflict_do_nothing(index_elements=key_columns)
    where = update_where(table, statement.excluded) if update_where is not None else None
    return statement.on_conflict_do_update(index_elements=key_columns, set_=updates, where=where)
