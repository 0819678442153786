"""Each role's whole job in a real browser, from the home page it lands on (Chromium driven by Playwright
against uvicorn, as ``test_browser.py``): the district officer finds a household, reads why it is or is not
eligible, closes a source conflict and approves a change request; the counter operator finds a household by
CNIC and corrects it; the auditor filters the audit log and downloads it. Each home page is read in English
and in Urdu, with its charts drawn (right to left in Urdu). Screenshots go to the test's tmp directory (and
$ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest
from sqlalchemy import select, text

from isps.access.service import Principal, audit
from isps.db import transaction
from isps.interop.feeds import changes
from isps.payments import payroll as pr
from isps.programs import cycles, enrolment as en
from isps.registry.models import Individual
from isps.targeting.eligibility import rules
from tests.test_browser import Visit, _require_chromium, browser, serve, sqlite_province  # noqa: F401 - fixtures
from tests.test_web_updates import _adult, _conflict
from tests.conftest import nav_to

pytestmark = pytest.mark.browser
TODAY = date.today()


@pytest.fixture(scope="module")
def working_province(sqlite_province, tmp_path_factory):  # noqa: F811 - the imported fixture
    """The small province with work waiting: kafaalat enrolled and paid once, a source conflict and a
    change request (made by someone else) in Lahore, and a refused access in the audit log."""
    engine = sqlite_province
    with transaction(engine) as s:
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test", on=date(2026, 6, 1))
        en.set_capacity(s, "bisp_kafaalat", "test", slots=run.eligible - 5)
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "test", date(2026, 6, 1))
        cycle = cycles.open_cycle(s, "bisp_kafaalat", date(2026, 7, 1), "maker")
        cycles.generate_entitlements(s, cycle.id)
        cycles.approve_cycle(s, cycle.id, "checker")
        pr.release_funds(s, "bisp_kafaalat", 100_000_000, "RO-1", "treasury")
        payroll = pr.generate(s, cycle.id, "maker")
        pr.approve(s, payroll.id, "checker")
        pr.export(s, payroll.id, tmp_path_factory.mktemp("payments"))
        pr.reconcile(s, pr.bank_status_csv(s, payroll.id, seed=3, paid=0.8, failed=0.1, unclaimed=0.1, on=TODAY),
                     "status.csv", "ops", on=TODAY)
    _conflict(engine, 1)
    with transaction(engine) as s:
        person = _adult(s, 1)
        changes.request_change(s, entity="individual", entity_id=person.id, changes={"occupation": "tailor"},
                               source="operator", evidence="shop licence seen", requested_by="counter1")
        audit(s, Principal("kasur_counter", "counter_operator", 2), "web", "read", "household", 10_000_000_001, 1,
              outcome="denied", detail="refused: a household of Lahore")
    return engine


@pytest.fixture(scope="module")
def server(working_province):
    _require_chromium()
    with serve(working_province) as base:
        yield base


@pytest.fixture
def visit(browser, server, tmp_path):  # noqa: F811 - the imported fixture
    v = Visit(browser, server, tmp_path)
    yield v
    v.close()


def queue(page, key: str) -> int:
    return int(page.locator(f'[data-queue="{key}"]').get_attribute("data-count"))


def charts_drawn(page) -> list[str]:
    """The ids of the canvases Chart.js has drawn."""
    page.wait_for_function("() => window.Chart !== undefined && document.querySelectorAll('canvas[data-chart]').length"
                           " === document.querySelectorAll('canvas[data-drawn]').length")
    return page.evaluate("""Array.from(document.querySelectorAll('canvas[data-chart]'))
                            .filter(c => Chart.getChart(c)).map(c => c.id)""")


def look_at_home(visit, role: str) -> None:
    """The home page in English and in Urdu: charts drawn (right to left in Urdu), nothing wider than the
    window, screenshots of both; back to English."""
    page = visit.page
    assert sorted(charts_drawn(page)) == ["chart-bands", "chart-enrolment", "chart-payments"]
    assert not page.evaluate("Chart.getChart(document.getElementById('chart-bands')).options.scales.x.reverse")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    visit.screenshot(f"home_{role}_en.png")
    page.locator("a.lang-switch").click()
    page.wait_for_function("() => document.documentElement.dir === 'rtl'")
    assert sorted(charts_drawn(page)) == ["chart-bands", "chart-enrolment", "chart-payments"]
    assert page.evaluate("Chart.getChart(document.getElementById('chart-bands')).options.scales.x.reverse")
    assert page.evaluate("Chart.getChart(document.getElementById('chart-bands')).options.scales.y.position") == "right"
    assert "آپ کا کام" in page.locator("main").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    visit.screenshot(f"home_{role}_ur.png")
    page.locator("a.lang-switch").click()
    page.wait_for_function("() => document.documentElement.dir === 'ltr'")


def test_the_district_officer_works_from_home(visit, working_province):
    page = visit.page
    visit.sign_in("lahore_officer")  # lands on the home page
    with transaction(working_province) as s:
        households = s.execute(text("SELECT COUNT(*) FROM household WHERE district_id = 1")).scalar()
    assert page.locator('[data-figure="households"] dd').inner_text().replace(",", "") == str(households)
    assert "Lahore" in page.locator("h1").inner_text()
    requests, conflicts = queue(page, "change_requests"), queue(page, "conflicts")
    assert requests == 1 and conflicts >= 1
    assert page.locator('[data-queue="failed_payments"]').count() == 0  # payments are the program manager's
    look_at_home(visit, "district_officer")

    # finds a household through the full search, opens it and reads why it is or is not eligible
    page.get_by_role("link", name="Search by name, place or score").click()
    page.wait_for_url("**/search")
    page.get_by_label("Highest score").fill("30")
    page.get_by_role("button", name="Search", exact=True).click()
    first = page.locator("#results-body tr[data-household] a").first
    first.wait_for()
    first.click()
    page.wait_for_url(re.compile(r"/households/\d+$"))
    eligibility = page.locator("#eligibility")
    assert eligibility.locator("tbody tr").count() >= 1
    assert "PMT score" in eligibility.inner_text()  # the reason, in words

    # back home by the brand link; the conflicts queue opens the list behind it; one is closed
    page.locator("a.brand-name").click()
    page.wait_for_url(visit.base + "/")
    page.locator('[data-queue="conflicts"] a').click()
    page.wait_for_url("**/updates#upd-conflicts")
    row = page.locator("#conflicts tr[data-conflict]").first
    row.get_by_label("How it was resolved").fill("NADRA record confirmed at the counter")
    with page.expect_navigation():
        row.get_by_role("button", name="Close").click()
    assert "Conflict closed." in page.locator("#done-notice").inner_text()
    # and the change request waiting for a second person is approved
    req = page.locator("#change-requests tr[data-request]").first
    with page.expect_navigation():
        req.get_by_role("button", name="Approve").click()
    assert "Change approved" in page.locator("#done-notice").inner_text()

    nav_to(page, "Home")
    page.wait_for_url(visit.base + "/")
    assert queue(page, "change_requests") == requests - 1 and queue(page, "conflicts") == conflicts - 1
    assert not visit.foreign and not visit.errors, (visit.foreign, visit.errors)


def test_the_counter_operator_finds_a_household_by_cnic_and_corrects_it(visit, working_province):
    with transaction(working_province) as s:
        person = s.scalars(select(Individual).where(Individual.district_id == 2, Individual.cnic.is_not(None))
                           .order_by(Individual.id.desc())).first()
        households = s.execute(text("SELECT COUNT(*) FROM household WHERE district_id = 2")).scalar()
    page = visit.page
    visit.sign_in("kasur_counter")
    assert "Kasur" in page.locator("h1").inner_text()
    assert page.locator('[data-figure="households"] dd').inner_text().replace(",", "") == str(households)
    assert page.locator('[data-queue="recertification"]').count() == 1
    look_at_home(visit, "counter_operator")

    # the CNIC box at the top of home goes straight to the person's household
    page.get_by_label("CNIC or B-form number").fill(f"{person.cnic[:5]}-{person.cnic[5:12]}-{person.cnic[12]}")
    page.get_by_role("button", name="Find", exact=True).click()
    page.wait_for_url(f"**/households/{person.household_id}#person-{person.id}")
    rooms = page.locator("#e-rooms")
    new = str(int(rooms.input_value()) % 9 + 1)
    rooms.fill(new)
    page.get_by_label("Reference (visit note, document)").fill("counter visit, rooms counted")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(re.compile(r"saved=rooms"))
    assert "Saved: Rooms." in page.locator("#saved").inner_text()
    assert "Rooms" in page.locator("#history tbody tr").first.inner_text()
    with transaction(working_province) as s:
        assert s.execute(text("SELECT rooms FROM household WHERE id = :h"), {"h": person.household_id}).scalar() == int(new)
    assert not visit.foreign and not visit.errors, (visit.foreign, visit.errors)


def test_the_auditor_filters_the_audit_log_and_downloads_it(visit, tmp_path):
    page = visit.page
    visit.sign_in("auditor")
    assert "All Punjab" in page.locator("h1").inner_text()
    refused = queue(page, "refused_access")
    assert refused >= 1
    look_at_home(visit, "auditor")

    # the refused accesses behind the count, then only one user's records, downloaded
    page.locator('[data-queue="refused_access"] a').click()
    page.wait_for_url(re.compile(r"/audit\?outcome=denied"))
    outcomes = page.locator("#audit-log tbody tr").all_inner_texts()
    assert len(outcomes) == refused and all("Denied" in r for r in outcomes)
    page.get_by_label("User").fill("kasur_counter")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    assert "actor=kasur_counter" in page.url
    rows = page.locator("#audit-log tbody tr").all_inner_texts()
    assert rows and all("kasur_counter" in r for r in rows), (page.url, page.locator("main").inner_text()[:1500])
    with page.expect_download() as download:
        page.get_by_role("link", name="Download all as CSV").click()
    saved = tmp_path / "audit.csv"
    download.value.save_as(saved)
    lines = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert len(lines) == len(rows) and {r["actor"] for r in lines} == {"kasur_counter"}
    assert {r["outcome"] for r in lines} == {"denied"}
    assert not visit.foreign and not visit.errors, (visit.foreign, visit.errors)
