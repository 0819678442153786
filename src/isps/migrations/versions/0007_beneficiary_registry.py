"""program catalogue and the Single Beneficiary Registry (batches, beneficiaries, persons,
match candidates, person history, linkage runs)

Revision ID: 0007
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
NOW = sa.text("(CURRENT_TIMESTAMP)")


def upgrade() -> None:
    op.create_table(
        "program",
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("agency", sa.String(120), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("pillar", sa.String(20), nullable=False),
        sa.Column("life_stage", sa.String(16), nullable=False),
        sa.Column("benefit_type", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("unit", sa.String(10), nullable=False),
        sa.Column("amount_pkr", sa.Float(), nullable=True),
        sa.Column("frequency", sa.String(12), nullable=False),
        sa.Column("payments_per_year", sa.Float(), nullable=False),
        sa.Column("funding_source", sa.String(80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_program")),
    )
    op.create_table(
        "beneficiary_batch",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("program_code", sa.String(40), nullable=False),
        sa.Column("partner", sa.String(80), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("received_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["program_code"], ["program.code"],
                                name=op.f("fk_beneficiary_batch_program_code_program")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_beneficiary_batch")),
        sa.UniqueConstraint("program_code", "reference", name="uq_beneficiary_batch_reference"),
    )
    op.create_table(
        "beneficiary",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("program_code", sa.String(40), nullable=False),
        sa.Column("partner_ref", sa.String(60), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("cnic", sa.String(13), nullable=True),
        sa.Column("full_name", sa.String(80), nullable=False),
        sa.Column("father_husband_name", sa.String(80), nullable=True),
        sa.Column("sex", sa.String(12), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("district_id", sa.SmallInteger(), nullable=True),
        sa.Column("phone", sa.String(13), nullable=True),
        sa.Column("yearly_value", sa.Float(), nullable=True),
        sa.Column("individual_id", sa.BigInteger(), nullable=True),
        sa.Column("household_id", sa.BigInteger(), nullable=True),
        sa.Column("person_id", sa.BigInteger(), nullable=True),
        sa.Column("link_method", sa.String(10), nullable=True),
        sa.Column("match_weight", sa.Float(), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["program_code"], ["program.code"], name=op.f("fk_beneficiary_program_code_program")),
        sa.ForeignKeyConstraint(["batch_id"], ["beneficiary_batch.id"],
                                name=op.f("fk_beneficiary_batch_id_beneficiary_batch")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_beneficiary")),
        sa.UniqueConstraint("program_code", "partner_ref", name="uq_beneficiary_partner_ref"),
    )
    for col in ("cnic", "individual_id", "household_id", "person_id"):
        op.create_index(f"ix_beneficiary_{col}", "beneficiary", [col])
    op.create_index("ix_beneficiary_pending", "beneficiary", ["id"], postgresql_where=sa.text("run_id IS NULL"),
                    sqlite_where=sa.text("run_id IS NULL"))
    op.create_table(
        "person",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("individual_id", sa.BigInteger(), nullable=True),
        sa.Column("cnic", sa.String(13), nullable=True),
        sa.Column("origin_beneficiary_id", sa.BigInteger(), nullable=True),
        sa.Column("merged_into", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
        sa.UniqueConstraint("individual_id", name=op.f("uq_person_individual_id")),
        sa.UniqueConstraint("origin_beneficiary_id", name=op.f("uq_person_origin_beneficiary_id")),
    )
    op.create_index("ix_person_cnic", "person", ["cnic"])
    op.create_table(
        "match_candidate",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("beneficiary_id", sa.BigInteger(), nullable=False),
        sa.Column("individual_id", sa.BigInteger(), nullable=False),
        sa.Column("match_weight", sa.Float(), nullable=False),
        sa.Column("match_probability", sa.Float(), nullable=False),
        sa.Column("explanation", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("decided_by", sa.String(80), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_candidate")),
    )
    op.create_index("ix_match_candidate_beneficiary_id", "match_candidate", ["beneficiary_id"])
    op.create_index("ix_match_candidate_status", "match_candidate", ["status", "id"])
    op.create_table(
        "person_history",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("action", sa.String(12), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("other_person_id", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.Column("undone_by", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_history")),
    )
    op.create_index("ix_person_history_person_id", "person_history", ["person_id"])
    op.create_table(
        "linkage_run",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("started_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=True),
        sa.Column("model", sa.JSON(), nullable=True),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_linkage_run")),
    )


def downgrade() -> None:
    for t in ("linkage_run", "person_history", "match_candidate", "person", "beneficiary", "beneficiary_batch",
              "program"):
        op.drop_table(t)
