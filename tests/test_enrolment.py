"""Enrolment through one path: duplication filter, capacity, quotas, an automatic waiting list;
cycles and entitlements; conditions; graduation and referral."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, text

from isps.db import transaction
from isps.programs import cycles, enrolment as en, graduation
from isps.programs.models import Enrolment
from isps.registry import service as registry
from isps.targeting.eligibility import rules

ON = date(2026, 6, 1)


def run_of(s, code: str) -> int:
    rules.install_shipped_rules(s)
    row, _ = rules.active_rule(s, code)
    return rules.run(s, row, "test", on=ON).id


def test_enrol_caps_filters_duplicates_and_promotes_on_exit(province):
    with transaction(province) as s:
        run = run_of(s, "bisp_kafaalat")
        en.set_capacity(s, "bisp_kafaalat", "test", slots=10)
        first = en.enrol_from_run(s, "bisp_kafaalat", run, "test", ON)
        assert first["enrolled"] == 10 and first["listed"] == first["eligible"] > 10
        again = en.enrol_from_run(s, "bisp_kafaalat", run, "test", ON)
        assert again["listed"] == 0 and again["duplicates"] == first["eligible"]
        waiting = en.listing(s, "bisp_kafaalat", "waiting", limit=1000)
        ranks = [w["rank_value"] for w in waiting]
        assert ranks == sorted(ranks)  # PMT ascending
        enrolled = en.listing(s, "bisp_kafaalat", "enrolled", limit=100)
        assert max(e["rank_value"] for e in enrolled) <= ranks[0]
        out = en.end(s, enrolled[0]["id"], "exited", "moved abroad", "officer", ON)
        assert out["promoted"] == 1
        promoted = s.get(Enrolment, waiting[0]["id"])
        assert promoted.status == "enrolled"
        assert "place freed" in promoted.reason and f"enrolment {enrolled[0]['id']}" in promoted.reason
        assert [h["status"] for h in en.history(s, promoted.id)] == ["waiting", "enrolled"]
        assert en.summary(s, "bisp_kafaalat")["counts"]["enrolled"] == 10
        # a budget increase enrols the next ones: Rs 8,500 a place
        n = en.set_capacity(s, "bisp_kafaalat", "test", budget=12 * 8500)
        assert n == 0  # slots (10) still bind
        n = en.set_capacity(s, "bisp_kafaalat", "test", slots=50, budget=12 * 8500)
        assert n == 2 and en.summary(s, "bisp_kafaalat")["counts"]["enrolled"] == 12


def test_quotas_women_and_disability(province):
    with transaction(province) as s:
        run = run_of(s, "undergraduate_scholarship")
        en.set_capacity(s, "undergraduate_scholarship", "test", slots=10)
        res = en.enrol_from_run(s, "undergraduate_scholarship", run, "test", ON)
        assert res["enrolled"] == 10
        on = s.execute(text("SELECT SUM(CASE WHEN female THEN 1 ELSE 0 END), SUM(CASE WHEN disabled THEN 1 ELSE 0 END) "
                            "FROM enrolment WHERE program_code = 'undergraduate_scholarship' AND status = 'enrolled'")).one()
        listed = s.execute(text("SELECT SUM(CASE WHEN female THEN 1 ELSE 0 END), SUM(CASE WHEN disabled THEN 1 ELSE 0 END) "
                                "FROM enrolment WHERE program_code = 'undergraduate_scholarship'")).one()
        assert on[0] >= min(5, listed[0])
        assert on[1] >= min(1, listed[1])


def test_incompatible_programs_are_filtered(province):
    with transaction(province) as s:
        run_k = run_of(s, "bisp_kafaalat")
        en.enrol_from_run(s, "bisp_kafaalat", run_k, "test", ON)  # no cap: all enrolled
        run_p = run_of(s, "pbm_financial_assistance")
        res = en.enrol_from_run(s, "pbm_financial_assistance", run_p, "test", ON)
        assert res["incompatible"] > 0
        clash = s.execute(text("""SELECT COUNT(*) FROM enrolment p JOIN enrolment k ON k.household_id = p.household_id
            WHERE p.program_code = 'pbm_financial_assistance' AND k.program_code = 'bisp_kafaalat'
            AND k.status = 'enrolled'""")).scalar_one()
        assert clash == 0


def test_death_in_registry_frees_a_place(province):
    with transaction(province) as s:
        run = run_of(s, "undergraduate_scholarship")
        en.set_capacity(s, "undergraduate_scholarship", "test", slots=5)
        en.enrol_from_run(s, "undergraduate_scholarship", run, "test", ON)
        en.process_events(s, ON)  # the cursor starts past the load's events
        victim = en.listing(s, "undergraduate_scholarship", "enrolled", limit=1)[0]
        nxt = en.listing(s, "undergraduate_scholarship", "waiting", limit=1)[0]
    with transaction(province) as s:
        registry.change_individual(s, victim["individual_id"], {"date_of_death": "2026-06-10"},
                                   registry.Provenance(source="nadra", source_ref="death-1",
                                                       effective_date=date(2026, 6, 10), actor="nadra-feed"))
    with transaction(province) as s:
        out = en.process_events(s, ON)
        assert out["ended"] == 1 and out["promoted"] == 1
        assert s.get(Enrolment, victim["id"]).status == "deceased"
        assert en.summary(s, "undergraduate_scholarship")["counts"]["enrolled"] == 5
        promoted = s.scalars(select(Enrolment).where(Enrolment.reason.like("%freed by a death%"))).all()
        assert len(promoted) == 1 and promoted[0].status == "enrolled"
        assert nxt["id"] != victim["id"]
        assert en.process_events(s, ON)["events"] == 0  # the cursor moved


def test_nashonuma_amounts_conditions_and_frozen_cycle(province):
    with transaction(province) as s:
        run = run_of(s, "bisp_nashonuma")
        en.enrol_from_run(s, "bisp_nashonuma", run, "test", ON)
        cycle = cycles.open_cycle(s, "bisp_nashonuma", date(2026, 7, 15), "maker")
        assert cycle.period == "2026-Q3" and cycle.ends_on == date(2026, 9, 30)
        ids = [e["id"] for e in en.listing(s, "bisp_nashonuma", "enrolled", limit=3)]
        bad = [{"enrolment_id": i, "condition": "health_visit", "met": False} for i in ids]
        assert cycles.record_compliance(s, cycle.id, bad, "lhw")["warnings"] == 3
        assert cycles.record_compliance(s, cycle.id, bad, "lhw")["recorded"] == 0  # once per cycle
        res = cycles.generate_entitlements(s, cycle.id)
        rows = s.execute(text("""SELECT i.sex, i.date_of_birth, t.amount FROM entitlement t
            JOIN enrolment e ON e.id = t.enrolment_id JOIN individual i ON i.id = e.individual_id
            WHERE t.cycle_id = :c"""), {"c": cycle.id}).all()
        assert len(rows) == res["entitlements"] > 0
        for sex, dob, amount in rows:
            dob = date.fromisoformat(str(dob))
            mother = sex == "female" and dob <= date(2014, 7, 1)
            assert amount == (2000 if mother or sex != "female" else 2500)
        with pytest.raises(cycles.CycleError):
            cycles.approve_cycle(s, cycle.id, "maker")
        cycles.approve_cycle(s, cycle.id, "checker")
        with pytest.raises(cycles.CycleError):
            cycles.generate_entitlements(s, cycle.id)
        assert cycles.verify_cycle(s, cycle.id)
        # a second unmet condition in the next cycle suspends
        nxt = cycles.open_cycle(s, "bisp_nashonuma", date(2026, 10, 1), "maker")
        out = cycles.record_compliance(s, nxt.id, [{**b, "condition": "health_visit"} for b in bad], "lhw")
        assert out["suspensions"] == 3
        assert cycles.generate_entitlements(s, nxt.id)["entitlements"] == res["entitlements"] - 3


def test_graduation_refers_to_a_second_program(province):
    with transaction(province) as s:
        run = run_of(s, "bisp_kafaalat")
        en.set_capacity(s, "bisp_kafaalat", "test", slots=5)
        en.enrol_from_run(s, "bisp_kafaalat", run, "test", ON)
        en.set_policy(s, "bisp_kafaalat", "test", spec={"graduation": {"pmt_above": -1,
                                                                      "refer_to": "ppaf_interest_free_loans"}})
        assert graduation.preview(s, "bisp_kafaalat") == 5
        out = graduation.graduate(s, "bisp_kafaalat", "test", ON)
        assert out["graduated"] == 5 and out["referred"] == 5 and out["promoted"] == 5
        loans = en.summary(s, "ppaf_interest_free_loans")["counts"]
        assert loans.get("enrolled", 0) == 5
        assert graduation.refer(s, "bisp_kafaalat", "ppaf_interest_free_loans",
                                *s.execute(text("SELECT household_id, individual_id FROM referral LIMIT 1")).one(),
                                "again", "test") == "listed"  # recorded once
