"""Administrative exclusions are applied: the payroll feed's flag is a variable of the rule language
(BISP's and Bait-ul-Mal's shipped rules exclude government employees), the explanations name the
source and date, electricity and telecom spend are variables too, and an exclusion is lifted by an
approved change request with evidence (an appeal), after which the household is re-assessed."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from isps.db import transaction
from isps.interop import feeds
from isps.interop.feeds import changes
from isps.programs import enrolment as en, reassessment
from isps.services.events import drain
from isps.targeting.eligibility import rules

ON = date(2026, 6, 1)


def _payroll(engine, individual_id: int, reference: str) -> None:
    with engine.connect() as conn:
        cnic = conn.execute(text("SELECT cnic FROM individual WHERE id = :i"), {"i": individual_id}).scalar_one()
    rec = {"record_ref": "E-1", "cnic": cnic, "employer": "Health Department", "bps_grade": "9", "monthly_pay": "42000",
           "pay_month": "2026-05-01"}
    report = feeds.apply_delivery(engine, "payroll", {"feed": "payroll", "reference": reference, "records": [rec]},
                                  reference=reference, actor="test")
    assert report.accepted == 1


def _eligible_home(engine) -> tuple[int, int]:
    """A household Kafaalat's rule takes, and an adult member with a CNIC (the one on the payroll)."""
    with transaction(engine) as s:
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test", on=ON)
        return s.execute(text(f"""SELECT r.household_id, MIN(i.id) FROM eligibility_result r JOIN individual i
            ON i.household_id = r.household_id AND i.cnic IS NOT NULL AND i.date_of_death IS NULL
            WHERE r.run_id = {run.id} AND r.eligible = :y GROUP BY r.household_id ORDER BY r.household_id
            LIMIT 1"""), {"y": True}).one()


def test_bisp_excludes_a_household_with_a_member_on_the_payroll_and_says_why(province):
    home, member = _eligible_home(province)
    _payroll(province, member, "payroll-2026-05")
    with transaction(province) as s:
        row, rule = rules.active_rule(s, "bisp_kafaalat")
        assert any(c.id == "not_public_sector" for c in rule.criteria)
        run = rules.run(s, row, "test", on=ON)
        took = s.execute(text(f"SELECT eligible FROM eligibility_result WHERE run_id = {run.id} "
                              f"AND household_id = {home}")).scalar_one()
        assert not took
        decision = rules.explain(s, rule, home, on=ON)[0]
        said = "; ".join(o.sentence for o in decision.outcomes if not o.met)
        assert ("excluded: a member is on the public-sector payroll (Health Department, BPS 9: payroll "
                "payroll-2026-05 #E-1, 2026-05-01)") in said
        ur = "; ".join(o.sentence for o in rules.explain(s, rule, home, on=ON, lang="ur")[0].outcomes if not o.met)
        assert "سرکاری" in ur and "2026-05-01" in ur
        page = rules.results_page(s, run, eligible=False, limit=1000)
        assert any("public-sector payroll (Health Department" in " ".join(p["reasons"]) for p in page
                   if p["household_id"] == home)
        # every BISP program and Bait-ul-Mal's assistance exclude government employees
        for code in ("bisp_nashonuma", "bisp_taleemi_wazaif", "pbm_financial_assistance"):
            assert "not any_member(public_sector_employee)" in [c.when for c in rules.active_rule(s, code)[1].criteria]


def test_an_enrolled_household_flagged_by_the_payroll_is_reviewed_with_the_source(province):
    with transaction(province) as s:
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        en.enrol_from_run(s, "bisp_kafaalat", rules.run(s, row, "test", on=ON).id, "test", ON)
        e = s.execute(text("""SELECT id, household_id, recipient_id FROM enrolment WHERE program_code = 'bisp_kafaalat'
            AND status = 'enrolled' ORDER BY id LIMIT 1""")).one()
    drain(province, on=ON)
    _payroll(province, e.recipient_id, "payroll-2026-05-b")
    drain(province, on=ON)
    with transaction(province) as s:
        flagged = {f["enrolment_id"]: f for f in reassessment.reviews(s, "bisp_kafaalat")}
        assert e.id in flagged
        assert "public-sector payroll (Health Department, BPS 9: payroll payroll-2026-05-b #E-1, 2026-05-01)" \
            in flagged[e.id]["reason"]
        assert s.execute(text("SELECT status FROM enrolment WHERE id = :i"), {"i": e.id}).scalar_one() == "enrolled"


def test_an_exclusion_is_lifted_by_an_approved_appeal(province):
    home, member = _eligible_home(province)
    _payroll(province, member, "payroll-2026-05-c")
    with transaction(province) as s:
        try:
            changes.request_change(s, entity="household", entity_id=home, changes={
                "exclusion:public_sector_employee": "lifted"}, source="operator", evidence="retired", requested_by="c")
            raise AssertionError("an appeal on the household was accepted")
        except changes.ChangeRequestError as exc:
            assert "on the individual" in str(exc)
        other = s.execute(text("SELECT MIN(id) FROM individual WHERE household_id <> :h"), {"h": home}).scalar()
        try:
            changes.request_change(s, entity="individual", entity_id=other, changes={
                "exclusion:public_sector_employee": "lifted"}, source="operator", evidence="x", requested_by="c")
            raise AssertionError("an appeal without an exclusion was accepted")
        except changes.ChangeRequestError as exc:
            assert "no active exclusion" in str(exc)
        req = changes.request_change(s, entity="individual", entity_id=member,
                                     changes={"exclusion:public_sector_employee": "lifted"}, source="operator",
                                     evidence="retired on 2026-03-31: pension order attached",
                                     evidence_ref="PO-2026-311", requested_by="kasur_counter")
        assert s.execute(text("SELECT active FROM exclusion_flag WHERE individual_id = :i"), {"i": member}).scalar()
        done = changes.approve_change(s, req.id, "lahore_officer")
        assert done.status == "applied" and "exclusion:public_sector_employee" in done.applied_fields
        active, detail = s.execute(text("SELECT active, detail FROM exclusion_flag WHERE individual_id = :i"),
                                   {"i": member}).one()
        assert not active and f"lifted by change request {req.id}" in detail
        row, rule = rules.active_rule(s, "bisp_kafaalat")
        decision = rules.explain(s, rule, home, on=ON)[0]
        assert all(o.met for o in decision.outcomes if o.id == "not_public_sector")
        assert s.execute(text("SELECT COUNT(*) FROM outbox_event WHERE topic = 'member.changed' "
                              "AND aggregate_id = :h"), {"h": home}).scalar_one() >= 1


def test_electricity_and_telecom_spend_are_variables_of_the_rule_language(province):
    with transaction(province) as s:
        s.execute(text("""INSERT INTO telecom_spend (household_id, month, operator, district_id, amount_pkr, source)
            SELECT id, '2026-05-01', 'Jazz', district_id, 2500, 'test' FROM household ORDER BY id LIMIT 10"""))
        s.execute(text("""INSERT INTO electricity_reading (household_id, month, district_id, units, source, reference)
            SELECT id, '2026-05-01', district_id, 450, 'test', 'LESCO' FROM household ORDER BY id DESC LIMIT 7"""))
        spec = {"code": "test_means", "name": "test", "agency": "test", "unit": "household", "criteria": [
            {"id": "phone", "when": "telecom_spend <= 1000", "fail": "phone {x}"},
            {"id": "power", "when": "electricity_units < 300", "fail": "power"}]}
        rule = rules.Rule.from_spec(spec)
        total = s.execute(text("SELECT COUNT(*) FROM household")).scalar_one()
        assert rules.count_eligible(s, rule) == total - 17
