"""What the labour registries tell the registry: a person's labour status, written as the feeds
write, so that PMT re-scoring and the vulnerability index follow through the existing events.

Every write goes through :func:`isps.interop.feeds.framework.write_changes` with the source
``labour``: a ``value_change`` row per changed value (old, new, source reference, effective date,
actor), the current value moved only when the news is not older than what is known and the source
is not outranked (the public payroll outranks the labour registry for ``labour_status``; the
labour registry outranks the survey and an operator's correction: migration ``0015_labour``), and
one ``household.changed`` event per household whose state moved (``targeting.pmt.process_events``
re-scores it; a move to ``unemployed`` is a job-loss shock in ``targeting.vulnerability``).

It also keeps ``labour_person``, the per-person view of the quarterly self-report: the status last
known to the labour registry and when the next report is due (:mod:`isps.labour.reports`).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pyarrow as pa
from sqlalchemy import insert, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from isps.interop.feeds.framework import Feed, FeedReport, Job, write_changes
from isps.labour.vocab import REPORT_EVERY_DAYS
from isps.registry import cnic as cnic_rules
from isps.registry import current
from isps.registry.bulk import insert_arrow
from isps.registry.fields import Field, check_value
from isps.registry.models import IngestBatch, Individual
from isps.registry.service import OutOfScope, find_by_cnic

SOURCE = "labour"
REPORT_EVERY = timedelta(days=REPORT_EVERY_DAYS)
DOOR = Feed("labour", "Labour registries", SOURCE, (), "effective", apply=lambda job: None,
             generate=lambda *a: None, doc=__doc__ or "")


class LabourError(ValueError):
    """A request the labour registries refuse; the message names the record and field."""


def required_text(spec: Field, raw: str) -> str:
    """A typed text field checked by the registry's field rule, and required: the error names the field."""
    try:
        value = check_value(spec, (raw or "").strip())
    except ValueError as exc:
        raise LabourError(f"{spec.name}: {exc}") from None
    if not value:
        raise LabourError(f"{spec.name}: is required")
    return value


def person_for(session: Session, raw_cnic: str, district_scope: int | None = None) -> Individual:
    """The one living registry person holding a CNIC, within the user's district."""
    try:
        number = cnic_rules.validate(raw_cnic)
    except cnic_rules.CnicError as exc:
        raise LabourError(f"cnic: {exc}") from None
    try:
        people = find_by_cnic(session, number, district_scope)
    except OutOfScope:
        raise LabourError(f"cnic: {cnic_rules.mask(number)} is registered outside your district") from None
    living = [p for p in people if current.is_current(p)]
    if not people:
        raise LabourError(f"cnic: no person with CNIC {cnic_rules.mask(number)} is in the registry; "
                          "register the household first (survey or counter)")
    if not living:
        raise LabourError(f"cnic: the person with CNIC {cnic_rules.mask(number)} is recorded as deceased")
    if len(living) > 1:
        raise LabourError(f"cnic: CNIC {cnic_rules.mask(number)} is registered {len(living)} times "
                          "(a duplicate registration); resolve it first")
    return living[0]


def new_batch(conn: Connection, reference: str, effective: date, actor: str) -> int:
    return conn.execute(insert(IngestBatch.__table__).values(
        source=SOURCE, reference=f"labour {reference}"[:200], effective_date=effective, actor=actor)
        .returning(IngestBatch.__table__.c.id)).scalar_one()


def write_statuses(conn: Connection, *, individual_id, household_id, district_id, status, effective, refs,
                   reference: str, actor: str, batch_id: int | None = None) -> FeedReport:
    """Propose ``labour_status = status`` for each person (whole arrays, one per row), effective on
    ``effective``, and write what the registry takes, set-based, with its events."""
    n = len(individual_id)
    report = FeedReport(DOOR.name, reference, actor)
    if n == 0:
        return report
    eff = np.empty(n, dtype=object)
    eff[:] = list(effective)
    if batch_id is None:
        batch_id = new_batch(conn, reference, max(eff), actor)
    report.batch_id = batch_id
    job = Job(DOOR, conn, {"effective": eff}, np.asarray(refs, dtype=object), np.arange(1, n + 1),
              np.ones(n, dtype=bool), report, batch_id, 0, actor, reference)
    job.change(np.ones(n, dtype=bool), "individual", np.asarray(individual_id), np.asarray(household_id),
               np.asarray(district_id), "labour_status", np.asarray(status, dtype=object), eff)
    write_changes(job)
    return report


def write_status(session: Session, person: Individual, status: str, effective: date, ref: str, reference: str,
                 actor: str) -> FeedReport:
    """One person's labour status (a booth, a shop, a report): the same path as an upload's."""
    report = write_statuses(session.connection(), individual_id=[person.id], household_id=[person.household_id],
                            district_id=[person.district_id], status=[status], effective=[effective], refs=[ref],
                            reference=reference, actor=actor)
    session.expire(person)  # the row was written in SQL: read it again
    return report


def note_people(conn: Connection, *, individual_id, household_id, district_id, status, status_on, source: str,
                moves_due: bool) -> None:
    """Keep ``labour_person`` for these people (arrays): a newer status replaces an older one and
    clears staleness; a self-report (``moves_due``) sets the next due date three months on, other
    news leaves the schedule alone (a first registration starts it)."""
    n = len(individual_id)
    if n == 0:
        return
    on = np.asarray(list(status_on), dtype="datetime64[D]")
    due = on + np.timedelta64(REPORT_EVERY.days, "D")
    data = pa.table({"individual_id": pa.array(np.asarray(individual_id, dtype=np.int64)),
                     "household_id": pa.array(np.asarray(household_id, dtype=np.int64)),
                     "district_id": pa.array(np.asarray(district_id, dtype=np.int64)),
                     "status": pa.array(list(status), pa.string()), "status_on": pa.array(on),
                     "status_source": pa.array([source] * n, pa.string()), "report_due": pa.array(due)})
    # one row per person: the newest status of this batch
    order = np.lexsort((on.astype(np.int64), data["individual_id"].to_numpy()))
    ids = data["individual_id"].to_numpy()[order]
    last = np.r_[ids[1:] != ids[:-1], True]
    data = data.take(pa.array(order[last]))
    conn.execute(text("DROP TABLE IF EXISTS labour_tmp_people"))
    conn.execute(text("CREATE TEMPORARY TABLE labour_tmp_people (individual_id BIGINT, household_id BIGINT, "
                      "district_id BIGINT, status TEXT, status_on DATE, status_source TEXT, report_due DATE)"))
    insert_arrow(conn, "labour_tmp_people", data)
    newer = "excluded.status_on >= labour_person.status_on"
    due_set = (f"CASE WHEN {newer} THEN excluded.report_due ELSE labour_person.report_due END" if moves_due
               else "labour_person.report_due")
    conn.execute(text(f"""
        INSERT INTO labour_person (individual_id, household_id, district_id, status, status_on, status_source,
                                   report_due, stale_since)
        SELECT individual_id, household_id, district_id, status, status_on, status_source, report_due, NULL
        FROM labour_tmp_people WHERE true
        ON CONFLICT (individual_id) DO UPDATE SET
            status = CASE WHEN {newer} THEN excluded.status ELSE labour_person.status END,
            status_source = CASE WHEN {newer} THEN excluded.status_source ELSE labour_person.status_source END,
            stale_since = CASE WHEN {newer} THEN NULL ELSE labour_person.stale_since END,
            report_due = {due_set},
            status_on = CASE WHEN {newer} THEN excluded.status_on ELSE labour_person.status_on END"""))
    conn.execute(text("DROP TABLE IF EXISTS labour_tmp_people"))
