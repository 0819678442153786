"""Every list page pages by keyset with its total, filters and export (issue 12, "lists do not
scale"): walking the next-page links visits every row once, the total is the COUNT of the filtered
list, filters narrow it, an export holds exactly the filtered rows (names never formulas, CNICs
masked, the export audited), a district officer's total counts only their district, and bulk
review decisions apply and are audited one by one."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select, update

from isps.access.models import AuditRecord
from isps.db import transaction
from isps.linkage.models import Beneficiary, BeneficiaryBatch, MatchCandidate
from isps.programs import enrolment as en
from isps.programs.models import Enrolment
from isps.registry.models import Household, Individual
from isps.targeting.eligibility import rules
from tests.test_web import sign_in

PROGRAM = "bisp_kafaalat"
SLOTS = 100  # enrolled: two pages of 50; the rest of the eligible (80) wait


@pytest.fixture
def enrolled(province):
    with transaction(province) as s:
        row, _ = rules.active_rule(s, PROGRAM)
        run = rules.run(s, row, "test")
        en.set_capacity(s, PROGRAM, "test", slots=SLOTS)
        en.enrol_from_run(s, PROGRAM, run.id, "test")
    return province


def _total(page: str, list_id: str) -> int:
    return int(re.search(rf'id="{list_id}-total" data-total="(\d+)"', page).group(1))


def _next(page: str, list_id: str) -> str | None:
    m = re.search(rf'<a class="button" rel="next" href="([^"]+)" id="{list_id}-next"', page)
    return html.unescape(m.group(1)) if m else None


def _section(page: str, start: str, end: str) -> str:
    i = page.index(start)
    return page[i:page.index(end, i)]


def _walk(client, url: str, list_id: str, ids_of) -> tuple[list[int], int, int]:
    """Follow a list's next-page links from ``url``: the ids seen in order, the total, the pages."""
    seen, pages, total = [], 0, None
    while url:
        page = client.get(url)
        assert page.status_code == 200, page.text[:500]
        t = _total(page.text, list_id)
        assert total is None or t == total  # the total does not change from page to page
        total = t
        seen += ids_of(page.text)
        pages += 1
        url = _next(page.text, list_id)
        assert pages < 100
    return seen, total, pages


def enrolled_ids(page: str) -> list[int]:
    table = _section(page, 'id="enrolled-table"', "</table>")
    return [int(x) for x in re.findall(r'<tr data-enrolment="(\d+)"', table)]


def waiting_ids(page: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-enrolment="(\d+)"', _section(page, 'id="waiting-list"', "</table>"))]


def _db_ids(engine, status: str, **where) -> list[int]:
    with transaction(engine) as s:
        stmt = select(Enrolment.id).where(Enrolment.program_code == PROGRAM, Enrolment.status == status,
                                          *[getattr(Enrolment, k) == v for k, v in where.items()])
        return list(s.scalars(stmt.order_by(Enrolment.id)))


def test_enrolled_and_waiting_lists_page_through_every_row_once(client, enrolled):
    sign_in(client, "manager")
    url = f"/programs/{PROGRAM}/enrolment"
    seen, total, pages = _walk(client, url, "enrolled", enrolled_ids)
    assert sorted(seen) == seen and len(set(seen)) == len(seen)  # in id order, none twice
    assert seen == _db_ids(enrolled, "enrolled") and total == SLOTS and pages == 2
    with transaction(enrolled) as s:  # the waiting list in rank order (lowest PMT first, unranked last)
        rows = s.execute(select(Enrolment.id, Enrolment.rank_value).where(
            Enrolment.program_code == PROGRAM, Enrolment.status == "waiting")).all()
        s.execute(update(Enrolment).where(Enrolment.id.in_([i for i, _ in rows[::7]])).values(rank_value=None))
    rows = [(i, None if n % 7 == 0 else rank) for n, (i, rank) in enumerate(rows)]
    expected = [i for i, rank in sorted(rows, key=lambda r: (r[1] is None, r[1] or 0, r[0]))]
    assert len(expected) > 50
    seen, total, pages = _walk(client, url, "waiting", waiting_ids)
    assert seen == expected and total == len(expected) and pages == -(-len(expected) // 50)
    # the next page of one list keeps the other list where it was
    second = client.get(_next(client.get(url).text, "waiting")).text
    assert enrolled_ids(second) == _db_ids(enrolled, "enrolled")[:50]


def test_filters_narrow_the_list_and_the_total(client, enrolled):
    sign_in(client, "manager")
    with transaction(enrolled) as s:
        channel, tehsil = s.execute(select(Enrolment.channel, Enrolment.tehsil_id).where(
            Enrolment.program_code == PROGRAM, Enrolment.status == "enrolled").order_by(Enrolment.id)).first()
    for where, params in (({"channel": channel}, {"channel": channel}),
                          ({"tehsil_id": tehsil}, {"tehsil_id": tehsil}),
                          ({"district_id": 2}, {"district_id": 2})):
        expected = _db_ids(enrolled, "enrolled", **where)
        assert 0 < len(expected) < SLOTS
        url = f"/programs/{PROGRAM}/enrolment?" + "&".join(f"{k}={v}" for k, v in params.items())
        seen, total, _ = _walk(client, url, "enrolled", enrolled_ids)
        assert seen == expected and total == len(expected), where


def test_district_officer_total_counts_only_their_district(client, enrolled):
    sign_in(client, "lahore_officer")
    in_lahore = _db_ids(enrolled, "enrolled", district_id=1)
    assert 0 < len(in_lahore) < SLOTS
    # asking for another district changes nothing: the scope is the officer's district
    seen, total, _ = _walk(client, f"/programs/{PROGRAM}/enrolment?district_id=2", "enrolled", enrolled_ids)
    assert seen == in_lahore and total == len(in_lahore)


def test_export_holds_exactly_the_filtered_rows_and_is_audited(client, enrolled):
    sign_in(client, "lahore_officer")
    with transaction(enrolled) as s:
        channel = s.scalar(select(Enrolment.channel).where(Enrolment.program_code == PROGRAM,
                                                           Enrolment.status == "enrolled", Enrolment.district_id == 1))
    expected = _db_ids(enrolled, "enrolled", district_id=1, channel=channel)
    page = client.get(f"/programs/{PROGRAM}/enrolment?channel={channel}&after={expected[0]}").text
    link = html.unescape(re.search(r'href="([^"]+)" id="enrolled-csv"', page).group(1))
    assert "after=" not in link  # the export is the whole filtered list, not the page
    r = client.get(link)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(x["enrolment"]) for x in rows] == expected
    assert {x["channel"] for x in rows} == {channel}
    xlsx = client.get(html.unescape(re.search(r'href="([^"]+)" id="enrolled-xlsx"', page).group(1)))
    sheet = load_workbook(io.BytesIO(xlsx.content), read_only=True).active
    cells = list(sheet.iter_rows(values_only=True))
    assert cells[0][0] == "enrolment" and [int(c[0]) for c in cells[1:]] == expected
    with transaction(enrolled) as s:
        exports = list(s.scalars(select(AuditRecord).where(AuditRecord.action == "export",
                                                           AuditRecord.actor == "lahore_officer")))
    assert len(exports) == 2 and all(a.entity == "enrolment" and a.district_id == 1 for a in exports)
    assert f"{len(expected)} rows as csv" in exports[0].detail


def test_audit_log_pages_filters_and_exports(client, enrolled):
    sign_in(client, "lahore_officer")
    for _ in range(3):
        client.get(f"/programs/{PROGRAM}/enrolment")
    client.get("/households/999999999")
    sign_in(client, "auditor")
    with transaction(enrolled) as s:
        expected = list(s.scalars(select(AuditRecord.id).where(AuditRecord.actor == "lahore_officer")
                                  .order_by(AuditRecord.id.desc())))
        everything = s.scalar(select(func.count()).select_from(AuditRecord))
    assert len(expected) >= 5

    def ids_of(page: str) -> list[int]:
        return [int(x) for x in re.findall(r'<td dir="ltr" class="nowrap" data-audit="(\d+)"', page)]

    seen, total, _ = _walk(client, "/audit?actor=lahore_officer", "audit", ids_of)
    assert seen == expected and total == len(expected)
    assert _total(client.get("/audit").text, "audit") >= everything
    narrowed = _total(client.get("/audit?actor=lahore_officer&action=read&entity=enrolment").text, "audit")
    assert narrowed == 3
    r = client.get("/audit?actor=lahore_officer&format=csv&list=audit")
    assert [int(x["id"]) for x in csv.DictReader(io.StringIO(r.text))] == expected
    with transaction(enrolled) as s:
        assert s.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.action == "export", AuditRecord.actor == "auditor", AuditRecord.entity == "audit_log")) == 1


def _review_pairs(engine, n: int) -> list[int]:
    """n pairs waiting for review, one per partner line, the lines named like formulas."""
    with transaction(engine) as s:
        people = sorted([*s.scalars(select(Individual).where(Individual.district_id == 1).order_by(Individual.id)
                                    .limit(n - n // 2)),
                         *s.scalars(select(Individual).where(Individual.district_id == 2).order_by(Individual.id)
                                    .limit(n // 2))], key=lambda p: p.id)
        batch = BeneficiaryBatch(program_code=PROGRAM, partner="BISP", reference="lists", channel="api", actor="t")
        s.add(batch)
        s.flush()
        lines = [Beneficiary(program_code=PROGRAM, partner_ref=f"L{p.id}", batch_id=batch.id,
                             full_name=f"=HYPERLINK(\"x\",\"{p.full_name}\")", cnic=p.cnic, district_id=p.district_id,
                             date_of_birth=p.date_of_birth, link_method="review") for p in people]
        s.add_all(lines)
        s.flush()
        s.add_all([MatchCandidate(beneficiary_id=b.id, individual_id=p.id, match_weight=float(i % 10),
                                  match_probability=0.5, explanation=[], status="review", run_id=1)
                   for i, (b, p) in enumerate(zip(lines, people))])
        s.flush()
        return list(s.scalars(select(MatchCandidate.id).order_by(MatchCandidate.id)))


def queue_ids(page: str) -> list[int]:
    return [int(x) for x in re.findall(r'<section class="card review-pair" id="pair-(\d+)"', page)]


def test_review_queue_pages_filters_exports_and_decides_in_bulk(client, province):
    pairs = _review_pairs(province, 45)
    sign_in(client, "manager")
    seen, total, pages = _walk(client, "/sbr/review", "queue", queue_ids)
    assert seen == pairs and total == 45 and pages == 3
    heavy = _total(client.get("/sbr/review?min_weight=5").text, "queue")
    assert heavy == sum(1 for i in range(45) if i % 10 >= 5)
    r = client.get("/sbr/review?format=xlsx")
    rows = list(load_workbook(io.BytesIO(r.content), read_only=True).active.iter_rows(values_only=True))
    assert [int(x[0]) for x in rows[1:]] == pairs
    names = [x[rows[0].index("partner_name")] for x in rows[1:]]
    assert all(n.startswith("'=") for n in names)  # a name never becomes a formula
    cnics = [x[rows[0].index("partner_cnic_masked")] for x in rows[1:] if x[rows[0].index("partner_cnic_masked")]]
    assert cnics and all("*" in c or "x" in c.lower() for c in cnics)
    chosen = pairs[:3] + [pairs[-1]]
    r = client.post("/sbr/review/bulk", data={"ids": [str(i) for i in chosen], "decision": "reject"},
                    follow_redirects=False)
    assert r.status_code == 303
    with transaction(province) as s:
        statuses = dict(s.execute(select(MatchCandidate.id, MatchCandidate.status)).all())
        audited = list(s.scalars(select(AuditRecord.entity_id).where(
            AuditRecord.action == "decide", AuditRecord.entity == "match_candidate", AuditRecord.outcome == "ok")))
    assert {i for i, st in statuses.items() if st == "rejected"} == set(chosen)
    assert sorted(audited) == sorted(chosen)
    assert "4" in client.get(r.headers["location"]).text
    assert _total(client.get("/sbr/review").text, "queue") == 41
    # a counter operator may not decide: refused and audited, nothing changes
    sign_in(client, "kasur_counter")
    assert client.post("/sbr/review/bulk", data={"ids": [str(pairs[5])], "decision": "accept"}).status_code == 403
    with transaction(province) as s:
        assert s.get(MatchCandidate, pairs[5]).status == "review"


def test_review_queue_of_a_district_officer_counts_their_district(client, province):
    pairs = _review_pairs(province, 45)
    with transaction(province) as s:
        in_lahore = list(s.scalars(select(MatchCandidate.id).join(Beneficiary, Beneficiary.id ==
                                                                  MatchCandidate.beneficiary_id)
                                   .where(Beneficiary.district_id == 1).order_by(MatchCandidate.id)))
    assert 0 < len(in_lahore) < len(pairs)
    sign_in(client, "lahore_officer")
    seen, total, _ = _walk(client, "/sbr/review?district_id=2", "queue", queue_ids)
    assert seen == in_lahore and total == len(in_lahore)


def test_search_shows_how_many_households_match(client, province):
    sign_in(client, "manager")
    with transaction(province) as s:
        in_kasur = s.scalar(select(func.count()).select_from(Household).where(Household.district_id == 2))
    page = client.get("/?district_id=2").text
    assert int(re.search(r'id="results-total" data-total="(\d+)"', page).group(1)) == in_kasur
    sign_in(client, "lahore_officer")
    with transaction(province) as s:
        in_lahore = s.scalar(select(func.count()).select_from(Household).where(Household.district_id == 1))
    page = client.get("/?search=1").text
    assert int(re.search(r'id="results-total" data-total="(\d+)"', page).group(1)) == in_lahore


def test_a_filter_form_left_at_any_is_no_filter_and_a_bad_value_is_still_refused(client):
    """A filter form sends its empty choices as "" (district "Any"): the page answers as unfiltered,
    as the audit page does, while a value that is not an id is still refused."""
    sign_in(client, "admin")
    for page in ("/users", "/programs/bisp_kafaalat/enrolment", "/sbr/review", "/labour/wagers", "/labour/shops",
                 "/labour/jobs"):
        blank = "&tehsil_id=" if page.startswith("/programs") else ""
        assert client.get(f"{page}?district_id={blank}").status_code == 200, page
        assert client.get(f"{page}?district_id=abc").status_code == 400, page
