"""Field work's assignments and distribution sites on both backends: assignment by area (set-based, a
household moved on reassignment, never two open), visits scheduled through the application's one path,
progress per enumerator and area, sites and their lists (cash from a payroll's pickup slots, in kind),
the hand-over once (a duplicate, a wrong site, a CNIC that does not match, a receiver who is not a
member refused) and, on PostgreSQL, two sessions racing for one line: one wins."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import text

from isps.access.service import AccessError, Principal
from isps.citizen import applications as ap
from isps.db import transaction
from isps.fieldwork import assignments as asg, distribution as dist
from isps.fieldwork.models import DistributionEntry, FieldAssignment, FieldSubmission
from isps.payments import payroll as pr, pickup
from isps.programs import cycles, enrolment as en
from isps.registry import current
from isps.targeting.eligibility import rules

SUPERVISOR = Principal("kasur_supervisor", "field_supervisor", 2)
OFFICER = Principal("kasur_officer", "district_officer", 2)
COUNTER = Principal("kasur_counter", "counter_operator", 2)
ENUMERATOR = Principal("kasur_enumerator", "enumerator", 2)
LAHORE = Principal("lahore_officer", "district_officer", 1)
NOW = datetime(2026, 12, 8, 9, 0)
KASUR = 2


def busiest_uc(s) -> tuple[int, int, str, int]:
    """A union council of Kasur's most populous tehsil: (tehsil id, uc id, uc name, households)."""
    return tuple(s.execute(text("""SELECT h.tehsil_id, uc.id, uc.name, COUNT(*) FROM household h
        JOIN union_council uc ON uc.id = h.uc_id WHERE h.district_id = 2 AND h.tehsil_id = (SELECT tehsil_id
            FROM household WHERE district_id = 2 GROUP BY tehsil_id ORDER BY COUNT(*) DESC, tehsil_id LIMIT 1)
        GROUP BY h.tehsil_id, uc.id, uc.name ORDER BY COUNT(*) DESC, uc.id LIMIT 1""")).one())


def submission(s, instance: str, job: str, household_id: int | None, status: str, user="kasur_enumerator") -> int:
    """A kept submission as the inbox leaves it (the inbox is another part's; here only its row)."""
    row = FieldSubmission(instance_id=instance, form_id=f"isps_{job}", form_version="1", job=job, username=user,
                          district_id=KASUR, household_id=household_id, collected_at=NOW, received_at=NOW,
                          xml="<x/>", status=status, reason="refused for the test" if status == "refused" else None)
    s.add(row)
    s.flush()
    return row.id


def test_assignments_sites_and_hand_overs(province):
    """One province per backend for both flows (its load is most of the cost)."""
    assignments_by_area_reassignment_visits_and_progress(province)
    sites_lists_and_the_hand_over_once(province)


def assignments_by_area_reassignment_visits_and_progress(province):
    with transaction(province) as s:
        tehsil, uc_id, uc_name, in_uc = busiest_uc(s)
        in_tehsil = s.execute(text("SELECT COUNT(*) FROM household WHERE district_id = 2 AND tehsil_id = :t"),
                              {"t": tehsil}).scalar_one()
        assert in_tehsil > in_uc >= 1
        # by union council (by name), then the whole tehsil to the supervisor: the union council's
        # households move (cancelled, kept), the rest are new; never two open for one household
        assert asg.assign(s, SUPERVISOR, kind="survey", enumerator="kasur_enumerator", union_council=uc_name,
                          due_on=date(2026, 12, 20), now=NOW) == in_uc
        assert asg.assign(s, SUPERVISOR, kind="survey", enumerator="kasur_enumerator", union_council=str(uc_id),
                          now=NOW) == 0  # again: already theirs
        assert asg.assign(s, OFFICER, kind="survey", enumerator="kasur_supervisor", tehsil_id=tehsil,
                          now=NOW) == in_tehsil
        counts = dict(s.execute(text("""SELECT status, COUNT(*) FROM field_assignment WHERE kind = 'survey'
            GROUP BY status""")).all())
        assert counts == {"open": in_tehsil, "cancelled": in_uc}
        assert s.execute(text("""SELECT COUNT(*) FROM (SELECT household_id FROM field_assignment WHERE status = 'open'
            GROUP BY household_id HAVING COUNT(*) > 1) t""")).scalar_one() == 0
        # chosen households: two of the tehsil back to the enumerator, with their union councils' names
        two = s.execute(text("SELECT id FROM household WHERE tehsil_id = :t ORDER BY id LIMIT 2"),
                        {"t": tehsil}).scalars().all()
        names = set(s.execute(text("""SELECT uc.name FROM household h JOIN union_council uc ON uc.id = h.uc_id
            WHERE h.id IN (:a, :b)"""), {"a": two[0], "b": two[1]}).scalars())
        assert asg.assign(s, SUPERVISOR, kind="survey", enumerator="kasur_enumerator", household_ids=two,
                          now=NOW) == 2
        mine = asg.open_for(s, "kasur_enumerator", "survey")
        assert [a.household_id for a in mine] == two and {a.union_council for a in mine} == names
        # refusals name the field; scope and role hold
        lahore_hh = s.execute(text("SELECT MIN(id) FROM household WHERE district_id = 1")).scalar_one()
        with pytest.raises(asg.AssignmentError, match=f"household_ids: {lahore_hh} not households of district 2"):
            asg.assign(s, SUPERVISOR, kind="survey", enumerator="kasur_enumerator", household_ids=[lahore_hh])
        with pytest.raises(asg.AssignmentError, match="area"):
            asg.assign(s, SUPERVISOR, kind="survey", enumerator="kasur_enumerator")
        with pytest.raises(asg.AssignmentError, match="enumerator: 'kasur_counter'"):
            asg.assign(s, SUPERVISOR, kind="survey", enumerator="kasur_counter", tehsil_id=tehsil)
        with pytest.raises(asg.OutOfScope):
            asg.assign(s, LAHORE, kind="survey", enumerator="kasur_enumerator", tehsil_id=tehsil)
        with pytest.raises(AccessError):
            asg.assign(s, ENUMERATOR, kind="survey", enumerator="kasur_enumerator", tehsil_id=tehsil)

        # collected, accepted, refused: progress per enumerator and per area in one query
        done = submission(s, "uuid:a-1", "survey", two[0], "accepted")
        assert asg.complete(s, kind="survey", submission_id=done, at=NOW, household_id=two[0]) == 1
        assert asg.complete(s, kind="survey", submission_id=done, at=NOW, household_id=two[0]) == 0  # once
        submission(s, "uuid:a-2", "survey", two[1], "refused")
        by_user = {r["enumerator"]: r for r in asg.progress(s, SUPERVISOR, on=date(2026, 12, 21))}
        assert by_user["kasur_enumerator"] == {"enumerator": "kasur_enumerator", "assigned": 2, "open": 1, "late": 0,
                                               "collected": 2, "accepted": 1, "refused": 1}
        assert by_user["kasur_supervisor"]["open"] == in_tehsil - 2 and by_user["kasur_supervisor"]["collected"] == 0
        by_area = asg.progress(s, SUPERVISOR, by="area")
        assert {r["tehsil_id"] for r in by_area} == {tehsil} and all(r["tehsil"] for r in by_area)
        assert sum(r["collected"] for r in by_area) == 2 and sum(r["accepted"] for r in by_area) == 1
        assert sum(r["refused"] for r in by_area) == 1
        assert sum(r["assigned"] for r in by_area) == in_tehsil
        assert asg.progress(s, LAHORE) == []  # another district sees none of it
        # late: the union council's first assignments were due on the 20th; they moved, so none is late
        assert sum(r["late"] for r in asg.progress(s, OFFICER, on=date(2027, 1, 1))) == 0

    # a visit: assigning it schedules it through the application's one path (a district officer may);
    # a supervisor, who may not decide an application's step, is told to ask one
    with transaction(province) as s:
        from tests.test_applications import household_form, family
        app = ap.open_application(s, COUNTER, kind="registration", channel="counter", district_id=KASUR,
                                  applicant_name="Ghulam Rasool", phone="03001234567",
                                  details={"household": household_form(s), "members": family()},
                                  evidence=[{"kind": "cnic_seen", "reference": "35102-9876541-3"}], now=NOW)
        with pytest.raises(asg.AssignmentError, match="no visit scheduled; a field supervisor may not"):
            asg.assign(s, SUPERVISOR, kind="visit", enumerator="kasur_enumerator", application_id=app.id, now=NOW)
        assert asg.assign(s, OFFICER, kind="visit", enumerator="kasur_enumerator", application_id=app.id,
                          due_on=date(2026, 12, 10), now=NOW) == 1
        step = ap.current_step(s, app.id)
        assert (step.owner, step.visit_on) == ("kasur_enumerator", date(2026, 12, 10))
        # already scheduled for that enumerator: the supervisor may assign it (the old one is cancelled)
        assert asg.assign(s, SUPERVISOR, kind="visit", enumerator="kasur_enumerator", application_id=app.id,
                          now=NOW) == 1
        visits = s.execute(text("SELECT status FROM field_assignment WHERE kind = 'visit' ORDER BY id")).scalars().all()
        assert visits == ["cancelled", "open"]
        assert [a.due_on for a in asg.open_for(s, "kasur_enumerator", "visit")] == [date(2026, 12, 10)]


def payroll_at_outlets(engine) -> tuple[int, int, int]:
    """A real payroll of bisp_kafaalat with Kasur's pull-channel payments seated at Kasur's outlets:
    (payroll id, the busiest outlet, seats there)."""
    with transaction(engine) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test", on=date(2026, 6, 1))
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "test", date(2026, 6, 1))
        cycle = cycles.open_cycle(s, "bisp_kafaalat", date(2026, 7, 1), "maker")
        cycles.generate_entitlements(s, cycle.id)
        cycles.approve_cycle(s, cycle.id, "checker")
        p = pr.generate(s, cycle.id, "maker")
        pickup.seed_outlets(s, KASUR, per_tehsil=1, capacity=50)
        assert pickup.schedule(s, p.id, KASUR, date(2026, 12, 9))["scheduled"] > 0
        outlet, seats = s.execute(text("""SELECT outlet_id, COUNT(*) FROM pickup_slot GROUP BY outlet_id
            ORDER BY COUNT(*) DESC, outlet_id LIMIT 1""")).one()
        return p.id, outlet, seats


def sites_lists_and_the_hand_over_once(province):
    payroll_id, outlet, seats = payroll_at_outlets(province)
    with transaction(province) as s:
        cash = dist.create_site(s, SUPERVISOR, name="Kasur agent counter", kind="cash", district_id=KASUR,
                                outlet_id=outlet, opens_on=date(2026, 12, 9), closes_on=date(2027, 1, 31))
        assert cash.tehsil_id is not None
        assert dist.list_from_payroll(s, SUPERVISOR, cash.id, payroll_id) == seats
        assert dist.list_from_payroll(s, SUPERVISOR, cash.id, payroll_id) == 0  # again: nothing added
        line = s.execute(text("""SELECT d.amount, d.token, i.amount, ps.seat FROM distribution_entry d
            JOIN payment_instruction i ON i.id = d.instruction_id JOIN pickup_slot ps ON ps.instruction_id = i.id
            WHERE d.site_id = :s LIMIT 1"""), {"s": cash.id}).one()
        assert float(line[0]) == line[2] and line[1] == line[3]
        assert s.execute(text("SELECT COUNT(*) FROM distribution_entry WHERE site_id = :s AND individual_id IS NULL"),
                         {"s": cash.id}).scalar_one() == 0
        with pytest.raises(dist.DistributionError, match="outlet_id"):
            dist.create_site(s, SUPERVISOR, name="No outlet", kind="cash", district_id=KASUR)
        with pytest.raises(dist.OutOfScope):
            dist.create_site(s, LAHORE, name="Not mine", kind="in_kind", district_id=KASUR)
        with pytest.raises(dist.OutOfScope):
            dist.list_from_payroll(s, LAHORE, cash.id, payroll_id)

        # in kind: ration packs for households whose members hold CNICs
        homes = s.execute(text(f"""SELECT household_id FROM individual i WHERE district_id = 2 AND cnic IS NOT NULL
            AND {current.sql('i')} GROUP BY household_id HAVING COUNT(*) >= 2 ORDER BY household_id LIMIT 4""")
                          ).scalars().all()
        ration = dist.create_site(s, SUPERVISOR, name="Govt. Girls School, Khudian", kind="in_kind", district_id=KASUR,
                                  opens_on=date(2026, 12, 8))
        assert dist.list_in_kind(s, SUPERVISOR, ration.id, list_ref="ration:2026-12", item="ration_pack", quantity=2,
                                 household_ids=homes) == 4
        assert dist.list_in_kind(s, SUPERVISOR, ration.id, list_ref="ration:2026-12", item="ration_pack", quantity=2,
                                 household_ids=homes[:2]) == 0
        with pytest.raises(dist.DistributionError, match="household_ids: 999999999 not households of district 2"):
            dist.list_in_kind(s, SUPERVISOR, ration.id, list_ref="r", item="tent", quantity=1,
                              household_ids=[homes[0], 999999999])
        assert s.execute(text("SELECT COUNT(*) FROM distribution_entry WHERE item = 'tent'")).scalar_one() == 0
        entries = s.query(DistributionEntry).filter_by(site_id=ration.id).order_by(DistributionEntry.id).all()
        ids = [e.id for e in entries]
        people = {e.id: s.execute(text("SELECT id, cnic FROM individual WHERE id = :i"), {"i": e.individual_id}).one()
                  for e in entries}
        other = s.execute(text(f"""SELECT id, cnic FROM individual i WHERE household_id = :h AND id <> :me
            AND cnic IS NOT NULL AND {current.sql('i')} LIMIT 1"""),
                          {"h": entries[1].household_id, "me": entries[1].individual_id}).one()
        stranger = s.execute(text("SELECT id FROM individual WHERE household_id <> :h LIMIT 1"),
                             {"h": entries[1].household_id}).scalar_one()

    def hand(entry_id, site_id=None, **kw):
        args = {"site_id": site_id or ration.id, "entry_id": entry_id, "by": "kasur_enumerator", "evidence": "cnic",
                "cnic_seen": None, "received_by": None, "at": NOW, "submission_id": None} | kw
        with transaction(province) as s:
            return dist.hand_over(s, **args)

    refusals = [
        (dict(entry_id=ids[0], site_id=cash.id), "entry_id", "not on the list of site"),
        (dict(entry_id=ids[0], cnic_seen="3520212345671"), "cnic_seen", "is not the CNIC of the receiver"),
        (dict(entry_id=ids[0], cnic_seen="12345"), "cnic_seen", "13 digits"),
        (dict(entry_id=ids[0], evidence="photo"), "evidence", "not one of"),
        (dict(entry_id=ids[1], received_by=stranger), "received_by", "not a current member"),
        (dict(entry_id=ids[0], at=datetime(2026, 12, 1, 9)), "at", "outside the days of site"),
    ]
    for kw, field, says in refusals:
        with pytest.raises(dist.HandOverRefused, match=says) as e:
            hand(**kw)
        assert e.value.field == field and e.value.entry_id == kw["entry_id"] and f"entry {kw['entry_id']}" in str(e.value)
    # the named recipient's CNIC (written with dashes), then a duplicate; another member takes the next
    first = hand(ids[0], cnic_seen=f"{people[ids[0]][1][:5]}-{people[ids[0]][1][5:12]}-{people[ids[0]][1][12]}",
                 submission_id=77)
    assert first.handed_over_by == "kasur_enumerator" and first.received_by == people[ids[0]][0]
    with pytest.raises(dist.HandOverRefused, match="duplicate"):
        hand(ids[0], evidence="fingerprint")
    second = hand(ids[1], cnic_seen=other[1], received_by=other[0])
    assert second.received_by == other[0] and second.evidence == "cnic"
    assert hand(ids[2], evidence="fingerprint").evidence == "fingerprint"
    with transaction(province) as s:
        assert dist.summary(s, ration.id) == {"lines": 4, "handed_over": 3, "remaining": 1, "amount": 0.0,
                                              "amount_handed_over": 0.0}
        assert s.execute(text("""SELECT COUNT(*) FROM audit_log WHERE action = 'hand_over'
            AND entity = 'distribution_entry'""")).scalar_one() == 3
        # nothing posted to the ledger by a cash site (the status file remains the payment's truth)
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'pd'")).scalar_one() == 0
        # a site's staff: its assignments are done once the whole list is handed over
        assert asg.assign(s, SUPERVISOR, kind="site", enumerator="kasur_enumerator", site_id=ration.id, now=NOW) == 1
        assert asg.assign(s, SUPERVISOR, kind="site", enumerator="kasur_enumerator", site_id=ration.id, now=NOW) == 0
        assert asg.complete(s, kind="site", submission_id=1, at=NOW, site_id=ration.id) == 0
        with pytest.raises(asg.OutOfScope):
            asg.assign(s, LAHORE, kind="site", enumerator="kasur_enumerator", site_id=ration.id)

    if province.dialect.name == "postgresql":
        # two laptops at one site send the last line at once: one wins, the other is refused
        barrier, results = threading.Barrier(2), []

        def race():
            try:
                with transaction(province) as s:
                    s.execute(text("SELECT 1"))
                    barrier.wait(timeout=10)
                    dist.hand_over(s, site_id=ration.id, entry_id=ids[3], by="kasur_enumerator",
                                   evidence="fingerprint", cnic_seen=None, received_by=None, at=NOW,
                                   submission_id=None)
                results.append("won")
            except dist.HandOverRefused as e:
                results.append(e.field)

        threads = [threading.Thread(target=race) for _ in range(2)]
        [t.start() for t in threads]
        [t.join(timeout=30) for t in threads]
        assert sorted(results) == ["entry_id", "won"]
    else:
        hand(ids[3], evidence="fingerprint")
    with transaction(province) as s:
        assert asg.complete(s, kind="site", submission_id=1, at=NOW + timedelta(hours=1), site_id=ration.id) == 1
        assert s.query(FieldAssignment).filter_by(kind="site", status="done").count() == 1
