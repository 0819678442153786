"""A partial index on the individuals who have died

Revision ID: 0012
Revises: 0001

Payments check, before every export, whether any beneficiary of the payroll has died
(``payments.payroll.stop_for_deaths``). The dead are a small share of the registry: a partial
index finds them without reading every person.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_individual_deceased", "individual", ["id"],
                    sqlite_where=sa.text("date_of_death IS NOT NULL"),
                    postgresql_where=sa.text("date_of_death IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_individual_deceased", table_name="individual")
