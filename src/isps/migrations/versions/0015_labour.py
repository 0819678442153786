"""labour registries: employers' uploads, registers, shops, daily wagers and their rotation, the job
board, quarterly employment reports and their reminders; the labour registry as a source

Revision ID: 0015_labour
Revises: 0005

The tables are keyed by registry ids without foreign keys (as the feeds' are), so this branch lands
independently. The source ``labour`` gets its precedence for ``labour_status``: below the public
payroll (a partner, 50), above an operator's correction (40) and the survey (30): an employer's
contribution file or a worker's own quarterly report is newer and more specific than the survey.
"""
from alembic import op
import sqlalchemy as sa

revision = "0015_labour"
down_revision = "0005"
branch_labels = None
depends_on = None

PRECEDENCE = [{"field": "labour_status", "source": "labour", "rank": 45}, {"field": "*", "source": "labour", "rank": 10}]


def _tables():
    from isps.db import Base
    from isps.labour import models

    return [Base.metadata.tables[name] for name in models.TABLES]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _tables():
        table.create(bind)
    prec = sa.table("source_precedence", sa.column("field", sa.String), sa.column("source", sa.String),
                    sa.column("rank", sa.SmallInteger))
    op.bulk_insert(prec, PRECEDENCE)


def downgrade() -> None:
    op.execute("DELETE FROM source_precedence WHERE source = 'labour'")
    bind = op.get_bind()
    for table in reversed(_tables()):
        table.drop(bind)
