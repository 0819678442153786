"""Household membership at the counter: a member added, removed (died, moved to another household,
left, entered in error) and edited through change requests a second person approves; and "a current
member" (isps.registry.current) as every count, score and rule now reads it. Both backends."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from isps.db import transaction
from isps.interop.dci import subscriptions
from isps.interop.feeds import changes
from isps.interop.models import ChangeRequest
from isps.registry import current, events
from isps.registry.models import Household, Individual, OutboxEvent, ValueChange
from isps.registry.service import RegistryError
from isps.services.events import drain
from isps.targeting import pmt
from isps.targeting.eligibility import rules
from isps.targeting.models import PmtScore

TODAY = date.today()


def _household(s, district_id: int = 2, members: int = 3) -> Household:
    """A household of the district with at least ``members`` current members, a head among them."""
    n = (select(Individual.household_id).where(current.clause(), Individual.district_id == district_id)
         .group_by(Individual.household_id).having(func.count() >= members))
    return s.scalars(select(Household).where(Household.id.in_(n)).order_by(Household.id)).first()


def _members(s, household_id: int) -> int:
    return s.scalar(select(func.count()).select_from(Individual).where(
        Individual.household_id == household_id, current.clause()))


def _aggregate_members(s, household_id: int) -> int:
    """The PMT's own member aggregate for the household (what the score is computed from)."""
    sql = pmt._member_aggregates("AND household_id = :h")
    row = s.execute(text(sql), {"h": household_id, **pmt._age_params(TODAY)}).first()
    return row.members if row else 0


def _score(s, household_id: int) -> float | None:
    model = pmt.active_model(s)
    row = s.get(PmtScore, (model.id, household_id))
    return None if row is None else float(row.score)


def _approve(province, request_id: int, approver: str = "kasur_officer") -> ChangeRequest:
    with transaction(province) as s:
        row = changes.approve_change(s, request_id, approver, district_scope=2)
        return row.applied_fields


def test_a_member_added_through_a_change_request_exists_and_rescores_the_household(province):
    with transaction(province) as s:
        hh = _household(s)
        hid, before_members, before_score = hh.id, _members(s, hh.id), _score(s, hh.id)
        last = s.scalar(select(func.max(OutboxEvent.id))) or 0
        req = changes.request_member_add(
            s, household_id=hid, member={"full_name": "Ayesha Bibi", "father_husband_name": "Imran Ali",
                                         "sex": "female", "date_of_birth": (TODAY - timedelta(days=40)).isoformat(),
                                         "relation_to_head": "grandchild", "cnic": "35102-1234567-2",
                                         "id_document": "bform"},
            source="operator", evidence="B-form issued by NADRA", evidence_ref="scan-77", requested_by="kasur_counter",
            district_scope=2)
        rid = req.id
        assert _members(s, hid) == before_members  # nothing changes before a second person approves
    with pytest.raises(changes.SamePersonError):
        with transaction(province) as s:
            changes.approve_change(s, rid, "kasur_counter", district_scope=2)
    applied = _approve(province, rid)
    assert applied[0] == "member.added"
    with transaction(province) as s:
        baby = s.scalars(select(Individual).where(Individual.cnic == "3510212345672")).one()
        assert baby.household_id == hid and baby.id // 10**11 == 2 and baby.id_document == "bform"
        assert baby.roster_line == s.scalar(select(func.max(Individual.roster_line))
                                            .where(Individual.household_id == hid))
        assert _members(s, hid) == before_members + 1
        hist = s.scalars(select(ValueChange).where(ValueChange.entity_id == baby.id)).all()
        assert [(h.field, h.new_value) for h in hist] == [("membership", "joined")]
        assert "change request" in hist[0].source_ref
        ev = s.scalars(select(OutboxEvent).where(OutboxEvent.id > last, OutboxEvent.aggregate_id == hid)).all()
        assert any(e.topic == events.HOUSEHOLD_CHANGED and "member.added" in e.payload["fields"] for e in ev)
        assert any(subscriptions._matches("NewHouseHoldMember", e.topic, e.payload) for e in ev)
    drain(province)  # the events re-score the household: one more dependent (a baby)
    with transaction(province) as s:
        assert _aggregate_members(s, hid) == before_members + 1
        after = _score(s, hid)
        assert after is not None and after != before_score


def test_bad_member_input_names_the_field_and_stores_nothing(province):
    with transaction(province) as s:
        hid = _household(s).id
        count = s.scalar(select(func.count()).select_from(ChangeRequest))
        base = {"full_name": "Bilal", "sex": "male", "date_of_birth": "2001-02-03", "relation_to_head": "son"}
        cases = [({**base, "date_of_birth": "03/02/2001"}, "date_of_birth"),
                 ({**base, "sex": "boy"}, "sex"),
                 ({**base, "full_name": ""}, "full_name"),
                 ({**base, "cnic": "12345"}, "cnic"),
                 ({**base, "cnic": "35102-1234567-2"}, "cnic"),  # a man's CNIC ends in an odd digit
                 ({**base, "relation_to_head": "head"}, "relation_to_head"),
                 ({**base, "phone": "0300-1234567-888-999"}, "phone")]
        for member, name in cases:
            with pytest.raises(changes.ChangeRequestError, match=name):
                changes.request_member_add(s, household_id=hid, member=member, source="operator", evidence="x",
                                           requested_by="kasur_counter", district_scope=2)
        with pytest.raises(changes.ChangeRequestError, match="evidence"):
            changes.request_member_add(s, household_id=hid, member=base, source="operator", evidence=" ",
                                       requested_by="kasur_counter", district_scope=2)
        with pytest.raises(changes.ChangeRequestError, match="reason"):
            changes.request_member_remove(s, individual_id=s.scalars(select(Individual.id).where(
                Individual.household_id == hid)).first(), reason="vanished", source="operator", evidence="x",
                requested_by="kasur_counter", district_scope=2)
        assert s.scalar(select(func.count()).select_from(ChangeRequest)) == count


def _non_head(s, hid: int, **where) -> Individual:
    q = select(Individual).where(Individual.household_id == hid, Individual.relation_to_head != "head",
                                 current.clause())
    for k, v in where.items():
        q = q.where(getattr(Individual, k) == v)
    return s.scalars(q.order_by(Individual.roster_line)).first()


def _remove(province, pid: int, reason: str, **kw) -> None:
    with transaction(province) as s:
        rid = changes.request_member_remove(s, individual_id=pid, reason=reason, source="operator",
                                            evidence="statement of the head, witnessed", requested_by="kasur_counter",
                                            effective_date=TODAY, district_scope=2, **kw).id
    _approve(province, rid)
    drain(province)


@pytest.mark.parametrize("reason,detail", [("left", "married_away"), ("entered_in_error", None)])
def test_a_member_who_left_stays_on_record_and_is_no_longer_counted(province, reason, detail):
    with transaction(province) as s:
        hid = _household(s).id
        person = _non_head(s, hid)
        pid, before = person.id, _aggregate_members(s, hid)
        assert _rule_members(s, hid) == before
    _remove(province, pid, reason, detail=detail)
    with transaction(province) as s:
        p = s.get(Individual, pid)
        assert p.household_id == hid and p.left_on == TODAY
        assert p.left_reason == (detail or "entered_in_error") and p.date_of_death is None
        assert _aggregate_members(s, hid) == before - 1
        # the eligibility rule compiler counts current members only: the household's size in a
        # materialised evaluation is the PMT's member count
        assert _rule_members(s, hid) == before - 1
        fields = {h.field for h in s.scalars(select(ValueChange).where(ValueChange.entity_id == pid))}
        assert {"left_on", "left_reason"} <= fields
        from isps.registry.service import snapshot  # what was known: a member yesterday, gone today
        assert "status" not in snapshot(s, hid, TODAY - timedelta(days=1)).members[pid]
        assert snapshot(s, hid, TODAY).members[pid]["status"].value == "left"
        # the partial index's predicate: a district's current members
        assert s.scalar(select(func.count()).select_from(Individual).where(
            Individual.district_id == 2, current.clause())) == s.scalar(text(
                f"SELECT COUNT(*) FROM individual WHERE district_id = 2 AND {current.CURRENT}"))
    with transaction(province) as s:  # a second removal of the same person is refused, naming why
        with pytest.raises(changes.ChangeRequestError, match="no longer a current member"):
            changes.request_member_remove(s, individual_id=pid, reason="died", source="operator", evidence="x",
                                          requested_by="kasur_counter", district_scope=2)


def _rule_members(s, household_id: int) -> int:
    """How many members the eligibility rule language sees in the household (``members``)."""
    rule = rules.Rule.from_spec({"code": "t_size", "name": "size", "unit": "household",
                                 "criteria": [{"id": "big", "when": "members >= 1", "fail": "small"}]})
    compiled = rules.compile_rule(s, rule, household_id=household_id)
    row = s.execute(text(compiled.select_sql), rules._params(s, compiled, TODAY, None)).mappings().first()
    return row["members"]


def test_a_member_who_died_takes_the_death_path(province):
    with transaction(province) as s:
        hid = _household(s).id
        pid = _non_head(s, hid).id
        before = _aggregate_members(s, hid)
        last = s.scalar(select(func.max(OutboxEvent.id))) or 0
    _remove(province, pid, "died")
    with transaction(province) as s:
        p = s.get(Individual, pid)
        assert p.date_of_death == TODAY and p.left_on is None
        assert _aggregate_members(s, hid) == before - 1
        assert s.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.id > last, OutboxEvent.topic == events.MEMBER_DECEASED,
            OutboxEvent.aggregate_id == hid)) == 1


def test_a_member_who_moved_is_counted_in_the_new_household_with_history_on_both(province):
    with transaction(province) as s:
        a = _household(s)
        b = s.scalars(select(Household).where(Household.district_id == 2, Household.id != a.id)
                      .order_by(Household.id.desc())).first()
        pid = _non_head(s, a.id).id
        in_a, in_b = _aggregate_members(s, a.id), _aggregate_members(s, b.id)
        aid, bid = a.id, b.id
        s.execute(text("DELETE FROM pmt_score WHERE household_id = :h"), {"h": bid})  # re-scored by the events
    with transaction(province) as s:
        with pytest.raises(changes.ChangeRequestError, match="to_household"):
            changes.request_member_remove(s, individual_id=pid, reason="moved_to_household", source="operator",
                                          evidence="x", requested_by="kasur_counter", district_scope=2)
        with pytest.raises(changes.ChangeRequestError, match="to_household"):
            changes.request_member_remove(s, individual_id=pid, reason="moved_to_household", to_household=aid,
                                          source="operator", evidence="x", requested_by="kasur_counter",
                                          district_scope=2)
    _remove(province, pid, "moved_to_household", to_household=bid, relation="daughter_in_law")
    with transaction(province) as s:
        p = s.get(Individual, pid)
        assert p.household_id == bid and p.relation_to_head == "daughter_in_law" and p.left_on is None
        assert _aggregate_members(s, aid) == in_a - 1 and _aggregate_members(s, bid) == in_b + 1
        for hid in (aid, bid):
            assert s.scalar(select(func.count()).select_from(ValueChange).where(
                ValueChange.household_id == hid, ValueChange.entity_id == pid,
                ValueChange.field == "household_id")) == 1
        assert _score(s, bid) is not None


def test_a_member_edit_is_a_change_request_with_evidence(province):
    with transaction(province) as s:
        hid = _household(s).id
        pid = _non_head(s, hid).id
        rid = changes.request_change(s, entity="individual", entity_id=pid,
                                     changes={"full_name": "Muhammad Usman", "phone": "03001234567",
                                              "marital_status": "married"},
                                     source="operator", evidence="CNIC copy", requested_by="kasur_counter",
                                     district_scope=2).id
    _approve(province, rid)
    with transaction(province) as s:
        p = s.get(Individual, pid)
        assert (p.full_name, p.phone, p.marital_status) == ("Muhammad Usman", "03001234567", "married")


def test_the_head_cannot_leave_while_others_remain(province):
    with transaction(province) as s:
        hid = _household(s).id
        head = s.scalars(select(Individual).where(Individual.household_id == hid,
                                                  Individual.relation_to_head == "head")).first()
        rid = changes.request_member_remove(s, individual_id=head.id, reason="left", detail="migrated",
                                            source="operator", evidence="x", requested_by="kasur_counter",
                                            district_scope=2).id
    with pytest.raises(RegistryError, match="relation_to_head"):
        _approve(province, rid)


def test_a_household_benefit_whose_recipient_left_passes_to_another_member(province):
    from isps.programs import enrolment as en
    from isps.programs.models import Enrolment, EnrolmentEvent

    with transaction(province) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test", on=TODAY)
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "test", TODAY)
        e = s.scalars(select(Enrolment).join(Individual, Individual.id == Enrolment.recipient_id).where(
            Enrolment.district_id == 2, Enrolment.status == "enrolled", Enrolment.individual_id == 0,
            Individual.relation_to_head != "head").order_by(Enrolment.id)).first()
        eid, was = e.id, e.recipient_id
    _remove(province, was, "left", detail="married_away")
    with transaction(province) as s:
        e = s.get(Enrolment, eid)
        assert e.recipient_id != was and e.status == "enrolled"
        if e.recipient_id is not None:
            heir = s.get(Individual, e.recipient_id)
            assert heir.household_id == e.household_id and current.is_current(heir)
        said = s.scalars(select(EnrolmentEvent.reason).where(EnrolmentEvent.enrolment_id == eid)
                         .order_by(EnrolmentEvent.id.desc())).first()
        assert f"recipient {was} left the household" in said


def test_a_new_member_cannot_take_a_cnic_a_current_member_holds(province):
    with transaction(province) as s:
        hid = _household(s).id
        holder = s.scalars(select(Individual).where(Individual.district_id == 2, Individual.id_document == "cnic",
                                                    current.clause(), Individual.sex == "male")).first()
        with pytest.raises(changes.ChangeRequestError, match="new member: cnic: CNIC .* is already held"):
            changes.request_member_add(s, household_id=hid, member={
                "full_name": "Kamran", "sex": "male", "date_of_birth": "1990-01-01", "relation_to_head": "son",
                "cnic": holder.cnic}, source="operator", evidence="x", requested_by="kasur_counter", district_scope=2)
