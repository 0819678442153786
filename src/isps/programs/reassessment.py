"""Programs act on what the registry learns: eligibility re-assessed after a registry update.

A feed delivery (or an officer's edit) changes households; the re-scoring writes
``household.crossed_cutoff`` where the PMT score moved across the cut-off. :func:`process_events`
reads the registry's events past its own cursor (``programs.reassessment`` in ``outbox_cursor``):
``household.crossed_cutoff``, ``household.changed``, ``member.changed`` and ``member.deceased``.
For each program that is running (a stored enrolment policy, an active eligibility rule and
enrolments) it evaluates the program's rule for the named households only (one eligibility run,
``rules.run(..., households_sql=...)``), and then:

* households (or members) now eligible and not on the program go through the one path in
  (:func:`isps.programs.enrolment._list_and_fill`: the duplicate and incompatibility filter, the
  waiting list, capacity and quotas), with the reason "eligible after registry update";
* enrolments no longer eligible are **not** ended (a wrong feed must not cut anyone off): an
  ``enrolment_event`` with status ``review`` records the failed criteria in plain words (the PMT
  score included), and :func:`reviews` lists them for an officer, who exits the enrolment
  (``enrolment.end``) or keeps it (:func:`clear_review`). A later update that makes it eligible
  again clears the flag itself (status ``cleared``).

Everything is set-based SQL; the loop is over the programs (a handful), never over households.
``services.events.drain`` runs it between the re-scoring and the payments.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from isps.programs.enrolment import (DEFAULT_POLICIES, EnrolmentError, NotFound, _list_and_fill,
                                     open_for_decision)
from isps.programs.models import Enrolment, EnrolmentEvent, EnrolmentPolicy
from isps.registry import events
from isps.registry import current

CONSUMER = "programs.reassessment"
CROSSED_CUTOFF = "household.crossed_cutoff"  # written by interop.feeds.after_delivery
TOPICS = (CROSSED_CUTOFF, events.HOUSEHOLD_CHANGED, events.MEMBER_CHANGED, events.MEMBER_DECEASED)
REASON = "eligible after registry update"
OPEN = "('waiting','enrolled','suspended')"
# an enrolment is under review while its newest review-or-cleared event is a review
UNDER_REVIEW = """EXISTS (SELECT 1 FROM enrolment_event v WHERE v.enrolment_id = {e}.id AND v.status = 'review'
    AND NOT EXISTS (SELECT 1 FROM enrolment_event c WHERE c.enrolment_id = {e}.id AND c.status = 'cleared'
                    AND c.id > v.id))"""


def _running(session: Session) -> list:
    """(rule row, rule) of each program with a stored enrolment policy, an active rule and enrolments:
    a program nobody has enrolled anyone into yet is not started by a feed."""
    from isps.targeting.eligibility import rules

    codes = set(session.scalars(select(EnrolmentPolicy.program_code)))
    enrolling = set(session.scalars(select(Enrolment.program_code).distinct()))
    return [(row, rule) for row, rule in rules.active_rules(session) if row.program_code in codes & enrolling]


def _literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def process_events(session: Session, on: date | None = None, actor: str = "system") -> dict:
    """Re-assess the households named by the registry's events past this consumer's cursor, for every
    running program. Returns counts; the cursor moves in the same transaction."""
    from isps.targeting.eligibility import rules
    from isps.targeting.eligibility.rules import failure_sentences_sql

    on = on or date.today()
    dialect = session.bind.dialect.name
    start = events.cursor(session, CONSUMER)
    upto = events.latest_event_id(session)
    out = {"households": 0, "programs": {}, "listed": 0, "enrolled": 0, "flagged": 0, "cleared": 0}
    if upto <= start:
        return out
    topics = ", ".join(_literal(t) for t in TOPICS)
    named = (f"SELECT aggregate_id FROM outbox_event WHERE id > :ra_start AND id <= :ra_upto "
             f"AND aggregate = 'household' AND topic IN ({topics})")
    p = {"ra_start": start, "ra_upto": upto, "on": on, "actor": actor, "no": False, "yes": True}
    out["households"] = int(session.execute(text(f"SELECT COUNT(DISTINCT aggregate_id) FROM ({named}) x"),
                                            p).scalar_one())
    if out["households"]:
        for row, rule in _running(session):
            code = row.program_code
            run = rules.run(session, row, "reassessment", on, households_sql=named, households_params=p)
            q = {**p, "run": run.id, "code": code}
            # still on the program, alive, and no longer eligible (or no longer a candidate): flag for review
            # (a household benefit: while it has a current member; a member's benefit: while the person lives, so
            # one who left the household alive is flagged for review here, not passed over as the dead are)
            alive = ("((e.individual_id = 0 AND EXISTS (SELECT 1 FROM individual a WHERE a.household_id = e.household_id "
                     f"AND {current.sql('a')})) OR (e.individual_id <> 0 AND EXISTS (SELECT 1 FROM individual a "
                     "WHERE a.id = e.individual_id AND a.date_of_death IS NULL)))")
            decided = f"""FROM enrolment e LEFT JOIN eligibility_result r ON r.run_id = :run
                    AND r.household_id = e.household_id AND r.individual_id = e.individual_id
                WHERE e.program_code = :code AND e.status IN {OPEN} AND e.household_id IN ({named}) AND {alive}"""
            why = (f"SUBSTR('no longer eligible after registry update: ' || CASE WHEN r.household_id IS NULL "
                   "THEN 'no longer among the people the rule considers' "
                   f"ELSE {failure_sentences_sql(rule, dialect)} END, 1, 200)")
            flagged = session.execute(text(f"""INSERT INTO enrolment_event
                    (enrolment_id, program_code, status, reason, actor, on_date)
                SELECT e.id, e.program_code, 'review', {why}, :actor, :on {decided}
                AND (r.household_id IS NULL OR r.eligible = :no) AND NOT {UNDER_REVIEW.format(e='e')}"""), q).rowcount
            cleared = session.execute(text(f"""INSERT INTO enrolment_event
                    (enrolment_id, program_code, status, reason, actor, on_date)
                SELECT e.id, e.program_code, 'cleared', 'eligible again after registry update', :actor, :on
                {decided} AND r.eligible = :yes AND {UNDER_REVIEW.format(e='e')}"""), q).rowcount
            # now eligible and not on the program: the one path in
            res = _list_and_fill(session, code, run.id, actor, on, reason=f"{REASON} (run {run.id})")
            out["programs"][code] = {"run_id": run.id, "evaluated": run.evaluated, "eligible": run.eligible,
                                     "listed": res["listed"], "enrolled": res["enrolled"],
                                     "flagged": int(flagged or 0), "cleared": int(cleared or 0)}
            out["listed"] += res["listed"]
            out["enrolled"] += res["enrolled"]
            out["flagged"] += int(flagged or 0)
            out["cleared"] += int(cleared or 0)
    events.advance(session, CONSUMER, upto)
    return out


# ---------------------------------------------------------------- the review list

def _program_exists(session: Session, code: str) -> None:
    from isps.targeting.eligibility.models import EligibilityRule

    known = (code in DEFAULT_POLICIES or session.get(EnrolmentPolicy, code) is not None
             or session.scalar(select(EligibilityRule.id).where(EligibilityRule.program_code == code).limit(1)))
    if not known:
        raise NotFound(f"there is no program '{code}'")


def reviews(session: Session, code: str, *, district_id: int | None = None, after: int | None = None,
            limit: int = 100) -> list[dict]:
    """Open enrolments of a program flagged for review (no longer eligible after a registry update,
    or nobody left to collect), oldest enrolment first, with the newest flag's reason and date;
    within one district if given. Pages by keyset (``after`` = the last enrolment id)."""
    _program_exists(session, code)
    if not 1 <= limit <= 1000:
        raise EnrolmentError("limit must be between 1 and 1000")
    where, p = "", {"code": code, "limit": limit}
    if district_id is not None:
        where += " AND e.district_id = :d"
        p["d"] = district_id
    if after is not None:
        where += " AND e.id > :after"
        p["after"] = after
    rows = session.execute(text(f"""SELECT e.id, e.household_id, e.individual_id, e.recipient_id, e.district_id,
            e.status, v.reason, v.on_date, v.actor
        FROM enrolment e JOIN enrolment_event v ON v.enrolment_id = e.id
        WHERE e.program_code = :code AND e.status IN {OPEN} {where}
        AND v.id = (SELECT MAX(x.id) FROM enrolment_event x WHERE x.enrolment_id = e.id
                    AND x.status IN ('review', 'cleared'))
        AND v.status = 'review'
        ORDER BY e.id LIMIT :limit"""), p).all()
    return [{"enrolment_id": r.id, "household_id": r.household_id, "individual_id": r.individual_id or None,
             "recipient_id": r.recipient_id, "district_id": r.district_id, "status": r.status, "reason": r.reason,
             "flagged_on": r.on_date.isoformat() if hasattr(r.on_date, "isoformat") else str(r.on_date),
             "flagged_by": r.actor} for r in rows]


def clear_review(session: Session, enrolment_id: int, reason: str, actor: str, on: date | None = None,
                 district_scope: int | None = None) -> dict:
    """An officer checked a flagged enrolment and keeps it: the flag is cleared with their reason.
    (To end it instead, ``enrolment.end(..., 'exited', ...)``.)"""
    e = open_for_decision(session, enrolment_id, reason, district_scope)
    flagged = session.execute(text(f"SELECT {UNDER_REVIEW.format(e='enrolment')} FROM enrolment WHERE id = :i"),
                              {"i": enrolment_id}).scalar()
    if not flagged:
        raise EnrolmentError(f"enrolment {enrolment_id} is not flagged for review")
    session.add(EnrolmentEvent(enrolment_id=e.id, program_code=e.program_code, status="cleared",
                               reason=reason[:200], actor=actor, on_date=on or date.today()))
    session.flush()
    return {"enrolment_id": e.id, "status": e.status, "cleared": True}


__all__ = ["CONSUMER", "TOPICS", "REASON", "process_events", "reviews", "clear_review"]
