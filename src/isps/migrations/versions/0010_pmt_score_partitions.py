"""pmt_score partitioned by model on PostgreSQL

Revision ID: 0010
Revises: 0001

On PostgreSQL ``pmt_score`` becomes a table partitioned by LIST (model_id): one partition
per model version that was re-scored in full (``pmt_score_m<model id>``) and a default
partition for the scores of models that never were. A full re-score
(``targeting.pmt.rescore_all``) then builds the model's scores as a fresh table with one
parallel ``CREATE TABLE AS``, builds its indexes in bulk and swaps it in for the old
partition, in one transaction, instead of deleting and inserting a million rows through
two indexes and a foreign-key trigger per row. Columns, keys and index names are those
of 0001, so every query reads the table as before. SQLite keeps the plain table.
"""
from alembic import op
from sqlalchemy import text

revision = "0010"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = """model_id BIGINT NOT NULL, household_id BIGINT NOT NULL, district_id SMALLINT NOT NULL,
    score DOUBLE PRECISION NOT NULL, scored_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT pk_pmt_score PRIMARY KEY (model_id, household_id),
    CONSTRAINT fk_pmt_score_model_id_pmt_model FOREIGN KEY (model_id) REFERENCES pmt_model (id)"""


def _rename_away(suffix: str) -> None:
    op.execute(f"ALTER TABLE pmt_score RENAME TO pmt_score_{suffix}")
    op.execute(f"ALTER TABLE pmt_score_{suffix} RENAME CONSTRAINT pk_pmt_score TO pk_pmt_score_{suffix}")
    op.execute(f"ALTER TABLE pmt_score_{suffix} RENAME CONSTRAINT fk_pmt_score_model_id_pmt_model "
               f"TO fk_pmt_score_{suffix}_model_id")
    op.execute(f"ALTER INDEX ix_pmt_score_model_district_score RENAME TO ix_pmt_score_{suffix}_model_district_score")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _rename_away("flat")
    op.execute(f"CREATE TABLE pmt_score ({COLUMNS}) PARTITION BY LIST (model_id)")
    op.execute("CREATE INDEX ix_pmt_score_model_district_score ON pmt_score (model_id, district_id, score)")
    op.execute("CREATE TABLE pmt_score_default PARTITION OF pmt_score DEFAULT")
    for (model_id,) in bind.execute(text("SELECT DISTINCT model_id FROM pmt_score_flat ORDER BY 1")):
        op.execute(f"CREATE TABLE pmt_score_m{int(model_id)} PARTITION OF pmt_score FOR VALUES IN ({int(model_id)})")
    op.execute("INSERT INTO pmt_score (model_id, household_id, district_id, score, scored_at) "
               "SELECT model_id, household_id, district_id, score, scored_at FROM pmt_score_flat")
    op.execute("DROP TABLE pmt_score_flat")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _rename_away("parted")
    op.execute(f"CREATE TABLE pmt_score ({COLUMNS})")
    op.execute("CREATE INDEX ix_pmt_score_model_district_score ON pmt_score (model_id, district_id, score)")
    op.execute("INSERT INTO pmt_score (model_id, household_id, district_id, score, scored_at) "
               "SELECT model_id, household_id, district_id, score, scored_at FROM pmt_score_parted")
    op.execute("DROP TABLE pmt_score_parted")
