"""One Window in a real browser (Chromium driven by Playwright against uvicorn, as
``test_browser.py``): a Kasur counter operator finds a citizen by mobile number and by name, opens
the citizen screen (programs and payments, membership), asks for a newborn to be added with her
B-form, and a second person approves it on the updates page; in English and Urdu. Screenshots go to
the test's tmp directory (and $ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from isps.access.service import create_user
from isps.db import transaction
from isps.payments import payroll as pr
from tests.conftest import PASSWORD, nav_to
from tests.test_browser import Visit, _require_chromium, browser, serve, sqlite_province  # noqa: F401 - fixtures
from tests.test_browser_enrol import _section
from tests.test_payments import approved_kafaalat_cycle

pytestmark = pytest.mark.browser
BFORM = "35102-1112223-4"


@pytest.fixture(scope="module")
def counter_province(sqlite_province):  # noqa: F811 - the imported fixture
    with transaction(sqlite_province) as s:
        create_user(s, "kasur_officer_ow", PASSWORD, "district_officer", district_id=2)
    cycle_id = approved_kafaalat_cycle(sqlite_province)  # Kafaalat enrolled, a cycle approved and paid out
    with transaction(sqlite_province) as s:
        pr.release_funds(s, "bisp_kafaalat", 100_000_000, "RO-2026-07", "treasury")
        payroll = pr.generate(s, cycle_id, "maker")
        pr.approve(s, payroll.id, "checker")
    return sqlite_province


@pytest.fixture(scope="module")
def server(counter_province):
    _require_chromium()
    with serve(counter_province) as base:
        yield base


def test_a_counter_finds_a_citizen_and_asks_to_add_a_newborn(browser, server, counter_province, tmp_path):  # noqa: F811
    engine = counter_province
    with engine.connect() as conn:
        pid, hid, name, father, phone = conn.execute(text(
            "SELECT i.id, i.household_id, i.full_name, i.father_husband_name, i.phone FROM individual i "
            "WHERE i.district_id = 2 AND i.relation_to_head = 'head' AND i.phone IS NOT NULL "
            "AND i.father_husband_name IS NOT NULL AND i.date_of_death IS NULL "
            "AND (SELECT COUNT(*) FROM individual j WHERE j.phone = i.phone) = 1 "
            "ORDER BY CASE WHEN i.household_id IN (SELECT household_id FROM enrolment) THEN 0 ELSE 1 END, i.id "
            "LIMIT 1")).one()
    counter = Visit(browser, server, tmp_path)
    officer = Visit(browser, server, tmp_path)
    try:
        p = counter.page
        counter.sign_in("kasur_counter")
        nav_to(p, "Find a citizen")
        p.wait_for_url(f"{server}/onewindow")
        # by mobile number, typed the way a citizen says it: straight to the household
        n = phone[1:]
        p.get_by_label("CNIC, B-form, mobile number or name", exact=True).fill(f"+92 {n[:3]} {n[3:]}")
        p.get_by_role("button", name="Find").click()
        p.wait_for_url(f"{server}/households/{hid}*")
        assert phone not in p.url
        p.locator("section#benefits").wait_for()
        p.locator("section#membership").wait_for()
        assert p.locator("#benefits-table tr[data-source='isps']").count() >= 1
        counter.screenshot("onewindow_citizen_en.png")
        _section(counter, "section#benefits", "onewindow_benefits_en.png")
        # by name, spelt another way, with the father's name
        nav_to(p, "Find a citizen")
        variant = " ".join(w.replace("a", "aa", 1) for w in name.split())
        p.get_by_label("CNIC, B-form, mobile number or name", exact=True).fill(variant)
        p.get_by_label("Father's or husband's name (optional)").fill(father)
        p.get_by_role("button", name="Find").click()
        p.locator("#ow-table, section#membership").first.wait_for()
        if "/households/" not in p.url:
            counter.screenshot("onewindow_results_en.png")
            p.locator(f"#ow-table tr[data-person='{pid}'] a").click()
        p.wait_for_url(f"{server}/households/{hid}*")
        # ask to add a newborn with her B-form
        panel = p.locator("section#membership")
        panel.wait_for()
        panel.locator("#mem-add-open").click()
        form = panel.locator("#mem-add-form")
        form.get_by_label("Name", exact=True).fill("Hania Bibi")
        form.get_by_label("Sex").select_option("female")
        form.get_by_label("Date of birth").fill((date.today() - timedelta(days=20)).isoformat())
        form.get_by_label("Relation to head").select_option("daughter")
        form.get_by_label("Identity document").select_option("bform")
        form.get_by_label("CNIC or B-form number").fill(BFORM)
        form.get_by_label("Evidence", exact=True).fill("B-form seen at the counter")
        form.locator("#mem-add-submit").click()
        p.locator("#mem-done").wait_for()
        assert "Hania Bibi" in p.locator("#mem-pending").inner_text()
        _section(counter, "section#membership", "onewindow_membership_en.png")
        counter.screenshot("onewindow_member_asked_en.png")
        # Urdu, right to left
        p.locator("a.lang-switch").click()
        p.locator("html[dir=rtl]").wait_for(state="attached")
        p.locator("section#membership").wait_for()
        assert "رکن شامل کرنا" in p.locator("#mem-pending").inner_text()
        assert "پروگرام اور ادائیگیاں" in p.locator("section#benefits").inner_text()
        counter.screenshot("onewindow_citizen_ur.png")
        _section(counter, "section#benefits", "onewindow_benefits_ur.png")
        _section(counter, "section#membership", "onewindow_membership_ur.png")
        p.goto(f"{server}/onewindow")
        p.locator("#ow-q").fill(variant)
        p.locator("#ow-form button[type=submit]").click()
        p.locator("#ow-table, #ow-error, #ow-none, section#membership").first.wait_for()
        counter.screenshot("onewindow_find_ur.png")
        p.goto(f"{server}/lang/en?next=/onewindow")

        # a second person approves on the updates page; the member is on the household
        o = officer.page
        officer.sign_in("kasur_officer_ow")
        o.goto(f"{server}/updates")
        row = o.locator("#change-requests tbody tr", has_text=f"Add a member to household {hid}")
        assert "35102-*****23-4" in row.inner_text()
        officer.screenshot("onewindow_updates_en.png")
        o.goto(f"{server}/lang/ur?next=/updates")
        assert f"گھرانہ {hid} میں رکن شامل کرنا" in o.locator("#change-requests").inner_text()
        _section(officer, "#change-requests", "onewindow_updates_ur.png")
        o.goto(f"{server}/lang/en?next=/updates")
        row.get_by_role("button", name="Approve").click()
        o.wait_for_url(f"{server}/updates?done=approve")
        o.goto(f"{server}/households/{hid}")
        assert "Hania Bibi" in o.locator("table#members").inner_text()
        assert counter.errors == [] and officer.errors == []
        assert counter.foreign == [] and officer.foreign == []
    finally:
        counter.close()
        officer.close()
