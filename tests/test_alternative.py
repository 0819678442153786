"""Alternative targeting: electricity and telecom means tests (thresholds, missing months),
synthetic readings, community-validated applications (four eyes), selections kept apart by
method, and the evaluation against true welfare; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select, text

from isps.db import transaction
from isps.registry.ids import next_household_ids
from isps.registry.models import District, Household, IngestBatch, Individual, Tehsil
from isps.targeting import alternative as alt
from isps.targeting import pmt
from isps.targeting.alternative_models import ElectricityReading, MeansTestResult
from isps.targeting.models import PmtScore

THROUGH = date(2026, 3, 1)          # window Jan-Mar 2026
JAN, FEB, MAR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)
DEC = date(2025, 12, 1)


def bare_household(s, district_id: int = 2, **over) -> int:
    batch = s.query(IngestBatch).first()
    if batch is None:
        batch = IngestBatch(source="operator", reference="test", effective_date=JAN, actor="test")
        s.add(batch)
        s.flush()
    tid = s.scalar(select(Tehsil.id).where(Tehsil.district_id == district_id).order_by(Tehsil.id).limit(1))
    hid = next_household_ids(s, district_id)[0]
    fields = dict(tenure="owned", rooms=2, roof="iron_sheet", wall="burnt_brick", toilet="pit",
                  drinking_water="hand_pump", electricity=True, cooking_fuel="wood", fridge=False, freezer=False,
                  air_conditioner=False, air_cooler=False, washing_machine=False, television=False, motorcycle=False,
                  car=False, computer=False, land_acres=0.0, cattle=0, goats_sheep=0, tractor=False)
    fields.update(over)
    s.add(Household(id=hid, ref=f"A-{hid}", district_id=district_id, tehsil_id=tid, urban=False, address="Chak 7",
                    batch_id=batch.id, surveyed_on=JAN, verified_on=JAN, **fields))
    s.flush()
    return hid


def statuses(s, run) -> dict[int, str]:
    return dict(s.execute(select(MeansTestResult.household_id, MeansTestResult.status)
                          .where(MeansTestResult.run_id == run.id)).all())


# ---------------------------------------------------------------- means tests

def test_electricity_means_test_50_units_inside_51_outside_missing_month_insufficient(engine):
    with transaction(engine) as s:
        inside, outside, gap, stale, none = (bare_household(s) for _ in range(5))
        for m in (JAN, FEB, MAR):
            alt.record_electricity(s, inside, m, 50)
            alt.record_electricity(s, outside, m, 51)
        alt.record_electricity(s, gap, JAN, 10)
        alt.record_electricity(s, gap, MAR, 10)
        for m in (DEC, JAN, FEB):  # December lies outside the window: March is missing
            alt.record_electricity(s, stale, m, 20)
        alt.record_electricity(s, stale, DEC, 20)  # a correction replaces, never duplicates
        assert s.scalar(select(func.count()).select_from(ElectricityReading)
                        .where(ElectricityReading.household_id == stale)) == 3
        assert s.get(ElectricityReading, (inside, JAN)).reference == "LESCO"  # Kasur is served by LESCO

        run = alt.run_means_test(s, alt.ELECTRICITY, THROUGH, actor="analyst")
        got = statuses(s, run)
        assert got[inside] == "eligible"
        assert got[outside] == "not_eligible"
        assert got[gap] == got[stale] == got[none] == "insufficient_data"
        assert run.eligible == 1 and run.insufficient == 3 and run.evaluated == 5
        assert run.threshold == 50 and run.months == 3 and run.targeting_method == alt.ELECTRICITY

        words = alt.means_test(s, inside, alt.ELECTRICITY, THROUGH).words
        assert words == "Eligible: average electricity use 50.0 units a month over Jan 2026-Mar 2026, at or below 50"
        assert alt.means_test(s, outside, alt.ELECTRICITY, THROUGH).words.startswith(
            "Not eligible: average electricity use 51.0 units")
        gap_result = alt.means_test(s, gap, alt.ELECTRICITY, THROUGH)
        assert gap_result.status == "insufficient_data" and gap_result.months_found == 2
        assert "2 of the 3 months" in gap_result.words
        # a different threshold is a parameter of the run
        assert statuses(s, alt.run_means_test(s, alt.ELECTRICITY, THROUGH, threshold=51))[outside] == "eligible"
        with pytest.raises(alt.AlternativeTargetingError):
            alt.record_electricity(s, inside, JAN, -5)


def test_telecom_means_test_sums_operators_and_needs_every_month(engine):
    with transaction(engine) as s:
        inside, outside, gap = (bare_household(s, district_id=23) for _ in range(3))
        for m in (JAN, FEB, MAR):
            alt.record_telecom(s, inside, m, 300, "Jazz")
            alt.record_telecom(s, inside, m, 200, "Zong")
            alt.record_telecom(s, outside, m, 301, "Telenor")
            alt.record_telecom(s, outside, m, 200, "Ufone")
        alt.record_telecom(s, gap, JAN, 100, "Jazz")
        alt.record_telecom(s, gap, FEB, 100, "Jazz")
        run = alt.run_means_test(s, alt.TELECOM, THROUGH, threshold=500)
        got = statuses(s, run)
        assert got == {inside: "eligible", outside: "not_eligible", gap: "insufficient_data"}
        assert alt.means_test(s, outside, alt.TELECOM, THROUGH, threshold=500).average == pytest.approx(501)
        with pytest.raises(alt.AlternativeTargetingError):
            alt.record_telecom(s, inside, JAN, 100, "Warid")
        with pytest.raises(alt.AlternativeTargetingError):
            alt.run_means_test(s, "bank_balance", THROUGH)


def test_synthetic_readings_follow_assets_and_season(province):
    with transaction(province) as s:
        n = alt.generate_electricity(s, THROUGH, months=12, seed=3)
        assert n == s.scalar(select(func.count()).select_from(ElectricityReading))
        by_kind = s.execute(text("""
            SELECT h.air_conditioner, h.fridge, AVG(e.units) FROM electricity_reading e
            JOIN household h ON h.id = e.household_id GROUP BY h.air_conditioner, h.fridge""")).all()
        avg = {(bool(ac), bool(fr)): u for ac, fr, u in by_kind}
        assert avg[(True, True)] > 2 * avg[(False, True)] > 2 * avg[(False, False)] * 0.9
        bare = s.scalar(text("""SELECT AVG(e.units) FROM electricity_reading e JOIN household h ON h.id = e.household_id
            WHERE NOT (h.fridge OR h.freezer OR h.air_conditioner OR h.air_cooler OR h.television
                       OR h.washing_machine OR h.computer) AND h.drinking_water <> 'motor_pump'"""))
        assert 30 <= bare <= 65  # lights and fans only: about 50 units a month
        monthly = (select(ElectricityReading.month, func.avg(ElectricityReading.units))
                   .group_by(ElectricityReading.month))
        by_month = {m.month: u for m, u in s.execute(monthly).all()}
        summer = sum(by_month[k] for k in (6, 7, 8)) / 3
        winter = sum(by_month[k] for k in (1, 2, 3)) / 3
        assert summer > 1.5 * winter
        unconnected = s.scalar(text("""SELECT COUNT(*) FROM electricity_reading e JOIN household h
                                        ON h.id = e.household_id WHERE NOT h.electricity"""))
        assert unconnected == 0
        t = alt.generate_telecom(s, THROUGH, months=3, seed=3)
        assert t > 0
        phoneless = s.scalar(text("""SELECT COUNT(*) FROM telecom_spend t WHERE NOT EXISTS (
            SELECT 1 FROM individual i WHERE i.household_id = t.household_id AND i.phone IS NOT NULL)"""))
        assert phoneless == 0

        evaluation = {e.method + (":bottom" if "lowest" in e.rule else ""): e for e in alt.evaluate(s, THROUGH)}
        assert set(evaluation) == {alt.ELECTRICITY, alt.TELECOM, alt.PMT, alt.PMT + ":bottom"}
        households = s.scalar(select(func.count()).select_from(Household))
        for e in evaluation.values():
            assert e.households == households and e.poor == households // 5
            assert 0 <= e.inclusion_error <= 1 and 0 <= e.exclusion_error <= 1
            assert e.poor_selected <= min(e.poor, e.selected)
        assert evaluation[alt.ELECTRICITY].insufficient_data > 0  # no connection, or a month missing
        assert evaluation[alt.PMT + ":bottom"].selected == pytest.approx(households * 0.2, abs=3)


# ---------------------------------------------------------------- community validation

def test_community_validation_needs_a_second_person(engine):
    with transaction(engine) as s:
        kasur_tehsil = s.scalar(select(Tehsil.id).where(Tehsil.name == "Chunian"))
        app = alt.submit_application(s, "35102-1234567-2", "Shazia Bibi", 2, kasur_tehsil, "web", "clerk_a",
                                     father_husband_name="Muhammad Aslam")
        assert app.status == "submitted" and app.targeting_method == alt.COMMUNITY and app.household_id is None
        with pytest.raises(alt.SameValidatorError):
            alt.validate_application(s, app.id, "clerk_a", True, "UC-3 Chunian committee")
        with pytest.raises(alt.SameValidatorError):
            alt.validate_application(s, app.id, " Clerk_A ", True, "UC-3 Chunian committee")
        assert s.get(type(app), app.id).status == "submitted"
        with pytest.raises(alt.AlternativeTargetingError):
            alt.validate_application(s, app.id, "chair_b", True, "")
        with pytest.raises(PermissionError):
            alt.validate_application(s, app.id, "lahore_officer", True, "x", district_scope=1)
        done = alt.validate_application(s, app.id, "chair_b", True, "UC-3 Chunian committee", note="widow, 4 children",
                                        on=date(2026, 5, 2))
        assert (done.status, done.validated_by, done.validated_on) == ("validated", "chair_b", date(2026, 5, 2))
        with pytest.raises(alt.AlternativeTargetingError):  # decided once
            alt.validate_application(s, app.id, "chair_c", False, "UC-3 Chunian committee")
        with pytest.raises(alt.AlternativeTargetingError):  # one open application per CNIC
            alt.submit_application(s, "3510212345672", "Shazia", 2, kasur_tehsil, "sms", "sms-gateway")
        with pytest.raises(alt.AlternativeTargetingError):
            alt.submit_application(s, "35102-1234567-3", "X", 2, 1, "web", "clerk_a")  # tehsil of Lahore
        with pytest.raises(alt.AlternativeTargetingError):
            alt.submit_application(s, "35102-1234567-3", "X", 2, kasur_tehsil, "fax", "clerk_a")
        with pytest.raises(alt.AlternativeTargetingError):
            alt.submit_application(s, "3510-1234567-3", "X", 2, kasur_tehsil, "web", "clerk_a")
        rejected = alt.submit_application(s, "35102-7654321-1", "Rashid", 2, kasur_tehsil, "sms", "sms-gateway")
        alt.validate_application(s, rejected.id, "chair_b", False, "UC-3 Chunian committee", note="owns a shop")
        assert [a.id for a in alt.applications(s, district_id=2, status="validated")] == [app.id]


def test_selection_summary_keeps_methods_apart(province):
    with transaction(province) as s:
        model = pmt.active_model(s)
        # an applicant whose household is also selected by PMT
        score = s.scalar(select(PmtScore).where(PmtScore.model_id == model.id, PmtScore.score <= 32)
                         .order_by(PmtScore.household_id).limit(1))
        person = s.scalar(select(Individual).where(Individual.household_id == score.household_id,
                                                   Individual.cnic.is_not(None)).limit(1))
        household = s.get(Household, score.household_id)
        app = alt.submit_application(s, person.cnic, person.full_name, household.district_id, household.tehsil_id,
                                     "sms", "sms-gateway")
        assert app.household_id == household.id  # matched by CNIC
        alt.validate_application(s, app.id, "committee_chair", True, "District committee")
        alt.generate_electricity(s, THROUGH, months=3, seed=1)
        run = alt.run_means_test(s, alt.ELECTRICITY, THROUGH)

        summary = {m.method: m for m in alt.selection_summary(s)}
        assert set(summary) == {alt.PMT, alt.COMMUNITY, alt.ELECTRICITY}
        pmt_selected = s.scalar(select(func.count()).select_from(PmtScore).where(
            PmtScore.model_id == model.id, PmtScore.score <= 32))
        assert summary[alt.PMT].total == pmt_selected
        assert summary[alt.COMMUNITY].total == 1
        assert summary[alt.COMMUNITY].by_district == [
            alt.DistrictCount(household.district_id, s.get(District, household.district_id).name, 1)]
        assert summary[alt.ELECTRICITY].total == run.eligible
        # the same household counts under PMT and under community validation, never summed into one figure
        pmt_here = next(c.selected for c in summary[alt.PMT].by_district if c.district_id == household.district_id)
        assert pmt_here >= 1
        for m in summary.values():
            assert m.total == sum(c.selected for c in m.by_district)
            assert m.label == alt.TARGETING_METHODS[m.method] and m.basis
        assert "v1" in summary[alt.PMT].basis and "32" in summary[alt.PMT].basis
