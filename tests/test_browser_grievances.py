"""A payment grievance in a real browser (Chromium driven by Playwright against uvicorn, as
``test_browser.py``): a Kasur counter operator finds the citizen by CNIC, picks the payment and files
the grievance, sees it routed to Kasur's grievance officer with a receipt; the grievance officer finds
it among their own, sees the payment's ledger trail and resolves it with a root cause; the analytics
page draws its charts. In English and in Urdu (right to left); screenshots go to the test's tmp
directory (and $ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from isps.db import transaction
from isps.registry.cnic import formatted
from tests.conftest import nav_to
from tests.test_browser import Visit, _require_chromium, browser, serve, sqlite_province  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def paid_province(sqlite_province, tmp_path_factory):  # noqa: F811 - the imported fixture
    """The small SQLite province with a Kafaalat payroll paid through Kasur's cash outlets; a Kasur
    beneficiary whose payment was paid at an outlet (the one the counter complains about)."""
    from isps.payments import payroll as pr, pickup
    from isps.programs import cycles, enrolment as en
    from isps.targeting.eligibility import rules

    engine = sqlite_province
    with transaction(engine) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test", on=date(2026, 6, 1))
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "test", date(2026, 6, 1))
        cycle = cycles.open_cycle(s, "bisp_kafaalat", date(2026, 7, 1), "maker")
        cycles.generate_entitlements(s, cycle.id)
        cycles.approve_cycle(s, cycle.id, "checker")
        p = pr.generate(s, cycle.id, "maker")
        pr.release_funds(s, "bisp_kafaalat", p.total, "RO-1", "checker")
        pr.approve(s, p.id, "checker")
        pr.export(s, p.id, tmp_path_factory.mktemp("payroll"))
        pickup.seed_outlets(s, 2)
        pickup.schedule(s, p.id, 2, date(2026, 7, 2), days=10)
        pr.reconcile(s, pr.bank_status_csv(s, p.id, seed=1), "status.csv", "bank")
        found = s.execute(text("""SELECT i.id AS payment, m.cnic, m.household_id FROM payment_instruction i
            JOIN enrolment e ON e.id = i.enrolment_id JOIN pickup_slot sl ON sl.instruction_id = i.id
            JOIN individual m ON m.household_id = e.household_id AND m.cnic IS NOT NULL AND m.date_of_death IS NULL
            WHERE i.district_id = 2 AND i.status = 'paid' ORDER BY i.id, m.id LIMIT 1""")).mappings().one()
    return engine, dict(found)


@pytest.fixture(scope="module")
def server(paid_province):
    _require_chromium()
    with serve(paid_province[0]) as base:
        yield base


def test_a_counter_files_a_payment_grievance_and_the_grievance_officer_resolves_it(browser, server,  # noqa: F811
                                                                                  paid_province, tmp_path):
    engine, case = paid_province
    counter = Visit(browser, server, tmp_path)
    officer = Visit(browser, server, tmp_path)
    try:
        p = counter.page
        counter.sign_in("kasur_counter")
        nav_to(p, "Grievances")
        p.get_by_role("link", name="File a grievance").first.click()
        p.get_by_label("CNIC").fill(formatted(case["cnic"]))
        p.get_by_role("button", name="Find").click()
        p.locator("#grv-found").wait_for()
        assert p.locator("#grv-found").get_attribute("data-household") == str(case["household_id"])
        p.get_by_label("Received by").select_option("counter")
        p.get_by_label("Category").select_option("agent_deduction")
        p.get_by_label("Payment", exact=True).select_option(str(case["payment"]))
        p.get_by_label("Mobile number (for SMS)").fill("0301-2345678")
        p.get_by_label("What happened").fill("The agent paid Rs 8,000 of Rs 8,500 and kept Rs 500.")
        counter.screenshot("grievance_intake_en.png")
        p.get_by_role("button", name="File the grievance").click()
        p.locator("#grv-receipt").wait_for()
        receipt = p.locator("#receipt-no").inner_text()
        assert receipt.startswith("GR") and p.locator("#receipt-owner").inner_text() == "kasur_grievance"
        counter.screenshot("grievance_receipt_en.png")
        with transaction(engine) as s:
            g = s.execute(text("SELECT id, owner, household_id, payment_instruction_id, outlet_id, program_code "
                               "FROM grievance ORDER BY id DESC LIMIT 1")).mappings().one()
        assert (g["owner"], g["household_id"], g["payment_instruction_id"], g["program_code"]) == (
            "kasur_grievance", case["household_id"], case["payment"], "bisp_kafaalat")
        assert g["outlet_id"] is not None  # the agent who paid, counted against them
        # the receipt in Urdu, right to left
        p.locator("a.lang-switch").click()
        p.wait_for_function("document.documentElement.dir === 'rtl'")
        assert "رسید" in p.locator("#grv-receipt").inner_text()
        assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        counter.screenshot("grievance_receipt_ur.png")

        o = officer.page
        officer.sign_in("kasur_grievance")
        assert o.locator('[data-queue="my_grievances"]').get_attribute("data-count") == "1"
        o.locator('[data-queue="my_grievances"] a').click()
        o.locator(f'tr[data-grievance="{g["id"]}"]').wait_for()
        assert o.locator("#grievances-total").get_attribute("data-total") == "1"
        officer.screenshot("grievance_list_en.png")
        o.locator(f'tr[data-grievance="{g["id"]}"] a').click()
        o.locator("#grv-payment").wait_for()
        assert o.locator("#grv-ledger tbody tr[data-kind]").count() == 2  # sent, then paid
        assert "1" in o.locator("#grv-outlet").inner_text()
        o.get_by_label("Root cause").select_option("agent_misconduct")
        o.get_by_label("Resolution", exact=True).fill("Rs 500 recovered from the agent and paid; agent warned.")
        officer.screenshot("grievance_detail_en.png")
        o.get_by_role("button", name="Resolve the grievance").click()
        o.locator("#notice").wait_for()
        assert o.locator("#grv-status").get_attribute("data-status") == "resolved"
        assert "Agent misconduct" in o.locator("#grv-resolution").inner_text()
        officer.screenshot("grievance_resolved_en.png")
        o.locator("a.lang-switch").click()
        o.wait_for_function("document.documentElement.dir === 'rtl'")
        assert "ایجنٹ کی بدعنوانی" in o.locator("#grv-resolution").inner_text()
        assert o.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        officer.screenshot("grievance_resolved_ur.png")
        o.goto(f"{server}/grievances/analytics")
        o.wait_for_selector("canvas#chart-district[data-drawn='true']")
        officer.screenshot("grievance_analytics_ur.png")
        o.locator("a.lang-switch").click()
        o.wait_for_function("document.documentElement.dir === 'ltr'")
        o.wait_for_selector("canvas#chart-district[data-drawn='true']")
        assert o.locator("#agents-table tbody tr").count() == 1
        officer.screenshot("grievance_analytics_en.png")
        with transaction(engine) as s:
            assert s.execute(text("SELECT status, root_cause, resolved_by FROM grievance WHERE id = :g"),
                             {"g": g["id"]}).one() == ("resolved", "agent_misconduct", "kasur_grievance")
        assert counter.errors == [] and officer.errors == []
        assert counter.foreign == [] and officer.foreign == []
    finally:
        counter.close()
        officer.close()
