"""Graduation and referral: every program has a way out, and a graduate can be enrolled in a second
program suited to their needs (``../shared/DOMAIN.md`` item 10).

Criteria are data in the program's policy (``spec["graduation"]``):

* ``pmt_above``: the household's current PMT score (active model) is above this (no longer poor);
* ``age_above``: the member is older than this many years (a child outgrows Nashonuma or Taleemi
  Wazaif); ``except_mothers`` keeps women of 12 and over (mothers) out of the rule;
* ``cycles``: the enrolment has received this many entitlements (a scholarship of 8 semesters).

``refer_to`` names the program a graduate is referred to (listed there through the one enrolment
path, so the duplication filter applies). Freed places are filled from the waiting list.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import text
from sqlalchemy.orm import Session

from isps.programs import enrolment
from isps.programs.models import Referral
from isps.targeting.pmt import active_model


def _candidates(session: Session, code: str, crit: dict, on: date) -> tuple[str, dict]:
    parts, p = [], {"code": code}
    if "pmt_above" in crit:
        model = active_model(session)
        p.update(pmt=float(crit["pmt_above"]), model=model.id if model else -1)
        parts.append("EXISTS (SELECT 1 FROM pmt_score s WHERE s.household_id = e.household_id "
                     "AND s.model_id = :model AND s.score > :pmt)")
    if "age_above" in crit:
        years = int(crit["age_above"]) + 1
        p["born"] = date(on.year - years, on.month, min(on.day, 28))
        mothers = " AND NOT (i.sex = 'female' AND i.date_of_birth <= :mother)" if crit.get("except_mothers") else ""
        p["mother"] = date(on.year - 12, on.month, min(on.day, 28))
        parts.append(f"EXISTS (SELECT 1 FROM individual i WHERE i.id = e.individual_id AND i.date_of_birth <= :born"
                     f"{mothers})")
    if "cycles" in crit:
        p["cycles"] = int(crit["cycles"])
        parts.append("(SELECT COUNT(*) FROM entitlement t JOIN benefit_cycle c ON c.id = t.cycle_id "
                     "WHERE t.enrolment_id = e.id AND c.status = 'approved') >= :cycles")
    if not parts:
        return "", p
    return (f"SELECT e.id FROM enrolment e WHERE e.program_code = :code AND e.status IN ('enrolled','suspended') "
            f"AND ({' OR '.join(parts)})"), p


def preview(session: Session, code: str, on: date | None = None) -> int:
    crit = enrolment.policy(session, code).spec.get("graduation", {})
    sql, p = _candidates(session, code, crit, on or date.today())
    return int(session.execute(text(f"SELECT COUNT(*) FROM ({sql}) x"), p).scalar_one()) if sql else 0


def graduate(session: Session, code: str, actor: str, on: date | None = None) -> dict:
    """Graduate every enrolment meeting the program's criteria, refer them on, fill the freed places."""
    on = on or date.today()
    crit = enrolment.policy(session, code).spec.get("graduation", {})
    sql, p = _candidates(session, code, crit, on)
    if not sql:
        return {"program": code, "graduated": 0, "referred": 0, "promoted": 0}
    p.update(on=on, actor=actor)
    reason = "met the graduation criteria: " + ", ".join(f"{k} {v}" for k, v in crit.items() if k != "refer_to")
    p["reason"] = reason[:200]
    graduates = [tuple(r) for r in session.execute(text(
        f"SELECT e.household_id, e.individual_id, e.rank_value FROM enrolment e WHERE e.id IN ({sql})"), p)]
    session.execute(text(f"""INSERT INTO enrolment_event (enrolment_id, program_code, status, reason, actor, on_date)
        SELECT id, program_code, 'graduated', :reason, :actor, :on FROM enrolment WHERE id IN ({sql})"""), p)
    n = session.execute(text(f"""UPDATE enrolment SET status = 'graduated', ended_on = :on, reason = :reason
        WHERE id IN ({sql})"""), p).rowcount or 0
    referred = 0
    target = crit.get("refer_to")
    if target:
        for hid, iid, rank in graduates:
            outcome = refer(session, code, target, hid, iid if enrolment.policy(session, target).unit == "member"
                            else 0, f"graduated from {code}", actor, on, rank)
            referred += outcome == "listed"
    promoted = enrolment.fill(session, code, f"places freed by {n} graduations", actor, on) if n else 0
    return {"program": code, "graduated": int(n), "referred": referred, "promoted": promoted}


def refer(session: Session, from_code: str, to_code: str, household_id: int, individual_id: int, reason: str,
          actor: str, on: date | None = None, rank_value: float | None = None) -> str:
    """Refer a household or person to another program: listed there through the one enrolment path.
    Returns the outcome (listed, duplicate, incompatible); a referral is recorded once."""
    on = on or date.today()
    exists = session.execute(text("""SELECT outcome FROM referral WHERE from_program = :f AND to_program = :t
        AND household_id = :h AND individual_id = :i"""), {"f": from_code, "t": to_code, "h": household_id,
                                                           "i": individual_id}).scalar()
    if exists:
        return exists
    outcome, _ = enrolment.enrol_one(session, to_code, household_id, individual_id, actor,
                                     f"referred from {from_code}: {reason}", on, rank_value)
    session.add(Referral(from_program=from_code, to_program=to_code, household_id=household_id,
                         individual_id=individual_id, reason=reason[:200], outcome=outcome, on_date=on))
    session.flush()
    return outcome


__all__ = ["graduate", "refer", "preview"]
