"""Change requests (maker-checker) and re-certification.

*Change requests.* An operator, or a citizen through an operator or the self-service channel, asks
for a change to a household or a person, with evidence (a description and a reference to the
scanned document). Nothing changes until a second person approves; the change then goes through
:mod:`isps.registry.service` with source ``operator`` or ``self_report``, the request's effective
date and ``change request <id>`` as its source reference, so it is in the household's history and
its events re-score the household. The declared source precedence holds here too: a field whose
current value came from a source of higher precedence (a self-reported date of birth against
NADRA's) is not changed; a ``source_conflict`` is recorded for operators instead.

*Re-certification.* Households whose data were last verified (``Household.verified_on``: a survey
visit or an operator's verified edit) more than a set period ago (default three years) are due
for re-certification: :func:`recertification_due` lists them, :func:`flag_recertification`
records the flags set-based.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Date, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from isps.registry import cnic as cnic_rules
from isps.registry import service
from isps.registry.fields import (DATE_OF_DEATH, HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS, check_death,
                                  check_effective_date, check_value)
from isps.registry.models import Household, IngestBatch, Individual, ValueChange
from isps.interop.models import ChangeRequest, ExclusionFlag, RecertificationFlag, SourceConflict
from isps.registry import events

REQUEST_SOURCES = ("operator", "self_report")
# recorded when a request is approved or rejected, for the modules above that wait on it (a One
# Window change application is disposed by citizen.applications.process_events)
CHANGE_DECIDED = "change_request.decided"
# An appeal against an administrative exclusion is a change request on the person with the change
# ``{"exclusion:<reason>": "lifted"}`` (e.g. ``exclusion:public_sector_employee``) and its evidence
# (a retirement order, a relieving letter): once a second person approves, the flag is lifted
# (``exclusion_flag.active`` false, the request named in its detail) and the household re-assessed.
APPEAL = "exclusion:"
LIFTED = "lifted"
DEFAULT_RECERTIFY_DAYS = 3 * 365
MAX_RECERTIFY_DAYS = 36_500


class ChangeRequestError(ValueError):
    """A request that cannot be made or decided; the message is fit to show to the user."""


def _cutoff(on: date | None, older_than_days: int) -> date:
    """The verification date before which a household is due; the period must be a sane number of days."""
    if not 1 <= older_than_days <= MAX_RECERTIFY_DAYS:
        raise ChangeRequestError(f"older_than_days must be a number of days from 1 to {MAX_RECERTIFY_DAYS:,}, "
                                 f"not {older_than_days}")
    return (on or date.today()) - timedelta(days=older_than_days)


class SamePersonError(ChangeRequestError):
    """Maker-checker: the person who asked for a change cannot approve it."""


def _target(session: Session, entity: str, entity_id: int, district_scope: int | None):
    if entity == "household":
        record = service.get_household(session, entity_id, district_scope)
        if record is None:
            raise ChangeRequestError(f"household {entity_id} does not exist")
        return record, record.id
    if entity == "individual":
        record = session.get(Individual, entity_id)
        if record is None:
            raise ChangeRequestError(f"individual {entity_id} does not exist")
        if district_scope is not None and record.district_id != district_scope:
            raise service.OutOfScope(f"individual {entity_id} is outside your district")
        return record, record.household_id
    raise ChangeRequestError("a change request is about a household or an individual")


def _check(entity: str, changes: dict, record) -> None:
    """The field rules of registry.fields, at the maker's step: a request the registry would refuse
    is refused now, not left pending for a checker to find it cannot be applied."""
    if not changes:
        raise ChangeRequestError("a change request names at least one field")
    fields_ = HOUSEHOLD_FIELDS if entity == "household" else INDIVIDUAL_FIELDS
    parsed = {}
    for name, raw in changes.items():
        if entity == "individual" and name == "cnic":
            continue  # checked by registry.service when applied (CNIC rules against the person's sex)
        spec = DATE_OF_DEATH if entity == "individual" and name == "date_of_death" else fields_.get(name)
        if spec is None:
            raise ChangeRequestError(f"'{name}' is not a field of a {entity} that can be changed")
        try:
            parsed[name] = check_value(spec, raw)
        except ValueError as exc:
            raise ChangeRequestError(str(exc)) from None
    if entity == "individual":
        try:
            check_death(parsed.get("date_of_death", record.date_of_death),
                        parsed.get("date_of_birth", record.date_of_birth))
        except ValueError as exc:
            raise ChangeRequestError(f"individual {record.id}: {exc}") from None


def _check_appeals(session: Session, entity: str, record, appeals: dict) -> None:
    """An appeal names an active exclusion of this person and asks for it to be lifted."""
    for name, value in appeals.items():
        reason = name[len(APPEAL):]
        if entity != "individual":
            raise ChangeRequestError(f"an exclusion is a person's: appeal '{reason}' on the individual, "
                                     "not the household")
        if value != LIFTED:
            raise ChangeRequestError(f"an appeal against the exclusion '{reason}' asks for it to be '{LIFTED}'")
        active = session.execute(select(ExclusionFlag.active).where(ExclusionFlag.individual_id == record.id,
                                                                    ExclusionFlag.reason == reason)).scalar()
        if not active:
            raise ChangeRequestError(f"individual {record.id} has no active exclusion '{reason}' to appeal")


def _lift(session: Session, row: ChangeRequest, name: str, household_id: int, approver: str) -> None:
    reason = name[len(APPEAL):]
    session.execute(update(ExclusionFlag).where(ExclusionFlag.individual_id == row.entity_id,
                                                ExclusionFlag.reason == reason)
                    .values(active=False, detail=func.substr(ExclusionFlag.detail + f" (lifted by change request "
                                                             f"{row.id}, approved by {approver})", 1, 200)))
    events.record(session, events.MEMBER_CHANGED, "household", household_id,
                  {"individual_id": row.entity_id, "exclusion_lifted": reason, "change_request": row.id})


def request_change(session: Session, *, entity: str, entity_id: int, changes: dict, source: str, evidence: str,
                   requested_by: str, evidence_ref: str | None = None, effective_date: date | None = None,
                   district_scope: int | None = None) -> ChangeRequest:
    """Record a pending change request (the maker's step)."""
    if source not in REQUEST_SOURCES:
        raise ChangeRequestError(f"source must be one of {', '.join(REQUEST_SOURCES)}")
    if not evidence or not evidence.strip():
        raise ChangeRequestError("a change request needs its evidence (what supports it)")
    if not requested_by:
        raise ChangeRequestError("a change request needs the person asking for it")
    record, household_id = _target(session, entity, entity_id, district_scope)
    appeals = {k: v for k, v in changes.items() if k.startswith(APPEAL)}
    _check_appeals(session, entity, record, appeals)
    if len(appeals) < len(changes) or not changes:
        _check(entity, {k: v for k, v in changes.items() if k not in appeals}, record)
    if effective_date is not None:
        try:
            check_effective_date(effective_date)
        except ValueError as exc:
            raise ChangeRequestError(str(exc)) from None
    row = ChangeRequest(entity=entity, entity_id=entity_id, household_id=household_id, district_id=record.district_id,
                        changes={k: (None if v is None else str(v)) for k, v in changes.items()}, source=source,
                        evidence=evidence.strip(), evidence_ref=evidence_ref, effective_date=effective_date or date.today(),
                        requested_by=requested_by, status="pending")
    session.add(row)
    session.flush()
    return row


# ---------------------------------------------------------------- household membership (One Window)

# A member added to or removed from an existing household is a change request of its own kind: the
# request's ``changes`` hold one key, the kind, whose value is what the maker asked for (the new
# member's fields; the reason, date and destination of a removal). The checker's approval applies it
# through registry.service.add_member / remove_member.
MEMBER_ADD = "member.add"
MEMBER_REMOVE = "member.remove"
MEMBER_KINDS = (MEMBER_ADD, MEMBER_REMOVE)


def kind_of(changes: dict) -> str:
    """``member.add``, ``member.remove``, ``appeal`` (an exclusion lifted) or ``fields`` (field changes)."""
    for kind in MEMBER_KINDS:
        if kind in changes:
            return kind
    return "appeal" if any(k.startswith(APPEAL) for k in changes) else "fields"


def _asked(source: str, evidence: str, requested_by: str, effective_date: date | None) -> date:
    if source not in REQUEST_SOURCES:
        raise ChangeRequestError(f"source must be one of {', '.join(REQUEST_SOURCES)}")
    if not evidence or not evidence.strip():
        raise ChangeRequestError("evidence: a change request needs its evidence (what supports it)")
    if not requested_by:
        raise ChangeRequestError("a change request needs the person asking for it")
    when = effective_date or date.today()
    try:
        check_effective_date(when)
    except ValueError as exc:
        raise ChangeRequestError(str(exc)) from None
    return when


def request_member_add(session: Session, *, household_id: int, member: dict, source: str, evidence: str,
                       requested_by: str, evidence_ref: str | None = None, effective_date: date | None = None,
                       district_scope: int | None = None) -> ChangeRequest:
    """Ask for a person to join a registered household (the maker's step): the member's fields are
    checked now against the registry's rules, applied when a second person approves."""
    when = _asked(source, evidence, requested_by, effective_date)
    household = service.get_household(session, household_id, district_scope)
    if household is None:
        raise ChangeRequestError(f"household {household_id} does not exist")
    clean = {k: str(v).strip() for k, v in member.items() if v is not None and str(v).strip()}
    try:
        values = service.check_member(session, household, clean)
        if values.get("cnic"):
            service._one_living_holder(session, None, values["cnic"], f"household {household_id}: new member: cnic")
    except service.RegistryError as exc:
        raise ChangeRequestError(str(exc)) from None
    if values["date_of_birth"] > when:
        raise ChangeRequestError(f"household {household_id}: new member: date_of_birth is after the effective date")
    if values.get("cnic"):
        clean["cnic"] = values["cnic"]
    row = ChangeRequest(entity="household", entity_id=household.id, household_id=household.id,
                        district_id=household.district_id, changes={MEMBER_ADD: clean}, source=source,
                        evidence=evidence.strip(), evidence_ref=evidence_ref, effective_date=when,
                        requested_by=requested_by, status="pending")
    session.add(row)
    session.flush()
    return row


def request_member_remove(session: Session, *, individual_id: int, reason: str, source: str, evidence: str,
                          requested_by: str, detail: str | None = None, to_household: int | None = None,
                          relation: str | None = None, evidence_ref: str | None = None,
                          effective_date: date | None = None, district_scope: int | None = None) -> ChangeRequest:
    """Ask for a person to stop being a current member (died, moved to another household, left,
    entered in error): checked now as far as it can be, applied when a second person approves."""
    when = _asked(source, evidence, requested_by, effective_date)
    person, household_id = _target(session, "individual", individual_id, district_scope)
    label = f"individual {individual_id}"
    if reason not in service.REMOVAL_REASONS:
        raise ChangeRequestError(f"{label}: reason must be one of {', '.join(service.REMOVAL_REASONS)}")
    if person.date_of_death is not None or person.left_on is not None:
        raise ChangeRequestError(f"{label}: is no longer a current member of household {household_id}")
    if when < person.member_since:
        raise ChangeRequestError(f"{label}: effective_date {when.isoformat()} is before the person joined the "
                                 f"household ({person.member_since.isoformat()})")
    if reason == "died":
        try:
            check_death(when, person.date_of_birth)
        except ValueError as exc:
            raise ChangeRequestError(f"{label}: {exc}") from None
    asked = {"reason": reason}
    if reason == "left":
        if detail not in service.LEFT_DETAILS:
            raise ChangeRequestError(f"{label}: detail must be one of {', '.join(service.LEFT_DETAILS)} "
                                     "when the reason is left")
        asked["detail"] = detail
    if reason == "moved_to_household":
        if to_household is None:
            raise ChangeRequestError(f"{label}: to_household is required when the reason is moved_to_household")
        target = service.get_household(session, to_household, district_scope)
        if target is None:
            raise ChangeRequestError(f"{label}: to_household {to_household} does not exist")
        if target.id == household_id:
            raise ChangeRequestError(f"{label}: to_household {to_household} is the household the person is in")
        try:
            asked["relation"] = check_value(INDIVIDUAL_FIELDS["relation_to_head"], relation or "other")
        except ValueError as exc:
            raise ChangeRequestError(f"{label}: {exc}") from None
        asked["to_household"] = str(target.id)
    if any(MEMBER_REMOVE in (c or {}) for c in session.scalars(
            select(ChangeRequest.changes).where(ChangeRequest.entity == "individual",
                                                ChangeRequest.entity_id == individual_id,
                                                ChangeRequest.status == "pending"))):
        raise ChangeRequestError(f"{label}: a removal is already waiting for a second person")
    row = ChangeRequest(entity="individual", entity_id=person.id, household_id=household_id,
                        district_id=person.district_id, changes={MEMBER_REMOVE: asked}, source=source,
                        evidence=evidence.strip(), evidence_ref=evidence_ref, effective_date=when,
                        requested_by=requested_by, status="pending")
    session.add(row)
    session.flush()
    return row


def _apply_membership(session: Session, row: ChangeRequest, prov: service.Provenance) -> list[str]:
    if MEMBER_ADD in row.changes:
        person = service.add_member(session, row.entity_id, dict(row.changes[MEMBER_ADD]), prov)
        return [service.MEMBER_ADDED, f"individual {person.id}"]
    asked = row.changes[MEMBER_REMOVE]
    target = asked.get("to_household")
    service.remove_member(session, row.entity_id, asked["reason"], prov, detail=asked.get("detail"),
                          to_household=int(target) if target else None, relation=asked.get("relation"))
    return [service.MEMBER_REMOVED, asked["reason"]]


def _rank(session: Session, field_name: str, source: str) -> tuple[int, bool]:
    rows = dict(session.execute(text("SELECT field || '|' || source, rank FROM source_precedence "
                                     "WHERE field IN (:f, '*') AND source = :s"), {"f": field_name, "s": source}).all())
    declared = session.scalar(text("SELECT COUNT(*) FROM source_precedence WHERE field = :f"), {"f": field_name}) > 0
    if declared:
        return int(rows.get(f"{field_name}|{source}", 0)), True
    return int(rows.get(f"*|{source}", 0)), False


def _current_source(session: Session, entity: str, record, field_name: str) -> tuple[str, date | None]:
    newest = session.execute(select(ValueChange.source, ValueChange.effective_date).where(
        ValueChange.entity == entity, ValueChange.entity_id == record.id, ValueChange.field == field_name)
        .order_by(ValueChange.effective_date.desc(), ValueChange.id.desc()).limit(1)).first()
    if newest is not None:
        return newest[0], newest[1]
    batch = session.get(IngestBatch, record.batch_id)
    return batch.source, (record.surveyed_on if entity == "household" else record.member_since)


def approve_change(session: Session, request_id: int, approver: str, note: str | None = None,
                   district_scope: int | None = None) -> ChangeRequest:
    """A second person approves: the change is applied through registry.service (the checker's step).
    Fields held by a source of higher precedence are not changed; each is recorded as a conflict."""
    row = session.get(ChangeRequest, request_id, with_for_update=True)
    if row is None:
        raise ChangeRequestError(f"no change request {request_id}")
    if district_scope is not None and row.district_id != district_scope:
        raise service.OutOfScope(f"change request {request_id} is outside your district")
    if row.status != "pending":
        raise ChangeRequestError(f"change request {request_id} is {row.status}; only a pending one can be decided")
    if not approver or approver == row.requested_by:
        raise SamePersonError(f"a second person must approve: change request {request_id} was made by "
                              f"{row.requested_by}, who cannot approve it")
    if kind_of(row.changes) in MEMBER_KINDS:
        prov = service.Provenance(row.source, f"{row.requested_by} (approved by {approver})"[:80], row.effective_date,
                                  f"change request {row.id}" + (f": {row.evidence_ref}" if row.evidence_ref else ""))
        row.applied_fields = _apply_membership(session, row, prov)
        row.status, row.decided_by, row.decided_at = "applied", approver, datetime.now()
        row.decision_note = (note or "").strip()[:400] or None
        session.flush()
        return row
    record, household_id = _target(session, row.entity, row.entity_id, None)
    allowed, held, lifted = {}, [], []
    for name, value in row.changes.items():
        if name.startswith(APPEAL):
            _lift(session, row, name, household_id, approver)
            lifted.append(name)
            continue
        mine, declared = _rank(session, name, row.source)
        kept_source, kept_since = _current_source(session, row.entity, record, name)
        theirs, _ = _rank(session, name, kept_source)
        current = service._as_text(getattr(record, name))
        if declared and mine < theirs and current != value:
            held.append(name)
            session.add(SourceConflict(entity=row.entity, entity_id=row.entity_id, household_id=household_id,
                                       district_id=row.district_id, field=name, kept_value=current,
                                       kept_source=kept_source, kept_since=kept_since, offered_value=value,
                                       offered_source=row.source, offered_effective=row.effective_date,
                                       source_ref=f"change request {row.id}", status="open"))
        else:
            allowed[name] = value
    prov = service.Provenance(row.source, f"{row.requested_by} (approved by {approver})", row.effective_date,
                              f"change request {row.id}" + (f": {row.evidence_ref}" if row.evidence_ref else ""))
    applied = []
    if allowed:
        if row.entity == "household":
            applied = service.change_household(session, row.entity_id, allowed, prov)
        else:
            applied = service.change_individual(session, row.entity_id, allowed, prov)
    row.status, row.decided_by, row.decided_at = "applied", approver, datetime.now()
    row.decision_note = ((note or "") + (f" (not changed, held by a source of higher precedence: {', '.join(held)})"
                                         if held else "")).strip()[:400] or None
    row.applied_fields = list(applied) + lifted
    events.record(session, CHANGE_DECIDED, "change_request", row.id, {"status": row.status})
    session.flush()
    return row


def reject_change(session: Session, request_id: int, checker: str, note: str,
                  district_scope: int | None = None) -> ChangeRequest:
    row = session.get(ChangeRequest, request_id, with_for_update=True)
    if row is None:
        raise ChangeRequestError(f"no change request {request_id}")
    if district_scope is not None and row.district_id != district_scope:
        raise service.OutOfScope(f"change request {request_id} is outside your district")
    if row.status != "pending":
        raise ChangeRequestError(f"change request {request_id} is {row.status}; only a pending one can be decided")
    if not checker or checker == row.requested_by:
        raise SamePersonError("a second person must decide a change request")
    if not note:
        raise ChangeRequestError("a rejection needs its reason")
    row.status, row.decided_by, row.decided_at, row.decision_note = "rejected", checker, datetime.now(), note[:400]
    events.record(session, CHANGE_DECIDED, "change_request", row.id, {"status": row.status})
    session.flush()
    return row


def shown(changes: dict) -> dict:
    """A change request's values as a user may see them in a list: CNICs masked (also those of a
    new member)."""
    return {k: (cnic_rules.mask(v) if k == "cnic" and v else shown(v) if isinstance(v, dict) else v)
            for k, v in changes.items()}


def list_change_requests(session: Session, status: str | None = "pending", district_scope: int | None = None,
                         household_id: int | None = None, after: int = 0, limit: int = 100) -> list[ChangeRequest]:
    q = select(ChangeRequest).where(ChangeRequest.id > after)
    if status:
        q = q.where(ChangeRequest.status == status)
    if district_scope is not None:
        q = q.where(ChangeRequest.district_id == district_scope)
    if household_id is not None:
        q = q.where(ChangeRequest.household_id == household_id)
    return list(session.scalars(q.order_by(ChangeRequest.id).limit(limit)))


# ---------------------------------------------------------------- re-certification

@dataclass(frozen=True)
class DueHousehold:
    household_id: int
    ref: str
    district_id: int
    verified_on: date
    days_since: int


def recertification_due(session: Session, older_than_days: int = DEFAULT_RECERTIFY_DAYS,
                        district_scope: int | None = None, *, on: date | None = None, after: int = 0,
                        limit: int | None = 1000, oldest_first: bool = False) -> list[DueHousehold]:
    """Households not verified for more than ``older_than_days`` (default three years) on ``on``
    (default today), in id order, paged by keyset (``after``); or, with ``oldest_first`` (the
    "longest unverified" list an officer works from), the oldest verification first."""
    on = on or date.today()
    cutoff = _cutoff(on, older_than_days)
    q = select(Household.id, Household.ref, Household.district_id, Household.verified_on).where(
        Household.verified_on < cutoff, Household.id > after)
    if district_scope is not None:
        q = q.where(Household.district_id == district_scope)
    q = q.order_by(Household.verified_on, Household.id) if oldest_first else q.order_by(Household.id)
    if limit:
        q = q.limit(limit)
    return [DueHousehold(i, r, d, v, (on - v).days) for i, r, d, v in session.execute(q)]


def count_recertification_due(session: Session, older_than_days: int = DEFAULT_RECERTIFY_DAYS,
                              district_scope: int | None = None, on: date | None = None) -> dict[int, int]:
    """Households due per district."""
    cutoff = _cutoff(on, older_than_days)
    q = select(Household.district_id, func.count()).where(Household.verified_on < cutoff)
    if district_scope is not None:
        q = q.where(Household.district_id == district_scope)
    return dict(session.execute(q.group_by(Household.district_id)).all())


def flag_recertification(session: Session, older_than_days: int = DEFAULT_RECERTIFY_DAYS,
                         on: date | None = None) -> int:
    """Flag every household due (one INSERT ... SELECT), and close the flags of households verified
    since they were flagged. Returns the number of households newly flagged."""
    on = on or date.today()
    cutoff = _cutoff(on, older_than_days)
    session.execute(update(RecertificationFlag).where(
        RecertificationFlag.status == "due",
        RecertificationFlag.household_id.in_(select(Household.id).where(Household.verified_on >= cutoff)))
        .values(status="done"))
    result = session.execute(text(
        "INSERT INTO recertification_flag (household_id, district_id, verified_on, flagged_on, status) "
        "SELECT h.id, h.district_id, h.verified_on, :on, 'due' FROM household h WHERE h.verified_on < :cutoff "
        "ON CONFLICT (household_id) DO UPDATE SET verified_on = excluded.verified_on, "
        "flagged_on = excluded.flagged_on, status = 'due' WHERE recertification_flag.status <> 'due'")
        .bindparams(bindparam("on", type_=Date), bindparam("cutoff", type_=Date)), {"on": on, "cutoff": cutoff})
    return result.rowcount or 0
