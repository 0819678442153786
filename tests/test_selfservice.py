"""The citizen's sign-in by a one-time SMS code and the /my pages (no staff sign-in), both backends."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from isps.access.models import AuditRecord
from isps.citizen import signin
from isps.citizen.signin import CitizenCode, CitizenSession, SignInError
from isps.db import transaction
from isps.labour import registers
from isps.messaging.models import Message
from isps.registry import cnic as cnic_rules
from isps.registry.models import Individual
from tests.conftest import page_client

STRANGER = "923551234567"
T0 = datetime(2026, 6, 15, 10, 0)


@pytest.fixture
def outbox(monkeypatch):
    """The SMS the sign-in queues, as (phone, text, key)."""
    sent: list[dict] = []
    real = signin._enqueue

    def capture(session, **message):
        sent.append(message)
        real(session, **message)

    monkeypatch.setattr(signin, "_enqueue", capture)
    return sent


def _code(message: dict) -> str:
    return re.search(r"\b(\d{6})\b", message["text"]).group(1)


def _holder(s) -> Individual:
    return s.scalars(select(Individual).where(
        Individual.cnic.is_not(None), Individual.phone.is_not(None), Individual.date_of_death.is_(None),
        Individual.phone.in_(select(Individual.phone).group_by(Individual.phone).having(func.count() == 1)))
        .order_by(Individual.id)).first()


def _phone(p: Individual) -> str:
    return "92" + p.phone[1:]


def test_a_code_goes_only_to_a_registered_phone_is_hashed_and_signs_in_once(province, outbox):
    with transaction(province) as s:
        p = _holder(s)
        number, phone, pid = p.cnic, _phone(p), p.id
        assert signin.request_code(s, cnic_rules.formatted(number), phone, "10.0.0.1", T0, lang="en") is True
        assert signin.request_code(s, number, STRANGER, "10.0.0.2", T0) is False
    assert len(outbox) == 1 and outbox[0]["phone"] == phone and outbox[0]["key"].startswith("otp:")
    code = _code(outbox[0])
    with transaction(province) as s:
        queued = s.scalars(select(Message).where(Message.kind == "otp")).all()
        assert [(m.phone, m.key, m.status, m.individual_id) for m in queued] == [(phone, outbox[0]["key"], "queued", pid)]
        assert code in queued[0].text
        rows = list(s.scalars(select(CitizenCode).order_by(CitizenCode.id)))
        assert [r.sent for r in rows] == [True, False]
        assert all(code not in (r.code_hash or "") and code not in (r.salt or "") for r in rows)
        assert rows[0].address != "10.0.0.1"
        # the stranger's request answers every code exactly as a wrong code
        with pytest.raises(SignInError) as exc:
            signin.verify(s, number, STRANGER, code, T0 + timedelta(minutes=1))
        assert exc.value.reason == "code.wrong"
        token, citizen = signin.verify(s, number, phone, f"{code[:3]} {code[3:]}", T0 + timedelta(minutes=2))
        assert (citizen.individual_id, citizen.masked) == (pid, cnic_rules.mask(number))
        assert citizen.principal.username == f"citizen:{cnic_rules.mask(number)}"
        stored = s.scalar(select(CitizenSession))
        assert stored.token_hash != token and len(stored.token_hash) == 64
    with transaction(province) as s:
        with pytest.raises(SignInError):  # spent
            signin.verify(s, number, phone, code, T0 + timedelta(minutes=3))
        assert signin.citizen_of(s, token, T0 + timedelta(minutes=20)).individual_id == pid
        assert signin.citizen_of(s, token, T0 + signin.SESSION_LIFE + timedelta(minutes=3)) is None
        assert signin.citizen_of(s, "not-a-token", T0) is None
        signin.sign_out(s, token, T0 + timedelta(minutes=5))
        assert signin.citizen_of(s, token, T0 + timedelta(minutes=6)) is None
        acts = [(a.action, a.outcome) for a in s.scalars(select(AuditRecord).where(AuditRecord.role == "citizen")
                                                        .order_by(AuditRecord.id))]
    assert acts == [("send", "ok"), ("sign_in", "denied"), ("sign_in", "denied"), ("sign_in", "ok"),
                    ("sign_in", "denied"), ("sign_out", "ok")]


def test_a_code_expires_after_ten_minutes_and_five_wrong_tries_spend_it(province, outbox):
    with transaction(province) as s:
        p = _holder(s)
        number, phone = p.cnic, _phone(p)
        signin.request_code(s, number, phone, "a", T0)
    with transaction(province) as s:
        with pytest.raises(SignInError) as exc:
            signin.verify(s, number, phone, _code(outbox[0]), T0 + timedelta(minutes=10, seconds=1))
        assert exc.value.reason == "code.expired"
    with transaction(province) as s:
        signin.request_code(s, number, phone, "a", T0 + timedelta(minutes=11))
    code = _code(outbox[1])
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    reasons = []
    for i in range(5):
        with transaction(province) as s:
            try:
                signin.verify(s, number, phone, wrong, T0 + timedelta(minutes=12))
            except SignInError as exc:
                reasons.append(exc.reason)
    assert reasons == ["code.wrong"] * 4 + ["code.tries"]
    with transaction(province) as s:
        with pytest.raises(SignInError) as exc:  # even the right code, now
            signin.verify(s, number, phone, code, T0 + timedelta(minutes=12))
        assert exc.value.reason == "code.tries"
        assert s.scalar(select(func.count()).select_from(CitizenSession)) == 0


def test_codes_are_limited_per_phone_and_per_address_counting_refused_requests(province, outbox):
    with transaction(province) as s:
        p = _holder(s)
        number, phone = p.cnic, _phone(p)
        for i in range(signin.PHONE_LIMIT):
            signin.request_code(s, number, phone, f"10.0.0.{i}", T0 + timedelta(minutes=i))
        with pytest.raises(SignInError) as exc:
            signin.request_code(s, number, phone, "10.0.0.9", T0 + timedelta(minutes=4))
        assert exc.value.reason == "limit"
        # a new code replaced the older ones: only the newest is live
        live = s.scalars(select(CitizenCode).where(CitizenCode.used_at.is_(None), CitizenCode.sent.is_(True))).all()
        assert len(live) == 1
        for i in range(signin.ADDRESS_LIMIT):
            signin.request_code(s, number, f"9235500000{i:02d}", "10.9.9.9", T0)
        with pytest.raises(SignInError):
            signin.request_code(s, number, "923559999999", "10.9.9.9", T0)
        # after the window, the phone may ask again
        assert signin.request_code(s, number, phone, "10.0.0.1", T0 + signin.WINDOW + timedelta(minutes=5))
        with pytest.raises(SignInError) as exc:
            signin.request_code(s, "12345", phone, "10.0.0.1", T0)
        assert exc.value.reason == "cnic"
    assert len(outbox) == signin.PHONE_LIMIT + 1


# ---------------------------------------------------------------- the pages

@pytest.fixture
def web(province):
    from isps.api.app import create_app

    app = create_app(province, secret="test-secret")
    with page_client(app) as c:
        yield c


def _sign_in(web, province, outbox) -> tuple[Individual, str]:
    with transaction(province) as s:
        p = _holder(s)
        s.expunge(p)
    r = web.post("/my/code", data={"cnic": cnic_rules.formatted(p.cnic), "phone": p.phone})
    assert r.status_code == 200 and 'name="code"' in r.text
    r = web.post("/my/verify", data={"cnic": cnic_rules.formatted(p.cnic), "phone": p.phone,
                                     "code": _code(outbox[-1])}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/my/home"
    cookie = r.headers["set-cookie"]
    assert "isps_citizen=" in cookie and "Path=/my" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    return p, cookie


def test_the_pages_say_the_same_for_a_stranger_and_a_citizen_signs_in_and_sees_their_household(web, province, outbox):
    r = web.get("/my")
    assert r.status_code == 200 and 'name="cnic"' in r.text and 'name="phone"' in r.text
    with transaction(province) as s:
        p = _holder(s)
        number = p.cnic
    stranger = web.post("/my/code", data={"cnic": number, "phone": "0355-1234567"})
    assert stranger.status_code == 200 and not outbox
    bad = web.post("/my/code", data={"cnic": "12345", "phone": "0300-1234567"})
    assert bad.status_code == 422 and "13 digits" in bad.text
    badphone = web.post("/my/code", data={"cnic": number, "phone": "12"})
    assert badphone.status_code == 422 and "03XX-XXXXXXX" in badphone.text
    person, _ = _sign_in(web, province, outbox)
    assert stranger.text.replace(number, "").count("6-digit code") >= 1
    home = web.get("/my/home")
    assert home.status_code == 200
    assert person.full_name in home.text and cnic_rules.mask(person.cnic) in home.text and person.cnic not in home.text
    assert "PMT score band" in home.text and "Programs" in home.text
    with transaction(province) as s:
        reads = s.scalars(select(AuditRecord).where(AuditRecord.action == "read", AuditRecord.role == "citizen")).all()
    assert [(a.entity, a.entity_id, a.actor) for a in reads] == [
        ("household", person.household_id, f"citizen:{cnic_rules.mask(person.cnic)}")]


def test_no_staff_page_is_reachable_with_the_citizen_cookie(web, province, outbox):
    _, cookie = _sign_in(web, province, outbox)
    for path in ("/", "/search", "/households/1000000001", "/audit", "/programs"):
        r = web.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    # the staff API refuses it too
    assert web.get("/api/v1/households/1000000001").status_code == 401


def test_a_citizens_form_needs_the_sessions_token_and_the_quarterly_report_is_recorded(web, province, outbox):
    person, _ = _sign_in(web, province, outbox)
    home = web.get("/my/home")
    assert "Quarterly work report" not in home.text  # not on a labour register
    with transaction(province) as s:
        registers.enrol(s, s.get(Individual, person.id), "daily_wager", date(2026, 3, 1), "kasur_counter",
                        booth="B1", source_ref="test")
    home = web.get("/my/home")
    token = re.search(r'name="csrf_token" value="([^"]+)"', home.text).group(1)
    forged = web.post("/my/report", data={"status": "unemployed", "csrf_token": "nope"})
    assert forged.status_code == 403
    wrong = web.post("/my/report", data={"status": "astronaut", "csrf_token": token})
    assert wrong.status_code == 422 and "status" in wrong.text
    ok = web.post("/my/report", data={"status": "unemployed", "csrf_token": token})
    assert ok.status_code == 200 and "Your work report is recorded" in ok.text
    with transaction(province) as s:
        assert s.get(Individual, person.id).labour_status == "unemployed"
    out = web.post("/my/signout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert web.get("/my/home", follow_redirects=False).headers["location"].startswith("/my")


def test_the_public_receipt_check_refuses_a_mistyped_number_clearly(web):
    r = web.get("/my/status", params={"receipt": "OW10237"})
    assert r.status_code == 400 and "not a receipt number" in r.text
    r = web.get("/my/status", params={"receipt": ""})
    assert r.status_code == 200


def _csrf(web) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', web.get("/my/home").text).group(1)


def test_a_citizen_files_a_grievance_and_confirms_or_reopens_it_on_their_page(web, province, outbox):
    from isps.access.service import Principal
    from isps.citizen.grievances import service as grievances
    from isps.citizen.grievances.models import Grievance

    person, _ = _sign_in(web, province, outbox)
    token = _csrf(web)
    short = web.post("/my/grievance", data={"csrf_token": token, "category": "data_error", "description": "x"})
    wrong = web.post("/my/grievance", data={"csrf_token": token, "category": "bribery", "description": "a long story"})
    assert short.status_code == 422 and "description" in short.text
    assert wrong.status_code == 422 and "category" in wrong.text
    ok = web.post("/my/grievance", data={"csrf_token": token, "category": "data_error",
                                         "description": "My date of birth is wrong"})
    assert ok.status_code == 200 and "Your complaint is registered" in ok.text
    with transaction(province) as s:
        g = s.scalars(select(Grievance)).one()
        assert (g.channel, g.household_id, g.individual_id, g.category) == ("web", person.household_id, person.id,
                                                                          "data_error")
        grievances.resolve(s, Principal("admin", "administrator", None), g.id, root_cause="registry_data_error",
                           resolution="corrected from the CNIC")
        gid = g.id
        # another household's grievance, resolved too
        other = grievances.file_grievance(s, None, channel="counter", category="other", description="not theirs",
                                          district_id=1, actor="test")
        grievances.resolve(s, Principal("admin", "administrator", None), other.id, root_cause="other",
                           resolution="done")
        oid = other.id
    home = web.get("/my/home")
    assert f'action="/my/grievance/{gid}/confirm"' in home.text and "corrected from the CNIC" in home.text
    refused = web.post(f"/my/grievance/{oid}/confirm", data={"csrf_token": token, "satisfied": "no"})
    assert refused.status_code == 422 and "not one of yours" in refused.text
    reopen = web.post(f"/my/grievance/{gid}/confirm", data={"csrf_token": token, "satisfied": "no",
                                                             "note": "still wrong"})
    assert reopen.status_code == 200 and "reopened" in reopen.text
    with transaction(province) as s:
        assert (s.get(Grievance, gid).status, s.get(Grievance, oid).status) == ("reopened", "resolved")
        acts = [(a.action, a.outcome) for a in s.scalars(select(AuditRecord).where(
            AuditRecord.entity == "grievance", AuditRecord.role == "citizen").order_by(AuditRecord.id))]
    assert acts == [("file", "ok"), ("confirm", "denied"), ("reopen", "ok")]


def test_a_citizen_applies_for_a_program_and_follows_it_by_its_receipt(web, province, outbox):
    from isps.citizen.applications import Application

    person, _ = _sign_in(web, province, outbox)
    token = _csrf(web)
    home = web.get("/my/home")
    assert 'action="/my/apply"' in home.text
    bad = web.post("/my/apply", data={"csrf_token": token, "program": "no_such_program"})
    assert bad.status_code == 422 and "program" in bad.text
    code = re.search(r'<option value="([a-z_]+)">', home.text[home.text.index('id="program"'):]).group(1)
    ok = web.post("/my/apply", data={"csrf_token": token, "program": code})
    assert ok.status_code == 200 and "Your application is registered" in ok.text
    with transaction(province) as s:
        app = s.scalars(select(Application)).one()
        assert (app.kind, app.channel, app.household_id, app.program_code) == ("program", "web", person.household_id,
                                                                               code)
    receipt = re.search(r"receipt number is \u2066?(OW\d+)", ok.text).group(1)
    assert receipt in web.get("/my/home").text
    public = web.get("/my/status", params={"receipt": receipt})
    assert public.status_code == 200 and "Application" in public.text and person.full_name not in public.text
    unknown = web.get("/my/status", params={"receipt": receipt[:-1] + "0" if receipt[-1] != "0" else receipt[:-1] + "1"})
    assert unknown.status_code == 400  # a changed digit breaks the check digit


def test_a_citizen_stops_messages_and_starts_them_again(web, province, outbox):
    from isps.messaging import optout

    person, _ = _sign_in(web, province, outbox)
    token = _csrf(web)
    assert "Stop messages" in web.get("/my/home").text
    assert "sign-in code" in web.get("/my/home").text.lower()  # the code's own message is listed
    stop = web.post("/my/messages", data={"csrf_token": token, "wanted": "no"})
    assert stop.status_code == 200 and "Receive messages again" in stop.text
    with transaction(province) as s:
        assert optout.is_opted_out(s, "92" + person.phone[1:])
    again = web.post("/my/messages", data={"csrf_token": token, "wanted": "yes"})
    assert again.status_code == 200 and "Stop messages" in again.text
    with transaction(province) as s:
        assert not optout.is_opted_out(s, "92" + person.phone[1:])


def test_a_household_asks_to_be_registered_and_a_wrong_field_is_named(web, province):
    from isps.citizen.applications import Application

    page = web.get("/my/register")
    assert page.status_code == 200 and 'name="m1_full_name"' in page.text
    tehsil = re.search(r'<option value="(\d+)"', page.text[page.text.index('id="tehsil_id"'):]).group(1)
    form = {"phone": "0355-7654321", "tehsil_id": tehsil, "urban": "no", "address": "Mauza Kot, street 4",
            "tenure": "owned", "roof": "mud_thatch", "wall": "mud", "toilet": "none", "drinking_water": "hand_pump",
            "cooking_fuel": "wood", "rooms": "1", "cattle": "1",
            "m1_full_name": "Rashida Bibi", "m1_cnic": "35202-7654321-2", "m1_sex": "female",
            "m1_date_of_birth": "1985-02-01", "m1_marital_status": "widowed", "m1_education": "none",
            "m1_disability": "none", "m1_labour_status": "daily_wager",
            "m2_full_name": "Asif", "m2_sex": "male", "m2_date_of_birth": "2014-13-01", "m2_relation_to_head": "son",
            "m2_marital_status": "never_married", "m2_education": "primary", "m2_disability": "none",
            "m2_labour_status": "student", "m2_enrolled_in_school": "yes"}
    bad = web.post("/my/register", data=form)
    assert bad.status_code == 422 and "member 2" in bad.text and "date_of_birth" in bad.text
    assert 'value="Rashida Bibi"' in bad.text  # what was typed is kept
    with transaction(province) as s:
        assert s.scalars(select(Application)).first() is None
    form["m2_date_of_birth"] = "2014-03-01"
    ok = web.post("/my/register", data=form)
    assert ok.status_code == 200 and "Your request is received" in ok.text
    with transaction(province) as s:
        app = s.scalars(select(Application)).one()
        assert (app.kind, app.channel, app.status, app.household_id) == ("registration", "web", "open", None)
        assert [m["full_name"] for m in app.details["members"]] == ["Rashida Bibi", "Asif"]


def test_a_complaint_about_an_agent_without_a_known_outlet_is_filed_for_what_happened(web, province, outbox):
    from isps.citizen.grievances.models import Grievance

    _sign_in(web, province, outbox)
    r = web.post("/my/grievance", data={"csrf_token": _csrf(web), "category": "agent_deduction",
                                        "description": "The agent kept 1,000 rupees"})
    assert r.status_code == 200 and "Your complaint is registered" in r.text
    with transaction(province) as s:
        g = s.scalars(select(Grievance)).one()
    assert (g.category, g.outlet_id, g.channel) == ("payment_partial", None, "web")
