"""DCI Social Registry API: partners, keys, data-sharing agreements, consents, transactions,
subscriptions and deliveries

Revision ID: 0006
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
NOW = sa.text("(CURRENT_TIMESTAMP)")


def _id():
    return sa.Column("id", BigId, autoincrement=True, nullable=False)


def _partner_fk(table: str):
    return sa.ForeignKeyConstraint(["partner_id"], ["dci_partner.id"], name=f"fk_{table}_partner_id_dci_partner")


def upgrade() -> None:
    op.create_table(
        "dci_partner", _id(),
        sa.Column("sender_id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("client_id", sa.String(60), nullable=False),
        sa.Column("client_secret_hash", sa.String(200), nullable=False),
        sa.Column("callback_uri", sa.String(300), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dci_partner"),
        sa.UniqueConstraint("sender_id", name="uq_dci_partner_sender_id"),
        sa.UniqueConstraint("client_id", name="uq_dci_partner_client_id"),
    )
    op.create_table(
        "dci_partner_key", _id(),
        sa.Column("partner_id", BigId, nullable=False),
        sa.Column("kid", sa.String(100), nullable=False),
        sa.Column("algorithm", sa.String(20), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=NOW, nullable=False),
        _partner_fk("dci_partner_key"),
        sa.PrimaryKeyConstraint("id", name="pk_dci_partner_key"),
        sa.UniqueConstraint("partner_id", "kid", name="uq_dci_partner_key_partner_kid"),
    )
    op.create_index("ix_dci_partner_key_partner_id", "dci_partner_key", ["partner_id"])
    op.create_table(
        "dci_agreement", _id(),
        sa.Column("partner_id", BigId, nullable=False),
        sa.Column("reference", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(60), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("consent_required", sa.Boolean(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(60), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=NOW, nullable=False),
        _partner_fk("dci_agreement"),
        sa.PrimaryKeyConstraint("id", name="pk_dci_agreement"),
    )
    op.create_index("ix_dci_agreement_partner_id", "dci_agreement", ["partner_id"])
    op.create_table(
        "dci_consent", _id(),
        sa.Column("partner_id", BigId, nullable=False),
        sa.Column("individual_id", sa.BigInteger(), nullable=False),
        sa.Column("purpose", sa.String(60), nullable=False),
        sa.Column("given_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("evidence", sa.String(200), nullable=True),
        sa.Column("recorded_by", sa.String(60), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), server_default=NOW, nullable=False),
        _partner_fk("dci_consent"),
        sa.PrimaryKeyConstraint("id", name="pk_dci_consent"),
    )
    op.create_index("ix_dci_consent_partner_individual", "dci_consent", ["partner_id", "individual_id"])
    op.create_table(
        "dci_transaction", _id(),
        sa.Column("partner_id", BigId, nullable=False),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("transaction_id", sa.String(99), nullable=False),
        sa.Column("correlation_id", sa.String(99), nullable=False),
        sa.Column("status", sa.String(4), nullable=False),
        sa.Column("reference_ids", sa.JSON(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        _partner_fk("dci_transaction"),
        sa.PrimaryKeyConstraint("id", name="pk_dci_transaction"),
        sa.UniqueConstraint("correlation_id", name="uq_dci_transaction_correlation_id"),
        sa.UniqueConstraint("partner_id", "message_id", name="uq_dci_transaction_partner_message"),
    )
    op.create_index("ix_dci_transaction_partner_txn", "dci_transaction", ["partner_id", "transaction_id"])
    op.create_table(
        "dci_subscription", _id(),
        sa.Column("code", sa.String(99), nullable=False),
        sa.Column("partner_id", BigId, nullable=False),
        sa.Column("transaction_id", sa.String(99), nullable=False),
        sa.Column("reference_id", sa.String(100), nullable=False),
        sa.Column("reg_event_type", sa.String(60), nullable=False),
        sa.Column("filter_type", sa.String(20), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("notify_record_type", sa.String(60), nullable=False),
        sa.Column("frequency", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        _partner_fk("dci_subscription"),
        sa.PrimaryKeyConstraint("id", name="pk_dci_subscription"),
        sa.UniqueConstraint("code", name="uq_dci_subscription_code"),
    )
    op.create_index("ix_dci_subscription_partner_id", "dci_subscription", ["partner_id"])
    op.create_table(
        "dci_delivery", _id(),
        sa.Column("partner_id", BigId, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("url", sa.String(300), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=NOW, nullable=False),
        _partner_fk("dci_delivery"),
        sa.PrimaryKeyConstraint("id", name="pk_dci_delivery"),
    )
    op.create_index("ix_dci_delivery_partner_id", "dci_delivery", ["partner_id"])


def downgrade() -> None:
    for table in ("dci_delivery", "dci_subscription", "dci_transaction", "dci_consent", "dci_agreement",
                  "dci_partner_key", "dci_partner"):
        op.drop_table(table)
