"""Field work (issue 17): field_device, field_submission, field_attachment, field_assignment,
distribution_site, distribution_entry

Revision ID: 0017_fieldwork
Revises: 0001

Keyed by registry, application and payment ids without foreign keys into those tables, so this branch
lands on its own.
"""
from alembic import op

revision = "0017_fieldwork"
down_revision = "0001"
branch_labels = None
depends_on = None


def _tables():
    from isps.db import Base
    from isps.fieldwork import models

    return [Base.metadata.tables[name] for name in models.TABLES]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _tables():
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_tables()):
        table.drop(bind)
