"""Monitoring (issue 14): indicator_run, indicator_value

Revision ID: 0018_monitoring
Revises: 0001
"""
from alembic import op

revision = "0018_monitoring"
down_revision = "0001"
branch_labels = None
depends_on = None


def _tables():
    from isps.db import Base
    from isps.monitoring import models

    return [Base.metadata.tables[name] for name in models.TABLES]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _tables():
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_tables()):
        table.drop(bind)
