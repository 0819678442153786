"""Grievance redress on both backends: routing to an owner in the right district, never an owner-less
open grievance, escalation with a moved clock, resolution and the citizen's confirmation or reopening
(history kept), payment and agent grievances, the analytics against hand-computed figures, and bad
input refused with nothing stored."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import text

from isps.access.service import AccessError, Principal, create_user, set_active
from isps.citizen import receipts
from isps.citizen.grievances import analytics, routing
from isps.citizen.grievances import service as gs
from isps.db import transaction
from isps.registry.service import OutOfScope

T0 = datetime(2026, 9, 1, 9, 0, 0)
COUNTER = Principal("kasur_counter", "counter_operator", 2)
GRIEVANCE = Principal("kasur_grievance", "grievance_officer", 2)
OFFICER = Principal("kasur_officer", "district_officer", 2)
ADMIN = Principal("admin", "administrator", None)


def one(s, sql: str, **p):
    return s.execute(text(sql), p).scalar()


def kasur_household(s, nth: int = 0) -> int:
    return one(s, "SELECT id FROM household WHERE district_id = 2 ORDER BY id LIMIT 1 OFFSET :n", n=nth)


def file(s, who=COUNTER, **kw):
    args = dict(channel="counter", category="other", description="a complaint", district_id=None, now=T0)
    args.update(kw)
    return gs.file_grievance(s, who, **args)


def ownerless(s) -> int:
    return one(s, """SELECT COUNT(*) FROM grievance g WHERE g.status IN ('open', 'reopened') AND NOT EXISTS (
        SELECT 1 FROM app_user u WHERE u.username = g.owner AND u.active = :y)""", y=True)


def test_each_category_is_routed_to_an_owner_in_its_district_and_never_left_without_one(province):
    with transaction(province) as s:
        create_user(s, "kasur_grievance2", "test-pass-123", "grievance_officer", district_id=2)
        hh = kasur_household(s)
        made = {}
        for category in gs.CATEGORIES:
            outlet = None
            if category in gs.AGENT_CATEGORIES:
                outlet = one(s, "SELECT MIN(id) FROM cash_outlet WHERE district_id = 2")
                if outlet is None:
                    from isps.payments import pickup
                    pickup.seed_outlets(s, 2)
                    outlet = one(s, "SELECT MIN(id) FROM cash_outlet WHERE district_id = 2")
            g = file(s, category=category, household_id=hh, outlet_id=outlet, phone="0300 1234567")
            made[category] = g.id
            assert g.district_id == 2 and g.level == 1 and g.status == "open"
            assert g.owner in ("kasur_grievance", "kasur_grievance2")  # Kasur's grievance officers
            assert g.due_at == T0 + timedelta(days=routing.sla_days(category))
            assert g.phone == "923001234567"
        # the least loaded officer: the two share the work
        loads = dict(s.execute(text("SELECT owner, COUNT(*) FROM grievance GROUP BY owner")).all())
        assert set(loads) == {"kasur_grievance", "kasur_grievance2"} and abs(loads["kasur_grievance"]
                                                                              - loads["kasur_grievance2"]) <= 1
        assert routing.sla_days("payment_not_received") == 7 and routing.sla_days("data_error") == 15
        # a Lahore household: Lahore has no grievance officer, so its district officer owns it
        lahore = one(s, "SELECT id FROM household WHERE district_id = 1 ORDER BY id LIMIT 1")
        g = file(s, ADMIN, household_id=lahore, channel="call_centre")
        assert (g.district_id, g.owner, g.level) == (1, "lahore_officer", 2)
        # an SMS from a phone nobody knows: the province level, with the note saying why
        g = gs.file_grievance(s, None, channel="sms", category="payment_not_received", description="no money",
                              district_id=None, phone="03001112223", actor="sms:92300*****23", now=T0)
        assert (g.district_id, g.owner, g.level) == (None, "manager", 3)
        assert "district unknown" in gs.history(s, g.id)[1].note
        # a district counter files only in its district
        with pytest.raises(OutOfScope):
            file(s, household_id=lahore)
        with pytest.raises(AccessError):
            file(s, Principal("auditor", "auditor", None))
    with transaction(province) as s:
        assert ownerless(s) == 0
        # disabling an owner: their open grievances go to the other grievance officer at once
        set_active(s, ADMIN, "cli", "kasur_grievance", False)
        moved = gs.reassign_inactive(s, T0)
        assert moved == loads["kasur_grievance"] and ownerless(s) == 0
        assert one(s, "SELECT COUNT(*) FROM grievance WHERE owner = 'kasur_grievance'") == 0
        assert one(s, "SELECT COUNT(*) FROM grievance_event WHERE kind = 'reassigned' AND from_owner = 'kasur_grievance' "
                      "AND to_owner = 'kasur_grievance2'") == moved
        # both Kasur grievance officers gone: the district officer (level 2)
        set_active(s, ADMIN, "cli", "kasur_grievance2", False)
        gs.reassign_inactive(s, T0)
        assert ownerless(s) == 0
        assert set(s.scalars(text("SELECT DISTINCT owner FROM grievance WHERE district_id = 2"))) == {"kasur_officer"}
        # Kasur's district officer moved to Lahore: Kasur's grievances go up to the program manager
        from isps.access.service import change_role
        change_role(s, ADMIN, "cli", "kasur_officer", "district_officer", 1)
        gs.reassign_inactive(s, T0)
        assert set(s.scalars(text("SELECT DISTINCT owner FROM grievance WHERE district_id = 2"))) == {"manager"}
        assert ownerless(s) == 0
    # the database itself refuses an open grievance without an owner
    with pytest.raises(Exception):
        with transaction(province) as s:
            s.execute(text("UPDATE grievance SET owner = NULL WHERE status = 'open'"))


def test_escalation_with_a_moved_clock_resolution_confirmation_and_reopening(province):
    with transaction(province) as s:
        g = file(s, category="payment_not_received", household_id=kasur_household(s))
        gid = g.id
        assert gs.escalate_late(s, T0 + timedelta(days=6)) == 0  # not late yet
    with transaction(province) as s:
        late = T0 + timedelta(days=8)
        assert gs.escalate_late(s, late) == 1
        g = s.get(gs.Grievance, gid)
        assert (g.owner, g.level, g.due_at) == ("kasur_officer", 2, late.replace(microsecond=0)
                                                + timedelta(days=routing.ESCALATION_DAYS))
        assert gs.escalate_late(s, late + timedelta(hours=1)) == 0  # once per lateness
        assert gs.escalate_late(s, late + timedelta(days=4)) == 1   # late again at level 2: up to a manager
        assert (s.get(gs.Grievance, gid).owner, s.get(gs.Grievance, gid).level) == ("manager", 3)
        kinds = [(e.kind, e.from_level, e.to_level) for e in gs.history(s, gid)]
        assert kinds == [("filed", None, None), ("routed", None, 1), ("escalated", 1, 2), ("escalated", 2, 3)]
        gs.resolve(s, Principal("manager", "program_manager", None), gid, root_cause="bank_delay",
                   resolution="the bank credited it on 10 September", now=late + timedelta(days=5))
        with pytest.raises(gs.GrievanceError, match="status: grievance GR.* is resolved"):
            gs.resolve(s, ADMIN, gid, root_cause="bank_delay", resolution="again")  # not open any more
    with transaction(province) as s:
        # not satisfied: reopened, history kept, a new due time, reopen_count 1, owner kept (still active)
        when = late + timedelta(days=6)
        g = gs.confirm(s, gid, "sms:92300*****67", satisfied=False, note="still not received", now=when)
        assert (g.status, g.reopen_count, g.owner, g.due_at) == ("reopened", 1, "manager",
                                                                  when + timedelta(days=routing.REOPENED_DAYS))
        assert g.resolution is None and g.root_cause is None
        kinds = [e.kind for e in gs.history(s, gid)]
        assert kinds == ["filed", "routed", "escalated", "escalated", "resolved", "reopened"]
        assert "the bank credited it" in gs.history(s, gid)[4].note  # the first resolution is still there
        with pytest.raises(gs.GrievanceError, match="status"):
            gs.confirm(s, gid, "sms:x", satisfied=True)  # reopened: nothing to confirm yet
        gs.resolve(s, ADMIN, gid, root_cause="registry_data_error", resolution="account number corrected",
                   now=when + timedelta(days=1))
        g = gs.confirm(s, gid, ADMIN, satisfied=True, now=when + timedelta(days=2))
        assert g.status == "closed" and g.citizen_confirmed_at == when + timedelta(days=2)
        assert g.owner == "manager"  # kept, for the record
        assert [e.kind for e in gs.history(s, gid)][-3:] == ["reopened", "resolved", "confirmed"]
        st = gs.status_of(s, gid)
        assert st["receipt"] == receipts.make("grievance", gid) and st["status"] == "closed"
        assert not {"phone", "complainant_name", "household_id", "description"} & set(st)
        assert [x["id"] for x in gs.grievances_of(s, household_id=g.household_id)] == [gid]
        assert gs.grievances_of(s, phone="not a phone") == [] and gs.grievances_of(s) == []


def test_a_district_officer_escalates_by_hand_and_scoped_roles_stay_in_their_district(province):
    with transaction(province) as s:
        gid = file(s, household_id=kasur_household(s)).id
        with pytest.raises(OutOfScope):
            gs.get(s, Principal("lahore_officer", "district_officer", 1), gid)
        with pytest.raises(AccessError):
            gs.get(s, COUNTER, gid)  # a counter takes grievances, does not handle them
        assert gs.get(s, COUNTER, gid, handle=False).id == gid
        g = gs.escalate(s, GRIEVANCE, gid, note="needs the district officer", now=T0)
        assert (g.owner, g.level) == ("kasur_officer", 2)
        g = gs.assign(s, OFFICER, gid, "kasur_grievance", note="back to you with the bank's answer", now=T0)
        assert (g.owner, g.level) == ("kasur_grievance", 1)
        for bad, field in (("lahore_officer", "another district"), ("auditor", "does not handle"),
                           ("nobody", "no active user")):
            with pytest.raises(gs.GrievanceError, match=field):
                gs.assign(s, OFFICER, gid, bad)
        gs.add_note(s, GRIEVANCE, gid, "called the citizen", now=T0)
        assert [e.kind for e in gs.history(s, gid)] == ["filed", "routed", "escalated", "assigned", "note"]


@pytest.fixture
def paid(province, tmp_path):
    """A Kafaalat payroll approved, exported and reconciled, with pickup slots in Kasur."""
    from isps.payments import payroll as pr, pickup
    from isps.programs import cycles, enrolment as en
    from isps.targeting.eligibility import rules

    with transaction(province) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test", on=date(2026, 6, 1))
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "test", date(2026, 6, 1))
        cycle = cycles.open_cycle(s, "bisp_kafaalat", date(2026, 7, 1), "maker")
        cycles.generate_entitlements(s, cycle.id)
        cycles.approve_cycle(s, cycle.id, "checker")
        p = pr.generate(s, cycle.id, "maker")
        pr.release_funds(s, "bisp_kafaalat", p.total, "RO-1", "checker")
        pr.approve(s, p.id, "checker")
        pr.export(s, p.id, tmp_path)
        pickup.seed_outlets(s, 2)
        pickup.schedule(s, p.id, 2, date(2026, 7, 2), days=10)
        status = pr.bank_status_csv(s, p.id, seed=1)
        pr.reconcile(s, status, "status.csv", "bank")
    return province


def test_a_payment_grievance_links_the_instruction_and_its_ledger_trail_and_agents_are_counted(paid):
    with transaction(paid) as s:
        inst = s.execute(text("""SELECT i.id, e.household_id FROM payment_instruction i
            JOIN enrolment e ON e.id = i.enrolment_id JOIN pickup_slot p ON p.instruction_id = i.id
            WHERE i.district_id = 2 AND i.status = 'paid' ORDER BY i.id LIMIT 1""")).one()
        other_hh = one(s, "SELECT id FROM household WHERE district_id = 2 AND id <> :h ORDER BY id LIMIT 1",
                       h=inst.household_id)
        assert [p["id"] for p in gs.payments_of_household(s, inst.household_id)] == [inst.id]
        g = file(s, category="agent_deduction", payment_instruction_id=inst.id, description="the agent kept Rs 500")
        assert (g.household_id, g.program_code, g.district_id) == (inst.household_id, "bisp_kafaalat", 2)
        assert g.agency == one(s, "SELECT agency FROM program WHERE code = 'bisp_kafaalat'")
        outlet = one(s, "SELECT outlet_id FROM pickup_slot WHERE instruction_id = :i", i=inst.id)
        assert g.outlet_id == outlet  # the agent who paid it, from the pickup slot
        trail = gs.payment_trail(s, inst.id)
        assert trail["status"] == "paid" and trail["sent"] and trail["household_id"] == inst.household_id
        assert [(x["kind"], x["debit"], x["credit"]) for x in trail["ledger"]] == [
            ("snd", "clearing", "fund"), ("pd", "disbursed", "clearing")]
        assert [x["status"] for x in trail["status_lines"]] == ["paid"]
        assert trail["pickup"]["outlet_id"] == outlet
        file(s, category="agent_conduct", household_id=inst.household_id, outlet_id=outlet, description="rude")
        other = one(s, "SELECT MAX(id) FROM cash_outlet WHERE district_id = 2")
        file(s, category="agent_deduction", household_id=other_hh, outlet_id=other, description="kept Rs 200")
        file(s, category="payment_not_received", household_id=other_hh, outlet_id=other, description="not yet")
        counts = {c["outlet_id"]: (c["total"], c["deduction"], c["conduct"]) for c in gs.agent_counts(s, 2)}
        assert counts == {outlet: (2, 1, 1), other: (1, 1, 0)}  # a payment complaint is not against the agent
        assert gs.agent_counts(s, 1) == []
        # a payment of another household: refused, naming the field; nothing stored
        before = one(s, "SELECT COUNT(*) FROM grievance")
        with pytest.raises(gs.GrievanceError, match=f"payment_instruction_id: payment {inst.id} is not a payment of "
                                                    f"household {other_hh}"):
            file(s, category="payment_not_received", household_id=other_hh, payment_instruction_id=inst.id)
        assert one(s, "SELECT COUNT(*) FROM grievance") == before


def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(province):
    with transaction(province) as s:
        hh = kasur_household(s)
        cases = [
            (dict(category="lost_cow"), "category: 'lost_cow' is not one of"),
            (dict(description="   "), "description: required"),
            (dict(description="x" * 2001), "description: at most 2,000 characters"),
            (dict(channel="pigeon"), "channel: 'pigeon'"),
            (dict(phone="12345"), "phone: '12345' is not a Pakistani mobile number"),
            (dict(household_id=99), "household_id: there is no household 99"),
            (dict(payment_instruction_id=123456), "payment_instruction_id: there is no payment 123456"),
            (dict(program_code="no_such"), "program_code: there is no program 'no_such'"),
            (dict(category="agent_conduct", household_id=hh), "outlet_id: a complaint about an agent"),
            (dict(district_id=2, household_id=one(s, "SELECT id FROM household WHERE district_id = 1 LIMIT 1"),
                  who=ADMIN), "district_id: household"),
        ]
        for kw, message in cases:
            who = kw.pop("who", COUNTER)
            with pytest.raises(gs.GrievanceError, match=message.replace("(", r"\(")):
                file(s, who, **kw)
        gid = file(s, household_id=hh).id
        with pytest.raises(gs.GrievanceError, match="root_cause: 'weather'"):
            gs.resolve(s, GRIEVANCE, gid, root_cause="weather", resolution="done")
        with pytest.raises(gs.GrievanceError, match="resolution: required"):
            gs.resolve(s, GRIEVANCE, gid, root_cause="other", resolution="")
        with pytest.raises(gs.GrievanceError, match="status"):
            gs.confirm(s, gid, GRIEVANCE, satisfied=True)  # not resolved yet
    with transaction(province) as s:
        assert one(s, "SELECT COUNT(*) FROM grievance") == 1
        assert one(s, "SELECT COUNT(*) FROM grievance_event") == 2  # filed, routed
        assert one(s, "SELECT status FROM grievance") == "open"


def test_wrong_exclusion_starts_a_reassessment_and_appeals_the_exclusion(province):
    with transaction(province) as s:
        person = s.execute(text("SELECT id, household_id FROM individual WHERE district_id = 2 "
                                "AND date_of_death IS NULL ORDER BY id LIMIT 1")).one()
        s.execute(text("""INSERT INTO exclusion_flag (individual_id, reason, household_id, district_id, detail, source,
                source_ref, effective_date, active) VALUES (:i, 'public_sector_employee', :h, 2, 'on the payroll',
                'payroll', 'test', :d, :y)"""), {"i": person.id, "h": person.household_id, "d": date(2026, 1, 1), "y": True})
        events_before = one(s, "SELECT COUNT(*) FROM outbox_event WHERE topic = 'household.changed' AND aggregate_id = :h",
                            h=person.household_id)
        g = file(s, category="wrong_exclusion", individual_id=person.id, description="I retired last year")
        assert g.household_id == person.household_id and g.change_request_id is not None
        cr = s.execute(text("SELECT entity_id, status, changes, requested_by FROM change_request WHERE id = :c"),
                       {"c": g.change_request_id}).one()
        assert (cr.entity_id, cr.status, cr.requested_by) == (person.id, "pending", "kasur_counter")
        assert "exclusion:public_sector_employee" in str(cr.changes)
        assert one(s, "SELECT COUNT(*) FROM outbox_event WHERE topic = 'household.changed' AND aggregate_id = :h",
                   h=person.household_id) == events_before + 1
        note = [e.note for e in gs.history(s, g.id) if e.kind == "reassessment"][0]
        assert f"change request {g.change_request_id}" in note and str(person.household_id) in note


def test_analytics_against_hand_computed_figures(province):
    with transaction(province) as s:
        hh = kasur_household(s)
        lahore = one(s, "SELECT id FROM household WHERE district_id = 1 ORDER BY id LIMIT 1")
        # four grievances resolved after 10, 20, 30 and 40 hours; one reopened; one still open
        made = []
        for i, (category, hours) in enumerate((("data_error", 10), ("data_error", 20), ("other", 30),
                                               ("payment_partial", 40))):
            g = file(s, ADMIN, category=category, household_id=hh if i < 3 else lahore,
                     channel="sms" if i == 0 else "counter", now=T0)
            gs.resolve(s, ADMIN, g.id, root_cause="registry_data_error" if category == "data_error" else "other",
                       resolution="done", now=T0 + timedelta(hours=hours))
            made.append(g.id)
        gs.confirm(s, made[0], ADMIN, satisfied=False, now=T0 + timedelta(hours=50))
        file(s, ADMIN, category="other", household_id=hh, now=T0 + timedelta(days=40))
    with transaction(province) as s:
        t = analytics.time_to_resolve(s)
        # still resolved: 20, 30, 40 hours (the reopened one is not resolved now)
        assert t["overall"] == {"n": 3, "median_hours": 30.0, "p90_hours": 40.0}
        assert t["by_category"]["data_error"] == {"n": 1, "median_hours": 20.0, "p90_hours": 20.0}
        assert analytics.reopen_rate(s) == {"total": 5, "resolved": 4, "reopened": 1, "rate": 25.0}
        by_district = {(r["key"], r["category"]): r["n"] for r in analytics.causes(s, "district")}
        assert by_district == {(2, "data_error"): 2, (2, "other"): 2, (1, "payment_partial"): 1}
        assert {(r["key"], r["n"]) for r in analytics.causes(s, "channel") if r["category"] == "data_error"} == {
            ("sms", 1), ("counter", 1)}
        months = {(r["key"], r["category"]): r["n"] for r in analytics.causes(s, "month")}
        assert months == {("2026-09", "data_error"): 2, ("2026-09", "other"): 1, ("2026-09", "payment_partial"): 1,
                          ("2026-10", "other"): 1}
        assert {(r["root_cause"], r["category"]): r["n"] for r in analytics.root_causes(s)} == {
            ("registry_data_error", "data_error"): 1, ("other", "other"): 1, ("other", "payment_partial"): 1}
        # a district's figures are its own
        assert analytics.reopen_rate(s, 1) == {"total": 1, "resolved": 1, "reopened": 0, "rate": 0.0}
        assert analytics.time_to_resolve(s, 1)["overall"] == {"n": 1, "median_hours": 40.0, "p90_hours": 40.0}


def test_the_migration_makes_the_tables_the_models_describe(engine):
    from sqlalchemy import inspect

    from isps.citizen.grievances import models

    insp = inspect(engine)
    for name in models.TABLES:
        table = models.Grievance.metadata.tables[name]
        cols = {c["name"]: c for c in insp.get_columns(name)}
        assert set(cols) == {c.name for c in table.columns}, name
        for c in table.columns:
            assert cols[c.name]["nullable"] == c.nullable, (name, c.name)
            assert type(cols[c.name]["type"]).__name__ != "NullType"
            length = getattr(c.type, "length", None)
            if length:
                assert getattr(cols[c.name]["type"], "length", None) == length, (name, c.name)
        assert {i["name"] for i in insp.get_indexes(name)} == {i.name for i in table.indexes}, name
    checks = {c["name"] for c in insp.get_check_constraints("grievance")}
    assert {"ck_grievance_owner", "ck_grievance_status"} <= checks


def test_the_complainant_is_sent_the_receipt_and_the_resolution_once_each(province, monkeypatch):
    """The one call into the outbound queue (``messaging.queue.enqueue``): a key per grievance and event,
    the complainant's phone and language, the district; none without a phone."""
    import sys
    import types

    import isps.messaging

    sent = []
    fake = types.SimpleNamespace(enqueue=lambda session, **kw: sent.append(kw))
    monkeypatch.setitem(sys.modules, "isps.messaging.queue", fake)
    monkeypatch.setattr(isps.messaging, "queue", fake, raising=False)
    with transaction(province) as s:
        g = file(s, household_id=kasur_household(s), phone="0333-1234567", lang="en")
        receipt = receipts.make("grievance", g.id)
        assert len(sent) == 1 and sent[0]["key"] == f"grievance:{g.id}:filed"
        assert (sent[0]["phone"], sent[0]["lang"], sent[0]["district_id"], sent[0]["kind"]) == (
            "923331234567", "en", 2, "grievance")
        assert sent[0]["household_id"] == g.household_id  # on the citizen's screen
        assert receipt in sent[0]["text"] and "2026-09-16" in sent[0]["text"]  # due in 15 days
        gs.resolve(s, GRIEVANCE, g.id, root_cause="other", resolution="explained the rule", now=T0)
        gs.confirm(s, g.id, "sms:x", satisfied=False, now=T0)
        gs.resolve(s, GRIEVANCE, g.id, root_cause="other", resolution="paid at last", now=T0)
        assert [m["key"] for m in sent] == [f"grievance:{g.id}:filed", f"grievance:{g.id}:resolved-0",
                                            f"grievance:{g.id}:resolved-1"]
        assert "paid at last" in sent[-1]["text"]
        file(s, household_id=kasur_household(s), lang="ur")  # no phone: nothing sent
        assert len(sent) == 3
        ur = file(s, household_id=kasur_household(s), phone="03331234567")
        assert "رسید" in sent[-1]["text"] and sent[-1]["lang"] == "ur" and ur.lang == "ur"


def test_the_receipt_lands_in_the_one_outbound_queue_once(province):
    from isps.messaging.models import Message

    with transaction(province) as s:
        g = file(s, household_id=kasur_household(s), phone="+92 333 1234567")
        gid = g.id
    with transaction(province) as s:  # filed messages are queued in the filing's transaction
        rows = s.execute(text("SELECT key, phone, kind, lang, household_id, status FROM sms_message")).all()
        assert [tuple(r) for r in rows] == [(f"grievance:{gid}:filed", "923331234567", "grievance", "ur",
                                             g.household_id, "queued")]
        assert receipts.make("grievance", gid) in s.scalar(text("SELECT text FROM sms_message"))
        gs._sms(s, s.get(gs.Grievance, gid), "filed", due="2026-09-16")  # again: the key holds it to one
        assert s.scalar(text("SELECT COUNT(*) FROM sms_message")) == 1
        assert Message.__tablename__ == "sms_message"
