"""A new SQLite database is created from the stored head schema
(services/migrations/sqlite_head.py): exactly what the migrations build, without Alembic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import text

from services.common.database import create_db_engine, migrate, sqlite_schema
from services.migrations import HEAD, sqlite_head
from tests.conftest import subprocess_env

REPO = Path(__file__).resolve().parents[2]
REGENERATE = ('stale: write it again with python -c "from services.common.database import write_sqlite_head; '
              'write_sqlite_head()"')


def _catalog(path: Path, *, head_schema: bool) -> tuple[list[tuple[Any, ...]], list[str], list[Any]]:
    """The database's whole catalog (autoindexes included), its schema statements and
    its recorded revisions, once ``migrate`` made it."""
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        assert migrate(engine, head_schema=head_schema) == HEAD
        with engine.connect() as connection:
            catalog = [tuple(row) for row in connection.execute(text(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"))]
            revisions = list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
            return catalog, sqlite_schema(connection), revisions
    finally:
        engine.dispose()


def test_the_stored_schema_is_what_the_migrations_build(tmp_path: Path) -> None:
    assert sqlite_head.REVISION == HEAD, REGENERATE
    migrated = _catalog(tmp_path / "migrated.db", head_schema=False)
    created = _catalog(tmp_path / "created.db", head_schema=True)
    assert migrated[1] == list(sqlite_head.STATEMENTS), REGENERATE
    assert created == migrated
    assert created[2] == [HEAD]


def test_a_new_sqlite_database_is_created_without_importing_alembic(tmp_path: Path) -> None:
    code = ("import sys; from services.common.database import create_db_engine, migrate; "
            f"print(migrate(create_db_engine({str('sqlite:///' + str(tmp_path / 'new.db'))!r})), "
            "'alembic' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(PYTHONPATH=str(REPO)),
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == [HEAD, "False"]


def test_a_database_with_tables_but_no_revision_is_left_to_the_migrations(tmp_path: Path) -> None:
    # not new: the stored schema is not laid over it; the migrations meet the existing table
    import sqlite3

    import pytest
    from sqlalchemy.exc import OperationalError

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE stocks (ticker TEXT PRIMARY KEY)")
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        with pytest.raises(OperationalError, match="table stocks already exists"):
            migrate(engine)
    finally:
        engine.dispose()


def test_the_schema_is_created_in_one_transaction(tmp_path: Path, monkeypatch: Any) -> None:
    import pytest
    from sqlalchemy.exc import OperationalError

    monkeypatch.setattr(sqlite_head, "STATEMENTS", (*sqlite_head.STATEMENTS, "CREATE TABLE broken ("))
    engine = create_db_engine(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        with pytest.raises(OperationalError):
            migrate(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM sqlite_master")).scalar() == 0
    finally:
        engine.dispose()
