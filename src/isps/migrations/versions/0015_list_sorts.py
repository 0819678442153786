"""Indexes for the orders a list page offers (the keyset (sort value, id) of each sortable column)

Revision ID: 0015_list_sorts
Revises: 0015_enrolment_counts
Depends on: 0007 (match_candidate)

A list sorted by a column pages by (column, id) after the last row shown; an index on (the list's
fixed filters, column, id) makes every page a short range read, so page 1,000 costs what page 1
does in any order: a program's lists by district, listing day and enrolment day (by PMT the
existing (program, status, rank) index serves), the audit log by action (by actor the existing
(actor, id) index serves, by time the id), the review queue by match weight.

Revision 0008 creates the enrolment table from the current models, so a new database already has
the enrolment indexes: they are created here only where missing.
"""

from alembic import op

revision = "0015_list_sorts"
down_revision = "0015_enrolment_counts"
branch_labels = None
depends_on = ("0007",)

INDEXES = [
    ("ix_enrolment_sort_district", "enrolment", ["program_code", "status", "district_id", "id"]),
    ("ix_enrolment_sort_listed", "enrolment", ["program_code", "status", "listed_on", "id"]),
    ("ix_enrolment_sort_enrolled", "enrolment", ["program_code", "status", "enrolled_on", "id"]),
    ("ix_audit_log_action", "audit_log", ["action", "id"]),
    ("ix_match_candidate_status_weight", "match_candidate", ["status", "match_weight", "id"]),
]


def upgrade() -> None:
    for name, table, cols in INDEXES:
        op.create_index(name, table, cols, if_not_exists=True)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table, if_exists=True)
