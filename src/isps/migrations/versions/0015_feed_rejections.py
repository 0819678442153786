"""Feed deliveries keep their refused rows (``feed_rejection``): a delivery's row report can be read
and downloaded from the browser after it was applied, and deliveries are listed by time.

Revision ID: 0015_feed_rejections
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0015_feed_rejections"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_rejection",
        sa.Column("delivery_id", sa.BigInteger(), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("record_ref", sa.String(80), nullable=False),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feed_rejection")
