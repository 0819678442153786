"""ISPS as an OpenRosa server, driven as ODK Collect drives it (``tests/odk_collect.py``): devices
registered to a user and a district, the form list, forms, manifests and media, and submissions of
each of the four forms, on SQLite and PostgreSQL; a resubmission after a lost reply, a survey a week
late, a double post at the same moment, and every bad input refused with the OpenRosa answer a field
app shows. One province per backend, shared by the module's tests."""

from __future__ import annotations

import threading
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from isps.access.service import Principal, create_user
from isps.db import make_engine, session_factory, transaction
from isps.fieldwork import devices, forms, inbox
from isps.fieldwork.models import FieldDevice
from isps.migrate import upgrade
from isps.synth.load import load_synthetic
from tests.conftest import PASSWORD, _fresh_pg_schema
from tests.odk_collect import Collect, md5


SECRET = "test-secret"
SUPERVISOR = Principal("kasur_supervisor", "field_supervisor", 2)
NOW = datetime.now().replace(microsecond=0)


def _uuid() -> str:
    return f"uuid:{uuid.uuid4()}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory):
    """A 300-household province; a Kasur enumerator with a token device, a digest device and a revoked
    one; a survey assignment, an in-kind site with one line; a Lahore household for a wrong district."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('openrosa') / 'isps.db'}")
    else:
        engine = _fresh_pg_schema(request.getfixturevalue("pg_database"), "t_" + uuid.uuid4().hex[:8])
    upgrade(engine)
    load_synthetic(engine, 300, seed=7)
    with transaction(engine) as s:
        for name, role, district in (("kasur_supervisor", "field_supervisor", 2), ("kasur_enumerator", "enumerator", 2),
                                     ("kasur_counter", "counter_operator", 2), ("lahore_officer", "district_officer", 1),
                                     ("kasur_grievance", "grievance_officer", 2), ("admin", "administrator", None)):
            create_user(s, name, PASSWORD, role, district_id=district)
        phone, token = devices.register_device(s, SUPERVISOR, code="kasur-07", label="Samsung A12",
                                               username="kasur_enumerator")
        laptop, digest_token = devices.register_device(s, SUPERVISOR, code="kasur-08", label="Tablet",
                                                       username="kasur_enumerator")
        old, old_token = devices.register_device(s, SUPERVISOR, code="kasur-09", label="Lost phone",
                                                 username="kasur_enumerator")
        devices.revoke_device(s, SUPERVISOR, old.id)
        hh = s.execute(text("SELECT h.id, h.rooms FROM household h WHERE h.district_id = 2 AND EXISTS "
                            "(SELECT 1 FROM individual i WHERE i.household_id = h.id) ORDER BY h.id LIMIT 3")).all()
        lahore = s.execute(text("SELECT id FROM household WHERE district_id = 1 ORDER BY id LIMIT 1")).scalar_one()
        for row in hh[:2]:
            s.execute(text("INSERT INTO field_assignment (kind, enumerator, district_id, household_id, status, "
                           "assigned_by, assigned_at) VALUES ('survey', 'kasur_enumerator', 2, :h, 'open', "
                           "'kasur_supervisor', :at)"), {"h": row.id, "at": NOW})
        site = s.execute(text("INSERT INTO distribution_site (name, kind, district_id, created_by, created_at) VALUES "
                              "('UC Office Kasur-3', 'in_kind', 2, 'kasur_supervisor', :at) RETURNING id"),
                         {"at": NOW}).scalar_one()
        entry = s.execute(text("INSERT INTO distribution_entry (site_id, district_id, list_ref, household_id, item, "
                               "quantity, token) VALUES (:s, 2, 'ration:2026-12', :h, 'ration_pack', 1, 1) "
                               "RETURNING id"), {"s": site, "h": hh[2].id}).scalar_one()
        s.execute(text("INSERT INTO field_assignment (kind, enumerator, district_id, site_id, status, assigned_by, "
                       "assigned_at) VALUES ('site', 'kasur_enumerator', 2, :s, 'open', 'kasur_supervisor', :at)"),
                  {"s": site, "at": NOW})
    app = __import__("isps.api.app", fromlist=["create_app"]).create_app(engine, secret=SECRET)
    with TestClient(app) as client:
        yield {"engine": engine, "client": client, "token": token, "digest": ("kasur-08", digest_token),
               "old_token": old_token, "phone_id": phone.id, "households": [r.id for r in hh],
               "rooms": [r.rooms for r in hh], "lahore": lahore, "site": site, "entry": entry}
    engine.dispose()


def _phone(world) -> Collect:
    return Collect(world["client"], f"http://testserver/openrosa/key/{world['token']}")


def _one(world, sql: str, **params):
    with world["engine"].connect() as conn:
        return conn.execute(text(sql), params).first()


def _count(world, table: str) -> int:
    return _one(world, f"SELECT count(*) FROM {table}")[0]


def _survey(world, household: int, rooms: int, *, collected_at: datetime, instance_id: str | None = None,
            device_id: str = "collect:Zx9kq2LmP0aB7cDe") -> bytes:
    return forms.build_instance("isps_survey", {"consent": "yes", "survey_kind": "resurvey", "household_id": household,
                                                "district_id": 2, "rooms": rooms},
                                instance_id=instance_id or _uuid(), device_id=device_id,
                                collected_at=collected_at)


def test_devices_are_registered_by_supervisors_of_their_district_and_configure_collect(world):
    with transaction(world["engine"]) as s:
        device = s.get(FieldDevice, world["phone_id"])
        assert (device.username, device.district_id, device.active) == ("kasur_enumerator", 2, True)
        assert world["token"] not in (device.token_hash, device.digest_ha1)  # only hashes are kept
        refusals = [(Principal("kasur_enumerator", "enumerator", 2), dict(code="kasur-10", username="kasur_enumerator")),
                    (Principal("lahore_officer", "district_officer", 1), dict(code="kasur-10", username="kasur_enumerator"))]
        for who, args in refusals:
            with pytest.raises(PermissionError):
                devices.register_device(s, who, label="x", **args)
        for args, field in ((dict(code="kasur-07", username="kasur_enumerator"), "code"),
                            (dict(code="Bad code!", username="kasur_enumerator"), "code"),
                            (dict(code="kasur-11", username="kasur_counter"), "username"),
                            (dict(code="kasur-12", username="nobody"), "username")):
            with pytest.raises(devices.DeviceError) as exc:
                devices.register_device(s, SUPERVISOR, label="x", **args)
            assert exc.value.field == field
        settings = devices.collect_settings(device, world["token"], "https://isps.punjab.gov.pk/")
        assert settings["general"]["server_url"] == f"https://isps.punjab.gov.pk/openrosa/key/{world['token']}"
        import base64
        import json
        import zlib
        assert json.loads(zlib.decompress(base64.b64decode(devices.qr_payload(settings)))) == settings
        audited = s.execute(text("SELECT action, count(*) FROM audit_log WHERE entity = 'field_device' "
                                 "GROUP BY action ORDER BY action")).all()
        assert [tuple(r) for r in audited] == [("create", 3), ("revoke", 1)]
        # a device works only while its user is active and may collect
        create_user(s, "kasur_leaver", PASSWORD, "enumerator", district_id=2)
        _, leaver_token = devices.register_device(s, SUPERVISOR, code="kasur-20", label="x", username="kasur_leaver")
    assert world["client"].get(f"/openrosa/key/{leaver_token}/formList").status_code == 200
    with transaction(world["engine"]) as s:
        s.execute(text("UPDATE app_user SET active = false WHERE username = 'kasur_leaver'"))
    assert world["client"].get(f"/openrosa/key/{leaver_token}/formList").status_code == 403


def test_collect_gets_the_forms_with_their_media_by_token_and_by_digest(world):
    phone = _phone(world)
    listed = phone.form_list()
    assert {i["formID"]: i["version"] for i in listed} == {f.form_id: f.version for f in forms.catalogue()}
    blanks = phone.get_blank_forms()
    for spec in forms.catalogue():
        assert blanks[spec.form_id].xml == spec.xml
        assert set(blanks[spec.form_id].media) == set(spec.media)
    # the pre-loaded lists are this enumerator's: the assigned households, the site's line; CNICs masked
    import csv
    import io
    listed = list(csv.DictReader(io.StringIO(blanks["isps_survey"].media["households.csv"].decode("utf-8"))))
    assert sorted(int(r["name"]) for r in listed) == sorted(world["households"][:2])
    assert listed and all("*****" in r["head_cnic_masked"] for r in listed if r["head_cnic_masked"])
    entries = blanks["isps_receipt"].media["entries.csv"].decode("utf-8")
    assert str(world["entry"]) in entries
    # digest: the first request is challenged, the answer accepted; later ones reuse the challenge
    code, token = world["digest"]
    tablet = Collect(world["client"], "http://testserver/openrosa", code=code, token=token)
    first = tablet.get("http://testserver/openrosa/formList")
    assert first.status_code == 200 and [h.status_code for h in first.history] == [401]
    challenge = first.history[0].headers["WWW-Authenticate"]
    assert challenge.startswith('Digest realm="ISPS field devices"') and 'qop="auth"' in challenge
    assert first.history[0].headers["X-OpenRosa-Version"] == "1.0"
    again = tablet.get("http://testserver/openrosa/forms/isps_visit")
    assert again.status_code == 200 and not again.history and md5(again.content) == "md5:" + forms.form("isps_visit").md5
    assert _one(world, "SELECT last_seen_at FROM field_device WHERE code = 'kasur-08'")[0] is not None
    # the wrong token, an expired nonce (stale: Collect retries without asking), a revoked device
    wrong = Collect(world["client"], "http://testserver/openrosa", code=code, token="not-the-token")
    r = wrong.get("http://testserver/openrosa/formList")
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers and "wrong" in _message(r)
    old = devices.digest_challenge(SECRET, at=time.time() - 3600)
    stale = world["client"].get("/openrosa/formList", headers={
        "Authorization": devices.digest_response(code, token, old, "GET", "/openrosa/formList")})
    assert stale.status_code == 401 and "stale=true" in stale.headers["WWW-Authenticate"]
    revoked = Collect(world["client"], "http://testserver/openrosa", code="kasur-09", token=world["old_token"])
    assert revoked.get("http://testserver/openrosa/formList").status_code == 403
    for bad in (world["old_token"], "never-registered"):
        r = world["client"].get(f"/openrosa/key/{bad}/formList")
        assert r.status_code == 403 and "not registered" in _message(r)
    assert world["client"].get(f"/openrosa/key/{world['token']}/forms/isps_nothing").status_code == 404
    # media lists carry people's names: every download is audited
    assert _one(world, "SELECT count(*) FROM audit_log WHERE action = 'export' AND entity = 'field_media'")[0] >= 1


def _message(r) -> str:
    node = ET.fromstring(r.content).find("{http://openrosa.org/http/response}message")
    return node.text or ""


def test_each_form_is_submitted_as_collect_does_and_becomes_what_its_job_needs(world):
    phone = _phone(world)
    hh, rooms = world["households"][0], world["rooms"][0]
    new_rooms = (rooms or 0) + 3
    sent = phone.submit(_survey(world, hh, new_rooms, collected_at=NOW - timedelta(hours=2)))
    assert (sent.head_status, sent.status, sent.sent) == (204, 201, True), sent
    assert "accepted" in sent.message
    assert _one(world, "SELECT rooms FROM household WHERE id = :h", h=hh)[0] == new_rooms
    change = _one(world, "SELECT source, effective_date FROM value_change WHERE household_id = :h AND field = 'rooms' "
                         "ORDER BY id DESC", h=hh)
    assert change.source == "survey" and str(change.effective_date)[:10] == (NOW - timedelta(hours=2)).date().isoformat()
    assert _one(world, "SELECT odk_device_id FROM field_device WHERE id = :d", d=world["phone_id"])[0] \
        == "collect:Zx9kq2LmP0aB7cDe"

    # a receipt with its photo: the line is handed over once; the photo kept
    photo = b"\xff\xd8\xff\xe0" + b"p" * 5000
    receipt_id = _uuid()
    receipt = forms.build_instance("isps_receipt", {"site_id": world["site"], "entry_id": world["entry"],
                                                    "household_id": world["households"][2], "evidence": "fingerprint",
                                                    "photo": "1733650000.jpg"},
                                   instance_id=receipt_id, collected_at=NOW - timedelta(minutes=30))
    sent = phone.submit(receipt, {"1733650000.jpg": ("image/jpeg", photo)})
    assert sent.status == 201, sent
    line = _one(world, "SELECT handed_over_at, handed_over_by, evidence FROM distribution_entry WHERE id = :e",
                e=world["entry"])
    assert line.handed_over_at is not None and line.handed_over_by == "kasur_enumerator"
    assert _one(world, "SELECT a.size FROM field_attachment a JOIN field_submission s ON s.id = a.submission_id "
                       "WHERE s.instance_id = :i", i=receipt_id)[0] == len(photo)

    # the reply was lost: Collect sends the same instance again. 202, nothing changes
    before = (_count(world, "field_submission"), _count(world, "value_change"), _count(world, "field_attachment"))
    again = phone.submit(receipt, {"1733650000.jpg": ("image/jpeg", photo)})
    assert (again.status, again.sent) == (202, True) and again.message.startswith("Already received")
    assert (_count(world, "field_submission"), _count(world, "value_change"), _count(world, "field_attachment")) == before
    assert _one(world, "SELECT handed_over_at FROM distribution_entry WHERE id = :e", e=world["entry"])[0] \
        == line.handed_over_at

    # a second receipt for the same line (another instance): kept, refused, and the device told (202)
    dup = forms.build_instance("isps_receipt", {"site_id": world["site"], "entry_id": world["entry"],
                                                "household_id": world["households"][2], "evidence": "fingerprint"},
                               instance_id=_uuid(), collected_at=NOW)
    sent = phone.submit(dup)
    assert (sent.status, sent.sent) == (202, True) and "did NOT accept" in sent.message, sent

    # a grievance taken in the field, by digest
    code, token = world["digest"]
    tablet = Collect(world["client"], "http://testserver/openrosa", code=code, token=token, device_id="collect:tab8")
    grievance = forms.build_instance("isps_grievance", {"district_id": 2, "name": "Shazia Bibi", "phone": "03012345678",
                                                        "category": "payment_not_received",
                                                        "description": "The December payment did not come."},
                                     instance_id=_uuid(), collected_at=NOW - timedelta(hours=1))
    sent = tablet.submit(grievance)
    assert sent.challenged and sent.status == 201, sent
    assert _one(world, "SELECT count(*) FROM grievance WHERE description = 'The December payment did not come.'")[0] == 1
    assert _one(world, "SELECT odk_device_id FROM field_device WHERE code = 'kasur-08'")[0] == "collect:tab8"

    # a submission Collect split into two posts: kept at the first, applied when the last arrives
    split = forms.build_instance("isps_grievance", {"district_id": 2, "name": "Split", "phone": "03001234567",
                                                    "category": "staff_conduct", "description": "sent in two parts"},
                                 instance_id=_uuid(), collected_at=NOW)
    url = f"/openrosa/key/{world['token']}/submission"
    part = [("xml_submission_file", ("i.xml", split, "text/xml"))]
    first = world["client"].post(url, files=part, data={"*isIncomplete*": "yes"})
    assert first.status_code == 202 and "received" in _message(first)
    assert _one(world, "SELECT count(*) FROM grievance WHERE description = 'sent in two parts'")[0] == 0
    last = world["client"].post(url, files=part)
    assert last.status_code == 201 and "accepted" in _message(last)
    assert _one(world, "SELECT count(*) FROM grievance WHERE description = 'sent in two parts'")[0] == 1

    # a visit for an application nobody scheduled: kept, refused with the reason
    visit = forms.build_instance("isps_visit", {"application_id": 987654, "outcome": "confirmed"},
                                 instance_id=_uuid(), collected_at=NOW)
    sent = phone.submit(visit)
    assert (sent.status, sent.sent) == (202, True) and "987654" in sent.message
    kept = _one(world, "SELECT status, reason, username, district_id FROM field_submission WHERE job = 'visit'")
    assert kept.status == "refused" and "987654" in kept.reason and (kept.username, kept.district_id) == (
        "kasur_enumerator", 2)

    # a household of another district: refused by the device's district (and sent from another phone
    # with this device's token: the audit record says so)
    sent = phone.submit(_survey(world, world["lahore"], 2, collected_at=NOW, device_id="collect:AnotherPhone1"))
    assert sent.status == 202 and "did NOT accept" in sent.message and "district" in sent.message
    assert _one(world, "SELECT count(*) FROM audit_log WHERE action = 'submit' AND outcome = 'denied' AND detail "
                       "LIKE '%collect:AnotherPhone1, not the device''s collect:Zx9kq2LmP0aB7cDe%'")[0] == 1
    audited = _one(world, "SELECT count(*) FROM audit_log WHERE action = 'submit' AND entity = 'field_submission'")[0]
    assert audited >= 6


def test_a_survey_a_week_late_is_kept_as_history_without_overwriting_the_newer_value(world):
    phone = _phone(world)
    hh = world["households"][1]
    newer = 7
    assert phone.submit(_survey(world, hh, newer, collected_at=NOW - timedelta(days=1))).status == 201
    late = phone.submit(_survey(world, hh, 2, collected_at=NOW - timedelta(days=8)))
    assert late.sent
    assert _one(world, "SELECT rooms FROM household WHERE id = :h", h=hh)[0] == newer
    history = _one(world, "SELECT new_value, effective_date FROM value_change WHERE household_id = :h AND "
                          "field = 'rooms' AND source = 'survey' ORDER BY effective_date LIMIT 1", h=hh)
    assert str(history.new_value) == "2" and str(history.effective_date)[:10] == (NOW - timedelta(days=8)).date().isoformat()
    # a phone whose clock runs a year ahead: dated when received, not in the future
    ahead = _uuid()
    assert phone.submit(_survey(world, hh, 5, collected_at=NOW + timedelta(days=365), instance_id=ahead)).status == 201
    kept = _one(world, "SELECT collected_at, received_at FROM field_submission WHERE instance_id = :i", i=ahead)
    assert kept.collected_at == kept.received_at
    assert _one(world, "SELECT rooms FROM household WHERE id = :h", h=hh)[0] == 5


def test_bad_input_is_refused_with_the_answer_a_field_app_shows_and_nothing_half_written(world, monkeypatch):
    client, url = world["client"], f"/openrosa/key/{world['token']}/submission"
    before = _count(world, "field_submission"), _count(world, "field_attachment")

    def post(xml: bytes, files=None, **kw):
        return client.post(url, files=[("xml_submission_file", ("i.xml", xml, "text/xml"))] + (files or []), **kw)

    r = post(b"<isps_survey id='isps_survey'><meta><instanceID>uuid:1</instanceID></meta")
    assert r.status_code == 400 and "xml" in _message(r) and r.headers["X-OpenRosa-Version"] == "1.0"
    r = post(b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY x 'y'>]><isps_survey id='isps_survey'>&x;</isps_survey>")
    assert r.status_code == 400 and "DOCTYPE" in _message(r)
    r = post(b"<nope id='nope'><meta><instanceID>uuid:2</instanceID></meta></nope>")
    assert r.status_code == 400 and "nope" in _message(r)
    r = client.post(url, content=b"<isps_survey/>", headers={"Content-Type": "text/xml"})
    assert r.status_code == 400 and "multipart" in _message(r)
    r = client.post(url, files=[("photo.jpg", ("photo.jpg", b"x", "image/jpeg"))])
    assert r.status_code == 400 and "xml_submission_file" in _message(r)
    r = client.post(url, content=b"--x", headers={"Content-Type": "multipart/form-data"})  # no boundary
    assert r.status_code == 400 and "multipart" in _message(r)
    r = post(b"<a/>", [(f"f{i}.jpg", (f"f{i}.jpg", b"1", "image/jpeg")) for i in range(inbox.MAX_ATTACHMENTS + 5)])
    assert r.status_code == 413 and "files" in _message(r).lower()
    # not registered (token), not signed in (digest): 403, and 401 with a challenge
    r = client.post("/openrosa/key/never-registered/submission",
                    files=[("xml_submission_file", ("i.xml", b"<x/>", "text/xml"))])
    assert r.status_code == 403 and "not registered" in _message(r)
    r = client.head("/openrosa/submission")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Digest ")
    r = client.post("/openrosa/submission", files=[("xml_submission_file", ("i.xml", b"<x/>", "text/xml"))])
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Digest ")
    # an attachment too large, and a post larger than the server takes (refused before it is read)
    monkeypatch.setattr(inbox, "MAX_ATTACHMENT_BYTES", 20_000)
    receipt = forms.build_instance("isps_receipt", {"site_id": world["site"], "entry_id": world["entry"],
                                                    "household_id": world["households"][2], "evidence": "fingerprint",
                                                    "photo": "big.jpg"}, instance_id=_uuid(), collected_at=NOW)
    r = post(receipt, [("big.jpg", ("big.jpg", b"\xff" * 30_000, "image/jpeg"))])
    assert r.status_code == 413 and "big.jpg" in _message(r)
    monkeypatch.setattr(inbox, "MAX_POST_BYTES", 25_000)
    r = post(receipt, [("big.jpg", ("big.jpg", b"\xff" * 30_000, "image/jpeg"))])
    assert r.status_code == 413 and "MB" in _message(r)
    head = client.head(url)
    assert head.status_code == 204 and head.headers["X-OpenRosa-Accept-Content-Length"] == "25000"
    assert (_count(world, "field_submission"), _count(world, "field_attachment")) == before
    # a form version that no longer exists: kept (refused, with the reason), the device told to get the new form
    old = forms.build_instance("isps_grievance", {"district_id": 2, "name": "A", "phone": "03001234567",
                                                  "category": "data_error", "description": "old form"},
                               instance_id=_uuid(), version="2020010101", collected_at=NOW)
    r = post(old)
    assert r.status_code == 202 and "version 2020010101 is no longer accepted" in _message(r)
    assert _one(world, "SELECT status FROM field_submission WHERE form_version = '2020010101'")[0] == "refused"
    failed = _one(world, "SELECT count(*) FROM audit_log WHERE action = 'submit' AND outcome = 'failed'")[0]
    assert failed == 9  # each refusal above from the registered device


def test_the_same_instance_posted_twice_at_the_same_moment_is_stored_once(world):
    if world["engine"].dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: two writing transactions cannot race (as in the payment tests)")
    xml = forms.build_instance("isps_grievance", {"district_id": 2, "name": "Twice", "phone": "03001234567",
                                                  "category": "data_error", "description": "posted twice at once"},
                               instance_id=_uuid(), collected_at=NOW)
    factory = session_factory(world["engine"])
    barrier = threading.Barrier(2)
    receipts, errors = [], []

    def post():
        try:
            with factory() as s:
                device = s.get(FieldDevice, world["phone_id"])
                barrier.wait()
                receipts.append(inbox.receive(s, xml=xml, attachments={}, device=device))
                s.commit()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(r.duplicate for r in receipts) == [False, True]
    assert len({r.submission_id for r in receipts}) == 1
    assert _one(world, "SELECT count(*) FROM grievance WHERE description = 'posted twice at once'")[0] == 1
