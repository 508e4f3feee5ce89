"""Alembic migrations. ``HEAD`` names the newest revision (a test checks it against
Alembic), so a database already there is recognised without importing Alembic."""

HEAD = "0013_console_audit_queued_runs"
