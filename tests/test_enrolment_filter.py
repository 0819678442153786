"""The duplication filter inside one run (duplicate registrations of the same people), runs of
another program refused, and incompatibility read both ways."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from isps.db import transaction
from isps.programs import enrolment as en
from isps.synth.generator import DirtOptions
from isps.synth.load import load_synthetic
from isps.targeting import pmt
from isps.targeting.eligibility import rules

ON = date(2026, 6, 1)


def run_of(s, code: str) -> int:
    rules.install_shipped_rules(s)
    row, _ = rules.active_rule(s, code)
    return rules.run(s, row, "test", on=ON).id


@pytest.fixture
def dirty(engine):
    """600 households of which about one in five is registered a second time (same CNICs)."""
    load_synthetic(engine, 600, seed=7, dirt=DirtOptions(duplicate_rate=0.2, typo_rate=0.0))
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s), on=ON)
    return engine


def _cnics_twice(s, code: str, column: str) -> int:
    return s.execute(text(f"""SELECT COUNT(*) FROM (SELECT i.cnic FROM enrolment e JOIN individual i ON i.id = e.{column}
        WHERE e.program_code = :c AND e.status IN ('waiting','enrolled','suspended') AND i.cnic IS NOT NULL
        GROUP BY i.cnic HAVING COUNT(*) > 1) x"""), {"c": code}).scalar_one()


@pytest.mark.parametrize("code,column", [("bisp_kafaalat", "recipient_id"),
                                         ("undergraduate_scholarship", "individual_id")])
def test_a_person_registered_twice_is_listed_once_per_run(dirty, code, column):
    with transaction(dirty) as s:
        run = run_of(s, code)
        # the run itself holds the same CNIC on more than one line
        person = "r.individual_id" if column == "individual_id" else (
            "COALESCE((SELECT MIN(w.id) FROM individual w WHERE w.household_id = r.household_id AND w.sex = 'female' "
            "AND w.date_of_death IS NULL AND w.date_of_birth <= :adult), (SELECT MIN(w.id) FROM individual w "
            "WHERE w.household_id = r.household_id AND w.date_of_death IS NULL))")
        in_run = s.execute(text(f"""SELECT COUNT(*) - COUNT(DISTINCT i.cnic) FROM eligibility_result r
            JOIN individual i ON i.id = {person} WHERE r.run_id = :r AND r.eligible = :y AND i.cnic IS NOT NULL"""),
                           {"r": run, "y": True, "adult": date(2008, 6, 1)}).scalar_one()
        assert in_run > 0
        out = en.enrol_from_run(s, code, run, "test", ON)
        assert _cnics_twice(s, code, column) == 0
        assert out["duplicates"] == in_run
        assert out["listed"] == out["eligible"] - out["duplicates"] - out["incompatible"]
        # the line kept is the best-ranked one: nobody listed ranks behind a dropped line of the same CNIC
        worse_kept = s.execute(text(f"""SELECT COUNT(*) FROM enrolment e JOIN individual i ON i.id = e.{column}
            JOIN eligibility_result r ON r.run_id = :r AND r.eligible = :y
            JOIN individual j ON j.cnic = i.cnic
            WHERE e.program_code = :c AND r.pmt < e.rank_value AND j.id = {person}
            AND NOT (r.household_id = e.household_id AND r.individual_id = e.individual_id)"""),
                                {"r": run, "y": True, "c": code, "adult": date(2008, 6, 1)}).scalar_one()
        assert worse_kept == 0
        again = en.enrol_from_run(s, code, run, "test", ON)
        assert again["listed"] == 0 and again["duplicates"] == out["eligible"]


def test_a_run_of_another_program_is_refused(province):
    with transaction(province) as s:
        run = run_of(s, "bisp_taleemi_wazaif")
        with pytest.raises(en.EnrolmentError) as err:
            en.enrol_from_run(s, "ppaf_interest_free_loans", run, "test", ON)
        assert "bisp_taleemi_wazaif" in str(err.value) and "ppaf_interest_free_loans" in str(err.value)
        with pytest.raises(en.EnrolmentError, match="no eligibility run 987654"):
            en.enrol_from_run(s, "bisp_kafaalat", 987654, "test", ON)
        assert s.execute(text("SELECT COUNT(*) FROM enrolment")).scalar_one() == 0


def test_a_run_of_another_program_is_refused_by_api(client, province):
    from tests.conftest import token_for
    with transaction(province) as s:
        run = run_of(s, "bisp_taleemi_wazaif")
    r = client.post(f"/api/v1/programs/ppaf_interest_free_loans/enrolment/runs/{run}",
                    headers=token_for(client, "manager"))
    assert r.status_code == 422 and "bisp_taleemi_wazaif" in r.json()["detail"]
    r = client.post("/api/v1/programs/bisp_kafaalat/enrolment/runs/987654", headers=token_for(client, "manager"))
    assert r.status_code == 404


def test_incompatibility_works_both_ways(province):
    # pbm_financial_assistance lists bisp_kafaalat; enrolling into Kafaalat after PBM filters PBM's people too
    with transaction(province) as s:
        assert "bisp_kafaalat" not in en.policy(s, "bisp_kafaalat").spec.get("incompatible", [])
        assert "pbm_financial_assistance" in en.summary(s, "bisp_kafaalat")["incompatible"]
        run_p = run_of(s, "pbm_financial_assistance")
        first = en.enrol_from_run(s, "pbm_financial_assistance", run_p, "test", ON)
        assert first["enrolled"] > 0
        run_k = run_of(s, "bisp_kafaalat")
        res = en.enrol_from_run(s, "bisp_kafaalat", run_k, "test", ON)
        assert res["incompatible"] > 0
        clash = s.execute(text("""SELECT COUNT(*) FROM enrolment k JOIN enrolment p ON p.household_id = k.household_id
            WHERE k.program_code = 'bisp_kafaalat' AND p.program_code = 'pbm_financial_assistance'
            AND p.status = 'enrolled'""")).scalar_one()
        assert clash == 0
