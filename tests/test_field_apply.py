"""What field submissions become, on both backends (fieldwork/apply.py, fieldwork/survey.py).

One flow per backend: a batch of surveys applied set-based (a re-survey with a changed value, a new
member and a member left off the roster; a late survey kept as history under a newer value; a new
household registered; a bad value, a refused consent, an unknown household, another district's
household and a stranger on the roster each refusing their own submission only), applied twice
changing nothing; a verification visit recorded by the enumerator it was scheduled for (and nobody
else); a distribution receipt handed over once (a duplicate, a line not on the site's list and a CNIC
that does not match refused); a grievance taken in the field; two appliers at once on PostgreSQL (the
rows one holds are skipped by the other); the worker's task and the events drain."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import func, select, text

from isps.access.service import Principal
from isps.citizen import applications as ap
from isps.citizen.grievances.models import Grievance
from isps.db import transaction
from isps.fieldwork import assignments as asg, devices, distribution as dist, forms
from isps.fieldwork.apply import apply_pending, apply_submissions
from isps.fieldwork.models import DistributionEntry, FieldAssignment, FieldSubmission
from isps.registry import current
from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS
from isps.registry.models import Household, Individual, OutboxEvent, ValueChange
from isps.registry.service import Provenance, change_household
from isps.services import worker
from isps.services.events import drain

SUPERVISOR = Principal("kasur_supervisor", "field_supervisor", 2)
OFFICER = Principal("kasur_officer", "district_officer", 2)
COUNTER = Principal("kasur_counter", "counter_operator", 2)
ENUMERATOR = "kasur_enumerator"
COLLECTED = datetime(2026, 11, 20, 10, 30)
NOW = datetime(2026, 12, 8, 9, 0)
KASUR = 2


def resurvey(s, household_id: int, **changes) -> tuple[dict, list[dict]]:
    """The household's survey as an enumerator fills it from the pre-loaded values, with ``changes``."""
    h = s.get(Household, household_id)
    values = {k: forms.as_text(getattr(h, k)) for k in HOUSEHOLD_FIELDS}
    values.update({"household_id": str(h.id), "district_id": str(h.district_id), "tehsil_id": str(h.tehsil_id),
                   "consent": "yes", **changes})
    members = [{"individual_id": str(p.id), **{k: forms.as_text(getattr(p, k)) for k in INDIVIDUAL_FIELDS}}
               for p in s.scalars(select(Individual).where(Individual.household_id == h.id, current.clause())
                                  .order_by(Individual.roster_line))]
    return values, members


def kept(s, form_id: str, values: dict, repeats: dict | None = None, *, n: list, at: datetime = COLLECTED,
         user: str = ENUMERATOR, device_id: int | None = None) -> int:
    """A submission as the inbox keeps it before applying: the instance Collect sends, ``received``."""
    n.append(1)
    instance_id = f"uuid:00000000-0000-4000-8000-{len(n):012d}"
    xml = forms.build_instance(form_id, values, repeats, instance_id=instance_id, collected_at=at,
                               device_id="collect:test")
    inst = forms.read_instance(xml)
    row = FieldSubmission(instance_id=instance_id, form_id=form_id, form_version=inst.version, job=inst.job,
                          device_id=device_id, channel="odk" if device_id else "browser", username=user,
                          district_id=KASUR, collected_at=inst.collected_at, received_at=NOW, xml=xml.decode(),
                          status="received")
    s.add(row)
    s.flush()
    return row.id


def test_field_submissions_become_what_their_job_needs(province):
    seq: list = []
    with transaction(province) as s:
        device, _ = devices.register_device(s, SUPERVISOR, code="kasur-01", label="Tablet 1", username=ENUMERATOR)
        dev = device.id
        kasur = s.scalars(select(Household.id).where(Household.district_id == KASUR).order_by(Household.id)
                          .limit(8)).all()
        lahore = s.scalar(select(Household.id).where(Household.district_id == 1).limit(1))
        stranger = s.scalar(select(Individual.id).where(Individual.household_id == kasur[7]).limit(1))
        asg.assign(s, SUPERVISOR, kind="survey", enumerator=ENUMERATOR, household_ids=kasur[:2], now=NOW)
        # the late survey's household: an officer recorded a newer value first
        change_household(s, kasur[2], {"rooms": "5"}, Provenance("operator", "kasur_officer", date(2026, 12, 1)))

        fridge = not s.get(Household, kasur[0]).fridge
        values, members = resurvey(s, kasur[0], rooms="9", fridge=forms.as_text(fridge))
        left_off = int(members.pop()["individual_id"])
        members[0]["education"] = "graduate"
        members.append({"individual_id": "", "full_name": "Zainab Bibi", "sex": "female", "date_of_birth": "2026-09-30",
                        "relation_to_head": "daughter", "marital_status": "never_married", "disability": "none",
                        "education": "none", "enrolled_in_school": "no", "labour_status": "child",
                        "id_document": "none"})
        good = kept(s, "isps_survey", values, {"member": members}, n=seq, device_id=dev)
        bad_rooms = kept(s, "isps_survey", resurvey(s, kasur[1], rooms="99")[0], n=seq, device_id=dev)
        late = kept(s, "isps_survey", resurvey(s, kasur[2], rooms="7")[0], n=seq, device_id=dev,
                    at=datetime(2026, 11, 1, 9, 0))
        no_consent = kept(s, "isps_survey", resurvey(s, kasur[3], consent="no")[0], n=seq, device_id=dev)
        unknown = kept(s, "isps_survey", {**resurvey(s, kasur[4])[0], "household_id": "999"}, n=seq, device_id=dev)
        elsewhere = kept(s, "isps_survey", {**resurvey(s, kasur[4])[0], "household_id": str(lahore)}, n=seq,
                         device_id=dev)
        v5, m5 = resurvey(s, kasur[5])
        m5[-1]["individual_id"] = str(stranger)
        not_theirs = kept(s, "isps_survey", v5, {"member": m5}, n=seq, device_id=dev)
        new_values = {**{k: v for k, v in resurvey(s, kasur[6])[0].items() if k != "household_id"},
                      "address": "House 12, Mohalla Noor, Kasur"}
        head = {"individual_id": "", "full_name": "Muhammad Akram", "father_husband_name": "Allah Ditta", "sex": "male",
                "date_of_birth": "1979-05-05", "relation_to_head": "head", "marital_status": "married",
                "disability": "none", "education": "primary", "enrolled_in_school": "no",
                "labour_status": "daily_wager", "id_document": "cnic", "cnic": "3510277777771"}
        new = kept(s, "isps_survey", new_values, {"member": [head]}, n=seq, device_id=dev)
        surveys = [good, bad_rooms, late, no_consent, unknown, elsewhere, not_theirs, new]
        history_before = s.scalar(select(func.count()).select_from(ValueChange))
        events_before = s.scalar(select(func.max(OutboxEvent.id)))

        out = apply_submissions(s, surveys, now=NOW)
        assert {i: o.status for i, o in out.items()} == {good: "accepted", bad_rooms: "refused", late: "accepted",
                                                        no_consent: "refused", unknown: "refused",
                                                        elsewhere: "refused", not_theirs: "refused", new: "accepted"}
        reasons = {i: o.reason for i, o in out.items()}
        assert f"household {kasur[1]}: rooms must be a number from 1 to 40" in reasons[bad_rooms]
        assert "consent" in reasons[no_consent]
        assert "household_id: household 999 is not in the registry" in reasons[unknown]
        assert f"household_id: household {lahore} is in district 1, not in district 2" in reasons[elsewhere]
        assert f"individual_id {stranger} is not a member of household {kasur[5]}" in reasons[not_theirs]
        # the re-survey: value changes with source survey, the enumerator, device and instance, dated collected
        r = out[good].result
        assert r["household_id"] == kasur[0] and r["changes"] >= 2 and r["members_added"] == 1
        assert r["not_on_roster"] == [left_off]
        rows = s.execute(select(ValueChange.field, ValueChange.new_value, ValueChange.source, ValueChange.actor,
                                ValueChange.effective_date, ValueChange.source_ref)
                         .where(ValueChange.household_id == kasur[0], ValueChange.source == "survey")).all()
        assert {(f, v) for f, v, *_ in rows} >= {("rooms", "9"), ("fridge", forms.as_text(fridge)), ("education", "graduate")}
        assert {(src, actor, eff) for _, _, src, actor, eff, _ in rows} == {("survey", ENUMERATOR, COLLECTED.date())}
        assert {ref for *_, ref in rows} == {f"field kasur-01 {s.get(FieldSubmission, good).instance_id}"}
        h0 = s.get(Household, kasur[0])
        assert (h0.rooms, h0.fridge, h0.verified_on) == (9, fridge, COLLECTED.date())
        assert s.get(Individual, left_off).left_on is None            # not removed: a note for the officer
        assert s.scalar(select(Individual.full_name).where(Individual.household_id == kasur[0])
                        .order_by(Individual.roster_line.desc()).limit(1)) == "Zainab Bibi"
        # late news: kept as history, the newer value stays
        assert s.get(Household, kasur[2]).rooms == 5
        assert s.execute(select(ValueChange.new_value, ValueChange.effective_date).where(
            ValueChange.household_id == kasur[2], ValueChange.source == "survey", ValueChange.field == "rooms")
        ).all() == [("7", date(2026, 11, 1))]
        # the new household, registered by the survey; nothing of the refused ones written
        created = s.get(Household, out[new].result["household_id"])
        assert created.ref.startswith("SRV-") and created.district_id == KASUR and created.surveyed_on == COLLECTED.date()
        assert s.get(Household, kasur[1]).rooms != 99 and s.scalar(select(func.count()).select_from(ValueChange).where(
            ValueChange.household_id.in_([kasur[1], kasur[3], kasur[5]]), ValueChange.source == "survey")) == 0
        topics = s.execute(select(OutboxEvent.topic, OutboxEvent.aggregate_id).where(OutboxEvent.id > events_before)).all()
        assert ("household.changed", kasur[0]) in topics and ("household.created", created.id) in topics
        kept_rows = {r.id: r for r in s.scalars(select(FieldSubmission).where(FieldSubmission.id.in_(surveys)))}
        assert kept_rows[bad_rooms].status == "refused" and kept_rows[bad_rooms].reason == reasons[bad_rooms]
        assert kept_rows[good].applied_at == NOW and kept_rows[good].result["not_on_roster"] == [left_off]
        assert kept_rows[new].household_id == created.id
        assert s.execute(select(FieldAssignment.household_id, FieldAssignment.status, FieldAssignment.submission_id)
                         .where(FieldAssignment.kind == "survey").order_by(FieldAssignment.household_id)).all() == \
            [(kasur[0], "done", good), (kasur[1], "open", None)]
        # applied twice: nothing changes
        history = s.scalar(select(func.count()).select_from(ValueChange))
        assert history > history_before
        assert apply_submissions(s, surveys, now=NOW) == {}
        assert s.scalar(select(func.count()).select_from(ValueChange)) == history

    # a verification visit: the enumerator it was scheduled for records it from the field
    with transaction(province) as s:
        from tests.test_applications import family, household_form

        def registration(name: str, cnics: tuple[str, str]):
            people = family()
            people[0]["cnic"], people[1]["cnic"] = cnics
            return ap.open_application(s, COUNTER, kind="registration", channel="counter", district_id=KASUR,
                                       applicant_name=name, details={"household": household_form(s), "members": people},
                                       evidence=[{"kind": "cnic_seen", "reference": cnics[0]}], now=NOW)
        app = registration("Ghulam Rasool", ("35102-9876541-3", "35102-9876542-4"))
        unscheduled = registration("Bashir Ahmad", ("35102-9876543-5", "35102-9876544-6"))
        assert asg.assign(s, OFFICER, kind="visit", enumerator=ENUMERATOR, application_id=app.id,
                          due_on=date(2026, 12, 10), now=NOW) == 1
        with pytest.raises(ap.NotAllowed, match="scheduled for kasur_enumerator, not kasur_other"):
            ap.record_visit(s, Principal("kasur_other", "enumerator", KASUR), app.id, "confirmed")
        with pytest.raises(ap.NotAllowed):  # a counter operator neither decides nor collects
            ap.record_visit(s, COUNTER, app.id, "confirmed")
        at = datetime(2026, 12, 9, 11, 0)
        visit = kept(s, "isps_visit", {"application_id": str(app.id), "outcome": "confirmed", "note": "as declared"},
                     n=seq, at=at)
        stray = kept(s, "isps_visit", {"application_id": str(unscheduled.id), "outcome": "not_found", "note": "no one"},
                     n=seq, at=at)
        gone = kept(s, "isps_visit", {"application_id": "987654", "outcome": "confirmed"}, n=seq, at=at)
        out = apply_submissions(s, [visit, stray, gone], now=NOW)
        assert out[visit].status == "accepted" and out[visit].result["application_id"] == app.id
        registered = s.get(Household, out[visit].result["household_id"])
        assert registered.ref.startswith("CTR-") and ap.current_step(s, app.id).name == "score"
        assert ap.history(s, app.id)[-2].actor == ENUMERATOR
        assert out[stray].status == "refused" and "is not awaiting a visit by kasur_enumerator" in out[stray].reason
        assert unscheduled.status == "open"
        assert "application_id: application 987654 does not exist" in out[gone].reason
        assert s.scalar(select(FieldAssignment.status).where(FieldAssignment.kind == "visit",
                                                             FieldAssignment.application_id == app.id)) == "done"

    # a distribution receipt: handed over once; a grievance taken in the field
    with transaction(province) as s:
        site = dist.create_site(s, SUPERVISOR, name="Govt. Girls School, Khudian", kind="in_kind", district_id=KASUR,
                                opens_on=date(2026, 12, 1), closes_on=date(2026, 12, 31))
        dist.list_in_kind(s, SUPERVISOR, site.id, list_ref="ration:2026-12", item="ration_pack", quantity=2,
                          household_ids=kasur[3:5])
        entries = s.scalars(select(DistributionEntry).where(DistributionEntry.site_id == site.id)
                            .order_by(DistributionEntry.id)).all()
        asg.assign(s, SUPERVISOR, kind="site", enumerator=ENUMERATOR, site_id=site.id, now=NOW)
        at = datetime(2026, 12, 9, 12, 0)

        def receipt(entry, **over):
            return kept(s, "isps_receipt", {"site_id": str(site.id), "entry_id": str(entry), "household_id": "",
                                            "evidence": "fingerprint", **over}, n=seq, at=at)
        first = receipt(entries[0].id, household_id=str(entries[0].household_id))
        again = receipt(entries[0].id)
        off_list = receipt(987654)
        wrong_cnic = receipt(entries[1].id, evidence="cnic", cnic_seen="3510211111111")
        complaint = kept(s, "isps_grievance", {"district_id": str(KASUR), "household_id": str(kasur[0]),
                                               "name": "Shamim Akhtar", "phone": "03001234567",
                                               "category": "data_error", "description": "Rooms were miscounted"},
                         n=seq, at=at)
        bad_complaint = kept(s, "isps_grievance", {"district_id": str(KASUR), "name": "X", "category": "data_error",
                                                   "phone": "", "description": ""}, n=seq, at=at)
        out = apply_submissions(s, [first, again, off_list, wrong_cnic, complaint, bad_complaint], now=NOW)
        assert out[first].status == "accepted" and out[first].result["entry_id"] == entries[0].id
        assert s.get(DistributionEntry, entries[0].id).handed_over_by == ENUMERATOR
        assert out[again].status == "refused" and "duplicate" in out[again].reason
        assert out[off_list].status == "refused" and "not on the list of site" in out[off_list].reason
        assert out[wrong_cnic].status == "refused" and "cnic_seen" in out[wrong_cnic].reason
        assert s.get(DistributionEntry, entries[1].id).handed_over_at is None
        g = s.get(Grievance, out[complaint].result["grievance_id"])
        assert (g.channel, g.opened_by, g.household_id, g.category) == ("field", ENUMERATOR, kasur[0], "data_error")
        assert out[bad_complaint].status == "refused" and "description" in out[bad_complaint].reason
        # left received by a crash: the worker's task applies it; the site's assignment stays open meanwhile
        leftover = receipt(entries[1].id)
        raced = kept(s, "isps_grievance", {"district_id": str(KASUR), "name": "Rafiq", "category": "other",
                                           "description": "The queue was not kept in order"}, n=seq, at=at)
        assert s.scalar(select(FieldAssignment.status).where(FieldAssignment.kind == "site")) == "open"
    if province.dialect.name == "postgresql":  # two appliers at once: the one holding the rows applies them
        with transaction(province) as a:
            assert apply_submissions(a, [raced])[raced].status == "accepted"
            with transaction(province) as b:
                assert apply_submissions(b, [raced, leftover]).keys() == {leftover}  # skipped, not waited for
                b.rollback()
    else:
        with transaction(province) as a:
            assert apply_submissions(a, [raced])[raced].status == "accepted"
    assert worker.field_apply(province, NOW) == {"accepted": 1}
    assert apply_pending(province) == {}
    with transaction(province) as s:
        assert s.get(FieldSubmission, leftover).status == "accepted"
        assert s.scalar(select(FieldAssignment.status).where(FieldAssignment.kind == "site")) == "done"
    # re-scoring follows through the events
    drained = drain(province)
    assert drained["rescored"] >= 2
    with transaction(province) as s:
        assert s.execute(text("SELECT COUNT(*) FROM pmt_score WHERE household_id = :h"),
                         {"h": created.id}).scalar_one() >= 1
