"""A counter operator's labour-registry work in a real browser (Chromium driven by Playwright against
uvicorn, as ``test_browser.py``): from the main navigation (Registry → Labour registries) register a
daily wager at a booth, record a day another wager worked, offer the day's work and see who got it
(the one idle longest); register a shop and print its certificate; open the job board and see a
laid-off worker matched to a vacancy. The pages are read again in Urdu. Screenshots go to the test's
tmp directory (and $ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from isps.db import transaction
from isps.labour import jobs, wagers
from isps.registry.cnic import formatted
from isps.registry.models import Individual
from tests.conftest import nav_to
from tests.test_browser import Visit, _require_chromium, browser, serve, sqlite_province  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
KASUR = 2
BOOTH = "Lari Adda chowk"


@pytest.fixture(scope="module")
def server(sqlite_province):  # noqa: F811
    _require_chromium()
    with serve(sqlite_province) as base:
        yield base


def _press(page, name: str, within=None) -> None:
    """Click a form's button and wait for the page it answers with."""
    with page.expect_navigation():
        (within or page).get_by_role("button", name=name, exact=True).first.click()


def _no_overflow(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def _kasur_adults(engine, k: int) -> list[tuple[int, str, str]]:
    """Living adults of Kasur holding their CNIC alone, from distinct households: (id, CNIC, name)."""
    once = select(Individual.cnic).where(Individual.cnic.is_not(None)).group_by(Individual.cnic).having(
        func.count() == 1)
    out, homes = [], set()
    with transaction(engine) as s:
        for p in s.scalars(select(Individual).where(
                Individual.district_id == KASUR, Individual.cnic.in_(once), Individual.date_of_death.is_(None),
                Individual.date_of_birth <= date(2000, 1, 1)).order_by(Individual.id)):
            if p.household_id not in homes:
                homes.add(p.household_id)
                out.append((p.id, formatted(p.cnic), p.full_name))
            if len(out) == k:
                break
    assert len(out) == k
    return out


def test_a_counter_operator_runs_a_booth_prints_a_certificate_and_reads_the_job_board(
        browser, server, sqlite_province, tmp_path):  # noqa: F811
    today = date.today()
    old, new, owner, laid_off = _kasur_adults(sqlite_province, 4)
    with transaction(sqlite_province) as s:
        # already at the booth for a month; the job board has a laid-off welder and a vacancy for one
        wagers.register_wager(s, old[1], BOOTH, today - timedelta(days=30), "booth.clerk")
        jobs.register_laid_off(s, laid_off[1], today - timedelta(days=20), "welder,electrician", "counter")
        vacancy = jobs.post_vacancy(s, KASUR, "Kasur Tanneries Co-operative", "Maintenance welder", "welder", 2,
                                    today, "counter").id
    visit = Visit(browser, server, tmp_path)
    try:
        page = visit.page
        visit.sign_in("kasur_counter")

        # 1. the booth: Registry → Labour registries, register a wager, record a day, offer the work
        nav_to(page, "Labour registries")
        page.wait_for_url(server + "/labour/wagers")
        form = page.locator("#wager-form")
        form.get_by_label("CNIC", exact=True).fill(new[1])
        form.get_by_label("Booth", exact=True).fill(BOOTH)
        form.get_by_label("Registered on", exact=True).fill((today - timedelta(days=10)).isoformat())
        _press(page, "Register daily wager", form)
        assert "registered at the booth" in page.locator("#notice").inner_text()
        assert new[2] in page.locator("#wagers").inner_text()
        # the older wager found two days' work on his own this week: he is idle since then
        form = page.locator("#day-form")
        form.get_by_label("CNIC", exact=True).fill(old[1])
        form.get_by_label("Day worked", exact=True).fill((today - timedelta(days=1)).isoformat())
        _press(page, "Record day", form)
        assert "counts in the rotation" in page.locator("#notice").inner_text()
        form = page.locator("#offer-form")
        form.get_by_label("Booth", exact=True).fill(BOOTH)
        form.get_by_label("Employer", exact=True).fill("Kasur bypass road")
        form.get_by_label("Work", exact=True).fill("Loading bricks")
        _press(page, "Offer and pick by turn", form)
        picks = page.locator("#picks").inner_text()
        assert new[2] in picks and old[2] not in picks
        _no_overflow(page)
        visit.screenshot("labour_wagers_en.png")

        # 2. a shop registered goes to its certificate, which prints without the navigation
        page.get_by_role("navigation", name="Labour registries").get_by_role("link", name="Shops").click()
        page.wait_for_url(server + "/labour/shops")
        form = page.locator("#shop-form")
        form.get_by_label("Owner's CNIC", exact=True).fill(owner[1])
        form.get_by_label("Shop name", exact=True).fill("Madina Karyana Store")
        form.get_by_label("Trade", exact=True).fill("Grocery")
        form.get_by_label("Address", exact=True).fill("Main Bazar, Kasur")
        _press(page, "Register and print certificate", form)
        assert re.search(r"/labour/shops/PSR-02-\d{6}/certificate$", page.url)
        number = page.locator("#certificate-no").inner_text()
        assert page.locator("#shop-name").inner_text() == "Madina Karyana Store"
        assert owner[2] in page.locator("#certificate").inner_text()
        visit.screenshot("labour_certificate_en.png")
        page.emulate_media(media="print")
        assert not page.locator("header.top").is_visible() and page.locator("#certificate").is_visible()
        visit.screenshot("labour_certificate_print.png")
        page.emulate_media(media="screen")

        # 3. the job board: the vacancy and the laid-off worker it matches
        page.goto(server + "/labour/shops")
        assert number in page.locator("#shops").inner_text()
        page.get_by_role("navigation", name="Labour registries").get_by_role("link", name="Job board").click()
        page.wait_for_url(server + "/labour/jobs")
        page.locator("#vacancies").get_by_role("link", name="Maintenance welder").click()
        page.wait_for_url(server + f"/labour/jobs/{vacancy}")
        assert laid_off[2] in page.locator("#matches").inner_text()
        _no_overflow(page)
        visit.screenshot("labour_match_en.png")

        # in Urdu: right to left, translated, nothing wider than the window
        page.locator("a.lang-switch").click()
        page.wait_for_url(re.compile(r"/labour/jobs/\d+"))
        assert page.locator("html").get_attribute("dir") == "rtl"
        assert laid_off[2] in page.locator("#matches").inner_text()
        _no_overflow(page)
        visit.screenshot("labour_match_ur.png")
        for path, shot in (("/labour/wagers", "labour_wagers_ur.png"), ("/labour/jobs", "labour_jobs_ur.png"),
                           ("/labour/shops", "labour_shops_ur.png"),
                           (f"/labour/shops/{number}/certificate", "labour_certificate_ur.png")):
            page.goto(server + path)
            assert page.locator("html").get_attribute("dir") == "rtl"
            _no_overflow(page)
            visit.screenshot(shot)
        page.locator("a.lang-switch").click()
        page.goto(server + "/labour/jobs")
        visit.screenshot("labour_jobs_en.png")
        page.goto(server + "/labour/shops")
        visit.screenshot("labour_shops_en.png")
        assert visit.errors == [] and visit.foreign == []
    finally:
        visit.close()
