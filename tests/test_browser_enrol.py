"""One person, one record, in a real browser (Chromium driven by Playwright against uvicorn, as
``test_browser.py``): the demo's partner lists (Bait-ul-Mal, Zakat, medical grants) are resolved,
Kafaalat enrols through the filter; a Kasur counter operator applies for Bait-ul-Mal assistance
for a woman on a Zakat list and is refused with the reason (program, agency, list), in English and
Urdu; the duplicate-benefit page lists real rows. Screenshots go to the test's tmp directory (and
$ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import text

from isps.cli import demo
from isps.db import transaction
from isps.programs import enrolment as en
from isps.targeting.eligibility import rules
from tests.test_browser import Visit, _require_chromium, browser, serve, sqlite_province  # noqa: F401 - fixtures
from tests.test_enrolment_partner_lists import send_list

pytestmark = pytest.mark.browser
ZAKAT_LIST = "guzara-kasur-2026-q3"


@pytest.fixture(scope="module")
def listed_province(sqlite_province):  # noqa: F811 - the imported fixture
    """The small SQLite province with the demo's partner lists resolved, Kafaalat enrolled through
    the filter, and one Kasur woman on a Zakat list (the one the counter sees)."""
    engine = sqlite_province
    with transaction(engine) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test", on=date(2026, 6, 1))
    demo.linkage_flow(engine, Console(quiet=True))
    with transaction(engine) as s:
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "test", date(2026, 6, 1))
        woman = s.execute(text("""SELECT i.id FROM individual i WHERE i.district_id = 2 AND i.sex = 'female'
            AND i.cnic IS NOT NULL AND i.date_of_birth <= '1995-01-01' AND i.date_of_death IS NULL
            AND i.household_id NOT IN (SELECT household_id FROM beneficiary WHERE household_id IS NOT NULL)
            ORDER BY i.id LIMIT 1""")).scalar_one()
    send_list(engine, "zakat_guzara_allowance", "Zakat Committee Kasur", ZAKAT_LIST, [woman], "ZK")
    return engine, woman


def _section(visit: Visit, selector: str, name: str) -> None:
    """A screenshot of one part of the page (the part this test is about), beside the full page's."""
    path = visit.shots / name
    visit.page.locator(selector).screenshot(path=str(path))
    extra = os.environ.get("ISPS_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)


@pytest.fixture(scope="module")
def server(listed_province):
    _require_chromium()
    with serve(listed_province[0]) as base:
        yield base


def test_a_counter_is_refused_with_the_reason_and_the_duplicate_page_lists_rows(browser, server,  # noqa: F811
                                                                                listed_province, tmp_path):
    engine, woman = listed_province
    with engine.connect() as conn:
        household, name = conn.execute(text("SELECT household_id, full_name FROM individual WHERE id = :i"),
                                       {"i": woman}).one()
    counter = Visit(browser, server, tmp_path)
    manager = Visit(browser, server, tmp_path)
    try:
        p = counter.page
        counter.sign_in("kasur_counter")
        p.goto(f"{server}/households/{household}")
        panel = p.locator("section#enrolment")
        panel.wait_for()
        panel.get_by_label("Program").select_option("pbm_financial_assistance")
        panel.get_by_label("For").select_option(str(woman))
        panel.get_by_role("button", name="Check and apply").click()
        outcome = p.locator("#enrol-outcome")
        outcome.wait_for()
        said = outcome.inner_text()
        assert "Not listed for Pakistan Bait-ul-Mal Individual Financial Assistance" in said
        assert "Zakat Guzara Allowance (Punjab Zakat and Ushr Department)" in said
        assert ZAKAT_LIST in said and "Zakat Committee Kasur" in said and "do not receive Zakat" in said
        assert outcome.get_attribute("data-rule") == "incompatible"
        row = p.locator("#refusals tbody tr[data-other='zakat_guzara_allowance']").first
        assert name in row.inner_text()
        counter.screenshot("enrol_refused_en.png")
        _section(counter, "section#enrolment", "enrol_panel_en.png")
        # nothing was enrolled, and the refusal is stored with the reason
        with transaction(engine) as s:
            assert s.execute(text("SELECT COUNT(*) FROM enrolment WHERE program_code = 'pbm_financial_assistance' "
                                  "AND household_id = :h"), {"h": household}).scalar_one() == 0
            refusal = en.last_refusal(s, "pbm_financial_assistance", household, woman)
            assert refusal["partner"] == "Zakat Committee Kasur"

        # in Urdu: the same refusal, worded in Urdu, right to left
        p.locator("a.lang-switch").click()
        p.wait_for_url(f"**/households/{household}")
        p.locator("section#enrolment").wait_for()
        assert p.locator("html").get_attribute("dir") == "rtl"
        urdu = p.locator("#refusals tbody tr[data-other='zakat_guzara_allowance']").first.inner_text()
        assert "پہلے ہی" in urdu and ZAKAT_LIST in urdu and "زکوٰۃ" in urdu
        assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        counter.screenshot("enrol_refused_ur.png")
        _section(counter, "section#enrolment", "enrol_panel_ur.png")
        p.locator("a.lang-switch").click()
        p.wait_for_function("document.documentElement.dir === 'ltr'")

        # the duplicate-benefit page: real rows, readable columns, money as money
        m = manager.page
        manager.sign_in("manager")
        m.goto(f"{server}/sbr/reports?report=same_kind")
        rows = m.locator("#sbr-report tbody tr")
        assert rows.count() > 0
        heads = m.locator("#sbr-report thead").inner_text()
        assert "Kind of benefit" in heads and "Yearly value" in heads and "person_id" not in heads
        assert "PKR " in rows.first.inner_text()
        manager.screenshot("duplicates_en.png")
        m.goto(f"{server}/sbr/reports?report=overlap_matrix")
        assert m.locator("#sbr-report tbody tr").count() > 0
        m.goto(f"{server}/programs/bisp_kafaalat/enrolment")
        assert m.locator("#refused-table tbody tr[data-rule]").count() > 0
        manager.screenshot("kafaalat_refused_en.png")
        _section(manager, "section#refused", "kafaalat_refused_section_en.png")
        m.goto(f"{server}/sbr/reports?report=same_kind")
        m.locator("a.lang-switch").click()
        m.wait_for_function("document.documentElement.dir === 'rtl'")
        assert "امداد کی قسم" in m.locator("#sbr-report thead").inner_text()
        manager.screenshot("duplicates_ur.png")
        m.goto(f"{server}/programs/bisp_kafaalat/enrolment")
        manager.screenshot("kafaalat_refused_ur.png")
        _section(manager, "section#refused", "kafaalat_refused_section_ur.png")
        assert counter.errors == [] and manager.errors == []
        assert counter.foreign == [] and manager.foreign == []
    finally:
        counter.close()
        manager.close()


def test_an_empty_report_downloads_with_its_header_row(listed_province, tmp_path):
    from isps.linkage import reports

    with transaction(listed_province[0]) as s:
        empty = reports.run_report(s, "household_overlaps", program="bisp_flood_relief")
    assert empty == [] and reports.to_csv(empty, "household_overlaps").startswith("Household,Kind of benefit")


def test_the_household_page_says_excluded_and_a_counter_appeals(browser, server, listed_province,  # noqa: F811
                                                                  tmp_path):
    from tests.test_exclusions import _payroll

    engine, _ = listed_province
    with engine.connect() as conn:
        member, household = conn.execute(text("""SELECT i.id, i.household_id FROM individual i WHERE i.district_id = 2
            AND i.cnic IS NOT NULL AND i.date_of_birth <= '1990-01-01' AND i.date_of_death IS NULL
            AND NOT EXISTS (SELECT 1 FROM exclusion_flag x WHERE x.household_id = i.household_id)
            ORDER BY i.id DESC LIMIT 1""")).one()
    _payroll(engine, member, "payroll-browser-2026-05")
    counter = Visit(browser, server, tmp_path)
    try:
        p = counter.page
        counter.sign_in("kasur_counter")
        p.goto(f"{server}/households/{household}")
        note = p.locator(f"section#enrolment .exclusion[data-individual='{member}']")
        note.wait_for()
        assert "Excluded: a member is on the public-sector payroll" in note.inner_text()
        assert "Health Department, BPS 9: payroll payroll-browser-2026-05 #E-1, 2026-05-01" in note.inner_text()
        kafaalat = p.locator("#eligibility tr[data-program='bisp_kafaalat']").first.inner_text()
        assert "excluded: a member is on the public-sector payroll (Health Department" in kafaalat
        counter.screenshot("excluded_en.png")
        note.get_by_label("Evidence (what shows the exclusion is wrong)").fill("retired on 2026-03-31, pension order")
        note.get_by_label("Document reference").fill("PO-2026-311")
        note.get_by_role("button", name="Appeal this exclusion").click()
        done = p.locator("#enrol-outcome")
        done.wait_for()
        assert "Appeal recorded as change request" in done.inner_text()
        assert "waiting for a second person" in p.locator(f".exclusion[data-individual='{member}']").inner_text()
        _section(counter, "section#enrolment", "appeal_en.png")
        p.locator("a.lang-switch").click()
        p.wait_for_url(f"**/households/{household}")
        p.locator(f"section#enrolment .exclusion[data-individual='{member}']").wait_for()
        assert "خارج" in p.locator("#eligibility tr[data-program='bisp_kafaalat']").first.inner_text()
        _section(counter, "section#enrolment", "appeal_ur.png")
        p.locator("a.lang-switch").click()
        p.wait_for_function("document.documentElement.dir === 'ltr'")
        with engine.connect() as conn:
            req = conn.execute(text("SELECT requested_by, evidence_ref, status FROM change_request "
                                    "WHERE entity_id = :i"), {"i": member}).one()
        assert tuple(req) == ("kasur_counter", "PO-2026-311", "pending")
        assert counter.errors == [] and counter.foreign == []
    finally:
        counter.close()
