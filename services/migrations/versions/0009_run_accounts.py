"""Run accounts: a fire is claimed per account, user *and* mode, so a paper instance
and a live instance of one user each run their own fire (before, whichever claimed it
first ran it, in its own mode, and the other's fire never ran).

Revision ID: 0009_run_accounts
Revises: 0008_order_intents
Create Date: 2026-12-04
"""
from alembic import op

revision = "0009_run_accounts"
down_revision = "0008_order_intents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_constraint("uq_job_runs_fire", type_="unique")
        batch.create_unique_constraint("uq_job_runs_fire",
                                       ["job_name", "user_id", "dry_run", "scheduled_for", "attempt"])


def downgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_constraint("uq_job_runs_fire", type_="unique")
        batch.create_unique_constraint("uq_job_runs_fire", ["job_name", "user_id", "scheduled_for", "attempt"])
