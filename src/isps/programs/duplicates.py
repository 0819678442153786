"""A partner's list that arrives after an enrolment: duplicates it reveals go to an officer.

The enrolment filter (:mod:`isps.programs.enrolment`) keeps off a program anyone already known to
receive a program it cannot be combined with. A list that arrives later (Zakat's next quarter, a
Bait-ul-Mal list) can reveal that someone already enrolled also draws such a benefit. Nothing is
ended by a list (it may be wrong, or the person may choose the other program): the enrolment gets
an ``enrolment_event`` with status ``review``, as a feed's re-assessment does
(:mod:`isps.programs.reassessment`), whose reason names the other program, its agency and the list;
the program's review list shows it and the officer exits the enrolment or keeps it.

:func:`process_events` reads linkage's ``beneficiary.resolved`` events (one per resolution run)
past its own cursor and, per running program (a handful), flags its open enrolments that the lines
of those runs put in conflict, set-based: matched by household where either program is paid per
household, else by the person (the line's person cluster is the enrolled person's, or the line was
linked to the enrolled person's record). ``services.events.drain`` runs it.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from isps.programs.enrolment import _in, conflicts_of, policy
from isps.programs.models import Enrolment
from isps.programs.reassessment import UNDER_REVIEW
from isps.registry import events

CONSUMER = "programs.duplicates"
RESOLVED = "beneficiary.resolved"  # written by linkage.resolve for each resolution run
OPEN = "('waiting','enrolled','suspended')"


def process_events(session: Session, on: date | None = None, actor: str = "system") -> dict:
    """Flag the open enrolments that lines resolved since the cursor show to be duplicate benefits.
    Returns ``{"runs": n, "flagged": n, "programs": {code: n}}``; the cursor moves in the same
    transaction, so running it again flags nothing new."""
    on = on or date.today()
    start = events.cursor(session, CONSUMER)
    upto = events.latest_event_id(session)
    out = {"runs": 0, "flagged": 0, "programs": {}}
    if upto <= start:
        return out
    runs = ("SELECT aggregate_id FROM outbox_event WHERE id > :dp_start AND id <= :dp_upto "
            f"AND topic = '{RESOLVED}'")
    p = {"dp_start": start, "dp_upto": upto, "on": on, "actor": actor}
    out["runs"] = int(session.execute(text(f"SELECT COUNT(*) FROM ({runs}) x"), p).scalar_one())
    if out["runs"]:
        for code in sorted(set(session.scalars(select(Enrolment.program_code).distinct()))):
            n = _flag(session, code, runs, dict(p))
            if n:
                out["programs"][code] = n
                out["flagged"] += n
    events.advance(session, CONSUMER, upto)
    return out


def _flag(session: Session, code: str, runs: str, p: dict) -> int:
    conflicts = conflicts_of(session, code)
    if not conflicts:
        return 0
    unit = policy(session, code).unit
    codes = [c.program for c in conflicts]
    units = dict(session.execute(text(f"SELECT code, unit FROM program WHERE code IN ({_in(p, 'cf', codes)})"),
                                 p).all())
    by_household = codes if unit == "household" else [c for c in codes if units.get(c) == "household"]
    person = "e.recipient_id" if unit == "household" else "e.individual_id"
    p["code"] = code
    lines = (f"SELECT b.* FROM beneficiary b WHERE b.run_id IN ({runs}) "
             f"AND b.program_code IN ({_in(p, 'cf', codes)})")
    found = [f"""SELECT e.id AS enrolment_id, b.id AS line_id FROM enrolment e
                 JOIN person pp ON pp.individual_id = {person}
                 JOIN ({lines}) b ON b.person_id = COALESCE(pp.merged_into, pp.id)
                 WHERE e.program_code = :code AND e.status IN {OPEN}""",
             f"""SELECT e.id, b.id FROM enrolment e JOIN ({lines}) b ON b.individual_id = {person}
                 WHERE e.program_code = :code AND e.status IN {OPEN}"""]
    if by_household:
        found.append(f"""SELECT e.id, b.id FROM enrolment e JOIN ({lines}) b ON b.household_id = e.household_id
                 AND b.program_code IN ({_in(p, 'ch', by_household)})
                 WHERE e.program_code = :code AND e.status IN {OPEN}""")
    first = f"""SELECT y.enrolment_id, y.line_id FROM (SELECT x.enrolment_id, x.line_id,
                    ROW_NUMBER() OVER (PARTITION BY x.enrolment_id ORDER BY x.line_id) AS nth
                FROM ({' UNION ALL '.join(found)}) x) y WHERE y.nth = 1"""
    why = ("SUBSTR('on a partner''s list since enrolment: ' || o.name || ' (' || o.agency || '), line ' "
           "|| b.partner_ref || ' of the list \u201c' || bb.reference || '\u201d from ' || bb.partner, 1, 200)")
    res = session.execute(text(f"""INSERT INTO enrolment_event (enrolment_id, program_code, status, reason, actor,
            on_date)
        SELECT e.id, e.program_code, 'review', {why}, :actor, :on
        FROM ({first}) f JOIN enrolment e ON e.id = f.enrolment_id
        JOIN beneficiary b ON b.id = f.line_id JOIN beneficiary_batch bb ON bb.id = b.batch_id
        JOIN program o ON o.code = b.program_code
        WHERE NOT {UNDER_REVIEW.format(e='e')}"""), p)
    return int(res.rowcount or 0)


__all__ = ["CONSUMER", "RESOLVED", "process_events"]
