"""One Window applications on both backends: each kind's life from receipt to disposal, the second
person, the field rules naming member row and field, a CNIC already registered, escalation with a
moved clock, district scope, and a change request's decision disposing its application."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select, text

from isps.access.service import Principal
from isps.citizen import applications as ap
from isps.citizen import receipts
from isps.db import transaction
from isps.interop.feeds import changes
from isps.registry.models import Household, IngestBatch, Individual
from isps.services import applications as svc
from isps.services.events import drain
from isps.targeting.eligibility import rules

COUNTER = Principal("kasur_counter", "counter_operator", 2)
OFFICER = Principal("kasur_officer", "district_officer", 2)
LAHORE = Principal("lahore_officer", "district_officer", 1)
MANAGER = Principal("manager", "program_manager", None)
T0 = datetime(2026, 12, 1, 9, 0)


def kasur_tehsil(s) -> int:
    return s.execute(text("SELECT MIN(id) FROM tehsil WHERE district_id = 2")).scalar_one()


def household_form(s, **over) -> dict:
    form = {"tehsil_id": str(kasur_tehsil(s)), "address": "House 4, Mohalla Islampura, Kasur", "urban": "no",
            "tenure": "rented", "rooms": "1", "roof": "mud_thatch", "wall": "mud", "toilet": "none",
            "drinking_water": "hand_pump", "electricity": "no", "cooking_fuel": "wood", "land_acres": "0",
            "cattle": "0", "goats_sheep": "1", "tractor": "no"}
    form.update(over)
    return form


def member(name: str, sex: str, born: str, relation: str, cnic: str | None = None, **over) -> dict:
    row = {"full_name": name, "father_husband_name": "Allah Ditta", "sex": sex, "date_of_birth": born,
           "relation_to_head": relation, "marital_status": "married" if relation in ("head", "spouse") else "never_married",
           "education": "none", "enrolled_in_school": "no", "disability": "none", "labour_status": "daily_wager"
           if relation == "head" else "not_in_labour_force", "cnic": cnic or "", "phone": ""}
    row.update(over)
    return row


def family() -> list[dict]:
    return [member("Ghulam Rasool", "male", "1980-03-02", "head", "35102-9876541-3"),
            member("Naseem Bibi", "female", "1984-07-11", "spouse", "35102-9876542-4"),
            member("Ali Raza", "male", "2015-01-20", "son", maternal_status="", labour_status="child")]


def open_registration(engine, who=COUNTER, members=None, now=T0, phone="03001234567"):
    with transaction(engine) as s:
        app = ap.open_application(s, who, kind="registration", channel="counter", district_id=2,
                                  applicant_name="Ghulam Rasool", phone=phone,
                                  details={"household": household_form(s), "members": members or family()},
                                  evidence=[{"kind": "cnic_seen", "reference": "35102-9876541-3"},
                                            {"kind": "utility_bill", "reference": "LESCO 0412"}], now=now)
        return app.id


def test_a_registration_waits_for_a_second_person_then_is_scored_and_disposed(province):
    app_id = open_registration(province)
    with transaction(province) as s:
        state = ap.status_of(s, app_id)
        assert state["status"] == "open" and state["step"] == "verify" and state["kind"] == "registration"
        assert state["receipt"] == receipts.make("application", app_id)
        # staged, not in the registry
        assert s.execute(select(Individual).where(Individual.cnic == "3510298765413")).first() is None
        # what anyone with the receipt learns carries no personal data
        said = repr(state)
        assert "Ghulam" not in said and "0300" not in said and "35102" not in said
        # the counter operator may not verify (no permission), and the taker never may
        with pytest.raises(ap.NotAllowed):
            ap.verify(s, COUNTER, app_id)
    officer_app = open_registration(province, who=OFFICER, members=[
        member("Shabbir Ahmad", "male", "1970-01-01", "head", "35102-1111111-1")])
    with transaction(province) as s:
        with pytest.raises(ap.ApplicationError, match="a second person must verify.*taken by kasur_officer"):
            ap.verify(s, OFFICER, officer_app)
    with transaction(province) as s:  # nothing was half-written by the refusal
        assert ap.status_of(s, officer_app)["step"] == "verify"
    state = svc.verify_and_score(province, OFFICER, app_id, note="CNICs and the bill seen")
    assert state["status"] == "disposed" and state["disposal"] == "registered", state
    with transaction(province) as s:
        app = s.get(ap.Application, app_id)
        hh = s.get(Household, app.household_id)
        assert hh.district_id == 2 and app.disposal_reason == f"household {hh.ref}"
        batch = s.get(IngestBatch, hh.batch_id)
        assert batch.source == "counter" and "kasur_counter" in batch.actor and "kasur_officer" in batch.actor
        people = s.scalars(select(Individual).where(Individual.household_id == hh.id)
                           .order_by(Individual.roster_line)).all()
        assert [p.full_name for p in people] == ["Ghulam Rasool", "Naseem Bibi", "Ali Raza"]
        assert people[0].cnic == "3510298765413" and people[0].id_document == "cnic" and people[2].cnic is None
        score = s.execute(text("SELECT p.score FROM pmt_score p JOIN pmt_model m ON m.id = p.model_id "
                               "AND m.status = 'active' WHERE p.household_id = :h"), {"h": hh.id}).scalar()
        assert score is not None
        events = [e.what for e in ap.history(s, app_id)]
        assert events[:2] == ["opened", "step_done"] and "registered" in events and events[-1] == "disposed"
        assert [st.outcome for st in ap.steps(s, app_id)] == ["received", "verified", "scored"]
        assert ap.applications_of(s, household_id=hh.id)[0]["disposal"] == "registered"
        assert [a["id"] for a in ap.applications_of(s, phone="0300-1234567")] == [officer_app, app_id]


def test_validation_names_the_member_row_and_field_and_stores_nothing(province):
    bad = family()
    bad[1]["date_of_birth"] = "11/07/1984"
    with pytest.raises(ap.ApplicationError, match=r"^member 2: date_of_birth must be a date written YYYY-MM-DD"):
        open_registration(province, members=bad)
    bad = family()
    bad[2]["sex"] = "boy"
    with pytest.raises(ap.ApplicationError, match=r"^member 3: sex must be one of male, female, transgender"):
        open_registration(province, members=bad)
    bad = family()
    bad[1]["cnic"] = "35102-9876542-3"  # odd last digit for a woman
    with pytest.raises(ap.ApplicationError, match=r"^member 2: cnic: CNIC 35102-\*\*\*\*\*42-3 ends in 3"):
        open_registration(province, members=bad)
    bad = family()
    bad[2]["relation_to_head"] = "head"
    with pytest.raises(ap.ApplicationError, match=r"^member 3: relation_to_head"):
        open_registration(province, members=bad)
    with transaction(province) as s:
        with pytest.raises(ap.ApplicationError, match=r"^household: rooms must be a number from 1 to 40"):
            ap.open_application(s, COUNTER, kind="registration", channel="counter", district_id=2,
                                applicant_name="X", details={"household": household_form(s, rooms="0"),
                                                             "members": family()})
    with transaction(province) as s:
        with pytest.raises(ap.ApplicationError, match="^evidence: a registration at the counter"):
            ap.open_application(s, COUNTER, kind="registration", channel="counter", district_id=2,
                                applicant_name="X", details={"household": household_form(s), "members": family()})
    with transaction(province) as s:
        with pytest.raises(ap.ApplicationError, match="phone must be a Pakistani mobile number"):
            ap.open_application(s, COUNTER, kind="registration", channel="counter", district_id=2,
                                applicant_name="X", phone="12345",
                                details={"household": household_form(s), "members": family()})
    with transaction(province) as s:
        assert s.execute(text("SELECT COUNT(*) FROM application")).scalar() == 0


def test_a_cnic_already_in_the_registry_is_refused_naming_where_it_is(province):
    with transaction(province) as s:
        held = s.execute(text("""SELECT i.cnic, i.sex, h.ref FROM individual i JOIN household h ON h.id = i.household_id
            WHERE i.cnic IS NOT NULL AND i.date_of_death IS NULL AND i.relation_to_head = 'head'
            ORDER BY i.id LIMIT 1""")).one()
    rows = [member("Someone", held.sex, "1975-05-05", "head", held.cnic)]
    with pytest.raises(ap.ApplicationError) as err:
        open_registration(province, members=rows)
    message = str(err.value)
    assert message.startswith("member 1: cnic ") and held.ref in message and "apply for a change" in message
    assert held.cnic not in message and f"{held.cnic[:5]}-*****" in message


def test_a_late_step_escalates_once_up_one_level_with_its_history(province):
    app_id = open_registration(province)
    with transaction(province) as s:
        assert ap.escalate_late(s, T0 + timedelta(days=6)) == 0  # not late yet (7 days)
    late = T0 + timedelta(days=8)
    with transaction(province) as s:
        assert ap.escalate_late(s, late) == 1
    with transaction(province) as s:
        assert ap.escalate_late(s, late) == 0  # twice at the same time: nothing more
        step = ap.current_step(s, app_id)
        assert step.name == "verify" and step.owner_role == "program_manager" and step.escalation_level == 1
        assert step.due_at == late + timedelta(days=7)
        assert ap.status_of(s, app_id)["step_due"].startswith((late + timedelta(days=7)).date().isoformat())
    with transaction(province) as s:
        assert ap.escalate_late(s, late + timedelta(days=8)) == 1
        assert ap.escalate_late(s, late + timedelta(days=30)) == 0  # the administrator's is the top
    with transaction(province) as s:
        step = ap.current_step(s, app_id)
        assert step.owner_role == "administrator" and step.escalation_level == 2
        escalations = [e for e in ap.history(s, app_id) if e.what == "escalated"]
        assert len(escalations) == 2
        assert "district_officer -> program_manager" in escalations[0].detail
        assert "program_manager -> administrator" in escalations[1].detail


def test_scope_a_lahore_officer_cannot_see_or_act_on_a_kasur_application(province):
    app_id = open_registration(province)
    with transaction(province) as s:
        with pytest.raises(ap.OutOfScope):
            ap.get(s, LAHORE, app_id)
        with pytest.raises(ap.OutOfScope):
            ap.verify(s, LAHORE, app_id)
        with pytest.raises(ap.OutOfScope):
            ap.open_application(s, LAHORE, kind="registration", channel="counter", district_id=2,
                                applicant_name="X", details={})
        assert ap.get(s, MANAGER, app_id).id == app_id


def _kasur_member(s, unit="household"):
    return s.execute(text("""SELECT i.household_id, i.id FROM individual i WHERE i.district_id = 2
        AND i.relation_to_head = 'head' AND i.date_of_death IS NULL
        AND i.household_id NOT IN (SELECT household_id FROM enrolment) ORDER BY i.id LIMIT 1""")).one()


def test_a_program_application_and_a_referral_are_decided_through_the_one_enrolment_path(province):
    with transaction(province) as s:
        rules.install_shipped_rules(s)
        hh, person = _kasur_member(s)
        app = ap.open_application(s, COUNTER, kind="program", channel="counter", district_id=2,
                                  applicant_name="Head", household_id=hh, program_code="bisp_kafaalat", now=T0)
        ref = ap.open_application(s, COUNTER, kind="referral", channel="counter", district_id=2,
                                  applicant_name="Head", household_id=hh, program_code="bisp_kafaalat",
                                  details={"referred_by": "Rural Health Centre Kasur"}, now=T0)
        with pytest.raises(ap.ApplicationError, match="program_code"):
            ap.open_application(s, COUNTER, kind="program", channel="counter", district_id=2,
                                applicant_name="Head", household_id=hh, program_code="no_such_program")
        with pytest.raises(ap.ApplicationError, match="individual_id"):
            ap.open_application(s, COUNTER, kind="program", channel="counter", district_id=2,
                                applicant_name="Head", household_id=hh, program_code="bisp_taleemi_wazaif")
        app_id, ref_id = app.id, ref.id
    with transaction(province) as s:
        out = ap.decide(s, OFFICER, app_id)
        assert out["disposal"] in ("enrolled", "waiting") and out["enrolment_id"]
        state = ap.status_of(s, app_id)
        assert state["disposal"] == out["disposal"] and state["status"] == "disposed"
    with transaction(province) as s:
        out = ap.decide(s, OFFICER, ref_id)  # the same program again: already listed
        assert out["disposal"] == "refused" and "already" in out["reason"]
        app = s.get(ap.Application, ref_id)
        assert app.referred_by == "Rural Health Centre Kasur"
        assert s.execute(text("SELECT reason FROM enrolment WHERE id = :e"),
                         {"e": s.get(ap.Application, app_id).id and out.get("enrolment_id") or 0}).first() is None
    with transaction(province) as s:
        with pytest.raises(ap.ApplicationError, match="already disposed"):
            ap.decide(s, OFFICER, app_id)


def test_a_change_application_is_disposed_when_its_change_request_is_decided(province):
    with transaction(province) as s:
        hh, person = _kasur_member(s)
        app = ap.open_application(s, COUNTER, kind="change", channel="counter", district_id=2, applicant_name="Head",
                                  household_id=hh, details={"entity": "household", "appeal": "pmt_score",
                                                            "changes": {"rooms": "1", "toilet": "none"},
                                                            "note": "one room, no toilet"},
                                  evidence=[{"kind": "affidavit", "reference": "AFF-2026-118"}], now=T0)
        with pytest.raises(ap.ApplicationError, match="evidence"):
            ap.open_application(s, COUNTER, kind="change", channel="counter", district_id=2, applicant_name="Head",
                                household_id=hh, details={"changes": {"rooms": "1"}})
        approve_id, request_id = app.id, app.change_request_id
        other = ap.open_application(s, COUNTER, kind="change", channel="counter", district_id=2,
                                    applicant_name="Head", household_id=hh,
                                    details={"changes": {"cattle": "0"}},
                                    evidence=[{"kind": "other", "reference": "visit note"}], now=T0)
        reject_id, reject_request = other.id, other.change_request_id
        assert ap.status_of(s, approve_id)["step"] == "review"
    with transaction(province) as s:
        changes.approve_change(s, request_id, "kasur_officer")
        changes.reject_change(s, reject_request, "kasur_officer", "the animals were seen at the visit")
    drain(province)
    with transaction(province) as s:
        a, b = s.get(ap.Application, approve_id), s.get(ap.Application, reject_id)
        assert (a.status, a.disposal) == ("disposed", "approved")
        assert (b.status, b.disposal) == ("disposed", "rejected")
        assert "the animals were seen" in b.disposal_reason and "kasur_officer" in b.disposal_reason
        assert [st.outcome for st in ap.steps(s, approve_id)] == ["received", "approved"]
        assert ap.history(s, reject_id)[-1].what == "disposed"
    drain(province)  # again: nothing more
    with transaction(province) as s:
        assert s.execute(text("SELECT COUNT(*) FROM application_event WHERE application_id = :a AND what = 'disposed'"),
                         {"a": approve_id}).scalar() == 1


def test_a_survey_visit_is_scheduled_and_its_outcome_recorded(province):
    app_id = open_registration(province)
    with transaction(province) as s:
        with pytest.raises(ap.ApplicationError, match="assignee"):
            ap.schedule_visit(s, OFFICER, app_id, T0.date() + timedelta(days=3), "kasur_counter", now=T0)
        with pytest.raises(ap.ApplicationError, match="no visit is scheduled"):
            ap.record_visit(s, OFFICER, app_id, "confirmed", now=T0)
    with transaction(province) as s:
        step = ap.schedule_visit(s, OFFICER, app_id, T0.date() + timedelta(days=3), "kasur_grievance", now=T0)
        assert step.owner == "kasur_grievance" and step.due_at == datetime(2026, 12, 5)
    with transaction(province) as s:
        with pytest.raises(ap.ApplicationError, match="note"):
            ap.record_visit(s, OFFICER, app_id, "not_found", now=T0)
    with transaction(province) as s:
        assert ap.record_visit(s, OFFICER, app_id, "not_found", "no such house at the address", now=T0) is None
    with transaction(province) as s:
        app = s.get(ap.Application, app_id)
        assert app.disposal == "rejected" and "no such house" in app.disposal_reason and app.household_id is None


def test_the_home_page_counts_the_steps_awaiting_a_role_and_the_late_ones(province):
    from isps.services import home

    open_registration(province)
    open_registration(province, members=[member("Shabbir Ahmad", "male", "1970-01-01", "head", "35102-1111111-1")])
    with transaction(province) as s:
        officer = {q.key: q.count for q in home.queues(s, OFFICER, date(2026, 12, 2))}
        assert officer["applications"] == 2 and officer["late_applications"] == 0
        assert {q.key: q.count for q in home.queues(s, LAHORE, date(2026, 12, 2))}["applications"] == 0
        late = {q.key: q.count for q in home.queues(s, COUNTER, date(2026, 12, 20))}
        assert late["late_applications"] == 2
        ap.escalate_late(s, datetime(2026, 12, 20))
    with transaction(province) as s:
        assert {q.key: q.count for q in home.queues(s, MANAGER, date(2026, 12, 20))}["applications"] == 2
        assert {q.key: q.count for q in home.queues(s, OFFICER, date(2026, 12, 20))}["applications"] == 0


def test_a_citizens_own_web_registration_enters_the_registry_as_self_reported(province):
    with transaction(province) as s:
        with pytest.raises(ap.ApplicationError, match="actor"):
            ap.open_application(s, None, kind="registration", channel="web", district_id=2, applicant_name="X",
                                details={"household": household_form(s), "members": family()})
        app = ap.open_application(s, None, kind="registration", channel="web", district_id=2,
                                  applicant_name="Ghulam Rasool", phone="03001234567", actor="web:0300*****67",
                                  details={"household": household_form(s), "members": family()})
        app_id = app.id
        assert app.opened_by == "web:0300*****67"
    state = svc.verify_and_score(province, OFFICER, app_id)
    assert state["disposal"] == "registered"
    with transaction(province) as s:
        hh = s.get(Household, s.get(ap.Application, app_id).household_id)
        assert s.get(IngestBatch, hh.batch_id).source == "self_report" and hh.ref.startswith("SLF-")


def test_the_receipt_is_queued_once_by_sms_in_urdu(province):
    app_id = open_registration(province, phone="+92 300 1234567")
    with transaction(province) as s:
        rows = s.execute(text("SELECT kind, phone, text, lang, status, district_id, key FROM sms_message")).all()
        assert len(rows) == 1
        kind, phone, body, lang, status, district, key = rows[0]
        number = receipts.make("application", app_id)
        assert (kind, phone, lang, status, district, key) == ("receipt", "923001234567", "ur", "queued", 2,
                                                             f"receipt:{number}")
        assert number in body and "8123" in body and "Ghulam" not in body
        app = s.get(ap.Application, app_id)
        assert app.phone == "03001234567"
        assert ap.service._queue_receipt(s, app) is True  # again: the same message, not a second one
    with transaction(province) as s:
        assert s.execute(text("SELECT COUNT(*) FROM sms_message")).scalar() == 1
    no_phone = open_registration(province, phone=None, members=[
        member("Shabbir Ahmad", "male", "1970-01-01", "head", "35102-1111111-1")])
    with transaction(province) as s:
        assert s.execute(text("SELECT COUNT(*) FROM sms_message")).scalar() == 1
        assert ap.status_of(s, no_phone)["status"] == "open"


def test_the_cli_escalates_late_steps_and_tells_a_receipts_status(province, monkeypatch):
    from typer.testing import CliRunner

    from isps.cli.main import app

    import isps.cli.common

    monkeypatch.setattr(isps.cli.common, "default_engine", lambda: province)  # this test's schema on PostgreSQL
    app_id = open_registration(province)
    runner = CliRunner()
    out = runner.invoke(app, ["applications", "escalate", "--at", "2026-12-20T09:00"])
    assert out.exit_code == 0 and "1 late step escalated" in out.output, out.output
    out = runner.invoke(app, ["applications", "escalate", "--at", "2026-12-20T09:00"])
    assert "0 late steps escalated" in out.output
    out = runner.invoke(app, ["applications", "status", receipts.make("application", app_id)])
    assert out.exit_code == 0 and "verify" in out.output and "Ghulam" not in out.output
    out = runner.invoke(app, ["applications", "status", "OW123"])
    assert out.exit_code == 1 and "not a valid receipt" in out.output
