"""``collected_sessions.revision``: how many times a date's market data was stored (each
collection of the date adds one). Whoever keeps a date's rows between reads (the
indicator windows of a replay) knows them current while the revision is the one read.

Revision ID: 0016_stored_revisions
Revises: 0015_real_data
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = "0016_stored_revisions"
down_revision = "0015_real_data"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collected_sessions") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("collected_sessions") as batch:
        batch.drop_column("revision")
