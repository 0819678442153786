"""The policy staff's targeting job in a real browser (Chromium driven by Playwright against uvicorn,
as ``test_browser.py``): the program manager fits a PMT model and reads its evaluation, an
administrator approves it, the manager activates it (every household re-scored in the background);
then runs an electricity means test, compares the tests with true welfare, and opens the simulator,
which answers at once and computes after it has loaded. Read again in Urdu. Screenshots go to the
test's tmp directory (and $ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

import re
from datetime import date

import pytest

from isps.access.service import create_user
from isps.db import make_engine, transaction
from isps.migrate import upgrade
from isps.synth.load import load_synthetic
from isps.targeting import alternative, pmt
from tests.conftest import PASSWORD, nav_to
from tests.test_browser import Visit, _require_chromium, browser, serve  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
HOUSEHOLDS = 1_500  # enough surveyed urban households to estimate a model's 37 weights (600 are too few)


@pytest.fixture(scope="module")
def surveyed_province(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('targeting') / 'isps.db'}")
    upgrade(engine)
    load_synthetic(engine, HOUSEHOLDS, seed=11)
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s), on=date(2026, 6, 1))
        alternative.generate_electricity(s, date(2026, 11, 1), 6, 0)
        create_user(s, "admin", PASSWORD, "administrator")
        create_user(s, "manager", PASSWORD, "program_manager")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def server(surveyed_province):
    _require_chromium()
    with serve(surveyed_province) as base:
        yield base


def _press(page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).first.click()


def _no_overflow(page) -> None:
    """Nothing is wider than the window (tables scroll inside their wrapper, never the page)."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_the_policy_job_in_the_browser_and_in_urdu(browser, server, surveyed_province, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    maker, checker = Visit(browser, server, tmp_path), Visit(browser, server, tmp_path)
    try:
        m, c = maker.page, checker.page
        maker.sign_in("manager")
        checker.sign_in("admin")

        # the maker fits a quantile model; the job page follows it to the new draft
        nav_to(m, "PMT models")
        m.wait_for_url(server + "/pmt")
        # first both estimators beside the model in force, nothing stored (isps pmt evaluate)
        _press(m, "Compare only")
        m.locator("#job #eval-summary").wait_for(timeout=120_000)
        assert m.locator("#eval-summary tbody tr").count() == 3
        _no_overflow(m)
        maker.screenshot("pmt_compare_en.png")
        m.goto(server + "/pmt")
        m.get_by_label("Estimator").select_option("quantile")
        _press(m, "Fit")
        m.wait_for_url(re.compile(r".*/pmt/models/\d+\?done=fitted"), timeout=120_000)
        model_id = int(re.search(r"/pmt/models/(\d+)", m.url).group(1))
        assert "stored as a draft" in m.locator("#notice").inner_text()
        summary = m.locator("#eval-summary")
        assert summary.locator("tbody tr").count() == 2  # the model in force and the new one, side by side
        assert 0 < float(summary.locator("tr[data-key='quantile']").get_attribute("data-r2")) < 1
        assert m.locator("#eval-curve tbody tr").count() == 10 and m.locator("#eval-curve svg").count() == 20
        assert "you cannot approve it" in m.locator("#maker-hint").inner_text()
        assert m.get_by_role("button", name="Approve").is_disabled()
        _no_overflow(m)
        maker.screenshot("pmt_model_draft_en.png")

        # the checker finds it waiting on the models page and approves it
        c.goto(server + "/pmt")
        c.locator(f"#pmt-todo li[data-id='{model_id}'] a").click()
        c.wait_for_url(server + f"/pmt/models/{model_id}")
        _press(c, "Approve")
        c.wait_for_url(re.compile(r".*done=approved"))
        assert c.locator("#approved-by").inner_text() == "admin"
        checker.screenshot("pmt_model_approved_en.png")

        # the maker activates it, reading the consequences first; every household is re-scored
        m.goto(server + f"/pmt/models/{model_id}")
        assert f"{HOUSEHOLDS:,} households" in m.locator("#consequences").inner_text()
        maker.screenshot("pmt_activate_en.png")
        _press(m, "Activate and re-score")
        m.wait_for_url(re.compile(r".*done=activated"), timeout=120_000)
        assert m.locator("#model-status").inner_text() == "In force"
        with transaction(surveyed_province) as s:
            assert pmt.active_model(s).id == model_id
        m.goto(server + "/pmt")
        assert m.locator(f"#models tr[data-model='{model_id}']").get_attribute("data-status") == "active"
        maker.screenshot("pmt_models_en.png")

        # a means test: run, its decisions by district, then every test beside PMT against welfare
        nav_to(m, "Means tests")
        m.locator("#run-form").get_by_label("Last month of the window").fill("2026-11")
        _press(m, "Run")
        m.wait_for_url(re.compile(r".*/means-tests/runs/\d+\?done=ran"), timeout=60_000)
        assert int(m.locator("#run-eligible").get_attribute("data-eligible")) > 0
        assert m.locator("#run-districts tbody tr").count() > 1
        maker.screenshot("means_test_run_en.png")
        m.locator(".crumbs a").click()
        m.get_by_role("button", name="Compare").click()
        m.locator("#mt-eval").wait_for()
        assert m.locator("#mt-eval tr[data-method='electricity_means_test']").count() == 1
        _no_overflow(m)
        maker.screenshot("means_tests_en.png")

        # the simulator opens at once, then computes: a spinner, then the results swapped in
        nav_to(m, "Policy simulator")
        m.wait_for_url(re.compile(r".*/simulator"))
        m.locator("#sim-totals").wait_for(timeout=60_000)
        assert m.locator("#sim-totals tbody tr").count() == 3
        m.get_by_label("PMT cut-offs to compare (comma-separated)").fill("25, 40")
        _press(m, "Simulate")
        expect(m.locator("#sim-totals tbody tr")).to_have_count(2, timeout=60_000)
        assert "cutoffs=25" in m.url  # the address says what is shown
        assert "bisp_" not in m.locator("#sim-results").inner_text()  # program names, never codes
        _no_overflow(m)
        maker.screenshot("simulator_en.png")

        # the same pages in Urdu, right to left
        m.locator("a.lang-switch").click()
        m.wait_for_url(re.compile(r".*/simulator"))
        m.locator("#sim-totals").wait_for(timeout=60_000)
        assert m.locator("html").get_attribute("dir") == "rtl"
        _no_overflow(m)
        maker.screenshot("simulator_ur.png")
        for path, name in ((f"/pmt/models/{model_id}", "pmt_model_ur.png"), ("/pmt", "pmt_models_ur.png"),
                           ("/means-tests", "means_tests_ur.png")):
            m.goto(server + path)
            assert m.locator("html").get_attribute("dir") == "rtl"
            _no_overflow(m)
            maker.screenshot(name)
        assert "پی ایم ٹی ماڈل" in m.locator("header.top nav").text_content()

        assert not maker.errors and not checker.errors, maker.errors + checker.errors
        assert not maker.foreign and not checker.foreign
    finally:
        maker.close()
        checker.close()
