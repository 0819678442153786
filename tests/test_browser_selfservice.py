"""The citizen's own pages in a real browser on a phone-sized screen (Chromium driven by Playwright
against uvicorn, as ``test_browser.py``): sign in with the code sent by SMS, read the household's
standing, send the quarterly work report, check a receipt; in English and in Urdu (right to left).
Screenshots go to the test's tmp directory (and $ISPS_SCREENSHOT_DIR when set)."""

from __future__ import annotations

import os
import re
import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from isps.citizen import signin
from isps.db import transaction
from isps.labour import registers
from isps.registry import cnic as cnic_rules
from isps.registry.models import Individual
from tests.test_browser import WAIT_MS, _require_chromium, browser, serve, sqlite_province  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(sqlite_province):  # noqa: F811 - the imported fixture
    _require_chromium()
    with serve(sqlite_province) as base:
        yield base


@pytest.fixture
def texts(monkeypatch):
    """The sign-in codes the server queues (read where the phone would receive them)."""
    sent: list[dict] = []
    real = signin._enqueue

    def capture(session, **message):
        sent.append(message)
        real(session, **message)

    monkeypatch.setattr(signin, "_enqueue", capture)
    return sent


class Phone:
    def __init__(self, browser, base: str, shots: Path, lang: str) -> None:
        self.base, self.shots = base, shots
        self.context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2,
                                           locale="en-GB")
        self.context.set_default_timeout(WAIT_MS)
        if lang == "ur":
            self.context.add_cookies([{"name": "lang", "value": "ur", "url": base}])
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.missing: list[str] = []
        self.page.on("response", lambda r: self.missing.append(r.url) if r.status == 404 else None)

    def shot(self, name: str, full: bool = True) -> None:
        path = self.shots / name
        self.page.screenshot(path=str(path), full_page=full)
        extra = os.environ.get("ISPS_SCREENSHOT_DIR")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / name)

    def fits(self) -> None:
        """Nothing wider than the phone, and every button and field at least 44 px high."""
        wide = self.page.evaluate("document.documentElement.scrollWidth")
        assert wide <= PHONE["width"], f"the page is {wide}px wide on a {PHONE['width']}px phone"
        small = self.page.evaluate("""[...document.querySelectorAll('main button, main input:not([type=hidden]):not([type=radio]), main select, main a.button')]
            .filter(e => e.offsetParent !== null && e.getBoundingClientRect().height < 44).map(e => e.outerHTML.slice(0, 80))""")
        assert small == []


def _citizen(engine) -> tuple[str, str, int]:
    with transaction(engine) as s:
        p = s.scalars(select(Individual).where(
            Individual.cnic.is_not(None), Individual.phone.is_not(None), Individual.date_of_death.is_(None),
            Individual.phone.in_(select(Individual.phone).group_by(Individual.phone).having(func.count() == 1)))
            .order_by(Individual.id.desc())).first()
        if not s.scalars(select(Individual).where(Individual.id == p.id)).first().labour_status == "daily_wager":
            try:
                registers.enrol(s, p, "daily_wager", date(2026, 3, 1), "kasur_counter", booth="B1", source_ref="t")
            except Exception:  # noqa: BLE001 - already on the register from the other language's run
                pass
        return p.cnic, p.phone, p.household_id


@pytest.mark.parametrize("lang", ["en", "ur"])
def test_a_citizen_signs_in_on_a_phone_reads_their_standing_and_reports_work(browser, server, sqlite_province,
                                                                              texts, tmp_path, lang):
    cnic, phone_no, _ = _citizen(sqlite_province)
    phone = Phone(browser, server, tmp_path, lang)
    page = phone.page
    page.goto(server + "/my")
    assert page.locator("html").get_attribute("dir") == ("rtl" if lang == "ur" else "ltr")
    phone.fits()
    phone.shot(f"my_start_{lang}.png")
    page.locator("#cnic").fill(cnic_rules.formatted(cnic))
    page.locator("#phone").fill(phone_no)
    page.locator("form[action='/my/code'] button").click()
    page.locator("#code").wait_for()
    phone.fits()
    phone.shot(f"my_code_{lang}.png")
    code = re.search(r"\b(\d{6})\b", texts[-1]["text"]).group(1)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    page.locator("#code").fill(wrong)
    page.locator("form[action='/my/verify'] button").click()
    page.locator("#code-error").wait_for()
    page.locator("#code").fill(code)
    page.locator("form[action='/my/verify'] button").click()
    page.wait_for_url(server + "/my/home")
    assert cnic_rules.mask(cnic) in page.content() and cnic not in page.content()
    assert page.locator("#programs li").count() >= 1
    phone.fits()
    phone.shot(f"my_home_{lang}.png")
    phone.shot(f"my_home_top_{lang}.png", full=False)

    page.locator("#work input[value='unemployed']").check()
    page.locator("#work button").click()
    page.locator("#my-done").wait_for()
    assert ("recorded" if lang == "en" else "درج") in page.locator("#my-done").inner_text()
    phone.shot(f"my_report_{lang}.png")
    with transaction(sqlite_province) as s:
        assert s.scalars(select(Individual).where(Individual.cnic == cnic)).first().labour_status == "unemployed"

    # a complaint, answered with its receipt; it is listed with its status
    page.locator("#category").select_option("payment_not_received")
    page.locator("#description").fill("Payment of March not received" if lang == "en" else "مارچ کی رقم نہیں ملی")
    page.locator("#grievance-form button").click()
    page.locator("#my-done").wait_for()
    receipt = re.search(r"GR\d+", page.locator("#my-done").inner_text()).group(0)
    assert receipt in page.locator("#grievances").inner_text()
    phone.fits()
    phone.shot(f"my_grievance_{lang}.png")
    page.goto(server + f"/my/status?receipt={receipt}")
    assert page.locator("#receipt-status").is_visible()
    phone.shot(f"my_receipt_{lang}.png")
    page.goto(server + "/my/home")

    page.locator("form.my-signout button").click()
    page.wait_for_url(server + "/my")
    page.goto(server + "/my/status?receipt=OW10237")
    assert page.locator(".alert.error").is_visible()
    phone.shot(f"my_status_{lang}.png")
    assert phone.errors == [] and phone.missing == []
    phone.context.close()
