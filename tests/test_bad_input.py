"""Bad input found by fuzzing and review (issue 9): every door answers a clear 4xx in one documented
error shape, never a 500; validation lives in the domain so the API, the web and the CLI agree."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from isps.db import transaction
from isps.registry.models import Household, Individual
from tests.conftest import token_for
from tests.test_web import sign_in

BIG = "9" * 20  # above 2**63: SQLite OverflowError, PostgreSQL NumericValueOutOfRange before the fix

API_BIG_IDS = [
    ("get", f"/api/v1/households/{BIG}"), ("get", f"/api/v1/households/{BIG}/history"),
    ("get", f"/api/v1/households/{BIG}/as-of?on=2026-01-01"), ("get", f"/api/v1/households?after={BIG}"),
    ("get", f"/api/v1/households?district_id={BIG}"), ("get", f"/api/v1/households?tehsil_id={BIG}"),
    ("get", f"/api/v1/audit?entity_id={BIG}"), ("get", f"/api/v1/audit?before_id={BIG}"),
    ("get", f"/api/v1/eligibility/runs/{BIG}/results"), ("get", f"/api/v1/households/{BIG}/eligibility"),
    ("get", f"/api/v1/eligibility/runs/1/results?after_household={BIG}"),
    ("post", f"/api/v1/pmt/models/{BIG}/approve"), ("post", f"/api/v1/pmt/models/{BIG}/activate"),
    ("get", f"/api/v1/households/{BIG}/vulnerability"), ("get", f"/api/v1/feeds/conflicts?after={BIG}"),
    ("post", f"/api/v1/change-requests/{BIG}/approve"),
    ("post", f"/api/v1/programs/bisp_kafaalat/enrolment/runs/{BIG}"),
    ("get", f"/api/v1/programs/bisp_kafaalat/enrolments?after={BIG}"), ("get", f"/api/v1/enrolments/{BIG}"),
    ("get", f"/api/v1/programs/bisp_kafaalat/reassessment?after={BIG}"),
    ("post", f"/api/v1/cycles/{BIG}/entitlements"), ("post", f"/api/v1/cycles/{BIG}/approve"),
    ("post", f"/api/v1/cycles/{BIG}/payroll"), ("get", f"/api/v1/payrolls/{BIG}"),
    ("post", f"/api/v1/payrolls/{BIG}/approve"), ("post", f"/api/v1/payrolls/{BIG}/export"),
    ("post", f"/api/v1/payrolls/{BIG}/retry"), ("get", f"/api/v1/districts/{BIG}/pickup"),
    ("get", f"/api/v1/sbr/review?after={BIG}"), ("get", f"/api/v1/sbr/persons/{BIG}"),
    ("post", f"/api/v1/sbr/history/{BIG}/unmerge"), ("get", f"/api/v1/sbr/reports/same_kind?district_id={BIG}"),
]

API_BAD_NUMBERS = [
    ("post", "/api/v1/payments/return-unclaimed?days=99999999"),
    ("post", "/api/v1/payments/return-unclaimed?days=-5"),
    ("get", "/api/v1/recertification?older_than_days=99999999"),
    ("get", "/api/v1/recertification?limit=-1"),
    ("get", "/api/v1/pmt/evaluation?coverage=0.000001"),
    ("get", "/api/v1/programs/bisp_kafaalat/waiting-list?limit=-1"),
    ("get", "/api/v1/programs/bisp_kafaalat/enrolments?limit=0"),
    ("get", "/api/v1/feeds/conflicts?limit=-1"),
    ("get", "/api/v1/sbr/review?limit=-1"),
    ("get", "/api/v1/households?name=" + "x" * 50_000),
    ("get", "/api/v1/households?pmt_min=nan"),
    ("get", "/api/v1/targeting/selection?pmt_cutoff=inf"),
    ("get", "/api/v1/programs/bisp_kafaalat/eligibility/count?on=0001-01-01"),
    ("get", "/api/v1/programs/bisp_kafaalat/simulate?cutoff=1e400"),
    ("get", "/api/v1/programs/bisp_kafaalat/simulate?cutoff=500"),
    ("get", "/api/v1/programs/bisp_kafaalat/simulate?cutoffs=abc"),
    ("get", "/api/v1/programs/bisp_kafaalat/simulate?budget=-1"),
]


def _assert_error_shape(r, status: int | tuple[int, ...]) -> dict:
    """Every /api/v1 error has the documented shape: detail (a sentence) and field (or null)."""
    from isps.api.errors import ErrorBody

    allowed = status if isinstance(status, tuple) else (status,)
    assert r.status_code in allowed, (r.request.url, r.status_code, r.text[:300])
    body = ErrorBody.model_validate(r.json())
    assert body.detail and isinstance(body.detail, str)
    return r.json()


def test_ids_above_the_64_bit_range_are_refused_not_500(client):
    admin = token_for(client, "admin")
    for method, path in API_BIG_IDS:
        r = getattr(client, method)(path, headers=admin)
        body = _assert_error_shape(r, (404, 422))
        if r.status_code == 422:
            assert body["field"], (path, body)


def test_out_of_range_numbers_days_and_limits_are_refused_not_500(client):
    admin = token_for(client, "admin")
    for method, path in API_BAD_NUMBERS:
        r = getattr(client, method)(path, headers=admin)
        body = _assert_error_shape(r, 422)
        assert body["field"] or "must" in body["detail"], (path, body)


def test_a_non_finite_number_in_a_json_body_is_refused(client, province):
    with transaction(province) as s:
        hid = s.scalars(select(Household.id).where(Household.district_id == 1).order_by(Household.id)).first()
    officer = token_for(client, "lahore_officer")
    for raw in ('{"changes": {"rooms": 1e999}}', '{"changes": {"rooms": NaN}}'):
        r = client.patch(f"/api/v1/households/{hid}", content=raw,
                         headers={**officer, "Content-Type": "application/json"})
        _assert_error_shape(r, 422)
    r = client.put("/api/v1/programs/bisp_kafaalat/capacity", content='{"budget_per_cycle": 1e999}',
                   headers={**token_for(client, "manager"), "Content-Type": "application/json"})
    _assert_error_shape(r, 422)


def test_like_wildcards_in_a_name_search_are_literal(client, province):
    admin = token_for(client, "admin")
    everyone = client.get("/api/v1/households?limit=5", headers=admin).json()["items"]
    assert everyone
    for wildcard in ("%", "_", "%%", "_%_"):
        r = client.get("/api/v1/households", params={"name": wildcard, "limit": 5}, headers=admin)
        assert r.status_code == 200 and r.json()["items"] == [], (wildcard, r.json())
    head = everyone[0]["head_name"]
    found = client.get("/api/v1/households", params={"name": head, "limit": 500}, headers=admin).json()["items"]
    assert everyone[0]["id"] in [h["id"] for h in found]


def test_negative_limit_does_not_bypass_the_page_cap_in_the_domain(province):
    from isps.programs import enrolment as en
    from isps.targeting.search import search_households

    with transaction(province) as s:
        with pytest.raises(ValueError, match="limit"):
            en.listing(s, "bisp_kafaalat", "waiting", limit=-1)
        with pytest.raises(ValueError, match="limit"):
            search_households(s, limit=-1)
        with pytest.raises(ValueError, match="name"):
            search_households(s, name="x" * 50_000)


def test_day_counts_and_coverage_are_checked_in_the_domain(province):
    from isps.interop.feeds import changes
    from isps.payments import payroll as pr
    from isps.targeting import estimation

    with transaction(province) as s:
        with pytest.raises(ValueError, match="days"):
            pr.return_unclaimed(s, None, 99_999_999)
        with pytest.raises(ValueError, match="days"):
            changes.recertification_due(s, 99_999_999)
        with pytest.raises(ValueError, match="days"):
            changes.count_recertification_due(s, -1)
        with pytest.raises(ValueError, match="coverage"):
            estimation.compare(s, coverage=0.000001)


# ---------------------------------------------------------------- web pages

WEB_BAD = [f"/?after={BIG}", f"/search/results?after={BIG}", f"/payments/payrolls/{BIG}", f"/audit?entity_id={BIG}",
           f"/audit?before_id={BIG}", f"/sbr/review?after={BIG}", "/updates?older_than_days=99999999",
           f"/programs/bisp_kafaalat/enrolment?exited={BIG}", "/payments/payrolls/abc", f"/households/{BIG}"]


def test_web_pages_answer_bad_numbers_with_a_page_not_a_500(client):
    sign_in(client, "admin")
    for path in WEB_BAD:
        r = client.get(path)
        assert r.status_code in (400, 404, 422) or (r.status_code == 200 and "error" in r.text.lower()), \
            (path, r.status_code)
        assert r.headers["content-type"].startswith("text/html"), (path, r.headers["content-type"])
    from tests.test_web import result_rows

    literal = client.get("/", params={"name": "%" * 5000})  # cut to the box's length, and taken literally
    assert literal.status_code == 200 and result_rows(literal.text) == []


# ---------------------------------------------------------------- the simulator: one check, three doors

def test_simulator_cutoffs_are_parsed_and_checked_once_for_every_door():
    from isps.targeting import simulator

    assert simulator.parse_cutoffs("30, 32،35") == [30.0, 32.0, 35.0]
    assert simulator.parse_cutoffs("") == []
    for raw, words in (("abc", "'abc'"), ("1e400", "1e400"), ("500", "0 to 100"), ("-1", "0 to 100"),
                       ("nan", "nan"), ("1,2,3,4,5,6,7", "at most 6")):
        with pytest.raises(simulator.ScenarioError, match=words):
            simulator.parse_cutoffs(raw)
    with pytest.raises(simulator.ScenarioError, match="cutoff"):
        simulator.check_cutoffs([float("inf")])


def test_simulator_refuses_bad_cutoffs_in_the_api_and_the_web(client):
    manager = token_for(client, "manager")
    for q in ("cutoff=1e400", "cutoff=500", "cutoffs=abc", "cutoffs=30,500", "cutoff=nan"):
        r = client.get(f"/api/v1/programs/bisp_kafaalat/simulate?{q}", headers=manager)
        body = _assert_error_shape(r, 422)
        assert "cut" in body["detail"], body
    ok = client.get("/api/v1/programs/bisp_kafaalat/simulate?cutoffs=30,35", headers=manager)
    assert ok.status_code == 200 and [s["scenario"]["label"] for s in ok.json()] == ["cut-off 30", "cut-off 35"]
    sign_in(client, "manager")
    for raw in ("abc", "1e400", "500"):
        page = client.get("/simulator", params={"cutoffs": raw})
        assert page.status_code == 422 and "0 to 100" in page.text or "cut-off" in page.text, raw


def test_the_cli_refuses_a_cutoff_the_web_refuses(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from isps.cli.main import app
    from isps.db import engine_for

    monkeypatch.setenv("ISPS_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("ISPS_VAR_DIR", str(tmp_path / "var"))
    engine_for.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["synth", "--households", "200", "--seed", "4"]).exit_code == 0
    r = runner.invoke(app, ["simulate", "bisp_kafaalat", "--cutoff", "500"])
    assert r.exit_code == 1 and "0 to 100" in r.output, r.output
    engine_for.cache_clear()


# ---------------------------------------------------------------- dates of changes and deaths

def _member(engine, district_id: int = 1) -> Individual:
    with transaction(engine) as s:
        return s.scalars(select(Individual).where(Individual.district_id == district_id,
                                                  Individual.date_of_death.is_(None),
                                                  Individual.date_of_birth > date(1980, 1, 1))
                         .order_by(Individual.id)).first()


def test_a_death_before_birth_or_in_the_future_is_refused_at_request_and_approval(client, province):
    person = _member(province)
    officer = token_for(client, "lahore_officer")
    before_birth = (person.date_of_birth - timedelta(days=30)).isoformat()
    tomorrow_plus = (date.today() + timedelta(days=10)).isoformat()
    for when in (before_birth, tomorrow_plus):
        r = client.post("/api/v1/change-requests", headers=officer, json={
            "entity": "individual", "entity_id": person.id, "changes": {"date_of_death": when},
            "evidence": "death certificate"})
        body = _assert_error_shape(r, 422)
        assert "date_of_death" in body["detail"], body
    from isps.registry import service

    with transaction(province) as s:
        prov = service.Provenance("operator", "tester", date.today())
        with pytest.raises(service.RegistryError, match="before .* born"):
            service.change_individual(s, person.id, {"date_of_death": before_birth}, prov)


def test_effective_dates_far_in_the_future_or_past_are_refused_at_every_door(client, province):
    with transaction(province) as s:
        hid = s.scalars(select(Household.id).where(Household.district_id == 1).order_by(Household.id)).first()
    officer = token_for(client, "lahore_officer")
    for when in ("9999-01-01", (date.today() + timedelta(days=2)).isoformat(), "1899-12-31"):
        r = client.patch(f"/api/v1/households/{hid}", headers=officer,
                         json={"changes": {"rooms": 3}, "effective_date": when})
        body = _assert_error_shape(r, 422)
        assert "effective" in body["detail"], body
        r = client.post("/api/v1/change-requests", headers=officer, json={
            "entity": "household", "entity_id": hid, "changes": {"rooms": 3}, "evidence": "visit",
            "effective_date": when})
        _assert_error_shape(r, 422)
    ok = client.patch(f"/api/v1/households/{hid}", headers=officer,
                      json={"changes": {"rooms": 3}, "effective_date": (date.today() + timedelta(days=1)).isoformat()})
    assert ok.status_code == 200, ok.text


# ---------------------------------------------------------------- feed deliveries

def _nadra(engine, n: int = 2) -> list[dict]:
    with transaction(engine) as s:
        people = s.scalars(select(Individual).where(Individual.district_id == 1, Individual.cnic.is_not(None),
                                                    Individual.date_of_death.is_(None))
                           .order_by(Individual.id).limit(n)).all()
    return [{"record_ref": f"D-{p.id}", "event": "death", "event_date": date.today().isoformat(),
             "cnic": p.cnic} for p in people]


@pytest.mark.parametrize("order", ["narrow_first", "wide_first"])
def test_a_delivery_takes_the_union_of_its_records_keys(client, province, order):
    narrow, wide = _nadra(province)  # a death has no marital_status; a marital_status event needs one
    wide = {**wide, "record_ref": f"M-{order}", "event": "marital_status", "marital_status": "widowed"}
    records = [narrow, wide] if order == "narrow_first" else [wide, narrow]
    r = client.post("/api/v1/feeds/nadra/deliveries", headers=token_for(client, "admin"),
                    json={"reference": f"KEYS-{order}", "records": records})
    assert r.status_code == 200, r.text
    assert r.json()["errors"] == [] and r.json()["accepted"] == 2, r.json()


def test_the_same_content_under_another_name_is_not_applied_twice(client, province):
    records = _nadra(province)
    admin = token_for(client, "admin")
    first = client.post("/api/v1/feeds/nadra/deliveries", headers=admin, json={"reference": "A", "records": records})
    again = client.post("/api/v1/feeds/nadra/deliveries", headers=admin, json={"reference": "B", "records": records})
    assert first.status_code == again.status_code == 200
    assert first.json()["accepted"] == 2 and again.json()["accepted"] == 0 and again.json()["repeated"] == 2


def test_concurrent_deliveries_of_the_same_content_get_a_clear_conflict(province):
    """Two sessions deliver the same records under different names at once: one applies them, the
    other is told which delivery holds them (no raw UniqueViolation); nothing is lost or doubled."""
    if province.dialect.name != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; SQLite serialises writes")
    from isps.interop import feeds
    from isps.interop.models import FeedRecord

    records = _nadra(province, 40)
    barrier = threading.Barrier(4)
    outcomes: list = []

    def deliver(name: str) -> None:
        barrier.wait()
        try:
            outcomes.append(feeds.apply_delivery(province, "nadra", list(records), reference=name, actor="t"))
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcomes.append(exc)

    threads = [threading.Thread(target=deliver, args=(f"same-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert all(isinstance(e, feeds.DeliveryConflict) for e in errors), errors
    assert all("already received as delivery" in str(e) for e in errors), errors
    reports = [o for o in outcomes if not isinstance(o, Exception)]
    print(f"{len(errors)} conflicts, {len(reports)} applied")
    assert sum(r.accepted for r in reports) == 40
    with transaction(province) as s:
        assert len(s.scalars(select(FeedRecord).where(FeedRecord.feed == "nadra")).all()) == 40


def test_a_conflicting_delivery_is_a_409_in_the_api(client, province, monkeypatch):
    from isps.interop import feeds

    def clash(*a, **k):
        raise feeds.DeliveryConflict("this delivery's content was already received as delivery 7")

    monkeypatch.setattr(feeds, "apply_delivery", clash)
    r = client.post("/api/v1/feeds/nadra/deliveries", headers=token_for(client, "admin"),
                    json={"reference": "X", "records": _nadra(province, 1)})
    assert "delivery 7" in _assert_error_shape(r, 409)["detail"]


# ---------------------------------------------------------------- one documented error shape

# the SMS aggregator's callbacks carry a shared secret, not a user: wrong secret is a 401, there is no role to refuse
SECRET_ONLY = {"/api/v1/sms/receipts", "/api/v1/sms/inbound"}


def test_every_operation_documents_the_errors_it_can_return(client):
    spec = client.get("/api/v1/openapi.json").json()
    assert "ErrorBody" in spec["components"]["schemas"]
    missing = []
    for path, ops in spec["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method, op in ops.items():
            codes = set(op.get("responses", {}))
            secured = path != "/api/v1/auth/token"
            has_params = bool(op.get("parameters") or op.get("requestBody"))
            need = ({"401"} if path in SECRET_ONLY else {"401", "403"} if secured else set()) | (
                {"422"} if has_params else set())
            if "{" in path:
                need |= {"404"}
            for code in need - codes:
                missing.append(f"{method.upper()} {path}: {code}")
            for code in need & codes:
                ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                if not ref.endswith("/ErrorBody"):
                    missing.append(f"{method.upper()} {path}: {code} is not an ErrorBody")
    assert not missing, "\n".join(missing)


def test_error_bodies_follow_the_documented_schema(client):
    admin = token_for(client, "admin")
    counter = token_for(client, "kasur_counter")
    _assert_error_shape(client.get("/api/v1/me"), 401)
    _assert_error_shape(client.get("/api/v1/audit", headers=counter), 403)
    _assert_error_shape(client.get("/api/v1/households/1", headers=admin), 404)
    body = _assert_error_shape(client.get("/api/v1/households?limit=abc", headers=admin), 422)
    assert body["field"] == "limit" and body["errors"][0]["field"] == "limit"
    body = _assert_error_shape(client.patch("/api/v1/households/1", json={"nope": 1}, headers=admin), 422)
    assert body["field"] == "changes"
    _assert_error_shape(client.post("/api/v1/pmt/models/1/approve", headers=admin), (404, 409))
    # DCI keeps its own envelope: the handlers here leave /dci alone
    r = client.post("/dci/admin/notify")
    assert r.status_code == 401 and "field" not in r.json()
