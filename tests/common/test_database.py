"""Migrations build exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import services.data_collector.models  # noqa: F401  (registers the tables)
import services.indicator_calculator.models  # noqa: F401
import services.orchestrator.models  # noqa: F401
import services.risk_manager.models  # noqa: F401
import services.trading_engine.models  # noqa: F401
import services.watchlist_manager.models  # noqa: F401
from services.common.database import Base, current_revision, head_revision, migrate
from services.orchestrator.models import JobRun
from tests.conftest import subprocess_env, terminate_backend


def test_migrations_create_exactly_the_models_schema(migrated_engine: Any) -> None:
    with migrated_engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_migrating_twice_is_a_no_op_at_head(migrated_engine: Any) -> None:
    assert migrate(migrated_engine) == head_revision() == current_revision(migrated_engine)


def test_times_are_stored_in_utc_and_read_back_aware(session_factory: Any) -> None:
    seoul = datetime(2026, 11, 19, 17, 0, tzinfo=ZoneInfo("Asia/Seoul"))
    with session_factory() as session:
        session.add(JobRun(job_name="j", user_id="u", scheduled_for=seoul, trading_date=None,
                           origin="manual", dry_run=True, outcome="success", started_at=seoul,
                           host="h", pid=1))
        session.commit()
    with session_factory() as session:
        row = session.query(JobRun).one()
    assert row.scheduled_for == seoul
    assert row.scheduled_for.utcoffset() == timedelta(0)
    assert row.scheduled_for == datetime(2026, 11, 19, 8, 0, tzinfo=UTC)


def test_a_sqlite_migrator_takes_its_lock_before_its_first_connection(tmp_path, monkeypatch) -> None:
    # The first connection to a new file turns it to WAL; two at once, and SQLite answers
    # one 'database is locked' at once, whatever the busy timeout: migrators take turns
    # from before their first connection, at head too.
    import fcntl

    from sqlalchemy import event

    from services.common import database
    from services.common.database import create_db_engine

    events: list[str] = []
    real_flock = fcntl.flock

    def flock(file: Any, operation: int) -> None:
        events.append("unlock" if operation == fcntl.LOCK_UN else "lock")
        real_flock(file, operation)

    monkeypatch.setattr(database.fcntl, "flock", flock)
    engine = create_db_engine(f"sqlite:///{tmp_path / 'new.db'}")
    event.listen(engine, "connect", lambda *_: events.append("connect"))
    try:
        migrate(engine)
        engine.dispose()  # the next call connects anew
        migrate(engine)
    finally:
        engine.dispose()
    assert events == ["lock", "connect", "unlock", "lock", "connect", "unlock"]


def test_concurrent_migrations_of_a_fresh_sqlite_database_all_succeed(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = subprocess_env(PYTHONPATH=str(repo), DATABASE_URL=f"sqlite:///{tmp_path / 'race.db'}")
    processes = [subprocess.Popen([sys.executable, "-m", "services.orchestrator.main", "migrate"],
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for _ in range(4)]
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs


def test_the_declared_head_is_alembics_head() -> None:
    from services.migrations import HEAD

    assert HEAD == head_revision()


def test_an_unsupported_database_is_refused_with_one_line() -> None:
    from types import SimpleNamespace

    import pytest

    from services.common.database import dialect_insert
    from services.common.settings import ConfigurationError
    from services.orchestrator.models import JobRun

    mysql_connection = SimpleNamespace(dialect=SimpleNamespace(name="mysql"))
    with pytest.raises(ConfigurationError, match="^database mysql is not supported; expected sqlite or postgresql$"):
        dialect_insert(mysql_connection, JobRun.__table__)


def test_a_uri_named_sqlite_database_is_migrated_with_its_lock_file_beside_it(tmp_path, monkeypatch) -> None:
    from services.common.database import create_db_engine

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data" / "uri.db"
    path.parent.mkdir()
    engine = create_db_engine(f"sqlite:///file:{path}?uri=true")
    assert migrate(engine) == head_revision()
    engine.dispose()
    assert (tmp_path / "data" / "uri.db.migrate.lock").exists()
    assert not (tmp_path / "file:").exists()  # not a relative directory named after the URI


def test_the_statement_timeout_ends_a_long_statement_and_keeps_the_urls_options(database_url: str) -> None:
    import pytest
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from services.common.database import create_db_engine, database_error_line

    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no statement timeout (its busy timeout bounds lock waits)")
    engine = create_db_engine(database_url, statement_timeout_seconds=1)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "1s"
            schema = make_url(database_url).query["options"].removeprefix("-csearch_path=")
            assert connection.execute(text("SHOW search_path")).scalar() == schema
        with pytest.raises(OperationalError) as error, engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(30)"))
        assert database_error_line(error.value) == "canceling statement due to statement timeout"
    finally:
        engine.dispose()


def test_a_read_on_a_killed_connection_is_a_database_error(database_url: str) -> None:
    import pytest
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    from services.common.database import create_db_engine, database_error_line, fetch_rows

    if not database_url.startswith("postgresql"):
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    engine, admin = create_db_engine(database_url), create_engine(database_url)
    try:
        with pytest.raises(OperationalError) as error, engine.connect() as connection:
            [(pid,)] = fetch_rows(connection, "SELECT pg_backend_pid()", {})
            terminate_backend(admin, pid)
            fetch_rows(connection, "SELECT 1", {})
        assert database_error_line(error.value) == "terminating connection due to administrator command"
        with engine.connect() as connection:  # the pool gave the dead connection up
            assert fetch_rows(connection, "SELECT 1", {}) == [(1,)]
    finally:
        engine.dispose()
        admin.dispose()


def test_the_pools_reset_of_a_killed_connection_is_one_log_line(database_url: str, monkeypatch,
                                                                root_logging: None) -> None:
    import io
    import sys

    import pytest
    from sqlalchemy import create_engine

    from services.common.database import create_db_engine
    from services.common.logging_setup import configure_logging

    if not database_url.startswith("postgresql"):
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging("INFO")
    engine, admin = create_db_engine(database_url), create_engine(database_url)
    try:
        raw = engine.raw_connection()  # the driver's connection, as a checkout of the pool
        cursor = raw.cursor()
        cursor.execute("SELECT pg_backend_pid()")  # a transaction is open
        terminate_backend(admin, cursor.fetchone()[0])
        raw.close()  # back to the pool, whose rollback finds the connection dead
    finally:
        engine.dispose()
        admin.dispose()
    assert [line.split(" ", 1)[1] for line in stderr.getvalue().splitlines()] == [
        "ERROR   sqlalchemy.pool.impl.QueuePool: Exception during reset or similar: "
        "terminating connection due to administrator command"]


def test_a_transaction_that_reads_then_writes_survives_another_connections_commit_in_between(
        database_url: str) -> None:
    """A plain job transaction (halt, resume, the watchlist) reads, then writes; another
    instance's heartbeat commits in between. SQLite must wait its turn, not refuse the
    write ('database is locked' at once, as a deferred transaction with an old read would)."""
    from sqlalchemy import text

    from services.common.database import create_db_engine, make_session_factory

    engine, other = create_db_engine(database_url), create_db_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE beats (n INTEGER)"))
    try:
        with make_session_factory(engine).begin() as session:
            assert session.execute(text("SELECT count(*) FROM beats")).scalar() == 0
            with other.begin() as connection:
                connection.execute(text("INSERT INTO beats VALUES (1)"))
            session.execute(text("INSERT INTO beats VALUES (2)"))
        with engine.connect() as connection:
            assert sorted(connection.execute(text("SELECT n FROM beats")).scalars()) == [1, 2]
    finally:
        other.dispose()
        engine.dispose()


def test_an_account_transaction_and_a_snapshot_see_one_state(database_url: str) -> None:
    """Reads in an account transaction or a snapshot see the state of their first read,
    whatever another connection commits meanwhile (the account transaction: because
    nothing else can commit; the snapshot: because it reads its snapshot)."""
    from sqlalchemy import text

    from services.common.database import (
        account_transaction,
        create_db_engine,
        make_session_factory,
        snapshot_transaction,
    )

    engine, other = create_db_engine(database_url), create_db_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE cash (n INTEGER)"))
        connection.execute(text("INSERT INTO cash VALUES (100)"))
    factory = make_session_factory(engine)
    try:
        with snapshot_transaction(factory) as snapshot:
            assert snapshot.execute(text("SELECT n FROM cash")).scalar() == 100
            with other.begin() as connection:
                connection.execute(text("UPDATE cash SET n = 50"))
            assert snapshot.execute(text("SELECT n FROM cash")).scalar() == 100
        with account_transaction(factory, "alice:paper") as connection:
            assert connection.execute(text("SELECT n FROM cash")).scalar() == 50
            connection.execute(text("UPDATE cash SET n = 60"))
    finally:
        other.dispose()
        engine.dispose()


def test_a_paper_account_transaction_holds_the_sqlite_write_lock_from_its_first_read_a_live_one_does_not(
        tmp_path) -> None:
    """A live account's state is read from KIS over HTTP inside its transaction: those
    calls must not hold the whole SQLite database's write lock (the ledger's heartbeats
    and claims would wait on them)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from services.common.database import account_transaction, create_db_engine, make_session_factory

    url = f"sqlite:///{tmp_path / 'lock.db'}"
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE beats (n INTEGER)"))
    impatient = create_engine(url, connect_args={"timeout": 0.1})  # another instance's heartbeat, short wait
    factory = make_session_factory(engine)
    try:
        with account_transaction(factory, "alice:live", immediate=False) as connection:
            connection.execute(text("SELECT count(*) FROM beats"))  # ... then the KIS calls
            with impatient.begin() as other:
                other.execute(text("INSERT INTO beats VALUES (1)"))
        with account_transaction(factory, "alice:paper") as connection:
            connection.execute(text("SELECT count(*) FROM beats"))
            with pytest.raises(OperationalError, match="database is locked"), impatient.begin() as other:
                other.execute(text("INSERT INTO beats VALUES (2)"))
    finally:
        impatient.dispose()
        engine.dispose()


def test_a_compiled_read_binds_as_sqlalchemy_does_and_gives_the_drivers_values(session_factory: Any) -> None:
    from sqlalchemy import bindparam, func, select

    from services.common.database import fetch_compiled

    seoul = ZoneInfo("Asia/Seoul")
    with session_factory.begin() as session:
        for hour, mode in ((9, True), (10, True), (11, False)):
            at = datetime(2026, 11, 19, hour, 0, tzinfo=seoul)
            session.add(JobRun(job_name="j", user_id="u", scheduled_for=at, trading_date=at.date(), origin="manual",
                               dry_run=mode, outcome="success", started_at=at, host="h", pid=hour))
    runs = JobRun.__table__.c
    latest = select(runs.pid).where(runs.user_id == bindparam("owner"), runs.dry_run == bindparam("mode"),
                                    runs.scheduled_for >= bindparam("since"), runs.outcome == "success",
                                    runs.trading_date == bindparam("day")).order_by(runs.pid.desc()).limit(1)
    statement = select(latest.scalar_subquery(), select(func.count()).where(
        runs.dry_run == bindparam("mode")).scalar_subquery(), select(func.max(runs.trading_date)).scalar_subquery())
    with session_factory() as session:
        connection = session.connection()
        # 09:30 KST is 00:30 UTC: bound as UTC, as SQLAlchemy binds it, it admits the 10:00 run only
        since = datetime(2026, 11, 19, 9, 30, tzinfo=seoul)
        rows = fetch_compiled(connection, statement, {"owner": "u", "mode": True, "since": since,
                                                       "day": datetime(2026, 11, 19).date()})
        assert [tuple(str(value) for value in row) for row in rows] == [("10", "2", "2026-11-19")]
        assert fetch_compiled(connection, statement, {"owner": "u", "mode": False, "since": since,
                                                      "day": datetime(2026, 11, 19).date()})[0][:2] == (11, 1)
        with pytest.raises(ValueError, match=r"no value for the parameters \['day', 'since'\]"):
            fetch_compiled(connection, statement, {"owner": "u", "mode": True})
    with pytest.raises(ValueError, match="no expanding IN"):
        fetch_compiled(connection, select(runs.pid).where(runs.pid.in_([1, 2])), {})


def test_a_compiled_write_stores_what_sqlalchemy_stores_none_included(session_factory: Any) -> None:
    from sqlalchemy import bindparam, text, update

    from services.common.database import execute_compiled

    at = datetime(2026, 11, 19, 9, 0, tzinfo=ZoneInfo("Asia/Seoul"))
    with session_factory.begin() as session:
        for pid in (1, 2):
            session.add(JobRun(job_name="j", user_id="u", scheduled_for=at, trading_date=at.date(), origin="manual",
                               dry_run=True, outcome="running", started_at=at, host="h", pid=pid, attempt=pid))
    runs = JobRun.__table__.c
    finish = update(JobRun.__table__).where(runs.pid == bindparam("p")).values(
        summary=bindparam("summary"), reason=bindparam("reason"), finished_at=bindparam("finished_at"))
    values = {"summary": None, "reason": None, "finished_at": at}
    with session_factory.begin() as session:
        connection = session.connection()
        connection.execute(finish, {"p": 1, **values})  # the answer: SQLAlchemy's own binding
        assert execute_compiled(connection, finish, [{"p": 2, **values}]) == 1
        stored = connection.execute(text(
            "SELECT pid, summary IS NULL, CAST(summary AS TEXT), finished_at FROM job_runs ORDER BY pid")).all()
    assert stored[0][1:] == stored[1][1:]


def test_a_typed_read_gives_the_rows_sqlalchemy_gives(session_factory: Any) -> None:
    """Aware datetimes, dates, booleans, JSON and a scalar subquery's column come back
    as SQLAlchemy's own execution gives them, by position and by name."""
    from sqlalchemy import bindparam, func, select

    from services.common.database import fetch_typed

    at = datetime(2026, 11, 19, 9, 0, tzinfo=ZoneInfo("Asia/Seoul"))
    with session_factory.begin() as session:
        for pid, summary in ((1, {"state": "a", "n": 2}), (2, None)):
            session.add(JobRun(job_name="j", user_id="u", scheduled_for=at, trading_date=at.date(), origin="manual",
                               dry_run=pid == 1, outcome="success", started_at=at, host="h", pid=pid,
                               summary=summary))
    runs = JobRun.__table__.c
    count = select(func.count()).where(runs.user_id == bindparam("owner")).scalar_subquery()
    statement = select(runs.pid, runs.scheduled_for, runs.trading_date, runs.dry_run, runs.summary,
                       runs.finished_at, count).where(runs.user_id == bindparam("owner")).order_by(runs.pid)
    with session_factory() as session:
        connection = session.connection()
        theirs = connection.execute(statement, {"owner": "u"}).all()
        ours = fetch_typed(connection, statement, {"owner": "u"})
    assert [tuple(row) for row in ours] == [tuple(row) for row in theirs]
    assert ours[0].scheduled_for == at and ours[0].scheduled_for.utcoffset() is not None
    assert (ours[0].trading_date, ours[0].dry_run, ours[1].dry_run) == (at.date(), True, False)
    assert (ours[0].summary, ours[1].summary, ours[0][6]) == ({"state": "a", "n": 2}, None, 2)


def test_rows_written_together_bind_each_moment_as_sqlalchemy_does(session_factory: Any) -> None:
    """Rows that repeat a moment (the same instant in two zones), a date, or give one
    moment to two columns store what SQLAlchemy stores, row by row."""
    from sqlalchemy import bindparam, insert, text

    from services.common.database import execute_compiled

    seoul, utc, new_york = ZoneInfo("Asia/Seoul"), ZoneInfo("UTC"), ZoneInfo("America/New_York")
    moments = [datetime(2026, 11, 19, 9, 0, tzinfo=seoul), datetime(2026, 11, 19, 0, 0, tzinfo=utc),
               datetime(2026, 11, 19, 9, 30, tzinfo=seoul), datetime(2026, 11, 19, 9, 0, tzinfo=seoul),
               datetime(2026, 11, 19, 9, 0, tzinfo=utc),
               # 01:30 twice as New York's clocks go back: equal as datetimes, an hour apart (05:30, 06:30 UTC)
               datetime(2026, 11, 1, 1, 30, tzinfo=new_york), datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=new_york)]
    rows = [{"job_name": "j", "user_id": "u", "scheduled_for": at, "trading_date": at.date(), "origin": "manual",
             "dry_run": True, "outcome": "skipped", "started_at": at, "finished_at": moments[2], "host": "h",
             "pid": index, "attempt": index + 1} for index, at in enumerate(moments)]
    statement = insert(JobRun.__table__).values({name: bindparam(name) for name in rows[0]})
    with session_factory.begin() as session:
        connection = session.connection()
        for row in rows:  # the answer: SQLAlchemy's own binding, row by row
            connection.execute(statement, {**row, "user_id": "sqlalchemy"})
        assert execute_compiled(connection, statement, rows) == len(rows)
        stored = connection.execute(text(
            "SELECT user_id, pid, scheduled_for, trading_date, started_at, finished_at FROM job_runs "
            "ORDER BY user_id, pid")).all()
    ours, theirs = stored[:len(rows)], stored[len(rows):]
    assert [row[1:] for row in ours] == [row[1:] for row in theirs]
    assert ours[0][2] == ours[1][2] == ours[3][2] != ours[4][2]  # 09:00 KST is 00:00 UTC, not 09:00 UTC
    assert ours[5][2] != ours[6][2]


def test_a_plain_datetime_column_written_together_stores_what_sqlalchemy_stores(session_factory: Any) -> None:
    """A column that keeps a datetime's wall time (SQLite's ``DateTime``): the same
    instant in two zones is bound as each is, not as the first one."""
    from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, bindparam, insert, select

    from services.common.database import execute_compiled

    table = Table("plain_moments_test", MetaData(), Column("id", Integer, primary_key=True),
                  Column("side", String(16)), Column("at", DateTime(timezone=True)))
    moments = [datetime(2026, 11, 19, 9, 0, tzinfo=ZoneInfo("Asia/Seoul")),
               datetime(2026, 11, 19, 0, 0, tzinfo=ZoneInfo("UTC"))]
    statement = insert(table).values(id=bindparam("id"), side=bindparam("side"), at=bindparam("at"))
    with session_factory.begin() as session:
        connection = session.connection()
        table.create(connection)
        try:
            for index, at in enumerate(moments):  # the answer: SQLAlchemy's own binding
                connection.execute(statement, {"id": index, "side": "sqlalchemy", "at": at})
            execute_compiled(connection, statement, [{"id": 10 + index, "side": "compiled", "at": at}
                                                     for index, at in enumerate(moments)])
            stored = connection.execute(select(table.c.side, table.c.at).order_by(table.c.id)).all()
        finally:
            table.drop(connection)
    assert [at for side, at in stored if side == "compiled"] == [at for side, at in stored if side == "sqlalchemy"]


def test_a_compiled_read_begins_the_transaction_as_sqlalchemy_does(database_url: str) -> None:
    """The first compiled read of a connection begins its transaction as SQLAlchemy's
    own first statement would (the ``begin`` event: a snapshot's deferred ``BEGIN``), so
    a second read sees the state of the first, whatever another connection commits."""
    from sqlalchemy import select, text

    from services.common.database import SQLITE_BEGIN, create_db_engine, fetch_compiled, fetch_typed

    engine, other = create_db_engine(database_url), create_db_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE cash (n INTEGER)"))
        connection.execute(text("INSERT INTO cash VALUES (100)"))
    options = ({"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql"
               else {SQLITE_BEGIN: "DEFERRED"})
    cash = select(text("n")).select_from(text("cash"))
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**options)
            assert fetch_compiled(connection, cash, {}) == [(100,)]
            assert connection.in_transaction()
            with other.begin() as writing:
                writing.execute(text("UPDATE cash SET n = 50"))
            assert [tuple(row) for row in fetch_typed(connection, cash, {})] == [(100,)]
            connection.rollback()
            assert fetch_compiled(connection, cash, {}) == [(50,)]
    finally:
        other.dispose()
        engine.dispose()


def test_a_compiled_write_refused_by_the_database_raises_sqlalchemys_error(session_factory: Any) -> None:
    """The driver's error comes as SQLAlchemy's (a refused claim is an ``IntegrityError``),
    and the rows written before it in the transaction stay."""
    from sqlalchemy import bindparam, insert
    from sqlalchemy.exc import IntegrityError

    from services.common.database import execute_compiled

    at = datetime(2026, 11, 19, 9, 0, tzinfo=ZoneInfo("Asia/Seoul"))
    row = {"job_name": "j", "user_id": "u", "scheduled_for": at, "trading_date": at.date(), "origin": "manual",
           "dry_run": True, "outcome": "success", "started_at": at, "host": "h", "pid": 1, "attempt": 1}
    statement = insert(JobRun.__table__).values({name: bindparam(name) for name in row})
    with session_factory.begin() as session:
        connection = session.connection()
        assert execute_compiled(connection, statement, [row]) == 1
        with pytest.raises(IntegrityError), connection.begin_nested():
            execute_compiled(connection, statement, [{**row, "pid": 2}])  # the same fire again
    with session_factory() as session:
        assert [run.pid for run in session.query(JobRun)] == [1]


def test_an_in_memory_sqlite_engine_reads_compiled() -> None:
    from sqlalchemy import select, text

    from services.common.database import create_db_engine, fetch_compiled

    engine = create_db_engine("sqlite://")  # its pool keeps one connection per thread
    try:
        with engine.connect() as connection:
            assert fetch_compiled(connection, select(text("1")), {}) == [(1,)]
    finally:
        engine.dispose()


def test_a_compiled_read_on_a_lost_sqlite_connection_is_sqlalchemys_error_and_invalidates_it(tmp_path) -> None:
    """As SQLAlchemy's own execution: the error is SQLAlchemy's, the connection is
    invalidated, and the next one works."""
    from sqlalchemy import select, text
    from sqlalchemy.exc import ProgrammingError

    from services.common.database import create_db_engine, fetch_compiled

    engine = create_db_engine(f"sqlite:///{tmp_path / 'lost.db'}")
    try:
        with engine.connect() as connection:
            connection.connection.driver_connection.close()  # lost under it
            with pytest.raises(ProgrammingError) as raised:
                fetch_compiled(connection, select(text("1")), {})
            assert raised.value.connection_invalidated and connection.invalidated
        with engine.connect() as connection:
            assert fetch_compiled(connection, select(text("1")), {}) == [(1,)]
    finally:
        engine.dispose()


def test_a_compiled_read_in_a_failed_transaction_is_refused_as_sqlalchemy_refuses_it(tmp_path) -> None:
    """A commit that failed leaves the transaction to be rolled back first: a compiled
    read is refused then, as any statement SQLAlchemy runs, not run in it."""
    from sqlalchemy import select, text
    from sqlalchemy.exc import IntegrityError, PendingRollbackError

    from services.common.database import create_db_engine, fetch_compiled

    engine = create_db_engine(f"sqlite:///{tmp_path / 'failed.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        connection.execute(text("CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER "
                                "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"))
    try:
        with engine.connect() as connection:
            connection.execute(text("INSERT INTO child VALUES (1, 99)"))  # checked at the commit
            with pytest.raises(IntegrityError):
                connection.commit()
            with pytest.raises(PendingRollbackError):
                fetch_compiled(connection, select(text("id")).select_from(text("child")), {})
            connection.rollback()  # then it reads what SQLAlchemy's own execution reads
            assert fetch_compiled(connection, select(text("id")).select_from(text("child")), {}) == [
                tuple(row) for row in connection.execute(text("SELECT id FROM child"))]
    finally:
        engine.dispose()
