"""Labour registries (issue 10 §4), on SQLite and PostgreSQL: each upload door refuses a bad file
row by row and stores nothing; an accepted file changes labour status in the registry with source
``labour`` and the PMT re-scores from the event; the daily-wager rotation over a month; the job
match; a missed quarterly report; the shop certificate."""

from __future__ import annotations

import csv
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from isps.db import transaction
from isps.labour import jobs, reports, shops, uploads, wagers
from isps.labour.models import LabourPerson, LabourRecord, LabourReminder, LabourUpload, LabourWorker, WagerDay
from isps.labour.status import LabourError
from isps.registry.cnic import formatted
from isps.registry.models import IngestBatch, Individual, OutboxEvent, ValueChange
from isps.synth.load import load_synthetic
from isps.targeting import pmt, vulnerability

TODAY = date(2026, 12, 7)


@pytest.fixture
def small(engine):
    """A small province (120 households): enough people, fast to build."""
    load_synthetic(engine, 120, seed=11)
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s), on=date(2026, 6, 1))
    return engine


def _adults(s, k: int, district_id: int | None = None, sex: str | None = None) -> list[Individual]:
    """Living adults with a CNIC held once, from distinct households, in id order."""
    once = (select(Individual.cnic).where(Individual.cnic.is_not(None)).group_by(Individual.cnic)
            .having(func.count() == 1))
    q = (select(Individual).where(Individual.cnic.in_(once), Individual.date_of_death.is_(None),
                                  Individual.date_of_birth <= date(2000, 1, 1)).order_by(Individual.id))
    if district_id is not None:
        q = q.where(Individual.district_id == district_id)
    if sex:
        q = q.where(Individual.sex == sex)
    out, seen = [], set()
    for p in s.scalars(q):
        if p.household_id not in seen:
            seen.add(p.household_id)
            out.append(p)
        if len(out) == k:
            break
    assert len(out) == k, "the synthetic province has too few adults for this test"
    return out


def _csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _stored(s) -> dict:
    return {"uploads": s.scalar(select(func.count()).select_from(LabourUpload)),
            "records": s.scalar(select(func.count()).select_from(LabourRecord)),
            "workers": s.scalar(select(func.count()).select_from(LabourWorker)),
            "people": s.scalar(select(func.count()).select_from(LabourPerson)),
            "changes": s.scalar(select(func.count()).select_from(ValueChange).where(ValueChange.source == "labour")),
            "batches": s.scalar(select(func.count()).select_from(IngestBatch).where(IngestBatch.source == "labour"))}


NOTHING = {"uploads": 0, "records": 0, "workers": 0, "people": 0, "changes": 0, "batches": 0}


def test_each_upload_door_refuses_a_bad_file_row_by_row_and_stores_nothing(small, tmp_path):
    with transaction(small) as s:
        a, b, c = (formatted(p.cnic) for p in _adults(s, 3))
    files = {
        "formal": _csv(tmp_path / "eobi.csv", list(uploads.DOORS["formal"].names), [
            ["EOBI-LHR-0042", "Ittefaq Foundry", "eobi", a, "Worker A", "2026-10-01", "37000", "370"],
            ["EOBI-LHR-0042", "Ittefaq Foundry", "zakat", b, "Worker B", "2026-10-01", "37000", "370"],   # scheme
            ["EOBI-LHR-0042", "=HYPERLINK(\"x\")", "pessi", c, "Worker C", "2026-10-01", "37000", "370"],  # formula
            ["EOBI-LHR-0042", "Ittefaq Foundry", "eobi", "35202-0000000-1", "Nobody", "2026-10-01", "37000", "370"],
            ["EOBI-LHR-0042", "Ittefaq Foundry", "eobi", a, "Worker A", "2026-10-14", "37000", "370"],     # again
        ]),
        "contractor": _csv(tmp_path / "adp.csv", list(uploads.DOORS["contractor"].names), [
            ["PEC-C4-1189", "Malik Builders", "ADP-2026-0412", a, "Worker A", "2026-11-01", "22", "1200"],
            ["PEC-C4-1189", "Malik Builders", "ADP-2026-0412", "12345", "Worker B", "2026-11-01", "22", "1200"],
            ["PEC-C4-1189", "Malik Builders", "ADP-2026-0412", c, "Worker C", "2027-02-01", "40", "-5"],
        ]),
        "sector": _csv(tmp_path / "hotels.csv", list(uploads.DOORS["sector"].names), [
            ["HTL-0007", "Shalimar Hotel", "hotel", a, "Worker A", "2026-11-01", "26", "28000"],
            ["HTL-0007", "Shalimar Hotel", "brickkiln", b, "Worker B", "2026-11-01", "26", "28000"],
        ]),
    }
    expected = {"formal": {(3, "scheme"), (4, "employer_name"), (5, "cnic"), (6, "cnic")},
                "contractor": {(3, "cnic"), (4, "month"), (4, "days_worked"), (4, "wage")},
                "sector": {(3, "sector")}}
    for door, path in files.items():
        report = uploads.upload(small, door, path, actor="test", today=TODAY)
        assert not report.ok and report.upload_id is None
        assert {(e.row, e.field) for e in report.errors} == expected[door], (door, report.lines())
        assert "nothing stored" in report.summary()
        assert not any(a.replace("-", "") in line for line in report.lines())   # CNICs masked
    with transaction(small) as s:
        assert _stored(s) == NOTHING
    # a file missing a prescribed column is refused before any row is read
    _csv(tmp_path / "short.csv", ["cnic", "month"], [[a, "2026-10-01"]])
    with pytest.raises(uploads.UploadError, match="missing required columns: employer_ref"):
        uploads.upload(small, "formal", tmp_path / "short.csv", actor="test", today=TODAY)


def test_an_accepted_upload_attaches_records_changes_labour_status_and_rescores(small, tmp_path):
    with transaction(small) as s:
        people = _adults(s, 3)
        ids = [p.id for p in people]
        homes = {p.household_id for p in people}
        numbers = [formatted(p.cnic) for p in people]
        pmt.process_events(s)   # start from an empty queue
        start = s.scalar(select(func.max(OutboxEvent.id))) or 0
    header = list(uploads.DOORS["formal"].names)
    path = _csv(tmp_path / "pessi_oct.csv", header, [
        ["PESSI-FSD-3301", "Crescent Textiles", "pessi", n, "Worker", "2026-10-01", "41000", "2460"] for n in numbers]
        + [["PESSI-FSD-3301", "Crescent Textiles", "pessi", numbers[0], "Worker", "2026-09-01", "41000", "2460"]])
    report = uploads.upload(small, "formal", path, actor="employer-upload", today=TODAY)
    assert report.ok, report.lines()
    assert report.workers == 3 and report.registry["events"] >= 1
    with transaction(small) as s:
        stored = _stored(s)
        assert stored["uploads"] == 1 and stored["records"] == 4 and stored["workers"] == 3
        for pid in ids:
            assert s.get(Individual, pid).labour_status == "employed_formal"
        changes = list(s.scalars(select(ValueChange).where(ValueChange.source == "labour")))
        assert {c.entity_id for c in changes} <= set(ids)
        assert all(c.field == "labour_status" and c.source_ref.startswith("labour formal upload") for c in changes)
        evs = list(s.scalars(select(OutboxEvent).where(OutboxEvent.id > start, OutboxEvent.topic == "household.changed")))
        assert {e.aggregate_id for e in evs} >= {c.household_id for c in changes}
        if changes:
            assert pmt.process_events(s) >= len({c.household_id for c in changes})
        assert {r.register for r in s.scalars(select(LabourWorker))} == {"formal_worker"}
        assert {p.individual_id for p in s.scalars(select(LabourPerson))} == set(ids)
        assert homes  # attached by person, not by household
    # the same file again changes nothing; the same lines in another file are refused, row by row
    again = uploads.upload(small, "formal", path, actor="employer-upload", today=TODAY)
    assert again.already_received and again.upload_id == report.upload_id
    copy = tmp_path / "pessi_oct_copy.csv"
    copy.write_bytes(path.read_bytes())
    dup = uploads.upload(small, "formal", copy, actor="employer-upload", today=TODAY)
    assert not dup.ok and {e.row for e in dup.errors} == {2, 3, 4, 5}
    assert "received already" in dup.errors[0].reason
    with transaction(small) as s:
        assert _stored(s) == stored


def test_labour_status_moves_the_pmt_score_through_the_events_when_a_model_weights_earners(small, tmp_path):
    from isps.targeting.models import PmtCoefficient, PmtScore

    with transaction(small) as s:
        people = [p for p in _adults(s, 30) if p.labour_status not in ("employed_formal", "employed_informal",
                                                                      "self_employed", "daily_wager")][:2]
        assert len(people) == 2
        model = pmt.active_model(s)
        for region in ("urban", "rural"):  # a model that sees work: each earner adds to predicted consumption
            s.add(PmtCoefficient(model_id=model.id, region=region, indicator="earners", level="", weight=0.15))
        s.flush()
        pmt.rescore_all(s, model, on=TODAY)
        before = {p.household_id: s.get(PmtScore, (model.id, p.household_id)).score for p in people}
        numbers = [formatted(p.cnic) for p in people]
    path = _csv(tmp_path / "fuel.csv", list(uploads.DOORS["sector"].names),
                [["PSO-112", "Bhatti Filling Station", "fuel_station", n, "W", "2026-11-01", "30", "32000"]
                 for n in numbers])
    assert uploads.upload(small, "sector", path, actor="t", today=TODAY).ok
    with transaction(small) as s:
        assert pmt.process_events(s, TODAY) >= 2   # the households the events named, re-scored
        after = {h: s.get(PmtScore, (model.id, h)).score for h in before}
    assert all(after[h] > before[h] or before[h] == 100 for h in before), (before, after)


def test_labour_registry_outranks_the_survey_but_not_the_public_payroll(small, tmp_path):
    from isps.interop import feeds

    with transaction(small) as s:
        person = _adults(s, 1)[0]
        pid, number = person.id, formatted(person.cnic)
    feeds.apply_delivery(small, "payroll", [{"record_ref": "P1", "cnic": number, "employer": "Health Department",
                                             "bps_grade": 11, "monthly_pay": 52000, "pay_month": "2026-10-01"}],
                         reference="agpr-oct", actor="test")
    path = _csv(tmp_path / "hotel.csv", list(uploads.DOORS["sector"].names),
                [["HTL-1", "Pearl Hotel", "hotel", number, "X", "2026-11-01", "20", "25000"]])
    report = uploads.upload(small, "sector", path, actor="t", today=TODAY)
    assert report.ok and report.registry["conflicts"] == 1 and report.registry["applied"] == 0
    with transaction(small) as s:
        assert s.get(Individual, pid).labour_status == "employed_formal"


def _month_of_rotation(engine, booth: str, district_id: int, people: list[int], slots: int) -> dict:
    """Offer ``slots`` places at ``booth`` every day of November; everyone picked works."""
    picks = {}
    for d in range(30):
        day = date(2026, 11, 1) + timedelta(days=d)
        with transaction(engine) as s:
            offer = wagers.offer_work(s, district_id, booth, day, slots, "Bahria Town site", "Shuttering labour", "t")
            picks[day] = [p.individual_id for p in wagers.picks(s, offer.id)]
            assert wagers.take_offer(s, offer.id) == len(picks[day])
    return picks


def test_daily_wager_rotation_over_a_month_goes_to_the_longest_idle_fairly_and_deterministically(small):
    with transaction(small) as s:
        people = _adults(s, 7)
        district = people[0].district_id
        people = _adults(s, 7, district_id=district)
        ids = [p.id for p in people]
        for i, p in enumerate(people):
            wagers.register_wager(s, formatted(p.cnic), "Lari Adda chowk", date(2026, 10, 1) + timedelta(days=i), "t")
        # one wager found work on his own on 31 October: he goes behind the others at first
        wagers.record_day(s, ids[0], date(2026, 10, 31), "t")
        assert s.get(Individual, ids[0]).labour_status == "daily_wager"
    picks = _month_of_rotation(small, "Lari Adda chowk", district, ids, 3)
    # the first day: the three idle longest (never worked, registered earliest), not the one who worked
    assert picks[date(2026, 11, 1)] == ids[1:4]
    # every day: nobody picked had worked more recently than anyone passed over (longest idle first)
    last = {i: (date(2026, 10, 31) if i == ids[0] else None) for i in ids}
    since = {i: date(2026, 10, 1) + timedelta(days=k) for k, i in enumerate(ids)}
    for day, chosen in sorted(picks.items()):
        idle = {i: last[i] or since[i] for i in ids}
        passed = [i for i in ids if i not in chosen]
        assert max(idle[i] for i in chosen) <= min(idle[i] for i in passed)
        for i in chosen:
            last[i] = day
    # fair: over the month no one worked two days more than another (90 places among 7 people)
    with transaction(small) as s:
        worked = dict(s.execute(select(WagerDay.individual_id, func.count()).where(
            WagerDay.worked_on >= date(2026, 11, 1)).group_by(WagerDay.individual_id)).all())
    assert sum(worked.values()) == 90 and max(worked.values()) - min(worked.values()) <= 1
    # deterministic: the same registrations at another booth give the same sequence
    with transaction(small) as s:
        others = [(p.id, formatted(p.cnic)) for p in _adults(s, 14, district_id=district)[7:]]
        for i, (_, number) in enumerate(others):
            wagers.register_wager(s, number, "Chungi No. 9", date(2026, 10, 1) + timedelta(days=i), "t")
        wagers.record_day(s, others[0][0], date(2026, 10, 31), "t")
    twin = _month_of_rotation(small, "Chungi No. 9", district, [i for i, _ in others], 3)
    pos = {i: k for k, (i, _) in enumerate(others)}
    assert [[pos[i] for i in twin[d]] for d in sorted(twin)] == [[ids.index(i) for i in picks[d]] for d in sorted(picks)]


def test_job_board_matches_laid_off_workers_by_skill_district_and_recency(small):
    with transaction(small) as s:
        first = _adults(s, 1)[0]
        district = first.district_id
        people = _adults(s, 5, district_id=district)
        other = next(p for p in _adults(s, 40) if p.district_id != district)
        plan = [(people[0], "2026-10-01", "electrician,welder"), (people[1], "2026-11-15", "electrician"),
                (people[2], "2026-09-01", "electrician,welder"), (people[3], "2026-11-20", "tailor"),
                (other, "2026-11-25", "electrician,welder")]
        for p, when, skills in plan:
            jobs.register_laid_off(s, formatted(p.cnic), date.fromisoformat(when), skills, "t")
        vacancy = jobs.post_vacancy(s, district, "Sitara Chemicals", "Plant electrician", "electrician, welder", 2,
                                    date(2026, 12, 1), "t")
        found = jobs.matches(s, vacancy.id)
        # both skills first (own district before another, then the most recently laid off), then one skill
        assert [m.individual_id for m in found] == [people[0].id, people[2].id, other.id, people[1].id]
        assert [m.skills for m in found] == [2, 2, 2, 1] and found[2].same_district is False
        assert all("*" in m.cnic for m in found)
        # a district officer sees their district's candidates only
        assert other.id not in {m.individual_id for m in jobs.matches(s, vacancy.id, district_scope=district)}
        with pytest.raises(LabourError, match="outside your district"):
            jobs.matches(s, vacancy.id, district_scope=other.district_id)
        # the lay-off is a job-loss shock for the vulnerability index (source: the labour registry)
        flags = vulnerability.shock_flags(s, people[1].household_id, on=TODAY)
        assert any(f.kind == "job_loss" and f.source == "labour" for f in flags)
        # someone who reports being employed again leaves the board
        reports.report_status(s, people[0].id, "employed_informal", date(2026, 12, 2), "t")
        assert people[0].id not in {m.individual_id for m in jobs.matches(s, vacancy.id)}
        with pytest.raises(LabourError, match="skills: plumbing"):
            jobs.post_vacancy(s, district, "X", "Y", "plumbing", 1, TODAY, "t")


def test_a_missed_quarterly_report_makes_the_status_stale_and_not_employed(small):
    with transaction(small) as s:
        a, b = _adults(s, 2)
        shop = shops.register_shop(s, formatted(a.cnic), "Madina General Store", "grocery", "Main Bazar", date(2026, 6, 1), "t")
        wagers.register_wager(s, formatted(b.cnic), "Lari Adda chowk", date(2026, 6, 1), "t")
        due = s.get(LabourPerson, a.id).report_due
        assert due == date(2026, 6, 1) + timedelta(days=91)
        # reminders: 14 days before, on the day, 14 days after; owed once each
        assert reports.schedule_reminders(s, due - timedelta(days=15)) == 0
        assert reports.schedule_reminders(s, due - timedelta(days=14)) == 2
        assert reports.schedule_reminders(s, due) == 2
        assert reports.schedule_reminders(s, due) == 0
        # b reports on time, a does not
        reports.report_status(s, b.id, "daily_wager", due - timedelta(days=3), "t")
        assert s.get(LabourPerson, b.id).report_due == due - timedelta(days=3) + timedelta(days=91)
        assert reports.schedule_reminders(s, due + timedelta(days=14)) == 1
        kinds = {(r.individual_id, r.kind) for r in s.scalars(select(LabourReminder))}
        assert (a.id, "overdue") in kinds and (b.id, "overdue") not in kinds
        assert reports.counts(s, due).employed == 2
        assert reports.mark_stale(s, due + timedelta(days=30)) == 0          # still within the grace period
        assert reports.mark_stale(s, due + timedelta(days=31)) == 1
        s.expire_all()
        assert s.get(LabourPerson, a.id).status == "stale"
        c = reports.counts(s, due + timedelta(days=31))
        assert (c.employed, c.stale) == (1, 1)
        # the registry keeps the last known value: silence is not a lost job
        assert s.get(Individual, a.id).labour_status == "self_employed"
        # the next report clears it and moves the schedule
        reports.report_status(s, a.id, "unemployed", date(2026, 11, 20), "t")
        s.expire_all()
        person = s.get(LabourPerson, a.id)
        assert (person.status, person.stale_since, person.report_due) == ("unemployed", None, date(2027, 2, 19))
        assert s.get(Individual, a.id).labour_status == "unemployed"
        assert shop.certificate_no == f"PSR-{a.district_id:02d}-{shop.id:06d}"


def test_shop_certificate_is_unique_scoped_and_refuses_bad_input(small):
    with transaction(small) as s:
        a = _adults(s, 1)[0]
        one = shops.register_shop(s, formatted(a.cnic), "Al-Noor Cloth House", "cloth", "Anarkali", TODAY, "t")
        two = shops.register_shop(s, formatted(a.cnic), "Al-Noor Tailors", "tailoring", "Anarkali", TODAY, "t")
        assert one.certificate_no != two.certificate_no
        cert = shops.certificate(s, one.certificate_no.lower())
        assert cert.owner == a.full_name and "*" in cert.owner_cnic
        with pytest.raises(LabourError, match="outside your district"):
            shops.certificate(s, one.certificate_no, district_scope=a.district_id % 36 + 1)
        with pytest.raises(LabourError, match="shop_name"):
            shops.register_shop(s, formatted(a.cnic), "=cmd|' /C calc'!A0", "x", "y", TODAY, "t")
        with pytest.raises(LabourError, match="no person with CNIC"):
            shops.register_shop(s, "35202-1111111-1", "Shop", "x", "y", TODAY, "t")
        assert shops.count_shops(s, a.district_id) == 2


# ---------------------------------------------------------------- the web pages

@pytest.fixture
def web(small):
    from isps.access.service import create_user
    from isps.api.app import create_app
    from tests.conftest import PASSWORD, page_client

    with transaction(small) as s:
        district = _adults(s, 1)[0].district_id
        create_user(s, "counter", PASSWORD, "counter_operator", district_id=district)
        create_user(s, "admin", PASSWORD, "administrator")
        create_user(s, "auditor", PASSWORD, "auditor")
    app = create_app(small, secret="test-secret")
    with page_client(app) as c:
        c.district = district
        yield c


def _sign_in(client, who: str):
    from tests.conftest import PASSWORD

    r = client.post("/login", data={"username": who, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_web_booth_shop_certificate_and_job_board_in_the_counter_operators_district(web):
    from isps.access.models import AuditRecord as AuditLog

    with transaction(_engine_of(web)) as s:
        mine = _adults(s, 4, district_id=web.district)
        other = next(p for p in _adults(s, 60) if p.district_id != web.district)
        mine_cnic = [formatted(p.cnic) for p in mine]
        other_cnic = formatted(other.cnic)
    _sign_in(web, "counter")
    # booth registration: two wagers, then an offer of one place goes to the one idle longest
    for number, day in ((mine_cnic[0], "2026-11-02"), (mine_cnic[1], "2026-11-01")):
        r = web.post("/labour/wagers", data={"cnic": number, "booth": "Lari Adda chowk", "registered_on": day},
                     follow_redirects=False)
        assert r.status_code == 303, r.text
    r = web.post("/labour/wagers", data={"cnic": other_cnic, "booth": "Lari Adda chowk"})
    assert r.status_code == 422 and "outside your district" in r.text
    r = web.post("/labour/wagers/offer", data={"booth": "Lari Adda chowk", "slots": "1", "employer": "DHA Phase 9",
                                               "description": "Loading bricks", "work_on": "2026-12-01"})
    assert r.status_code == 200 and 'id="picks"' in r.text
    assert r.text.index(mine[1].full_name) > 0 and mine[0].full_name not in r.text.split('id="picks"')[1].split("</table>")[0]
    r = web.post("/labour/wagers/day", data={"cnic": mine_cnic[1], "worked_on": "2026-12-02"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    again = web.post("/labour/wagers/day", data={"cnic": mine_cnic[1], "worked_on": "2026-12-02"})
    assert again.status_code == 422 and "recorded already" in again.text
    page = web.get("/labour/wagers")
    assert page.status_code == 200 and 'data-total="2"' in page.text and "*****" in page.text
    assert web.get("/labour/wagers?format=csv&list=wagers").text.count("\n") == 3
    # shop registration goes to its printable certificate
    r = web.post("/labour/shops", data={"cnic": mine_cnic[2], "shop_name": "Madina Karyana Store", "trade": "grocery",
                                        "address": "Main Bazar, Chunian"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/certificate")
    cert = web.get(r.headers["location"])
    assert cert.status_code == 200 and "Madina Karyana Store" in cert.text and 'id="certificate-no"' in cert.text
    bad = web.post("/labour/shops", data={"cnic": mine_cnic[3], "shop_name": "=HYPERLINK(1)", "trade": "x", "address": "y"})
    assert bad.status_code == 422 and "shop_name" in bad.text
    # the job board: a laid-off worker, a vacancy, the match
    r = web.post("/labour/jobs/laid-off", data={"cnic": mine_cnic[3], "laid_off_on": "2026-11-20",
                                                "skills": ["electrician", "welder"]}, follow_redirects=False)
    assert r.status_code == 303, r.text
    r = web.post("/labour/jobs/vacancies", data={"employer": "Sitara Chemicals", "title": "Plant electrician",
                                                 "skills": ["electrician"], "slots": "2"})
    assert r.status_code == 200 and 'id="matches"' in r.text and mine[3].full_name in r.text
    assert web.get("/labour/jobs").status_code == 200
    web.cookies.set("lang", "ur")
    ur = web.get("/labour/jobs")
    web.cookies.delete("lang")
    assert 'dir="rtl"' in ur.text and "ملازمتوں کا بورڈ" in ur.text
    # an auditor reads but may not register; every action was audited
    web.post("/logout")
    _sign_in(web, "auditor")
    refused = web.post("/labour/shops", data={"cnic": mine_cnic[0], "shop_name": "X", "trade": "y", "address": "z"})
    assert refused.status_code == 403
    with transaction(_engine_of(web)) as s:
        actions = {(a.action, a.entity, a.outcome) for a in s.scalars(select(AuditLog))}
    assert {("create", "labour_worker", "ok"), ("record", "labour_work_offer", "ok"), ("create", "labour_shop", "ok"),
            ("read", "labour_shop", "ok"), ("create", "labour_vacancy", "ok"), ("read", "labour_vacancy", "ok"),
            ("create", "labour_shop", "denied"), ("export", "labour_worker", "ok")} <= actions


def _engine_of(client):
    return client.app.state.engine


def test_labour_cli_upload_refusal_shop_wager_offer_and_quarterly(small, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import isps.cli.common as common
    import isps.cli.main as main

    monkeypatch.setattr(common, "_engine", lambda: small)
    monkeypatch.setattr(common.console, "width", 300)
    run = CliRunner().invoke
    with transaction(small) as s:
        a, b = _adults(s, 2, district_id=_adults(s, 1)[0].district_id)
        numbers, district = [formatted(a.cnic), formatted(b.cnic)], a.district_id
    r = run(main.app, ["labour", "doors"])
    assert r.exit_code == 0 and "contribution" in r.output and "fuel_station" in r.output
    bad = _csv(tmp_path / "adp.csv", list(uploads.DOORS["contractor"].names),
               [["C-1", "Malik Builders", "ADP-1", numbers[0], "A", "2026-11-01", "45", "900"]])
    r = run(main.app, ["labour", "upload", "contractor", str(bad), "--report", str(tmp_path / "p.csv")])
    assert r.exit_code == 1 and "refused, nothing stored" in r.output and "row 2: days_worked" in r.output
    assert "days_worked" in (tmp_path / "p.csv").read_text()
    r = run(main.app, ["labour", "shop", numbers[0], "Ali Shoes", "footwear", "Urdu Bazar", "--on", "2026-08-01"])
    assert r.exit_code == 0 and "PSR-" in r.output, r.output
    r = run(main.app, ["labour", "wager", numbers[1], "Chowk Yateem Khana", "--on", "2026-08-01"])
    assert r.exit_code == 0, r.output
    r = run(main.app, ["labour", "offer", str(district), "Chowk Yateem Khana", "1", "WAPDA Town", "Digging",
                       "--on", "2026-12-01", "--take"])
    assert r.exit_code == 0 and str(b.id) in r.output, r.output
    r = run(main.app, ["labour", "quarterly", "--on", "2026-12-07"])
    assert r.exit_code == 0 and "2 made stale" in r.output, r.output
    r = run(main.app, ["labour", "overdue", "--on", "2026-12-07"])
    assert r.exit_code == 0 and str(b.id) in r.output and "stale" in r.output, r.output
    r = run(main.app, ["labour", "day", str(b.id), "--on", "2026-12-02"])
    assert r.exit_code == 0 and "2026-12-02" in r.output, r.output
    r = run(main.app, ["labour", "report", str(b.id), "daily_wager", "--on", "2026-12-06"])
    assert r.exit_code == 0 and "2027-03-07" in r.output, r.output


def test_web_upload_door_refuses_a_bad_file_and_accepts_a_good_one_and_the_counter_records_a_report(web, tmp_path):
    with transaction(_engine_of(web)) as s:
        a, b = _adults(s, 2, district_id=web.district)
        numbers = [formatted(a.cnic), formatted(b.cnic)]
    header = ",".join(uploads.DOORS["sector"].names)
    bad = f"{header}\nHTL-9,Pearl Continental,hotel,{numbers[0]},A,2026-11-01,26,30000\nHTL-9,@SUM(1),hotel,{numbers[1]},B,2026-11-01,26,30000\n"
    _sign_in(web, "admin")
    page = web.get("/labour/uploads")
    assert page.status_code == 200 and "employer_ref" in page.text
    r = web.post("/labour/uploads", data={"door": "sector"}, files={"file": ("pc_nov.csv", bad, "text/csv")})
    assert r.status_code == 422 and 'id="refused"' in r.text and "employer_name" in r.text
    with transaction(_engine_of(web)) as s:
        assert _stored(s) == NOTHING
    good = bad.replace("@SUM(1)", "Pearl Continental")
    r = web.post("/labour/uploads", data={"door": "sector"}, files={"file": ("pc_nov.csv", good, "text/csv")})
    assert r.status_code == 200 and 'id="accepted"' in r.text and "pc_nov.csv" in r.text
    with transaction(_engine_of(web)) as s:
        assert s.get(Individual, a.id).labour_status == "employed_informal"
    web.post("/logout")
    # a counter operator may not upload, but records a worker's quarterly report
    _sign_in(web, "counter")
    assert web.post("/labour/uploads", data={"door": "sector"},
                    files={"file": ("x.csv", good, "text/csv")}).status_code == 403
    r = web.post("/labour/reports", data={"cnic": numbers[0], "status": "unemployed", "reported_on": "2026-12-05"},
                 follow_redirects=False)
    assert r.status_code == 303, r.text
    with transaction(_engine_of(web)) as s:
        assert s.get(Individual, a.id).labour_status == "unemployed"
        assert s.get(LabourPerson, a.id).report_due == date(2026, 12, 5) + timedelta(days=91)
    r = web.post("/labour/reports", data={"cnic": numbers[0], "status": "rich", "reported_on": "2026-12-05"})
    assert r.status_code == 422 and "status: must be one of" in r.text


def test_api_upload_door_answers_422_row_by_row_and_stores_nothing_then_accepts(web):
    from tests.conftest import token_for

    with transaction(_engine_of(web)) as s:
        a = _adults(s, 1)[0]
    auth = token_for(web, "admin")
    header = ",".join(uploads.DOORS["contractor"].names)
    bad = f"{header}\nPEC-1,Malik Builders,ADP-12,{formatted(a.cnic)},A,2026-11-01,32,1200\n"
    r = web.post("/api/v1/labour/uploads/contractor", headers=auth, files={"file": ("adp.csv", bad, "text/csv")})
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "row 2: days_worked", "message": "must be a number from 0 to 31"}], r.text
    with transaction(_engine_of(web)) as s:
        assert _stored(s) == NOTHING
    r = web.post("/api/v1/labour/uploads/contractor", headers=auth,
                 files={"file": ("adp.csv", bad.replace(",32,", ",22,"), "text/csv")})
    assert r.status_code == 200 and r.json()["upload_id"] and r.json()["workers"] == 1, r.text
    assert web.post("/api/v1/labour/uploads/contractor", headers=token_for(web, "counter"),
                    files={"file": ("adp2.csv", bad, "text/csv")}).status_code == 403
    assert web.post("/api/v1/labour/uploads/nonsense", headers=auth,
                    files={"file": ("x.csv", bad, "text/csv")}).status_code == 404
    assert web.get("/api/v1/labour/doors", headers=auth).json()[0]["door"] == "formal"


def test_rotation_passes_over_a_wager_who_has_since_reported_or_been_uploaded_with_a_job(small, tmp_path):
    with transaction(small) as s:
        district = _adults(s, 1)[0].district_id
        people = _adults(s, 4, district_id=district)
        ids = [p.id for p in people]
        for i, p in enumerate(people):
            wagers.register_wager(s, formatted(p.cnic), "Bhatti Chowk", date(2026, 9, 1) + timedelta(days=i), "t")
        # the longest idle reports a job at the counter; the next is named by an employer's EOBI file
        reports.report_status(s, ids[0], "employed_informal", date(2026, 11, 20), "t")
        number = formatted(people[1].cnic)
    path = _csv(tmp_path / "eobi_nov.csv", list(uploads.DOORS["formal"].names),
                [["EOBI-LHR-0042", "Ittefaq Foundry", "eobi", number, "Worker", "2026-11-01", "37000", "370"]])
    assert uploads.upload(small, "formal", path, actor="employer", today=TODAY).ok
    with transaction(small) as s:
        # an offer for a day before the job began still reaches them: the job did not exist yet
        before = wagers.offer_work(s, district, "Bhatti Chowk", date(2026, 10, 15), 4, "Mall Road", "Digging", "t")
        assert {p.individual_id for p in wagers.picks(s, before.id)} == set(ids)
        offer = wagers.offer_work(s, district, "Bhatti Chowk", date(2026, 12, 1), 4, "Mall Road", "Digging", "t")
        assert [p.individual_id for p in wagers.picks(s, offer.id)] == ids[2:]
        # a later report of being a daily wager again puts him back in the rotation
        reports.report_status(s, ids[0], "daily_wager", date(2026, 12, 2), "t")
        again = wagers.offer_work(s, district, "Bhatti Chowk", date(2026, 12, 3), 4, "Mall Road", "Digging", "t")
        assert ids[0] in {p.individual_id for p in wagers.picks(s, again.id)}
        assert ids[1] not in {p.individual_id for p in wagers.picks(s, again.id)}
        # the EOBI worker misses his quarterly report (due 91 days after registering): a stale status is
        # not employment, so he is back in turn
        assert s.get(LabourPerson, ids[1]).report_due == date(2026, 9, 2) + timedelta(days=91)
        assert reports.mark_stale(s, date(2027, 1, 5)) >= 1
        later = wagers.offer_work(s, district, "Bhatti Chowk", date(2026, 12, 4), 4, "Mall Road", "Digging", "t")
        assert ids[1] in {p.individual_id for p in wagers.picks(s, later.id)}


def test_taking_people_off_a_register_keeps_the_history_and_stops_offers_matches_and_reminders(small):
    from isps.labour import registers
    from isps.labour.models import LabourLeaving

    with transaction(small) as s:
        district = _adults(s, 1)[0].district_id
        a, b, c, d = _adults(s, 4, district_id=district)
        wagers.register_wager(s, formatted(a.cnic), "Lari Adda chowk", date(2026, 9, 1), "t")
        wagers.register_wager(s, formatted(b.cnic), "Lari Adda chowk", date(2026, 9, 2), "t")
        jobs.register_laid_off(s, formatted(c.cnic), date(2026, 10, 1), "electrician", "t")
        shop = shops.register_shop(s, formatted(d.cnic), "Madina Karyana Store", "grocery", "Main Bazar",
                                   date(2026, 9, 1), "t")
        vacancy = jobs.post_vacancy(s, district, "Sitara Chemicals", "Electrician", "electrician", 1, TODAY, "t")
        # refusals name the field, and nothing changes
        with pytest.raises(LabourError, match="reason: must be one of"):
            registers.take_off_by_cnic(s, "daily_wager", formatted(a.cnic), TODAY, "bored", "t")
        with pytest.raises(LabourError, match="now: say which work"):
            registers.take_off_by_cnic(s, "laid_off", formatted(c.cnic), TODAY, "found_work", "t")
        with pytest.raises(LabourError, match="before .* was registered"):
            registers.take_off_by_cnic(s, "daily_wager", formatted(a.cnic), date(2026, 8, 1), "moved_away", "t")
        with pytest.raises(LabourError, match="not on the laid off register"):
            registers.take_off_by_cnic(s, "laid_off", formatted(a.cnic), TODAY, "other", "t")
        with pytest.raises(LabourError, match="outside your district"):
            registers.take_off_by_cnic(s, "daily_wager", formatted(a.cnic), TODAY, "moved_away", "t",
                                       district_scope=district % 36 + 1)
        # a wager who left, a laid-off worker who found work, a shop closed
        registers.take_off_by_cnic(s, "daily_wager", formatted(a.cnic), date(2026, 11, 30), "moved_away", "booth",
                                   note="went back to his village in Okara")
        registers.take_off_by_cnic(s, "laid_off", formatted(c.cnic), date(2026, 12, 1), "found_work", "counter",
                                   now="employed_formal")
        shops.close_shop(s, shop.certificate_no.lower(), date(2026, 12, 4), "shop_closed", "counter")
        with pytest.raises(LabourError, match="closed already"):
            shops.close_shop(s, shop.certificate_no, TODAY, "shop_closed", "counter")
        # history kept: the register rows are inactive, not deleted, and each leaving says when, why, who
        rows = {w.register: w for w in s.scalars(select(LabourWorker).where(
            LabourWorker.individual_id.in_([a.id, c.id, d.id])))}
        assert set(rows) == {"daily_wager", "laid_off", "shopkeeper"} and not any(w.active for w in rows.values())
        left = {(x.register, x.individual_id, x.left_on, x.reason, x.recorded_by)
                for x in s.scalars(select(LabourLeaving))}
        assert left == {("daily_wager", a.id, date(2026, 11, 30), "moved_away", "booth"),
                        ("laid_off", c.id, date(2026, 12, 1), "found_work", "counter"),
                        ("shopkeeper", d.id, date(2026, 12, 4), "shop_closed", "counter")}
        assert [x.register for x in registers.leavings(s, district_id=district)][0] == "shopkeeper"
        # the work found is their report: the registry's status follows; the others keep the last known
        assert s.get(Individual, c.id).labour_status == "employed_formal"
        assert s.get(Individual, a.id).labour_status == "daily_wager"
        # no more offers, matches, or a valid certificate
        offer = wagers.offer_work(s, district, "Lari Adda chowk", TODAY, 2, "DHA", "Loading", "t")
        assert [p.individual_id for p in wagers.picks(s, offer.id)] == [b.id]
        assert jobs.matches(s, vacancy.id) == []
        assert shops.certificate(s, shop.certificate_no).closed_on == date(2026, 12, 4)
        assert wagers.count_wagers(s, district) == 1
        # nobody left on a register is owed a reminder; b still is
        due = s.get(LabourPerson, b.id).report_due
        reports.schedule_reminders(s, due)
        assert {r.individual_id for r in s.scalars(select(LabourReminder))} == {b.id}
        # a wager who comes back is registered again; the old leaving stays
        wagers.register_wager(s, formatted(a.cnic), "Lari Adda chowk", TODAY, "t")
        assert s.scalar(select(func.count()).select_from(LabourLeaving).where(LabourLeaving.individual_id == a.id)) == 1


def test_labour_cli_takes_a_wager_off_and_closes_a_shop(small, monkeypatch):
    from typer.testing import CliRunner

    import isps.cli.common as common
    import isps.cli.main as main
    from isps.labour.models import LabourLeaving

    monkeypatch.setattr(common, "_engine", lambda: small)
    monkeypatch.setattr(common.console, "width", 300)
    run = CliRunner().invoke
    with transaction(small) as s:
        a, b = _adults(s, 2)
        a_id, number = a.id, formatted(a.cnic)
        wagers.register_wager(s, number, "Chowk Yateem Khana", date(2026, 9, 1), "t")
        cert = shops.register_shop(s, formatted(b.cnic), "Ali Shoes", "footwear", "Urdu Bazar", date(2026, 9, 1),
                                   "t").certificate_no
    r = run(main.app, ["labour", "leave", "daily_wager", number, "--reason", "gone"])
    assert r.exit_code == 1 and "reason: must be one of" in r.output, r.output
    r = run(main.app, ["labour", "leave", "daily_wager", number, "--reason", "found_work",
                       "--now", "employed_informal", "--on", "2026-12-01", "--actor", "booth.clerk"])
    assert r.exit_code == 0 and "taken off the daily wager register" in r.output, r.output
    r = run(main.app, ["labour", "leave", "shopkeeper", cert, "--reason", "shop_closed", "--note", "rent too high"])
    assert r.exit_code == 0 and f"shop {cert} closed" in r.output, r.output
    with transaction(small) as s:
        rows = {(x.register, x.reason, x.recorded_by, x.note) for x in s.scalars(select(LabourLeaving))}
        assert rows == {("daily_wager", "found_work", "booth.clerk", None), ("shopkeeper", "shop_closed", "cli",
                                                                             "rent too high")}
        assert s.get(Individual, a_id).labour_status == "employed_informal"


def test_web_counter_takes_people_off_registers_and_closes_a_shop_audited(web):
    from isps.access.models import AuditRecord as AuditLog
    from isps.labour.models import LabourLeaving

    with transaction(_engine_of(web)) as s:
        a, b, c = _adults(s, 3, district_id=web.district)
        wagers.register_wager(s, formatted(a.cnic), "Lari Adda chowk", date(2026, 9, 1), "t")
        jobs.register_laid_off(s, formatted(b.cnic), date(2026, 10, 1), "welder", "t")
        cert = shops.register_shop(s, formatted(c.cnic), "Bismillah Hardware", "hardware", "Railway Road",
                                   date(2026, 9, 1), "t").certificate_no
        numbers, names = [formatted(a.cnic), formatted(b.cnic)], [a.full_name, b.full_name]
    _sign_in(web, "counter")
    page = web.get("/labour/wagers")
    assert 'id="leave-form"' in page.text and 'value="shop_closed"' not in page.text.split('id="leave-form"')[1]
    r = web.post("/labour/leave", data={"register": "laid_off", "cnic": numbers[1], "reason": "found_work"})
    assert r.status_code == 422 and "now: say which work" in r.text and 'id="leave-form"' in r.text
    r = web.post("/labour/leave", data={"register": "daily_wager", "cnic": numbers[0], "reason": "moved_away",
                                        "left_on": "2026-12-01", "note": "back to Pakpattan"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/labour/wagers?done=left", r.text
    page = web.get(r.headers["location"])
    assert 'id="notice"' in page.text and 'data-total="0"' in page.text
    assert names[0] in page.text.split('id="leavings"')[1] and "back to Pakpattan" in page.text
    r = web.post("/labour/leave", data={"register": "laid_off", "cnic": numbers[1], "reason": "found_work",
                                        "now": "employed_informal"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/labour/jobs?done=left"
    r = web.post("/labour/leave", data={"register": "shopkeeper", "certificate_no": cert, "reason": "shop_closed",
                                        "left_on": "2026-12-03"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/labour/shops?done=left"
    assert "Closed on" in web.get("/labour/shops").text
    assert 'id="closed"' in web.get(f"/labour/shops/{cert}/certificate").text
    web.cookies.set("lang", "ur")
    ur = web.get("/labour/shops")
    web.cookies.delete("lang")
    assert "دکان بند کریں" in ur.text
    web.post("/logout")
    _sign_in(web, "auditor")
    assert web.post("/labour/leave", data={"register": "daily_wager", "cnic": numbers[0],
                                           "reason": "other"}).status_code == 403
    with transaction(_engine_of(web)) as s:
        assert s.scalar(select(func.count()).select_from(LabourLeaving)) == 3
        assert s.get(Individual, b.id).labour_status == "employed_informal"
        actions = {(x.action, x.entity, x.outcome) for x in s.scalars(select(AuditLog))}
    assert {("exit", "labour_worker", "ok"), ("exit", "labour_shop", "ok"), ("create", "labour_worker", "denied")} <= actions


def test_the_demo_fills_every_labour_register_through_its_doors(small, tmp_path, monkeypatch):
    from rich.console import Console

    from isps.cli import demo
    from isps.labour.models import LabourLeaving, Shop, Vacancy, WorkOfferPick

    monkeypatch.setenv("ISPS_VAR_DIR", str(tmp_path))   # the employers' files the demo writes
    demo.labour_flow(small, Console(quiet=True))
    assert len(list((tmp_path / "labour").glob("demo-*.csv"))) == 3
    with transaction(small) as s:
        doors = set(s.scalars(select(LabourUpload.door)))
        registers_ = set(s.scalars(select(LabourWorker.register).distinct()))
        counts = {t.__tablename__: s.scalar(select(func.count()).select_from(t))
                  for t in (Shop, Vacancy, WorkOfferPick, WagerDay, LabourLeaving)}
    assert doors == {"formal", "contractor", "sector"}
    assert {"formal_worker", "contractor_labour", "daily_wager", "shopkeeper", "laid_off"} <= registers_
    assert all(counts.values()), counts
    with transaction(small) as s:   # a second run finds the work done
        before = s.scalar(select(func.count()).select_from(LabourWorker))
    demo.labour_flow(small, Console(quiet=True))
    with transaction(small) as s:
        assert s.scalar(select(func.count()).select_from(LabourWorker)) == before
