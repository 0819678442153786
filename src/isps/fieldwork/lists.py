"""The field work lists an officer reads: submissions (and the refused queue, with the review of one),
assignments, devices, sites and a site's list; one keyset page at a time (newest first, never an
OFFSET) with the COUNT of the same filtered query, for ``web/fieldwork.py`` and ``cli/field.py``.

Rows are plain dicts; CNICs are masked here (a receipt's ``cnic_seen``, a survey's member CNICs), so
no adapter can show one whole. Scope is the caller's ``district_id`` (a scoped user's district); the
adapters audit the reads.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from isps import keyset
from isps.access.service import Principal, audit
from isps.fieldwork.models import DistributionEntry, DistributionSite, FieldAssignment, FieldDevice, FieldSubmission
from isps.registry import cnic as cnic_rules
from isps.registry.models import Individual

STATUSES = ("received", "accepted", "refused")
JOBS = ("survey", "visit", "receipt", "grievance")


class ReviewError(ValueError):
    """A review that cannot be recorded; the message names the submission and the field."""


def _page(session: Session, stmt: Select, id_col, after: int | None, limit: int) -> list:
    return [r[0] for r in keyset.page(session, stmt, id_col, id_col, after=after, limit=limit, desc=True)]


def _count(session: Session, stmt: Select, model) -> int:
    return int(session.scalar(stmt.with_only_columns(func.count()).select_from(model).order_by(None)) or 0)


def _stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


# ---------------------------------------------------------------- submissions

def _submissions(district_id: int | None, status: str | None, job: str | None, enumerator: str | None,
                 day: date | None, unreviewed: bool) -> Select:
    stmt = select(FieldSubmission)
    if district_id is not None:
        stmt = stmt.where(FieldSubmission.district_id == district_id)
    if status:
        stmt = stmt.where(FieldSubmission.status == status)
    if job:
        stmt = stmt.where(FieldSubmission.job == job)
    if enumerator:
        stmt = stmt.where(FieldSubmission.username == enumerator)
    if day is not None:
        start = datetime.combine(day, datetime.min.time())
        stmt = stmt.where(FieldSubmission.collected_at >= start, FieldSubmission.collected_at < start + timedelta(days=1))
    if unreviewed:
        stmt = stmt.where(FieldSubmission.reviewed_at.is_(None))
    return stmt


def submission_row(s: FieldSubmission) -> dict:
    return {"id": s.id, "instance_id": s.instance_id, "form_id": s.form_id, "version": s.form_version, "job": s.job,
            "channel": s.channel, "enumerator": s.username, "district_id": s.district_id,
            "household_id": s.household_id, "collected_at": _stamp(s.collected_at), "received_at": _stamp(s.received_at),
            "status": s.status, "reason": s.reason or "", "reviewed_by": s.reviewed_by or "",
            "reviewed_at": _stamp(s.reviewed_at), "review_note": s.review_note or ""}


def list_submissions(session: Session, *, district_id: int | None = None, status: str | None = None,
                     job: str | None = None, enumerator: str | None = None, day: date | None = None,
                     unreviewed: bool = False, after: int | None = None, limit: int = 50) -> list[dict]:
    """One page of submissions, newest first (filters: status, job, enumerator, day collected, refused
    and not yet reviewed)."""
    stmt = _submissions(district_id, status, job, enumerator, day, unreviewed)
    return [submission_row(s) for s in _page(session, stmt, FieldSubmission.id, after, limit)]


def count_submissions(session: Session, *, district_id: int | None = None, status: str | None = None,
                      job: str | None = None, enumerator: str | None = None, day: date | None = None,
                      unreviewed: bool = False) -> int:
    return _count(session, _submissions(district_id, status, job, enumerator, day, unreviewed), FieldSubmission)


def masked_values(values: dict[str, str]) -> dict[str, str]:
    """A submission's values as an officer may see them: every CNIC masked."""
    out = {}
    for k, v in values.items():
        if "cnic" in k and v:  # cnic, cnic_seen, recipient_cnic, a member's cnic
            digits = "".join(ch for ch in v if ch.isdigit())
            out[k] = cnic_rules.mask(digits) if len(digits) == 13 else cnic_rules.mask_raw(v)
        else:
            out[k] = v
    return out


def submission_values(s: FieldSubmission) -> tuple[dict[str, str], dict[str, list[dict[str, str]]], str | None]:
    """What the submission says (its values and repeats, CNICs masked), read from the kept XML with the
    forms' reader; a submission that cannot be read gives the reader's error instead."""
    from isps.fieldwork import forms

    try:
        inst = forms.read_instance(s.xml.encode("utf-8"))
    except forms.InstanceError as exc:
        return {}, {}, str(exc)
    return masked_values(inst.values), {k: [masked_values(r) for r in rows] for k, rows in inst.repeats.items()}, None


def review(session: Session, who: Principal, submission_id: int, note: str, now: datetime | None = None
           ) -> FieldSubmission:
    """An officer has dealt with a refused submission (corrected the household, told the enumerator,
    entered it at the desk): who, when and the note are kept; audited (``review``)."""
    who.require("field.review")
    s = session.get(FieldSubmission, submission_id)
    if s is None:
        raise ReviewError(f"submission {submission_id} does not exist")
    if who.scope is not None and s.district_id != who.scope:
        raise PermissionError(f"submission {submission_id} is outside your district")
    note = (note or "").strip()
    if s.status != "refused":
        raise ReviewError(f"submission {submission_id}: status: only a refused submission is reviewed (it is {s.status})")
    if s.reviewed_at is not None:
        raise ReviewError(f"submission {submission_id}: already reviewed by {s.reviewed_by}")
    if not note or len(note) > 400:
        raise ReviewError(f"submission {submission_id}: note: say what was done, in 1 to 400 characters")
    s.reviewed_by, s.reviewed_at, s.review_note = who.username, now or datetime.now(), note
    session.flush()
    audit(session, who, "web", "review", "field_submission", s.id, s.district_id, detail=note[:200])
    return s


# ---------------------------------------------------------------- assignments

def _assignments(district_id: int | None, kind: str | None, status: str | None, enumerator: str | None,
                 late_on: date | None, tehsil_id: int | None) -> Select:
    stmt = select(FieldAssignment)
    if district_id is not None:
        stmt = stmt.where(FieldAssignment.district_id == district_id)
    if kind:
        stmt = stmt.where(FieldAssignment.kind == kind)
    if status:
        stmt = stmt.where(FieldAssignment.status == status)
    if enumerator:
        stmt = stmt.where(FieldAssignment.enumerator == enumerator)
    if tehsil_id is not None:
        stmt = stmt.where(FieldAssignment.tehsil_id == tehsil_id)
    if late_on is not None:
        stmt = stmt.where(FieldAssignment.status == "open", FieldAssignment.due_on < late_on)
    return stmt


def _assignment_row(a: FieldAssignment) -> dict:
    return {"id": a.id, "kind": a.kind, "enumerator": a.enumerator, "district_id": a.district_id,
            "tehsil_id": a.tehsil_id, "union_council": a.union_council or "", "household_id": a.household_id,
            "application_id": a.application_id, "site_id": a.site_id, "status": a.status,
            "assigned_by": a.assigned_by, "assigned_at": _stamp(a.assigned_at),
            "due_on": a.due_on.isoformat() if a.due_on else "", "done_at": _stamp(a.done_at),
            "submission_id": a.submission_id}


def list_assignments(session: Session, *, district_id: int | None = None, kind: str | None = None,
                     status: str | None = None, enumerator: str | None = None, late_on: date | None = None,
                     tehsil_id: int | None = None, after: int | None = None, limit: int = 50) -> list[dict]:
    stmt = _assignments(district_id, kind, status, enumerator, late_on, tehsil_id)
    return [_assignment_row(a) for a in _page(session, stmt, FieldAssignment.id, after, limit)]


def count_assignments(session: Session, *, district_id: int | None = None, kind: str | None = None,
                      status: str | None = None, enumerator: str | None = None, late_on: date | None = None,
                      tehsil_id: int | None = None) -> int:
    return _count(session, _assignments(district_id, kind, status, enumerator, late_on, tehsil_id), FieldAssignment)


# ---------------------------------------------------------------- devices

def _devices(district_id: int | None, active: bool | None) -> Select:
    stmt = select(FieldDevice)
    if district_id is not None:
        stmt = stmt.where(FieldDevice.district_id == district_id)
    if active is not None:
        stmt = stmt.where(FieldDevice.active.is_(active))
    return stmt


def list_devices(session: Session, *, district_id: int | None = None, active: bool | None = None,
                 after: int | None = None, limit: int = 50) -> list[dict]:
    stmt = _devices(district_id, active)
    return [{"id": d.id, "code": d.code, "label": d.label, "username": d.username, "district_id": d.district_id,
             "active": d.active, "registered_by": d.registered_by, "registered_at": _stamp(d.registered_at),
             "last_seen_at": _stamp(d.last_seen_at), "odk_device_id": d.odk_device_id or ""}
            for d in _page(session, stmt, FieldDevice.id, after, limit)]


def count_devices(session: Session, *, district_id: int | None = None, active: bool | None = None) -> int:
    return _count(session, _devices(district_id, active), FieldDevice)


# ---------------------------------------------------------------- sites and their lists

def _sites(district_id: int | None, kind: str | None) -> Select:
    stmt = select(DistributionSite)
    if district_id is not None:
        stmt = stmt.where(DistributionSite.district_id == district_id)
    if kind:
        stmt = stmt.where(DistributionSite.kind == kind)
    return stmt


def list_sites(session: Session, *, district_id: int | None = None, kind: str | None = None,
               after: int | None = None, limit: int = 50) -> list[dict]:
    """Sites, newest first, with their lines and how many were handed over (one grouped query)."""
    sites = _page(session, _sites(district_id, kind), DistributionSite.id, after, limit)
    counts = {}
    if sites:
        counts = {sid: (int(n), int(h)) for sid, n, h in session.execute(
            select(DistributionEntry.site_id, func.count(), func.count(DistributionEntry.handed_over_at))
            .where(DistributionEntry.site_id.in_([s.id for s in sites])).group_by(DistributionEntry.site_id))}
    return [{"id": s.id, "name": s.name, "kind": s.kind, "district_id": s.district_id, "tehsil_id": s.tehsil_id,
             "outlet_id": s.outlet_id, "opens_on": s.opens_on.isoformat() if s.opens_on else "",
             "closes_on": s.closes_on.isoformat() if s.closes_on else "", "created_by": s.created_by,
             "lines": counts.get(s.id, (0, 0))[0], "handed_over": counts.get(s.id, (0, 0))[1]} for s in sites]


def count_sites(session: Session, *, district_id: int | None = None, kind: str | None = None) -> int:
    return _count(session, _sites(district_id, kind), DistributionSite)


def _entry_filter(site_id: int, handed: bool | None) -> list:
    where = [DistributionEntry.site_id == site_id]
    if handed is not None:
        where.append(DistributionEntry.handed_over_at.is_not(None) if handed
                     else DistributionEntry.handed_over_at.is_(None))
    return where


def _entries(site_id: int, handed: bool | None) -> Select:
    return select(DistributionEntry, Individual.full_name, Individual.cnic) \
        .outerjoin(Individual, Individual.id == DistributionEntry.individual_id).where(*_entry_filter(site_id, handed))


def list_entries(session: Session, site_id: int, *, handed: bool | None = None, after: int | None = None,
                 limit: int = 50) -> list[dict]:
    """A site's list, newest line first: recipient (CNIC masked), item, amount, token, hand-over."""
    rows = keyset.page(session, _entries(site_id, handed), DistributionEntry.id, DistributionEntry.id, after=after,
                       limit=limit, desc=True)
    return [{"id": e.id, "household_id": e.household_id, "individual_id": e.individual_id, "recipient": name or "",
             "cnic": cnic_rules.mask(cnic), "list_ref": e.list_ref, "item": e.item, "quantity": e.quantity,
             "amount": float(e.amount) if e.amount is not None else None, "token": e.token,
             "handed_over_at": _stamp(e.handed_over_at), "handed_over_by": e.handed_over_by or "",
             "received_by": e.received_by, "evidence": e.evidence or "", "submission_id": e.submission_id}
            for e, name, cnic in rows]


def count_entries(session: Session, site_id: int, *, handed: bool | None = None) -> int:
    return _count(session, select(DistributionEntry).where(*_entry_filter(site_id, handed)), DistributionEntry)


__all__ = ["STATUSES", "JOBS", "ReviewError", "list_submissions", "count_submissions", "submission_row",
           "submission_values", "masked_values", "review", "list_assignments", "count_assignments", "list_devices",
           "count_devices", "list_sites", "count_sites", "list_entries", "count_entries"]
