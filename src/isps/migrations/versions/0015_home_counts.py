"""The home page's counts read from indexes, not from whole tables

Revision ID: 0015_home_counts
Revises: 0012, 0008, 0007

The home page (``services.home``) counts, for a district or all Punjab: households due for
re-certification and the verified share (household by district and verification day), a district's
review pairs (beneficiary lines by district), the living people
(individuals carry ``district_id`` with no index: a partial index on the living makes it an
index-only count), enrolled and waiting per program (enrolment by district and status), failed,
unclaimed and paid-this-quarter payments (instructions by status, district and day, with the amount), and the
newest payrolls' instructions by status (by payroll, status and district).

Revision 0008 creates its tables from the current models, so a new database already has the
enrolment and payment indexes: they are created here only where missing (as in 0014_lists_keyset).
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_home_counts"
down_revision = ("0012", "0008", "0007")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_household_district_verified", "household", ["district_id", "verified_on"], if_not_exists=True)
    op.create_index("ix_beneficiary_district", "beneficiary", ["district_id", "id"], if_not_exists=True)
    op.create_index("ix_individual_district_alive", "individual", ["district_id"],
                    sqlite_where=sa.text("date_of_death IS NULL"),
                    postgresql_where=sa.text("date_of_death IS NULL"))
    op.create_index("ix_enrolment_district_status", "enrolment", ["district_id", "status", "program_code"],
                    if_not_exists=True)
    op.create_index("ix_payment_instruction_status", "payment_instruction", ["status", "district_id", "status_on",
                                                                              "amount"],
                    if_not_exists=True)
    op.create_index("ix_payment_instruction_payroll_status", "payment_instruction",
                    ["payroll_id", "status", "district_id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_payment_instruction_payroll_status", table_name="payment_instruction", if_exists=True)
    op.drop_index("ix_payment_instruction_status", table_name="payment_instruction", if_exists=True)
    op.drop_index("ix_enrolment_district_status", table_name="enrolment", if_exists=True)
    op.drop_index("ix_individual_district_alive", table_name="individual")
    op.drop_index("ix_beneficiary_district", table_name="beneficiary", if_exists=True)
    op.drop_index("ix_household_district_verified", table_name="household", if_exists=True)
