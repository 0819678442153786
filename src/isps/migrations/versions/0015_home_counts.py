"""The living people of a district, counted without reading the whole registry

Revision ID: 0015_home_counts
Revises: 0012

The home page shows how many people a district holds (``services.home.figures``). Individuals
carry ``district_id`` but had no index on it, so the count read every person of Punjab; a partial
index on the living gives it as an index-only count of the district's entries.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_home_counts"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_individual_district_alive", "individual", ["district_id"],
                    sqlite_where=sa.text("date_of_death IS NULL"),
                    postgresql_where=sa.text("date_of_death IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_individual_district_alive", table_name="individual")
