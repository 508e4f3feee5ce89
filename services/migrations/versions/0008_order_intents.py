"""Order intents: a live order is recorded before it is sent; ``sent_at`` is the
committed claim of the process about to send it (NULL: not sent yet).

Revision ID: 0008_order_intents
Revises: 0007_run_leases
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

from services.common.database import UTCDateTime

revision = "0008_order_intents"
down_revision = "0007_run_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("sent_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("sent_at")
