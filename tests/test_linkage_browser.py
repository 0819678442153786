"""The clerical review queue in a real browser (Chromium via Playwright): an operator accepts a pair."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from isps.db import transaction
from isps.linkage import ingest, resolve
from isps.linkage.models import MatchCandidate
from isps.registry.models import Individual
from tests.test_browser import browser, server, sqlite_province, visit  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def test_operator_accepts_pair_in_browser(sqlite_province, visit):  # noqa: F811
    with transaction(sqlite_province) as s:
        people = list(s.scalars(select(Individual).where(Individual.cnic.is_not(None)).order_by(Individual.id)
                                .limit(3)))
        lines = [{"partner_ref": f"B{p.id}", "full_name": p.full_name, "sex": p.sex,
                  "date_of_birth": p.date_of_birth.isoformat(), "district": str(p.district_id)} for p in people]
    ingest.ingest_records(sqlite_province, "pbm_financial_assistance", lines, partner="PBM", reference="browser",
                          actor="test")
    resolve.resolve(sqlite_province, actor="test", accept_weight=99.0, review_weight=-10.0)
    with transaction(sqlite_province) as s:
        first = s.scalars(select(MatchCandidate).where(MatchCandidate.status == "review")
                          .order_by(MatchCandidate.id)).first()
        cid = first.id
    visit.sign_in("manager")
    page = visit.page
    page.goto(visit.base + "/sbr/review")
    pair = page.locator(f"#pair-{cid}")
    assert pair.get_by_role("cell", name="Date of birth").count() or pair.locator("th", has_text="Date of birth").count()
    pair.get_by_role("button", name="Same person: link").click()
    page.wait_for_url("**/sbr/review?done=accept")
    assert page.get_by_role("status").inner_text().startswith("Linked")
    assert page.locator(f"#pair-{cid}").count() == 0
    visit.screenshot("sbr-review.png")
    with transaction(sqlite_province) as s:
        assert s.get(MatchCandidate, cid).status == "accepted"
    assert not visit.errors and not visit.foreign


def test_held_cnic_shows_its_reason_in_both_languages(sqlite_province, visit):  # noqa: F811
    with transaction(sqlite_province) as s:
        man = s.scalars(select(Individual).where(Individual.cnic.is_not(None), Individual.sex == "male")
                        .order_by(Individual.id)).first()
        cnic, man_id = man.cnic, man.id
    # a slip that is this man's CNIC, on a girl born 2012 whom the registry does not hold
    line = {"partner_ref": "SLIP-1", "cnic": cnic, "full_name": "Zarmina Gul", "sex": "female",
            "date_of_birth": "2012-05-05", "district": "Lahore"}
    ingest.ingest_records(sqlite_province, "pbm_financial_assistance", [line], partner="PBM", reference="slip",
                          actor="test", resolve=True)
    with transaction(sqlite_province) as s:
        cid = s.scalars(select(MatchCandidate.id).where(MatchCandidate.status == "review",
                                                        MatchCandidate.individual_id == man_id)).one()
    visit.sign_in("manager")
    page = visit.page
    page.goto(visit.base + "/sbr/review")
    pair = page.locator(f"#pair-{cid}")
    check = pair.locator("tr", has=page.locator("th", has_text="Identity check"))
    assert "same CNIC, but sex differs (female on the list, male in the registry)" in check.inner_text()
    pair.scroll_into_view_if_needed()
    visit.screenshot("sbr-review-held-cnic-en.png")
    page.locator("a.lang-switch").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("dir") == "rtl"
    assert "شناخت کی جانچ" in page.locator(f"#pair-{cid}").inner_text()
    visit.screenshot("sbr-review-held-cnic-ur.png")
    assert not visit.errors and not visit.foreign
