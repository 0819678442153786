"""The waiting list promotes the next household automatically when an enrolled one exits: by API and
in the web app; payroll, status file and ledger through the API."""

from __future__ import annotations

from datetime import date

from isps.db import transaction
from isps.targeting.eligibility import rules
from tests.conftest import PASSWORD, token_for

CODE = "bisp_kafaalat"


def _run(engine) -> int:
    with transaction(engine) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, CODE)
        return rules.run(s, row, "test", on=date(2026, 6, 1)).id


def test_exit_by_api_promotes_the_next_household(client, province):
    run_id = _run(province)
    manager, officer = token_for(client, "manager"), token_for(client, "lahore_officer")
    assert client.put(f"/api/v1/programs/{CODE}/capacity", json={"slots": 8}, headers=officer).status_code == 403
    r = client.put(f"/api/v1/programs/{CODE}/capacity", json={"slots": 8}, headers=manager)
    assert r.status_code == 200 and r.json()["capacity"] == 8
    r = client.post(f"/api/v1/programs/{CODE}/enrolment/runs/{run_id}", headers=manager)
    assert r.status_code == 201 and r.json()["enrolled"] == 8
    waiting = client.get(f"/api/v1/programs/{CODE}/waiting-list", headers=manager).json()
    enrolled = client.get(f"/api/v1/programs/{CODE}/enrolments", headers=manager).json()
    assert len(enrolled) == 8 and waiting
    target = enrolled[0]
    # a district officer may exit only in their own district
    if target["district_id"] != 1:
        r = client.post(f"/api/v1/enrolments/{target['id']}/status", json={"status": "exited", "reason": "moved"},
                        headers=officer)
        assert r.status_code == 403
        assert _scalar(province, "SELECT COUNT(*) FROM audit_log WHERE action = 'exit' AND outcome = 'denied' "
                                 "AND actor = 'lahore_officer' AND entity_id = :e", e=target["id"]) == 1
    r = client.post(f"/api/v1/enrolments/{target['id']}/status",
                    json={"status": "exited", "reason": "left the country"}, headers=token_for(client, "admin"))
    assert r.status_code == 200, r.text
    assert r.json()["promoted"] == 1 and r.json()["promoted_ids"] == [waiting[0]["id"]]
    nxt = client.get(f"/api/v1/enrolments/{waiting[0]['id']}", headers=manager).json()
    assert nxt["status"] == "enrolled" and f"enrolment {target['id']} exited" in nxt["reason"]
    assert [h["status"] for h in nxt["history"]] == ["waiting", "enrolled"]
    assert client.get(f"/api/v1/programs/{CODE}/enrolment", headers=manager).json()["counts"]["enrolled"] == 8
    # a larger budget enrols more at once
    r = client.put(f"/api/v1/programs/{CODE}/capacity", json={"slots": 10}, headers=manager)
    assert r.json()["promoted"] == 2

    # cycle → payroll → export → status file twice → ledger, all by API
    c = client.post(f"/api/v1/programs/{CODE}/cycles", json={"starts_on": date.today().isoformat()}, headers=manager).json()
    assert client.post(f"/api/v1/cycles/{c['id']}/entitlements", headers=manager).json()["entitlements"] == 10
    assert client.post(f"/api/v1/cycles/{c['id']}/approve", headers=manager).status_code == 409  # maker-checker
    assert client.post(f"/api/v1/cycles/{c['id']}/approve", headers=token_for(client, "admin")).status_code == 200
    p = client.post(f"/api/v1/cycles/{c['id']}/payroll", headers=manager).json()
    assert client.post(f"/api/v1/cycles/{c['id']}/payroll", headers=manager).json()["id"] == p["id"]
    assert client.post(f"/api/v1/payrolls/{p['id']}/approve", headers=manager).status_code == 409
    r = client.post(f"/api/v1/payrolls/{p['id']}/approve", headers=token_for(client, "admin"))
    assert r.status_code == 422 and "needs Rs 85,000.00" in r.json()["detail"]  # nothing released yet
    release = {"amount": 85_000, "reference": "RO-2026-Q3"}
    assert client.post("/api/v1/programs/bisp_kafaalat/fund-releases", json=release,
                       headers=token_for(client, "auditor")).status_code == 403
    r = client.post("/api/v1/programs/bisp_kafaalat/fund-releases", json=release, headers=manager)
    assert r.status_code == 201 and r.json()["fund"]["released"] == 85_000
    assert client.post("/api/v1/programs/nope/fund-releases", json=release, headers=manager).status_code == 422
    assert client.post(f"/api/v1/payrolls/{p['id']}/approve", headers=token_for(client, "admin")).status_code == 200
    out = client.post(f"/api/v1/payrolls/{p['id']}/export", headers=manager).json()
    lines = open(out["files"]["csv"]).read().splitlines()[1:]
    status = "end_to_end_id,status,amount,status_on,bank_ref,biometric_ok\n" + "".join(
        f"{ln.split(',')[0]},paid,8500.00,2026-07-10,R{k},1\n" for k, ln in enumerate(lines))
    r1 = client.post("/api/v1/payments/status-files?name=s.csv", content=status, headers=manager).json()
    r2 = client.post("/api/v1/payments/status-files?name=s.csv", content=status, headers=manager)
    assert r1["applied"] == 10 and r2.status_code == 409
    assert f"already imported as import {r1['import_id']}" in r2.json()["detail"]
    r3 = client.post("/api/v1/payments/status-files?name=s2.csv", content=status + "\n", headers=manager).json()
    assert r3["applied"] == 0 and r3["duplicates"] == 10
    ledger = client.get("/api/v1/payments/ledger", headers=manager).json()
    assert ledger["balanced"] and ledger["accounts"]["disbursed"] == 85_000


def test_exit_in_the_web_app_promotes_the_next_household(client, province):
    run_id = _run(province)
    manager = token_for(client, "manager")
    client.put(f"/api/v1/programs/{CODE}/capacity", json={"slots": 5}, headers=manager)
    client.post(f"/api/v1/programs/{CODE}/enrolment/runs/{run_id}", headers=manager)
    first_waiting = client.get(f"/api/v1/programs/{CODE}/waiting-list", headers=manager).json()[0]
    client.cookies.clear()
    r = client.post("/login", data={"username": "admin", "password": PASSWORD, "next": f"/programs/{CODE}/enrolment"})
    assert r.status_code == 200 and 'id="enrolled-table"' in r.text
    assert f'data-enrolment="{first_waiting["id"]}"' in r.text.split('id="waiting-list"')[1]
    enrolled = client.get(f"/api/v1/programs/{CODE}/enrolments").json()
    target = enrolled[0]["id"]
    r = client.post(f"/programs/{CODE}/enrolment/{target}/exit", data={"reason": "moved to Karachi"},
                    follow_redirects=False)
    assert r.status_code == 303 and f"promoted={first_waiting['id']}" in r.headers["location"]
    page = client.get(r.headers["location"])
    assert 'id="exit-notice"' in page.text and f"#{first_waiting['id']}" in page.text
    enrolled_part = page.text.split('id="enrolled-table"')[1].split("</table>")[0]
    assert f'data-enrolment="{first_waiting["id"]}"' in enrolled_part
    assert f'data-enrolment="{target}"' not in enrolled_part
    # an empty reason is refused
    other = enrolled[1]["id"]
    r = client.post(f"/programs/{CODE}/enrolment/{other}/exit", data={"reason": " "})
    assert r.status_code == 422
    # Urdu
    client.get("/lang/ur")
    assert "انتظار کی فہرست" in client.get(f"/programs/{CODE}/enrolment").text
    # the counter operator may not exit
    client.cookies.clear()
    client.post("/login", data={"username": "auditor", "password": PASSWORD, "next": "/"})
    assert client.post(f"/programs/{CODE}/enrolment/{other}/exit", data={"reason": "x y z"}).status_code == 403
    assert _scalar(province, "SELECT COUNT(*) FROM audit_log WHERE action = 'exit' AND outcome = 'denied' "
                             "AND actor = 'auditor' AND channel = 'web'") == 1


def test_payroll_page_shows_status_and_ledger(client, province):
    run_id = _run(province)
    manager, admin = token_for(client, "manager"), token_for(client, "admin")
    client.post(f"/api/v1/programs/{CODE}/enrolment/runs/{run_id}", headers=manager)
    c = client.post(f"/api/v1/programs/{CODE}/cycles", json={"starts_on": date.today().isoformat()}, headers=manager).json()
    client.post(f"/api/v1/cycles/{c['id']}/entitlements", headers=manager)
    client.post(f"/api/v1/cycles/{c['id']}/approve", headers=admin)
    p = client.post(f"/api/v1/cycles/{c['id']}/payroll", headers=manager).json()
    client.cookies.clear()
    client.post("/login", data={"username": "auditor", "password": PASSWORD, "next": "/"})
    page = client.get(f"/payments/payrolls/{p['id']}")
    assert page.status_code == 200 and 'id="ledger-state"' in page.text and "The ledger balances." in page.text
    # nothing released yet: the fund shows what is missing, never a negative balance
    assert "Rs -" not in page.text and 'id="fund-available" dir="ltr">Rs 0<' not in page.text
    assert 'id="fund-available">Rs 0</td>' in page.text.replace(' dir="ltr"', "")
    assert f'id="fund-shortfall">Rs {p["total"]:,.0f}</td>' in page.text.replace(' dir="ltr"', "")
    assert f'<th scope="row">All</th><td class="num">{p["instructions"]:,}</td>' in page.text.replace(' dir="ltr"', "")
    assert client.get("/payments/payrolls/99999").status_code == 404
    client.get("/lang/ur")
    assert "کھاتہ متوازن ہے۔" in client.get(f"/payments/payrolls/{p['id']}").text


def _nashonuma(client, province, manager) -> tuple[dict, dict]:
    with transaction(province) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_nashonuma")
        run_id = rules.run(s, row, "test", on=date(2026, 6, 1)).id
    assert client.post(f"/api/v1/programs/bisp_nashonuma/enrolment/runs/{run_id}", headers=manager).status_code == 201
    q3 = client.post("/api/v1/programs/bisp_nashonuma/cycles", json={"starts_on": "2026-07-01"}, headers=manager).json()
    q4 = client.post("/api/v1/programs/bisp_nashonuma/cycles", json={"starts_on": "2026-10-01"}, headers=manager).json()
    return q3, q4


def _scalar(engine, sql: str, **p):
    from sqlalchemy import text
    with transaction(engine) as s:
        return s.execute(text(sql), p).scalar()


def test_compliance_by_api_is_scoped_checked_and_all_or_nothing(client, province):
    manager, officer, admin = (token_for(client, u) for u in ("manager", "lahore_officer", "admin"))
    q3, q4 = _nashonuma(client, province, manager)
    kasur = _scalar(province, "SELECT MIN(id) FROM enrolment WHERE program_code = 'bisp_nashonuma' "
                              "AND status = 'enrolled' AND district_id <> 1")
    lahore = _scalar(province, "SELECT MIN(id) FROM enrolment WHERE program_code = 'bisp_nashonuma' "
                               "AND status = 'enrolled' AND district_id = 1")
    assert kasur and lahore
    unmet = {"enrolment_id": kasur, "condition": "health_visit", "met": False}
    # a Lahore officer cannot record (and so cannot suspend) a beneficiary of another district
    for cycle in (q3, q4):
        r = client.post(f"/api/v1/cycles/{cycle['id']}/compliance", json={"records": [unmet]}, headers=officer)
        assert r.status_code == 403 and "record 1" in r.json()["detail"] and "outside your district" in r.json()["detail"]
    assert client.get(f"/api/v1/enrolments/{kasur}", headers=manager).json()["status"] == "enrolled"
    assert _scalar(province, "SELECT COUNT(*) FROM compliance_record") == 0
    assert _scalar(province, "SELECT COUNT(*) FROM audit_log WHERE action = 'record' AND entity = 'benefit_cycle' AND outcome = 'denied' "
                             "AND actor = 'lahore_officer'") == 2
    # within their district they can
    r = client.post(f"/api/v1/cycles/{q3['id']}/compliance",
                    json={"records": [{"enrolment_id": lahore, "condition": "health_visit", "met": True}]},
                    headers=officer)
    assert r.status_code == 200 and r.json()["recorded"] == 1
    # each bad record is named by number and field, and nothing of the request is recorded
    bad = [unmet, {"enrolment_id": kasur}, {"enrolment_id": kasur, "condition": "school_attendance", "met": False},
           {"condition": "health_visit", "met": False}, {"enrolment_id": kasur, "condition": "health_visit"},
           {"enrolment_id": kasur, "condition": "health_visit", "met": "no"}]
    r = client.post(f"/api/v1/cycles/{q4['id']}/compliance", json={"records": bad}, headers=admin)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "record 1" not in detail
    parts = detail.split(": ", 1)[1].split("; ")
    for n, field in ((2, "'condition' is missing"), (3, "'condition' 'school_attendance' is not a condition"),
                     (4, "'enrolment_id' is missing"), (5, "'met' or 'value'"), (6, "'met' must be true or false")):
        assert any(p.startswith(f"record {n}: ") and field in p for p in parts), (n, field, detail)
    assert _scalar(province, "SELECT COUNT(*) FROM compliance_record WHERE cycle_id = :c", c=q4["id"]) == 0
    # an enrolment of another program, one that does not exist
    r = client.post(f"/api/v1/cycles/{q4['id']}/compliance",
                    json={"records": [unmet, {"enrolment_id": 99_999_999, "condition": "health_visit", "met": True}]},
                    headers=admin)
    assert r.status_code == 422 and "record 2: 'enrolment_id' 99999999 does not exist" in r.json()["detail"]
    assert _scalar(province, "SELECT COUNT(*) FROM compliance_record WHERE cycle_id = :c", c=q4["id"]) == 0
    # an unknown cycle
    r = client.post("/api/v1/cycles/99999/compliance", json={"records": [unmet]}, headers=admin)
    assert r.status_code == 404 and "99999" in r.json()["detail"]
    # the good request goes through
    r = client.post(f"/api/v1/cycles/{q4['id']}/compliance", json={"records": [unmet]}, headers=admin)
    assert r.status_code == 200 and r.json()["recorded"] == 1 and r.json()["warnings"] == 1


def test_reads_of_enrolments_are_audited(client, province):
    manager, officer = token_for(client, "manager"), token_for(client, "lahore_officer")
    _nashonuma(client, province, manager)
    kasur = _scalar(province, "SELECT MIN(id) FROM enrolment WHERE district_id <> 1")
    count = "SELECT COUNT(*) FROM audit_log WHERE entity = 'enrolment' AND channel = 'api' AND actor = :a"
    before = _scalar(province, count, a="manager")
    assert client.get(f"/api/v1/enrolments/{kasur}", headers=manager).status_code == 200
    assert client.get("/api/v1/programs/bisp_nashonuma/enrolments", headers=manager).status_code == 200
    assert client.get("/api/v1/programs/bisp_nashonuma/waiting-list", headers=manager).status_code == 200
    assert _scalar(province, count, a="manager") == before + 3
    assert _scalar(province, "SELECT COUNT(*) FROM audit_log WHERE entity = 'enrolment' AND entity_id = :e "
                             "AND action = 'read' AND actor = 'manager'", e=kasur) == 1
    # a refused read is audited too
    assert client.get(f"/api/v1/enrolments/{kasur}", headers=officer).status_code == 403
    assert _scalar(province, "SELECT COUNT(*) FROM audit_log WHERE entity = 'enrolment' AND entity_id = :e "
                             "AND actor = 'lahore_officer' AND outcome = 'denied'", e=kasur) == 1
    assert client.get("/api/v1/enrolments/99999999", headers=manager).status_code == 404
    # pickup occupancy of another district is not a Lahore officer's to read
    assert client.get("/api/v1/districts/2/pickup", headers=officer).status_code == 403
    assert client.get("/api/v1/districts/1/pickup", headers=officer).status_code == 200
