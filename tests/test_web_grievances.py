"""Grievance pages through the app on both backends: filing at the counter (find by CNIC, the receipt),
the list (filters, total, sort, export, scope), a grievance's file and its actions, 403s audited,
bad input named without a 500 and nothing stored, the analytics page and the household panel."""

from __future__ import annotations

import re

from isps.citizen import receipts
from tests.test_web import as_user, denied, post, scalar, text_of


def kasur_person(engine) -> tuple[int, str, int]:
    with __import__("isps.db", fromlist=["transaction"]).transaction(engine) as s:
        row = s.execute(__import__("sqlalchemy").text(
            "SELECT id, cnic, household_id FROM individual WHERE district_id = 2 AND cnic IS NOT NULL "
            "AND date_of_death IS NULL ORDER BY id LIMIT 1")).one()
    return row.id, row.cnic, row.household_id


def test_filing_at_the_counter_and_handling_it(client, province):
    person, cnic, household = kasur_person(province)
    as_user(client, "kasur_counter")
    page = client.get("/grievances/new")
    assert page.status_code == 200 and 'name="cnic"' in page.text
    found = post(client, "/grievances/new/find", cnic=cnic, channel="counter")
    assert found.status_code == 200 and f'data-household="{household}"' in found.text
    assert cnic not in found.text  # shown masked
    # bad input: a clear message naming the field, nothing stored
    for data, message in (({"category": "lost_cow", "description": "x"}, "category: 'lost_cow' is not one of"),
                          ({"category": "other", "description": ""}, "description: required"),
                          ({"category": "other", "description": "x", "phone": "12"}, "phone: '12' is not a Pakistani mobile number"),
                          ({"category": "other", "description": "x", "payment_instruction_id": "abc"},
                           "payment_instruction_id: 'abc' is not a number")):
        r = post(client, "/grievances", channel="counter", household_id=str(household), individual_id=str(person),
                 **data)
        assert r.status_code == 422 and message in text_of(r.text), (data, text_of(r.text)[:300])
        assert f'data-household="{household}"' in r.text and cnic not in r.text  # the citizen found stays
    assert scalar(province, "SELECT COUNT(*) FROM grievance") == 0
    r = post(client, "/grievances", channel="counter", category="data_error", description="my age is wrong",
             household_id=str(household), individual_id=str(person), phone="0300-7654321")
    assert r.status_code == 303, text_of(r.text)[:400]
    gid = scalar(province, "SELECT MAX(id) FROM grievance")
    assert r.headers["location"] == f"/grievances/{gid}/receipt"
    receipt = client.get(r.headers["location"])
    assert receipts.make("grievance", gid) in receipt.text and "kasur_grievance" in text_of(receipt.text)
    # a counter operator takes grievances, does not handle them: 403, audited
    before = denied(province, "kasur_counter", "read")
    assert client.get(f"/grievances/{gid}").status_code == 403
    assert denied(province, "kasur_counter", "read") == before + 1
    assert post(client, f"/grievances/{gid}/resolve", root_cause="other", resolution="x").status_code == 403
    # the list: the counter sees its district's, with the total
    lst = client.get("/grievances")
    assert lst.status_code == 200 and f'data-grievance="{gid}"' in lst.text and 'data-total="1"' in lst.text
    # the grievance officer resolves it with a root cause; the citizen is not satisfied; then is
    as_user(client, "kasur_grievance")
    home = client.get("/")
    assert 'data-queue="my_grievances" data-count="1"' in home.text
    mine = client.get("/grievances?mine=1&status=pending")
    assert f'data-grievance="{gid}"' in mine.text
    detail = client.get(f"/grievances/{gid}")
    assert detail.status_code == 200 and "my age is wrong" in detail.text and "92300*****21" in detail.text
    bad = post(client, f"/grievances/{gid}/resolve", root_cause="weather", resolution="fixed")
    assert bad.status_code == 422 and "root_cause: 'weather'" in text_of(bad.text)
    assert scalar(province, "SELECT status FROM grievance WHERE id = :g", g=gid) == "open"
    assert post(client, f"/grievances/{gid}/note", note="called the citizen").status_code == 303
    r = post(client, f"/grievances/{gid}/resolve", root_cause="registry_data_error", resolution="date of birth corrected")
    assert r.status_code == 303 and r.headers["location"].endswith("done=resolve")
    assert post(client, f"/grievances/{gid}/confirm", satisfied="no", note="still wrong").status_code == 303
    assert scalar(province, "SELECT status FROM grievance WHERE id = :g", g=gid) == "reopened"
    assert scalar(province, "SELECT reopen_count FROM grievance WHERE id = :g", g=gid) == 1
    post(client, f"/grievances/{gid}/resolve", root_cause="registry_data_error", resolution="corrected again")
    assert post(client, f"/grievances/{gid}/confirm", satisfied="yes").status_code == 303
    page = client.get(f"/grievances/{gid}")
    kinds = re.findall(r'<li data-kind="(\w+)"', page.text)
    assert kinds == ["filed", "routed", "note", "resolved", "reopened", "resolved", "confirmed"]
    for action in ("file", "resolve", "reopen", "confirm", "edit"):
        assert scalar(province, "SELECT COUNT(*) FROM audit_log WHERE entity = 'grievance' AND action = :a "
                                "AND outcome = 'ok' AND entity_id = :g", a=action, g=gid) >= 1, action
    # the household page's panel
    panel = client.get(f"/households/{household}/grievances")
    assert panel.status_code == 200 and receipts.make("grievance", gid) in panel.text
    as_user(client, "kasur_counter")
    assert f'href="/grievances/new?household={household}"' in client.get(f"/households/{household}/grievances").text
    form = client.get(f"/grievances/new?household={household}")
    assert form.status_code == 200 and f'data-household="{household}"' in form.text and cnic not in form.text
    lahore = scalar(province, "SELECT MIN(id) FROM household WHERE district_id = 1")
    assert client.get(f"/grievances/new?household={lahore}").status_code == 404  # not theirs: not shown
    # outside the district: Lahore's officer gets 403 (audited) and does not see it in the list
    as_user(client, "lahore_officer")
    assert client.get(f"/grievances/{gid}").status_code == 403
    assert denied(province, "lahore_officer", "read") >= 1
    assert f'data-grievance="{gid}"' not in client.get("/grievances").text
    assert client.get(f"/households/{household}/grievances").status_code == 403
    # the auditor reads the list and the analytics, not a grievance's file
    as_user(client, "auditor")
    assert client.get("/grievances").status_code == 200
    assert "/grievances/new" not in client.get(f"/households/{household}/grievances").text  # takes none
    assert client.get(f"/grievances/{gid}").status_code == 403
    a = client.get("/grievances/analytics")
    assert a.status_code == 200 and 'id="chart-district"' in a.text and 'id="fig-reopen">100.0%' in a.text


def test_the_list_filters_sorts_and_exports(client, province):
    from datetime import datetime, timedelta

    from isps.access.service import Principal
    from isps.citizen.grievances import service as gs
    from isps.db import transaction

    admin = Principal("admin", "administrator", None)
    with transaction(province) as s:
        from sqlalchemy import text
        hh = s.execute(text("SELECT id FROM household WHERE district_id = 2 ORDER BY id LIMIT 1")).scalar()
        old = datetime.now() - timedelta(days=30)
        for i, category in enumerate(("data_error", "other", "data_error")):
            gs.file_grievance(s, admin, channel="call_centre" if i else "counter", category=category,
                              description=f"complaint {i}", district_id=None, household_id=hh,
                              now=old if i == 0 else None)
    as_user(client, "admin")
    page = client.get("/grievances?category=data_error")
    assert 'data-total="2"' in page.text
    late = client.get("/grievances?late=1")
    assert 'data-total="1"' in late.text  # the one filed 30 days ago
    assert 'data-total="1"' in client.get("/grievances?channel=counter").text
    ids = [int(x) for x in re.findall(r'data-grievance="(\d+)"', client.get("/grievances?sort=due").text)]
    assert ids[0] == min(ids)  # the oldest due first
    assert client.get("/grievances?sort=password").status_code == 400
    csv = client.get("/grievances?category=data_error&format=csv&list=grievances")
    assert csv.status_code == 200 and csv.text.count("\n") == 3 and "GR" in csv.text
    assert scalar(province, "SELECT COUNT(*) FROM audit_log WHERE action = 'export' AND entity = 'grievance'") == 1


def test_disabling_an_owner_on_the_users_page_reassigns_their_open_grievances(client, province):
    from isps.access.service import Principal
    from isps.citizen.grievances import service as gs
    from isps.db import transaction

    _, _, household = kasur_person(province)
    with transaction(province) as s:
        gid = gs.file_grievance(s, Principal("kasur_counter", "counter_operator", 2), channel="counter",
                                category="other", description="x", district_id=None, household_id=household).id
    assert scalar(province, "SELECT owner FROM grievance WHERE id = :g", g=gid) == "kasur_grievance"
    as_user(client, "admin")
    uid = scalar(province, "SELECT id FROM app_user WHERE username = 'kasur_grievance'")
    assert post(client, f"/users/{uid}/disable").status_code == 303
    assert scalar(province, "SELECT owner FROM grievance WHERE id = :g", g=gid) == "kasur_officer"
    assert scalar(province, "SELECT COUNT(*) FROM grievance_event WHERE grievance_id = :g AND kind = 'reassigned'",
                  g=gid) == 1


def test_a_counter_cannot_file_for_a_household_of_another_district(client, province):
    lahore = scalar(province, "SELECT MIN(id) FROM household WHERE district_id = 1")
    as_user(client, "kasur_counter")
    r = post(client, "/grievances", channel="counter", category="other", description="x", household_id=str(lahore))
    assert r.status_code == 403 and "outside your district" in text_of(r.text)
    assert scalar(province, "SELECT COUNT(*) FROM grievance") == 0
    assert denied(province, "kasur_counter", "file") == 1
    # a role that takes no grievances is refused the form, audited
    as_user(client, "auditor")
    assert client.get("/grievances/new").status_code == 403
    assert denied(province, "auditor", "file") == 1
