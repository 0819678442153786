"""Field work offline in a real browser (issue 17): a laptop at a distribution site loses the network,
records hand-overs and a verification visit, and sends them when the network returns, each once.

Chromium (Debian's) driven by Playwright against the app under uvicorn, on SQLite (the submission
path itself runs on both backends in the inbox's and apply's tests). The network is switched off with
Playwright's offline mode (``context.set_offline``), which cuts the page and its service worker alike.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import text

from isps.access.service import Principal, create_user
from isps.db import make_engine, transaction
from isps.migrate import upgrade
from isps.synth.load import load_synthetic
from tests.conftest import PASSWORD
from tests.test_browser import WAIT_MS, browser, serve  # noqa: F401 (browser: the module's Chromium fixture)

pytestmark = pytest.mark.browser

OFFICER = Principal("kasur_officer", "district_officer", 2)
COUNTER = Principal("kasur_counter", "counter_operator", 2)
ENUMERATOR = "kasur_enumerator"
LINES = 21  # 20 handed over, one refused (the CNIC seen is not the recipient's)


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """A small province on SQLite with a Kasur in-kind site of 21 lines and one registration awaiting a
    visit by the enumerator."""
    from isps.citizen import applications as ap
    from isps.fieldwork import distribution

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('field_offline') / 'isps.db'}")
    upgrade(engine)
    load_synthetic(engine, 600, seed=7)
    with transaction(engine) as s:
        for name, role in (("kasur_officer", "district_officer"), ("kasur_counter", "counter_operator"),
                           (ENUMERATOR, "enumerator")):
            create_user(s, name, PASSWORD, role, district_id=2)
        households = list(s.execute(text(
            "SELECT h.id FROM household h JOIN individual i ON i.household_id = h.id AND i.roster_line = 1 "
            "WHERE h.district_id = 2 AND i.cnic IS NOT NULL ORDER BY h.id")).scalars())
        assert len(households) >= 11
        site = distribution.create_site(s, OFFICER, name="Govt. Girls High School, Kasur", kind="in_kind",
                                        district_id=2, opens_on=date.today())
        distribution.list_in_kind(s, OFFICER, site.id, list_ref="ration:2026-12", item="ration_pack", quantity=1,
                                  household_ids=households[:11])
        distribution.list_in_kind(s, OFFICER, site.id, list_ref="hygiene:2026-12", item="hygiene_kit", quantity=2,
                                  household_ids=households[:LINES - 11])
        site_id = site.id
        tehsil = s.execute(text("SELECT MIN(id) FROM tehsil WHERE district_id = 2")).scalar_one()
        head = {"full_name": "Ghulam Rasool", "father_husband_name": "Allah Ditta", "sex": "male",
                "date_of_birth": "1980-03-02", "relation_to_head": "head", "marital_status": "married",
                "education": "none", "enrolled_in_school": "no", "disability": "none",
                "labour_status": "daily_wager", "cnic": "35102-9876541-3", "phone": ""}
        form = {"tehsil_id": str(tehsil), "address": "House 4, Mohalla Islampura, Kasur", "urban": "no",
                "tenure": "rented", "rooms": "1", "roof": "mud_thatch", "wall": "mud", "toilet": "none",
                "drinking_water": "hand_pump", "electricity": "no", "cooking_fuel": "wood", "land_acres": "0",
                "cattle": "0", "goats_sheep": "1", "tractor": "no"}
        app = ap.open_application(s, COUNTER, kind="registration", channel="counter", district_id=2,
                                  applicant_name="Ghulam Rasool", phone="03001234567",
                                  details={"household": form, "members": [head]},
                                  evidence=[{"kind": "cnic_seen", "reference": "35102-9876541-3"}])
        ap.schedule_visit(s, OFFICER, app.id, date.today() + timedelta(days=1), ENUMERATOR)
        app_id = app.id
    yield {"engine": engine, "site": site_id, "application": app_id}
    engine.dispose()


def _cnic_of(engine, entry_id: int) -> str:
    with transaction(engine) as s:
        return s.execute(text("SELECT i.cnic FROM distribution_entry e JOIN individual i ON i.household_id = e.household_id "
                              "AND i.roster_line = 1 WHERE e.id = :e"), {"e": entry_id}).scalar_one()


def test_twenty_hand_overs_and_a_visit_recorded_offline_arrive_once(field, browser, tmp_path):
    engine, site = field["engine"], field["site"]
    shots = tmp_path
    with serve(engine) as base:
        context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB",
                                      service_workers="allow")
        context.set_default_timeout(WAIT_MS)
        foreign: list[str] = []
        errors: list[str] = []

        def own_origin_only(route):  # the context's routes see the service worker's requests too
            if route.request.url.startswith(base):
                route.continue_()
            else:
                foreign.append(route.request.url)
                route.abort()

        context.route(re.compile(r".*"), own_origin_only)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        ready = "#fo-page[data-ready=true]"

        page.goto(base + "/")
        page.get_by_label("Username").fill(ENUMERATOR)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(base + "/")

        # online: the visits page and the site's page are opened once, and kept by the service worker
        page.goto(base + "/field/offline/visits")
        page.locator(ready).wait_for()
        assert page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        receipt_url = f"{base}/field/offline/receipt?site={site}"
        page.goto(base + "/field/offline/receipt")  # the district's sites, to choose from
        page.screenshot(path=str(shots / "field_offline_sites_en.png"), full_page=True)
        page.get_by_role("link", name="Govt. Girls High School, Kasur").click()
        page.wait_for_url(receipt_url)
        page.locator(ready).wait_for()
        page.wait_for_function("navigator.serviceWorker.controller !== null")
        rows = page.locator("#fo-list tbody tr")
        assert rows.count() == LINES
        assert "*****" in rows.first.locator("td.mono").inner_text()  # CNICs masked
        page.screenshot(path=str(shots / "field_offline_receipt_en.png"), full_page=True)

        # the network goes; the page reloads from the service worker's cache, its list too
        context.set_offline(True)
        page.reload()
        page.locator(ready).wait_for()
        assert page.locator("#fo-network").get_attribute("data-state") == "offline"
        assert rows.count() == LINES

        entry_ids = [int(x) for x in rows.evaluate_all("els => els.map(e => e.dataset.id)")]
        tokens = rows.evaluate_all("els => els.map(e => e.cells[0].textContent)")
        dialog = page.locator("#fo-dialog")
        for n, (entry_id, token) in enumerate(zip(entry_ids, tokens)):
            page.locator("#fo-q").fill(token)  # found by token, as at the site's desk
            page.locator(f'#fo-list tr[data-id="{entry_id}"] button.fo-record').click()
            dialog.wait_for(state="visible")
            if n in (3, LINES - 1):  # CNIC seen: right for one, wrong for the last
                dialog.get_by_label("CNIC seen", exact=True).check()
                seen = _cnic_of(engine, entry_id) if n == 3 else "3510200000001"
                dialog.get_by_label("CNIC seen (13 digits)").fill(seen)
            dialog.get_by_role("button", name="Save the hand-over").click()
            dialog.wait_for(state="hidden")
        page.locator('#fo-waiting[data-waiting="21"]').wait_for()
        assert "21 waiting to send" in page.locator("#fo-waiting").inner_text()
        assert page.locator('#fo-list tr[data-state="waiting"]').count() == LINES
        page.screenshot(path=str(shots / "field_offline_waiting_en.png"), full_page=True)

        # the visit, recorded offline from its cached page
        page.goto(base + "/field/offline/visits")
        page.locator(ready).wait_for()
        visit_row = page.locator(f'#fo-list tr[data-id="{field["application"]}"]')
        visit_row.locator("button.fo-record").click()
        dialog.get_by_label("Confirmed as declared").check()
        dialog.get_by_label("Note (required unless confirmed)").fill("House and family as declared")
        dialog.get_by_role("button", name="Save the visit").click()
        page.locator('#fo-waiting[data-waiting="22"]').wait_for()
        with transaction(engine) as s:  # nothing has reached the server
            assert s.execute(text("SELECT COUNT(*) FROM field_submission")).scalar_one() == 0

        # the network returns: everything waiting is sent, from this page, once
        context.set_offline(False)
        page.locator('#fo-waiting[data-waiting="0"]').wait_for()
        assert page.locator('#fo-entries tbody tr[data-state="sent"]').count() == 1
        visit_row.wait_for(state="detached")  # done: the list, read again, no longer has it
        page.goto(receipt_url)
        page.locator(ready).wait_for()
        assert page.locator('#fo-list tr[data-state="handed_over"]').count() == LINES - 1
        refused = page.locator('#fo-list tr[data-state="refused"]')
        assert refused.count() == 1 and "cnic" in refused.inner_text().lower()
        assert page.locator('#fo-entries tbody tr[data-state="sent"]').count() == LINES - 1

        # a resend of an entry the server has (a reply lost on the way) is answered as done, nothing changes
        again = page.evaluate("""async () => {
            const db = await new Promise((ok) => { const r = indexedDB.open("isps-field-offline", 1); r.onsuccess = () => ok(r.result); });
            const all = await new Promise((ok) => { const r = db.transaction("entries").objectStore("entries").getAll(); r.onsuccess = () => ok(r.result); });
            const e = all.find((x) => x.job === "receipt" && x.state === "sent");
            const who = await (await fetch("/field/offline/session")).json();
            const r = await fetch("/field/offline/submit", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": who.csrf},
                body: JSON.stringify({job: e.job, instance_id: e.instance_id, collected_at: e.collected_at, values: e.values})});
            return [r.status, await r.json()];
        }""")
        assert again[0] == 200 and again[1]["duplicate"] is True and again[1]["status"] == "accepted"

        with transaction(engine) as s:
            handed = s.execute(text("SELECT COUNT(*), COUNT(DISTINCT submission_id) FROM distribution_entry "
                                    "WHERE site_id = :s AND handed_over_at IS NOT NULL AND handed_over_by = :u"),
                               {"s": site, "u": ENUMERATOR}).one()
            assert tuple(handed) == (LINES - 1, LINES - 1)
            subs = s.execute(text("SELECT job, status, channel, COUNT(*), COUNT(DISTINCT instance_id) FROM field_submission "
                                  "GROUP BY job, status, channel ORDER BY job, status")).all()
            assert [tuple(r) for r in subs] == [("receipt", "accepted", "browser", LINES - 1, LINES - 1),
                                                ("receipt", "refused", "browser", 1, 1),
                                                ("visit", "accepted", "browser", 1, 1)]
            step = s.execute(text("SELECT done_by, outcome FROM application_step WHERE application_id = :a "
                                  "AND name = 'verify'"), {"a": field["application"]}).one()
            assert step.done_by == ENUMERATOR
            collected = s.execute(text("SELECT MIN(collected_at) FROM field_submission")).scalar_one()
            assert str(collected)[:4] == str(datetime.now().year)

        page.screenshot(path=str(shots / "field_offline_sent_en.png"), full_page=True)
        # in Urdu, right to left
        page.goto(f"{base}/lang/ur?" + urlencode({"next": f"/field/offline/receipt?site={site}"}))
        page.locator(ready).wait_for()
        assert page.locator("html").get_attribute("dir") == "rtl"
        assert page.locator('#fo-list tr[data-state="handed_over"]').first.inner_text().strip()
        page.screenshot(path=str(shots / "field_offline_receipt_ur.png"), full_page=True)
        page.goto(base + "/field/offline/visits")
        page.locator(ready).wait_for()
        page.screenshot(path=str(shots / "field_offline_visits_ur.png"), full_page=True)

        # signing out from an offline page drops the pages and lists kept on the laptop (names), not the scripts
        page.locator("form[action='/logout'] button").click()
        page.wait_for_url("**/login")
        kept = page.evaluate("""async () => (await (await caches.open("isps-field-offline-v1")).keys())
                                 .map((k) => new URL(k.url).pathname)""")
        assert not [p for p in kept if p.startswith("/field/offline/")] and "/static/field_offline/offline.js" in kept

        assert not foreign, foreign
        assert not [e for e in errors if "Failed to load resource" not in e], errors
        context.close()
    _copy_shots(shots)


def _copy_shots(shots) -> None:
    import os
    import shutil
    from pathlib import Path

    extra = os.environ.get("ISPS_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("field_offline_*.png"):
            shutil.copy(shot, Path(extra) / shot.name)


def test_the_submit_door_refuses_what_cannot_be_an_entry(field):
    """Without a browser: an entry that can never be a submission is refused naming its field (422), not
    kept; a forged post (no anti-forgery token) is refused; a user outside the district cannot read the list."""
    from tests.conftest import page_client
    from isps.api.app import create_app

    with transaction(field["engine"]) as s:
        create_user(s, "lahore_enumerator", PASSWORD, "enumerator", district_id=1)
    app = create_app(field["engine"], secret="offline-test-secret")
    with page_client(app) as c:
        r = c.post("/login", data={"username": "lahore_enumerator", "password": PASSWORD})
        assert r.status_code in (200, 303)
        r = c.get(f"/field/offline/data?site={field['site']}")
        assert r.status_code == 403 and "not in your district" in r.json()["error"]
        assert c.get(f"/field/offline/receipt?site={field['site']}").status_code == 403
        bad = [({"job": "receipt", "instance_id": "12", "collected_at": "2026-12-08T10:00:00", "values": {}}, "instance_id"),
               ({"job": "survey", "instance_id": "uuid:" + "0" * 8 + "-0000-4000-8000-" + "0" * 12,
                 "collected_at": "2026-12-08T10:00:00", "values": {}}, "job"),
               ({"job": "receipt", "instance_id": "uuid:11111111-2222-4333-8444-555555555555",
                 "collected_at": "2026-12-08T10:00:00",
                 "values": {"site_id": "1", "entry_id": "1", "household_id": "1", "evidence": "cnic", "cnic_seen": "12"}},
                "cnic_seen"),
               ({"job": "visit", "instance_id": "uuid:11111111-2222-4333-8444-555555555556",
                 "collected_at": "yesterday", "values": {"application_id": "1", "outcome": "confirmed"}}, "collected_at")]
        for payload, named in bad:
            r = c.post("/field/offline/submit", content=json.dumps(payload), headers={"Content-Type": "application/json"})
            assert r.status_code == 422 and named in r.json()["message"], (payload, r.text)
        r = c.post("/field/offline/submit", content=b"not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and "JSON object" in r.json()["message"]
        forged = c.post("/field/offline/submit", content=json.dumps(bad[0][0]),
                        headers={"Content-Type": "application/json", "X-CSRF-Token": "forged"})
        assert forged.status_code == 403
    with transaction(field["engine"]) as s:
        assert s.execute(text("SELECT COUNT(*) FROM field_submission WHERE username = 'lahore_enumerator'")).scalar_one() == 0


def test_every_label_the_page_script_shows_is_in_both_languages():
    """The script's labels come from the page (``SCRIPT_LABELS``): each one it names is handed to it,
    and each has its English and Urdu text, so the offline page never shows a key."""
    from pathlib import Path

    from isps.web import field_offline, lang

    script = (Path(field_offline.STATIC) / "offline.js").read_text(encoding="utf-8")
    named = set(re.findall(r'label\("([a-z_.]+)"', script))
    named |= {f"{kind}.{code}" for kind, codes in (("outcome", ("confirmed", "not_found", "different")),
                                                   ("evidence", ("fingerprint", "cnic"))) for code in codes}
    assert named <= set(field_offline.SCRIPT_LABELS), sorted(named - set(field_offline.SCRIPT_LABELS))
    for code in lang.LANGUAGES:
        missing = [k for k in field_offline.SCRIPT_LABELS if f"fo.js.{k}" not in lang.catalogue(code)]
        assert not missing, (code, missing)



@pytest.fixture
def small(engine):
    """A few Kasur households on the parametrised backend, and the enumerator (conftest's province,
    without its scoring: these checks need none)."""
    load_synthetic(engine, 200, seed=7)
    with transaction(engine) as s:
        create_user(s, ENUMERATOR, PASSWORD, "enumerator", district_id=2)
    return engine


def test_the_offline_door_on_both_backends(small):
    """What the laptop's page does, without the page, on SQLite and PostgreSQL: the site's list (CNICs
    masked), my visits, one hand-over sent, its resend answered as done, a second entry for the same
    line refused (handed over once), all kept as browser submissions."""
    from isps.api.app import create_app
    from isps.fieldwork import distribution
    from tests.conftest import page_client

    province = small
    with transaction(province) as s:
        households = list(s.execute(text("SELECT id FROM household WHERE district_id = 2 ORDER BY id LIMIT 2")).scalars())
        site = distribution.create_site(s, OFFICER, name="UC office, Kasur", kind="in_kind", district_id=2)
        distribution.list_in_kind(s, OFFICER, site.id, list_ref="ration:2026-12", item="ration_pack", quantity=1,
                                  household_ids=households)
        site_id = site.id
    with page_client(create_app(province, secret="offline-test-secret")) as client:
        r = client.post("/login", data={"username": ENUMERATOR, "password": PASSWORD})
        assert r.status_code in (200, 303)
        listed = client.get(f"/field/offline/data?site={site_id}").json()
        assert [e["household_id"] for e in listed["entries"]] == [str(h) for h in households]
        assert all("*****" in e["cnic"] or not e["cnic"] for e in listed["entries"]) and listed["entries"][0]["members"]
        assert client.get("/field/offline/data?list=visits").json() == {"visits": []}
        line = listed["entries"][0]

        collected = (datetime.now() - timedelta(days=2)).replace(microsecond=0)  # sent two days after

        def entry(instance: str) -> dict:
            return {"job": "receipt", "instance_id": instance, "collected_at": collected.isoformat(),
                    "values": {"site_id": str(site_id), "entry_id": str(line["id"]), "household_id": line["household_id"],
                               "evidence": "fingerprint", "cnic_seen": "", "received_by": ""}}

        first = entry("uuid:6f1c2d3e-4a5b-4c6d-8e7f-001122334455")
        sent = client.post("/field/offline/submit", json=first).json()
        assert (sent["status"], sent["duplicate"]) == ("accepted", False)
        again = client.post("/field/offline/submit", json=first).json()
        assert (again["status"], again["duplicate"]) == ("accepted", True)
        other = client.post("/field/offline/submit", json=entry("uuid:6f1c2d3e-4a5b-4c6d-8e7f-001122334466")).json()
        assert other["status"] == "refused" and str(line["id"]) in other["message"]
    with transaction(province) as s:
        rows = s.execute(text("SELECT status, channel, collected_at FROM field_submission ORDER BY id")).all()
        assert [(r.status, r.channel) for r in rows] == [("accepted", "browser"), ("refused", "browser")]
        assert str(rows[0].collected_at)[:19] == str(collected)  # the day it was collected, not received
        assert s.execute(text("SELECT COUNT(*) FROM distribution_entry WHERE handed_over_at IS NOT NULL")).scalar_one() == 1
