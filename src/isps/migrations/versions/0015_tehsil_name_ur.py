"""Tehsil names in Urdu

Revision ID: 0015_tehsil_name_ur
Revises: 0001

Districts and divisions carried their Urdu names from the start; tehsils only their English ones,
so Urdu pages showed "Lahore Cantonment" among Urdu words. ``tehsil.name_ur`` is filled here from
the geography data (``registry/data/punjab.json``) for a database seeded before it; a new database
is seeded with it (``registry.geography.seed``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_tehsil_name_ur"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from isps.registry.geography import tehsil_names_ur

    op.add_column("tehsil", sa.Column("name_ur", sa.String(60), nullable=True))
    tehsil = sa.table("tehsil", sa.column("id", sa.SmallInteger), sa.column("name_ur", sa.String))
    names = [{"tid": tid, "ur": name} for tid, name in sorted(tehsil_names_ur().items())]
    op.get_bind().execute(tehsil.update().where(tehsil.c.id == sa.bindparam("tid"))
                          .values(name_ur=sa.bindparam("ur")), names)


def downgrade() -> None:
    with op.batch_alter_table("tehsil") as batch:
        batch.drop_column("name_ur")
