"""One Window applications: application, application_step, application_event; the source
``counter`` (a household registered at the counter) and its precedence

Revision ID: 0016_applications
Revises: 0005

Keyed by registry ids without foreign keys into the registry (as the feeds' and labour's tables),
so this branch lands independently. ``counter``: what a counter operator keyed in from documents
seen (CNIC, B-form, utility bill) and a second person verified: for identity below an operator's
correction (40) and above the survey (30); for labour status below the survey (a declaration);
for every other field equal to every source (the newer effective date decides).
"""
from alembic import op
import sqlalchemy as sa

revision = "0016_applications"
down_revision = "0005"
branch_labels = None
depends_on = None

_IDENTITY = ("date_of_birth", "sex", "cnic", "id_document", "date_of_death", "marital_status", "full_name",
             "father_husband_name")
PRECEDENCE = ([{"field": f, "source": "counter", "rank": 35} for f in _IDENTITY]
              + [{"field": "labour_status", "source": "counter", "rank": 25},
                 {"field": "*", "source": "counter", "rank": 10}])


def _tables():
    from isps.db import Base
    from isps.citizen.applications import models

    return [Base.metadata.tables[name] for name in models.TABLES]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _tables():
        table.create(bind)
    prec = sa.table("source_precedence", sa.column("field", sa.String), sa.column("source", sa.String),
                    sa.column("rank", sa.SmallInteger))
    op.bulk_insert(prec, PRECEDENCE)


def downgrade() -> None:
    op.execute("DELETE FROM source_precedence WHERE source = 'counter'")
    bind = op.get_bind()
    for table in reversed(_tables()):
        table.drop(bind)
