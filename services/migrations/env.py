"""Alembic environment: runs on the connection handed over by services.common.database."""

from alembic import context
from alembic.util import CommandError
from sqlalchemy import create_engine

import services.data_collector.models  # noqa: F401  (registers the tables)
import services.indicator_calculator.models  # noqa: F401
import services.orchestrator.models  # noqa: F401
import services.risk_manager.models  # noqa: F401
import services.trading_engine.models  # noqa: F401
import services.watchlist_manager.models  # noqa: F401
from services.common.database import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=conn,
        target_metadata=Base.metadata,
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # the plain `alembic` command, with sqlalchemy.url set
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise CommandError("no sqlalchemy.url in the alembic configuration; set it, "
                           "or migrate with: python -m services.orchestrator.main migrate")
    with create_engine(url).begin() as conn:
        _run(conn)
