"""The One Window's application pages on both backends: a counter registers a household (member
rows in order, errors naming the row and field), a second person verifies it and the page shows
the score and eligibility, the list filters, sorts and exports, the receipt prints in both
languages, the household panel lists the applications; another district's application is a 403,
audited."""

from __future__ import annotations

import re
import time

from sqlalchemy import text

from isps.citizen import receipts
from isps.db import transaction
from isps.services import jobs
from isps.targeting.eligibility import rules
from tests.test_applications import family, household_form
from tests.test_web import as_user, scalar, text_of


def registration_form(engine, members=None, **over) -> list[tuple[str, str]]:
    with transaction(engine) as s:
        hh = household_form(s)
    data = [("kind", "registration"), ("applicant_name", "Ghulam Rasool"), ("phone", "03001234567")]
    data += [(k, v) for k, v in hh.items() if v != "no" or k == "urban"]  # unticked boxes are not sent
    data += [(k, v) for k, v in over.items()]
    for m in members or family():
        for k, v in m.items():
            data.append(("phone_m" if k == "phone" else k, v))
    data += [("evidence_kind", "cnic_seen"), ("evidence_ref", "35102-9876541-3"),
             ("evidence_kind", ""), ("evidence_ref", "")]
    return data


def submit(client, data):
    """A form post with repeated fields (one value per member row), as a browser sends it."""
    fields: dict[str, list[str]] = {}
    for k, v in data:
        fields.setdefault(k, []).append(v)
    return client.post("/applications/new", data=fields, follow_redirects=False)


def test_a_counter_registers_and_a_second_person_verifies_and_sees_the_outcome(client, province):
    with transaction(province) as s:
        rules.install_shipped_rules(s)
    as_user(client, "kasur_counter")
    page = client.get("/applications/new?kind=registration")
    assert page.status_code == 200 and 'id="members"' in page.text and 'name="full_name"' in page.text
    row = client.get("/applications/new/member?n=2")
    assert row.status_code == 200 and 'id="member-2"' in row.text and "n=3" in row.text and "hx-swap-oob" in row.text
    bad = family()
    bad[1]["date_of_birth"] = "1984-13-40"
    r = submit(client, registration_form(province, bad))
    assert r.status_code == 422
    assert "member 2: date_of_birth must be a date written YYYY-MM-DD" in text_of(r.text)
    assert 'value="Naseem Bibi"' in r.text  # the rows come back as typed
    assert scalar(province, "SELECT COUNT(*) FROM application") == 0
    r = submit(client, registration_form(province))
    assert r.status_code == 303, r.text
    app_id = int(re.search(r"/applications/(\d+)", r.headers["location"]).group(1))
    page = client.get(r.headers["location"])
    words = text_of(page.text)
    assert receipts.make("application", app_id) in words and "not yet in the registry" in words
    assert "35102-*****41-3" in words and "9876541" not in page.text  # CNICs masked on the page
    assert 'id="verify-form"' not in page.text  # the counter cannot verify
    assert client.post(f"/applications/{app_id}/verify", data={}).status_code == 403
    listing = client.get("/applications?status=open&kind=registration")
    assert receipts.make("application", app_id) in listing.text and 'data-total="1"' in listing.text
    assert client.get("/applications?sort=applicant_name").status_code == 400
    csv = client.get("/applications?format=csv&list=applications")
    assert csv.status_code == 200 and receipts.make("application", app_id) in csv.text

    as_user(client, "kasur_officer")
    page = client.get(f"/applications/{app_id}")
    assert 'id="verify-form"' in page.text and 'id="visit-form"' in page.text
    r = client.post(f"/applications/{app_id}/verify", data={"note": "documents seen"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    job = re.search(r"job=([0-9a-f]+)", r.headers["location"]).group(1)
    assert jobs.wait(job, 120).state == "done", jobs.get(job).error
    outcome = client.get(f"/applications/{app_id}/outcome?job={job}")
    words = text_of(outcome.text)
    assert "PMT score" in words and 'id="eligibility"' in outcome.text and "Eligible" in words
    page = client.get(f"/applications/{app_id}")
    assert "Registered" in text_of(page.text)
    household = scalar(province, "SELECT household_id FROM application WHERE id = :a", a=app_id)
    panel = client.get(f"/households/{household}/applications")
    assert panel.status_code == 200 and receipts.make("application", app_id) in panel.text
    receipt = client.get(f"/applications/{app_id}/receipt")
    assert receipt.status_code == 200 and receipts.make("application", app_id) in receipt.text
    client.cookies.set("lang", "ur")
    receipt = client.get(f"/applications/{app_id}/receipt")
    assert 'dir="rtl"' in receipt.text and "درخواست کی رسید" in receipt.text
    client.cookies.set("lang", "en")
    assert scalar(province, "SELECT COUNT(*) FROM audit_log WHERE action = 'verify' AND entity = 'application' "
                            "AND entity_id = :a AND outcome = 'ok'", a=app_id) == 1


def test_another_districts_application_is_refused_and_audited(client, province):
    as_user(client, "kasur_counter")
    app_id = int(re.search(r"/applications/(\d+)", submit(client, registration_form(province))
                           .headers["location"]).group(1))
    as_user(client, "lahore_officer")
    r = client.get(f"/applications/{app_id}")
    assert r.status_code == 403 and "outside your district" in r.text and "Ghulam" not in r.text
    assert client.post(f"/applications/{app_id}/verify", data={}).status_code == 403
    assert client.get(f"/applications/{app_id}/receipt").status_code == 403
    assert scalar(province, "SELECT COUNT(*) FROM audit_log WHERE actor = 'lahore_officer' AND entity = 'application' "
                            "AND entity_id = :a AND outcome = 'denied'", a=app_id) >= 3
    listing = client.get("/applications")
    assert receipts.make("application", app_id) not in listing.text
    assert client.get("/applications/99999999").status_code == 404
    as_user(client, "kasur_counter")  # the taker cannot verify her own even with the right role missing
    assert scalar(province, "SELECT status FROM application WHERE id = :a", a=app_id) == "open"


def test_a_program_application_is_decided_on_its_page(client, province):
    with transaction(province) as s:
        rules.install_shipped_rules(s)
        hh = s.execute(text("""SELECT household_id FROM individual WHERE district_id = 2 AND relation_to_head = 'head'
            AND household_id NOT IN (SELECT household_id FROM enrolment) ORDER BY id LIMIT 1""")).scalar_one()
    as_user(client, "kasur_counter")
    page = client.get(f"/applications/new?kind=program&household_id={hh}")
    assert page.status_code == 200 and 'name="program"' in page.text
    r = submit(client, [("kind", "program"), ("household_id", str(hh)), ("applicant_name", "Head"),
                        ("program", "bisp_kafaalat"), ("individual_id", ""),
                        ("evidence_kind", "cnic_seen"), ("evidence_ref", "seen")])
    assert r.status_code == 303, r.text
    app_id = int(re.search(r"/applications/(\d+)", r.headers["location"]).group(1))
    as_user(client, "kasur_officer")
    r = client.post(f"/applications/{app_id}/decide", follow_redirects=False)
    assert r.status_code == 303
    page = text_of(client.get(f"/applications/{app_id}").text)
    assert "Enrolled" in page or "On the waiting list" in page
    again = client.post(f"/applications/{app_id}/decide")
    assert again.status_code == 422 and "already disposed" in text_of(again.text)


def test_bad_input_gets_a_clear_answer_and_stores_nothing(client, province):
    as_user(client, "kasur_counter")
    for data in ([("kind", "nonsense")],
                 [("kind", "program"), ("household_id", "9" * 40), ("applicant_name", "X")],
                 [("kind", "change"), ("household_id", "1"), ("applicant_name", "X")],
                 registration_form(province, tehsil_id="9" * 30),
                 registration_form(province, uc_id="99999999999999999999"),
                 registration_form(province, rooms="=1+1"),
                 [(k, v) for k, v in registration_form(province) if k != "full_name"]):
        r = submit(client, data)
        assert r.status_code in (403, 404, 422), (data[:2], r.status_code)
        assert 'id="error"' in r.text or "error" in r.text.lower()
    r = submit(client, registration_form(province, uc_id="99999999999999999999"))
    assert "uc_id" in text_of(r.text)
    assert client.get("/applications?sort=nonsense").status_code == 400
    assert client.get("/applications/new/member?n=99").status_code == 400
    assert client.get("/applications/123456789012345678901234").status_code == 400
    assert scalar(province, "SELECT COUNT(*) FROM application") == 0


def test_a_change_is_taken_with_evidence_and_a_visit_is_scheduled_and_recorded(client, province):
    with transaction(province) as s:
        hh, person = s.execute(text("""SELECT household_id, id FROM individual WHERE district_id = 2
            AND relation_to_head = 'head' ORDER BY id LIMIT 1""")).one()
    as_user(client, "kasur_counter")
    page = client.get(f"/applications/new?kind=change&household_id={hh}")
    assert page.status_code == 200 and 'name="change_field"' in page.text
    r = submit(client, [("kind", "change"), ("household_id", str(hh)), ("applicant_name", "Head"),
                        ("appeal", "pmt_score"), ("individual_id", ""), ("change_field", "rooms"),
                        ("change_value", "1"), ("change_field", ""), ("change_value", ""), ("note", "one room"),
                        ("evidence_kind", "affidavit"), ("evidence_ref", "AFF-77")])
    assert r.status_code == 303, text_of(r.text)[-300:]
    change_id = int(re.search(r"/applications/(\d+)", r.headers["location"]).group(1))
    request_id = scalar(province, "SELECT change_request_id FROM application WHERE id = :a", a=change_id)
    assert scalar(province, "SELECT status FROM change_request WHERE id = :r", r=request_id) == "pending"
    page = client.get(f"/applications/{change_id}")
    assert "Appeal of the PMT score" in text_of(page.text) and 'id="review-hint"' in page.text

    r = submit(client, registration_form(province))
    app_id = int(re.search(r"/applications/(\d+)", r.headers["location"]).group(1))
    as_user(client, "kasur_officer")
    r = client.post(f"/applications/{app_id}/visit", data={"visit_on": "2100-01-01", "assignee": "kasur_grievance"})
    assert r.status_code == 422 and "visit_on" in text_of(r.text)
    from datetime import date
    r = client.post(f"/applications/{app_id}/visit", data={"visit_on": date.today().isoformat(),
                                                          "assignee": "kasur_grievance"}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(f"/applications/{app_id}")
    assert 'id="visit-result-form"' in page.text and "kasur_grievance" in page.text
    r = client.post(f"/applications/{app_id}/visit-result", data={"outcome": "not_found", "note": "locked house, "
                                                                  "neighbours never heard of them"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert scalar(province, "SELECT disposal FROM application WHERE id = :a", a=app_id) == "rejected"
    assert scalar(province, "SELECT COUNT(*) FROM household WHERE ref LIKE 'CTR-%'") == 0


def test_a_refused_program_application_gives_the_other_program_in_the_readers_language(client, province):
    from tests.test_enrolment_partner_lists import send_list

    with transaction(province) as s:
        rules.install_shipped_rules(s)
        woman, hh = s.execute(text("""SELECT i.id, i.household_id FROM individual i WHERE i.district_id = 2
            AND i.sex = 'female' AND i.cnic IS NOT NULL AND i.date_of_birth <= '1995-01-01'
            AND i.date_of_death IS NULL ORDER BY i.id LIMIT 1""")).one()
    send_list(province, "zakat_guzara_allowance", "Zakat Committee Kasur", "guzara-kasur-apps", [woman], "ZK")
    as_user(client, "kasur_counter")
    r = submit(client, [("kind", "program"), ("household_id", str(hh)), ("applicant_name", "Applicant"),
                        ("program", "pbm_financial_assistance"), ("individual_id", str(woman)),
                        ("evidence_kind", "cnic_seen"), ("evidence_ref", "seen")])
    assert r.status_code == 303, text_of(r.text)[-300:]
    app_id = int(re.search(r"/applications/(\d+)", r.headers["location"]).group(1))
    as_user(client, "kasur_officer")
    client.post(f"/applications/{app_id}/decide", follow_redirects=False)
    reason = scalar(province, "SELECT disposal_reason FROM application WHERE id = :a", a=app_id)
    assert scalar(province, "SELECT disposal FROM application WHERE id = :a", a=app_id) == "refused"
    assert "guzara-kasur-apps" in reason  # the list it came from
    english = text_of(client.get(f"/applications/{app_id}").text)
    assert reason in english
    client.cookies.set("lang", "ur")
    urdu = client.get(f"/applications/{app_id}").text
    client.cookies.set("lang", "en")
    shown = text_of(re.search(r'id="app-reason">(.*?)</dd>', urdu, re.S).group(1))
    assert shown != reason and "guzara-kasur-apps" in shown and any("\u0600" <= ch <= "\u06ff" for ch in shown)


def test_a_citizen_not_found_at_the_one_window_is_offered_registration(client, province):
    as_user(client, "kasur_counter")
    r = client.post("/onewindow", data={"q": "3510200000001", "father": ""}, follow_redirects=False)
    assert r.status_code == 200 and 'id="ow-none"' in r.text
    assert 'href="/applications/new?kind=registration"' in r.text
    as_user(client, "auditor")  # who may not take an application is not offered it
    r = client.post("/onewindow", data={"q": "3510200000001", "father": ""}, follow_redirects=False)
    assert 'id="ow-register"' not in r.text
