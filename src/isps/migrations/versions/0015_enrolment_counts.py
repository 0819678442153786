"""Enrolments counted per program, district and status, kept by the database

Revision ID: 0015_enrolment_counts
Revises: 0014_lists_keyset

The summary above a program's enrolled and waiting lists counted every enrolment of the program
on every request (about a million at 1M households, most of the page's time). ``enrolment_count``
holds those counts; triggers keep it in the transaction of every change to ``enrolment``, whichever
code path makes it (the enrolment path, the waiting-list fill, exits, deaths, graduation,
suspensions, a bulk load):

* PostgreSQL: statement-level triggers with transition tables, so one ``INSERT … SELECT … GROUP BY
  … ON CONFLICT`` per statement, set-based however many rows the statement changed;
* SQLite (no statement triggers): row triggers, one upsert of a tiny table per changed row, only
  when the program, district or status changes.

The table starts from a COUNT of what is there; ``isps.programs.counts.check`` and ``rebuild``
compare it with a fresh COUNT and rebuild it.
"""

from alembic import op

revision = "0015_enrolment_counts"
down_revision = "0014_lists_keyset"
branch_labels = None
depends_on = None

KEY = "program_code, district_id, status"

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION enrolment_count_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO enrolment_count ({KEY}, n)
    SELECT {KEY}, COUNT(*) FROM new_rows GROUP BY {KEY} ORDER BY {KEY}
    ON CONFLICT ({KEY}) DO UPDATE SET n = enrolment_count.n + EXCLUDED.n;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO enrolment_count ({KEY}, n)
    SELECT {KEY}, -COUNT(*) FROM old_rows GROUP BY {KEY} ORDER BY {KEY}
    ON CONFLICT ({KEY}) DO UPDATE SET n = enrolment_count.n + EXCLUDED.n;
  ELSE
    INSERT INTO enrolment_count ({KEY}, n)
    SELECT {KEY}, SUM(k) FROM (
        SELECT {KEY}, 1 AS k FROM new_rows UNION ALL SELECT {KEY}, -1 AS k FROM old_rows) d
    GROUP BY {KEY} HAVING SUM(k) <> 0 ORDER BY {KEY}
    ON CONFLICT ({KEY}) DO UPDATE SET n = enrolment_count.n + EXCLUDED.n;
  END IF;
  RETURN NULL;
END $$"""

PG_TRIGGERS = [
    "CREATE TRIGGER enrolment_count_ins AFTER INSERT ON enrolment REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION enrolment_count_apply()",
    "CREATE TRIGGER enrolment_count_upd AFTER UPDATE ON enrolment REFERENCING OLD TABLE AS old_rows "
    "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION enrolment_count_apply()",
    "CREATE TRIGGER enrolment_count_del AFTER DELETE ON enrolment REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION enrolment_count_apply()",
]


def _sqlite_add(row: str, k: str) -> str:
    return (f"INSERT INTO enrolment_count ({KEY}, n) VALUES ({row}.program_code, {row}.district_id, {row}.status, {k}) "
            f"ON CONFLICT ({KEY}) DO UPDATE SET n = n + ({k});")


SQLITE_TRIGGERS = [
    f"CREATE TRIGGER enrolment_count_ins AFTER INSERT ON enrolment BEGIN {_sqlite_add('NEW', '1')} END",
    f"CREATE TRIGGER enrolment_count_del AFTER DELETE ON enrolment BEGIN {_sqlite_add('OLD', '-1')} END",
    "CREATE TRIGGER enrolment_count_upd AFTER UPDATE OF program_code, district_id, status ON enrolment "
    "WHEN OLD.program_code IS NOT NEW.program_code OR OLD.district_id IS NOT NEW.district_id "
    f"OR OLD.status IS NOT NEW.status BEGIN {_sqlite_add('OLD', '-1')} {_sqlite_add('NEW', '1')} END",
]


def upgrade() -> None:
    from isps.db import Base
    from isps.programs import models  # noqa: F401

    bind = op.get_bind()
    Base.metadata.tables["enrolment_count"].create(bind, checkfirst=True)
    if bind.dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for ddl in PG_TRIGGERS:
            op.execute(ddl)
    else:
        for ddl in SQLITE_TRIGGERS:
            op.execute(ddl)
    op.execute(f"INSERT INTO enrolment_count ({KEY}, n) SELECT {KEY}, COUNT(*) FROM enrolment GROUP BY {KEY}")


def downgrade() -> None:
    for name in ("enrolment_count_ins", "enrolment_count_upd", "enrolment_count_del"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON enrolment" if op.get_bind().dialect.name == "postgresql"
                                                      else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS enrolment_count_apply()")
    op.drop_table("enrolment_count")
