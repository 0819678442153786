"""Lists in a chosen order (issue 12): each sortable column pages by the keyset (value, id), so
walking the pages gives every row once, in order, with ties and NULLs across page boundaries;
the headers say their order (aria-sort); a sort the list does not offer is a 400 page. The
search results export what the search shows (filters, order), CNICs masked, audited. Tehsils
show their Urdu names on Urdu pages."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, text

from isps.access.models import AuditRecord
from isps.access.service import TRAIL_SORTS, audit_trail
from isps.db import transaction
from isps.keyset import Sort
from isps.programs import enrolment as en
from isps.programs.models import Enrolment
from isps.registry.cnic import mask
from isps.registry.geography import tehsil_names_ur
from isps.registry.models import Tehsil
from isps.targeting import pmt
from isps.targeting.eligibility import rules
from isps.targeting.search import search_households
from tests.test_web import sign_in

PROGRAM = "bisp_kafaalat"


@pytest.fixture
def listed(province):
    """Enrolled and waiting lists with ties (PMT rounded to whole points) and unranked rows."""
    with transaction(province) as s:
        row, _ = rules.active_rule(s, PROGRAM)
        run = rules.run(s, row, "test")
        en.set_capacity(s, PROGRAM, "test", slots=60)
        en.enrol_from_run(s, PROGRAM, run.id, "test")
        s.execute(text("UPDATE enrolment SET rank_value = ROUND(rank_value) WHERE program_code = :c"), {"c": PROGRAM})
        s.execute(text("UPDATE enrolment SET rank_value = NULL WHERE program_code = :c AND id % 7 = 0"),
                  {"c": PROGRAM})
    return province


def expected_order(rows: list[tuple], desc: bool) -> list[int]:
    """(id, value) pairs in the order a list promises: by value (NULLs last either way), then id."""
    valued = sorted((r for r in rows if r[1] is not None), key=lambda r: (r[1], r[0]), reverse=desc)
    empty = sorted((r for r in rows if r[1] is None), key=lambda r: r[0], reverse=desc)
    return [r[0] for r in valued + empty]


def walk(fetch, size: int) -> list[int]:
    seen, after = [], None
    while True:
        page = fetch(after, size)
        seen += [r["id"] for r in page]
        if len(page) < size:
            return seen
        after = page[-1]["id"]


@pytest.mark.parametrize("status", ["enrolled", "waiting"])
def test_every_order_of_a_program_list_pages_through_each_row_once(listed, status):
    with transaction(listed) as s:
        for key, column in en.SORTS.items():
            rows = s.execute(select(Enrolment.id, column).where(Enrolment.program_code == PROGRAM,
                                                                Enrolment.status == status)).all()
            assert len(rows) > 20
            for desc in (False, True):
                got = walk(lambda a, n: en.listing(s, PROGRAM, status, after=a, limit=n, sort=Sort(key, desc)), 7)
                assert got == expected_order([tuple(r) for r in rows], desc), (key, desc)
        ties = s.execute(text("SELECT COUNT(*) - COUNT(DISTINCT rank_value) FROM enrolment WHERE program_code = :c "
                              "AND status = :s AND rank_value IS NOT NULL"), {"c": PROGRAM, "s": status}).scalar()
        assert ties > 5  # the test crosses page boundaries inside runs of equal values


def test_audit_log_and_search_orders_page_through_each_row_once(listed):
    with transaction(listed) as s:
        for i, (actor, action) in enumerate([("b", "read"), ("a", "export"), ("b", "read"), ("c", "search")] * 6):
            s.add(AuditRecord(actor=actor, role="auditor", channel="web", action=action, entity="household",
                              entity_id=i, outcome="ok"))
    with transaction(listed) as s:
        for key, column in TRAIL_SORTS.items():
            rows = [tuple(r) for r in s.execute(select(AuditRecord.id, column))]
            for desc in (False, True):
                got = [a.id for a in _walk_audit(s, Sort(key, desc))]
                assert got == expected_order(rows, desc), (key, desc)
        model = pmt.active_model(s).id
        s.execute(text("DELETE FROM pmt_score WHERE model_id = :m AND household_id IN "
                       "(SELECT id FROM household WHERE id % 9 = 0)"), {"m": model})  # unscored households
        s.execute(text("UPDATE pmt_score SET score = ROUND(score / 5) * 5 WHERE model_id = :m"), {"m": model})
        rows = [tuple(r) for r in s.execute(text(
            "SELECT h.id, p.score FROM household h LEFT JOIN pmt_score p ON p.household_id = h.id "
            "AND p.model_id = :m WHERE h.district_id = 1"), {"m": model})]
        for key in ("pmt", "id"):
            for desc in (False, True):
                got = walk(lambda a, n: search_households(s, district_id=1, model_id=model, after=a, limit=n,
                                                          sort=Sort(key, desc)).rows, 9)
                want = expected_order(rows if key == "pmt" else [(r[0], r[0]) for r in rows], desc)
                assert got == want, (key, desc)


def _walk_audit(s, sort: Sort) -> list[AuditRecord]:
    seen, before = [], None
    while True:
        page = audit_trail(s, limit=5, before_id=before, sort=sort)
        seen += page
        if len(page) < 5:
            return seen
        before = page[-1].id


def _ids(page: str, table: str) -> list[int]:
    part = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return [int(x) for x in re.findall(r'<tr data-enrolment="(\d+)"', part)]


def test_headers_sort_the_page_and_the_pages_follow(client, listed):
    sign_in(client, "manager")
    url = f"/programs/{PROGRAM}/enrolment"
    page = client.get(url).text
    # the waiting list's default order: by PMT
    assert re.search(r'aria-sort="ascending"[^>]*><a class="sort" id="waiting-sort-pmt"', page)
    assert re.search(r'aria-sort="none"[^>]*><a class="sort" id="enrolled-sort-district"', page)
    link = html.unescape(re.search(r'id="enrolled-sort-district" href="([^"]+)"', page).group(1))
    seen = []
    while link:
        r = client.get(link)
        assert r.status_code == 200
        seen += _ids(r.text, "enrolled-table")
        m = re.search(r'<a class="button" rel="next" href="([^"]+)" id="enrolled-next"', r.text)
        link = html.unescape(m.group(1)) if m else None
        assert "sort=district" in (link or "sort=district")
    assert re.search(r'aria-sort="ascending"[^>]*><a class="sort" id="enrolled-sort-district"', r.text)
    with transaction(listed) as s:
        rows = [tuple(x) for x in s.execute(select(Enrolment.id, Enrolment.district_id).where(
            Enrolment.program_code == PROGRAM, Enrolment.status == "enrolled"))]
    assert seen == expected_order(rows, False) and len(seen) == 60  # two pages, ties at the boundary
    again = html.unescape(re.search(r'id="enrolled-sort-district" href="([^"]+)"', r.text).group(1))
    assert "sort=-district" in again and "after=" not in again  # the other way, from the first page
    down = client.get(again).text
    assert re.search(r'aria-sort="descending"[^>]*><a class="sort" id="enrolled-sort-district"', down)
    assert _ids(down, "enrolled-table") == expected_order(rows, True)[:50]
    # the export follows the order shown
    export = client.get(html.unescape(re.search(r'href="([^"]+)" id="enrolled-csv"', down).group(1)))
    assert [int(x["enrolment"]) for x in csv.DictReader(io.StringIO(export.text))] == expected_order(rows, True)
    # Urdu: the same headers, right to left, tehsils in Urdu
    client.cookies.set("lang", "ur")
    ur = client.get(again).text
    assert 'dir="rtl"' in ur and 'aria-sort="descending"' in ur
    assert any(name in ur for name in tehsil_names_ur().values())


@pytest.mark.parametrize("url", [f"/programs/{PROGRAM}/enrolment?sort=rank_value",
                                 f"/programs/{PROGRAM}/enrolment?wsort=-",
                                 "/audit?sort=detail", "/audit?sort=id;drop", "/sbr/review?sort=partner_name",
                                 "/?search=1&sort=score", "/search/results?sort=--pmt"])
def test_a_sort_the_list_does_not_offer_is_a_400_page(client, listed, url):
    sign_in(client, "admin")
    r = client.get(url)
    assert r.status_code == 400 and "sort must be one of" in html.unescape(r.text)
    assert "Traceback" not in r.text


def test_search_export_is_what_the_search_shows(client, listed):
    sign_in(client, "manager")
    query = "district_id=1&pmt_max=60&sort=-pmt"
    page = client.get(f"/search/results?{query}").text
    assert re.search(r'aria-sort="descending"[^>]*><a class="sort" id="search-sort-pmt"', page)
    with transaction(listed) as s:
        model = pmt.active_model(s).id
        want = walk(lambda a, n: search_households(s, district_id=1, pmt_max=60, model_id=model, after=a, limit=n,
                                                   sort=Sort("pmt", True)).rows, 100)
        cnics = dict(s.execute(text("SELECT household_id, cnic FROM individual WHERE relation_to_head = 'head' "
                                    "AND district_id = 1")).all())
    assert len(want) > 10
    link = html.unescape(re.search(r'href="([^"]+)" id="search-csv"', page).group(1))
    assert "pmt_max=60" in link and "sort=-pmt" in link
    r = client.get(link)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(x["household"]) for x in rows] == want
    for x in rows:
        full = cnics.get(int(x["household"]))
        if full:
            assert x["head_cnic_masked"] == mask(full) and full not in ",".join(x.values()), x
        assert float(x["pmt"]) <= 60
    xlsx = client.get(html.unescape(re.search(r'href="([^"]+)" id="search-xlsx"', page).group(1)))
    cells = list(load_workbook(io.BytesIO(xlsx.content), read_only=True).active.iter_rows(values_only=True))
    assert cells[0][0] == "household" and [int(c[0]) for c in cells[1:]] == want
    with transaction(listed) as s:
        audits = list(s.scalars(select(AuditRecord).where(AuditRecord.action == "export",
                                                          AuditRecord.actor == "manager")))
    assert len(audits) == 2 and all(a.entity == "household" for a in audits)
    assert f"{len(want)} rows as csv" in audits[0].detail and "PMT 0 to 60" in audits[0].detail
    # a district officer's export is their district's only, whatever the address asks
    sign_in(client, "lahore_officer")
    other = client.get("/search/results?district_id=2&format=csv&list=search")
    assert other.status_code == 403 and "text/csv" not in other.headers["content-type"]
    with transaction(listed) as s:
        refused = s.scalar(select(AuditRecord).where(AuditRecord.actor == "lahore_officer",
                                                     AuditRecord.action == "export"))
    assert refused.outcome == "denied" and refused.district_id == 2


def test_every_tehsil_has_an_urdu_name(engine):
    with transaction(engine) as s:
        tehsils = list(s.scalars(select(Tehsil)))
    assert len(tehsils) == 143 and all(t.name_ur and t.name_ur != t.name for t in tehsils)
    assert re.fullmatch(r"[\u0600-\u06FF ()]+", "".join(t.name_ur for t in tehsils))
    names = {t.name: t.name_ur for t in tehsils}
    assert names["Lahore Cantonment"] == "لاہور کینٹ" and names["Raiwind"] == "رائے ونڈ"
