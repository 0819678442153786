"""The administrator opens the background worker's page from the navigation in a real browser
(Chromium against uvicorn, as ``test_browser.py``), in English and in Urdu; screenshots in the
test's tmp directory (and $ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from isps.services import worker as w
from tests.conftest import nav_to
from tests.test_browser import Visit, _require_chromium, browser, serve, sqlite_province  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(sqlite_province):
    _require_chromium()
    with serve(sqlite_province) as base:
        yield base


def test_the_administrator_sees_the_worker_in_both_languages(browser, server, sqlite_province, tmp_path):  # noqa: F811
    def refused(e, now):
        raise ConnectionError("SMSC 127.0.0.1:2775 refused the connection")

    events = next(t for t in w.default_tasks() if t.name == "events")
    w.Worker(sqlite_province, [events, w.Task("dci_notify", timedelta(seconds=30), refused)]).run_once()
    visit = Visit(browser, server, tmp_path)
    try:
        page = visit.page
        visit.sign_in("admin")
        nav_to(page, "Background worker")
        page.wait_for_url(server + "/admin/worker")
        rows = page.locator("#worker-tasks tbody tr")
        assert rows.count() == len(w.default_tasks())
        assert "refused the connection" in page.locator("#task-dci_notify").inner_text()
        assert page.locator("#task-events .tag").count() == 0           # not running now
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        visit.screenshot("worker-en.png")
        page.goto(server + "/lang/ur?next=/admin/worker")
        page.wait_for_url(server + "/admin/worker")
        assert page.locator("html").get_attribute("dir") == "rtl"
        assert "پس منظر کا کارکن" in page.locator("h1").inner_text()
        visit.screenshot("worker-ur.png")
        assert visit.errors == [] and visit.foreign == []
    finally:
        visit.context.close()
