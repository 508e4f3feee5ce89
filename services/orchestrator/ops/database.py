"""The database's schema: migrations up to the code's head revision."""

from __future__ import annotations

from services.common.database import create_db_engine
from services.common.database import migrate as apply_migrations
from services.common.settings import Settings


def migrate(settings: Settings) -> str | None:
    """Apply the migrations the database lacks; the revision now in force."""
    engine = create_db_engine(settings.database_url, connect_timeout_seconds=settings.db_connect_timeout_seconds,
                              statement_timeout_seconds=settings.db_statement_timeout_seconds)
    try:
        return apply_migrations(engine)
    finally:
        engine.dispose()
