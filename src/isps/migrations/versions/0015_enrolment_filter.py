"""the catalogue's rules of combination, stored enrolment refusals, one code for PPAF's loans

Revision ID: 0015_enrolment_filter
Revises: 0007, 0013_pay_fund_status, 0014_lists_keyset

* ``program_rule``: exclusive kinds, incompatible pairs and the household ceiling, seeded from the
  shipped catalogue on every migrate (``isps.catalogue.install_catalogue``);
* ``enrolment_refusal``: who the enrolment filter kept off a program because of another program
  (an ISPS enrolment or a partner's list line), with what it found;
* PPAF's interest-free loans were stored as ``ppaf_interest_free_loan`` by enrolment and graduation
  while the catalogue (and the partner lists' foreign key) says ``ppaf_interest_free_loans``: every
  stored program code is moved to the catalogue's.

It follows the beneficiary registry (0007) and both enrolment branches, so every table whose
program codes it renames exists when it runs.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0015_enrolment_filter"
down_revision = ("0007", "0013_pay_fund_status", "0014_lists_keyset")
branch_labels = None
depends_on = None

OLD, NEW = "ppaf_interest_free_loan", "ppaf_interest_free_loans"
CODE_COLUMNS = ("program_code", "from_program", "to_program")


def _rename(old: str, new: str) -> None:
    bind = op.get_bind()
    insp = sa.inspect(bind)
    for table in insp.get_table_names():
        if table in ("program", "enrolment_count"):  # the counts are rebuilt below
            continue
        for col in insp.get_columns(table):
            if col["name"] in CODE_COLUMNS:
                bind.execute(sa.text(f'UPDATE "{table}" SET "{col["name"]}" = :new WHERE "{col["name"]}" = :old'),
                             {"old": old, "new": new})
    if "enrolment_count" in insp.get_table_names():  # kept by triggers (0015_enrolment_counts): counted afresh
        bind.execute(sa.text("DELETE FROM enrolment_count"))
        bind.execute(sa.text("INSERT INTO enrolment_count (program_code, district_id, status, n) "
                             "SELECT program_code, district_id, status, COUNT(*) FROM enrolment "
                             "GROUP BY program_code, district_id, status"))
    if "enrolment_policy" in insp.get_table_names():  # a graduation's referral target inside the policy
        rows = bind.execute(sa.text("SELECT program_code, spec FROM enrolment_policy")).all()
        cast = "CAST(:s AS JSON)" if bind.dialect.name == "postgresql" else ":s"
        for code, spec in rows:
            text = spec if isinstance(spec, str) else json.dumps(spec)
            if f'"{old}"' in text:
                bind.execute(sa.text(f"UPDATE enrolment_policy SET spec = {cast} WHERE program_code = :c"),
                             {"s": text.replace(f'"{old}"', f'"{new}"'), "c": code})


def upgrade() -> None:
    op.create_table(
        "program_rule",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rule", sa.String(20), nullable=False),
        sa.Column("a", sa.String(60), nullable=True),
        sa.Column("b", sa.String(60), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("why", sa.String(200), nullable=True),
        sa.Column("why_ur", sa.String(200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_table(
        "enrolment_refusal",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("program_code", sa.String(40), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("household_id", sa.BigInteger(), nullable=False),
        sa.Column("individual_id", sa.BigInteger(), nullable=False),
        sa.Column("person_individual_id", sa.BigInteger(), nullable=True),
        sa.Column("district_id", sa.SmallInteger(), nullable=False),
        sa.Column("rule", sa.String(12), nullable=False),
        sa.Column("other_program", sa.String(40), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("other_ref", sa.BigInteger(), nullable=True),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column("partner_ref", sa.String(60), nullable=True),
        sa.Column("yearly_value", sa.Float(), nullable=True),
        sa.Column("actor", sa.String(60), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
    )
    op.create_index("ix_enrolment_refusal_program", "enrolment_refusal", ["program_code", "id"])
    op.create_index("ix_enrolment_refusal_household", "enrolment_refusal", ["household_id"])
    _rename(OLD, NEW)


def downgrade() -> None:
    _rename(NEW, OLD)
    op.drop_index("ix_enrolment_refusal_household", table_name="enrolment_refusal")
    op.drop_index("ix_enrolment_refusal_program", table_name="enrolment_refusal")
    op.drop_table("enrolment_refusal")
    op.drop_table("program_rule")
