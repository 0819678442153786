"""The DCI Social Registry API under /dci, on both backends: every request and response is
validated against ../shared/specs/dci/social_api_v1.0.0.yaml itself."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from sqlalchemy import event, select

from isps.access.models import AuditRecord
from isps.db import transaction
from isps.interop.dci import envelope, partners, signing, subscriptions
from isps.interop.dci.models import DciConsent, DciDelivery, DciPartner
from isps.registry import service as registry
from isps.registry.cnic import formatted, mask
from isps.registry.models import Individual
from tests.conftest import token_for

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "specs" / "dci" / "social_api_v1.0.0.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text())
URI = "urn:spec"
REGISTRY = Registry().with_resource(URI, Resource(contents=SPEC, specification=DRAFT4))
PARTNER = "spmis.bisp.gov.pk"
CALLBACK = "https://spmis.bisp.gov.pk/dci"
FIELDS = ["identifier", "name", "sex", "birth_date", "death_date", "relationship_head", "place", "poverty_score",
          "group_size", "member_list", "group_identifier", "registration_date"]


def _ptr(*parts: str) -> str:
    return URI + "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _validate(ref: str, body) -> None:
    errors = list(Draft4Validator({"$ref": ref}, registry=REGISTRY).iter_errors(body))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def check_request(path: str, body: dict) -> None:
    _validate(_ptr("paths", path, "post", "requestBody", "content", "application/json", "schema"), body)


def check_response(path: str, status: int, body: dict) -> None:
    responses = SPEC["paths"][path]["post"]["responses"]
    entry = responses.get(str(status), responses["default"])
    if "$ref" in entry:
        ref = entry["$ref"].lstrip("#/").split("/")
        _validate(_ptr(*ref, "content", "application/json", "schema"), body)
    else:
        _validate(_ptr("paths", path, "post", "responses", str(status) if str(status) in responses else "default",
                       "content", "application/json", "schema"), body)


def now_ts() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Partner:
    """A partner system as it would call ISPS: token, signed envelopes, spec-checked messages."""

    def __init__(self, client, sender_id: str, client_id: str, secret: str, key, kid: str) -> None:
        self.client, self.sender_id, self.client_id, self.secret = client, sender_id, client_id, secret
        self.key, self.kid = key, kid
        self._token = None

    def token(self) -> str:
        if self._token is None:
            r = self.client.post("/dci/oauth2/client/token", data={
                "grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.secret})
            assert r.status_code == 200, r.text
            self._token = r.json()["access_token"]
        return self._token

    def envelope(self, action: str, message: dict, total: int = 1, **header) -> dict:
        h = {"version": "1.0.0", "message_id": uuid.uuid4().hex, "message_ts": now_ts(), "action": action,
             "sender_id": self.sender_id, "receiver_id": "isps.punjab.gov.pk", "total_count": total,
             "is_msg_encrypted": False, **header}
        return {"signature": signing.sign(self.key, self.sender_id, self.kid, h, message), "header": h,
                "message": message}

    def post(self, path: str, body, token: str | None = "default", check: bool = True):
        headers = {"Content-Type": "application/json"}
        if token == "default":
            token = self.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if check and isinstance(body, dict):
            check_request(path, body)
        r = self.client.post("/dci" + path, content=body if isinstance(body, (bytes, str)) else json.dumps(body),
                             headers=headers)
        assert r.status_code != 500, r.text
        check_response(path, r.status_code, r.json())
        return r


def search_message(*queries, response_entity: str | None = None, page_size: int = 10, query_type="idtype-value"):
    items = []
    for n, q in enumerate(queries):
        crit = {"version": "1.0.0", "reg_type": "ns:isps:RegistryType:Social", "query_type": query_type, "query": q,
                "pagination": {"page_size": page_size, "page_number": 1}}
        if response_entity:
            crit["response_entity"] = response_entity
        items.append({"reference_id": f"ref-{n}", "timestamp": now_ts(), "search_criteria": crit, "locale": "eng"})
    return {"transaction_id": uuid.uuid4().hex[:20], "search_request": items}


def _setup_partner(client, engine, sender_id=PARTNER, fields=FIELDS, consent=False, rsa_key=False) -> Partner:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key else ed25519.Ed25519PrivateKey.generate()
    with transaction(engine) as s:
        row, secret = partners.register_partner(s, sender_id, "BISP SPMIS", CALLBACK)
        partners.add_key(s, row.id, "k1", "rsa-sha256" if rsa_key else "ed25519", signing.public_pem(key))
        partners.set_agreement(s, row.id, "DSA-2026-01", "kafaalat-enrolment", fields, consent, "admin")
        client_id = row.client_id
    return Partner(client, sender_id, client_id, secret, key, "k1")


@pytest.fixture
def sent(client):
    box: list[tuple[str, dict]] = []
    client.app.state.dci_sender = lambda url, envelope: box.append((url, envelope))
    return box


@pytest.fixture
def partner(client, province, sent) -> Partner:
    return _setup_partner(client, province)


def _people(engine, n=3, document="cnic"):
    with transaction(engine) as s:
        return list(s.scalars(select(Individual).where(Individual.cnic.is_not(None), Individual.id_document == document,
                                                       Individual.date_of_death.is_(None))
                              .order_by(Individual.id).limit(n)))


def _isps_public_key(client):
    keys = client.get("/dci/.well-known/jwks.json").json()["keys"]
    import base64
    raw = base64.urlsafe_b64decode(keys[1]["x"] + "==")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def _verify_isps(client, envelope: dict) -> None:
    parsed = signing.parse(envelope["signature"])
    assert parsed.sender_id == "isps.punjab.gov.pk"
    signing.verify(parsed, _isps_public_key(client), envelope["header"], envelope.get("message"))


# ---------------------------------------------------------------- the spec copy and tokens

def test_packaged_spec_is_the_shared_spec():
    assert json.loads(envelope.spec_text()) == json.loads(json.dumps(SPEC, default=str))


def test_token_is_a_jwt_signed_by_isps_with_an_expiry(client, partner):
    r = client.post("/dci/oauth2/client/token", data={"grant_type": "client_credentials",
                                                      "client_id": partner.client_id, "client_secret": partner.secret})
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer" and r.json()["expires_in"] == 3600
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == PARTNER and claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(r.json()["access_token"])["alg"] == "EdDSA"
    bad = client.post("/dci/oauth2/client/token", data={"grant_type": "client_credentials",
                                                        "client_id": partner.client_id, "client_secret": "wrong"})
    assert bad.status_code == 401 and bad.json() == {"error": "invalid_client"}
    assert client.post("/dci/oauth2/client/token", data={"grant_type": "password"}).status_code == 400


# ---------------------------------------------------------------- sync search

def test_sync_search_by_cnic_returns_only_granted_fields_and_is_audited(client, province, partner, caplog):
    caplog.set_level(logging.DEBUG)
    people = _people(province, 2)
    message = search_message(*({"type": "CNIC", "value": formatted(p.cnic)} for p in people),
                             {"type": "CNIC", "value": "35202-0000000-1"})
    r = partner.post("/registry/sync/search", partner.envelope("search", message, total=3))
    assert r.status_code == 200
    body = r.json()
    _verify_isps(client, body)
    assert body["header"]["action"] == "on-search" and body["header"]["status"] == "succ"
    items = body["message"]["search_response"]
    assert [i["status"] for i in items] == ["succ", "succ", "succ"]
    rec = items[0]["data"]["reg_records"][0]
    assert rec["member_identifier"][0]["identifier_value"] == formatted(people[0].cnic)
    assert rec["demographic_info"]["name"]["full_name"] == people[0].full_name
    assert "phone_number" not in rec["demographic_info"] and "marital_status" not in rec  # not granted
    assert "address" not in rec["demographic_info"]
    assert items[2]["data"]["reg_records"] == []
    with transaction(province) as s:
        rows = s.scalars(select(AuditRecord).where(AuditRecord.channel == "dci")).all()
    reads = {(a.entity, a.entity_id, a.outcome) for a in rows if a.action == "dci.sync_search"}
    assert {("individual", p.id, "ok") for p in people} <= reads
    assert any(a.outcome == "not_found" for a in rows)
    assert all(a.actor == PARTNER for a in rows if a.action == "dci.sync_search")
    for p in people:  # CNICs never reach the logs or the audit details
        assert p.cnic not in caplog.text and formatted(p.cnic) not in caplog.text
        assert all(p.cnic not in (a.detail or "") for a in rows)


def test_group_search_by_bform_and_rsa_signed_partner(client, province, sent):
    rsa_partner = _setup_partner(client, province, sender_id="pspa.punjab.gov.pk", rsa_key=True)
    child = _people(province, 1, "bform")[0]
    message = search_message({"type": "BFORM", "value": child.cnic}, response_entity="Group")
    r = rsa_partner.post("/registry/sync/search", rsa_partner.envelope("search", message))
    item = r.json()["message"]["search_response"][0]
    group = item["data"]["reg_records"][0]
    assert group["@id"] == f"urn:isps:household:{child.household_id}"
    assert child.id in [int(m["@id"].rsplit(":", 1)[1]) for m in group["member_list"]]
    assert 0 <= group["poverty_score"] <= 100 and group["place"]["district_id"] == child.district_id
    # a CNIC asked for as a B-form is not the same document
    wrong = rsa_partner.post("/registry/sync/search", rsa_partner.envelope(
        "search", search_message({"type": "CNIC", "value": child.cnic})))
    assert wrong.json()["message"]["search_response"][0]["data"]["reg_records"] == []


def test_many_identifiers_are_searched_set_based(client, province, partner):
    people = _people(province, 60)
    statements = []
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(province, "before_cursor_execute", listener)
    try:
        message = search_message(*({"type": "CNIC", "value": p.cnic} for p in people))
        r = partner.post("/registry/sync/search", partner.envelope("search", message, total=len(people)))
    finally:
        event.remove(province, "before_cursor_execute", listener)
    found = [i["data"]["reg_records"] for i in r.json()["message"]["search_response"]]
    assert all(len(f) >= 1 for f in found)
    person_queries = [s for s in statements if "FROM individual" in s]
    assert len(person_queries) <= 3, person_queries  # not one per identifier


def test_predicate_and_expression_search_page_through_groups(client, province, partner):
    pred = [{"seq_num": 1, "expression1": {"attribute_name": "district_id", "operator": "eq", "attribute_value": "1"},
             "condition": "and",
             "expression2": {"attribute_name": "poverty_score", "operator": "le", "attribute_value": "60"}}]
    r = partner.post("/registry/sync/search", partner.envelope(
        "search", search_message(pred, query_type="predicate", page_size=5)))
    item = r.json()["message"]["search_response"][0]
    assert item["status"] == "succ" and item["pagination"]["total_count"] >= len(item["data"]["reg_records"])
    assert all(g["place"]["district_id"] == 1 and g["poverty_score"] <= 60 for g in item["data"]["reg_records"])
    expr = {"type": "ns:isps:QueryType:expression", "value": {"expression": {"collection": "Group", "query": {
        "$and": [{"district_id": {"$eq": 1}}, {"group_size": {"$gte": 2}}]}}}}
    r2 = partner.post("/registry/sync/search", partner.envelope(
        "search", search_message(expr, query_type="expression", page_size=3)))
    item2 = r2.json()["message"]["search_response"][0]
    assert item2["status"] == "succ" and len(item2["data"]["reg_records"]) <= 3
    assert all(g["group_size"] >= 2 for g in item2["data"]["reg_records"])
    # an attribute the agreement does not grant cannot be searched on
    hidden = [{"seq_num": 1, "expression1": {"attribute_name": "marital_status", "operator": "eq",
                                             "attribute_value": "widowed"}}]
    r3 = partner.post("/registry/sync/search", partner.envelope(
        "search", search_message(hidden, query_type="predicate", response_entity="Member")))
    assert r3.json()["message"]["search_response"][0]["status_reason_code"] == "rjct.filter.invalid"


# ---------------------------------------------------------------- errors: never a 500

def test_unsigned_wrongly_signed_expired_and_malformed_requests_get_the_spec_errors(client, province, partner):
    person = _people(province, 1)[0]
    message = search_message({"type": "CNIC", "value": person.cnic})
    good = partner.envelope("search", message)

    unsigned = {k: v for k, v in good.items() if k != "signature"}
    r = partner.post("/registry/sync/search", unsigned)
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "err.signature.missing"

    tampered = json.loads(json.dumps(good))
    tampered["message"]["search_request"][0]["search_criteria"]["query"]["value"] = "35202-1111111-1"
    r = partner.post("/registry/sync/search", tampered)
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "err.signature.invalid"

    other_key = ed25519.Ed25519PrivateKey.generate()
    forged = dict(good, signature=signing.sign(other_key, PARTNER, "k1", good["header"], good["message"]))
    r = partner.post("/registry/sync/search", forged)
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "err.signature.invalid"

    r = partner.post("/registry/sync/search", partner.envelope("search", message), token=None)
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "err.request.unauthorized"
    rt = client.app.state.dci
    with transaction(province) as s:
        expired, _ = rt.tokens.issue(s.scalar(select(DciPartner).where(DciPartner.sender_id == PARTNER)), ttl_s=-60)
    r = partner.post("/registry/sync/search", partner.envelope("search", message), token=expired)
    assert r.status_code == 401 and r.json()["errors"][0] == {"code": "err.request.unauthorized",
                                                              "message": "the access token has expired"}

    broken = partner.envelope("search", {"transaction_id": "t1"})  # no search_request
    r = partner.post("/registry/sync/search", broken, check=False)
    assert r.status_code == 400 and r.json()["header"]["status"] == "rjct"
    assert r.json()["error"]["code"] == "err.request.bad"
    r = partner.post("/registry/sync/search", b"{not json", check=False)
    assert r.status_code == 400 and r.json()["error"]["code"] == "err.request.bad"
    r = partner.post("/registry/sync/search", partner.envelope("search", message, version="2.0.0"), check=False)
    assert r.json()["error"]["code"] == "err.version.not_supported"
    assert r.json()["header"]["status_reason_code"] == "rjct.version.invalid"
    r = partner.post("/registry/search", broken, check=False)  # async: the ERR acknowledgement
    assert r.status_code == 400
    assert r.json()["message"]["ack_status"] == "ERR" and r.json()["message"]["error"]["code"] == "err.request.bad"

    impostor = partner.envelope("search", message, sender_id="someone.else")
    r = partner.post("/registry/sync/search", impostor)
    assert r.status_code == 403 and r.json()["errors"][0]["code"] == "err.sender_id.invalid"

    again = partner.post("/registry/sync/search", good)  # first use of this message_id
    assert again.status_code == 200
    dup = partner.post("/registry/sync/search", good)
    assert dup.status_code == 409 and dup.json()["header"]["status_reason_code"] == "rjct.message_id.duplicate"

    with transaction(province) as s:
        denied = s.scalars(select(AuditRecord).where(AuditRecord.channel == "dci",
                                                     AuditRecord.outcome == "denied")).all()
    assert len(denied) >= 7


# ---------------------------------------------------------------- agreements and consent

def test_consent_required_agreement_shares_only_people_who_consented(client, province, sent):
    p = _setup_partner(client, province, sender_id="ngo.rsp.org.pk", fields=["identifier", "name"], consent=True)
    people = _people(province, 20)
    a = people[0]
    b = next(x for x in people if x.household_id != a.household_id)  # the head's consent covers the household
    spouse = next((x for x in people if x.household_id == a.household_id and x.id != a.id), None)
    message = search_message({"type": "CNIC", "value": a.cnic}, {"type": "CNIC", "value": b.cnic})
    r = p.post("/registry/sync/search", p.envelope("search", message, total=2))
    assert [i["data"]["reg_records"] for i in r.json()["message"]["search_response"]] == [[], []]
    with transaction(province) as s:
        pid = s.scalar(select(DciPartner.id).where(DciPartner.sender_id == "ngo.rsp.org.pk"))
        consent = partners.record_consent(s, pid, a.id, "kafaalat-enrolment", "counter_operator",
                                          evidence="form OW-17")
        consent_id = consent.id
    r = p.post("/registry/sync/search", p.envelope("search", message, total=2))
    recs = [i["data"]["reg_records"] for i in r.json()["message"]["search_response"]]
    assert len(recs[0]) == 1 and recs[1] == []
    if spouse is not None:  # a is the head: their consent covers the members of their household
        r = p.post("/registry/sync/search", p.envelope("search", search_message({"type": "CNIC", "value": spouse.cnic})))
        assert len(r.json()["message"]["search_response"][0]["data"]["reg_records"]) == 1
    assert set(recs[0][0]) == {"@type", "@id", "member_identifier", "demographic_info"}
    assert set(recs[0][0]["demographic_info"]) == {"@type", "identifier", "name"}
    with transaction(province) as s:
        partners.revoke_consent(s, consent_id)
        outcomes = {(x.entity_id, x.outcome) for x in s.scalars(select(AuditRecord).where(
            AuditRecord.actor == "ngo.rsp.org.pk", AuditRecord.entity == "individual"))}
    assert (b.id, "denied") in outcomes and (a.id, "ok") in outcomes
    r = p.post("/registry/sync/search", p.envelope("search", message, total=2))
    assert r.json()["message"]["search_response"][0]["data"]["reg_records"] == []


def test_partner_without_agreement_is_forbidden(client, province, sent):
    key = ed25519.Ed25519PrivateKey.generate()
    with transaction(province) as s:
        row, secret = partners.register_partner(s, "no.agreement.pk", "No DSA", CALLBACK)
        partners.add_key(s, row.id, "k1", "ed25519", signing.public_pem(key))
        cid = row.client_id
    p = Partner(client, "no.agreement.pk", cid, secret, key, "k1")
    r = p.post("/registry/sync/search", p.envelope("search", search_message({"type": "CNIC", "value": "3520212345671"})))
    assert r.status_code == 403 and r.json()["errors"][0]["code"] == "err.request.forbidden"


# ---------------------------------------------------------------- async search and txn status

def test_async_search_calls_back_on_search_and_txn_status_finds_it(client, province, partner, sent):
    person = _people(province, 1)[0]
    message = search_message({"type": "CNIC", "value": person.cnic})
    r = partner.post("/registry/search", partner.envelope("search", message))
    assert r.status_code == 202 and r.json()["message"]["ack_status"] == "ACK"
    url, callback = sent[-1]
    assert url == f"{CALLBACK}/registry/on-search"
    check_request("/registry/on-search", callback)
    _verify_isps(client, callback)
    assert callback["message"]["correlation_id"] == r.json()["message"]["correlation_id"]
    assert callback["message"]["search_response"][0]["data"]["reg_records"][0]["@id"] == f"urn:isps:individual:{person.id}"

    status_msg = {"transaction_id": "status-1", "txnstatus_request": {
        "reference_id": "s-1", "txn_type": "search", "attribute_type": "transaction_id",
        "attribute_value": message["transaction_id"]}}
    r = partner.post("/registry/sync/txn/status", partner.envelope("txn-status", status_msg))
    assert r.status_code == 200
    txn = r.json()["message"]["txnstatus_response"]["txn_status"]
    assert txn["search_response"][0]["status"] == "succ" and txn["search_response"][0]["data"]["reg_records"]

    by_refs = dict(status_msg, txnstatus_request={**status_msg["txnstatus_request"], "attribute_type": "reference_id_list",
                                                  "attribute_value": ["ref-0"]})
    r = partner.post("/registry/txn/status", partner.envelope("txn-status", by_refs))
    assert r.status_code == 202
    url, on_status = sent[-1]
    assert url == f"{CALLBACK}/registry/txn/on-status"
    check_request("/registry/txn/on-status", on_status)



def test_async_txn_status_callback_carries_the_acknowledged_correlation_id(client, province, partner, sent):
    """Conformance: the txn/on-status callback answers the txn/status request it acknowledged, so it
    carries the acknowledgement's correlation_id (not the searched transaction's)."""
    person = _people(province, 1)[0]
    message = search_message({"type": "CNIC", "value": person.cnic})
    searched = partner.post("/registry/search", partner.envelope("search", message)).json()["message"]["correlation_id"]
    status_msg = {"transaction_id": "status-2", "txnstatus_request": {
        "reference_id": "s-2", "txn_type": "search", "attribute_type": "transaction_id",
        "attribute_value": message["transaction_id"]}}
    r = partner.post("/registry/txn/status", partner.envelope("txn-status", status_msg))
    assert r.status_code == 202
    acknowledged = r.json()["message"]["correlation_id"]
    url, on_status = sent[-1]
    assert on_status["header"]["action"] == "txn-on-status" and on_status["header"]["status"] == "succ"
    assert on_status["message"]["correlation_id"] == acknowledged != searched
    assert on_status["message"]["txnstatus_response"]["txn_status"]["correlation_id"] == searched
    _verify_isps(client, on_status)
    # a status request for a transaction that does not exist is answered the same way, with rjct
    missing = dict(status_msg, txnstatus_request={**status_msg["txnstatus_request"], "attribute_value": "nope"})
    r = partner.post("/registry/txn/status", partner.envelope("txn-status", missing))
    assert r.status_code == 202
    url, on_status = sent[-1]
    assert on_status["header"]["status"] == "rjct" and "message" not in on_status
    check_request("/registry/txn/on-status", on_status)


def test_sync_txn_status_of_an_unknown_transaction_is_http_200_with_rjct_in_the_header(client, province, partner):
    status_msg = {"transaction_id": "status-3", "txnstatus_request": {
        "reference_id": "s-3", "txn_type": "search", "attribute_type": "transaction_id", "attribute_value": "nope"}}
    r = partner.post("/registry/sync/txn/status", partner.envelope("txn-status", status_msg))
    assert r.status_code == 200
    body = r.json()
    _verify_isps(client, body)
    assert body["header"]["status"] == "rjct" and body["header"]["action"] == "txn-on-status"
    assert body["header"]["status_reason_message"] == "no such transaction of yours"
    assert body["error"]["code"] == "err.request.not_found"


def test_callback_uri_must_be_the_registered_one(client, province, partner, sent):
    message = search_message({"type": "CNIC", "value": "3520212345671"})
    r = partner.post("/registry/search", partner.envelope("search", message, sender_uri="https://evil.example/x"))
    assert r.status_code == 400 and r.json()["message"]["error"]["code"] == "err.sender_uri.invalid"
    assert not sent


def test_failed_callback_is_kept_for_retry(client, province, partner):
    def down(url, envelope):
        raise ConnectionError("partner down")
    client.app.state.dci_sender = down
    person = _people(province, 1)[0]
    r = partner.post("/registry/search", partner.envelope("search", search_message({"type": "CNIC", "value": person.cnic})))
    assert r.status_code == 202
    box = []
    client.app.state.dci.sender = lambda url, envelope: box.append(url)
    from isps.interop.dci import service
    with transaction(province) as s:
        assert s.scalar(select(DciDelivery.status)) == "failed"
        assert service.retry_failed(s, client.app.state.dci) == 1
    assert box == [f"{CALLBACK}/registry/on-search"]


# ---------------------------------------------------------------- subscribe, notify, unsubscribe

def test_subscribe_notify_on_death_and_unsubscribe(client, province, partner, sent):
    person = _people(province, 1)[0]
    sub = {"transaction_id": "sub-txn-1", "subscribe_request": [
        {"reference_id": "r1", "timestamp": now_ts(), "subscribe_criteria": {
            "reg_event_type": "DEATH", "filter_type": "idtype-value",
            "filter": {"type": "CNIC", "value": formatted(person.cnic)}, "notify_record_type": "Member"}},
        {"reference_id": "r2", "timestamp": now_ts(), "subscribe_criteria": {
            "reg_event_type": "REGISTER", "filter_type": "predicate",
            "filter": [{"seq_num": 1, "expression1": {"attribute_name": "district_id", "operator": "eq",
                                                     "attribute_value": "1"}}],
            "notify_record_type": "Group"}},
        {"reference_id": "r3", "timestamp": now_ts(), "subscribe_criteria": {
            "reg_event_type": "Marriage", "filter": {"type": "CNIC", "value": person.cnic},
            "notify_record_type": "Member"}}]}
    r = partner.post("/registry/subscribe", partner.envelope("subscribe", sub, total=3))
    assert r.status_code == 202
    url, on_sub = sent[-1]
    assert url == f"{CALLBACK}/registry/on-subscribe"
    check_request("/registry/on-subscribe", on_sub)
    results = on_sub["message"]["subscribe_response"]
    assert [x["status"] for x in results] == ["succ", "succ", "rjct"]
    assert results[2]["status_reason_code"] == "rjct.notify_types.invalid"
    code = results[0]["subscriptions"][0]["code"]
    again = partner.post("/registry/subscribe", partner.envelope("subscribe", dict(sub, subscribe_request=sub["subscribe_request"][:1])))
    assert again.status_code == 202
    assert sent[-1][1]["message"]["subscribe_response"][0]["status_reason_code"] == "rjct.event.already_subscribed"

    rt = client.app.state.dci
    with transaction(province) as s:
        subscriptions.process_events(s, rt)  # nothing new yet beyond the load's events
        registry.change_individual(s, person.id, {"date_of_death": "2026-10-01"},
                                   registry.Provenance("nadra", "nadra-feed", date(2026, 10, 1), "NADRA-D-1"))
    before = len(sent)
    with transaction(province) as s:
        counts = subscriptions.process_events(s, rt)
    assert counts["messages"] == 1 and len(sent) == before + 1
    url, notify = sent[-1]
    assert url == f"{CALLBACK}/registry/notify"
    check_request("/registry/notify", notify)
    _verify_isps(client, notify)
    event_data = notify["message"]["notify_event"][0]["data"]
    assert event_data["isps_event_type"] == "DEATH"
    assert event_data["reg_records"]["demographic_info"]["death_date"] == "2026-10-01"

    unsub = {"transaction_id": "unsub-1", "timestamp": now_ts(), "subscription_codes": [code]}
    r = partner.post("/registry/unsubscribe", partner.envelope("unsubscribe", unsub))
    assert r.status_code == 202
    url, on_unsub = sent[-1]
    check_request("/registry/on-unsubscribe", on_unsub)
    assert on_unsub["message"]["status"] == "succ"
    assert on_unsub["message"]["subscription_status"] == [{"code": code, "status": "unsubscribe"}]
    r = partner.post("/registry/unsubscribe", partner.envelope("unsubscribe", dict(unsub, subscription_codes=["sub-nope"])))
    assert sent[-1][1]["message"]["status_reason_code"] == "rjct.subscription_code.invalid"

    status_msg = {"transaction_id": "st-2", "txnstatus_request": {
        "reference_id": "s-2", "txn_type": "subscribe", "attribute_type": "transaction_id",
        "attribute_value": "sub-txn-1"}}
    r = partner.post("/registry/sync/txn/status", partner.envelope("txn-status", status_msg))
    assert r.status_code == 200

    with transaction(province) as s:
        registry.change_individual(s, person.id, {"date_of_death": "2026-10-02"},
                                   registry.Provenance("nadra", "nadra-feed", date(2026, 10, 2), "NADRA-D-2"))
    with transaction(province) as s:
        assert subscriptions.process_events(s, rt)["messages"] == 0  # unsubscribed


def test_an_administrator_runs_a_notify_pass_and_others_may_not(client, province, partner, sent):
    r = client.post("/dci/admin/notify", headers=token_for(client, "admin"))
    assert r.status_code == 200 and set(r.json()) == {"events", "messages", "records"}
    assert client.post("/dci/admin/notify", headers=token_for(client, "auditor")).status_code == 403
    assert client.post("/dci/admin/notify").status_code == 401


def test_a_notify_pass_waits_for_the_workers_lease_and_is_refused_while_it_runs(client, province, partner, sent,
                                                                                 monkeypatch):
    from datetime import timedelta

    from isps.api import dci as api_dci
    from isps.services import leases
    from isps.services.worker import DCI_NOTIFY

    monkeypatch.setattr(api_dci, "NOTIFY_WAIT", 0.1)
    assert leases.acquire(province, DCI_NOTIFY, "worker@host:1:abc", timedelta(minutes=5))  # the worker's run
    r = client.post("/dci/admin/notify", headers=token_for(client, "admin"))
    assert r.status_code == 409 and set(r.json()) == {"detail", "field", "errors"}
    assert DCI_NOTIFY in r.json()["detail"]
    with transaction(province) as s:  # refused before anything was sent: the lease is still the worker's
        assert s.get(leases.WorkerLease, DCI_NOTIFY).holder == "worker@host:1:abc"
    leases.release(province, DCI_NOTIFY, "worker@host:1:abc")
    r = client.post("/dci/admin/notify", headers=token_for(client, "admin"))
    assert r.status_code == 200
    with transaction(province) as s:  # the request's run gave the lease back
        assert s.get(leases.WorkerLease, DCI_NOTIFY).holder is None


def test_a_birth_reported_by_the_feed_notifies_new_household_member(client, province, partner, sent):
    from isps.registry import events
    person = _people(province, 1)[0]
    sub = {"transaction_id": "sub-birth", "subscribe_request": [
        {"reference_id": "b1", "timestamp": now_ts(), "subscribe_criteria": {
            "reg_event_type": "spdci-common:RegistryEventType:NewHouseHoldMember", "filter_type": "predicate",
            "filter": [{"seq_num": 1, "expression1": {"attribute_name": "district_id", "operator": "eq",
                                                     "attribute_value": str(person.district_id)}}],
            "notify_record_type": "Group"}}]}
    assert partner.post("/registry/subscribe", partner.envelope("subscribe", sub)).status_code == 202
    rt = client.app.state.dci
    with transaction(province) as s:
        subscriptions.process_events(s, rt)
        events.record(s, events.HOUSEHOLD_CHANGED, "household", person.household_id,
                      {"fields": ["member.added"], "individual_id": person.id, "feed": "nadra"})
    with transaction(province) as s:
        assert subscriptions.process_events(s, rt)["messages"] == 1
    url, notify = sent[-1]
    check_request("/registry/notify", notify)
    data = notify["message"]["notify_event"][0]["data"]
    assert data["reg_event_type"] == "NewHouseHoldMember"
    assert data["reg_records"]["@id"] == f"urn:isps:household:{person.household_id}"


# the spec's "format: date-time", written independently of the server's: RFC 3339 with a timezone
DATE_TIME = FormatChecker(formats=())
DATE_TIME.checks("date-time")(lambda v: not isinstance(v, str) or re.fullmatch(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", v) is not None)


@pytest.mark.parametrize("path", ["/registry/sync/search", "/registry/search"])
def test_timestamps_must_be_iso_8601_with_a_timezone(client, province, partner, sent, path):
    """The spec's ``format: date-time`` (ISO 8601 with a timezone) is enforced in the header's
    message_ts and every request's timestamp; the refusal says which and why."""
    person = _people(province, 1)[0]
    ok_offsets = partner.envelope("search", search_message({"type": "CNIC", "value": person.cnic}),
                                  message_ts="2022-12-04T17:20:07-04:00")
    assert partner.post(path, ok_offsets).status_code in (200, 202)
    for where, value in (("message_ts", "not-a-timestamp"), ("message_ts", "2026-12-07T10:00:00"),
                         ("timestamp", "not-a-timestamp"), ("timestamp", "2026-12-07T10:00:00"),
                         ("timestamp", "2026-12-07")):
        message = search_message({"type": "CNIC", "value": person.cnic})
        if where == "timestamp":
            message["search_request"][0]["timestamp"] = value
            body = partner.envelope("search", message)
        else:
            body = partner.envelope("search", message, message_ts=value)
        r = partner.post(path, body)
        assert r.status_code == 400, (where, value, r.text)
        error = r.json()["error"] if path.startswith("/registry/sync") else r.json()["message"]["error"]
        assert error["code"] == "err.request.bad" and "ISO 8601" in error["message"], error
        assert f"rjct.{where}.invalid" in error["message"]
        if path.startswith("/registry/sync") and where == "message_ts":
            assert r.json()["header"]["status_reason_code"] == "rjct.message_ts.invalid"


def test_envelopes_are_accepted_or_refused_exactly_as_the_spec_says(client, province, partner):
    """The server checks envelopes with the spec's schemas compiled once per process: every
    variation of a valid envelope (each value dropped or replaced by another type) gets the
    verdict the spec itself (jsonschema over the shared YAML) gives it."""
    from isps.interop.dci import envelope as env_mod

    person = _people(province, 1)[0]
    paths = {"/registry/sync/search": partner.envelope("search", search_message({"type": "CNIC", "value": person.cnic})),
             "/registry/subscribe": partner.envelope("subscribe", {"transaction_id": "t1", "subscribe_request": [{
                 "reference_id": "r1", "timestamp": now_ts(), "subscribe_criteria": {
                     "version": "1.0.0", "reg_type": "ns:isps:RegistryType:Social",
                     "reg_event_type": "ns:isps:RegistryEventType:death", "filter_type": "idtype-value",
                     "filter": {"type": "CNIC", "value": person.cnic}, "notify_record_type": "Member"}}]}),
             "/registry/sync/txn/status": partner.envelope("txn-status", {"transaction_id": "t1", "txnstatus_request": {
                 "reference_id": "r1", "txn_type": "search", "attribute_type": "transaction_id",
                 "attribute_value": "t1"}})}

    def variants(node, at=()):
        if isinstance(node, dict):
            for k, v in node.items():
                yield at, k, None
                yield from variants(v, at + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from variants(v, at + (i,))
        if at:
            for other in (None, 7, 1.5, True, "x", [], {}):
                yield at, None, other

    for path, good in paths.items():
        check = env_mod.request_check(path)
        verdicts = set()
        for at, drop, value in variants(good):
            body = json.loads(json.dumps(good))
            parent = body
            for k in at[:-1] if drop is None else at:
                parent = parent[k]
            if drop is not None:
                del parent[drop]
            else:
                parent[at[-1]] = value
            errors = list(Draft4Validator({"$ref": _ptr("paths", path, "post", "requestBody", "content",
                                                        "application/json", "schema")}, registry=REGISTRY,
                                          format_checker=DATE_TIME).iter_errors(body))
            assert check(body) is (not errors), (path, at, drop, value)
            verdicts.add(not errors)
        assert verdicts == {True, False}
    # and through HTTP: a refused variant is the spec's 400 err.request.bad, saying where it fails
    bad = json.loads(json.dumps(paths["/registry/sync/search"]))
    bad["message"]["search_request"][0]["search_criteria"]["pagination"] = "all"
    r = partner.post("/registry/sync/search", bad, check=False)
    assert r.status_code == 400 and r.json()["error"]["code"] == "err.request.bad"
    assert "message: fails" in r.json()["error"]["message"]


# ---------------------------------------------------------------- the partners CLI

@pytest.fixture
def cli(province, monkeypatch):
    """``isps partners`` on the test's database, in an 80-column terminal unless a test narrows it."""
    from typer.testing import CliRunner

    import isps.cli.common as common
    from isps.cli.main import app

    monkeypatch.setattr(common, "_engine", lambda: province)
    monkeypatch.setattr(common.console, "width", 80)
    return lambda *args: CliRunner().invoke(app, ["partners", *args])


def test_partners_register_prints_the_client_secret_whole_on_its_own_line(cli, province, monkeypatch):
    import isps.cli.common as common

    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setattr(common.console, "width", 40)  # what rich makes of COLUMNS=40
    r = cli("register", "a-rather-long-sender-id.example.gov.pk", "--name", "Example department",
            "--callback", "https://example.gov.pk/dci")
    assert r.exit_code == 0, r.output
    with transaction(province) as s:
        row = s.scalar(select(DciPartner).where(DciPartner.sender_id == "a-rather-long-sender-id.example.gov.pk"))
    lines = r.output.splitlines()
    secret = next(line for line in lines if line.strip() and " " not in line.strip() and len(line.strip()) >= 40)
    assert partners.verify_password(secret, row.client_secret_hash)
    assert row.client_id in r.output


def test_partners_consent_records_a_persons_consent_for_the_agreements_purpose(cli, province):
    person = _people(province, 1)[0]
    assert cli("register", PARTNER, "--name", "BISP SPMIS").exit_code == 0
    assert cli("agreement", PARTNER, "--reference", "DSA-1", "--purpose", "kafaalat-enrolment",
               "--fields", "identifier,name").exit_code == 0
    r = cli("consent", PARTNER, formatted(person.cnic), "--evidence", "form 7 signed at the Lahore counter")
    assert r.exit_code == 0, r.output
    with transaction(province) as s:
        rows = s.scalars(select(DciConsent)).all()
    assert [(c.individual_id, c.purpose, c.evidence) for c in rows] == [
        (person.id, "kafaalat-enrolment", "form 7 signed at the Lahore counter")]
    r = cli("consent", PARTNER, "35202-0000000-1")
    assert r.exit_code == 1 and f"no one in the registry holds {mask('3520200000001')}" in r.output, r.output
    r = cli("consent", "nobody.example", formatted(person.cnic))
    assert r.exit_code == 1 and "there is no partner 'nobody.example'" in r.output


# ---------------------------------------------------------------- test partners (conformance suites)

# what a conformance suite sends when it cannot sign with a key registered here
PLACEHOLDER_SIGNATURE = ('Signature:  namespace="spdci", kidId="{sender_id}|{unique_key_id}|{algorithm}", '
                         'algorithm="ed25519", created="1606970629", expires="1607030629", '
                         'headers="(created) (expires) digest", signature="Base64(signing content)')


def _register(engine, sender_id: str, **flags) -> Partner:
    key = ed25519.Ed25519PrivateKey.generate()
    with transaction(engine) as s:
        row, secret = partners.register_partner(s, sender_id, "conformance suite", CALLBACK, **flags)
        partners.add_key(s, row.id, "k1", "ed25519", signing.public_pem(key))
        partners.set_agreement(s, row.id, "SANDBOX-1", "conformance", FIELDS, False, "admin")
        client_id = row.client_id
    return Partner(None, sender_id, client_id, secret, key, "k1")


def test_test_partners_are_refused_unless_the_deployment_enables_them(client, province, monkeypatch):
    monkeypatch.delenv("ISPS_DCI_TEST_PARTNERS", raising=False)
    with pytest.raises(partners.PartnerError, match="ISPS_DCI_TEST_PARTNERS"):
        with transaction(province) as s:
            partners.register_partner(s, "suite.example", "suite", CALLBACK, test=True)
    with pytest.raises(partners.PartnerError, match="only a test partner"):
        with transaction(province) as s:
            partners.register_partner(s, "suite.example", "suite", CALLBACK, accept_unsigned=True)

    monkeypatch.setenv("ISPS_DCI_TEST_PARTNERS", "1")
    suite = _register(province, "suite.example", test=True)
    suite.client = client
    person = _people(province, 1)[0]
    assert suite.post("/registry/sync/search", suite.envelope("search", search_message(
        {"type": "CNIC", "value": person.cnic}))).status_code == 200
    # the setting switched off (a production deployment): the registered test partner is refused
    monkeypatch.setenv("ISPS_DCI_TEST_PARTNERS", "0")
    r = suite.post("/registry/sync/search", suite.envelope("search", search_message(
        {"type": "CNIC", "value": person.cnic})))
    assert r.status_code == 403 and "test partner" in r.json()["errors"][0]["message"]
    r = client.post("/dci/oauth2/client/token", data={"grant_type": "client_credentials",
                                                      "client_id": suite.client_id, "client_secret": suite.secret})
    assert r.status_code == 401


def test_a_placeholder_signature_passes_only_for_a_test_partner_accepting_unsigned(client, province, partner,
                                                                                   monkeypatch, sent):
    monkeypatch.setenv("ISPS_DCI_TEST_PARTNERS", "1")
    suite = _register(province, "suite.example", test=True, accept_unsigned=True)
    signed_only = _register(province, "signed.suite.example", test=True)
    suite.client = signed_only.client = client
    person = _people(province, 1)[0]

    def placeholder(p: Partner, path: str, action: str = "search"):
        body = p.envelope(action, search_message({"type": "CNIC", "value": person.cnic}))
        body["signature"] = PLACEHOLDER_SIGNATURE
        return p.post(path, body)

    r = placeholder(suite, "/registry/sync/search")
    assert r.status_code == 200 and r.json()["message"]["search_response"][0]["data"]["reg_records"]
    assert placeholder(suite, "/registry/search").status_code == 202 and sent[-1][1]["header"]["status"] == "succ"
    unsigned = suite.envelope("search", search_message({"type": "CNIC", "value": person.cnic}))
    del unsigned["signature"]
    assert suite.post("/registry/sync/search", unsigned).status_code == 200
    # never for a normal partner, nor for a test partner registered without --accept-unsigned
    for other in (partner, signed_only):
        r = placeholder(other, "/registry/sync/search")
        assert r.status_code == 401 and r.json()["errors"][0]["code"] == "err.signature.invalid"

    with transaction(province) as s:
        rows = s.scalars(select(AuditRecord).where(AuditRecord.channel == "dci")).all()
    mine = [a for a in rows if a.actor in ("suite.example", "signed.suite.example")]
    assert mine and all(a.detail and a.detail.startswith("test partner") for a in mine), \
        [(a.action, a.detail) for a in mine if not (a.detail or "").startswith("test partner")]
    assert {a.action for a in mine} >= {"dci.token", "dci.sync_search", "dci.search"}
    assert any("signature not checked" in a.detail for a in mine if a.entity == "dci_request")
    assert not any((a.detail or "").startswith("test partner") for a in rows if a.actor == PARTNER)


def test_partners_register_test_partner_from_the_cli(cli, province, monkeypatch):
    monkeypatch.delenv("ISPS_DCI_TEST_PARTNERS", raising=False)
    r = cli("register", "suite.example", "--name", "suite", "--test", "--accept-unsigned")
    assert r.exit_code == 1 and "ISPS_DCI_TEST_PARTNERS" in r.output
    monkeypatch.setenv("ISPS_DCI_TEST_PARTNERS", "1")
    r = cli("register", "suite.example", "--name", "suite", "--test", "--accept-unsigned")
    assert r.exit_code == 0 and "TEST PARTNER" in r.output, r.output
    with transaction(province) as s:
        row = s.scalar(select(DciPartner).where(DciPartner.sender_id == "suite.example"))
    assert row.test_partner and row.accept_unsigned


def test_dci_audit_actions_come_from_one_vocabulary():
    """A DCI audit row with an action outside access.service.DCI_ACTIONS is refused before it is written,
    as audit() refuses an officer's; every action the /dci routes write is in it."""
    import re
    from pathlib import Path

    from isps.access.service import DCI_ACTIONS
    from isps.interop.dci import service

    with pytest.raises(ValueError, match="dci.bogus"):
        service._dci_action("dci.bogus")
    written = set()
    for path in (Path(service.__file__).parent, Path(service.__file__).parents[2] / "api"):
        for f in path.glob("*.py"):
            written |= set(re.findall(r'"(dci\.[a-z_]+)"', f.read_text()))
    assert written and written <= DCI_ACTIONS, written - DCI_ACTIONS
