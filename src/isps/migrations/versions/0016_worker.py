"""the background worker: one lease per task (who runs it now, until when) and its last run

Revision ID: 0016_worker
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0016_worker"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_lease",
        sa.Column("task", sa.String(60), primary_key=True),
        sa.Column("holder", sa.String(120), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("last_started", sa.DateTime(), nullable=True),
        sa.Column("last_finished", sa.DateTime(), nullable=True),
        sa.Column("last_result", sa.JSON(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("worker_lease")
