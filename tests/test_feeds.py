"""NSER Plus data feeds, change requests and re-certification, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from datetime import date

import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, insert, select, update

from isps.db import transaction
from isps.interop import feeds
from isps.interop.feeds import changes
from isps.interop.models import ExclusionFlag, FinancialAccount, SourcePrecedence
from isps.registry import service as registry
from isps.registry.cnic import formatted
from isps.registry.models import Household, Individual, OutboxEvent, ValueChange
from isps.targeting.models import PmtScore


def _adults(s, k: int = 3, where=None) -> list[Individual]:
    q = (select(Individual).where(Individual.id_document == "cnic", Individual.date_of_death.is_(None),
                                  Individual.relation_to_head == "head")
         .order_by(Individual.id))
    people = list(s.scalars(q))
    seen, out = set(), []
    for p in people:  # distinct households, CNIC registered once
        if p.household_id in seen:
            continue
        if s.scalar(select(func.count()).select_from(Individual).where(Individual.cnic == p.cnic)) != 1:
            continue
        seen.add(p.household_id)
        out.append(p)
        if len(out) == k:
            break
    return out


def _count(s, model) -> int:
    return s.scalar(select(func.count()).select_from(model))


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


NADRA_HEADER = ["record_ref", "event", "event_date", "cnic", "marital_status", "child_bform", "child_name",
                "child_sex", "new_cnic"]


def test_nadra_death_is_in_history_with_source_emits_member_deceased_and_rescores(province):
    with transaction(province) as s:
        person = _adults(s, 1)[0]
        pid, hid, cnic = person.id, person.household_id, person.cnic
        before = s.get(PmtScore, (s.scalar(select(PmtScore.model_id).limit(1)), hid)).score
    batch = {"feed": "nadra", "reference": "NADRA-2026-06-001",
             "records": [{"record_ref": "TX-1", "event": "death", "event_date": "2026-05-10", "cnic": formatted(cnic)}]}
    report = feeds.apply_delivery(province, "nadra", batch, reference=batch["reference"], actor="nadra-sftp")
    assert report.ok and report.accepted == 1 and report.applied == 1
    with transaction(province) as s:
        assert s.get(Individual, pid).date_of_death == date(2026, 5, 10)
        entry = [e for e in registry.history(s, hid) if e.field == "date_of_death"]
        assert len(entry) == 1
        assert (entry[0].source, entry[0].effective_date, entry[0].new_value) == ("nadra", date(2026, 5, 10),
                                                                                   "2026-05-10")
        assert "NADRA-2026-06-001" in entry[0].source_ref and "TX-1" in entry[0].source_ref
        event = s.scalars(select(OutboxEvent).where(OutboxEvent.topic == "member.deceased")).one()
        assert event.aggregate_id == hid and event.payload["individual_id"] == pid
    # re-scoring is the separate step: pmt.process_events over the delivery's events
    assert feeds.after_delivery(province, on=date(2026, 7, 1)) >= 1
    with transaction(province) as s:
        score = s.scalars(select(PmtScore).where(PmtScore.household_id == hid)).one()
        assert score.scored_at.date() == date(2026, 7, 1)
        assert score.score != before  # one member fewer (household size is an indicator): re-scored
    assert feeds.after_delivery(province) == 0  # the cursor moved: nothing left to re-score


def test_redelivering_the_same_file_changes_nothing(province, tmp_path):
    with transaction(province) as s:
        people = _adults(s, 3)
    rows = [["R1", "death", "2026-04-01", formatted(people[0].cnic), "", "", "", "", ""],
            ["R2", "marital_status", "2026-04-02", people[1].cnic, "widowed", "", "", "", ""],
            ["R3", "birth", "2026-04-03", people[2].cnic, "", "3510100000013", "Hamza", "male", ""]]
    path = _write_csv(tmp_path / "nadra_april.csv", NADRA_HEADER, rows)
    first = feeds.apply_delivery(province, "nadra", path, reference="nadra_april.csv", actor="ops")
    assert first.ok and first.accepted == 3
    with transaction(province) as s:
        counts = [_count(s, m) for m in (ValueChange, OutboxEvent, Individual)]
    same = feeds.apply_delivery(province, "nadra", path, reference="nadra_april.csv", actor="ops")
    assert same.already_applied and same.delivery_id == first.delivery_id
    renamed = feeds.apply_delivery(province, "nadra", path, reference="nadra_april_resent.csv", actor="ops")
    assert renamed.ok and renamed.repeated == 3 and renamed.accepted == 0
    assert (renamed.value_changes, renamed.events, renamed.applied) == (0, 0, 0)
    with transaction(province) as s:
        assert [_count(s, m) for m in (ValueChange, OutboxEvent, Individual)] == counts
        child = s.scalars(select(Individual).where(Individual.cnic == "3510100000013")).one()
        assert (child.household_id, child.id_document, child.relation_to_head) == (people[2].household_id, "bform",
                                                                                   "son")


def test_bad_rows_are_reported_and_good_rows_land(province, tmp_path):
    with transaction(province) as s:
        good, other = _adults(s, 2)
    rows = [["G1", "death", "2026-03-01", good.cnic, "", "", "", "", ""],
            ["B1", "death", "2026-13-45", other.cnic, "", "", "", "", ""],
            ["B2", "death", "2026-03-01", "12345", "", "", "", "", ""],
            ["B3", "marital_status", "2026-03-01", other.cnic, "", "", "", "", ""],
            ["B4", "death", "2026-03-01", "3520299999991", "", "", "", "", ""],
            ["B5", "funeral", "2026-03-01", other.cnic, "", "", "", "", ""],
            ["G1", "death", "2026-03-02", other.cnic, "", "", "", "", ""],
            ["=HYPERLINK(1)", "funeral", "2026-03-01", other.cnic, "", "", "", "", ""]]
    path = _write_csv(tmp_path / "mixed.csv", NADRA_HEADER, rows)
    report = feeds.apply_delivery(province, "nadra", path, reference="mixed.csv", actor="ops")
    assert report.accepted == 1 and report.rejected == 7
    got = {(e.row, e.record_ref, e.field) for e in report.errors}
    assert got == {(3, "B1", "event_date"), (4, "B2", "cnic"), (5, "B3", "marital_status"), (6, "B4", "cnic"),
                   (7, "B5", "event"), (8, "G1", "record_ref"), (9, "=HYPERLINK(1)", "event")}
    reasons = {e.record_ref + e.field: e.reason for e in report.errors}
    assert "YYYY-MM-DD" in reasons["B1event_date"]
    assert "is in the registry" in reasons["B4cnic"] and reasons["B4cnic"].startswith("no person") and "35202-*****99-1" in reasons["B4cnic"]
    assert "3520299999991" not in " ".join(report.lines())  # CNICs masked in the report
    assert "row 2" in reasons["G1record_ref"]
    with transaction(province) as s:
        assert s.get(Individual, good.id).date_of_death == date(2026, 3, 1)
        assert s.get(Individual, other.id).date_of_death is None
    out = report.write_csv(tmp_path / "report.csv")
    assert out.read_text().splitlines()[0] == "row,record_ref,field,reason"
    assert out.read_text().splitlines()[-1].startswith("9,'=HYPERLINK(1),event,")  # never a live formula
    with pytest.raises(feeds.FeedError, match="not 'nadra'"):
        feeds.apply_delivery(province, "nadra", {"feed": "land", "records": [{"record_ref": "x"}]}, reference="r2",
                             actor="ops")
    with pytest.raises(feeds.FeedError, match="missing"):
        feeds.apply_delivery(province, "nadra", [{"record_ref": "x", "event": "death"}], reference="r", actor="ops")


def test_a_lower_precedence_source_does_not_overwrite_nadra_and_the_conflict_is_listed(province):
    with transaction(province) as s:
        person = _adults(s, 1)[0]
        pid, hid, district = person.id, person.household_id, person.district_id
        new = "widowed" if person.marital_status != "widowed" else "divorced"
    feeds.apply_delivery(province, "nadra", [{"record_ref": "M1", "event": "marital_status", "event_date": "2026-05-01",
                                              "cnic": person.cnic, "marital_status": new}],
                         reference="nadra-may", actor="ops")
    # a citizen's self-report, newer than NADRA's, approved by a second person: held, conflict listed
    with transaction(province) as s:
        req = changes.request_change(s, entity="individual", entity_id=pid, changes={"marital_status": "married"},
                                     source="self_report", evidence="says she remarried", requested_by="counter1",
                                     effective_date=date(2026, 6, 1))
        done = changes.approve_change(s, req.id, "supervisor")
        assert done.status == "applied" and done.applied_fields == []
        assert "marital_status" in done.decision_note
    with transaction(province) as s:
        assert s.get(Individual, pid).marital_status == new
        listed = feeds.list_conflicts(s, district_scope=district)
        assert [(c.field, c.kept_value, c.kept_source, c.offered_value, c.offered_source) for c in listed] == [
            ("marital_status", new, "nadra", "married", "self_report")]
        assert feeds.list_conflicts(s, district_scope=district + 1 if district < 36 else 1) == []
        feeds.resolve_conflict(s, listed[0].id, "supervisor", "citizen told to correct the record at NADRA")
        assert feeds.list_conflicts(s, district_scope=district) == []
    # late news from NADRA itself (an older date) is kept as history without overwriting
    late = feeds.apply_delivery(province, "nadra", [{"record_ref": "M0", "event": "marital_status",
                                                     "event_date": "2026-01-01", "cnic": person.cnic,
                                                     "marital_status": "divorced" if new != "divorced" else "married"}],
                                reference="nadra-jan-late", actor="ops")
    assert (late.late, late.applied) == (1, 0)
    with transaction(province) as s:
        assert s.get(Individual, pid).marital_status == new
        assert len([e for e in registry.history(s, hid) if e.field == "marital_status"]) == 2


def test_precedence_is_data_and_applies_on_the_bulk_path(province):
    """Declare land records below an operator's verified edit: the land feed is then held back."""
    with transaction(province) as s:
        person = _adults(s, 1)[0]
        hid = person.household_id
        s.execute(insert(SourcePrecedence), [{"field": "land_acres", "source": "operator", "rank": 40},
                                             {"field": "land_acres", "source": "partner", "rank": 20}])
        registry.change_household(s, hid, {"land_acres": "3.5"},
                                  registry.Provenance("operator", "officer", date(2026, 1, 1), "visit"))
    report = feeds.apply_delivery(province, "land", [{"record_ref": "L1", "cnic": person.cnic, "area_acres": "12",
                                                      "recorded_on": "2026-06-01"}], reference="plra-1", actor="ops")
    assert (report.conflicts, report.applied, report.value_changes) == (1, 0, 0)
    with transaction(province) as s:
        assert s.get(Household, hid).land_acres == 3.5
        c = feeds.list_conflicts(s, household_id=hid)[0]
        assert (c.kept_source, c.kept_value, c.offered_source, c.offered_value) == ("operator", "3.5", "partner", "12")


def test_payroll_flags_an_employee_for_exclusion(province):
    with transaction(province) as s:
        person = _adults(s, 1)[0]
    report = feeds.apply_delivery(province, "payroll", [
        {"record_ref": "AG-1", "cnic": person.cnic, "employer": "School Education Department", "bps_grade": 14,
         "monthly_pay": 68000, "pay_month": "2026-06-01"}], reference="agpr-2026-06", actor="ops")
    assert report.ok
    with transaction(province) as s:
        flag = s.get(ExclusionFlag, (person.id, "public_sector_employee"))
        assert flag is not None and flag.active and "BPS 14" in flag.detail
        assert [f.individual_id for f in feeds.exclusions(s, district_scope=person.district_id)] == [person.id]
        assert s.get(Individual, person.id).labour_status == "employed_formal"


def test_change_request_needs_a_second_person(province):
    with transaction(province) as s:
        hh = s.scalars(select(Household).order_by(Household.id)).first()
        req = changes.request_change(s, entity="household", entity_id=hh.id, changes={"rooms": hh.rooms + 1},
                                     source="operator", evidence="visited; a room was built", evidence_ref="scan-77.pdf",
                                     requested_by="officer1", effective_date=date(2026, 6, 1))
        with pytest.raises(changes.SamePersonError):
            changes.approve_change(s, req.id, "officer1")
        assert [r.id for r in changes.list_change_requests(s)] == [req.id]
        with pytest.raises(changes.ChangeRequestError):
            changes.request_change(s, entity="household", entity_id=hh.id, changes={"rooms": "many"},
                                   source="operator", evidence="x", requested_by="officer1")
        with pytest.raises(changes.ChangeRequestError):
            changes.request_change(s, entity="household", entity_id=hh.id, changes={"rooms": 3},
                                   source="operator", evidence=" ", requested_by="officer1")
    with transaction(province) as s:
        done = changes.approve_change(s, req.id, "supervisor")
        assert done.applied_fields == ["rooms"]
        entry = [e for e in registry.history(s, hh.id) if e.field == "rooms"][0]
        assert entry.source == "operator" and entry.source_ref == f"change request {req.id}: scan-77.pdf"
        assert s.get(Household, hh.id).rooms == hh.rooms + 1
        with pytest.raises(changes.ChangeRequestError):
            changes.approve_change(s, req.id, "someone_else")


def test_recertification_lists_households_not_verified_for_three_years(province):
    with transaction(province) as s:
        ids = list(s.scalars(select(Household.id).order_by(Household.id).limit(5)))
        s.execute(update(Household).values(verified_on=date(2025, 1, 1)))  # the synthetic dates vary
        s.execute(update(Household).where(Household.id.in_(ids)).values(verified_on=date(2022, 1, 15)))
        district = s.get(Household, ids[0]).district_id
    with transaction(province) as s:
        due = changes.recertification_due(s, 1095, None, on=date(2026, 6, 1))
        assert [d.household_id for d in due] == ids
        assert due[0].days_since == (date(2026, 6, 1) - date(2022, 1, 15)).days
        scoped = changes.recertification_due(s, 1095, district, on=date(2026, 6, 1))
        assert {d.district_id for d in scoped} == {district}
        assert changes.recertification_due(s, 365 * 10, None, on=date(2026, 6, 1)) == []
        assert changes.flag_recertification(s, 1095, on=date(2026, 6, 1)) == 5
        assert changes.flag_recertification(s, 1095, on=date(2026, 6, 1)) == 0
        assert sum(changes.count_recertification_due(s, 1095, on=date(2026, 6, 1)).values()) == 5


def test_every_feed_generates_a_sample_that_applies_cleanly(province, tmp_path):
    for name in feeds.FEED_NAMES:
        sample = feeds.generate_sample(province, name, 60, seed=3)
        assert sample.num_rows > 0, name
        again = feeds.generate_sample(province, name, 60, seed=3)
        assert sample.equals(again), name  # seeded
        if name == "land":  # a Parquet file, as a partner would send it
            pq.write_table(sample, tmp_path / "land.parquet")
            sample_in = tmp_path / "land.parquet"
        else:
            sample_in = sample
        report = feeds.apply_delivery(province, name, sample_in, reference=f"{name}-sample", actor="ops")
        assert report.ok, (name, report.lines()[:3])
        assert report.accepted == sample.num_rows, name
    with transaction(province) as s:
        accounts = feeds.list_accounts(s, household_id=s.scalar(select(FinancialAccount.household_id).limit(1)))
        assert accounts and all("*" in a.number for a in accounts)
        assert s.scalar(select(func.count()).select_from(FinancialAccount)) > 0


def test_rescoring_after_a_delivery_records_households_that_crossed_the_cut_off(province):
    with transaction(province) as s:
        model_id = s.scalar(select(PmtScore.model_id).limit(1))
        person = next(p for p in _adults(s, 20) if s.get(PmtScore, (model_id, p.household_id)).score > 5)
        hid = person.household_id
        acres = str(s.get(Household, hid).land_acres + 1)  # a change, so the household is named
        # as if the household had scored 0 before: the re-score takes it above a cut-off of 0.5
        s.execute(update(PmtScore).where(PmtScore.household_id == hid).values(score=0.0))
    feeds.apply_delivery(province, "land", [{"record_ref": "L9", "cnic": person.cnic, "area_acres": acres,
                                             "recorded_on": "2026-06-01"}], reference="plra-9", actor="ops")
    assert feeds.after_delivery(province, cutoff=0.5) == 1
    with transaction(province) as s:
        event = s.scalars(select(OutboxEvent).where(OutboxEvent.topic == feeds.HOUSEHOLD_CROSSED_CUTOFF)).one()
        assert event.aggregate_id == hid
        assert event.payload["direction"] == "above" and event.payload["old_score"] == 0.0
        assert event.payload["new_score"] > 0.5 and event.payload["cutoff"] == 0.5


def test_longest_unverified_comes_oldest_verification_first(province):
    with transaction(province) as s:
        ids = list(s.scalars(select(Household.id).order_by(Household.id).limit(3)))
        s.execute(update(Household).values(verified_on=date(2025, 1, 1)))
        for hid, when in zip(ids, (date(2022, 5, 1), date(2021, 3, 1), date(2022, 1, 1))):
            s.execute(update(Household).where(Household.id == hid).values(verified_on=when))
    with transaction(province) as s:
        due = changes.recertification_due(s, 1095, None, on=date(2026, 6, 1), oldest_first=True)
    assert [d.household_id for d in due] == [ids[1], ids[2], ids[0]]
