"""the citizen's own pages and the short code: one-time sign-in codes (hashed) and citizen sessions
(the individual's phone, by which the short code finds a sender, is indexed by 0016_onewindow)

Revision ID: 0016_selfservice
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0016_selfservice"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "citizen_code",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("cnic", sa.String(13), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("individual_id", sa.BigInteger(), nullable=True),
        sa.Column("sent", sa.Boolean(), nullable=False),
        sa.Column("salt", sa.String(32), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("tries", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_citizen_code_phone", "citizen_code", ["phone", "created_at"])
    op.create_index("ix_citizen_code_address", "citizen_code", ["address", "created_at"])
    op.create_index("ix_citizen_code_cnic", "citizen_code", ["cnic", "phone", "id"])
    op.create_table(
        "citizen_session",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("individual_id", sa.BigInteger(), nullable=False),
        sa.Column("household_id", sa.BigInteger(), nullable=False),
        sa.Column("district_id", sa.SmallInteger(), nullable=False),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("code_id", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("citizen_session")
    op.drop_table("citizen_code")
