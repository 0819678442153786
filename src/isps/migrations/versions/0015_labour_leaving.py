"""labour registries: taking someone off a register (a wager who left, a shop closed, a laid-off
worker who found work) is kept as history in labour_leaving

Revision ID: 0015_labour_leaving
Revises: 0015_labour
"""
from alembic import op
import sqlalchemy as sa

revision = "0015_labour_leaving"
down_revision = "0015_labour"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "labour_leaving",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("register", sa.String(20), nullable=False),
        sa.Column("individual_id", sa.BigInteger(), nullable=False),
        sa.Column("household_id", sa.BigInteger(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.BigInteger(), nullable=True),
        sa.Column("shop_id", sa.BigInteger(), nullable=True),
        sa.Column("registered_since", sa.Date(), nullable=False),
        sa.Column("left_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("now_status", sa.String(20), nullable=True),
        sa.Column("note", sa.String(200), nullable=True),
        sa.Column("recorded_by", sa.String(80), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_labour_leaving_district", "labour_leaving", ["district_id", "register", "id"])
    op.create_index("ix_labour_leaving_person", "labour_leaving", ["individual_id"])
    op.create_index("ix_labour_leaving_shop", "labour_leaving", ["shop_id"])


def downgrade() -> None:
    op.drop_table("labour_leaving")
