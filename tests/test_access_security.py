"""Issue 9, access and sessions: sign-in throttling and lockout, revocable sessions, CSRF,
security headers, the source of a user's edit, and the audit vocabulary."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from isps.access import service as access
from isps.access.models import AuditRecord
from isps.db import transaction
from isps.registry.models import Household
from tests.conftest import PASSWORD, token_for


def _audit(province, **where) -> list[AuditRecord]:
    with transaction(province) as s:
        stmt = select(AuditRecord).order_by(AuditRecord.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(AuditRecord, k) == v)
        return list(s.scalars(stmt))


def _token(client, username: str, password: str):
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_five_failures_lock_an_account_until_an_administrator_unlocks_it(client, province):
    for _ in range(access.ACCOUNT_FAILURES):
        assert _token(client, "lahore_officer", "wrong").status_code == 401
    locked = _token(client, "lahore_officer", PASSWORD)  # the right password no longer opens it
    assert locked.status_code == 403 and "locked" in locked.json()["detail"]
    web = client.post("/login", data={"username": "lahore_officer", "password": PASSWORD}, follow_redirects=False)
    assert web.status_code == 403  # both doors
    assert client.post("/api/v1/users/lahore_officer/unlock",
                       headers=token_for(client, "manager")).status_code == 403  # administrators only
    r = client.post("/api/v1/users/lahore_officer/unlock", headers=token_for(client, "admin"))
    assert r.status_code == 200 and r.json()["was_locked"] is True
    assert _token(client, "lahore_officer", PASSWORD).status_code == 200
    rows = _audit(province, action="sign_in")
    failed = [a for a in rows if a.outcome == "failed"]
    assert len(failed) == access.ACCOUNT_FAILURES and all("testclient" in a.detail for a in failed)
    assert any(a.outcome == "denied" and "locked" in a.detail for a in rows)
    assert any(a.outcome == "ok" and a.actor == "lahore_officer" for a in rows)
    assert not any(PASSWORD in (a.detail or "") or "wrong" == a.detail for a in rows)  # never the password
    assert _audit(province, action="unlock")[-1].actor == "admin"


def test_an_unknown_user_is_counted_and_locked_like_a_known_one(client):
    for _ in range(access.ACCOUNT_FAILURES):
        assert _token(client, "nobody.here", "x").status_code == 401
    assert _token(client, "nobody.here", "x").status_code == 403  # a lockout does not tell names apart


def test_one_address_is_refused_after_too_many_failures(client, monkeypatch):
    monkeypatch.setattr(access, "ADDRESS_FAILURES", 3)
    for i in range(3):
        assert _token(client, f"guess{i}", "x").status_code == 401
    r = _token(client, "admin", PASSWORD)
    assert r.status_code == 429 and "too many" in r.json()["detail"]


def test_unknown_user_and_wrong_password_both_run_the_pbkdf2(client, monkeypatch):
    access._dummy_hash()  # made once per process
    calls = []
    real = access.hash_password
    monkeypatch.setattr(access, "hash_password", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert _token(client, "no_such_user", "x").status_code == 401
    unknown = len(calls)
    assert _token(client, "admin", "wrong").status_code == 401
    assert unknown == 1 and len(calls) - unknown == 1


def test_a_session_cookie_dies_with_sign_out(client, province):
    r = client.post("/login", data={"username": "admin", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303
    cookie = client.cookies.get("isps_session")
    assert client.get("/", follow_redirects=False).status_code == 200
    assert client.post("/logout", follow_redirects=False).status_code == 303
    client.cookies.set("isps_session", cookie)  # a copy kept by someone else
    assert client.get("/", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me").status_code == 401
    assert _audit(province, action="sign_out")[-1].actor == "admin"


def test_a_bearer_token_dies_with_its_logout(client):
    headers = token_for(client, "auditor")
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert client.get("/api/v1/me", headers=token_for(client, "auditor")).status_code == 200  # others live on


def _household(province, district_id: int) -> int:
    with transaction(province) as s:
        return s.scalar(select(Household.id).where(Household.district_id == district_id).limit(1))


def test_a_form_from_another_site_or_without_the_token_is_refused_and_audited(client, province):
    from fastapi.testclient import TestClient

    hid = _household(province, 1)
    client.post("/login", data={"username": "lahore_officer", "password": PASSWORD})
    form = {"rooms": "4", "effective_date": "2026-03-01"}
    evil = client.post(f"/households/{hid}/edit", data=form, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    bare = TestClient(client.app)  # a page elsewhere: the browser sends the cookie, not the token
    bare.cookies.set("isps_session", client.cookies.get("isps_session"))
    assert bare.post(f"/households/{hid}/edit", data=form).status_code == 403
    assert bare.post(f"/households/{hid}/edit", data={**form, "csrf_token": "forged"}).status_code == 403
    refused = _audit(province, action="refused")
    assert len(refused) == 3 and all(a.actor == "lahore_officer" and a.outcome == "denied" for a in refused)
    assert "evil.example" in refused[0].detail and "anti-forgery" in refused[1].detail
    ok = client.post(f"/households/{hid}/edit", data=form, follow_redirects=False)  # as the page sends it
    assert ok.status_code in (303, 422) and len(_audit(province, action="refused")) == 3  # not refused


def test_the_pages_carry_the_token_in_forms_and_for_htmx(client, province):
    client.post("/login", data={"username": "lahore_officer", "password": PASSWORD})
    page = client.get(f"/households/{_household(province, 1)}").text
    token = client.app.state.tokens.csrf(client.cookies.get("isps_session"))
    assert f'name="csrf_token" value="{token}"' in page and f'"X-CSRF-Token": "{token}"' in page


def test_the_api_takes_no_writes_with_the_web_cookie(client, province):
    hid = _household(province, 1)
    client.post("/login", data={"username": "lahore_officer", "password": PASSWORD})
    assert client.get("/api/v1/me").status_code == 200  # reads (the Swagger UI) may use it
    r = client.patch(f"/api/v1/households/{hid}", json={"changes": {"rooms": 3}},
                     headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "Bearer" in r.json()["detail"]
    assert _audit(province, action="refused")[-1].actor == "lahore_officer"


def test_personal_data_is_not_cached_sniffed_or_framed(client):
    r = client.get("/api/v1/me", headers=token_for(client, "admin"))
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "same-origin"
    login = client.get("/login")
    assert login.headers["x-content-type-options"] == "nosniff" and login.headers["cache-control"] == "no-store"


def test_a_user_cannot_claim_to_be_a_data_provider(client, province):
    hid = _household(province, 2)
    headers = token_for(client, "kasur_counter")
    r = client.patch(f"/api/v1/households/{hid}", headers=headers,
                     json={"changes": {"rooms": 5}, "source": "nadra"})
    assert r.status_code == 422 and "source" in r.text
    ok = client.patch(f"/api/v1/households/{hid}", headers=headers, json={"changes": {"rooms": 5}})
    assert ok.status_code == 200
    history = client.get(f"/api/v1/households/{hid}/history", headers=headers).json()
    assert next(e for e in history if e["field"] == "rooms")["source"] == "operator"


def test_a_refused_search_for_another_district_is_audited(client, province):
    r = client.get("/api/v1/households", params={"district_id": 2}, headers=token_for(client, "lahore_officer"))
    assert r.status_code == 403
    client.post("/login", data={"username": "lahore_officer", "password": PASSWORD})
    client.get("/", params={"district_id": 2})
    rows = [a for a in _audit(province, action="search") if a.outcome == "denied"]
    assert [a.channel for a in rows] == ["api", "web"] and all("district 2" in a.detail for a in rows)


def test_a_role_refusal_is_audited(client, province):
    r = client.post("/api/v1/users/admin/unlock", headers=token_for(client, "auditor"))
    assert r.status_code == 403
    row = _audit(province, action="refused")[-1]
    assert row.actor == "auditor" and "users.manage" in row.detail


def test_the_audit_log_takes_only_its_vocabulary(province):
    who = access.Principal("admin", "administrator", None)
    with transaction(province) as s:
        with pytest.raises(ValueError, match="vocabulary"):
            access.audit(s, who, "api", "Read", "household")
        with pytest.raises(ValueError, match="outcome"):
            access.audit(s, who, "api", "read", "household", outcome="refused")


def test_an_administrator_unlocks_an_account_from_the_audit_page(client, province):
    for _ in range(access.ACCOUNT_FAILURES):
        _token(client, "kasur_counter", "wrong")
    client.post("/login", data={"username": "auditor", "password": PASSWORD})
    assert 'action="/users/unlock"' not in client.get("/audit").text
    assert client.post("/users/unlock", data={"username": "kasur_counter"}).status_code == 403
    client.post("/logout")
    client.post("/login", data={"username": "admin", "password": PASSWORD})
    assert 'action="/users/unlock"' in client.get("/audit").text
    r = client.post("/users/unlock", data={"username": "kasur_counter"})
    assert r.status_code == 200 and "kasur_counter: unlocked." in r.text
    assert _token(client, "kasur_counter", PASSWORD).status_code == 200
    outcomes = [(a.actor, a.outcome) for a in _audit(province, action="unlock")]
    assert outcomes == [("auditor", "denied"), ("admin", "ok")]


def test_refusals_outside_the_district_are_audited_at_every_door_of_the_api(client, province):
    """Taking an application, asking for a change or reading pickup slots for another district:
    refused, and each refusal is in the audit log with the district it was for."""
    kasur = token_for(client, "kasur_counter")
    lahore_household = _household(province, 1)
    app = client.post("/api/v1/applications", headers=kasur, json={
        "cnic": "35202-1234567-2", "full_name": "Razia Bibi", "district_id": 1, "tehsil_id": 1})
    change = client.post("/api/v1/change-requests", headers=kasur, json={
        "entity": "household", "entity_id": lahore_household, "changes": {"rooms": 2}, "evidence": "visit"})
    slots = client.get("/api/v1/districts/1/pickup", headers=kasur)
    assert (app.status_code, change.status_code, slots.status_code) == (403, 403, 403)
    denied = {(a.entity, a.action) for a in _audit(province, actor="kasur_counter", outcome="denied")}
    assert {("application", "create"), ("household", "create"), ("pickup_slot", "read")} <= denied
    assert all("refused" in a.detail for a in _audit(province, actor="kasur_counter", outcome="denied"))


def test_a_request_is_committed_before_its_answer_leaves(province):
    """The browser acts on an answer at once: a sign-in's redirect is followed before anything else
    happens, so the session it names must already be committed when the answer's first byte is sent
    (and a change whose commit failed must never have been answered "saved"). Driven at the ASGI level,
    where the moment the answer starts can be seen: there the sign-in's session row is looked for from
    another connection."""
    import asyncio
    from urllib.parse import urlencode

    from sqlalchemy import text

    from isps.api.app import create_app

    app = create_app(province, secret="commit-test-secret")
    seen: dict[str, object] = {}

    def sessions_of(username: str) -> int:
        with province.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM auth_session WHERE username = :u"),
                                {"u": username}).scalar_one()

    async def run() -> None:
        body = urlencode({"username": "auditor", "password": PASSWORD, "next": "/"}).encode()
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["sessions"] = await asyncio.to_thread(sessions_of, "auditor")

        scope = {"type": "http", "method": "POST", "path": "/login", "raw_path": b"/login", "query_string": b"",
                 "headers": [(b"host", b"testserver"), (b"content-type", b"application/x-www-form-urlencoded"),
                             (b"content-length", str(len(body)).encode())],
                 "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 5000), "root_path": "",
                 "http_version": "1.1", "asgi": {"version": "3.0"}}
        await app(scope, receive, send)

    before = sessions_of("auditor")
    asyncio.run(run())
    assert seen["status"] == 303
    assert seen["sessions"] == before + 1  # committed before the redirect went out
