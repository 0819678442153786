"""PMT estimation: estimator, hold-out evaluation and maker-checker approval on pmt_model

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pmt_model', schema=None) as batch_op:
        batch_op.add_column(sa.Column('estimator', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('evaluation', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('approved_by', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('approved_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pmt_model', schema=None) as batch_op:
        batch_op.drop_column('approved_at')
        batch_op.drop_column('approved_by')
        batch_op.drop_column('evaluation')
        batch_op.drop_column('estimator')
