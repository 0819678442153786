"""NSER Plus data feeds: deliveries, records applied, source precedence, conflicts, exclusion flags,
bank and wallet accounts, change requests and re-certification flags

Revision ID: 0005
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
NOW = sa.text("(CURRENT_TIMESTAMP)")

# Declared precedence per field (higher believed over lower). Identity and civil status: NADRA over
# an operator's verified correction over the survey over imports over partners over self-reports.
# Labour status: a payroll (partner) over the others. Other fields ('*'): every source equal, so the
# newer effective date decides.
_IDENTITY = ("date_of_birth", "sex", "cnic", "id_document", "date_of_death", "marital_status", "full_name",
             "father_husband_name")
_IDENTITY_RANKS = {"nadra": 50, "operator": 40, "survey": 30, "import": 20, "synthetic": 20, "partner": 10,
                   "self_report": 5}
_LABOUR_RANKS = {"partner": 50, "operator": 40, "survey": 30, "import": 20, "synthetic": 20, "nadra": 10,
                 "self_report": 5}
_SOURCES = ("survey", "nadra", "partner", "self_report", "operator", "synthetic", "import")
PRECEDENCE = ([{"field": f, "source": s, "rank": r} for f in _IDENTITY for s, r in _IDENTITY_RANKS.items()]
              + [{"field": "labour_status", "source": s, "rank": r} for s, r in _LABOUR_RANKS.items()]
              + [{"field": "*", "source": s, "rank": 10} for s in _SOURCES])


def upgrade() -> None:
    op.create_table(
        "feed_delivery",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("feed", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("batch_id", BigId, nullable=True),
        sa.Column("received_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["ingest_batch.id"], name=op.f("fk_feed_delivery_batch_id_ingest_batch")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_delivery")),
        sa.UniqueConstraint("feed", "reference", name="uq_feed_delivery_feed_reference"),
    )
    op.create_table(
        "feed_record",
        sa.Column("feed", sa.String(length=20), nullable=False),
        sa.Column("source_ref", sa.String(length=80), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("feed", "source_ref", name=op.f("pk_feed_record")),
    )
    op.create_table(
        "source_precedence",
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("field", "source", name=op.f("pk_source_precedence")),
    )
    op.create_table(
        "source_conflict",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("entity", sa.String(length=12), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("household_id", sa.BigInteger(), nullable=False),
        sa.Column("district_id", sa.SmallInteger(), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("kept_value", sa.Text(), nullable=True),
        sa.Column("kept_source", sa.String(length=20), nullable=False),
        sa.Column("kept_since", sa.Date(), nullable=True),
        sa.Column("offered_value", sa.Text(), nullable=True),
        sa.Column("offered_source", sa.String(length=20), nullable=False),
        sa.Column("offered_effective", sa.Date(), nullable=False),
        sa.Column("source_ref", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("resolved_by", sa.String(length=80), nullable=True),
        sa.Column("resolution", sa.String(length=400), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_conflict")),
    )
    op.create_index("ix_source_conflict_district_status", "source_conflict", ["district_id", "status", "id"])
    op.create_table(
        "exclusion_flag",
        sa.Column("individual_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("household_id", sa.BigInteger(), nullable=False),
        sa.Column("district_id", sa.SmallInteger(), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("source_ref", sa.String(length=200), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("individual_id", "reason", name=op.f("pk_exclusion_flag")),
    )
    op.create_index(op.f("ix_exclusion_flag_household_id"), "exclusion_flag", ["household_id"])
    op.create_table(
        "financial_account",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=6), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("account_number", sa.String(length=34), nullable=False),
        sa.Column("individual_id", sa.BigInteger(), nullable=False),
        sa.Column("household_id", sa.BigInteger(), nullable=False),
        sa.Column("district_id", sa.SmallInteger(), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("source_ref", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_financial_account")),
        sa.UniqueConstraint("kind", "provider", "account_number", name="uq_financial_account_number"),
    )
    op.create_index(op.f("ix_financial_account_individual_id"), "financial_account", ["individual_id"])
    op.create_index(op.f("ix_financial_account_household_id"), "financial_account", ["household_id"])
    op.create_table(
        "change_request",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("entity", sa.String(length=12), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("household_id", sa.BigInteger(), nullable=False),
        sa.Column("district_id", sa.SmallInteger(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("evidence_ref", sa.String(length=200), nullable=True),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("requested_by", sa.String(length=80), nullable=False),
        sa.Column("requested_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decision_note", sa.String(length=400), nullable=True),
        sa.Column("applied_fields", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_request")),
    )
    op.create_index(op.f("ix_change_request_household_id"), "change_request", ["household_id"])
    op.create_index("ix_change_request_district_status", "change_request", ["district_id", "status", "id"])
    op.create_table(
        "recertification_flag",
        sa.Column("household_id", sa.BigInteger(), nullable=False),
        sa.Column("district_id", sa.SmallInteger(), nullable=False),
        sa.Column("verified_on", sa.Date(), nullable=False),
        sa.Column("flagged_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("household_id", name=op.f("pk_recertification_flag")),
    )
    op.create_index("ix_recertification_flag_district_status", "recertification_flag", ["district_id", "status"])
    precedence = sa.table("source_precedence", sa.column("field", sa.String), sa.column("source", sa.String),
                          sa.column("rank", sa.SmallInteger))
    op.bulk_insert(precedence, PRECEDENCE)


def downgrade() -> None:
    for name in ("recertification_flag", "change_request", "financial_account", "exclusion_flag", "source_conflict",
                 "source_precedence", "feed_record", "feed_delivery"):
        op.drop_table(name)
