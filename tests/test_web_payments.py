"""The program manager's payment job through the web forms, on both backends: a maker ('manager')
and a checker ('admin') release funds, open, compute and approve a cycle, make, approve and export
a payroll, download its files, apply a bank's status file, retry failures and return unclaimed
money; auditors read, district roles are refused, and every refusal is audited."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from isps.db import transaction
from isps.payments import payroll as pr
from isps.programs import enrolment as en
from isps.targeting.eligibility import rules
from tests.test_web import as_user, denied, post, scalar, sign_in, text_of

CODE = "bisp_kafaalat"
ON = date(2026, 6, 1)


@pytest.fixture
def pay(client, province, tmp_path, monkeypatch):
    """The web client with bisp_kafaalat's eligible households enrolled and the server's var folder in tmp."""
    monkeypatch.setenv("ISPS_VAR_DIR", str(tmp_path / "var"))
    with transaction(province) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, CODE)
        run = rules.run(s, row, "test", on=ON)
        en.enrol_from_run(s, CODE, run.id, "test", ON)
    return client


def approved_payroll(client, province, *, fund: float | None = 100_000_000) -> int:
    """Through the forms: (funds), a cycle opened and computed by the manager, approved by the admin,
    its payroll made by the manager; the payroll's id."""
    as_user(client, "manager")
    if fund:
        r = post(client, f"/payments/programs/{CODE}/fund-releases", amount=f"{fund:,.0f}", reference="RO-2026-07")
        assert r.status_code == 303, r.text
    r = post(client, f"/payments/programs/{CODE}/cycles", starts_on="2026-07-01")
    assert r.status_code == 303, r.text
    cycle = scalar(province, "SELECT id FROM benefit_cycle WHERE program_code = :c", c=CODE)
    assert post(client, f"/payments/cycles/{cycle}/entitlements").status_code == 303
    # the maker cannot approve their own cycle: a readable refusal, audited, not a 500
    own = post(client, f"/payments/cycles/{cycle}/approve")
    assert own.status_code == 409 and "a second person must approve: manager opened this cycle" in text_of(own.text)
    assert denied(province, "manager", "approve") == 1
    as_user(client, "admin")
    home = client.get("/payments")
    assert f'data-todo="approve_cycle" data-id="{cycle}"' in home.text
    assert post(client, f"/payments/cycles/{cycle}/approve").status_code == 303
    as_user(client, "manager")
    assert f'data-todo="make_payroll" data-id="{cycle}"' in client.get("/payments").text
    r = post(client, f"/payments/cycles/{cycle}/payroll")
    assert r.status_code == 303
    payroll_id = int(re.fullmatch(r"/payments/payrolls/(\d+)", r.headers["location"]).group(1))
    return payroll_id


def test_the_whole_payment_job_through_the_web_forms(pay, province, tmp_path):
    client = pay
    pid = approved_payroll(client, province)
    total = scalar(province, "SELECT total FROM payroll WHERE id = :p", p=pid)
    assert total > 0
    page = client.get("/payments")
    assert page.status_code == 200 and 'href="/payments"' in page.text  # in the main navigation
    assert "Rs 100,000,000" in text_of(page.text)  # released into the fund
    # the maker cannot approve their own payroll
    own = post(client, f"/payments/payrolls/{pid}/approve")
    assert own.status_code == 409 and "a second person must approve: manager made this payroll" in text_of(own.text)
    assert denied(province, "manager", "approve") == 2
    as_user(client, "admin")
    assert f'data-todo="approve_payroll" data-id="{pid}"' in client.get("/payments").text
    r = post(client, f"/payments/payrolls/{pid}/approve")
    assert r.status_code == 303 and r.headers["location"].endswith("done=payroll_approved")
    # export: the files land in the server's payments folder and are offered as downloads
    as_user(client, "manager")
    r = post(client, f"/payments/payrolls/{pid}/export")
    assert r.status_code == 303
    page = client.get(r.headers["location"])
    files = re.findall(rf'href="/payments/payrolls/{pid}/files/([^"]+)"', page.text)
    assert sorted(f.rsplit(".", 1)[1] for f in files) == ["csv", "xml"]
    assert all((tmp_path / "var" / "payments" / f).is_file() for f in files)
    xml = next(f for f in files if f.endswith(".xml"))
    got = client.get(f"/payments/payrolls/{pid}/files/{xml}")
    assert got.status_code == 200 and "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09" in got.text
    assert "<GrpHdr>" in got.text and got.headers["cache-control"] == "no-store"
    assert scalar(province, "SELECT COUNT(*) FROM audit_log WHERE action = 'export' AND actor = 'manager' "
                            "AND outcome = 'ok' AND detail LIKE 'downloaded %'") == 1
    # only this payroll's files from that folder
    for bad in (xml.replace(f"payroll-{pid}-", f"payroll-{pid + 1}-"), "..%2F..%2Fisps.db", "secret.xml"):
        assert client.get(f"/payments/payrolls/{pid}/files/{bad}").status_code == 404
    assert client.get(f"/payments/payrolls/{pid + 1}/files/{xml}").status_code == 404

    # a bank's status file, with one line for a payment that was never made
    day = date.today() - timedelta(days=100)
    with transaction(province) as s:
        status = pr.bank_status_csv(s, pid, paid=0.8, failed=0.1, unclaimed=0.1, on=day)
    status += f"E999999999-1,paid,10.00,{day.isoformat()},BX,1\n".encode()
    lines = status.decode().count("\n") - 1
    r = client.post(f"/payments/payrolls/{pid}/status-file", files={"file": ("bank.csv", status, "text/csv")})
    assert r.status_code == 200, text_of(r.text)
    applied = int(re.search(r'id="applied">([\d,]+)<', r.text).group(1).replace(",", ""))
    rejected = int(re.search(r'id="rejected">([\d,]+)<', r.text).group(1).replace(",", ""))
    assert (applied, rejected) == (lines - 1, 1)
    table = re.search(r'<table class="data" id="rejected-lines">.*?</table>', r.text, re.S).group(0)
    assert "E999999999-1" in table and str(lines) in text_of(table)
    again = client.post(f"/payments/payrolls/{pid}/status-file", files={"file": ("bank.csv", status, "text/csv")})
    assert again.status_code == 409 and "already imported" in text_of(again.text)
    assert denied(province, "manager", "reconcile") == 1

    # retry the failures on the next channel, return what was unclaimed for 90 days
    failed = scalar(province, "SELECT COUNT(*) FROM payment_instruction WHERE payroll_id = :p AND status = 'failed'", p=pid)
    unclaimed = scalar(province, "SELECT COUNT(*) FROM payment_instruction WHERE payroll_id = :p AND status = 'unclaimed'",
                       p=pid)
    assert failed > 0 and unclaimed > 0
    r = post(client, f"/payments/payrolls/{pid}/retry")
    assert r.status_code == 303 and f"n={failed}" in r.headers["location"]
    assert scalar(province, "SELECT COUNT(*) FROM payment_instruction WHERE payroll_id = :p AND attempt = 2", p=pid) == failed
    for bad in ("0", "abc", "99999999"):
        refused = post(client, f"/payments/payrolls/{pid}/return-unclaimed", days=bad)
        assert refused.status_code == 422 and "days" in text_of(refused.text)
    r = post(client, f"/payments/payrolls/{pid}/return-unclaimed", days="90")
    assert r.status_code == 303 and f"n={unclaimed}" in r.headers["location"]
    page = client.get(r.headers["location"])
    assert f"{unclaimed} unclaimed payments returned" in text_of(page.text)
    with transaction(province) as s:
        assert pr.ledger_check(s, CODE)["balanced"]
        assert pr.fund(s, CODE)["returned"] > 0

    # the auditor reads, without a single money action
    as_user(client, "auditor")
    page = client.get(f"/payments/payrolls/{pid}")
    assert page.status_code == 200 and 'id="steps"' not in page.text and "/files/" not in page.text
    home = client.get("/payments")
    assert home.status_code == 200 and "fund-releases" not in home.text and "read the payments" in text_of(home.text)
    assert post(client, f"/payments/programs/{CODE}/fund-releases", amount="5", reference="X").status_code == 403
    assert client.get(f"/payments/payrolls/{pid}/files/{xml}").status_code == 403
    assert denied(province, "auditor", "release") == 1 and denied(province, "auditor", "export") == 1
    # Urdu, right to left
    client.get("/lang/ur")
    page = client.get(f"/payments/payrolls/{pid}")
    assert 'dir="rtl"' in page.text and "ادائیگیاں" in page.text


def test_district_roles_see_no_money_and_are_refused(pay, province):
    client = pay
    pid = approved_payroll(client, province)
    for user in ("lahore_officer", "kasur_counter"):
        as_user(client, user)
        assert 'href="/payments"' not in client.get("/").text
        for path in ("/payments", f"/payments/payrolls/{pid}"):
            r = client.get(path)
            assert r.status_code == 403 and "may not see or move program money" in text_of(r.text)
        assert post(client, f"/payments/payrolls/{pid}/approve").status_code == 403
        assert post(client, f"/payments/programs/{CODE}/cycles", starts_on="2026-10-01").status_code == 403
        assert denied(province, user, "read") == 2 and denied(province, user, "approve") == 1
    assert scalar(province, "SELECT status FROM payroll WHERE id = :p", p=pid) == "draft"
    assert scalar(province, "SELECT COUNT(*) FROM benefit_cycle") == 1


def test_a_payroll_the_fund_cannot_cover_is_refused_with_the_reason(pay, province):
    client = pay
    pid = approved_payroll(client, province, fund=None)
    as_user(client, "admin")
    r = post(client, f"/payments/payrolls/{pid}/approve")
    assert r.status_code == 422 and "release funds to the program first" in text_of(r.text)
    assert 'id="error"' in r.text and denied(province, "admin", "approve") == 1
    assert scalar(province, "SELECT status FROM payroll WHERE id = :p", p=pid) == "draft"


def test_bad_form_values_are_named_not_500(pay, province):
    client = pay
    sign_in(client, "manager")
    r = post(client, f"/payments/programs/{CODE}/fund-releases", amount="lots", reference="RO-1")
    assert r.status_code == 422 and "'amount' must be a number" in text_of(r.text)
    r = post(client, f"/payments/programs/{CODE}/fund-releases", amount="-5", reference="RO-1")
    assert r.status_code == 422 and "positive amount" in text_of(r.text)
    r = post(client, f"/payments/programs/{CODE}/cycles", starts_on="31/12/2026")
    assert r.status_code == 422 and "YYYY-MM-DD" in text_of(r.text)
    r = post(client, "/payments/programs/no_such_program/cycles", starts_on="2026-07-01")
    assert r.status_code == 422 and "no_such_program" in text_of(r.text)
    assert post(client, "/payments/cycles/99999/approve").status_code == 404
    assert client.get("/payments/payrolls/99999").status_code == 404
    r = client.post("/payments/payrolls/1/status-file", files={"file": ("empty.csv", b"", "text/csv")})
    assert r.status_code in (404, 422)
    assert scalar(province, "SELECT COUNT(*) FROM fund_release") == 0
