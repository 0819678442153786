"""Messages in a real browser (Chromium through Playwright against uvicorn, as test_browser.py): a
Kasur counter operator opens a household, reads the messages ISPS sent it (English and Urdu texts,
delivered, failed), stops messages to a member's phone at the citizen's request, and opens the
message list from the navigation; in English and in Urdu (right to left). Screenshots go to the
test's tmp directory (and $ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from isps.db import transaction
from isps.messaging import dispatch, queue
from isps.messaging.phones import normalise
from tests.conftest import nav_to
from tests.test_browser import Visit, _require_chromium, browser, serve, sqlite_province  # noqa: F401 - fixtures
from tests.test_browser_enrol import _section

pytestmark = pytest.mark.browser


class Delivered:
    name = "test"

    def send(self, message_id, phone, body):
        return f"t-{message_id}"

    def start(self, on_text, on_receipt):
        return None

    def close(self):
        return None


@pytest.fixture(scope="module")
def messaged(sqlite_province):  # noqa: F811 - the imported fixture
    engine = sqlite_province
    with transaction(engine) as s:
        household, person, phone, name = s.execute(text("""SELECT household_id, id, phone, full_name FROM individual
            WHERE district_id = 2 AND phone IS NOT NULL AND date_of_death IS NULL ORDER BY id LIMIT 1""")).one()
        queue.enqueue(s, kind="pickup", phone=phone, key="b-pickup", household_id=household, district_id=2, lang="en",
                      text="ISPS bisp_kafaalat: Rs 8,500 is ready for you. Collect it at Kasur agent 1 on 06 Jul 2026 "
                           "between 09:00 and 10:00, token 3. Bring your original CNIC for the fingerprint check.")
        queue.enqueue(s, kind="paid", phone=phone, key="b-paid", household_id=household, district_id=2,
                      text="ISPS بینظیر کفالت: 2026-07-10 کو آپ کو 8500 روپے کی ادائیگی درج کی گئی۔ اگر آپ کو پوری رقم "
                           "نہیں ملی تو 8123 پر پیغام بھیجیں یا کال کریں۔")
    dispatch.send_due(engine, Delivered())
    with transaction(engine) as s:
        dispatch.record_receipt(s, "t-1", "delivered", datetime.now())  # the pickup message reached the phone
        queue.enqueue(s, kind="status", phone="03451234567", key="b-failed", household_id=household, district_id=2,
                      lang="en", text="ISPS: your application OW10236 is with the district officer.")
        s.execute(text("UPDATE sms_message SET status = 'failed', attempts = 5, "
                       "error = 'gave up after 5 attempts: throttled' WHERE key = 'b-failed'"))
    return engine, household, person, normalise(phone), name


@pytest.fixture(scope="module")
def server(messaged):
    _require_chromium()
    with serve(messaged[0]) as base:
        yield base


def test_a_counter_reads_a_households_messages_and_stops_them_in_english_and_urdu(browser, server, messaged,  # noqa: F811
                                                                                tmp_path):
    engine, household, person, phone, name = messaged
    v = Visit(browser, server, tmp_path)
    try:
        p = v.page
        v.sign_in("kasur_counter")
        p.goto(f"{server}/households/{household}")
        panel = p.locator("section#messages")
        panel.wait_for()
        rows = panel.locator("#messages-table tbody tr")
        assert rows.count() == 3
        assert [rows.nth(k).get_attribute("data-status") for k in range(3)] == ["failed", "sent", "delivered"]
        said = panel.inner_text()
        assert "Collect it at Kasur agent 1" in said and "8500 روپے" in said and "gave up after 5 attempts" in said
        assert phone not in said and "*****" in said
        member = panel.locator(f"li[data-individual='{person}']")
        member.get_by_role("button", name="Stop messages").click()
        p.locator(f"section#messages li[data-individual='{person}'][data-opted-out='yes']").wait_for()
        assert "no more messages" in p.locator("#msg-outcome").inner_text()
        v.screenshot("messages_household_en.png")
        _section(v, "section#messages", "messages_panel_en.png")
        with transaction(engine) as s:
            assert queue.enqueue(s, kind="reminder", phone=phone, text="x", key="b-later").status == "suppressed"

        p.locator("a.lang-switch").click()
        p.wait_for_url(f"**/households/{household}")
        p.locator("section#messages").wait_for()
        assert p.locator("html").get_attribute("dir") == "rtl"
        urdu = p.locator("section#messages").inner_text()
        assert "پیغامات" in urdu and "موصول ہو گیا" in urdu and "پیغامات بند کروا چکے ہیں" in urdu
        assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        _section(v, "section#messages", "messages_panel_ur.png")

        nav_to(p, "پیغامات (SMS)")
        p.wait_for_url("**/messages")
        assert p.locator("#message-list tbody tr").count() == 3  # the district's (b-later has no district)
        assert "قطار" in p.locator("h1").inner_text() or "پیغامات" in p.locator("h1").inner_text()
        v.screenshot("messages_list_ur.png")
        p.locator("a.lang-switch").click()
        p.wait_for_function("document.documentElement.dir === 'ltr'")
        p.get_by_label("Status").select_option("failed")
        p.get_by_role("button", name="Filter").click()
        p.wait_for_url("**/messages?*status=failed*")
        assert p.locator("#message-list tbody tr").count() == 1
        assert "Rows 1–1 of 1" in p.locator("#messages-total").inner_text()
        v.screenshot("messages_list_en.png")
        assert v.errors == [] and v.foreign == []
    finally:
        v.close()
