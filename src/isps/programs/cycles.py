"""Cycles and entitlements: what each enrolled household or person is owed in a period.

A cycle (monthly, quarterly, per semester, or once) is opened per program; its entitlements are
computed set-based from the enrolments and the program's amount rule (fixed, per member, by the
sex of the child as in Nashonuma: Rs 2,000 for a mother or a boy, Rs 2,500 for a girl; top-ups).
Conditions of conditional transfers are recorded per cycle (school attendance, health visits);
an unmet condition brings a warning, a second one a suspension. While a cycle is a draft its
entitlements can be recomputed; once a second person approves it they are frozen: the policy
used is kept with the cycle and a checksum of the entitlements lets anyone reproduce them.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from isps.programs import enrolment
from isps.programs.models import BenefitCycle, ComplianceRecord, Entitlement
from isps.registry import current

MONTHS = {"monthly": 1, "quarterly": 3, "semester": 6, "once": 1}
CONDITIONS = ("school_attendance", "health_visit")
ATTENDANCE_MIN = 0.7  # Taleemi Wazaif: 70% attendance in the quarter


class CycleError(ValueError):
    """A request the cycle rules refuse; the message is safe to show."""


class CycleNotFound(CycleError):
    """The cycle asked for does not exist."""


class CycleConflict(CycleError):
    """A step the cycle's state or maker-checker refuses (its maker approving, approved already):
    doors answer it as a conflict (409), not as bad input."""


class OutOfScope(enrolment.OutOfScope, CycleError):
    """A record names an enrolment outside the officer's district."""


def _add_months(d: date, n: int) -> date:
    m = d.month - 1 + n
    return date(d.year + m // 12, m % 12 + 1, 1)


def period_of(frequency: str, starts_on: date) -> tuple[str, date, date]:
    start = date(starts_on.year, starts_on.month, 1)
    months = MONTHS.get(frequency, 1)
    if frequency == "quarterly":
        start = date(start.year, 3 * ((start.month - 1) // 3) + 1, 1)
        label = f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    elif frequency == "semester":
        start = date(start.year, 1 if start.month <= 6 else 7, 1)
        label = f"{start.year}-S{1 if start.month <= 6 else 2}"
    else:
        label = f"{start.year}-{start.month:02d}"
    end = date.fromordinal(_add_months(start, months).toordinal() - 1)
    return label, start, end


def open_cycle(session: Session, code: str, starts_on: date, actor: str) -> BenefitCycle:
    """The program's cycle containing ``starts_on``, opened as a draft if it does not exist."""
    pol = enrolment.policy(session, code)
    label, start, end = period_of(pol.frequency, starts_on)
    row = session.scalar(select(BenefitCycle).where(BenefitCycle.program_code == code, BenefitCycle.period == label))
    if row is None:
        row = BenefitCycle(program_code=code, period=label, starts_on=start, ends_on=end, status="draft",
                           created_by=actor, entitlements=0, total=0)
        session.add(row)
        session.flush()
    return row


def _amount_sql(spec: dict, unit: str) -> tuple[str, str, dict]:
    """(base amount SQL, top-up SQL, params) over ``enrolment e`` joined to ``individual i`` (the member)."""
    amount = spec.get("amount", {"kind": "fixed", "amount": 0})
    kind = amount.get("kind", "fixed")
    params: dict = {}
    if kind == "fixed":
        base = ":amt"
        params["amt"] = float(amount["amount"])
    elif kind == "per_member":
        params["amt"] = float(amount["amount"])
        params["maxm"] = int(amount.get("max_members", 99))
        child = " AND m.date_of_birth > :child_dob" if amount.get("per_member_of") == "children" else ""
        base = (f"(:amt * MIN_OF((SELECT COUNT(*) FROM individual m WHERE m.household_id = e.household_id "
                f"AND {current.sql('m')}{child}), :maxm))")
    elif kind == "by_sex":
        if unit != "member":
            raise CycleError("an amount by the sex of the child needs a member program")
        params.update(mother=float(amount["mother"]), boy=float(amount["boy"]), girl=float(amount["girl"]))
        base = ("CASE WHEN i.sex = 'female' AND i.date_of_birth <= :mother_dob THEN :mother "
                "WHEN i.sex = 'female' THEN :girl ELSE :boy END")
    else:
        raise CycleError(f"unknown amount rule '{kind}'")
    tops = []
    for k, t in enumerate(spec.get("top_ups", [])):
        if t.get("when") not in ("female", "disabled"):
            raise CycleError("a top-up applies 'when' female or disabled")
        params[f"top{k}"] = float(t["amount"])
        tops.append(f"CASE WHEN e.{t['when']} = :yes THEN :top{k} ELSE 0 END")
    return base, (" + ".join(tops) or "0"), params


def generate_entitlements(session: Session, cycle_id: int) -> dict:
    """(Re)compute a draft cycle's entitlements, set-based: one per enrolment active (not suspended)."""
    cycle = session.get(BenefitCycle, cycle_id, with_for_update=True)
    if cycle is None:
        raise CycleNotFound(f"there is no cycle {cycle_id}")
    if cycle.status != "draft":
        raise CycleError(f"cycle {cycle.program_code} {cycle.period} is {cycle.status}: its entitlements are frozen")
    pol = enrolment.policy(session, cycle.program_code)
    base, top, params = _amount_sql(pol.spec, pol.unit)
    on = cycle.starts_on
    params.update(cycle=cycle.id, code=cycle.program_code, yes=True,
                  mother_dob=date(on.year - 12, on.month, 1), child_dob=date(on.year - 18, on.month, 1))
    dialect = session.bind.dialect.name
    base = base.replace("MIN_OF", "MIN" if dialect == "sqlite" else "LEAST")
    session.execute(text("DELETE FROM entitlement WHERE cycle_id = :cycle"), {"cycle": cycle.id})
    member_join = "LEFT JOIN individual i ON i.id = e.individual_id"
    session.execute(text(f"""INSERT INTO entitlement (cycle_id, enrolment_id, program_code, household_id, district_id,
                                                      base_amount, top_up, amount)
        SELECT :cycle, e.id, e.program_code, e.household_id, e.district_id, b.base, b.top, b.base + b.top
        FROM (SELECT e.id AS id, {base} AS base, {top} AS top FROM enrolment e {member_join}
              WHERE e.program_code = :code AND e.status = 'enrolled' AND e.enrolled_on <= :ends) b
        JOIN enrolment e ON e.id = b.id"""), {**params, "ends": cycle.ends_on})
    if session.bind.dialect.name == "postgresql":
        # a cycle adds up to millions of rows at once: without fresh statistics the planner takes the
        # new cycle for a few thousand rows and the payroll's joins become nested loops over a million
        session.execute(text("ANALYZE entitlement"))
    n, total = session.execute(text("SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM entitlement WHERE cycle_id = :c"),
                               {"c": cycle.id}).one()
    cycle.entitlements, cycle.total = int(n), float(total)
    cycle.policy_snapshot = {"unit": pol.unit, "frequency": pol.frequency, "spec": pol.spec}
    session.flush()
    return {"cycle_id": cycle.id, "entitlements": int(n), "total": float(total)}


def checksum(session: Session, cycle_id: int) -> str:
    """SHA-256 over (enrolment, amount) in enrolment order: the fingerprint of a cycle's entitlements."""
    h = hashlib.sha256()
    rows = session.execute(text("SELECT enrolment_id, amount FROM entitlement WHERE cycle_id = :c ORDER BY enrolment_id"),
                           {"c": cycle_id})
    for part in rows.partitions(50_000):
        h.update("".join(f"{e}:{a:.2f}\n" for e, a in part).encode())
    return h.hexdigest()


def approve_cycle(session: Session, cycle_id: int, approver: str) -> BenefitCycle:
    """A second person approves a draft cycle; its entitlements are frozen from then on.
    An atomic compare-and-set, so two approvers at once cannot both approve."""
    cycle = session.get(BenefitCycle, cycle_id)
    if cycle is None:
        raise CycleNotFound(f"there is no cycle {cycle_id}")
    if cycle.created_by == approver:
        raise CycleConflict(f"a second person must approve: {approver} opened this cycle")
    digest = checksum(session, cycle_id)
    res = session.execute(text("""UPDATE benefit_cycle SET status = 'approved', approved_by = :a, approved_at = :t,
        checksum = :d WHERE id = :c AND status = 'draft' AND created_by <> :a"""),
                          {"a": approver, "t": datetime.now(), "d": digest, "c": cycle_id})
    if res.rowcount != 1:
        session.refresh(cycle)
        raise CycleConflict(f"cycle {cycle.period} is {cycle.status} (approved by {cycle.approved_by}); "
                         "only a draft can be approved")
    session.refresh(cycle)
    return cycle


def verify_cycle(session: Session, cycle_id: int) -> bool:
    """True when the stored entitlements still match the checksum taken at approval."""
    cycle = session.get(BenefitCycle, cycle_id)
    return cycle is not None and cycle.checksum is not None and checksum(session, cycle_id) == cycle.checksum


# ---------------------------------------------------------------- conditions

def _check_records(records: list, allowed: list[str]) -> tuple[list[dict], list[str]]:
    """The request's records as rows, and a message per bad field (``record <n>: ...``, from 1)."""
    rows, problems = [], []
    for n, r in enumerate(records, 1):
        if not isinstance(r, dict):
            problems.append(f"record {n}: expected an object with enrolment_id, condition and met or value")
            continue
        bad = len(problems)
        eid = r.get("enrolment_id")
        if eid is None:
            problems.append(f"record {n}: 'enrolment_id' is missing")
        elif isinstance(eid, bool) or not isinstance(eid, int) and not (isinstance(eid, str) and eid.isdigit()):
            problems.append(f"record {n}: 'enrolment_id' must be a whole number, not {eid!r}")
        cond = r.get("condition")
        if cond is None:
            problems.append(f"record {n}: 'condition' is missing")
        elif cond not in CONDITIONS:
            problems.append(f"record {n}: 'condition' '{cond}' is unknown; known: {', '.join(CONDITIONS)}")
        elif cond not in allowed:
            problems.append(f"record {n}: 'condition' '{cond}' is not a condition of this program"
                            + (f" (it has: {', '.join(allowed)})" if allowed else " (it has none)"))
        value, met = r.get("value"), r.get("met")
        if "met" in r and met is not None:
            if not isinstance(met, bool):
                problems.append(f"record {n}: 'met' must be true or false, not {met!r}")
        elif value is None:
            problems.append(f"record {n}: 'met' or 'value' is required")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= float(value) <= 1:
            problems.append(f"record {n}: 'value' must be a share of attendance between 0 and 1, not {value!r}")
        if len(problems) == bad:
            rows.append({"n": n, "enrolment_id": int(eid), "condition": cond,
                         "met": bool(met) if isinstance(met, bool) else float(value) >= ATTENDANCE_MIN,
                         "value": None if value is None else float(value)})
    return rows, problems


def _refuse(problems: list[str], error: type[CycleError]) -> None:
    if problems:
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise error(f"{len(problems)} problem(s) in the records, nothing was recorded: " + "; ".join(problems[:20]) + more)


def record_compliance(session: Session, cycle_id: int, records: list[dict], actor: str,
                      on: date | None = None, district_scope: int | None = None) -> dict:
    """Record whether conditions were met (``enrolment_id``, ``condition``, ``met`` or ``value``) and
    apply the consequences: a first unmet condition is a warning, a second a suspension. Recording
    the same condition for the same cycle twice changes nothing.

    All or nothing: every record is checked first (the field, the condition being one of the
    program's, the enrolment being on the cycle's program and, for a district officer, in their
    district) and one bad record refuses the whole request, naming each bad record and field."""
    on = on or date.today()
    cycle = session.get(BenefitCycle, cycle_id)
    if cycle is None:
        raise CycleNotFound(f"there is no cycle {cycle_id}")
    if not isinstance(records, list):
        raise CycleError("'records' must be a list")
    pol = enrolment.policy(session, cycle.program_code)
    rows, problems = _check_records(records, list(pol.spec.get("conditions", [])))
    _refuse(problems, CycleError)
    if not rows:
        return {"recorded": 0, "warnings": 0, "suspensions": 0}
    # the enrolments named, read in a few set-based lookups (not one per record)
    ids = sorted({r["enrolment_id"] for r in rows})
    found: dict[int, tuple[str, int]] = {}
    lookup = text("SELECT id, program_code, district_id FROM enrolment WHERE id IN :ids").bindparams(
        bindparam("ids", expanding=True))
    for k in range(0, len(ids), 500):
        found.update({i: (c, d) for i, c, d in session.execute(lookup, {"ids": ids[k:k + 500]})})
    outside = [f"record {r['n']}: enrolment {r['enrolment_id']} is outside your district" for r in rows
               if r["enrolment_id"] in found and district_scope is not None
               and found[r["enrolment_id"]][1] != district_scope]
    _refuse(outside, OutOfScope)
    for r in rows:
        e = found.get(r["enrolment_id"])
        if e is None:
            problems.append(f"record {r['n']}: 'enrolment_id' {r['enrolment_id']} does not exist")
        elif e[0] != cycle.program_code:
            problems.append(f"record {r['n']}: 'enrolment_id' {r['enrolment_id']} is on program '{e[0]}', "
                            f"not on this cycle's program '{cycle.program_code}'")
    _refuse(problems, CycleError)
    rows = [{"enrolment_id": r["enrolment_id"], "cycle_id": cycle.id, "condition": r["condition"], "met": r["met"],
             "value": r["value"], "recorded_by": actor} for r in rows]
    mark = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM compliance_record")).scalar_one()
    session.execute(text("""INSERT INTO compliance_record (enrolment_id, cycle_id, condition, met, value, recorded_by)
        VALUES (:enrolment_id, :cycle_id, :condition, :met, :value, :recorded_by) ON CONFLICT DO NOTHING"""), rows)
    new = "SELECT enrolment_id FROM compliance_record WHERE id > :mark AND met = :no"
    p = {"mark": mark, "no": False, "on": on, "actor": actor}
    session.execute(text(f"UPDATE enrolment SET warnings = warnings + 1 WHERE id IN ({new}) AND status = 'enrolled'"), p)
    session.execute(text("""UPDATE compliance_record SET consequence = CASE WHEN
            (SELECT warnings FROM enrolment e WHERE e.id = compliance_record.enrolment_id) >= 2
            THEN 'suspension' ELSE 'warning' END WHERE id > :mark AND met = :no"""), p)
    suspend = f"SELECT id FROM enrolment WHERE id IN ({new}) AND status = 'enrolled' AND warnings >= 2"
    session.execute(text(f"""INSERT INTO enrolment_event (enrolment_id, program_code, status, reason, actor, on_date)
        SELECT id, program_code, 'suspended', 'conditions not met twice', :actor, :on FROM enrolment
        WHERE id IN ({suspend})"""), p)
    suspended = session.execute(text(f"""UPDATE enrolment SET status = 'suspended', reason = 'conditions not met twice'
        WHERE id IN ({suspend})"""), p).rowcount
    warned = session.execute(text("SELECT COUNT(*) FROM compliance_record WHERE id > :mark AND consequence = 'warning'"),
                             p).scalar_one()
    recorded = session.execute(text("SELECT COUNT(*) FROM compliance_record WHERE id > :mark"), p).scalar_one()
    return {"recorded": int(recorded), "warnings": int(warned), "suspensions": int(suspended or 0)}


def cycles(session: Session, code: str) -> list[dict]:
    rows = session.scalars(select(BenefitCycle).where(BenefitCycle.program_code == code)
                           .order_by(BenefitCycle.starts_on.desc()))
    return [{"id": c.id, "program": c.program_code, "period": c.period, "starts_on": c.starts_on.isoformat(),
             "ends_on": c.ends_on.isoformat(), "status": c.status, "entitlements": c.entitlements, "total": c.total,
             "created_by": c.created_by, "approved_by": c.approved_by, "checksum": c.checksum} for c in rows]


def entitlements_of(session: Session, cycle_id: int, limit: int = 100) -> list[dict]:
    rows = session.scalars(select(Entitlement).where(Entitlement.cycle_id == cycle_id).order_by(Entitlement.id)
                           .limit(limit))
    return [{"id": r.id, "enrolment_id": r.enrolment_id, "household_id": r.household_id, "base": r.base_amount,
             "top_up": r.top_up, "amount": r.amount} for r in rows]


__all__ = ["CycleError", "CycleNotFound", "OutOfScope", "open_cycle", "generate_entitlements", "approve_cycle", "verify_cycle", "checksum",
           "record_compliance", "cycles", "entitlements_of", "period_of", "ComplianceRecord"]
