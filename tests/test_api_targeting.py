"""Targeting through the API: program rules, counts, runs with reasons, explanations, what-ifs."""

from __future__ import annotations

from sqlalchemy import select

from isps.db import transaction
from isps.registry.models import Household
from tests.conftest import token_for


def test_programs_list_the_shipped_rules(client):
    codes = {p["code"] for p in client.get("/api/v1/programs", headers=token_for(client, "manager")).json()}
    assert {"bisp_kafaalat", "bisp_taleemi_wazaif", "bisp_nashonuma", "undergraduate_scholarship",
            "pbm_financial_assistance"} <= codes


def test_count_then_run_then_read_reasons(client):
    headers = token_for(client, "manager")
    count = client.get("/api/v1/programs/bisp_kafaalat/eligibility/count", headers=headers).json()
    run = client.post("/api/v1/programs/bisp_kafaalat/eligibility/runs", headers=headers).json()
    assert run["eligible"] == count["total"] > 0 and run["evaluated"] == 600
    page = client.get(f"/api/v1/eligibility/runs/{run['run_id']}/results", params={"eligible": False, "limit": 3},
                      headers=headers).json()
    assert len(page["items"]) == 3 and page["next"] is not None
    assert all(item["reasons"] for item in page["items"])
    nxt = client.get(f"/api/v1/eligibility/runs/{run['run_id']}/results",
                     params={"eligible": False, "limit": 3, **page["next"]}, headers=headers).json()
    assert {i["household_id"] for i in nxt["items"]}.isdisjoint({i["household_id"] for i in page["items"]})


def test_scoped_counts_and_results_stay_in_the_district(client):
    officer = token_for(client, "lahore_officer")
    count = client.get("/api/v1/programs/bisp_kafaalat/eligibility/count", headers=officer).json()
    assert set(count["by_district"]) <= {"1"}
    run = client.post("/api/v1/programs/bisp_kafaalat/eligibility/runs", headers=token_for(client, "manager")).json()
    items = client.get(f"/api/v1/eligibility/runs/{run['run_id']}/results", headers=officer).json()["items"]
    assert items and all(i["district_id"] == 1 for i in items)
    assert client.post("/api/v1/programs/bisp_kafaalat/eligibility/runs", headers=officer).status_code == 403


def test_a_household_eligibility_is_explained_and_audited(client, province):
    with transaction(province) as s:
        hid = s.scalar(select(Household.id).where(Household.district_id == 2).limit(1))
    body = client.get(f"/api/v1/households/{hid}/eligibility", headers=token_for(client, "kasur_counter")).json()
    kafaalat = next(d for d in body if d["program"] == "bisp_kafaalat")
    assert kafaalat["summary"].startswith("eligible: " if kafaalat["eligible"] else "not eligible: ")
    assert "PMT score" in kafaalat["summary"]
    assert client.get(f"/api/v1/households/{hid}/eligibility",
                      headers=token_for(client, "lahore_officer")).status_code == 403
    audit = client.get("/api/v1/audit", params={"entity_id": hid}, headers=token_for(client, "auditor")).json()
    assert {a["outcome"] for a in audit} == {"ok", "denied"}


def test_simulate_cut_offs_30_32_35(client):
    rows = client.get("/api/v1/programs/bisp_kafaalat/simulate", params=[("cutoff", 30), ("cutoff", 32), ("cutoff", 35)],
                      headers=token_for(client, "manager")).json()
    totals = [r["total"] for r in rows]
    assert [r["scenario"]["parameters"]["cutoff"] for r in rows] == [30, 32, 35]
    assert totals[0]["eligible_households"] <= totals[1]["eligible_households"] <= totals[2]["eligible_households"]
    assert all("exclusion_error" in t and "annual_cost" in t for t in totals)
    assert rows[1]["districts"] and rows[1]["districts"][0]["district"]


def test_a_bad_rule_is_refused_with_its_reason(client):
    spec = {"code": "bisp_kafaalat", "name": "x", "criteria": [{"id": "pmt", "when": "pmt <=", "fail": "no"}]}
    r = client.post("/api/v1/programs/rules", json={"spec": spec}, headers=token_for(client, "manager"))
    assert r.status_code == 422 and "criterion 'pmt'" in r.json()["detail"]


def test_fit_approve_activate_through_the_api_is_maker_checker(client, province):
    manager, admin = token_for(client, "manager"), token_for(client, "admin")
    too_few = client.get("/api/v1/pmt/evaluation", headers=manager)
    assert too_few.status_code == 422 and "too few to estimate" in too_few.json()["detail"]
    from isps.synth.load import load_synthetic
    load_synthetic(province, 2400, seed=70)  # a survey large enough to estimate from: 3,000 households
    evaluation = client.get("/api/v1/pmt/evaluation", headers=manager).json()
    assert {m["key"] for m in evaluation["models"]} >= {"active", "ols", "quantile"}
    fitted = client.post("/api/v1/pmt/models/fit", json={"estimator": "ols"}, headers=manager)
    assert fitted.status_code == 201, fitted.text
    model_id = fitted.json()["id"]
    assert client.post(f"/api/v1/pmt/models/{model_id}/activate", headers=manager).status_code == 409
    own = client.post(f"/api/v1/pmt/models/{model_id}/approve", headers=manager)
    assert own.status_code == 409 and "second person" in own.json()["detail"]
    assert client.post(f"/api/v1/pmt/models/{model_id}/approve", headers=admin).status_code == 200
    active = client.post(f"/api/v1/pmt/models/{model_id}/activate", headers=manager).json()
    assert active["status"] == "active" and active["households_scored"] == 3000
    assert client.post(f"/api/v1/pmt/models/{model_id}/approve",
                       headers=token_for(client, "lahore_officer")).status_code == 403
