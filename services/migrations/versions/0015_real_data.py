"""Real data: ``paper_accounts.bars_settled_through``, the last session whose daily bar
a paper account's orders and price exits were settled on (a provider without intraday
prices: pykrx, stored history; NULL until the first); and ``market_indices``, the
KOSPI and KOSDAQ closes a provider publishes (the replay report's benchmark); and
``corporate_actions``, the sessions a ticker's base price was reset on, with the
adjustment ratio (adjusted prices for the indicators).

Revision ID: 0015_real_data
Revises: 0014_replay_settings
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = "0015_real_data"
down_revision = "0014_replay_settings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("paper_accounts") as batch:
        batch.add_column(sa.Column("bars_settled_through", sa.Date(), nullable=True))
    op.create_table(
        "corporate_actions",
        sa.Column("date", sa.Date(), primary_key=True),
        sa.Column("ticker", sa.String(12), primary_key=True),
        sa.Column("ratio", sa.Float(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "market_indices",
        sa.Column("date", sa.Date(), primary_key=True),
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("close", sa.Float(), nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("market_indices")
    op.drop_table("corporate_actions")
    with op.batch_alter_table("paper_accounts") as batch:
        batch.drop_column("bars_settled_through")
