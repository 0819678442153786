"""eligibility_result partitioned by run on PostgreSQL

Revision ID: 0011
Revises: 0003

On PostgreSQL ``eligibility_result`` becomes a table partitioned by LIST (run_id): one
partition per run over the whole registry or a district (``eligibility_result_r<run id>``)
and a default partition for the small runs (a re-assessment of the households named by
registry events, a referral). A large run (``targeting.eligibility.rules.run``) then builds
its decisions as a fresh table with one parallel ``CREATE TABLE AS``, builds its indexes in
bulk, checks the foreign key in one statement and attaches the table, instead of inserting
millions of rows one by one through two indexes and a foreign-key trigger (an INSERT's SELECT
never runs in parallel). Columns, keys and index names are those of 0003, so every query reads
the table as before. Runs already stored with at least ``OWN_PARTITION`` decisions get a
partition of their own here; the rest go to the default partition. SQLite keeps the plain table.
"""
from alembic import op
from sqlalchemy import text

revision = "0011"
down_revision = "0003"
branch_labels = None
depends_on = None

OWN_PARTITION = 10_000

COLUMNS = """run_id BIGINT NOT NULL, household_id BIGINT NOT NULL, individual_id BIGINT NOT NULL,
    district_id SMALLINT NOT NULL, eligible BOOLEAN NOT NULL, failed INTEGER NOT NULL,
    pmt DOUBLE PRECISION, age SMALLINT, monthly_income DOUBLE PRECISION,
    CONSTRAINT pk_eligibility_result PRIMARY KEY (run_id, household_id, individual_id),
    CONSTRAINT fk_eligibility_result_run_id_eligibility_run FOREIGN KEY (run_id) REFERENCES eligibility_run (id)"""
NAMES = "run_id, household_id, individual_id, district_id, eligible, failed, pmt, age, monthly_income"


def _rename_away(suffix: str) -> None:
    op.execute(f"ALTER TABLE eligibility_result RENAME TO eligibility_result_{suffix}")
    op.execute(f"ALTER TABLE eligibility_result_{suffix} RENAME CONSTRAINT pk_eligibility_result "
               f"TO pk_eligibility_result_{suffix}")
    op.execute(f"ALTER TABLE eligibility_result_{suffix} RENAME CONSTRAINT "
               f"fk_eligibility_result_run_id_eligibility_run TO fk_eligibility_result_{suffix}_run_id")
    op.execute(f"ALTER INDEX ix_eligibility_result_run_district RENAME TO ix_eligibility_result_{suffix}_run_district")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _rename_away("flat")
    op.execute(f"CREATE TABLE eligibility_result ({COLUMNS}) PARTITION BY LIST (run_id)")
    op.execute("CREATE INDEX ix_eligibility_result_run_district ON eligibility_result (run_id, district_id, eligible)")
    op.execute("CREATE TABLE eligibility_result_default PARTITION OF eligibility_result DEFAULT")
    large = bind.execute(text("SELECT run_id FROM eligibility_result_flat GROUP BY run_id HAVING COUNT(*) >= :n "
                              "ORDER BY 1"), {"n": OWN_PARTITION}).scalars().all()
    for run_id in large:
        op.execute(f"CREATE TABLE eligibility_result_r{int(run_id)} PARTITION OF eligibility_result "
                   f"FOR VALUES IN ({int(run_id)})")
    op.execute(f"INSERT INTO eligibility_result ({NAMES}) SELECT {NAMES} FROM eligibility_result_flat")
    op.execute("DROP TABLE eligibility_result_flat")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _rename_away("parted")
    op.execute(f"CREATE TABLE eligibility_result ({COLUMNS})")
    op.execute("CREATE INDEX ix_eligibility_result_run_district ON eligibility_result (run_id, district_id, eligible)")
    op.execute(f"INSERT INTO eligibility_result ({NAMES}) SELECT {NAMES} FROM eligibility_result_parted")
    op.execute("DROP TABLE eligibility_result_parted")
