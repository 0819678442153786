"""The home page's queues and key figures are right and scoped: a Lahore officer's numbers equal counts
computed independently (plain SQL here) for Lahore, a province-wide role's for all Punjab; on both backends."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import text, update

from isps.access.service import Principal
from isps.db import transaction
from isps.interop.feeds import changes
from isps.interop.models import ChangeRequest
from isps.payments import payroll as pr
from isps.programs import cycles, enrolment as en
from isps.services import home
from isps.targeting import pmt
from isps.targeting.eligibility import rules
from tests.test_web import sign_in, text_of
from tests.test_web_updates import _adult, _conflict

TODAY = date.today()
LAHORE, KASUR = 1, 2


@pytest.fixture
def busy(province, tmp_path):
    """The province with work in it: kafaalat enrolled and paid once (paid, failed and unclaimed lines
    dated today), a source conflict and change requests in Lahore and Kasur, one Lahore request late."""
    with transaction(province) as s:
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test", on=date(2026, 6, 1))
        en.set_capacity(s, "bisp_kafaalat", "test", slots=run.eligible - 7)  # a few wait
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "test", date(2026, 6, 1))
        cycle = cycles.open_cycle(s, "bisp_kafaalat", date(2026, 7, 1), "maker")
        cycles.generate_entitlements(s, cycle.id)
        cycles.approve_cycle(s, cycle.id, "checker")
        pr.release_funds(s, "bisp_kafaalat", 100_000_000, "RO-1", "treasury")
        payroll = pr.generate(s, cycle.id, "maker")
        pr.approve(s, payroll.id, "checker")
        pr.export(s, payroll.id, tmp_path)
        data = pr.bank_status_csv(s, payroll.id, seed=3, paid=0.7, failed=0.15, unclaimed=0.15, on=TODAY)
        pr.reconcile(s, data, "status.csv", "ops", on=TODAY)
    for district in (LAHORE, KASUR):
        _conflict(province, district)
    with transaction(province) as s:
        for district, n in ((LAHORE, 2), (KASUR, 1)):
            person = _adult(s, district)
            for i in range(n):
                changes.request_change(s, entity="individual", entity_id=person.id,
                                       changes={"occupation": f"tailor {i}"}, source="operator",
                                       evidence="visit", requested_by="counter1")
        oldest = s.scalar(text("SELECT MIN(id) FROM change_request WHERE status = 'pending' AND district_id = 1"))
        s.execute(update(ChangeRequest).where(ChangeRequest.id == oldest)
                  .values(requested_at=datetime.now() - timedelta(days=home.LATE_DAYS + 3)))
    return province


def one(s, sql: str, **params) -> float:
    return s.execute(text(sql), params).scalar() or 0


def independent(s, district: int | None) -> dict:
    """The figures and queues, counted here in plain SQL, not by the code under test."""
    where = "district_id = :d" if district else "1 = 1"
    d = {"d": district}
    model = pmt.active_model(s).id
    start = date(TODAY.year, 3 * ((TODAY.month - 1) // 3) + 1, 1)
    return {
        "households": one(s, f"SELECT COUNT(*) FROM household WHERE {where}", **d),
        "people": one(s, f"SELECT COUNT(*) FROM individual WHERE date_of_death IS NULL AND {where}", **d),
        "scored": one(s, f"SELECT COUNT(*) FROM pmt_score WHERE model_id = :m AND {where}", m=model, **d),
        "poor": one(s, f"SELECT COUNT(*) FROM pmt_score WHERE model_id = :m AND score <= 32 AND {where}", m=model, **d),
        "enrolled": one(s, f"SELECT COUNT(*) FROM enrolment WHERE program_code = 'bisp_kafaalat' AND status = 'enrolled' "
                           f"AND {where}", **d),
        "waiting": one(s, f"SELECT COUNT(*) FROM enrolment WHERE program_code = 'bisp_kafaalat' AND status = 'waiting' "
                          f"AND {where}", **d),
        "paid": one(s, f"SELECT SUM(amount) FROM payment_instruction WHERE status = 'paid' AND status_on >= :start "
                       f"AND {where}", start=start, **d),
        "paid_lines": one(s, f"SELECT COUNT(*) FROM payment_instruction WHERE status = 'paid' AND {where}", **d),
        "instructions": one(s, f"SELECT COUNT(*) FROM payment_instruction WHERE {where}", **d),
        "change_requests": one(s, f"SELECT COUNT(*) FROM change_request WHERE status = 'pending' AND {where}", **d),
        "conflicts": one(s, f"SELECT COUNT(*) FROM source_conflict WHERE status = 'open' AND {where}", **d),
        "recertification": one(s, f"SELECT COUNT(*) FROM household WHERE verified_on < :cut AND {where}",
                               cut=TODAY - timedelta(days=3 * 365), **d),
        "failed": one(s, f"SELECT COUNT(*) FROM payment_instruction WHERE status = 'failed' AND {where}", **d),
        "unclaimed": one(s, f"SELECT COUNT(*) FROM payment_instruction WHERE status = 'unclaimed' AND {where}", **d),
    }


def test_a_lahore_officers_figures_and_queues_are_lahores(busy):
    with transaction(busy) as s:
        officer = Principal("lahore_officer", "district_officer", LAHORE)
        mine, want = home.figures(s, officer.scope, TODAY), independent(s, LAHORE)
        punjab, want_all = home.figures(s, None, TODAY), independent(s, None)
        queues = {q.key: q.count for q in home.queues(s, officer, TODAY)}
        manager = {q.key: q.count for q in home.queues(s, Principal("manager", "program_manager", None), TODAY)}
    for figs, expected in ((mine, want), (punjab, want_all)):
        assert figs.households == expected["households"] and figs.people == expected["people"]
        assert figs.scored == expected["scored"] == sum(b["households"] for b in figs.pmt_bands)
        assert figs.poor == expected["poor"] and figs.poor_cutoff == 32
        assert figs.poor_share == pytest.approx(round(100 * expected["poor"] / expected["scored"], 1))
        kafaalat = next(p for p in figs.enrolment if p["code"] == "bisp_kafaalat")
        assert (kafaalat["enrolled"], kafaalat["waiting"]) == (expected["enrolled"], expected["waiting"])
        assert figs.paid_quarter == pytest.approx(expected["paid"]) and figs.paid_quarter_count == expected["paid_lines"]
        (cycle,) = figs.payments_by_cycle
        assert sum(cycle["counts"].values()) == expected["instructions"]
    # scoped: Lahore is a part of Punjab, not all of it, and every kind of number is there to see
    assert 0 < mine.households < punjab.households and 0 < mine.people < punjab.people
    assert want["paid"] > 0 and want["failed"] > 0 and want["waiting"] + want_all["waiting"] > 0
    assert want["change_requests"] == 2
    assert queues == {"change_requests": 2, "late_change_requests": 1,
                      "conflicts": want["conflicts"], "late_conflicts": 0, "review": 0,
                      "recertification": want["recertification"], "applications": 0, "late_applications": 0,
                      "my_grievances": 0, "late_grievances": 0}
    assert want["conflicts"] >= 1 and want["recertification"] > 0
    # the program manager's work is province-wide: failed payments to retry (none retried yet), unclaimed
    assert manager["failed_payments"] == want_all["failed"] > want["failed"]
    assert manager["unclaimed_payments"] == want_all["unclaimed"]
    assert manager["late_change_requests"] == 1 and manager["cycles"] == 0 and manager["payrolls"] == 0


def _figure(page: str, name: str) -> str:
    return text_of(re.search(rf'<div data-figure="{name}">(.*?)</div>', page, re.S).group(1))


def _queue(page: str, key: str) -> tuple[int, str | None]:
    item = re.search(rf'<li class="queue[^"]*" data-queue="{key}" data-count="(\d+)">(.*?)</li>', page, re.S)
    link = re.search(r'<a href="([^"]+)"', item.group(2))
    return int(item.group(1)), link.group(1) if link else None


def test_the_home_page_shows_each_role_its_work_and_scope(client, busy):
    with transaction(busy) as s:
        lahore, punjab = independent(s, LAHORE), independent(s, None)
    sign_in(client, "lahore_officer")
    page = client.get("/").text
    assert "Lahore" in text_of(page.split("<main")[1].split("</h1>")[0])
    assert _figure(page, "households").endswith(f"{int(lahore['households']):,}")
    assert f"{int(lahore['people']):,}" in _figure(page, "people")
    assert f"Rs {lahore['paid']:,.0f}" in _figure(page, "paid_quarter")
    row = re.search(r'<tr data-program="bisp_kafaalat">(.*?)</tr>', page, re.S).group(1)
    assert [int(n.replace(",", "")) for n in re.findall(r'<td class="num">([\d,]+)</td>', row)] == \
        [lahore["enrolled"], lahore["waiting"]]
    assert _queue(page, "change_requests") == (2, "/updates#upd-requests")
    assert _queue(page, "late_change_requests")[0] == 1
    assert _queue(page, "conflicts") == (lahore["conflicts"], "/updates#upd-conflicts")
    assert 'data-queue="failed_payments"' not in page  # a district officer does not pay
    assert 'id="cnic"' in page and 'href="/search"' in page  # the search box at the top
    for chart in ("enrolment", "bands", "payments"):  # each chart has its figures as a table too
        assert f'id="chart-{chart}"' in page and f'id="table-{chart}"' in page
    assert "<script>" not in page and 'src="/static/vendor/chart.umd.min.js"' in page

    sign_in(client, "manager")
    page = client.get("/").text
    assert _figure(page, "households").endswith(f"{int(punjab['households']):,}")
    assert _queue(page, "failed_payments") == (punjab["failed"], "/payments")
    assert _queue(page, "unclaimed_payments") == (punjab["unclaimed"], "/payments")
    # a queue links to the first of its lists the app serves: the deliveries' own page where there is one
    from isps.web.home import _paths

    served = _paths(client.app.routes)
    assert _queue(page, "refused_deliveries")[1] == ("/feeds/deliveries" if "/feeds/deliveries" in served
                                                     else "/updates#upd-deliveries")

    sign_in(client, "lahore_officer")
    client.get("/households/20000000001")  # a Kasur household: refused and audited
    sign_in(client, "auditor")
    page = client.get("/").text
    count, href = _queue(page, "refused_access")
    assert count >= 1 and href.startswith("/audit?outcome=denied&amp;since=")
    assert "Audit log" in text_of(page.split("</header>")[0])


def test_old_search_links_go_to_the_search_page(client, province):
    sign_in(client, "manager")
    r = client.get("/?search=1&pmt_max=50", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/search?search=1&pmt_max=50"
    page = client.get("/?search=1&pmt_max=50").text
    assert "data-household=" in page and 'action="/search"' in page  # the results, on the search page
    assert client.get("/search").status_code == 200


def test_the_home_page_reads_in_urdu(client, busy):
    from isps.web import lang

    ur = lang.catalogue("ur")
    sign_in(client, "lahore_officer")
    client.get("/lang/ur?next=/")
    page = client.get("/").text
    assert '<html lang="ur" dir="rtl">' in page
    body = text_of(page)
    for key in ("home.work", "home.households", "home.people", "home.queue.conflicts", "nav.home"):
        assert ur[key] in body, key
    assert "Households" not in body and "Your work" not in body


def test_the_audit_filter_form_with_empty_fields_filters_by_what_was_filled(client, province):
    """The auditor's filter form sends every field; the empty ones (district, dates) are no filter, not an error."""
    sign_in(client, "auditor")
    r = client.get("/audit?actor=auditor&entity=&entity_id=&action=&outcome=&district_id=&since=&until=")
    assert r.status_code == 200 and 'id="audit-log"' in r.text
    assert client.get("/audit?district_id=abc").status_code in (400, 422)
