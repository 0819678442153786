"""Migration 0015 moves every stored program code of PPAF's loans to the catalogue's
(``ppaf_interest_free_loan`` → ``ppaf_interest_free_loans``), a graduation's referral target inside
a stored policy included, on both backends."""

from __future__ import annotations

import importlib.util
import json
from datetime import date
from importlib import resources

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import text

OLD, NEW = "ppaf_interest_free_loan", "ppaf_interest_free_loans"


def _migration():
    path = resources.files("isps").joinpath("migrations/versions/0015_enrolment_filter.py")
    spec = importlib.util.spec_from_file_location("m0015", str(path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stored_ppaf_codes_move_to_the_catalogue_code(engine):
    spec = {"amount": {"kind": "fixed", "amount": 8500}, "graduation": {"pmt_above": 40, "refer_to": OLD}}
    with engine.begin() as conn:
        cast = "CAST(:s AS JSON)" if conn.dialect.name == "postgresql" else ":s"
        conn.execute(text(f"""INSERT INTO enrolment_policy (program_code, unit, frequency, spec, updated_by)
            VALUES ('bisp_kafaalat', 'household', 'quarterly', {cast}, 'old')"""), {"s": json.dumps(spec)})
        conn.execute(text("""INSERT INTO referral (from_program, to_program, household_id, individual_id, reason,
            outcome, on_date) VALUES ('bisp_kafaalat', :old, 1, 0, 'graduated', 'listed', :d)"""),
                     {"old": OLD, "d": date(2026, 6, 1)})
        conn.execute(text("""INSERT INTO enrolment (program_code, household_id, individual_id, district_id, status,
            female, disabled, channel, warnings, listed_on) VALUES (:old, 1, 0, 1, 'waiting', :f, :f, 'post', 0, :d)"""),
                     {"old": OLD, "f": False, "d": date(2026, 6, 1)})
    with engine.begin() as conn:
        with Operations.context(MigrationContext.configure(conn)):
            _migration()._rename(OLD, NEW)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT program_code FROM enrolment")).scalar_one() == NEW
        assert conn.execute(text("SELECT to_program FROM referral")).scalar_one() == NEW
        stored = conn.execute(text("SELECT spec FROM enrolment_policy WHERE program_code = 'bisp_kafaalat'")).scalar_one()
        stored = stored if isinstance(stored, dict) else json.loads(stored)
        assert stored["graduation"]["refer_to"] == NEW
        assert conn.execute(text("SELECT COUNT(*) FROM program WHERE code = :new"), {"new": NEW}).scalar_one() == 1
