"""Settings and databases apart from the host's: settings from the defaults and the
given values only, and a PostgreSQL URL whose connections work in one schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from services.common.settings import Settings, load_settings


def make_settings(**values: Any) -> Settings:
    """Settings from defaults plus ``values`` (as if given on the command line),
    never reading the host's environment or a .env file."""
    return load_settings(values, environ={}, env_file=Path("/nonexistent/.env"))


def postgres_schema_url(base_url: str, schema: str) -> str:
    """``base_url`` with ``schema`` as the search path of every connection."""
    url = make_url(base_url)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )
