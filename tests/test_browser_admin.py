"""The administrator's whole job in a real browser (Chromium driven by Playwright against uvicorn, as
``test_browser.py``): create a district officer (the initial password shown once, and it works),
upload a NADRA delivery and read its row report (and download it), register a DCI partner (its
secret shown once on one line) with a data-sharing agreement; then a counter operator records a
citizen's consent from the household page. The pages are read again in Urdu. Screenshots go to the
test's tmp directory (and $ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

import csv
import io

import pyarrow.csv as pacsv
import pytest
from sqlalchemy import text

from isps.db import transaction
from isps.interop import feeds
from tests.test_browser import Visit, _require_chromium, browser, serve, sqlite_province  # noqa: F401 - fixtures
from tests.conftest import nav_to

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(sqlite_province):
    _require_chromium()
    with serve(sqlite_province) as base:
        yield base


def _press(page, name: str, within=None) -> None:
    """Click a form's button and wait for the page it answers with."""
    with page.expect_navigation():
        (within or page).get_by_role("button", name=name, exact=True).first.click()


def _no_overflow(page) -> None:
    """Nothing is wider than the window (tables scroll inside their wrapper, never the page)."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def _delivery(engine, folder) -> tuple:
    """A NADRA delivery of 30 records about registry people, one with its date written day first."""
    table = feeds.generate_sample(engine, "nadra", 30, 11)
    out = io.BytesIO()
    pacsv.write_csv(table, out)
    rows = list(csv.reader(io.StringIO(out.getvalue().decode())))
    rows[3][rows[0].index("event_date")] = "07-12-2026"  # day first: not YYYY-MM-DD
    path = folder / "nadra-2026-12-07.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path, rows[3][rows[0].index("record_ref")]


def _one_line(page, selector: str) -> None:
    """A secret box is one line high whatever its length: copied whole, never wrapped."""
    box = page.locator(selector)
    assert box.evaluate("e => e.scrollHeight <= e.clientHeight + 2 && getComputedStyle(e).whiteSpace !== 'normal'"
                        " || e.tagName === 'INPUT'")
    assert box.bounding_box()["height"] < 60


def test_the_administrator_does_the_whole_job_and_a_counter_records_consent(browser, server, sqlite_province,  # noqa: F811
                                                                          tmp_path):
    admin, counter = Visit(browser, server, tmp_path), Visit(browser, server, tmp_path)
    try:
        a, c = admin.page, counter.page
        admin.sign_in("admin")
        counter.sign_in("kasur_counter")

        # 1. a district officer for Kasur, from the main navigation
        nav_to(a, "Users")
        a.wait_for_url(server + "/users")
        form = a.locator("#new-user-form")
        form.get_by_label("User name").fill("kasur_new_officer")
        form.get_by_label("Full name").fill("Nasreen Akhtar")
        form.get_by_label("Role").select_option("district_officer")
        form.get_by_label("District").select_option(label="Kasur")
        _press(a, "Create user", form)
        password = a.locator("#new-password").input_value()
        assert len(password) >= 10
        _one_line(a, "#new-password")
        assert a.locator('tr[data-user="kasur_new_officer"]').count() == 1
        admin.screenshot("admin-users-en.png")
        _no_overflow(a)
        officer = Visit(browser, server, tmp_path)
        try:
            o = officer.page
            o.goto(server + "/login")
            o.get_by_label("Username").fill("kasur_new_officer")
            o.get_by_label("Password").fill(password)
            o.get_by_role("button", name="Sign in").click()
            o.wait_for_url(server + "/")
            assert "Kasur" in o.locator(".who-district").inner_text()
        finally:
            officer.close()

        # 2. a NADRA delivery uploaded and its row report read, then downloaded
        nav_to(a, "Feed deliveries")
        a.wait_for_url(server + "/feeds/deliveries")
        path, bad_ref = _delivery(sqlite_province, tmp_path)
        up = a.locator("#upload-form")
        up.get_by_label("Feed").select_option("nadra")
        up.get_by_label("Delivery file").set_input_files(str(path))
        _press(a, "Apply delivery", up)
        assert "/feeds/deliveries/" in a.url
        assert a.locator("#records").inner_text() == "30"
        assert a.locator("#refused").inner_text() == "1"
        assert a.locator("#accepted").inner_text() == "29"
        row = a.locator("#refused-rows tbody tr")
        assert row.count() == 1 and bad_ref in row.inner_text() and "event_date" in row.inner_text()
        admin.screenshot("admin-feed-report-en.png")
        _no_overflow(a)
        with a.expect_download() as dl:
            a.locator("#rejections-csv").click()
        report = list(csv.DictReader(io.StringIO(open(dl.value.path()).read())))
        assert [r["record_ref"] for r in report] == [bad_ref]
        a.get_by_role("link", name="Feed deliveries").first.click()
        assert a.locator("#deliveries tbody tr").count() == 1
        admin.screenshot("admin-feeds-en.png")

        # 3. a partner registered, its secret shown once on one line, an agreement made
        nav_to(a, "DCI partners")
        reg = a.locator("#register-form")
        reg.get_by_label("Sender id").fill("pk-pspa-nsp")
        reg.get_by_label("Name").fill("National Socio-economic Portal")
        reg.get_by_label("Callback address").fill("https://nsp.example.pk/dci")
        _press(a, "Register partner", reg)
        secret = a.locator("#client-secret").input_value()
        assert len(secret) >= 40
        _one_line(a, "#client-secret")
        admin.screenshot("admin-partner-secret-en.png")
        ag = a.locator("#agreement-form")
        ag.get_by_label("Reference").fill("MOU-PSPA-2026-14")
        ag.get_by_label("Purpose").fill("targeting")
        for field in ("name", "sex", "birth_date", "poverty_score", "group_size"):
            ag.get_by_label(field, exact=True).check()
        _press(a, "Make agreement", ag)
        assert "The agreement is in force" in a.locator("#notice").inner_text()
        agreement = a.locator('tr[data-agreement="MOU-PSPA-2026-14"]')
        assert "poverty_score" in agreement.inner_text() and "In force" in agreement.inner_text()
        assert secret not in a.content()  # shown once
        admin.screenshot("admin-partner-en.png")
        _no_overflow(a)

        # 4. a counter operator in Kasur records a citizen's consent from the household page
        with transaction(sqlite_province) as s:
            hh, person = s.execute(text("SELECT household_id, id FROM individual WHERE district_id = 2 AND cnic IS "
                                        "NOT NULL AND date_of_death IS NULL ORDER BY id LIMIT 1")).first()
        c.goto(f"{server}/households/{hh}")
        c.locator("#record-consent-link").click()
        c.wait_for_url(f"{server}/consent?household={hh}")
        c.locator(f'input[name="individual_id"][value="{person}"]').check()
        c.get_by_label("Evidence").fill("Consent register 4, page 112")
        _press(c, "Record consent")
        assert "recorded" in c.locator("#notice").inner_text() and "pk-pspa-nsp" in c.locator("#notice").inner_text()
        counter.screenshot("admin-consent-en.png")
        with transaction(sqlite_province) as s:
            assert s.execute(text("SELECT COUNT(*) FROM dci_consent WHERE individual_id = :i AND purpose = 'targeting'"),
                             {"i": person}).scalar_one() == 1

        # 5. the same pages in Urdu: right to left, labelled, nothing wider than the window
        a.get_by_role("link", name="اردو").click()
        a.wait_for_load_state()
        assert a.locator("html").get_attribute("dir") == "rtl"
        assert "ڈیٹا شیئرنگ معاہدے" in a.content()
        admin.screenshot("admin-partner-ur.png")
        _no_overflow(a)
        a.goto(server + "/users")
        a.locator('tr[data-user="kasur_new_officer"] a').click()
        a.wait_for_load_state()
        assert a.locator("#district").inner_text() == "قصور"
        admin.screenshot("admin-user-ur.png")
        _no_overflow(a)
        for url, name in (("/users", "admin-users-ur.png"), ("/feeds/deliveries/1", "admin-feed-report-ur.png"),
                          ("/feeds/deliveries", "admin-feeds-ur.png")):
            a.goto(server + url)
            admin.screenshot(name)
            _no_overflow(a)
        c.goto(f"{server}/lang/ur?next=/consent%3Fhousehold%3D{hh}")
        counter.screenshot("admin-consent-ur.png")
        _no_overflow(c)
        assert not admin.errors and not counter.errors, admin.errors + counter.errors
        assert not admin.foreign and not counter.foreign
    finally:
        admin.close()
        counter.close()
