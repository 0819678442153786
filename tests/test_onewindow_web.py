"""One Window pages: find a citizen by CNIC, B-form, mobile number (any common form) or name
(spelling-blind), within the user's district, every search audited; the citizen screen's programs
and payments panel (ISPS enrolments and partners' lists); the membership panel's forms and the
updates page that shows the new kinds of request. Both backends."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import func, select, text, update

from isps.access.models import AuditRecord
from isps.db import transaction
from isps.interop.feeds import changes
from isps.interop.models import ChangeRequest
from isps.payments import payroll as pr
from isps.registry import current
from isps.registry.models import Individual
from tests.test_enrolment_partner_lists import send_list
from tests.test_payments import approved_kafaalat_cycle
from tests.test_web import sign_in, text_of


def _person(s, district_id: int, **where) -> Individual:
    q = select(Individual).where(Individual.district_id == district_id, current.clause())
    for k, v in where.items():
        q = q.where(v if k == "expr" else getattr(Individual, k) == v)
    return s.scalars(q.order_by(Individual.id)).first()


def _find(client, q: str, father: str = "", **extra):
    return client.post("/onewindow", data={"q": q, "father": father, **extra}, follow_redirects=False)


def _audits(engine, action: str) -> list[AuditRecord]:
    with transaction(engine) as s:
        return list(s.scalars(select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)))


def test_find_by_cnic_bform_and_every_phone_form_opens_the_citizen_screen(client, province):
    with transaction(province) as s:
        adult = _person(s, 2, id_document="cnic", expr=Individual.phone.is_not(None))
        child = _person(s, 2, id_document="bform")
        s.execute(update(Individual).where(Individual.phone == adult.phone, Individual.id != adult.id).values(phone=None))
        a = (adult.id, adult.household_id, adult.cnic, adult.phone)
        c = (child.id, child.household_id, child.cnic)
    sign_in(client, "kasur_counter")
    page = client.get("/onewindow")
    assert page.status_code == 200 and 'href="/onewindow"' in page.text  # in the navigation
    cnic = a[2]
    for typed in (cnic, f"{cnic[:5]}-{cnic[5:12]}-{cnic[12]}"):
        r = _find(client, typed)
        assert r.status_code == 303 and r.headers["location"] == f"/households/{a[1]}#person-{a[0]}"
    r = _find(client, c[2])  # a B-form number is found like a CNIC
    assert r.headers["location"] == f"/households/{c[1]}#person-{c[0]}"
    n = a[3][1:]  # 3001234567
    for typed in (a[3], f"0{n[:3]}-{n[3:]}", f"+92 {n[:3]} {n[3:]}", f"92{n}", n, f"0092{n}"):
        r = _find(client, typed)
        assert r.status_code == 303, (typed, r.status_code, text_of(r.text)[:300])
        assert r.headers["location"] == f"/households/{a[1]}#person-{a[0]}"
    r = client.post("/onewindow", data={"q": a[3]}, headers={"HX-Request": "true"})
    assert r.headers.get("HX-Redirect") == f"/households/{a[1]}#person-{a[0]}"
    looked = _audits(province, "lookup_cnic")
    assert len(looked) >= 3 and all(cnic not in (x.detail or "") for x in looked)
    assert cnic[:5] + "-*****" in looked[-1].detail
    searched = [x for x in _audits(province, "search") if "One Window" in (x.detail or "")]
    assert len(searched) >= 7 and all(a[3] not in x.detail for x in searched)


def test_find_by_name_is_spelling_blind_paged_and_scoped(client, province):
    with transaction(province) as s:
        person = _person(s, 2, relation_to_head="head", expr=Individual.father_husband_name.is_not(None))
        pid, name, father = person.id, person.full_name, person.father_husband_name
        lahore = _person(s, 1, relation_to_head="head")
        s.execute(update(Individual).where(Individual.id == lahore.id).values(full_name=name))
    sign_in(client, "kasur_counter")
    # the name as typed at the counter: vowels and transliteration changed
    variant = " ".join(w.replace("a", "aa", 1).replace("u", "o", 1) for w in name.split())
    r = _find(client, variant, father)
    assert r.status_code in (200, 303)
    if r.status_code == 303:
        assert r.headers["location"].endswith(f"#person-{pid}")
    else:
        assert f'data-person="{pid}"' in r.text
    # the same name without the father's: more people, a total, Kasur only (the Lahore namesake is not shown)
    page = _find(client, name).text
    total = int(re.search(r'id="ow-total" data-total="(\d+)"', page).group(1)) if "ow-total" in page else 1
    assert f'data-person="{lahore.id}"' not in page
    with transaction(province) as s:
        assert total <= s.scalar(select(func.count()).select_from(Individual).where(Individual.district_id == 2))
    # a common name pages by keyset: the next page starts after the last row shown
    common = _find(client, name.split()[-1]).text
    if 'id="ow-next"' in common:
        after = re.search(r'name="after" value="(\d+)"', common).group(1)
        rows = re.findall(r'data-person="(\d+)"', common)
        nxt = client.post("/onewindow", data={"q": name.split()[-1], "after": after, "start": "26"}).text
        more = re.findall(r'data-person="(\d+)"', nxt)
        assert more and min(int(x) for x in more) > max(int(x) for x in rows)
    # a province-wide user finds the namesake in Lahore too
    sign_in(client, "manager")
    assert f'data-person="{lahore.id}"' in _find(client, name).text


def test_bad_input_and_other_districts_numbers_are_refused_with_a_reason(client, province):
    with transaction(province) as s:
        lahore = _person(s, 1, id_document="cnic")
        cnic = lahore.cnic
    sign_in(client, "kasur_counter")
    r = _find(client, "12345")
    assert r.status_code == 422 and "query" in text_of(r.text) and "13 digits" in text_of(r.text)
    r = _find(client, "")
    assert r.status_code == 422 and "query" in text_of(r.text)
    r = _find(client, "Muhammad")  # filler alone tells nobody apart
    assert r.status_code == 422
    r = _find(client, cnic)
    assert r.status_code == 403 and "outside your district" in text_of(r.text)
    denied = [x for x in _audits(province, "lookup_cnic") if x.outcome == "denied"]
    assert denied and cnic not in denied[-1].detail
    r = _find(client, "3510200000001")
    assert r.status_code == 200 and 'id="ow-none"' in r.text


def test_the_benefits_panel_shows_enrolments_payments_and_partner_lists(client, province, tmp_path):
    cycle_id = approved_kafaalat_cycle(province)
    with transaction(province) as s:
        pr.release_funds(s, "bisp_kafaalat", 100_000_000, "RO-2026-07", "treasury")
        p = pr.generate(s, cycle_id, "maker")
        pr.approve(s, p.id, "checker")
        hid, eid, recipient = s.execute(text(
            "SELECT e.household_id, e.id, e.recipient_id FROM enrolment e WHERE e.status = 'enrolled' "
            "AND e.district_id = 2 ORDER BY e.id LIMIT 1")).one()
        n_pay = s.scalar(text("SELECT COUNT(*) FROM payment_instruction WHERE enrolment_id = :e"), {"e": eid})
    assert n_pay >= 1
    send_list(province, "zakat_guzara_allowance", "Punjab Zakat and Ushr Department", "zakat-test-1", [recipient], "ZT")
    sign_in(client, "kasur_counter")
    page = client.get(f"/households/{hid}").text
    assert f'hx-get="/households/{hid}/benefits"' in page and f'hx-get="/households/{hid}/membership"' in page
    panel = client.get(f"/households/{hid}/benefits").text
    assert 'data-source="isps" data-program="bisp_kafaalat"' in panel
    assert 'data-source="partner" data-program="zakat_guzara_allowance"' in panel
    assert "Punjab Zakat and Ushr Department" in panel and "Not yet sent" in panel
    assert panel.count("data-payment=") == n_pay
    urdu = client.get(f"/households/{hid}/benefits", cookies={"lang": "ur"}).text
    assert "پروگرام اور ادائیگیاں" in urdu
    with transaction(province) as s:
        reads = s.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.entity == "household", AuditRecord.entity_id == hid, AuditRecord.detail.like("benefits:%")))
    assert reads == 2
    payments = client.get(f"/households/{hid}/benefits/{eid}/payments")
    assert payments.status_code == 200 and f'data-total="{n_pay}"' in payments.text
    assert client.get(f"/households/{hid}/benefits/999999/payments").status_code == 404
    sign_in(client, "lahore_officer")  # another district's household: refused and audited
    assert client.get(f"/households/{hid}/benefits").status_code == 403


def test_membership_forms_make_requests_that_the_updates_page_shows_and_a_second_person_approves(client, province):
    with transaction(province) as s:
        head = _person(s, 2, relation_to_head="head")
        hid = head.household_id
        other = s.scalars(select(Individual).where(Individual.household_id == hid, Individual.id != head.id,
                                                   current.clause())).first()
    sign_in(client, "kasur_counter")
    panel = client.get(f"/households/{hid}/membership").text
    assert 'id="mem-add-form"' in panel and f'id="mem-remove-{head.id}"' in panel
    form = {"full_name": "Zainab Bibi", "sex": "female", "date_of_birth": "2026-01-15",
            "relation_to_head": "grandchild", "id_document": "bform", "cnic": "35102-7654321-4",
            "evidence": "B-form seen at the counter", "effective_date": date.today().isoformat()}
    bad = client.post(f"/households/{hid}/members", data={**form, "date_of_birth": "15/01/2026"},
                      headers={"HX-Request": "true"})
    assert bad.status_code == 422 and "date_of_birth" in text_of(bad.text)
    assert 'value="Zainab Bibi"' in bad.text  # the form keeps what was typed
    ok = client.post(f"/households/{hid}/members", data=form, headers={"HX-Request": "true"})
    assert ok.status_code == 200 and 'id="mem-done"' in ok.text and 'id="mem-pending"' in ok.text
    if other is not None:
        r = client.post(f"/households/{hid}/members/{other.id}/remove",
                        data={"reason": "left", "detail": "married_away", "evidence": "nikah nama"},
                        headers={"HX-Request": "true"})
        assert r.status_code == 200 and 'id="mem-done"' in r.text
        r = client.post(f"/households/{hid}/members/{other.id}/remove", data={"reason": "left", "evidence": "x"},
                        headers={"HX-Request": "true"})
        assert r.status_code == 422 and "detail" in text_of(r.text)
    r = client.post(f"/households/{hid}/members/{head.id}/edit",
                    data={"phone": "03211234567", "evidence": "the citizen's own SIM"}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and 'id="mem-done"' in r.text
    with transaction(province) as s:
        kinds = sorted(changes.kind_of(c.changes) for c in s.scalars(select(ChangeRequest).where(
            ChangeRequest.household_id == hid, ChangeRequest.status == "pending")))
        add_id = s.scalar(select(func.max(ChangeRequest.id)).where(ChangeRequest.household_id == hid,
                                                                  ChangeRequest.entity == "household"))
    assert kinds == sorted(["member.add", "fields"] + (["member.remove"] if other is not None else []))
    sign_in(client, "kasur_officer")
    updates = client.get("/updates").text
    assert f"Add a member to household {hid}" in text_of(updates) and "35102-*****21-4" in updates
    assert "Married away" in text_of(updates) or other is None
    urdu = client.get("/updates", cookies={"lang": "ur"}).text
    assert f"گھرانہ {hid} میں رکن شامل کرنا" in urdu
    r = client.post(f"/updates/change-requests/{add_id}", data={"decision": "approve"}, follow_redirects=False)
    assert r.status_code == 303
    with transaction(province) as s:
        assert s.scalar(select(Individual.household_id).where(Individual.cnic == "3510276543214")) == hid
    sign_in(client, "auditor")  # no registry.write: no forms, and a post is refused
    assert 'id="mem-add-form"' not in client.get(f"/households/{hid}/membership").text
    assert client.post(f"/households/{hid}/members", data=form).status_code == 403


def test_the_database_skeleton_of_every_name_is_the_python_one(province):
    """The name search compares a skeleton the database computes with one computed in Python: on both
    backends they agree for every name of a district (and the folds do what the doc says)."""
    from isps.citizen import find

    assert find.name_parts("Usmaan") == find.name_parts("Osman") == find.name_parts("Usman")
    assert find.name_parts("Mohammad Rehman") == find.name_parts("Muhammad Rahman") == ["rmn"]
    assert find.name_parts("Aisha") == find.name_parts("Ayesha")
    assert find.name_parts("Qasim") == find.name_parts("Kasim") != find.name_parts("Hashim")
    with transaction(province) as s:
        rows = s.execute(select(Individual.full_name, find.skeleton_sql(s, Individual.full_name))
                         .where(Individual.district_id == 2)).all()
    assert len(rows) > 50
    assert all(sql == find.skeleton(name) or " ".join(sql.split()) == find.skeleton(name) for name, sql in rows)
