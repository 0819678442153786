"""NSER Plus through the API: a partner delivery, the history it leaves, change requests."""

from __future__ import annotations

from sqlalchemy import select

from isps.db import transaction
from isps.registry.models import Individual
from tests.conftest import token_for


def _person(engine, district_id: int) -> Individual:
    with transaction(engine) as s:
        return s.scalars(select(Individual).where(Individual.district_id == district_id,
                                                  Individual.relation_to_head == "head",
                                                  Individual.cnic.is_not(None)).order_by(Individual.id)).first()


def test_a_nadra_death_delivered_by_api_shows_in_the_history_with_its_source(client, province):
    person = _person(province, 1)
    cnic = f"{person.cnic[:5]}-{person.cnic[5:12]}-{person.cnic[12]}"
    body = {"reference": "NADRA-2026-11-23", "records": [
        {"record_ref": "D-1", "event": "death", "event_date": "2026-11-01", "cnic": cnic},
        {"record_ref": "D-2", "event": "death", "event_date": "2026-11-01", "cnic": "12345"}]}
    admin = token_for(client, "admin")
    r = client.post("/api/v1/feeds/nadra/deliveries", json=body, headers=admin)
    assert r.status_code == 200, r.text
    report = r.json()
    assert len(report["errors"]) == 1 and report["errors"][0]["field"] == "cnic"
    history = client.get(f"/api/v1/households/{person.household_id}/history", headers=admin).json()
    death = next(e for e in history if e["field"] == "date_of_death")
    assert (death["new_value"], death["source"], death["effective_date"]) == ("2026-11-01", "nadra", "2026-11-01")
    again = client.post("/api/v1/feeds/nadra/deliveries", json=body, headers=admin).json()
    assert again["already_applied"] is True
    assert client.post("/api/v1/feeds/nadra/deliveries", json=body,
                       headers=token_for(client, "lahore_officer")).status_code == 403


def test_a_change_request_needs_a_second_person(client, province):
    person = _person(province, 1)
    officer, admin = token_for(client, "lahore_officer"), token_for(client, "admin")
    r = client.post("/api/v1/change-requests", headers=officer, json={
        "entity": "individual", "entity_id": person.id, "changes": {"phone": "03001234567"},
        "source": "self_report", "evidence": "citizen at the counter showed the SIM"})
    assert r.status_code == 201, r.text
    own = client.post(f"/api/v1/change-requests/{r.json()['id']}/approve", headers=officer)
    assert own.status_code == 409
    ok = client.post(f"/api/v1/change-requests/{r.json()['id']}/approve", headers=admin)
    assert ok.status_code == 200 and ok.json()["status"] == "applied"
    outside = client.post("/api/v1/change-requests", headers=officer, json={
        "entity": "individual", "entity_id": _person(province, 2).id, "changes": {"phone": "03001234567"},
        "source": "self_report", "evidence": "x"})
    assert outside.status_code == 403


def test_recertification_lists_households_not_verified_for_long(client):
    rows = client.get("/api/v1/recertification", params={"older_than_days": 30},
                      headers=token_for(client, "kasur_counter")).json()
    assert rows and all(r["district_id"] == 2 and r["days_since"] > 30 for r in rows)


def test_listed_change_requests_mask_cnics_and_the_read_is_audited(client, province):
    from isps.access.models import AuditRecord
    from isps.interop.feeds import changes

    with transaction(province) as s:
        person = s.scalars(select(Individual).where(Individual.district_id == 1, Individual.cnic.is_not(None))
                           .order_by(Individual.id)).first()
        wrong = person.cnic[:-2] + ("11" if person.cnic[-2:] != "11" else "13")  # same sex digit parity
        changes.request_change(s, entity="individual", entity_id=person.id, changes={"cnic": wrong},
                               source="operator", evidence="card seen at the counter", requested_by="kasur_counter")
    r = client.get("/api/v1/change-requests", headers=token_for(client, "lahore_officer"))
    assert r.status_code == 200 and len(r.json()) == 1
    shown = r.json()[0]["changes"]["cnic"]
    assert "*****" in shown and wrong not in r.text
    with transaction(province) as s:
        reads = s.scalars(select(AuditRecord).where(AuditRecord.actor == "lahore_officer",
                                                    AuditRecord.entity == "change_request")).all()
    assert len(reads) == 1 and reads[0].channel == "api"
