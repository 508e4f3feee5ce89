"""Fixtures of the trading engine's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine


@pytest.fixture
def connection(migrated_engine: Engine) -> Iterator[Connection]:
    """A connection on a fresh migrated database (SQLite, and PostgreSQL when set), in a
    transaction rolled back after the test."""
    with migrated_engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()
