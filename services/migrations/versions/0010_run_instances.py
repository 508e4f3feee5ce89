"""Run instances: every process writes its random instance id into the runs it claims,
so a ``running`` row of this host and pid but of another instance is known to be dead
(the pid was reused, e.g. pid 1 in a restarted container).

Revision ID: 0010_run_instances
Revises: 0009_run_accounts
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_run_instances"
down_revision = "0009_run_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("instance_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("instance_id")
