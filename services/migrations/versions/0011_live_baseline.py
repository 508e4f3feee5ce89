"""Loss baselines per mode: after a loss halt is resumed, the paper and the live
account each measure their losses from their own equity at the resume
(``baseline_equity`` is the paper account's, ``live_baseline_equity`` the live one's).

Revision ID: 0011_live_baseline
Revises: 0010_run_instances
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_live_baseline"
down_revision = "0010_run_instances"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trading_halts") as batch:
        batch.add_column(sa.Column("live_baseline_equity", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trading_halts") as batch:
        batch.drop_column("live_baseline_equity")
