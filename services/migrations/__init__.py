"""Alembic migrations. ``HEAD`` names the newest revision (a test checks it against
Alembic), so a database already there is recognised without importing Alembic."""

HEAD = "0016_stored_revisions"
