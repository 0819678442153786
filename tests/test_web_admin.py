"""The administrator's and data officer's jobs through the web forms, on both backends: users,
roles and district scopes; feed deliveries (upload, row report, CSV); DCI partners, keys and
agreements; a citizen's consent recorded at the counter within the district. Other roles get 403
(audited); bad input gets a page naming what is wrong, never a 500, and nothing half-written."""

from __future__ import annotations

import csv
import io
import re

import pyarrow.csv as pacsv
import pytest
from sqlalchemy import text

from isps.db import transaction
from isps.interop import feeds
from isps.interop.dci import partners as dci_partners
from isps.registry import cnic as cnic_rules
from tests.conftest import PASSWORD
from tests.test_web import as_user, post, scalar, sign_in, text_of


def audited(engine, actor: str, action: str, outcome: str = "ok") -> int:
    return scalar(engine, "SELECT COUNT(*) FROM audit_log WHERE actor = :a AND action = :x AND outcome = :o "
                          "AND channel = 'web'", a=actor, x=action, o=outcome)


def secret_on(page: str, box: str) -> str:
    m = re.search(rf'id="{box}" type="text" readonly value="([^"]+)"', page)
    assert m, f"no {box} box on the page"
    return m.group(1)


# ---------------------------------------------------------------- who may do what

REFUSED = [("/users", "lahore_officer"), ("/users", "manager"), ("/users", "auditor"),
           ("/feeds/deliveries", "kasur_counter"), ("/feeds/deliveries", "auditor"),
           ("/partners", "manager"), ("/partners", "lahore_officer"), ("/consent", "auditor"), ("/consent", "manager")]


def test_other_roles_get_403_and_the_refusal_is_audited(client, province):
    for url, who in REFUSED:
        as_user(client, who)
        before = scalar(province, "SELECT COUNT(*) FROM audit_log WHERE actor = :a AND outcome = 'denied'", a=who)
        r = client.get(url)
        assert r.status_code == 403, (url, who)
        assert "Users" not in re.findall(r'<nav aria-label="Main">.*?</nav>', r.text, re.S)[0] or who == "admin"
        assert scalar(province, "SELECT COUNT(*) FROM audit_log WHERE actor = :a AND outcome = 'denied'",
                      a=who) == before + 1, (url, who)


def test_unsafe_steps_are_refused_to_other_roles_and_change_nothing(client, province):
    as_user(client, "lahore_officer")
    users = scalar(province, "SELECT COUNT(*) FROM app_user")
    assert post(client, "/users", username="intruder", role="administrator", password="x" * 12).status_code == 403
    assert post(client, "/partners", sender_id="rogue", name="Rogue").status_code == 403
    r = client.post("/feeds/deliveries", data={"feed": "nadra"}, files={"file": ("d.csv", b"record_ref\n1\n")})
    assert r.status_code == 403
    assert scalar(province, "SELECT COUNT(*) FROM app_user") == users
    assert scalar(province, "SELECT COUNT(*) FROM dci_partner") == 0
    assert scalar(province, "SELECT COUNT(*) FROM feed_delivery") == 0
    admin_id = scalar(province, "SELECT id FROM app_user WHERE username = 'admin'")
    assert post(client, f"/users/{admin_id}/disable").status_code == 403
    assert scalar(province, "SELECT COUNT(*) FROM app_user WHERE active = :t", t=True) == users


# ---------------------------------------------------------------- users

def test_administrator_creates_a_district_officer_and_manages_the_account(client, province):
    as_user(client, "admin")
    page = client.get("/users")
    assert page.status_code == 200
    users = scalar(province, "SELECT COUNT(*) FROM app_user")
    assert f'data-total="{users}"' in page.text and page.text.count("<tr data-user=") == users == 9
    # a scoped role without a district: the field is named, nothing written
    r = post(client, "/users", username="okara_officer", full_name="Nasreen Akhtar", role="district_officer")
    assert r.status_code == 422 and "district" in text_of(r.text)
    assert scalar(province, "SELECT COUNT(*) FROM app_user WHERE username = 'okara_officer'") == 0
    # with the district: the initial password is shown once on the answering page, never in an address
    r = post(client, "/users", username="okara_officer", full_name="Nasreen Akhtar", role="district_officer",
             district_id="2")
    assert r.status_code == 200
    password = secret_on(r.text, "new-password")
    assert len(password) >= 10
    assert password not in client.get("/users").text
    uid = scalar(province, "SELECT id FROM app_user WHERE username = 'okara_officer'")
    assert audited(province, "admin", "create") == 1
    # the new officer signs in with it and sees only their district
    other = client.__class__(client.app)
    r = other.post("/login", data={"username": "okara_officer", "password": password}, follow_redirects=False)
    assert r.status_code == 303
    # filters: by role and district
    assert "okara_officer" in client.get("/users?role=district_officer&district_id=2").text
    assert "okara_officer" not in client.get("/users?role=counter_operator").text
    # another user's page offers every step; the administrator's own page does not offer a change of role
    page = client.get(f"/users/{uid}").text
    assert re.search(r'<select id="c-role" name="role">', page) and 'id="disable">' in page
    me = scalar(province, "SELECT id FROM app_user WHERE username = 'admin'")
    assert '<select id="c-role" name="role" disabled>' in client.get(f"/users/{me}").text
    # a change of role and district, a reset, a disable: each audited
    assert post(client, f"/users/{uid}/role", role="counter_operator", district_id="1").status_code == 303
    assert scalar(province, "SELECT district_id FROM app_user WHERE id = :i", i=uid) == 1
    r = post(client, f"/users/{uid}/password")
    assert r.status_code == 200 and secret_on(r.text, "new-password") != password
    assert post(client, f"/users/{uid}/disable").status_code == 303
    r = other.post("/login", data={"username": "okara_officer", "password": password}, follow_redirects=False)
    assert r.status_code != 303
    for action in ("edit", "reset_password", "disable"):
        assert audited(province, "admin", action) == 1, action
    # the administrator cannot disable their own account or change their own role
    r = post(client, f"/users/{me}/disable")
    assert r.status_code == 422 and "own account" in text_of(r.text)
    assert scalar(province, "SELECT COUNT(*) FROM app_user WHERE username = 'admin' AND active = :t", t=True) == 1


def test_a_locked_account_shows_as_locked_and_is_unlocked(client, province):
    other = client.__class__(client.app)
    for _ in range(5):
        other.post("/login", data={"username": "kasur_counter", "password": "wrong-password"}, follow_redirects=False)
    as_user(client, "admin")
    page = client.get("/users?state=locked")
    assert "kasur_counter" in page.text and "lahore_officer" not in page.text
    uid = scalar(province, "SELECT id FROM app_user WHERE username = 'kasur_counter'")
    r = post(client, f"/users/{uid}/unlock")
    assert r.status_code == 303 and "done=unlocked" in r.headers["location"]
    assert "kasur_counter" not in client.get("/users?state=locked").text
    r = other.post("/login", data={"username": "kasur_counter", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303


def test_users_list_exports_csv(client, province):
    as_user(client, "admin")
    r = client.get("/users?format=csv&list=users")
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["username"] for row in rows} >= {"admin", "kasur_counter"}
    assert "password" not in r.text.lower()


# ---------------------------------------------------------------- feed deliveries

def _sample_csv(engine, feed: str, n: int = 40) -> bytes:
    out = io.BytesIO()
    pacsv.write_csv(feeds.generate_sample(engine, feed, n, 3), out)
    return out.getvalue()


def test_an_upload_is_applied_and_its_row_report_is_read_and_downloaded(client, province):
    as_user(client, "manager")
    data = _sample_csv(province, "nadra")
    lines = data.decode().splitlines()
    header = lines[0].split(",")
    broken = lines[1].split(",")
    broken[header.index('"cnic"') if '"cnic"' in header else 1] = '"12345"'
    body = "\n".join([lines[0], ",".join(broken), *lines[2:]]).encode()
    r = client.post("/feeds/deliveries", data={"feed": "nadra", "reference": "NADRA-2026-12-07"},
                    files={"file": ("nadra-2026-12-07.csv", body, "text/csv")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    report = client.get(r.headers["location"])
    assert report.status_code == 200
    delivery = scalar(province, "SELECT id FROM feed_delivery WHERE reference = 'NADRA-2026-12-07'")
    refused = scalar(province, "SELECT rejected FROM feed_delivery WHERE id = :i", i=delivery)
    assert refused >= 1
    assert scalar(province, "SELECT COUNT(*) FROM feed_rejection WHERE delivery_id = :i", i=delivery) == refused
    assert "Refused rows" in report.text and 'id="refused-rows"' in report.text
    assert re.search(r'id="refused">\s*' + str(refused), report.text)
    csv_r = client.get(f"/feeds/deliveries/{delivery}?format=csv&list=rejections")
    rows = list(csv.DictReader(io.StringIO(csv_r.text)))
    assert len(rows) == refused and rows[0]["reason"]
    # the list shows it, filters by outcome and feed
    assert "NADRA-2026-12-07" in client.get("/feeds/deliveries?feed=nadra").text
    assert "NADRA-2026-12-07" not in client.get("/feeds/deliveries?outcome=clean").text
    # sent again: applied before, nothing changed
    again = client.post("/feeds/deliveries", data={"feed": "nadra", "reference": "NADRA-2026-12-07"},
                        files={"file": ("nadra-2026-12-07.csv", body, "text/csv")}, follow_redirects=False)
    assert again.status_code == 303 and "done=again" in again.headers["location"]
    assert scalar(province, "SELECT COUNT(*) FROM feed_delivery") == 1


REFUSED_FILES = [("nadra.csv", b"record_ref,whatever\n1,2\n", "missing"),
                 ("nadra.txt", b"record_ref\n1\n", ".csv or .parquet"),
                 ("nadra.csv", b"", "the file is empty"),
                 ("nadra.parquet", b"not parquet at all", "nadra.parquet")]


def test_a_refused_file_stores_nothing_and_says_why(client, province):
    as_user(client, "admin")
    for n, (name, body, says) in enumerate(REFUSED_FILES, 1):
        r = client.post("/feeds/deliveries", data={"feed": "nadra"}, files={"file": (name, body)},
                        follow_redirects=False)
        assert r.status_code == 422, (name, r.status_code)
        assert 'id="error"' in r.text
        assert says.lower() in text_of(r.text).lower(), text_of(r.text)[:600]
        assert scalar(province, "SELECT COUNT(*) FROM feed_delivery") == 0
        assert scalar(province, "SELECT COUNT(*) FROM feed_rejection") == 0
        assert audited(province, "admin", "import", "failed") == n


def test_an_unknown_feed_or_no_file_is_a_clear_error(client, province):
    as_user(client, "admin")
    r = client.post("/feeds/deliveries", data={"feed": "gas"}, files={"file": ("gas.csv", b"record_ref\n1\n")})
    assert r.status_code == 422 and "unknown feed" in text_of(r.text)
    r = client.post("/feeds/deliveries", data={"feed": "nadra"})
    assert r.status_code == 422
    assert client.get("/feeds/deliveries/999999").status_code == 404
    assert scalar(province, "SELECT COUNT(*) FROM feed_delivery") == 0


# ---------------------------------------------------------------- partners and consent

def _partner(client, sender: str = "pk-bisp-nsp") -> tuple[int, str]:
    r = post(client, "/partners", sender_id=sender, name="BISP National Socio-economic Portal",
             callback="https://nsp.bisp.example/dci")
    assert r.status_code == 200, text_of(r.text)[:400]
    return int(re.search(r'action="/partners/(\d+)/secret"', r.text).group(1)), secret_on(r.text, "client-secret")


def test_administrator_registers_a_partner_with_an_agreement(client, province):
    as_user(client, "admin")
    pid, secret = _partner(client)
    assert len(secret) >= 40
    page = client.get(f"/partners/{pid}").text
    assert secret not in page  # shown once
    # a duplicate sender is refused with its name
    r = post(client, "/partners", sender_id="pk-bisp-nsp", name="again")
    assert r.status_code == 422 and "already registered" in text_of(r.text)
    # the agreement: fields and purpose shown; an unknown field refused by name
    r = client.post(f"/partners/{pid}/agreements", data={"reference": "MOU-2026-14", "purpose": "targeting",
                                                         "fields": ["name", "poverty_score", "salary"], "consent": "1"})
    assert r.status_code == 422 and "salary" in text_of(r.text)
    r = client.post(f"/partners/{pid}/agreements", data={"reference": "MOU-2026-14", "purpose": "targeting",
                                                         "fields": ["name", "poverty_score"], "consent": "1"},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(f"/partners/{pid}").text
    assert "MOU-2026-14" in page and "name, poverty_score" in page
    aid = scalar(province, "SELECT id FROM dci_agreement WHERE reference = 'MOU-2026-14'")
    client_id = scalar(province, "SELECT client_id FROM dci_partner WHERE id = :i", i=pid)

    def token(with_secret: str) -> int:
        return client.post("/dci/oauth2/client/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                                              "client_secret": with_secret}).status_code

    assert token(secret) == 200
    # rotate the secret: the new one differs, is shown once, and the old one stops working
    r = post(client, f"/partners/{pid}/secret")
    rotated = secret_on(r.text, "client-secret")
    assert rotated != secret and token(secret) == 401 and token(rotated) == 200
    # end the agreement, revoke the partner
    assert post(client, f"/partners/{pid}/agreements/{aid}/end").status_code == 303
    assert scalar(province, "SELECT COUNT(*) FROM dci_agreement WHERE active = :t", t=True) == 0
    with transaction(province) as s:  # the DCI API serves the partner without an agreement at once
        assert dci_partners.partner_by_sender(s, "pk-bisp-nsp").agreement is None
    assert post(client, f"/partners/{pid}/revoke").status_code == 303
    assert token(rotated) == 401  # a revoked partner gets no token
    for action in ("create", "rotate", "end", "revoke"):
        assert audited(province, "admin", action) >= 1, action
    assert "pk-bisp-nsp" in client.get("/partners?format=csv&list=partners").text


def _person(engine, district_id: int) -> tuple[int, str]:
    with transaction(engine) as s:
        row = s.execute(text("SELECT id, cnic FROM individual WHERE district_id = :d AND cnic IS NOT NULL "
                             "AND date_of_death IS NULL ORDER BY id LIMIT 1"), {"d": district_id}).first()
    return row.id, row.cnic


def test_a_counter_operator_records_consent_in_their_district_only(client, province):
    as_user(client, "admin")
    pid, _ = _partner(client)
    client.post(f"/partners/{pid}/agreements", data={"reference": "MOU-2026-14", "purpose": "targeting",
                                                     "fields": ["name"], "consent": "1"})
    as_user(client, "kasur_counter")
    kasur_id, kasur_cnic = _person(province, 2)
    lahore_id, lahore_cnic = _person(province, 1)
    r = post(client, "/consent", partner_id=str(pid), cnic=cnic_rules.formatted(kasur_cnic), evidence="Register 7, page 12")
    assert r.status_code == 200 and 'id="notice"' in r.text, text_of(r.text)[:300]
    assert cnic_rules.mask(kasur_cnic) in text_of(r.text) and kasur_cnic not in r.text
    assert scalar(province, "SELECT COUNT(*) FROM dci_consent WHERE individual_id = :i AND purpose = 'targeting'",
                  i=kasur_id) == 1
    # another district's citizen: refused, audited, nothing written
    r = post(client, "/consent", partner_id=str(pid), cnic=lahore_cnic)
    assert r.status_code == 403
    assert scalar(province, "SELECT COUNT(*) FROM dci_consent WHERE individual_id = :i", i=lahore_id) == 0
    assert audited(province, "kasur_counter", "record", "denied") == 1
    # bad input: a clear error, nothing written
    for bad in ({"partner_id": str(pid), "cnic": "12345"}, {"partner_id": "", "cnic": kasur_cnic},
                {"partner_id": str(pid), "cnic": kasur_cnic, "expires": "2020-01-01"}):
        r = post(client, "/consent", **bad)
        assert r.status_code == 422 and 'id="error"' in r.text
    assert scalar(province, "SELECT COUNT(*) FROM dci_consent") == 1
    # from the household page: the members of the household to choose from
    hh = scalar(province, "SELECT household_id FROM individual WHERE id = :i", i=kasur_id)
    page = client.get(f"/households/{hh}")
    assert f'/consent?household={hh}' in page.text
    form = client.get(f"/consent?household={hh}")
    assert form.status_code == 200 and f'value="{kasur_id}"' in form.text
    r = post(client, "/consent", partner_id=str(pid), individual_id=str(kasur_id), household=str(hh))
    assert r.status_code == 200 and 'id="notice"' in r.text
    other_hh = scalar(province, "SELECT household_id FROM individual WHERE id = :i", i=lahore_id)
    assert client.get(f"/consent?household={other_hh}").status_code == 403
