"""Putting one person on a register at a counter or booth (a daily wager, a shopkeeper, a laid-off
worker): the registry person found by CNIC within the user's district, the register row, the
``labour_person`` row, and the labour status the register implies written to the registry; and
taking them off again (:func:`take_off`), kept as history."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.labour import status as status_writer
from isps.labour.models import LabourLeaving, LabourWorker
from isps.labour.status import LabourError, person_for
from isps.labour.vocab import EMPLOYED, LEAVE_REASONS, REGISTERS, REPORTABLE, STATUS_OF_REGISTER
from isps.registry.fields import Field, check_value
from isps.registry.models import Individual

_NOTE = Field("note", "text", max_len=200, words=True)


def enrol(session: Session, person: Individual, register: str, since: date, actor: str, *,
          booth: str | None = None, source_ref: str) -> LabourWorker:
    """Put ``person`` on ``register`` (refused if already there and active) and tell the registry."""
    if register not in REGISTERS:
        raise LabourError(f"register: must be one of {', '.join(REGISTERS)}")
    if since > date.today():
        raise LabourError(f"date: {since.isoformat()} is in the future")
    row = session.scalar(select(LabourWorker).where(LabourWorker.register == register,
                                                    LabourWorker.individual_id == person.id))
    if row is not None and row.active:
        raise LabourError(f"cnic: {person.full_name} is on the {register.replace('_', ' ')} register already "
                          f"(since {row.since.isoformat()})")
    if row is None:
        row = LabourWorker(register=register, individual_id=person.id, household_id=person.household_id,
                           district_id=person.district_id, since=since, booth=booth, source_ref=source_ref[:200],
                           recorded_by=actor, active=True)
        session.add(row)
    else:
        row.active, row.since, row.booth, row.source_ref, row.recorded_by = True, since, booth, source_ref[:200], actor
    session.flush()
    conn = session.connection()
    status = STATUS_OF_REGISTER[register]
    status_writer.note_people(conn, individual_id=[person.id], household_id=[person.household_id],
                              district_id=[person.district_id], status=[status], status_on=[since],
                              source="registration", moves_due=False)
    status_writer.write_status(session, person, status, since, f"{register} {row.id}", f"{register} register", actor)
    return row


def take_off(session: Session, person: Individual, register: str, left_on: date, reason: str, actor: str, *,
             now: str | None = None, note: str = "", shop_id: int | None = None) -> LabourLeaving:
    """Take ``person`` off ``register`` (a wager who left, a laid-off worker who found work, the owner
    of a shop closed): the register row is made inactive, never deleted, and a ``labour_leaving`` row
    keeps when, why and by whom. ``now``, what the person does now if they said (required for
    ``found_work``), is recorded as their quarterly report, so the registry's labour status follows
    through the same door; without it the registry keeps its last known value (leaving a register is
    not news of a job lost or found). Someone on no register any more is owed no reminders."""
    from isps.labour import reports

    if register not in REGISTERS:
        raise LabourError(f"register: must be one of {', '.join(REGISTERS)}")
    if reason not in LEAVE_REASONS:
        raise LabourError(f"reason: must be one of {', '.join(LEAVE_REASONS)}")
    if now is not None and now not in REPORTABLE:
        raise LabourError(f"now: must be one of {', '.join(REPORTABLE)}")
    if reason == "found_work" and now not in EMPLOYED:
        raise LabourError(f"now: say which work {person.full_name} found ({', '.join(EMPLOYED)})")
    if left_on > date.today():
        raise LabourError(f"date: {left_on.isoformat()} is in the future")
    row = session.scalar(select(LabourWorker).where(LabourWorker.register == register,
                                                    LabourWorker.individual_id == person.id))
    if shop_id is None and (row is None or not row.active):
        raise LabourError(f"cnic: {person.full_name} is not on the {register.replace('_', ' ')} register")
    since = row.since if row is not None else left_on
    if left_on < since:
        raise LabourError(f"date: {left_on.isoformat()} is before {person.full_name} was registered "
                          f"({since.isoformat()})")
    note = (note or "").strip()
    if note:
        try:
            note = check_value(_NOTE, note)
        except ValueError as exc:
            raise LabourError(f"note: {exc}") from None
    if row is not None and row.active:
        row.active = False
    leaving = LabourLeaving(register=register, individual_id=person.id, household_id=person.household_id,
                            district_id=person.district_id, worker_id=row.id if row is not None else None,
                            shop_id=shop_id, registered_since=since, left_on=left_on, reason=reason, now_status=now,
                            note=note or None, recorded_by=actor)
    session.add(leaving)
    session.flush()
    if now is not None:
        reports.report_status(session, person.id, now, left_on, actor, "counter")
    return leaving


def on_register(session: Session, register: str, person: Individual) -> LabourWorker | None:
    return session.scalar(select(LabourWorker).where(LabourWorker.register == register,
                                                     LabourWorker.individual_id == person.id,
                                                     LabourWorker.active.is_(True)))


def leavings(session: Session, register: str | None = None, district_id: int | None = None,
             limit: int = 20) -> list[LabourLeaving]:
    """The newest leavings, for the pages' history."""
    q = select(LabourLeaving)
    if register is not None:
        q = q.where(LabourLeaving.register == register)
    if district_id is not None:
        q = q.where(LabourLeaving.district_id == district_id)
    return list(session.scalars(q.order_by(LabourLeaving.id.desc()).limit(limit)))


def take_off_by_cnic(session: Session, register: str, cnic: str, left_on: date, reason: str, actor: str, *,
                     now: str | None = None, note: str = "", district_scope: int | None = None) -> LabourLeaving:
    """:func:`take_off` at a counter or booth: the person found by CNIC within the user's district."""
    if register == "shopkeeper":
        raise LabourError("register: a shopkeeper leaves the register when their shop is closed (by certificate)")
    person = person_for(session, cnic, district_scope)
    return take_off(session, person, register, left_on, reason, actor, now=now, note=note)
