"""Sign-in sessions that sign-out revokes, and failed sign-in counters (throttling and lockout)

Revision ID: 0013_access_signin
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0013_access_signin'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'auth_session',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('username', sa.String(length=60), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_auth_session_username', 'auth_session', ['username'])
    op.create_table(
        'sign_in_failure',
        sa.Column('key', sa.String(length=100), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('first_at', sa.DateTime(), nullable=False),
        sa.Column('last_at', sa.DateTime(), nullable=False),
        sa.Column('locked', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )


def downgrade() -> None:
    op.drop_table('sign_in_failure')
    op.drop_index('ix_auth_session_username', table_name='auth_session')
    op.drop_table('auth_session')
