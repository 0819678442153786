"""The web app as an officer, a counter operator and an auditor use it, on both backends.

Each test signs in through the form, keeps the session cookie, and checks what the
page shows; where a number matters (score parts, search filters) it reads the
``data-`` attributes the templates put beside the visible text.
"""

from __future__ import annotations

import html
import json
import re

import pytest
from sqlalchemy import select, text

from isps.access.models import AuditRecord
from isps.access.service import ROLE_LABELS
from isps.db import transaction
from isps.registry import cnic as cnic_rules
from isps.registry import vocab
from isps.registry.models import District, Household, Individual, ValueChange
from isps.targeting import pmt
from isps.targeting.models import PmtScore
from isps.web import lang
from tests.conftest import PASSWORD

FULL_CNIC = re.compile(r"\b\d{5}-\d{7}-\d\b")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def sign_in(client, username: str) -> None:
    r = client.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert client.cookies.get("isps_session")


def text_of(page: str) -> str:
    """The visible text of a page, whitespace collapsed."""
    page = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page))).strip()


def scalar(engine, sql: str, **params):
    with transaction(engine) as s:
        return s.execute(text(sql), params).scalar_one()


def denied(engine, actor: str, action: str) -> int:
    """How many web requests of ``actor`` for ``action`` were refused and audited."""
    return scalar(engine, "SELECT COUNT(*) FROM audit_log WHERE actor = :a AND action = :x AND outcome = 'denied' "
                          "AND channel = 'web'", a=actor, x=action)


def as_user(client, username: str) -> None:
    client.cookies.clear()
    sign_in(client, username)


def post(client, url: str, **data):
    return client.post(url, data=data, follow_redirects=False)


def result_rows(page: str) -> list[dict]:
    rows = re.findall(r'<tr data-household="(\d+)" data-district="(\d+)"(?: data-score="([\d.]+)")?', page)
    return [{"id": int(i), "district_id": int(d), "score": float(s) if s else None} for i, d, s in rows]


def more_link(page: str) -> str | None:
    m = re.search(r'<tr id="more-row".*?hx-get="([^"]+)"', page, flags=re.S)
    return html.unescape(m.group(1)) if m else None


def first_household(engine, district_id: int, low: float = 0, high: float = 100) -> Household:
    with transaction(engine) as s:
        model = pmt.active_model(s)
        return s.scalars(select(Household).join(PmtScore, (PmtScore.household_id == Household.id)
                                                & (PmtScore.model_id == model.id))
                         .where(Household.district_id == district_id, PmtScore.score.between(low, high))
                         .order_by(Household.id)).first()


def score_on_page(page: str) -> float:
    return float(re.search(r'class="score-value" data-score="([\d.]+)"', page).group(1))


# ---------------------------------------------------------------- signing in

def test_a_wrong_password_is_refused_with_a_message(client):
    r = client.post("/login", data={"username": "admin", "password": "nope"})
    assert "wrong username or password" in text_of(r.text)
    assert 'name="username"' in r.text and 'value="admin"' in r.text
    assert not client.cookies.get("isps_session")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_pages_send_a_signed_out_browser_to_sign_in(client, province):
    hh = first_household(province, 1)
    r = client.get(f"/households/{hh.id}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=%2Fhouseholds%2F{hh.id}"
    r = client.get("/search/results", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/?x=1"})
    assert r.status_code == 401 and r.headers["HX-Redirect"].startswith("/login?next=")
    page = client.get("/login?next=//evil.example/").text
    assert 'name="next" value="/"' in page  # only local paths are followed after sign-in


def test_sign_in_sets_a_protected_cookie_and_returns_to_the_page(client, province):
    hh = first_household(province, 1)
    r = client.post("/login", data={"username": "lahore_officer", "password": PASSWORD,
                                    "next": f"/households/{hh.id}"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/households/{hh.id}"
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith("isps_session=") and "httponly" in cookie and "samesite=lax" in cookie
    page = client.get(f"/households/{hh.id}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store" and "default-src 'self'" in page.headers["content-security-policy"]
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get(f"/households/{hh.id}", follow_redirects=False).status_code == 303


def test_the_header_shows_who_is_signed_in_and_what_they_may_open(client):
    sign_in(client, "lahore_officer")
    top = text_of(client.get("/").text.split("</header>")[0])
    assert "lahore_officer" in top and "District officer" in top and "Lahore" in top and "Sign out" in top
    assert "Search the registry" in top and "API docs" in top and "Audit log" not in top
    sign_in(client, "auditor")
    top = text_of(client.get("/").text.split("</header>")[0])
    assert "Auditor" in top and "All Punjab" in top and "Audit log" in top


# ---------------------------------------------------------------- search

def test_search_filters_by_district_and_pmt_and_pages_with_more(client, province):
    sign_in(client, "manager")
    seen, url = [], "/search/results?district_id=1&pmt_max=40"
    first = client.get(url, headers={"HX-Request": "true"})
    assert first.headers["HX-Push-Url"] == "/search?district_id=1&pmt_max=40"
    page = first.text
    while True:
        seen += result_rows(page)
        assert not FULL_CNIC.search(page), "CNICs in lists must be masked"
        url = more_link(page)
        if url is None:
            break
        page = client.get(url, headers={"HX-Request": "true"}).text
    assert seen and all(r["district_id"] == 1 and r["score"] <= 40 for r in seen)
    assert len({r["id"] for r in seen}) == len(seen)
    with transaction(province) as s:
        model = pmt.active_model(s)
        expected = s.scalars(select(Household.id).join(PmtScore, (PmtScore.household_id == Household.id)
                                                       & (PmtScore.model_id == model.id))
                             .where(Household.district_id == 1, PmtScore.score <= 40)).all()
        searches = s.scalars(select(AuditRecord).where(AuditRecord.action == "search",
                                                       AuditRecord.actor == "manager")).all()
    assert sorted(r["id"] for r in seen) == sorted(expected)
    assert searches and all(a.channel == "web" and a.district_id == 1 for a in searches)
    assert "*****" in page or "*****" in first.text


def test_the_search_page_renders_results_without_javascript(client):
    sign_in(client, "manager")
    page = client.get("/", params={"search": "1", "district_id": "2", "pmt_min": "30", "pmt_max": "60"}).text
    rows = result_rows(page)
    assert rows and all(r["district_id"] == 2 and 30 <= r["score"] <= 60 for r in rows)
    assert "Kasur" in text_of(page)
    bad = client.get("/search/results", params={"pmt_min": "abc"}).text
    assert "Lowest score must be a number from 0 to 100" in text_of(bad)


def test_a_district_user_searches_only_their_district(client):
    sign_in(client, "kasur_counter")
    page = client.get("/search").text
    select_html = re.search(r'<select id="district_id"[^>]*>.*?</select>', page, flags=re.S).group(0)
    assert "disabled" in select_html and "Kasur" in select_html and "Lahore" not in select_html
    rows = result_rows(client.get("/search/results").text)
    assert rows and all(r["district_id"] == 2 for r in rows)
    refused = client.get("/search/results", params={"district_id": "1"}).text
    assert "You can search only your own district" in text_of(refused) and not result_rows(refused)
    options = client.get("/search/tehsils", params={"district_id": "1"}).text
    assert "Chunian" in options and "Model Town" not in options  # Kasur's tehsils, whatever was asked


def test_a_cnic_goes_to_the_persons_household(client, province):
    with transaction(province) as s:
        person = s.scalars(select(Individual).where(Individual.district_id == 2, Individual.cnic.is_not(None))
                           .order_by(Individual.id)).first()
    sign_in(client, "kasur_counter")
    r = client.post("/search/cnic", data={"cnic": cnic_rules.formatted(person.cnic)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/households/{person.household_id}#person-{person.id}"
    r = client.post("/search/cnic", data={"cnic": person.cnic}, headers={"HX-Request": "true"})
    assert r.headers["HX-Redirect"] == f"/households/{person.household_id}#person-{person.id}"
    bad = client.post("/search/cnic", data={"cnic": "12345"}, headers={"HX-Request": "true"}).text
    assert "13 digits" in text_of(bad)
    sign_in(client, "lahore_officer")
    refused = client.post("/search/cnic", data={"cnic": person.cnic}, headers={"HX-Request": "true"}).text
    assert "registered outside your district" in text_of(refused) and person.full_name not in refused
    with transaction(province) as s:
        lookups = s.scalars(select(AuditRecord).where(AuditRecord.action == "lookup_cnic")).all()
    assert {(a.actor, a.outcome, a.channel) for a in lookups} == {("kasur_counter", "ok", "web"),
                                                                  ("lahore_officer", "denied", "web")}


# ---------------------------------------------------------------- the household page

def test_the_household_page_shows_members_score_parts_and_history(client, province):
    hh = first_household(province, 1)
    with transaction(province) as s:
        members = s.scalars(select(Individual).where(Individual.household_id == hh.id)).all()
        expected = pmt.breakdown(s, hh.id)
    sign_in(client, "lahore_officer")
    r = client.get(f"/households/{hh.id}")
    assert r.status_code == 200
    page, text = r.text, text_of(r.text)
    assert hh.address in text and hh.ref in text and "Lahore" in text
    for m in members:
        assert m.full_name in text
        if m.cnic:  # the whole CNIC is shown here, on the person's record
            assert cnic_rules.formatted(m.cnic) in text
    assert "Head" in text and ("Male" in text or "Female" in text)
    # the score, and the parts that make it
    score = score_on_page(page)
    assert score == pytest.approx(expected.score, abs=1e-3)
    assert f"Model {expected.model}, version {expected.model_version}" in text
    parts = [float(p) for p in re.findall(r'data-part="[^"]+" data-points="(-?[\d.]+)"', page)]
    assert len(parts) == len(expected.contributions) + 1  # every indicator and the base points
    total = float(re.search(r'data-total="(-?[\d.]+)"', page).group(1))
    assert sum(parts) == pytest.approx(total, abs=1e-4)
    if 0 < expected.score < 100:
        assert sum(parts) == pytest.approx(score, abs=1e-3)
    assert f"{expected.base_points:+.2f}" in text and "Base points" in text
    # history: the first registration
    history = re.search(r'<table class="data" id="history">.*?</table>', page, flags=re.S).group(0)
    assert "Registered" in text_of(history) and "Synthetic data" in text_of(history)
    with transaction(province) as s:
        reads = s.scalars(select(AuditRecord).where(AuditRecord.entity_id == hh.id)).all()
    assert [(a.actor, a.action, a.outcome, a.channel) for a in reads] == [("lahore_officer", "read", "ok", "web")]


def test_another_districts_household_is_refused_and_the_refusal_audited(client, province):
    other = first_household(province, 2)
    sign_in(client, "lahore_officer")
    r = client.get(f"/households/{other.id}")
    assert r.status_code == 403
    assert "outside your district" in text_of(r.text)
    with transaction(province) as s:
        names = s.scalars(select(Individual.full_name).where(Individual.household_id == other.id)).all()
        denied = s.scalars(select(AuditRecord).where(AuditRecord.outcome == "denied")).all()
    assert not any(n in r.text for n in names)
    assert [(a.actor, a.entity, a.entity_id, a.channel) for a in denied] == [
        ("lahore_officer", "household", other.id, "web")]


def test_an_unknown_household_is_a_404_page(client):
    sign_in(client, "admin")
    r = client.get("/households/999")
    assert r.status_code == 404 and "There is no household 999" in text_of(r.text)
    assert client.get("/households/not-a-number").status_code == 404


def test_an_edit_rescores_and_is_kept_in_the_history(client, province):
    hh = first_household(province, 1, 15, 85)
    sign_in(client, "lahore_officer")
    before_page = client.get(f"/households/{hh.id}").text
    before = score_on_page(before_page)
    assert 'action="/households/' in before_page  # the officer may edit
    form = {"rooms": str(hh.rooms + 1), "roof": hh.roof, "toilet": hh.toilet,
            "electricity": "yes" if hh.electricity else "no", "fridge": "yes" if hh.fridge else "no",
            "motorcycle": "yes" if hh.motorcycle else "no", "car": "no" if hh.car else "yes",
            "land_acres": f"{hh.land_acres:g}", "effective_date": "2026-03-01", "source_ref": "visit note 17"}
    r = client.post(f"/households/{hh.id}/edit", data=form)
    assert r.status_code == 200
    page, text = r.text, text_of(r.text)
    after = score_on_page(page)
    assert after != pytest.approx(before, abs=1e-3)
    assert "Saved: Rooms, Car." in text and f"PMT score {before:.2f} → {after:.2f}" in text
    history = text_of(re.search(r'<table class="data" id="history">.*?</table>', page, flags=re.S).group(0))
    car_was, car_now = ("Yes", "No") if hh.car else ("No", "Yes")
    assert f"2026-03-01 Car {car_was} → changed to {car_now} Operator (visit note 17) lahore_officer" in history
    assert f"Rooms {hh.rooms} → changed to {hh.rooms + 1}" in history
    with transaction(province) as s:
        model = pmt.active_model(s)
        stored = s.get(PmtScore, (model.id, hh.id)).score
        changes = s.scalars(select(ValueChange).where(ValueChange.household_id == hh.id)).all()
        parts = pmt.breakdown(s, hh.id)
    assert stored == pytest.approx(after, abs=1e-3)
    assert {(c.field, c.source, c.actor) for c in changes} == {("rooms", "operator", "lahore_officer"),
                                                               ("car", "operator", "lahore_officer")}
    assert parts.base_points + sum(p.points for p in parts.contributions) == pytest.approx(after, abs=1e-3)


def test_an_invalid_edit_names_the_field_and_changes_nothing(client, province):
    hh = first_household(province, 1)
    sign_in(client, "admin")
    before = score_on_page(client.get(f"/households/{hh.id}").text)
    form = {"rooms": "many", "roof": hh.roof, "toilet": hh.toilet, "electricity": "yes", "fridge": "yes",
            "motorcycle": "yes", "car": "yes", "land_acres": "0"}
    r = client.post(f"/households/{hh.id}/edit", data=form)
    assert r.status_code == 422
    assert f"household {hh.id}: rooms must be a number" in text_of(r.text)
    assert re.search(r'<input id="e-rooms" name="rooms"[^>]*value="many" aria-invalid="true"', r.text)
    assert score_on_page(r.text) == pytest.approx(before, abs=1e-3)
    with transaction(province) as s:
        assert not s.scalars(select(ValueChange).where(ValueChange.household_id == hh.id)).all()


def test_roles_without_write_access_see_no_edit_form_and_cannot_post(client, province):
    hh = first_household(province, 1)
    sign_in(client, "auditor")
    page = client.get(f"/households/{hh.id}").text
    assert f'action="/households/{hh.id}/edit' not in page
    r = client.post(f"/households/{hh.id}/edit", data={"rooms": "9"})
    assert r.status_code == 403 and "may not change registry records" in text_of(r.text)


# ---------------------------------------------------------------- the audit log

def test_the_audit_log_is_for_auditors_and_administrators(client, province):
    hh = first_household(province, 2)
    sign_in(client, "lahore_officer")
    client.get(f"/households/{hh.id}")  # refused, and recorded
    r = client.get("/audit")
    assert r.status_code == 403 and "Only auditors and administrators" in text_of(r.text)
    sign_in(client, "auditor")
    page = client.get("/audit", params={"actor": "lahore_officer"}).text
    rows = re.findall(r'<tr data-outcome="(\w+)">(.*?)</tr>', page, flags=re.S)
    assert rows and all("lahore_officer" in body for _, body in rows)
    assert ("denied", True) in {(o, f"/households/{hh.id}" in body) for o, body in rows}
    assert "Denied" in text_of(page)
    empty = client.get("/audit", params={"actor": "nobody"}).text
    assert "No audit entries match" in text_of(empty)
    sign_in(client, "admin")
    assert client.get("/audit").status_code == 200


# ---------------------------------------------------------------- Urdu

def test_urdu_pages_are_right_to_left_and_translated(client, province):
    hh = first_household(province, 1)
    ur = lang.catalogue("ur")
    sign_in(client, "lahore_officer")
    r = client.get(f"/lang/ur?next=/households/{hh.id}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/households/{hh.id}"
    page = client.get(f"/households/{hh.id}").text
    assert '<html lang="ur" dir="rtl">' in page
    text = text_of(page)
    with transaction(province) as s:
        lahore = s.get(District, 1)
    for key in ("members.title", "breakdown.title", "history.title", "hh.housing", "nav.sign_out",
                "role.district_officer", "v.relation_to_head.head", "history.registered", "edit.submit"):
        assert ur[key] in text, key
    assert lahore.name_ur in text
    for english in ("Members", "How the score is made", "History", "Sign out", "District officer", "Save changes"):
        assert english not in text, english
    assert "English" in text  # the way back
    search = client.get("/", params={"search": "1", "pmt_max": "50"}).text
    assert '<html lang="ur" dir="rtl">' in search and ur["search.title"] in text_of(search)
    client.get("/lang/en?next=/")
    assert '<html lang="en" dir="ltr">' in client.get("/").text


def test_urdu_catalogue_covers_every_english_label():
    en = lang.catalogue("en")
    ur = lang.catalogue("ur")
    missing = sorted(set(en) - set(ur))
    assert not missing, f"labels without Urdu: {missing}"
    arabic_script = re.compile(r"[\u0600-\u06ff]")
    untranslated = [k for k, v in ur.items() if not arabic_script.search(v) and k not in ("lang.switch", "history.arrow")]
    assert not untranslated, f"Urdu labels not in Urdu: {untranslated}"
    for key, text in en.items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(ur[key])), key


def test_every_registry_code_and_role_has_a_label():
    en = lang.catalogue("en")
    for role, label in ROLE_LABELS.items():
        assert en[f"role.{role}"] == label
    for name in pmt.INDICATORS:
        assert f"ind.{name}" in en, name
    for field, codes in {**vocab.HOUSEHOLD_CATEGORICAL, **vocab.INDIVIDUAL_CATEGORICAL, "source": vocab.SOURCES}.items():
        for code in codes:
            assert f"v.{field}.{code}" in en, f"{field}.{code}"


def test_a_label_missing_in_urdu_falls_back_to_english(monkeypatch):
    real = lang.catalogue
    monkeypatch.setattr(lang, "catalogue", lambda code: {k: v for k, v in real(code).items() if k != "nav.audit"}
                        if code == "ur" else real(code))
    tr = lang.Translator("ur")
    assert tr("nav.audit") == "Audit log"
    assert tr("nav.search") == real("ur")["nav.search"]
    assert tr("no.such.key_here") == "key here"
    assert tr.value("roof", "rcc") == real("ur")["v.roof.rcc"] and tr.value("car", True) == real("ur")["yes"]


def test_audit_actions_and_records_are_labelled_in_both_languages(client, province):
    """The audit page shows actions and record types through labels: none may fall back to the code."""
    from isps.access.service import ACTIONS, DCI_ACTIONS

    entities = {"household", "individual", "user", "enrolment", "payroll", "benefit_cycle", "pmt_model", "program",
                "change_request", "source_conflict", "eligibility_run", "fund_release", "status_import"}
    for code in ("en", "ur"):
        labels = lang.catalogue(code)
        assert {a for a in ACTIONS | DCI_ACTIONS if f"action.{a}" not in labels} == set(), code
        assert {e for e in entities if f"entity.{e}" not in labels} == set(), code
    sign_in(client, "auditor")
    client.cookies.set("lang", "ur")
    text = text_of(client.get("/audit").text)
    assert "Sign in" not in text and "sign_in" not in text
