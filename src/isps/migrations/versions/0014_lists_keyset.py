"""Indexes for the keyset pages of the web app's lists

Revision ID: 0014_lists_keyset
Revises: 0008

A program's enrolled list pages in id order within one program and status, and its total is a
COUNT of the same rows: (program_code, status, id) serves both from the index alone, whatever the
page. The audit log filtered by user pages newest first: (actor, id) finds one user's records
without reading everyone's.

Revision 0008 creates its tables from the current models, so a new database already has the
enrolment index: it is created here only where it is missing (a database made before this revision).
"""

from alembic import op

revision = "0014_lists_keyset"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_enrolment_program_status_id", "enrolment", ["program_code", "status", "id"],
                    if_not_exists=True)
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_enrolment_program_status_id", table_name="enrolment", if_exists=True)
