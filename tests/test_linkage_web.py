"""The Single Beneficiary Registry through the API and the web app: an operator resolves a
review-queue pair in the browser (TestClient), reports export as CSV."""

from __future__ import annotations

from sqlalchemy import select

from isps.db import transaction
from isps.linkage import resolve
from isps.linkage.models import Beneficiary, MatchCandidate
from isps.registry.models import Individual

from tests.conftest import PASSWORD, token_for


def _sign_in(client, username: str) -> None:
    r = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303


def _lines(province, n: int = 30) -> list[dict]:
    with transaction(province) as s:
        people = list(s.scalars(select(Individual).where(Individual.cnic.is_not(None)).order_by(Individual.id)
                                .limit(n)))
        return [{"partner_ref": f"R{p.id}", "cnic": p.cnic if i % 3 else None,
                 "full_name": p.full_name if i % 2 else p.full_name.replace("Muhammad", "Mohd"),
                 "father_husband_name": p.father_husband_name, "sex": p.sex,
                 "date_of_birth": p.date_of_birth.isoformat(), "district": str(p.district_id)}
                for i, p in enumerate(people)]


def test_api_batches_resolve_and_reports(client, province):
    headers = token_for(client, "manager")
    body = {"program_code": "bisp_kafaalat", "partner": "BISP", "reference": "Q1-2026", "records": _lines(province)}
    r = client.post("/api/v1/sbr/batches", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["inserted"] == 30
    again = client.post("/api/v1/sbr/batches", json=body, headers=headers).json()
    assert again["replayed"] and again["inserted"] == 0
    same_people = {**body, "program_code": "zakat_guzara_allowance", "reference": "Z-1"}
    assert client.post("/api/v1/sbr/batches", json=same_people, headers=headers).status_code == 200
    r = client.post("/api/v1/sbr/resolve", headers=headers)
    assert r.status_code == 200, r.text
    dup = client.get("/api/v1/sbr/reports/same_kind", headers=headers).json()
    assert len(dup) == 30  # everyone is in Kafaalat and Zakat guzara allowance (same kind)
    csv = client.get("/api/v1/sbr/reports/overlap_matrix?format=csv", headers=headers)
    assert csv.headers["content-type"].startswith("text/csv") and "bisp_kafaalat" in csv.text
    assert client.get("/api/v1/sbr/catalogue", headers=headers).json()
    counter = token_for(client, "kasur_counter")
    assert client.post("/api/v1/sbr/batches", json=body, headers=counter).status_code == 403


def test_operator_resolves_review_pair_in_web(client, province):
    headers = token_for(client, "manager")
    lines = _lines(province, 6)
    for line in lines:  # no CNIC and a weaker record: the pair must go to clerical review
        line["cnic"] = None
        line["father_husband_name"] = None
    client.post("/api/v1/sbr/batches", json={"program_code": "bisp_kafaalat", "partner": "BISP", "reference": "W",
                                             "records": lines}, headers=headers)
    # thresholds so high that every candidate is uncertain
    resolve.resolve(province, actor="test", accept_weight=99.0, review_weight=-10.0)
    with transaction(province) as s:
        cand = s.scalars(select(MatchCandidate).where(MatchCandidate.status == "review")
                         .order_by(MatchCandidate.match_weight.desc())).first()
        assert cand is not None
        cid, ind = cand.id, cand.individual_id
    _sign_in(client, "manager")
    page = client.get("/sbr/review")
    assert page.status_code == 200 and f"pair-{cid}" in page.text and "Why this score" in page.text
    r = client.post(f"/sbr/review/{cid}", data={"decision": "accept"}, follow_redirects=False)
    assert r.status_code == 303
    with transaction(province) as s:
        c = s.get(MatchCandidate, cid)
        b = s.get(Beneficiary, c.beneficiary_id)
        assert c.status == "accepted" and c.decided_by == "manager"
        assert b.individual_id == ind and b.link_method == "operator"
    assert f"pair-{cid}" not in client.get("/sbr/review").text
    # a second decision on the same pair is refused
    assert client.post(f"/sbr/review/{cid}", data={"decision": "reject"}).status_code == 404
    reports_page = client.get("/sbr/reports?report=by_district_program")
    assert reports_page.status_code == 200
    client.cookies.set("lang", "ur")
    assert "جانچ" in client.get("/sbr/review").text
