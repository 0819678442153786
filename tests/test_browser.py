"""The web app in a real browser: Chromium driven by Playwright against the app served by uvicorn.

One backend is enough here (SQLite); the pages' behaviour on both backends is covered by
``test_web.py``. The browser is Debian's chromium at /usr/bin/chromium; where it is missing
the tests are skipped, except in CI (CI=true), where they fail. Every request the page makes
must stay on the app's own origin: the counter may be offline. Screenshots go to the test's
tmp directory, and also to $ISPS_SCREENSHOT_DIR when that is set.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from isps.db import make_engine, transaction
from tests.conftest import PASSWORD, nav_to

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def sqlite_province(tmp_path_factory, templates):
    """The same small province as conftest's ``province`` (600 households, seed 7, one user per role), on
    SQLite: a copy of the process's template."""
    path = tmp_path_factory.mktemp("browser") / "isps.db"
    shutil.copyfile(templates.sqlite("province"), path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(engine):
    """The app on ``engine`` served by uvicorn in a thread on a free port: its base address."""
    import uvicorn

    from isps.api.app import create_app

    app = create_app(engine, secret="browser-test-secret")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app did not start under uvicorn")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(sqlite_province):
    _require_chromium()
    with serve(sqlite_province) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


WAIT_MS = 90_000  # how long a step may wait for the page (Playwright: 30 s)


class Visit:
    """A browser tab on a laptop-sized screen that records console errors and any request off the app's origin."""

    def __init__(self, browser, base: str, shots: Path) -> None:
        self.base = base
        self.shots = shots
        self.context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
        # a shared 2-core machine under load 10 once took over Playwright's default 30 s to answer a
        # sign-in; a wait that long means slow, not wrong, and a wrong page still fails on its checks
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route(re.compile(r".*"), self._only_own_origin)

    def _only_own_origin(self, route) -> None:
        if route.request.url.startswith(self.base):
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def sign_in(self, username: str) -> None:
        self.page.goto(self.base + "/")
        assert "/login" in self.page.url
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        # the home page's answer is enough: the checks that follow wait for what they read, and a
        # stylesheet, script or font slow to arrive must not hold the sign-in until the "load" event
        try:
            self.page.wait_for_url(self.base + "/", wait_until="commit")
        except Exception as exc:  # noqa: BLE001 - say where the browser was instead of only "timeout"
            text = self.page.locator("body").inner_text(timeout=5_000)[:600] if self.page.url else ""
            raise AssertionError(f"{username} was not signed in: the browser is at {self.page.url}: {text!r} "
                                 f"({type(exc).__name__})") from exc

    def screenshot(self, name: str) -> Path:
        path = self.shots / name
        self.page.screenshot(path=str(path), full_page=True)
        extra = os.environ.get("ISPS_SCREENSHOT_DIR")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / name)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, server, tmp_path):
    v = Visit(browser, server, tmp_path)
    yield v
    v.close()


def _points(page) -> tuple[list[float], float]:
    parts = [float(x) for x in page.locator("#breakdown [data-points], details.still [data-points]")
             .evaluate_all("els => els.map(e => e.dataset.points)")]
    total = float(page.locator("#breakdown tr.total").get_attribute("data-total"))
    return parts, total


def test_an_officer_searches_opens_a_household_and_reads_it_in_urdu(visit):
    page = visit.page
    visit.sign_in("lahore_officer")
    header = page.locator("header.top")
    assert "lahore_officer" in header.inner_text() and "District officer" in header.inner_text()
    nav_to(page, "Search the registry")  # from the home page
    page.wait_for_url("**/search")
    assert page.locator("#district_id").is_disabled()

    # search: results arrive through htmx, the address bar keeps the filters
    page.get_by_label("Lowest score").fill("0")
    page.get_by_role("button", name="Search", exact=True).click()
    rows = page.locator("#results-body tr[data-household]")
    rows.first.wait_for()
    page.wait_for_url(re.compile(r"/search\?.*pmt_min=0"))
    first_page = rows.count()
    assert first_page == 25
    assert set(rows.evaluate_all("els => els.map(e => e.dataset.district)")) == {"1"}
    masked = page.locator("#results-body td.mono span").first.inner_text()
    assert "*****" in masked
    page.get_by_role("link", name="Show more").click()
    page.wait_for_function("n => document.querySelectorAll('#results-body tr[data-household]').length > n", arg=first_page)
    assert rows.count() > first_page
    visit.screenshot("search_en.png")

    # the household, opened from the results
    household_id = rows.first.get_attribute("data-household")
    rows.first.get_by_role("link").click()
    page.wait_for_url(f"**/households/{household_id}")
    assert household_id in page.locator("h1").inner_text()
    assert page.locator("#members tbody tr").count() >= 1
    parts, total = _points(page)
    score = float(page.locator(".score-value").get_attribute("data-score"))
    assert sum(parts) == pytest.approx(total, abs=1e-4)
    assert min(max(total, 0), 100) == pytest.approx(score, abs=1e-3)
    assert page.locator("#breakdown svg.bar").count() >= 2
    assert "Registered" in page.locator("#history").inner_text()
    visit.screenshot("household_en.png")

    # Urdu: right to left, translated labels, Urdu district name
    page.locator("a.lang-switch").click()
    page.wait_for_url(f"**/households/{household_id}")
    assert page.locator("html").get_attribute("dir") == "rtl"
    assert page.locator("html").get_attribute("lang") == "ur"
    body = page.locator("body").inner_text()
    assert "افرادِ خانہ" in body and "تاریخچہ" in body and "لاہور" in body and "اسکور کیسے بنا" in body
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    # the Nastaliq font shipped with the app (not whatever the machine has) draws the Urdu letters
    page.evaluate("document.fonts.ready")
    loaded = page.evaluate("""Array.from(document.fonts).filter(f => f.family.replace(/"/g, '') === 'ISPS Urdu')
                              .map(f => f.status)""")
    assert "loaded" in loaded, loaded
    assert page.evaluate("document.fonts.check('16px \"ISPS Urdu\"', 'ہ')")
    visit.screenshot("household_ur.png")
    page.goto(visit.base + "/search?search=1&pmt_max=50")
    page.locator("#results-body tr[data-household]").first.wait_for()
    visit.screenshot("search_ur.png")
    page.locator("a.lang-switch").click()
    page.wait_for_function("document.documentElement.dir === 'ltr'")

    assert not visit.foreign, f"requests off the app's origin: {visit.foreign}"
    assert not visit.errors, f"browser console errors: {visit.errors}"


def test_an_edit_in_the_browser_rescores_the_household(visit):
    page = visit.page
    visit.sign_in("admin")
    page.goto(visit.base + "/search")
    page.get_by_label("Highest score").fill("70")
    page.get_by_label("Lowest score").fill("20")
    page.get_by_role("button", name="Search", exact=True).click()
    link = page.locator("#results-body tr[data-household] a").first
    link.wait_for()
    link.click()
    page.wait_for_url(re.compile(r"/households/\d+$"))
    before = float(page.locator(".score-value").get_attribute("data-score"))
    car = page.locator("#e-car")
    had_car = car.input_value() == "yes"
    car.select_option("no" if had_car else "yes")
    page.get_by_label("Reference (visit note, document)").fill("counter visit")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(re.compile(r"saved=car"))
    assert "Saved: Car." in page.locator("#saved").inner_text()
    after = float(page.locator(".score-value").get_attribute("data-score"))
    assert after != pytest.approx(before, abs=1e-3)
    history = page.locator("#history tbody tr").first.inner_text()
    assert "Car" in history and "Operator" in history and "admin" in history and "counter visit" in history
    assert not visit.foreign and not visit.errors, (visit.foreign, visit.errors)


def test_a_cnic_typed_at_the_counter_opens_the_household(visit, sqlite_province):
    from sqlalchemy import select

    from isps.registry.models import Individual

    with transaction(sqlite_province) as s:
        person = s.scalars(select(Individual).where(Individual.district_id == 2, Individual.cnic.is_not(None))
                           .order_by(Individual.id)).first()
    page = visit.page
    visit.sign_in("kasur_counter")
    page.get_by_label("CNIC or B-form number").fill(f"{person.cnic[:5]}-{person.cnic[5:12]}-{person.cnic[12]}")
    page.get_by_role("button", name="Find", exact=True).click()
    page.wait_for_url(f"**/households/{person.household_id}#person-{person.id}")
    assert person.full_name in page.locator(f"#person-{person.id}").inner_text()
    page.goto(visit.base + "/")
    page.get_by_label("CNIC or B-form number").fill("12345")
    page.get_by_role("button", name="Find", exact=True).click()
    from playwright.sync_api import expect

    expect(page.locator("#cnic-result")).to_contain_text("13 digits")
    assert not visit.foreign and not visit.errors, (visit.foreign, visit.errors)
