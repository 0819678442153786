"""The registry API as a partner system or an officer's tool uses it, on both backends."""

from __future__ import annotations

from sqlalchemy import select

from isps.access.models import AuditRecord
from isps.db import transaction
from isps.registry.models import Household, Individual
from tests.conftest import token_for


def _household_in(engine, district_id: int) -> Household:
    with transaction(engine) as s:
        return s.scalars(select(Household).where(Household.district_id == district_id).order_by(Household.id)).first()


def test_sign_in_refuses_a_wrong_password(client):
    r = client.post("/api/v1/auth/token", data={"username": "admin", "password": "nope"})
    assert r.status_code == 401
    assert "wrong username or password" in r.json()["detail"]


def test_reading_without_a_token_is_refused(client, province):
    hh = _household_in(province, 1)
    assert client.get(f"/api/v1/households/{hh.id}").status_code == 401


def test_household_read_returns_members_and_score_and_is_audited(client, province):
    hh = _household_in(province, 1)
    r = client.get(f"/api/v1/households/{hh.id}", headers=token_for(client, "lahore_officer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["district"] == "Lahore"
    assert body["members"] and body["members"][0]["relation_to_head"] == "head"
    assert 0 <= body["pmt"]["score"] <= 100 and body["pmt"]["model_version"] == 1
    with transaction(province) as s:
        rows = s.scalars(select(AuditRecord).where(AuditRecord.entity_id == hh.id)).all()
    assert [(a.actor, a.action, a.outcome, a.channel) for a in rows] == [("lahore_officer", "read", "ok", "api")]


def test_district_officer_cannot_read_another_district(client, province):
    other = _household_in(province, 2)  # Kasur
    headers = token_for(client, "lahore_officer")
    r = client.get(f"/api/v1/households/{other.id}", headers=headers)
    assert r.status_code == 403
    assert client.get(f"/api/v1/households/{other.id}/history", headers=headers).status_code == 403
    r = client.get("/api/v1/households", params={"district_id": 2}, headers=headers)
    assert r.status_code == 403
    with transaction(province) as s:
        denied = s.scalars(select(AuditRecord).where(AuditRecord.outcome == "denied")).all()
    assert {(a.action, a.entity_id) for a in denied} == {("read", other.id), ("search", None)}  # the search too


def test_cnic_lookup_finds_the_person_and_respects_scope(client, province):
    with transaction(province) as s:
        person = s.scalars(select(Individual).where(Individual.district_id == 2, Individual.cnic.is_not(None))).first()
    dashed = f"{person.cnic[:5]}-{person.cnic[5:12]}-{person.cnic[12]}"
    r = client.get(f"/api/v1/individuals/by-cnic/{dashed}", headers=token_for(client, "kasur_counter"))
    assert r.status_code == 200
    assert r.json()[0]["full_name"] == person.full_name
    assert client.get(f"/api/v1/individuals/by-cnic/{person.cnic}",
                      headers=token_for(client, "lahore_officer")).status_code == 403
    bad = client.get("/api/v1/individuals/by-cnic/12345", headers=token_for(client, "admin"))
    assert bad.status_code == 422 and "13 digits" in bad.json()["detail"]
    audit = client.get("/api/v1/audit", params={"entity": "individual"}, headers=token_for(client, "auditor")).json()
    assert any(a["entity_id"] == person.id and a["actor"] == "kasur_counter" for a in audit)
    assert all(a["at"].endswith(("Z", "+00:00")) for a in audit)  # a date-time with its zone (UTC)


def test_only_auditors_and_administrators_read_the_audit_log(client):
    assert client.get("/api/v1/audit", headers=token_for(client, "lahore_officer")).status_code == 403
    assert client.get("/api/v1/audit", headers=token_for(client, "auditor")).status_code == 200


def test_search_filters_by_district_and_pmt_and_pages(client, province):
    headers = token_for(client, "manager")
    seen, after = [], None
    while True:
        params = {"district_id": 1, "pmt_max": 40, "limit": 7}
        if after:
            params["after"] = after
        page = client.get("/api/v1/households", params=params, headers=headers).json()
        seen += page["items"]
        after = page["next_after"]
        if after is None:
            break
    assert seen, "Lahore should have households scoring 40 or less"
    assert all(r["district_id"] == 1 and r["score"] <= 40 for r in seen)
    assert len({r["id"] for r in seen}) == len(seen)
    assert all("*****" in r["head_cnic_masked"] or r["head_cnic_masked"] == "" for r in seen)


def test_scoped_search_defaults_to_own_district(client):
    page = client.get("/api/v1/households", params={"limit": 50}, headers=token_for(client, "kasur_counter")).json()
    assert page["items"] and all(r["district_id"] == 2 for r in page["items"])


def test_an_edit_is_kept_with_its_source_and_rescores(client, province):
    hh = _household_in(province, 1)
    headers = token_for(client, "lahore_officer")
    before = client.get(f"/api/v1/households/{hh.id}", headers=headers).json()
    new_car = not before["car"]
    r = client.patch(f"/api/v1/households/{hh.id}", headers=headers,
                     json={"changes": {"car": new_car, "rooms": before["rooms"] + 2},
                           "effective_date": "2026-03-01", "source_ref": "visit note 17"})
    assert r.status_code == 200, r.text
    assert set(r.json()["changed"]) == {"car", "rooms"}
    assert r.json()["pmt"]["score"] != before["pmt"]["score"]
    history = client.get(f"/api/v1/households/{hh.id}/history", headers=headers).json()
    car = next(e for e in history if e["field"] == "car")
    assert car["source"] == "operator" and car["actor"] == "lahore_officer" and car["source_ref"] == "visit note 17"
    assert history[-1]["what"] == "registered" and history[-1]["source"] == "synthetic"
    past = client.get(f"/api/v1/households/{hh.id}/as-of", params={"on": "2026-02-01"}, headers=headers).json()
    assert past["household"]["rooms"]["value"] == str(before["rooms"])
    now = client.get(f"/api/v1/households/{hh.id}/as-of", params={"on": "2026-03-02"}, headers=headers).json()
    assert now["household"]["rooms"] == {"value": str(before["rooms"] + 2), "source": "operator", "since": "2026-03-01"}


def test_an_invalid_edit_names_the_field_and_changes_nothing(client, province):
    hh = _household_in(province, 1)
    headers = token_for(client, "admin")
    r = client.patch(f"/api/v1/households/{hh.id}", headers=headers,
                     json={"changes": {"rooms": 3, "roof": "gold"}})
    assert r.status_code == 422
    assert f"household {hh.id}: roof must be one of" in r.json()["detail"]
    assert client.get(f"/api/v1/households/{hh.id}", headers=headers).json()["rooms"] == hh.rooms


def test_openapi_is_served(client):
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/households/{household_id}" in spec["paths"]


def test_api_docs_are_served_without_the_internet(client):
    page = client.get("/api/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200


def test_a_deactivated_account_is_refused_once_its_cached_row_expires(client, province):
    from sqlalchemy import update

    from isps.access.models import User
    client.app.state.tokens.user_ttl = 0  # the user row is read again on every request
    headers = token_for(client, "kasur_counter")
    hh = _household_in(province, 2)
    assert client.get(f"/api/v1/households/{hh.id}", headers=headers).status_code == 200
    with transaction(province) as s:
        s.execute(update(User).where(User.username == "kasur_counter").values(active=False))
    r = client.get(f"/api/v1/households/{hh.id}", headers=headers)
    assert r.status_code == 401 and "not active" in r.json()["detail"]


def test_every_cnic_lookup_is_audited_whatever_its_outcome(client, province):
    with transaction(province) as s:
        person = s.scalars(select(Individual).where(Individual.district_id == 2, Individual.cnic.is_not(None))).first()
    missing = "9" * 13 if person.cnic != "9" * 13 else "8" * 13
    assert client.get(f"/api/v1/individuals/by-cnic/{person.cnic}", headers=token_for(client, "kasur_counter")).status_code == 200
    assert client.get(f"/api/v1/individuals/by-cnic/{person.cnic}", headers=token_for(client, "lahore_officer")).status_code == 403
    assert client.get(f"/api/v1/individuals/by-cnic/{missing}", headers=token_for(client, "admin")).status_code == 404
    with transaction(province) as s:
        rows = s.scalars(select(AuditRecord).where(AuditRecord.action == "lookup_cnic").order_by(AuditRecord.id)).all()
    assert [(a.actor, a.outcome, a.entity_id, a.district_id) for a in rows] == [
        ("kasur_counter", "ok", person.id, 2), ("lahore_officer", "denied", person.id, 2), ("admin", "not_found", None, None)]
    assert person.cnic not in (rows[1].detail or "") and "outside" in rows[1].detail  # the target, masked
    assert all(a.at is not None and a.channel == "api" for a in rows)
