"""Fund releases, one import per status file, and why a status line was rejected

Revision ID: 0013_pay_fund_status
Revises: 0008

* ``fund_release``: money released into a program's fund (a ``rel`` posting in the ledger) before the
  program may pay it out.
* ``payment_status_import.file_sha256`` becomes unique: concurrent uploads of one file apply it once.
  Earlier repeats of an identical file (all their lines were duplicates) keep their row, their hash
  marked ``repeat-of-<first import>-<id>``.
* ``payment_status_line.reason`` says why a line was rejected; ``status_on`` may be empty (a line
  whose date was not a date is kept, rejected, without one).

Revision 0008 creates its tables from the current models, so on a fresh database the columns and the
index exist already: every step here checks first.
"""
import sqlalchemy as sa
from alembic import op

revision = "0013_pay_fund_status"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from isps.payments.models import FundRelease

    bind = op.get_bind()
    FundRelease.__table__.create(bind, checkfirst=True)
    insp = sa.inspect(bind)
    if "reason" not in {c["name"] for c in insp.get_columns("payment_status_line")}:
        with op.batch_alter_table("payment_status_line") as batch:
            batch.add_column(sa.Column("reason", sa.String(200), nullable=True))
            batch.alter_column("status_on", existing_type=sa.Date(), nullable=True)
    if "uq_payment_status_import_sha" not in {i["name"] for i in insp.get_indexes("payment_status_import")}:
        op.execute("""UPDATE payment_status_import SET file_sha256 = 'repeat-of-' || CAST((SELECT MIN(f.id)
            FROM payment_status_import f WHERE f.file_sha256 = payment_status_import.file_sha256) AS VARCHAR(20))
            || '-' || CAST(id AS VARCHAR(20)) WHERE id > (SELECT MIN(f.id) FROM payment_status_import f
            WHERE f.file_sha256 = payment_status_import.file_sha256)""")
        op.create_index("uq_payment_status_import_sha", "payment_status_import", ["file_sha256"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_payment_status_import_sha", table_name="payment_status_import")
    with op.batch_alter_table("payment_status_line") as batch:
        batch.drop_column("reason")
    op.drop_table("fund_release")
