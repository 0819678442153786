"""The quarterly self-report of employment status: what is due when, the reminders owed, and what
a missed report means.

* **Due dates.** Everyone on a labour register has one ``labour_person`` row. A first registration
  makes a report due 13 weeks later (:data:`isps.labour.status.REPORT_EVERY`); each report makes
  the next due 13 weeks after the day it was made. Employers' uploads do not move the schedule:
  they are the employer's word, the report is the worker's.
* **Reminders.** For each due date three reminders are owed: 14 days before, on the day, and 14
  days after if no report has come. :func:`schedule_reminders` writes the ones whose day has come
  to ``labour_reminder`` (one row per person, due date and kind, so running it twice owes nothing
  twice); sending them is the messaging channel's job (another issue), which marks ``sent_at``.
  Someone taken off every register they were on (:func:`isps.labour.registers.take_off`) is owed none.
* **A missed report.** A report not made within 30 days after it was due makes the person's labour
  registry status ``stale`` (:func:`mark_stale`): the labour registry no longer counts them as
  employed (:func:`counts`), the job board and the rotation treat them as not employed, and their
  next report clears it. The registry's own ``labour_status`` is left as last known: silence is not
  news of a lost job, and writing "unemployed" on silence would raise a job-loss shock (and so
  benefits) for anyone who stops answering.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from isps.labour import status as status_writer
from isps.labour.models import LabourPerson, LabourReport
from isps.labour.status import LabourError
from isps.labour.vocab import EMPLOYED, GRACE_DAYS, REMIND_AFTER_DAYS, REMIND_BEFORE_DAYS, REPORTABLE, STALE
from isps.registry.models import Individual

CHANNELS = ("counter", "web", "sms", "ivr")


def report_status(session: Session, individual_id: int, reported: str, reported_on: date, actor: str,
                  channel: str = "counter", district_scope: int | None = None) -> LabourReport:
    """Record a person's quarterly report; the registry's labour status follows (source ``labour``)."""
    person = session.get(LabourPerson, individual_id)
    if person is None or (district_scope is not None and person.district_id != district_scope):
        raise LabourError(f"individual {individual_id}: not on a labour register in your district")
    if reported not in REPORTABLE:
        raise LabourError(f"status: must be one of {', '.join(REPORTABLE)}")
    if channel not in CHANNELS:
        raise LabourError(f"channel: must be one of {', '.join(CHANNELS)}")
    if reported_on > date.today():
        raise LabourError(f"reported_on: {reported_on.isoformat()} is in the future")
    row = LabourReport(individual_id=individual_id, district_id=person.district_id, due_on=person.report_due,
                       reported_on=reported_on, status=reported, channel=channel, recorded_by=actor)
    session.add(row)
    session.flush()
    status_writer.note_people(session.connection(), individual_id=[individual_id],
                              household_id=[person.household_id], district_id=[person.district_id],
                              status=[reported], status_on=[reported_on], source="report", moves_due=True)
    who = session.get(Individual, individual_id)
    status_writer.write_status(session, who, reported, reported_on, f"report {row.id}", "quarterly report", actor)
    session.expire(person)
    return row


def report_by_cnic(session: Session, cnic: str, reported: str, reported_on: date, actor: str,
                   channel: str = "counter", district_scope: int | None = None) -> LabourReport:
    """A report made at a counter: the person found by CNIC within the user's district."""
    person = status_writer.person_for(session, cnic, district_scope)
    return report_status(session, person.id, reported, reported_on, actor, channel, district_scope)


def _shift(column: str, days: int, dialect: str) -> str:
    if dialect == "postgresql":
        return f"({column} + {int(days)})"
    return f"date({column}, '{int(days):+d} days')"


def schedule_reminders(session: Session, on: date) -> int:
    """Owe the reminders whose day has come by ``on`` (see the module docstring); returns how many
    were added. Set-based: one ``INSERT ... SELECT`` per kind."""
    dialect = session.get_bind().dialect.name
    added = 0
    for kind, offset in (("before", -REMIND_BEFORE_DAYS), ("due", 0), ("overdue", REMIND_AFTER_DAYS)):
        result = session.execute(text(f"""
            INSERT INTO labour_reminder (individual_id, due_on, kind, district_id, send_on)
            SELECT p.individual_id, p.report_due, '{kind}', p.district_id, {_shift('p.report_due', offset, dialect)}
            FROM labour_person p
            WHERE p.report_due <= :cut AND p.report_due >= :oldest
              AND EXISTS (SELECT 1 FROM labour_worker w WHERE w.individual_id = p.individual_id AND w.active = :yes)
              AND NOT EXISTS (SELECT 1 FROM labour_reminder r WHERE r.individual_id = p.individual_id
                              AND r.due_on = p.report_due AND r.kind = '{kind}')"""),
            {"cut": on - timedelta(days=offset), "oldest": on - timedelta(days=GRACE_DAYS + 1), "yes": True})
        added += result.rowcount or 0
    return added


def mark_stale(session: Session, on: date) -> int:
    """Make ``stale`` everyone whose report is more than the grace period late; returns how many."""
    result = session.execute(text("""
        UPDATE labour_person SET status = :stale, stale_since = :on
        WHERE report_due < :cut AND status <> :stale"""),
        {"stale": STALE, "on": on, "cut": on - timedelta(days=GRACE_DAYS)})
    return result.rowcount or 0


@dataclass(frozen=True)
class Counts:
    people: int
    employed: int
    unemployed: int
    stale: int
    due_within_14_days: int


def counts(session: Session, on: date, district_id: int | None = None) -> Counts:
    """The labour registry's own count: a stale person is not counted as employed."""
    q = select(LabourPerson.status, LabourPerson.report_due)
    if district_id is not None:
        q = q.where(LabourPerson.district_id == district_id)
    sub = q.subquery()

    def n(cond):
        return func.sum(case((cond, 1), else_=0))

    row = session.execute(select(
        func.count(), n(sub.c.status.in_(EMPLOYED)), n(sub.c.status == "unemployed"), n(sub.c.status == STALE),
        n((sub.c.report_due <= on + timedelta(days=14)) & (sub.c.status != STALE)))).one()
    return Counts(*(int(v or 0) for v in row))


def overdue(session: Session, on: date, district_id: int | None = None, limit: int = 100) -> list[LabourPerson]:
    q = select(LabourPerson).where(LabourPerson.report_due < on)
    if district_id is not None:
        q = q.where(LabourPerson.district_id == district_id)
    return list(session.scalars(q.order_by(LabourPerson.report_due, LabourPerson.individual_id).limit(limit)))


def next_due(session: Session, individual_id: int) -> date | None:
    return session.scalar(select(LabourPerson.report_due).where(LabourPerson.individual_id == individual_id))
