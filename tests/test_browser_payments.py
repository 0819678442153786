"""The payment job in a real browser (Chromium driven by Playwright against uvicorn, as
``test_browser.py``): a maker and a checker, each in a browser of their own, release funds, open,
compute and approve a cycle, make, approve and export its payroll, download the pain.001 file,
upload the bank's status file, retry failures and return unclaimed money; then the payroll is read
in Urdu. Screenshots go to the test's tmp directory (and $ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

import os
import re
from datetime import date, timedelta

import pytest

from isps.db import transaction
from isps.payments import payroll as pr
from isps.programs import enrolment as en
from isps.targeting.eligibility import rules
from tests.test_browser import Visit, _require_chromium, browser, serve, sqlite_province  # noqa: F401 - fixtures
from tests.conftest import nav_to

pytestmark = pytest.mark.browser
CODE = "bisp_kafaalat"


@pytest.fixture(scope="module")
def paying_province(sqlite_province):  # noqa: F811 - the imported fixture
    """``test_browser.py``'s small SQLite province with bisp_kafaalat's eligible households enrolled."""
    with transaction(sqlite_province) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, CODE)
        run = rules.run(s, row, "test", on=date(2026, 6, 1))
        en.enrol_from_run(s, CODE, run.id, "test", date(2026, 6, 1))
    return sqlite_province


@pytest.fixture(scope="module")
def server(paying_province, tmp_path_factory):
    _require_chromium()
    old = os.environ.get("ISPS_VAR_DIR")
    os.environ["ISPS_VAR_DIR"] = str(tmp_path_factory.mktemp("var"))  # the server's payments folder
    try:
        with serve(paying_province) as base:
            yield base
    finally:
        if old is None:
            os.environ.pop("ISPS_VAR_DIR", None)
        else:
            os.environ["ISPS_VAR_DIR"] = old


def _press(page, name: str, within=None) -> None:
    """Click a form's button and wait for the page it answers with."""
    with page.expect_navigation():
        (within or page).get_by_role("button", name=name, exact=True).first.click()


def _no_overflow(page) -> None:
    """Nothing is wider than the window (tables scroll inside their wrapper, never the page)."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_maker_and_checker_pay_a_cycle_in_the_browser_and_read_it_in_urdu(browser, server, paying_province,  # noqa: F811
                                                                         tmp_path):
    maker, checker = Visit(browser, server, tmp_path), Visit(browser, server, tmp_path)
    try:
        m, c = maker.page, checker.page
        maker.sign_in("manager")
        checker.sign_in("admin")

        # the maker: from the main navigation to the payments home; funds released, a cycle opened and computed
        nav_to(m, "Payments")
        m.wait_for_url(server + "/payments")
        card = m.locator(f"#program-{CODE}")
        card.get_by_label("Amount (Rs)").fill("100,000,000")
        card.get_by_label("Treasury release order").fill("RO-2026-07")
        _press(m, "Release", card)
        assert "Rs 100,000,000 released" in m.locator("#notice").inner_text()
        card = m.locator(f"#program-{CODE}")
        card.get_by_label("A day in the period").fill("2026-07-01")
        _press(m, "Open", card)
        _press(m, "Compute entitlements", m.locator(f"#cycles-{CODE}"))
        assert "entitlements computed" in m.locator("#notice").inner_text()
        assert "second person must approve" in m.locator(f"#cycles-{CODE}").inner_text()
        _no_overflow(m)
        maker.screenshot("payments_home_en.png")

        # the checker approves the cycle from the list of what waits for them
        c.goto(server + "/payments")
        _press(c, "Approve", c.locator('#waiting li[data-todo="approve_cycle"]'))
        assert "approved" in c.locator("#notice").inner_text()

        # the maker makes the payroll; the checker approves it
        m.goto(server + "/payments")
        _press(m, "Make the payroll", m.locator('#waiting li[data-todo="make_payroll"]'))
        assert re.search(r"/payments/payrolls/\d+$", m.url)
        payroll_url = m.url
        payroll_id = int(payroll_url.rsplit("/", 1)[1])
        assert m.locator("#needs-second").is_visible()
        c.goto(payroll_url)
        _press(c, "Approve", c.locator("#steps"))
        assert "approved" in c.locator("#notice").inner_text()

        # the maker writes the files and downloads the pain.001 file
        m.goto(payroll_url)
        _press(m, "Write the files")
        links = m.locator("#files a")
        assert links.count() == 2
        with m.expect_download() as got:
            m.locator("#files a", has_text=".xml").click()
        content = open(got.value.path(), encoding="utf-8").read()
        assert "pain.001.001.09" in content and "<GrpHdr>" in content

        # the bank's status file, with one line for a payment never made
        day = date.today() - timedelta(days=100)
        with transaction(paying_province) as s:
            data = pr.bank_status_csv(s, payroll_id, paid=0.8, failed=0.1, unclaimed=0.1, on=day)
        status = tmp_path / "bank-status.csv"
        status.write_bytes(data + f"E999999999-1,paid,10.00,{day.isoformat()},BX,1\n".encode())
        m.locator("#status-file").set_input_files(str(status))
        _press(m, "Upload and apply")
        assert m.locator("#rejected").inner_text() == "1"
        assert "E999999999-1" in m.locator("#rejected-lines").inner_text()
        _no_overflow(m)
        maker.screenshot("payroll_status_en.png")

        # retry the failures, return what was unclaimed for 90 days
        m.goto(payroll_url)
        _press(m, "Retry failed payments")
        assert "tried again" in m.locator("#notice").inner_text()
        m.get_by_label("Unclaimed for at least (days)").fill("90")
        _press(m, "Return to the fund")
        assert "returned to the program funds" in m.locator("#notice").inner_text()
        assert "The ledger balances." in m.locator("#ledger-state").inner_text()
        _no_overflow(m)
        maker.screenshot("payroll_en.png")

        # in Urdu: right to left, translated, nothing wider than the window
        m.locator("a.lang-switch").click()
        m.wait_for_url(re.compile(r"/payments/payrolls/\d+"))
        assert m.locator("html").get_attribute("dir") == "rtl"
        assert "ادائیگیاں" in m.locator("header.top").inner_text()
        assert "کھاتہ متوازن ہے۔" in m.locator("#ledger-state").inner_text()
        _no_overflow(m)
        maker.screenshot("payroll_ur.png")
        m.goto(server + "/payments")
        _no_overflow(m)
        maker.screenshot("payments_home_ur.png")
        assert maker.errors == [] and checker.errors == []
        assert maker.foreign == [] and checker.foreign == []
    finally:
        maker.close()
        checker.close()
