"""eligibility rules, runs and results; declared income and maternal status

Revision ID: 0003
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("household") as b:
        b.add_column(sa.Column("monthly_income", sa.Float(), nullable=True))
    with op.batch_alter_table("individual") as b:
        b.add_column(sa.Column("maternal_status", sa.String(length=10), nullable=True))
    op.create_table(
        "eligibility_rule",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("program_code", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_by", sa.String(length=60), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eligibility_rule")),
    )
    op.create_index(op.f("ix_eligibility_rule_program_code"), "eligibility_rule", ["program_code"])
    op.create_table(
        "eligibility_run",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("rule_id", BigId, nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("pmt_model_id", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(length=60), nullable=False),
        sa.Column("started_at", sa.DateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("evaluated", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["eligibility_rule.id"], name=op.f("fk_eligibility_run_rule_id_eligibility_rule")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eligibility_run")),
    )
    op.create_index(op.f("ix_eligibility_run_rule_id"), "eligibility_run", ["rule_id"])
    op.create_table(
        "eligibility_result",
        sa.Column("run_id", BigId, nullable=False),
        sa.Column("household_id", sa.BigInteger(), nullable=False),
        sa.Column("individual_id", sa.BigInteger(), nullable=False),
        sa.Column("district_id", sa.SmallInteger(), nullable=False),
        sa.Column("eligible", sa.Boolean(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("pmt", sa.Float(), nullable=True),
        sa.Column("age", sa.SmallInteger(), nullable=True),
        sa.Column("monthly_income", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["eligibility_run.id"], name=op.f("fk_eligibility_result_run_id_eligibility_run")),
        sa.PrimaryKeyConstraint("run_id", "household_id", "individual_id", name=op.f("pk_eligibility_result")),
    )
    op.create_index("ix_eligibility_result_run_district", "eligibility_result", ["run_id", "district_id", "eligible"])


def downgrade() -> None:
    op.drop_table("eligibility_result")
    op.drop_table("eligibility_run")
    op.drop_table("eligibility_rule")
    with op.batch_alter_table("individual") as b:
        b.drop_column("maternal_status")
    with op.batch_alter_table("household") as b:
        b.drop_column("monthly_income")
