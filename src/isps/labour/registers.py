"""Putting one person on a register at a counter or booth (a daily wager, a shopkeeper, a laid-off
worker): the registry person found by CNIC within the user's district, the register row, the
``labour_person`` row, and the labour status the register implies written to the registry."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.labour import status as status_writer
from isps.labour.models import LabourWorker
from isps.labour.status import LabourError
from isps.labour.vocab import REGISTERS, STATUS_OF_REGISTER
from isps.registry.models import Individual


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
