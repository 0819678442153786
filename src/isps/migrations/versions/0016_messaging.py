"""messaging: the one outbound SMS queue, delivery receipts, opt-out and inbound texts (issue 11)

Revision ID: 0016_messaging
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0016_messaging"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sms_message",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("phone", sa.String(13), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(2), nullable=False),
        sa.Column("status", sa.String(14), nullable=False),
        sa.Column("attempts", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("individual_id", sa.BigInteger(), nullable=True),
        sa.Column("household_id", sa.BigInteger(), nullable=True),
        sa.Column("district_id", sa.SmallInteger(), nullable=True),
        sa.Column("send_after", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("gateway", sa.String(10), nullable=True),
        sa.Column("gateway_id", sa.String(64), nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
    )
    op.create_index("uq_sms_message_key", "sms_message", ["key"], unique=True)
    op.create_index("ix_sms_message_due", "sms_message", ["status", "send_after", "id"])
    op.create_index("ix_sms_message_household", "sms_message", ["household_id", "id"])
    op.create_index("ix_sms_message_phone", "sms_message", ["phone", "id"])
    op.create_index("ix_sms_message_gateway_id", "sms_message", ["gateway_id"])
    op.create_index("ix_sms_message_district", "sms_message", ["district_id", "status", "id"])
    op.create_index("ix_sms_message_created", "sms_message", ["created_at", "id"])
    op.create_table(
        "sms_receipt",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(14), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_sms_receipt_gateway_id", "sms_receipt", ["gateway_id"])
    op.create_table(
        "sms_opt_out",
        sa.Column("phone", sa.String(13), primary_key=True),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("via", sa.String(40), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "sms_inbound",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("gateway_ref", sa.String(80), nullable=False),
        sa.Column("phone", sa.String(13), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("reply_id", sa.BigInteger(), nullable=True),
    )
    op.create_index("uq_sms_inbound_gateway_ref", "sms_inbound", ["gateway_ref"], unique=True)
    op.create_index("ix_sms_inbound_phone", "sms_inbound", ["phone", "received_at"])


def downgrade() -> None:
    for table in ("sms_inbound", "sms_opt_out", "sms_receipt", "sms_message"):
        op.drop_table(table)
