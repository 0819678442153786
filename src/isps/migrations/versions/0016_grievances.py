"""grievance redress for every program: grievances (owner, level, due time, resolution and root
cause, the citizen's confirmation) and their history (grievance_event, written once)

Revision ID: 0016_grievances
Revises: 0005, 0008

Grievances name registry households and people, payment instructions, cash outlets and change
requests by id, without foreign keys (as the feeds' and payments' tables do); it reads the change
requests and exclusion flags of 0005 and the payments of 0008. Every open grievance has an owner:
a CHECK constraint holds it.
"""
from alembic import op
import sqlalchemy as sa

revision = "0016_grievances"
down_revision = ("0005", "0008")
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "grievance",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(12), nullable=False),
        sa.Column("category", sa.String(24), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("district_id", sa.SmallInteger(), nullable=True),
        sa.Column("agency", sa.String(120), nullable=True),
        sa.Column("program_code", sa.String(40), nullable=True),
        sa.Column("household_id", sa.BigInteger(), nullable=True),
        sa.Column("individual_id", sa.BigInteger(), nullable=True),
        sa.Column("phone", sa.String(16), nullable=True),
        sa.Column("complainant_name", sa.String(120), nullable=True),
        sa.Column("payment_instruction_id", sa.BigInteger(), nullable=True),
        sa.Column("outlet_id", sa.BigInteger(), nullable=True),
        sa.Column("change_request_id", sa.BigInteger(), nullable=True),
        sa.Column("owner", sa.String(60), nullable=True),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("opened_by", sa.String(60), nullable=False),
        sa.Column("resolution", sa.String(1000), nullable=True),
        sa.Column("root_cause", sa.String(24), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(60), nullable=True),
        sa.Column("citizen_confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("reopen_count", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("lang", sa.String(2), server_default="ur", nullable=False),
        sa.CheckConstraint("status IN ('resolved', 'closed') OR owner IS NOT NULL", name="owner"),
        sa.CheckConstraint("status IN ('open', 'resolved', 'closed', 'reopened')", name="status"),
    )
    op.create_index("ix_grievance_owner", "grievance", ["owner", "status"])
    op.create_index("ix_grievance_district", "grievance", ["district_id", "status", "id"])
    op.create_index("ix_grievance_due", "grievance", ["status", "due_at"])
    op.create_index("ix_grievance_household", "grievance", ["household_id"])
    op.create_index("ix_grievance_phone", "grievance", ["phone"])
    op.create_index("ix_grievance_outlet", "grievance", ["outlet_id"])
    op.create_table(
        "grievance_event",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("grievance_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(14), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(60), nullable=False),
        sa.Column("from_owner", sa.String(60), nullable=True),
        sa.Column("to_owner", sa.String(60), nullable=True),
        sa.Column("from_level", sa.SmallInteger(), nullable=True),
        sa.Column("to_level", sa.SmallInteger(), nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
    )
    op.create_index("ix_grievance_event_grievance", "grievance_event", ["grievance_id", "id"])


def downgrade() -> None:
    op.drop_table("grievance_event")
    op.drop_table("grievance")
