"""The programs page and the registry-updates page (conflicts between sources, change requests
decided by a second person, re-certification), as a district officer and a program manager use them."""

from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import select, update

from isps.access.models import AuditRecord
from isps.db import transaction
from isps.interop import feeds
from isps.interop.feeds import changes
from isps.programs import enrolment as en
from isps.registry.models import Household, Individual
from isps.targeting.eligibility import rules
from tests.test_web import sign_in, text_of


def _adult(s, district_id: int) -> Individual:
    return s.scalars(select(Individual).where(Individual.district_id == district_id, Individual.cnic.is_not(None),
                                              Individual.relation_to_head == "head").order_by(Individual.id)).first()


def test_programs_page_lists_the_catalogue_with_enrolment_and_links_in(client, province):
    with transaction(province) as s:
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test")
        en.set_capacity(s, "bisp_kafaalat", "test", slots=5)
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "test")
        overall = en.overview(s)["bisp_kafaalat"]
        in_lahore = en.overview(s, district_id=1).get("bisp_kafaalat", {})
    assert overall["enrolled"] == 5 and overall["waiting"] == run.eligible - 5
    sign_in(client, "manager")
    page = client.get("/programs").text
    assert 'href="/programs"' in page and 'href="/updates"' in page  # in the navigation
    row = re.search(r'<tr data-program="bisp_kafaalat">(.*?)</tr>', page, re.S).group(1)
    assert 'href="/programs/bisp_kafaalat/enrolment"' in row
    numbers = re.findall(r'<td class="num" dir="ltr">([\d,]+)</td>', row)
    assert [int(n.replace(",", "")) for n in numbers] == [5, overall["waiting"]]
    assert page.count("<tr data-program=") >= 90  # the whole catalogue
    social_care = client.get("/programs", params={"pillar": "social_care"}).text
    assert 'data-program="bisp_kafaalat"' not in social_care and "<tr data-program=" in social_care
    # a district officer sees their district's numbers only
    sign_in(client, "lahore_officer")
    row = re.search(r'<tr data-program="bisp_kafaalat">(.*?)</tr>', client.get("/programs").text, re.S).group(1)
    numbers = re.findall(r'<td class="num" dir="ltr">([\d,]+)</td>', row)
    assert [int(n.replace(",", "")) for n in numbers] == [in_lahore.get("enrolled", 0), in_lahore.get("waiting", 0)]


def _conflict(province, district_id: int) -> tuple[int, int]:
    """NADRA records a marital status; a self-report approved later is held back as a conflict."""
    with transaction(province) as s:
        person = _adult(s, district_id)
        pid, cnic, now = person.id, person.cnic, person.marital_status
    new = "widowed" if now != "widowed" else "divorced"
    feeds.apply_delivery(province, "nadra", [{"record_ref": f"M{pid}", "event": "marital_status",
                                              "event_date": "2026-05-01", "cnic": cnic, "marital_status": new}],
                         reference=f"nadra-{pid}", actor="ops")
    with transaction(province) as s:
        req = changes.request_change(s, entity="individual", entity_id=pid, changes={"marital_status": "married"},
                                     source="self_report", evidence="says she remarried", requested_by="counter1",
                                     effective_date=date(2026, 6, 1))
        changes.approve_change(s, req.id, "supervisor")
        return pid, feeds.list_conflicts(s, district_scope=district_id)[0].id


def test_an_officer_closes_a_conflict_of_their_district_only(client, province):
    pid, lahore_conflict = _conflict(province, 1)
    _, kasur_conflict = _conflict(province, 2)
    sign_in(client, "lahore_officer")
    page = client.get("/updates").text
    assert f'data-conflict="{lahore_conflict}"' in page and f'data-conflict="{kasur_conflict}"' not in page
    assert "NADRA" in text_of(page) and "Self-report" in text_of(page)
    r = client.post(f"/updates/conflicts/{kasur_conflict}/resolve", data={"resolution": "not mine"})
    assert r.status_code == 422 and "outside your district" in r.text
    r = client.post(f"/updates/conflicts/{lahore_conflict}/resolve", data={"resolution": "  "})
    assert r.status_code == 422 and "say how it was resolved" in r.text
    r = client.post(f"/updates/conflicts/{lahore_conflict}/resolve",
                    data={"resolution": "told the citizen to correct the record at NADRA"}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert "Conflict closed." in page and f'data-conflict="{lahore_conflict}"' not in page
    with transaction(province) as s:
        assert feeds.list_conflicts(s, district_scope=1) == []
        assert len(feeds.list_conflicts(s, district_scope=2)) == 1
        assert s.get(Individual, pid).marital_status in ("widowed", "divorced")  # NADRA's value stands


def test_a_change_request_is_decided_by_a_second_person_in_the_browser(client, province):
    with transaction(province) as s:
        hh = s.scalars(select(Household).where(Household.district_id == 1).order_by(Household.id)).first()
        hid, rooms = hh.id, hh.rooms
        mine = changes.request_change(s, entity="household", entity_id=hid, changes={"rooms": str(rooms + 1)},
                                      source="operator", evidence="visit: a room was added", requested_by="lahore_officer")
        other = changes.request_change(s, entity="household", entity_id=hid, changes={"rooms": str(rooms + 2)},
                                       source="self_report", evidence="SMS from the head", requested_by="counter1")
        kasur = s.scalars(select(Household).where(Household.district_id == 2)).first()
        far = changes.request_change(s, entity="household", entity_id=kasur.id, changes={"rooms": "9"},
                                     source="operator", evidence="visit", requested_by="counter2")
    sign_in(client, "lahore_officer")
    page = client.get("/updates").text
    assert f'data-request="{mine.id}"' in page and f'data-request="{other.id}"' in page
    assert f'data-request="{far.id}"' not in page
    mine_row = re.search(rf'<tr data-request="{mine.id}">(.*?)</tr>', page, re.S).group(1)
    assert "another person must decide" in mine_row and "<form" not in mine_row
    r = client.post(f"/updates/change-requests/{mine.id}", data={"decision": "approve"})
    assert r.status_code == 422 and "a second person must approve" in r.text
    r = client.post(f"/updates/change-requests/{far.id}", data={"decision": "approve"})
    assert r.status_code == 403
    r = client.post(f"/updates/change-requests/{other.id}", data={"decision": "reject", "note": ""})
    assert r.status_code == 422 and "reason" in r.text
    r = client.post(f"/updates/change-requests/{other.id}", data={"decision": "approve", "note": "seen the room"},
                    follow_redirects=False)
    assert r.status_code == 303 and "Change approved" in client.get(r.headers["location"]).text
    with transaction(province) as s:
        assert s.get(Household, hid).rooms == rooms + 2
        assert s.get(Household, kasur.id).rooms == kasur.rooms
        audited = s.scalars(select(AuditRecord.action).where(AuditRecord.actor == "lahore_officer")).all()
    assert "approve" in audited
    # the household's history shows the change with its source and who approved it
    history = text_of(client.get(f"/households/{hid}").text)
    assert "Self-report" in history and "approved by lahore_officer" in history


def test_households_due_for_recertification_are_listed_by_district(client, province):
    old = date.today() - timedelta(days=4 * 365)
    with transaction(province) as s:
        ids = list(s.scalars(select(Household.id).where(Household.district_id == 1).order_by(Household.id).limit(3)))
        s.execute(update(Household).values(verified_on=date.today()))
        s.execute(update(Household).where(Household.id.in_(ids)).values(verified_on=old))
    sign_in(client, "lahore_officer")
    page = client.get("/updates").text
    assert re.search(r'id="due-total">\(3\)<', page)
    due = re.search(r'<table class="data" id="due">(.*?)</table>', page, re.S).group(1)
    assert [int(h) for h in re.findall(r'href="/households/(\d+)"', due)] == ids
    assert re.search(r'id="due-total">\(0\)<', client.get("/updates", params={"older_than_days": 5 * 365}).text)
    sign_in(client, "kasur_counter")
    assert re.search(r'id="due-total">\(0\)<', client.get("/updates").text)


def test_the_conflicts_hint_points_to_a_control_that_exists(client, province):
    from tests.test_web import first_household, sign_in, text_of

    sign_in(client, "lahore_officer")
    hint = text_of(client.get("/updates").text)
    assert "raise a change request" not in hint and "“Correct indicators”" in hint
    page = text_of(client.get(f"/households/{first_household(province, 1).id}").text)
    assert "Correct indicators" in page
