"""Run leases: a running row's holder renews ``lease_until``; once it has expired
another instance records the run failed (abandoned) and may run the fire again as
the next ``attempt``.

Revision ID: 0007_run_leases
Revises: 0006_snapshot_peak
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

from services.common.database import UTCDateTime

revision = "0007_run_leases"
down_revision = "0006_snapshot_peak"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("lease_until", UTCDateTime(), nullable=True))
        batch.drop_constraint("uq_job_runs_fire", type_="unique")
        batch.create_unique_constraint("uq_job_runs_fire", ["job_name", "user_id", "scheduled_for", "attempt"])
    running = sa.text("outcome = 'running'")
    op.create_index("ix_job_runs_lease", "job_runs", ["lease_until"], sqlite_where=running,
                    postgresql_where=running)


def downgrade() -> None:
    op.drop_index("ix_job_runs_lease", table_name="job_runs")
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_constraint("uq_job_runs_fire", type_="unique")
        batch.create_unique_constraint("uq_job_runs_fire", ["job_name", "user_id", "scheduled_for"])
        batch.drop_column("lease_until")
        batch.drop_column("attempt")
