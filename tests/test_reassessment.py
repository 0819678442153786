"""Programs act on what the registry learns from other institutions: after a feed, eligibility is
re-assessed for the households it changed. A household made poorer joins the program through the
one enrolment path; one made richer is not cut off but flagged for an officer's review."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from isps.db import transaction
from isps.programs import enrolment as en
from isps.targeting.eligibility import rules
from tests.conftest import token_for

ON = date(2026, 6, 1)
CODE = "bisp_kafaalat"
RICH = {"rooms": 6, "roof": "rcc", "wall": "burnt_brick", "toilet": "flush", "electricity": "yes", "fridge": "yes",
        "freezer": "yes", "air_conditioner": "yes", "washing_machine": "yes", "television": "yes", "car": "yes",
        "computer": "yes", "motorcycle": "yes"}
POOR = {"rooms": 1, "roof": "mud_thatch", "wall": "mud", "toilet": "none", "fridge": "no", "freezer": "no", "air_conditioner": "no", "air_cooler": "no",
        "washing_machine": "no", "television": "no", "car": "no", "computer": "no", "motorcycle": "no",
        "tractor": "no", "cattle": 0, "goats_sheep": 0, "land_acres": 0}


def _start(engine, code: str = CODE) -> int:
    """The program runs: everyone eligible today is enrolled from a full run."""
    with transaction(engine) as s:
        row, _ = rules.active_rule(s, code)
        run = rules.run(s, row, "test", on=ON)
        en.enrol_from_run(s, code, run.id, "test", ON)
        return run.id


def _ngo(client, reference: str, visits: list[tuple[str, dict]], on: str = "2026-06-05") -> None:
    records = [{"record_ref": f"{reference}-{k}", "household_ref": ref, "organisation": "NRSP", "visited_on": on,
                **values} for k, (ref, values) in enumerate(visits)]
    r = client.post("/api/v1/feeds/ngo/deliveries", json={"reference": reference, "records": records},
                    headers=token_for(client, "admin"))  # the API drains the events after answering
    assert r.status_code == 200 and r.json()["accepted"] == len(records), r.text


def test_a_feed_enrols_the_newly_poor_and_flags_the_newly_rich_for_review(client, province):
    run_id = _start(province)
    with transaction(province) as s:
        # two enrolled households, one of Lahore (district 1) and one elsewhere, the best-off first
        rich = s.execute(text("""SELECT e.id, h.ref, e.district_id FROM enrolment e JOIN household h
            ON h.id = e.household_id JOIN pmt_score p ON p.household_id = h.id
            WHERE e.program_code = :c AND e.status = 'enrolled' AND e.district_id = 1
            ORDER BY p.score DESC LIMIT 1"""), {"c": CODE}).all()
        rich += s.execute(text("""SELECT e.id, h.ref, e.district_id FROM enrolment e JOIN household h
            ON h.id = e.household_id JOIN pmt_score p ON p.household_id = h.id
            WHERE e.program_code = :c AND e.status = 'enrolled' AND e.district_id <> 1
            ORDER BY p.score DESC LIMIT 1"""), {"c": CODE}).all()
        # a household refused only for its PMT score (it has a woman to receive), just above the cut-off
        poor_hid, poor_ref = s.execute(text("""SELECT r.household_id, h.ref FROM eligibility_result r
            JOIN household h ON h.id = r.household_id WHERE r.run_id = :r AND r.failed = 1
            ORDER BY r.pmt LIMIT 1"""), {"r": run_id}).one()
        assert s.execute(text("SELECT COUNT(*) FROM enrolment WHERE household_id = :h"), {"h": poor_hid}).scalar() == 0
    assert len(rich) == 2
    _ngo(client, "NGO-2026-06-A", [(ref, RICH) for _, ref, _ in rich] + [(poor_ref, POOR)])

    with transaction(province) as s:
        joined = s.execute(text("SELECT id, status, reason FROM enrolment WHERE program_code = :c "
                                "AND household_id = :h"), {"c": CODE, "h": poor_hid}).one()
        assert joined.status == "enrolled" and "eligible after registry update" in joined.reason
        assert [h["status"] for h in en.history(s, joined.id)] == ["waiting", "enrolled"]
        assert all("eligible after registry update" in h["reason"] for h in en.history(s, joined.id))
        # nobody was cut off by the feed
        assert {en.get(s, eid)["status"] for eid, _, _ in rich} == {"enrolled"}
        # a program nobody enrolled anyone into is not started by a feed
        assert s.execute(text("SELECT COUNT(*) FROM enrolment WHERE program_code <> :c"), {"c": CODE}).scalar() == 0

    manager, lahore = token_for(client, "manager"), token_for(client, "lahore_officer")
    listed = client.get(f"/api/v1/programs/{CODE}/reassessment", headers=manager)
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    assert sorted(r["enrolment_id"] for r in rows) == sorted(eid for eid, _, _ in rich)
    for r in rows:
        assert r["status"] == "enrolled"
        assert r["reason"].startswith("no longer eligible after registry update: PMT score ")
        assert "is above the cut-off 32" in r["reason"]
    # district scope: the Lahore officer sees Lahore's flag only
    mine = client.get(f"/api/v1/programs/{CODE}/reassessment", headers=lahore).json()
    assert [r["enrolment_id"] for r in mine] == [rich[0][0]] and mine[0]["district_id"] == 1
    with transaction(province) as s:
        audited = s.execute(text("SELECT actor, district_id FROM audit_log WHERE action = 'read' "
                                 "AND detail LIKE 'read the reassessment list%' "
                                 "ORDER BY id")).all()
        assert [tuple(a) for a in audited] == [("manager", None), ("lahore_officer", 1)]
    assert client.get("/api/v1/programs/no_such_program/reassessment", headers=manager).status_code == 404

    # a later visit finds the Lahore household poor again: its flag clears by itself
    _ngo(client, "NGO-2026-06-B", [(rich[0][1], POOR)], on="2026-06-20")
    assert [r["enrolment_id"] for r in client.get(f"/api/v1/programs/{CODE}/reassessment",
                                                  headers=manager).json()] == [rich[1][0]]
    with transaction(province) as s:
        assert [h["status"] for h in en.history(s, rich[0][0])][-2:] == ["review", "cleared"]
    # the officer checks the other one and keeps it
    other = rich[1][0]
    refused = client.post(f"/api/v1/enrolments/{other}/review", json={"reason": "visited: NGO data was wrong"},
                          headers=lahore)
    assert refused.status_code == 403 and "outside your district" in refused.json()["detail"]
    admin = token_for(client, "admin")
    kept = client.post(f"/api/v1/enrolments/{other}/review", json={"reason": "visited: NGO data was wrong"},
                       headers=admin)
    assert kept.status_code == 200 and kept.json()["cleared"] is True
    assert client.get(f"/api/v1/programs/{CODE}/reassessment", headers=manager).json() == []
    again = client.post(f"/api/v1/enrolments/{other}/review", json={"reason": "again"}, headers=admin)
    assert again.status_code == 422 and "not flagged" in again.json()["detail"]


def test_draining_again_changes_nothing(province):
    from isps.interop import feeds
    from isps.services.events import drain

    _start(province)
    with transaction(province) as s:
        ref = s.execute(text("""SELECT h.ref FROM enrolment e JOIN household h ON h.id = e.household_id
            WHERE e.program_code = :c ORDER BY e.id LIMIT 1"""), {"c": CODE}).scalar_one()
    feeds.apply_delivery(province, "ngo", [{"record_ref": "N1", "household_ref": ref, "organisation": "PRSP",
                                            "visited_on": "2026-06-05", **RICH}], reference="ngo-rich", actor="ngo")
    first = drain(province, on=ON)
    assert (first["reassessed"], first["flagged_for_review"]) == (1, 1)
    second = drain(province, on=ON)
    assert (second["reassessed"], second["flagged_for_review"], second["listed_after_update"]) == (0, 0, 0)
    with transaction(province) as s:
        assert s.execute(text("SELECT COUNT(*) FROM enrolment_event WHERE status = 'review'")).scalar() == 1


def test_a_rule_runs_for_some_households_only_as_it_would_for_all(province):
    with transaction(province) as s:
        for code in (CODE, "pbm_financial_assistance"):
            row, _ = rules.active_rule(s, code)
            full = rules.run(s, row, "test", on=ON)
            some = [int(h) for h in s.scalars(text("""SELECT DISTINCT household_id FROM eligibility_result
                WHERE run_id = :r ORDER BY household_id LIMIT 7"""), {"r": full.id})]
            part = rules.run(s, row, "test", on=ON, households_sql="SELECT id FROM household WHERE id IN "
                             "(:h0, :h1, :h2, :h3, :h4, :h5, :h6)",
                             households_params={f"h{k}": h for k, h in enumerate(some)})
            decided = "SELECT household_id, individual_id, eligible, failed FROM eligibility_result WHERE run_id = :r"
            expected = s.execute(text(decided + " AND household_id IN (:h0, :h1, :h2, :h3, :h4, :h5, :h6) "
                                      "ORDER BY 1, 2"), {"r": full.id, **{f"h{k}": h for k, h in enumerate(some)}}).all()
            got = s.execute(text(decided + " ORDER BY 1, 2"), {"r": part.id}).all()
            assert got == expected and part.evaluated == len(expected) < full.evaluated


def test_an_officer_keeps_a_flagged_enrolment_in_the_browser(client, province):
    from tests.test_web import sign_in

    _start(province)
    with transaction(province) as s:
        eid, ref = s.execute(text("""SELECT e.id, h.ref FROM enrolment e JOIN household h ON h.id = e.household_id
            WHERE e.program_code = :c AND e.status = 'enrolled' AND e.district_id = 1 ORDER BY e.id LIMIT 1"""),
                             {"c": CODE}).one()
    _ngo(client, "NRSP-web", [(ref, RICH)])
    sign_in(client, "lahore_officer")
    page = client.get(f"/programs/{CODE}/enrolment").text
    row = page[page.index(f'<tr data-review="{eid}">'):]
    row = row[:row.index("</tr>")]
    assert "no longer eligible after registry update" in row and "PMT score" in row
    assert 'id="review-readonly"' not in page
    # the Lahore officer's counts are Lahore's, like the lists under them
    with transaction(province) as s:
        lahore = s.execute(text("SELECT COUNT(*) FROM enrolment WHERE program_code = :c AND status = 'enrolled' "
                                "AND district_id = 1"), {"c": CODE}).scalar()
    assert f'<dd dir="ltr" id="count-enrolled">{lahore}</dd>' in page and 'id="summary-scope"' in page
    sign_in(client, "manager")  # sees the queue, cannot decide it: told who does, no dead buttons
    page = client.get(f"/programs/{CODE}/enrolment").text
    assert f'<tr data-review="{eid}">' in page and f"/enrolment/{eid}/keep" not in page
    assert 'id="review-readonly"' in page and "decided by a district officer" in page
    sign_in(client, "kasur_counter")  # another district's officer cannot clear it
    assert client.post(f"/programs/{CODE}/enrolment/{eid}/keep", data={"reason": "not mine"}).status_code == 403
    sign_in(client, "lahore_officer")
    r = client.post(f"/programs/{CODE}/enrolment/{eid}/keep", data={"reason": "visited: the car is a relative's"},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert 'id="kept-notice"' in page and f'data-review="{eid}"' not in page
    with transaction(province) as s:
        assert en.get(s, eid)["status"] == "enrolled"
