"""Field work pages as each role uses them, on both backends: the supervisor assigns by union council and
sees progress with the lists behind each figure, registers a device (token once, Collect's settings and
QR code) and revokes it, makes an in-kind site and its list; the enumerator sees only their own work;
the refused queue and one submission's values (CNIC masked), reviewed with a note; a Lahore officer is
refused Kasur's site (audited); English and Urdu; exports; the home queues. Then ``isps field`` on SQLite."""

from __future__ import annotations

import re
from datetime import date, datetime

from sqlalchemy import text
from typer.testing import CliRunner

from isps.db import engine_for, transaction
from isps.fieldwork import forms
from isps.fieldwork.models import FieldSubmission
from tests.conftest import PASSWORD

NOW = datetime(2026, 12, 8, 9, 0)


def sign_in(client, username: str) -> None:
    client.cookies.clear()
    r = client.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text


def refused_receipt(engine) -> tuple[int, str]:
    """A refused receipt as the inbox keeps it (the inbox is another part's; here its row, with the XML
    Collect sends built by the forms' builder): the CNIC seen must never show whole."""
    xml = forms.build_instance("isps_receipt", {"site_id": "9", "entry_id": "99", "household_id": "1",
                                                "evidence": "cnic", "cnic_seen": "3510212345671", "received_by": ""},
                               instance_id="uuid:web-1", collected_at=NOW)
    with transaction(engine) as s:
        row = FieldSubmission(instance_id="uuid:web-1", form_id="isps_receipt", form_version="1", job="receipt",
                              username="kasur_enumerator", district_id=2, household_id=None, collected_at=NOW,
                              received_at=NOW, xml=xml.decode("utf-8"), status="refused",
                              reason="entry 99: entry_id: not on the list of site 9")
        s.add(row)
        s.flush()
        return row.id, "3510212345671"


def test_field_pages_as_each_role(client, province, monkeypatch, tmp_path):
    with transaction(province) as s:
        tehsil, uc = s.execute(text("""SELECT h.tehsil_id, uc.name FROM household h JOIN union_council uc ON uc.id = h.uc_id
            WHERE h.district_id = 2 ORDER BY h.id LIMIT 1""")).one()
        in_uc = s.execute(text("SELECT COUNT(*) FROM household h JOIN union_council u ON u.id = h.uc_id "
                               "WHERE h.district_id = 2 AND u.name = :n AND h.tehsil_id = :t"),
                          {"n": uc, "t": tehsil}).scalar_one()
        homes = s.execute(text("SELECT id FROM household WHERE district_id = 2 ORDER BY id LIMIT 3")).scalars().all()
    sub_id, whole_cnic = refused_receipt(province)

    sign_in(client, "kasur_supervisor")
    page = client.get("/field/assign")
    assert page.status_code == 200 and 'id="assign-survey"' in page.text and "kasur_enumerator" in page.text
    r = client.post("/field/assign", data={"kind": "survey", "enumerator": "kasur_enumerator", "tehsil_id": str(tehsil),
                                           "union_council": uc, "due_on": "2026-12-01"})
    assert r.status_code == 422 and "due_on" in r.text  # in the past
    r = client.post("/field/assign", data={"kind": "survey", "enumerator": "kasur_enumerator", "tehsil_id": str(tehsil),
                                           "union_council": uc})
    assert r.status_code == 200 and f"{in_uc} assigned" in r.text
    r = client.post("/field/assign", data={"kind": "survey", "enumerator": "kasur_enumerator",
                                           "household_ids": "12x"})
    assert r.status_code == 422 and "household_ids: &#39;12x&#39;" in r.text
    # progress: the figure links to the list behind it
    page = client.get("/field")
    assert page.status_code == 200 and 'data-enumerator="kasur_enumerator"' in page.text
    assert f'href="/field/assignments?enumerator=kasur_enumerator&amp;status=open">{in_uc}<' in page.text
    lst = client.get("/field/assignments?enumerator=kasur_enumerator&status=open")
    assert lst.status_code == 200 and lst.text.count('data-assignment="') == in_uc
    assert 'id="assignments-total" data-total="%d"' % in_uc in lst.text
    csv = client.get("/field/assignments?enumerator=kasur_enumerator&format=csv&list=assignments")
    assert csv.status_code == 200 and csv.text.count("\n") == in_uc + 1

    # a device: the token is shown once with Collect's settings and QR code, then revoked
    r = client.post("/field/devices", data={"code": "kasur-07", "label": "Samsung A12", "username": "kasur_enumerator"})
    assert r.status_code == 200 and 'id="device-qr"' in r.text and "data:image/svg+xml" in r.text
    token = re.search(r'id="device-token">([^<]+)<', r.text).group(1)
    assert f"/openrosa/key/{token}" in r.text
    again = client.get("/field/devices")
    assert 'data-device="kasur-07"' in again.text and token not in again.text
    r = client.post("/field/devices", data={"code": "kasur-07", "label": "x", "username": "kasur_enumerator"})
    assert r.status_code == 422 and "already taken" in r.text
    device_id = int(re.search(r'action="/field/devices/(\d+)/revoke"', again.text).group(1))
    assert client.post(f"/field/devices/{device_id}/revoke", follow_redirects=False).status_code == 303
    assert 'data-device="kasur-07"' in client.get("/field/devices").text and "revoke\"" not in \
        client.get("/field/devices").text.split('data-device="kasur-07"')[1].split("</tr>")[0]

    # an in-kind site and its list; a household of another district is refused by name
    r = client.post("/field/sites", data={"name": "Govt. Girls School, Khudian", "kind": "in_kind",
                                          "opens_on": "2026-12-08"}, follow_redirects=False)
    assert r.status_code == 303
    site_url = r.headers["location"]
    r = client.post(f"{site_url}/list", data={"list_ref": "ration:2026-12", "item": "ration_pack", "quantity": "2",
                                              "household_ids": ", ".join(map(str, homes))})
    assert r.status_code == 200 and "3 lines added" in r.text and r.text.count('data-entry="') == 3
    r = client.post(f"{site_url}/list", data={"list_ref": "r", "item": "tent", "quantity": "1",
                                              "household_ids": "999999999"})
    assert r.status_code == 422 and "999999999 not households of district 2" in r.text
    xlsx = client.get(f"{site_url}?format=xlsx&list=entries")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert client.post("/field/assign", data={"kind": "site", "enumerator": "kasur_enumerator",
                                              "site_id": site_url.rsplit("/", 1)[1]}).status_code == 200

    # the refused queue, one submission (CNIC masked, the read audited) and its review
    q = client.get("/field/submissions?status=refused&unreviewed=1")
    assert q.status_code == 200 and f'data-submission="{sub_id}"' in q.text and "not on the list of site 9" in q.text
    one = client.get(f"/field/submissions/{sub_id}")
    assert one.status_code == 200 and whole_cnic not in one.text and "35102-*****67-1" in one.text
    assert 'id="review-form"' in one.text
    r = client.post(f"/field/submissions/{sub_id}/review", data={"note": ""})
    assert r.status_code == 422 and "note" in r.text
    r = client.post(f"/field/submissions/{sub_id}/review", data={"note": "entered at the desk"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert f'data-submission="{sub_id}"' not in client.get("/field/submissions?status=refused&unreviewed=1").text
    home = client.get("/")
    assert home.status_code == 200 and "/field/submissions?status=refused&amp;unreviewed=1" in home.text
    urdu = client.get("/field", cookies={"lang": "ur"})
    assert urdu.status_code == 200 and 'dir="rtl"' in urdu.text and "فیلڈ کی پیش رفت" in urdu.text

    # the enumerator: their own work only; no assigning, no devices; their home queue
    sign_in(client, "kasur_enumerator")
    assert client.get("/field", follow_redirects=False).headers["location"].startswith("/field/assignments?mine=1")
    mine = client.get("/field/assignments?mine=1&status=open")
    assert mine.status_code == 200 and mine.text.count('data-assignment="') == in_uc + 1
    assert client.get("/field/assign").status_code == 403
    assert client.get("/field/devices").status_code == 403
    assert client.get(site_url).status_code == 200  # the site they staff
    assert "/field/assignments?mine=1&amp;status=open" in client.get("/").text

    # a Lahore officer: Kasur's site and submission are outside their district (403, audited)
    sign_in(client, "lahore_officer")
    assert client.get(site_url).status_code == 403
    assert client.get(f"/field/submissions/{sub_id}").status_code == 403
    assert client.get("/field?district_id=2").status_code == 403
    assert client.get("/field/sites").text.count('data-site="') == 0
    with transaction(province) as s:
        denied = s.execute(text("""SELECT COUNT(*) FROM audit_log WHERE actor = 'lahore_officer' AND outcome = 'denied'
            AND entity IN ('distribution_site', 'field_submission', 'field_assignment')""")).scalar_one()
        reads = s.execute(text("""SELECT COUNT(*) FROM audit_log WHERE actor = 'kasur_supervisor' AND action = 'read'
            AND entity = 'field_submission' AND entity_id = :i"""), {"i": sub_id}).scalar_one()
    assert denied == 3 and reads == 2  # the submission, and again with the refused review
    if province.dialect.name == "sqlite":  # the command line reads ISPS_DATABASE_URL: one backend suffices
        command_line(province, monkeypatch, tmp_path)


def command_line(province, monkeypatch, tmp_path):
    """``isps field`` as an operator runs it: devices, assigning (scope and role hold), progress, forms."""
    from isps.cli.main import app, console

    monkeypatch.setenv("ISPS_DATABASE_URL", str(province.url))
    monkeypatch.setattr(console, "width", 200)
    engine_for.cache_clear()
    runner = CliRunner()
    r = runner.invoke(app, ["field", "devices", "add", "kasur-09", "--user", "kasur_enumerator", "--label", "Tab 9",
                            "--url", "https://isps.example.pk", "--as", "kasur_supervisor"])
    assert r.exit_code == 0, r.output
    assert "token (shown once):" in r.output and "https://isps.example.pk/openrosa/key/" in r.output
    r = runner.invoke(app, ["field", "devices", "add", "lahore-1", "--user", "kasur_enumerator", "--as", "lahore_officer"])
    assert r.exit_code == 1 and "not of your district" in r.output
    assert "kasur-09" in runner.invoke(app, ["field", "devices", "list"]).output
    with transaction(province) as s:
        tehsil = s.execute(text("SELECT MIN(tehsil_id) FROM household WHERE district_id = 2")).scalar_one()
        n = s.execute(text("SELECT COUNT(*) FROM household WHERE tehsil_id = :t"), {"t": tehsil}).scalar_one()
    # the whole tehsil to the supervisor (who collects too): the enumerator's households there move
    r = runner.invoke(app, ["field", "assign", "survey", "kasur_supervisor", "--tehsil", str(tehsil),
                            "--as", "kasur_officer", "--due", date(2030, 1, 1).isoformat()])
    assert r.exit_code == 0 and f"{n} survey assignment" in r.output, r.output
    r = runner.invoke(app, ["field", "assign", "survey", "kasur_enumerator", "--as", "kasur_enumerator",
                            "--tehsil", str(tehsil)])
    assert r.exit_code == 1 and "field.assign" in r.output
    r = runner.invoke(app, ["field", "progress", "--as", "kasur_supervisor"])
    row = next(line for line in r.output.splitlines() if "kasur_supervisor" in line)
    assert r.exit_code == 0 and row.split("│")[2].strip() == str(n)
    # a receipt from the site's list waits in the inbox: applied, the line handed over once
    with transaction(province) as s:
        site_id, entry_id, household = s.execute(text("""SELECT site_id, id, household_id FROM distribution_entry
            WHERE handed_over_at IS NULL ORDER BY id LIMIT 1""")).one()
        xml = forms.build_instance("isps_receipt", {"site_id": str(site_id), "entry_id": str(entry_id),
                                                    "household_id": str(household), "evidence": "fingerprint"},
                                   instance_id="uuid:cli-1", collected_at=NOW)
        s.add(FieldSubmission(instance_id="uuid:cli-1", form_id="isps_receipt", form_version="1", job="receipt",
                              username="kasur_enumerator", district_id=2, household_id=household, collected_at=NOW,
                              received_at=NOW, xml=xml.decode("utf-8"), status="received"))
    r = runner.invoke(app, ["field", "apply"])
    assert r.exit_code == 0 and "1 submissions accepted, 0 refused" in r.output, r.output
    with transaction(province) as s:
        assert s.execute(text("SELECT handed_over_by FROM distribution_entry WHERE id = :e"),
                         {"e": entry_id}).scalar_one() == "kasur_enumerator"
    r = runner.invoke(app, ["field", "forms", "--write", str(tmp_path / "xforms")])
    assert r.exit_code == 0 and "isps_survey" in r.output and (tmp_path / "xforms" / "isps_receipt.xml").exists()
    r = runner.invoke(app, ["field", "devices", "revoke", "1", "--as", "kasur_supervisor"])
    assert r.exit_code == 0 and "revoked" in r.output
    engine_for.cache_clear()
