"""A replay answers for the settings it ran with: they are recorded in its database
(``replay_settings``), and a replay of that database with other settings is refused
(:class:`SettingsChanged`, one line naming each setting that differs) unless asked to
start afresh, which empties the simulation database first.

The settings recorded are those that shape a replay's result: every setting but the
ones listed in :data:`NOT_SHAPING` (where things are shown, stored, served and sent,
and the live broker's connection).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, MetaData, select

from services.common.database import migrate
from services.common.settings import Settings
from services.orchestrator.models import ReplaySettings

#: settings that change nothing of a replay's orders, fills and ledger
NOT_SHAPING = frozenset({
    "display_timezone", "user_id", "dry_run", "misfire_grace_seconds", "run_lease_seconds",
    "pykrx_min_interval_seconds", "paper_quotes", "kis_environment", "kis_paper_host", "kis_live_host",
    "kis_paper_tr_ids", "kis_live_tr_ids", "kis_requests_per_second", "kis_app_key", "kis_app_secret", "kis_account",
    "database_url",
    "simulation_database_url", "history_database_url", "db_connect_timeout_seconds", "db_statement_timeout_seconds",
    "cache_dir",
    "log_level", "alert_webhook_url", "alert_timeout_seconds", "notify_urls", "notify_language", "api", "api_host",
    "api_port", "api_token", "api_cache_seconds",
})


class SettingsChanged(ValueError):
    """The database holds a replay made with other settings."""


def shaping(settings: Settings) -> dict[str, str]:
    """The settings that shape a replay, by environment variable, as text."""
    return {field.metadata["env"]: _text(getattr(settings, field.name)) for field in fields(Settings)
            if field.name not in NOT_SHAPING and "env" in field.metadata}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def check_and_record(engine: Engine, settings: Settings, now: datetime) -> None:
    """Record the replay's settings, or refuse them if the database's replay of the
    user was made with others."""
    current = shaping(settings)
    with engine.begin() as connection:
        row = connection.execute(select(ReplaySettings.settings).where(
            ReplaySettings.user_id == settings.user_id)).first()
        if row is None:
            connection.execute(ReplaySettings.__table__.insert().values(
                user_id=settings.user_id, settings=current, recorded_at=now))
            return
    differing = differences(dict(row.settings), current)
    if differing:
        raise SettingsChanged(
            f"this database holds {settings.user_id}'s replay made with other settings ({differing}): its "
            "results would not answer for these; replay with --fresh to start it again, or into another "
            "--database-url")


def differences(recorded: dict[str, str], current: dict[str, str]) -> str:
    """Each setting that differs, 'NAME=recorded, now new' (empty: none)."""
    names = sorted(set(recorded) | set(current))
    changed = [name for name in names if recorded.get(name) != current.get(name)]
    return "; ".join(f"{name}={recorded.get(name, '(unset)') or '(empty)'}, now "
                     f"{current.get(name, '(unset)') or '(empty)'}" for name in changed)


def empty_database(engine: Engine) -> None:
    """Drop every table of the (simulation) database, then migrate it again: a replay
    from scratch."""
    tables = MetaData()
    tables.reflect(bind=engine)
    tables.drop_all(bind=engine)
    migrate(engine)
