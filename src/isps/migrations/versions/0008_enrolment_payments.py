"""enrolment, waiting lists, cycles, entitlements, payments, ledger, outlets and pickup slots

Revision ID: 0008
Revises: 0001

The tables have no foreign keys into other capabilities (they are keyed by program_code
and registry ids), so this branch lands independently of the others.
"""
from alembic import op

revision = "0008"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("enrolment_policy", "enrolment", "enrolment_event", "benefit_cycle", "entitlement", "compliance_record",
          "referral", "payroll", "payment_instruction", "payment_status_import", "payment_status_line",
          "ledger_entry", "cash_outlet", "pickup_slot")


def _tables():
    from isps.db import Base
    from isps.payments import models as _p  # noqa: F401
    from isps.programs import models as _m  # noqa: F401

    return [Base.metadata.tables[name] for name in TABLES]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _tables():
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_tables()):
        table.drop(bind)
