"""DCI test partners: a partner flagged as a test partner (a conformance suite's sandbox client),
served only where ISPS_DCI_TEST_PARTNERS=1, and whether such a partner's signatures go unchecked

Revision ID: 0014_dci_test_partner
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = "0014_dci_test_partner"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (SQLite too): dci_partner is referenced by every DCI table, so no table rebuild
    op.add_column("dci_partner", sa.Column("test_partner", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("dci_partner", sa.Column("accept_unsigned", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    op.drop_column("dci_partner", "accept_unsigned")
    op.drop_column("dci_partner", "test_partner")
