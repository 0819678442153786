"""One Window: members who left a household, and finding a citizen by mobile number

Revision ID: 0016_onewindow
Revises: 0015_home_counts

A person who leaves a household alive (married away, migrated, whereabouts unknown, entered in
error) stays on record with ``left_on`` and ``left_reason`` and is no longer a current member
(``isps.registry.current``). The partial index of a district's current members
(``ix_individual_district_alive``, 0015_home_counts) is recreated with that predicate, and the counter
finds a citizen by mobile number through ``ix_individual_phone``; the citizen screen reads an
enrolment's payments through ``ix_payment_instruction_enrolment``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_onewindow"
down_revision = "0015_home_counts"
branch_labels = None
depends_on = None

CURRENT = "date_of_death IS NULL AND left_on IS NULL"


def upgrade() -> None:
    op.add_column("individual", sa.Column("left_on", sa.Date(), nullable=True))
    op.add_column("individual", sa.Column("left_reason", sa.String(length=24), nullable=True))
    op.drop_index("ix_individual_district_alive", table_name="individual")
    op.create_index("ix_individual_district_alive", "individual", ["district_id"],
                    sqlite_where=sa.text(CURRENT), postgresql_where=sa.text(CURRENT))
    op.create_index("ix_individual_phone", "individual", ["phone"], if_not_exists=True)
    if op.get_bind().dialect.name == "postgresql":
        # the planner must know that left_on is empty: without statistics it takes "a current member"
        # for a rare row and reads the whole registry's member aggregates through the partial index,
        # unparallelled (the PMT member aggregate over 100k households measured 1.7x slower until ANALYZE)
        op.execute("ANALYZE individual")
    # the citizen screen reads an enrolment's newest payments (0008 builds its tables from the current
    # models, so a new database has the index already)
    op.create_index("ix_payment_instruction_enrolment", "payment_instruction", ["enrolment_id", "id"],
                    if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_payment_instruction_enrolment", table_name="payment_instruction", if_exists=True)
    op.drop_index("ix_individual_phone", table_name="individual", if_exists=True)
    op.drop_index("ix_individual_district_alive", table_name="individual")
    op.create_index("ix_individual_district_alive", "individual", ["district_id"],
                    sqlite_where=sa.text("date_of_death IS NULL"), postgresql_where=sa.text("date_of_death IS NULL"))
    op.drop_column("individual", "left_reason")
    op.drop_column("individual", "left_on")
