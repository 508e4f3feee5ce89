"""Snapshots: an index that finds the peak equity in one probe (read by every risk check).

Revision ID: 0006_snapshot_peak
Revises: 0005_risk
Create Date: 2026-11-30
"""
from alembic import op

revision = "0006_snapshot_peak"
down_revision = "0005_risk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_snapshots_equity", "portfolio_snapshots", ["user_id", "dry_run", "equity"])


def downgrade() -> None:
    op.drop_index("ix_snapshots_equity", table_name="portfolio_snapshots")
