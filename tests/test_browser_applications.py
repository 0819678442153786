"""The One Window in a real browser (Chromium driven by Playwright against uvicorn, as
``test_browser.py``): a Kasur counter operator registers a never-surveyed household with three
members (a row added by mistake is removed, one is corrected before submitting), the application
waits for verification; the Kasur district officer verifies it, the page shows the household
scored and every program's eligibility with its reasons; the receipt prints. Screenshots in
English and Urdu go to the test's tmp directory (and $ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from isps.db import transaction
from isps.targeting.eligibility import rules
from tests.conftest import nav_to
from tests.test_browser import Visit, _require_chromium, browser, serve, sqlite_province  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def counter_province(sqlite_province):  # noqa: F811 - the imported fixture
    """The small SQLite province (which has a Kasur district officer) with the shipped eligibility rules."""
    with transaction(sqlite_province) as s:
        rules.install_shipped_rules(s)
    return sqlite_province


@pytest.fixture(scope="module")
def server(counter_province):
    _require_chromium()
    with serve(counter_province) as base:
        yield base


def _fill_member(row, name: str, father: str, cnic: str, sex: str, born: str, relation: str, marital: str,
                 labour: str) -> None:
    row.locator('[name="full_name"]').fill(name)
    row.locator('[name="father_husband_name"]').fill(father)
    row.locator('[name="cnic"]').fill(cnic)
    row.locator('[name="date_of_birth"]').fill(born)
    row.locator('[name="sex"]').select_option(sex)
    row.locator('[name="relation_to_head"]').select_option(relation)
    row.locator('[name="marital_status"]').select_option(marital)
    row.locator('[name="labour_status"]').select_option(labour)


def test_a_counter_registers_a_household_and_a_second_person_verifies_it(browser, server, counter_province,  # noqa: F811
                                                                          tmp_path):
    counter = Visit(browser, server, tmp_path)
    officer = Visit(browser, server, tmp_path)
    try:
        p = counter.page
        counter.sign_in("kasur_counter")
        nav_to(p, "New application")
        p.wait_for_url("**/applications/new")
        p.locator("#kind-registration").click()
        p.wait_for_url("**/applications/new?kind=registration")
        p.get_by_label("Applicant's name").fill("Ghulam Rasool")
        p.get_by_label("Mobile number").fill("03001234567")
        p.locator("#h-address").fill("House 4, Mohalla Islampura, Kasur")
        p.locator("#h-tenure").select_option("rented")
        p.locator("#h-rooms").fill("1")
        p.locator("#h-roof").select_option("mud_thatch")
        p.locator("#h-wall").select_option("mud")
        p.locator("#h-toilet").select_option("none")
        p.locator("#h-drinking_water").select_option("hand_pump")
        p.locator("#h-cooking_fuel").select_option("wood")
        p.locator("#h-goats_sheep").fill("2")
        p.locator("#h-television").check()

        rows = p.locator("#members fieldset.member")
        _fill_member(rows.nth(0), "Ghulam Rasol", "Allah Ditta", "35102-9876541-3", "male", "1980-03-02", "head",
                     "married", "daily_wager")
        p.locator("#add-member").click()
        rows.nth(1).wait_for()
        _fill_member(rows.nth(1), "Naseem Bibi", "Ghulam Rasool", "35102-9876542-4", "female", "1984-07-11",
                     "spouse", "married", "not_in_labour_force")
        p.locator("#add-member").click()
        rows.nth(2).wait_for()
        rows.nth(2).locator('[name="full_name"]').fill("Added by mistake")
        assert rows.count() == 3
        rows.nth(2).get_by_role("button", name="Remove this member").click()
        p.wait_for_function("() => document.querySelectorAll('#members fieldset.member').length === 2")
        p.locator("#add-member").click()
        p.wait_for_function("() => document.querySelectorAll('#members fieldset.member').length === 3")
        _fill_member(rows.nth(2), "Ali Raza", "Ghulam Rasool", "", "male", "2015-01-20", "son", "never_married",
                     "child")
        rows.nth(2).locator('[name="enrolled_in_school"]').select_option("yes")
        rows.nth(2).locator('[name="education"]').select_option("primary")
        # the head's name was mistyped: corrected before submitting
        rows.nth(0).locator('[name="full_name"]').fill("Ghulam Rasool")
        assert [rows.nth(i).locator("legend").inner_text().strip() for i in range(3)] == \
            ["Member 1", "Member 2", "Member 3"]
        p.locator("#e-kind-1").select_option("cnic_seen")
        p.locator("#e-ref-1").fill("35102-9876541-3")
        p.locator("#e-kind-2").select_option("utility_bill")
        p.locator("#e-ref-2").fill("LESCO 0412-7781")
        counter.screenshot("onewindow_form_en.png")
        p.locator("#submit-application").click()
        p.wait_for_url(re.compile(r"/applications/\d+\?done=opened"))
        receipt = p.locator("#receipt-no").inner_text()
        assert re.fullmatch(r"OW\d+", receipt)
        assert "not yet in the registry" in p.locator("#staged-h").inner_text()
        assert p.locator("#steps tr.current").inner_text().startswith("Verification")
        assert p.locator("#now-at").inner_text().startswith("Verification, by the District officer, due")
        staged = p.locator("#staged-members tbody tr")
        assert staged.count() == 3 and "Ghulam Rasool" in staged.nth(0).inner_text()
        assert "Added by mistake" not in p.content() and "9876541" not in p.content()
        assert p.locator("#verify-form").count() == 0  # a counter operator does not verify
        counter.screenshot("onewindow_waiting_en.png")
        with counter_province.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM individual WHERE cnic = '3510298765424'")).scalar() == 0
        app_url = p.url.split("?")[0]

        o = officer.page
        officer.sign_in("kasur_officer")
        nav_to(o, "Applications")
        o.wait_for_url("**/applications")
        assert o.locator("#applications tbody tr").count() == 1
        officer.screenshot("onewindow_list_en.png")
        o.get_by_role("link", name=receipt, exact=True).click()
        o.wait_for_url(app_url)
        o.locator("#v-note").fill("CNICs and the LESCO bill seen")
        o.locator("#verify").click()
        o.wait_for_url(re.compile(r"\?done=verified&job="))
        o.locator("#outcome-score").wait_for()
        score = float(o.locator("#outcome-score strong").inner_text())
        assert 0 <= score <= 100
        programs = o.locator("#eligibility tbody tr")
        assert programs.count() >= 3
        assert o.locator("#eligibility ul.reasons li").count() >= programs.count()
        o.reload()
        assert "Registered" in o.locator("#app-status").inner_text()
        officer.screenshot("onewindow_scored_en.png")
        with counter_province.connect() as conn:
            hh = conn.execute(text("SELECT household_id FROM individual WHERE cnic = '3510298765424'")).scalar()
            assert conn.execute(text("SELECT b.source FROM household h JOIN ingest_batch b ON b.id = h.batch_id "
                                     "WHERE h.id = :h"), {"h": hh}).scalar() == "counter"

        # the counter prints the receipt, in English and in Urdu
        p.goto(app_url)
        p.locator("#print-receipt").click()
        p.wait_for_url(re.compile(r"/receipt$"))
        assert p.locator("#receipt-number").inner_text() == receipt
        assert "8123" in p.locator("#receipt-ask").inner_text()
        p.emulate_media(media="print")
        assert not p.locator("header.top").is_visible()
        counter.screenshot("onewindow_receipt_en.png")
        p.emulate_media(media="screen")
        p.locator("a.lang-switch").click()
        p.wait_for_function("() => document.documentElement.dir === 'rtl'")
        assert "درخواست کی رسید" in p.locator("#receipt h1").inner_text()
        p.evaluate("document.fonts.ready.then(() => true)")
        counter.screenshot("onewindow_receipt_ur.png")
        o.locator("a.lang-switch").click()
        o.wait_for_function("() => document.documentElement.dir === 'rtl'")
        o.locator("#outcome-score").wait_for()
        assert "رجسٹر" in o.locator("#app-status").inner_text()
        o.evaluate("document.fonts.ready.then(() => true)")
        officer.screenshot("onewindow_scored_ur.png")
        p.goto(server + "/applications/new?kind=registration")
        p.evaluate("document.fonts.ready.then(() => true)")
        counter.screenshot("onewindow_form_ur.png")
        assert not counter.errors and not officer.errors, counter.errors + officer.errors
        assert not counter.foreign and not officer.foreign
    finally:
        counter.close()
        officer.close()
