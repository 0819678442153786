"""The inbound short code: the parser's table of keyword forms (English, Roman Urdu, Urdu script),
and every reply path against a synthetic province on both backends."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import func, select, text

from isps.access.models import AuditRecord
from isps.catalogue import display_name
from isps.citizen import shortcode, standing
from isps.citizen.shortcode import answer, parse, sms_parts
from isps.db import transaction
from isps.labour import registers
from isps.labour.models import LabourReport
from isps.programs import enrolment
from isps.registry import cnic as cnic_rules
from isps.registry.models import Individual
from isps.targeting.eligibility import rules as eligibility
from isps.targeting.models import PmtScore
from isps.targeting import pmt

STRANGER = "923551234567"  # 0355: outside the synthetic province's numbers (0300-0349)
NOW = datetime(2026, 6, 15, 10, 0)


@pytest.mark.parametrize("text, kind, arg", [
    ("3520212345671", "cnic", "3520212345671"),
    ("35202-1234567-1", "cnic", "3520212345671"),
    ("  cnic: 35202 1234567 1. ", "cnic", "3520212345671"),
    ("STATUS 35202-1234567-1", "cnic", "3520212345671"),
    ("۳۵۲۰۲۱۲۳۴۵۶۷۱", "cnic", "3520212345671"),              # Urdu digits
    ("شناختی ۳۵۲۰۲-۱۲۳۴۵۶۷-۱", "cnic", "3520212345671"),
    ("352021234567", "bad_cnic", "length:12"),
    ("35202-1234567-12", "bad_cnic", "length:14"),
    ("0520212345671", "bad_cnic", "first_digit"),
    ("OW10236", "receipt", "OW10236"),
    ("ow 10236", "receipt", "ow 10236"),
    ("status gr-1234", "receipt", "gr-1234"),
    ("HELP", "help", ""), ("madad", "help", ""), ("مدد", "help", ""), ("?", "help", ""),
    ("hello there", "help", ""), ("", "help", ""), ("  !!! ", "help", ""), ("STOPP", "help", ""),
    ("COMPLAIN payment not received", "complain", "payment not received"),
    ("Complaint: agent cut 2000", "complain", "agent cut 2000"),
    ("shikayat paise nahi mile", "complain", "paise nahi mile"),
    ("شکایت رقم نہیں ملی", "complain", "رقم نہیں ملی"),
    ("complain", "complain", ""),
])
def test_the_parser_reads_each_form_of_each_keyword(text, kind, arg):
    p = parse(text)
    assert (p.kind, p.arg) == (kind, arg)


@pytest.mark.parametrize("text, status, cnic", [
    ("EMP JOB", "employed_informal", None),
    ("emp daily", "daily_wager", None),
    ("Emp, none!", "unemployed", None),
    ("EMP 5", "unemployed", None),
    ("kaam dihari", "daily_wager", None),
    ("KAAM berozgar", "unemployed", None),
    ("kam karobar", "self_employed", None),
    ("کام بے روزگار", "unemployed", None),
    ("روزگار نوکری", "employed_formal", None),
    ("EMP 35202-1234567-1 self", "self_employed", "3520212345671"),
    ("EMP student 3520212345671", "student", "3520212345671"),
    ("EMP", None, None),
    ("EMP flying", None, None),
])
def test_the_parser_reads_the_employment_report(text, status, cnic):
    p = parse(text)
    assert (p.kind, p.status, p.cnic) == ("emp", status, cnic)


def test_urdu_script_is_noticed_and_a_stray_number_in_emp_is_a_cnic_error():
    assert parse("مدد").urdu and parse("کام نوکری").urdu and not parse("kaam naukri").urdu
    assert parse("EMP 12345 job") == shortcode.Parsed("bad_cnic", "length:5")


def test_complaint_categories_follow_the_words():
    assert shortcode.category_of("agent ne 2000 kaat liye") == "agent_deduction"
    assert shortcode.category_of("payment not received since March") == "payment_not_received"
    assert shortcode.category_of("رقم نہیں ملی") == "payment_not_received"
    assert shortcode.category_of("agent ne rishwat mangi") == "agent_conduct"
    assert shortcode.category_of("counter staff was rude") == "staff_conduct"
    assert shortcode.category_of("mera naam ghalat hai") == "data_error"
    assert shortcode.category_of("I want to ask something") == "other"


def test_sms_parts_count_gsm_and_urdu():
    assert sms_parts("a" * 160) == 1 and sms_parts("a" * 161) == 2 and sms_parts("a" * 306) == 2
    assert sms_parts("ا" * 70) == 1 and sms_parts("ا" * 71) == 2 and sms_parts("ا" * 135) == 3


# ---------------------------------------------------------------- against a province

def _holder(s, *, exclude: tuple[int, ...] = ()) -> Individual:
    """A living adult with a CNIC and a phone of their own that nobody else in the registry shares."""
    return s.scalars(select(Individual).where(
        Individual.cnic.is_not(None), Individual.phone.is_not(None), Individual.date_of_death.is_(None),
        Individual.id.not_in(exclude or (0,)),
        Individual.phone.in_(select(Individual.phone).group_by(Individual.phone).having(func.count() == 1)))
        .order_by(Individual.id)).first()


def _sender(person: Individual) -> str:
    return "92" + person.phone[1:]


def _audits(s, **where) -> list[AuditRecord]:
    return list(s.scalars(select(AuditRecord).filter_by(**where).order_by(AuditRecord.id)))


def test_a_cnic_from_the_households_phone_gets_its_status_band_programs_and_payment(province):
    with transaction(province) as s:
        person = _holder(s)
        hid, phone, number = person.household_id, _sender(person), person.cnic
        assert standing.phone_registered(s, hid, phone)
        reply = answer(s, phone, f" {cnic_rules.formatted(number)} ", NOW)
    masked = cnic_rules.mask(number)
    assert reply.startswith(f"CNIC {masked}: registered.") and number not in reply
    with transaction(province) as s:
        score = s.get(PmtScore, (pmt.active_model(s).id, hid)).score
        low = int(score // 10) * 10
        assert f"PMT score band {low}-{low + 10}." in reply and f"{score:.2f}" not in reply
        eligible = [rule.code for _, rule in eligibility.active_rules(s)
                    if any(d.eligible for d in eligibility.explain(s, rule, hid))]
        audited = _audits(s, entity="household", entity_id=hid, channel="sms")
    for code in eligible:
        assert display_name(code) in reply
    if eligible:
        assert " Eligible: " in reply
    else:
        assert "Not eligible for other programs" in reply
    assert sms_parts(reply) <= 2
    assert [(a.action, a.outcome, a.role, a.actor) for a in audited] == [
        ("read", "ok", "citizen", f"sms:{shortcode.mask_phone(phone)}")]


def test_an_enrolment_and_its_next_payment_are_in_the_reply(province):
    with transaction(province) as s:
        person = _holder(s)
        hid, phone, number = person.household_id, _sender(person), person.cnic
        outcome, eid = enrolment.enrol_one(s, "bisp_kafaalat", hid, 0, "manager", "test", on=date(2026, 6, 1))
        assert outcome == "listed"
        s.execute(text("UPDATE enrolment SET status = 'enrolled', enrolled_on = :d WHERE id = :e"),
                  {"d": date(2026, 6, 1), "e": eid})
        # a pending instruction, as a payroll writes it (the test reads; it does not pay)
        s.execute(text("""INSERT INTO payment_instruction (payroll_id, entitlement_id, attempt, enrolment_id,
            program_code, district_id, channel, biometric, amount, status)
            VALUES (1, 1, 1, :e, 'bisp_kafaalat', :d, 'bank', :no, 14500, 'pending')"""),
                  {"e": eid, "d": person.district_id, "no": False})
        reply = answer(s, phone, number, NOW)
        urdu = answer(s, phone, "شناختی " + number, NOW)
    assert f"Enrolled: {display_name('bisp_kafaalat')}." in reply
    assert f"Next payment: Rs 14,500 ({display_name('bisp_kafaalat')})." in reply
    assert display_name("bisp_kafaalat", "ur") in urdu and "14,500" in urdu and "رجسٹرڈ" in urdu


def test_a_stranger_learns_nothing_about_a_registered_or_unregistered_cnic(province):
    with transaction(province) as s:
        person = _holder(s)
        number, hid = person.cnic, person.household_id
        other = _holder(s, exclude=tuple(p.id for p in s.scalars(select(Individual).where(
            Individual.household_id == hid))))
        told = answer(s, STRANGER, number, NOW)
        neighbour = answer(s, _sender(other), number, NOW)
        unknown = "3520299999991"
        assert not s.scalars(select(Individual).where(Individual.cnic == unknown)).first()
        nobody = answer(s, _sender(person), unknown, NOW)
        denied = _audits(s, channel="sms", outcome="denied")
        reads = _audits(s, channel="sms", outcome="ok")
    assert told == neighbour == shortcode.say("en", "not_here", cnic=cnic_rules.mask(number))
    assert nobody == shortcode.say("en", "not_here", cnic=cnic_rules.mask(unknown))
    assert "band" not in told and "Eligible" not in told
    assert len(denied) == 3 and reads == []


def test_invalid_cnics_get_the_expected_form_and_store_nothing(province):
    with transaction(province) as s:
        person = _holder(s)
        phone = _sender(person)
        before = s.scalar(select(func.count()).select_from(AuditRecord))
        twelve = answer(s, phone, "35202-123456-1", NOW)
        zero = answer(s, phone, "05202-1234567-1", NOW)
        urdu = answer(s, phone, "شناختی ۳۵۲۰۲۱۲۳۴۵۶۷", NOW)
        after = s.scalar(select(func.count()).select_from(AuditRecord))
    assert twelve == "That CNIC has 12 digits. Send the 13 digits of the CNIC, e.g. 35202-1234567-1."
    assert zero.startswith("A CNIC cannot begin with 0.")
    assert "12 ہندسے" in urdu
    assert after == before


def test_help_and_malformed_keywords_get_the_list_of_keywords(province):
    with transaction(province) as s:
        phone = _sender(_holder(s))
        replies = [answer(s, phone, t, NOW) for t in ("HELP", "what is this", "EMPLOY ME", "")]
        urdu = answer(s, phone, "مدد", NOW)
    assert all(r == shortcode.say("en", "help") for r in replies)
    assert "CNIC" in replies[0] and "EMP" in replies[0] and "COMPLAIN" in replies[0] and "STOP" in replies[0]
    assert urdu == shortcode.say("ur", "help") and "شکایت" in urdu


def test_a_mistyped_receipt_is_caught_by_its_check_digit(province):
    with transaction(province) as s:
        phone = _sender(_holder(s))
        reply = answer(s, phone, "OW10237", NOW)
    assert reply == "OW10237 is not a valid receipt number: please check the digits. Please check the number on your receipt."


def test_the_employment_report_by_sms_is_recorded_for_the_phones_worker(province):
    with transaction(province) as s:
        person = _holder(s)
        pid, phone, masked = person.id, _sender(person), cnic_rules.mask(person.cnic)
        not_yet = answer(s, phone, "EMP JOB", NOW)
        registers.enrol(s, person, "daily_wager", date(2026, 3, 1), "kasur_counter", booth="B1", source_ref="test")
    assert not_yet == shortcode.say("en", "emp.not_registered", cnic=masked)
    with transaction(province) as s:
        missing = answer(s, phone, "EMP flying", NOW)
        n = s.scalar(select(func.count()).select_from(LabourReport))
        done = answer(s, phone, "kaam berozgar", NOW)
        rows = list(s.scalars(select(LabourReport).where(LabourReport.individual_id == pid)))
        status = s.get(Individual, pid).labour_status
    assert missing == shortcode.say("en", "emp.status_missing") and n == 0
    assert done.startswith(f"Thank you. Work report for {masked} recorded: no work.")
    assert [(r.status, r.channel, r.reported_on) for r in rows] == [("unemployed", "sms", NOW.date())]
    assert status == "unemployed"


def test_a_shared_phone_asks_for_the_cnic_and_a_stranger_cannot_report_for_someone(province):
    with transaction(province) as s:
        a = _holder(s)
        b = s.scalars(select(Individual).where(Individual.household_id == a.household_id, Individual.id != a.id,
                                               Individual.cnic.is_not(None), Individual.date_of_death.is_(None))).first()
        if b is None:
            pytest.skip("no second adult with a CNIC in the household")
        b.phone = a.phone
        for p in (a, b):
            registers.enrol(s, p, "daily_wager", date(2026, 3, 1), "kasur_counter", booth="B1", source_ref="test")
        phone, bid, bnum = _sender(a), b.id, b.cnic
    with transaction(province) as s:
        ambiguous = answer(s, phone, "EMP JOB", NOW)
        stranger = answer(s, STRANGER, f"EMP {bnum} JOB", NOW)
        n = s.scalar(select(func.count()).select_from(LabourReport))
        done = answer(s, phone, f"EMP {bnum} self", NOW)
        rows = [(r.individual_id, r.status) for r in s.scalars(select(LabourReport))]
    assert ambiguous == shortcode.say("en", "emp.ambiguous", n=2)
    assert stranger == shortcode.say("en", "not_here", cnic=cnic_rules.mask(bnum)) and n == 0
    assert done.startswith("Thank you.") and rows == [(bid, "self_employed")]


def test_an_urdu_status_reply_stays_within_three_parts_and_english_within_two(province):
    with transaction(province) as s:
        people = list(s.scalars(select(Individual).where(Individual.cnic.is_not(None), Individual.phone.is_not(None),
                                                         Individual.date_of_death.is_(None)).limit(40)))
        replies = [(answer(s, _sender(p), p.cnic, NOW), answer(s, _sender(p), "شناختی " + p.cnic, NOW))
                   for p in people]
    assert all(sms_parts(en) <= 2 for en, _ in replies)
    assert all(sms_parts(ur) <= 3 for _, ur in replies)


# ---------------------------------------------------------------- complaints and receipts (grievances, applications)

def test_a_complaint_by_sms_is_filed_for_the_phones_household_and_its_receipt_answers(province):
    from isps.citizen.grievances.models import Grievance

    with transaction(province) as s:
        person = _holder(s)
        phone, hid, did = _sender(person), person.household_id, person.district_id
        empty = answer(s, phone, "COMPLAIN", NOW)
        reply = answer(s, phone, "shikayat: paise nahi mile teen mahine se", NOW)
        g = s.scalars(select(Grievance)).one()
        receipt = shortcode.receipts.make("grievance", g.id)
        assert (g.channel, g.category, g.household_id, g.district_id, g.phone) == (
            "sms", "payment_not_received", hid, did, phone)
        assert g.description == "paise nahi mile teen mahine se" and g.opened_by == f"sms:{shortcode.mask_phone(phone)}"
        status = answer(s, phone, receipt.lower(), NOW)
        deduction = answer(s, phone, "COMPLAIN agent ne 1000 rupay kaat liye", NOW)
        urdu = answer(s, STRANGER, "شکایت ایجنٹ بدتمیز ہے", NOW)
        rows = s.scalars(select(Grievance).order_by(Grievance.id)).all()
    assert empty == shortcode.say("en", "complain.empty")
    assert reply == shortcode.say("en", "complain.done", receipt=receipt)
    assert status.startswith(f"Receipt {receipt} (grievance): open.")
    # no pickup outlet is known for the household: a deduction is filed as a partial payment
    assert [r.category for r in rows] == ["payment_not_received", "payment_partial", "other"]
    assert deduction.startswith("Your complaint is registered.") and "شکایت درج" in urdu
    assert rows[2].district_id is None and rows[2].household_id is None  # an unknown phone: the province level


def test_a_resolved_complaint_is_closed_or_reopened_by_sms_only_from_its_phone(province):
    from isps.access.service import Principal
    from isps.citizen import grievances
    from isps.citizen.grievances.models import Grievance

    with transaction(province) as s:
        person = _holder(s)
        phone = _sender(person)
        answer(s, phone, "COMPLAIN my name is wrong in the list", NOW)
        g = s.scalars(select(Grievance)).one()
        receipt = shortcode.receipts.make("grievance", g.id)
        early = answer(s, phone, f"{receipt} NO", NOW)
        grievances.service.resolve(s, Principal("admin", "administrator", None), g.id, root_cause="registry_data_error",
                                   resolution="name corrected from the CNIC")
        stranger = answer(s, STRANGER, f"{receipt} NO", NOW)
        reopened = answer(s, phone, f"{receipt}, nahi", NOW)
        s.refresh(g)
        state, count = g.status, g.reopen_count
        application = answer(s, phone, f"{shortcode.receipts.make('application', 5)} yes", NOW)
    assert early == shortcode.say("en", "answer.not_resolved", receipt=receipt)
    assert stranger == shortcode.say("en", "answer.not_yours", receipt=receipt)
    assert reopened.startswith(f"Complaint {receipt} is reopened") and (state, count) == ("reopened", 1)
    assert application == shortcode.say("en", "answer.not_grievance")


def test_an_applications_receipt_answers_its_status_without_personal_data(province):
    from isps.citizen import applications

    with transaction(province) as s:
        person = _holder(s)
        phone = _sender(person)
        app = applications.open_application(s, None, kind="program", channel="web", district_id=person.district_id,
                                            applicant_name=person.full_name, phone=person.phone,
                                            household_id=person.household_id, individual_id=person.id,
                                            program_code="bisp_kafaalat", actor="test")
        receipt = shortcode.receipts.make("application", app.id)
        reply = answer(s, STRANGER, f"  {receipt[:2]} {receipt[2:]} ", NOW)
        unknown = answer(s, phone, shortcode.receipts.make("application", app.id + 1000), NOW)
    assert reply.startswith(f"Receipt {receipt} (application): open. Step: ")
    assert person.full_name not in reply and person.cnic not in reply
    assert unknown.startswith("No application or grievance has receipt")


def test_a_member_who_left_the_household_is_no_longer_told_its_status(province):
    with transaction(province) as s:
        person = _holder(s)
        phone, number = _sender(person), person.cnic
        assert answer(s, phone, number, NOW).startswith(f"CNIC {cnic_rules.mask(number)}: registered.")
        person.left_on, person.left_reason = date(2026, 5, 1), "married_away"
        s.flush()
        assert answer(s, phone, number, NOW) == shortcode.say("en", "not_here", cnic=cnic_rules.mask(number))
