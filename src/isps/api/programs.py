"""/api/v1 for enrolment, waiting lists, cycles, graduation, payrolls, status files, the ledger and
pickup slots. Thin: every route calls :mod:`isps.programs` or :mod:`isps.payments`."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from isps.access.service import Principal, audit
from isps.api.deps import DB, require
from isps.api.errors import CONFLICT
from isps.api.params import BODY_CONFIG, MAX_ID, After, Day, Days, Id, Limit, Record
from isps.config import var_dir
from isps.payments import payroll as pr
from isps.payments import pickup
from isps.programs import cycles, enrolment as en, graduation, reassessment

router = APIRouter(prefix="/api/v1", tags=["enrolment and payments"], responses=CONFLICT)  # _guard: 409
Reader = Annotated[Principal, Depends(require("registry.read"))]
Officer = Annotated[Principal, Depends(require("registry.write"))]
Manager = Annotated[Principal, Depends(require("pmt.manage"))]


@contextmanager
def _refusal_audited(session: Session, who: Principal, action: str, entity: str, entity_id: int | None):
    """An officer's action refused (403: outside the district) is audited before the answer."""
    try:
        yield
    except HTTPException as exc:
        if exc.status_code == 403:
            session.rollback()
            audit(session, who, "api", action, entity, entity_id, who.scope, outcome="denied",
                  detail=f"refused: {exc.detail}")
            session.commit()
        raise


def _guard(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except (pr.PaymentConflict, cycles.CycleConflict) as exc:
        raise HTTPException(409, str(exc)) from None
    except en.OutOfScope as exc:
        raise HTTPException(403, str(exc)) from None
    except (en.NotFound, cycles.CycleNotFound) as exc:
        raise HTTPException(404, str(exc)) from None
    except (en.EnrolmentError, cycles.CycleError, pr.PaymentError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None


# ---------------------------------------------------------------- enrolment

@router.get("/programs/{code}/enrolment")
def enrolment_summary(code: str, session: DB, who: Reader) -> dict:
    """Capacity, quotas and how many are enrolled, waiting, suspended, exited, graduated."""
    return _guard(en.summary, session, code)


class Capacity(BaseModel):
    model_config = BODY_CONFIG
    slots: int | None = Field(None, ge=0)
    budget_per_cycle: float | None = Field(None, ge=0, le=1e13)


@router.put("/programs/{code}/capacity")
def set_capacity(code: str, body: Capacity, session: DB, who: Manager) -> dict:
    """More slots or a larger budget enrol the next on the waiting list at once."""
    n = _guard(en.set_capacity, session, code, who.username, slots=body.slots, budget=body.budget_per_cycle)
    audit(session, who, "api", "edit", "program", None, detail=f"{code}: capacity set to {body.slots} slots, budget {body.budget_per_cycle} a cycle; "
                 f"{n} enrolled from the waiting list")
    return {**en.summary(session, code), "promoted": n}


@router.post("/programs/{code}/enrolment/runs/{run_id}", status_code=201)
def enrol_run(code: str, run_id: Id, session: DB, who: Manager, on: Day = None) -> dict:
    """Enrol an eligibility run's eligible decisions through the duplication filter and waiting list."""
    out = _guard(en.enrol_from_run, session, code, run_id, who.username, on)
    audit(session, who, "api", "enrol", "eligibility_run", run_id, detail=f"{code}: {out['enrolled']} enrolled")
    return out


@router.get("/programs/{code}/enrolments")
def enrolments(code: str, session: DB, who: Reader, status: Annotated[str, Query(max_length=20)] = "enrolled",
               after: After = None, limit: Limit(1000) = 100) -> list[dict]:
    """Enrolments of a program in one status (within the user's district). Audited."""
    rows = _guard(en.listing, session, code, status, district_id=who.scope, after=after, limit=limit)
    audit(session, who, "api", "read", "enrolment", district_id=who.scope,
          detail=f"listed {len(rows)} {status} enrolments of {code}" + (f" after {after}" if after else ""))
    return rows


@router.get("/programs/{code}/waiting-list")
def waiting_list(code: str, session: DB, who: Reader, limit: Limit(1000) = 100) -> list[dict]:
    """The waiting list in rank order (PMT ascending unless the policy says otherwise). Audited."""
    rows = _guard(en.listing, session, code, "waiting", district_id=who.scope, limit=limit)
    audit(session, who, "api", "read", "enrolment", district_id=who.scope,
          detail=f"read the waiting list of {code}: {len(rows)} households")
    return rows


@router.get("/enrolments/{enrolment_id}")
def enrolment(enrolment_id: Id, session: DB, who: Reader) -> dict:
    """One enrolment with its history. Audited, a refusal too."""
    try:
        out = en.get(session, enrolment_id, who.scope)
    except en.EnrolmentError as exc:
        refused = isinstance(exc, en.OutOfScope)
        audit(session, who, "api", "read", "enrolment", enrolment_id, district_id=who.scope,
              outcome="denied" if refused else "not_found", detail=str(exc))
        session.commit()  # keep the audit record of the refusal
        raise HTTPException(403 if refused else 404, str(exc)) from None
    audit(session, who, "api", "read", "enrolment", enrolment_id, district_id=out["district_id"])
    return out


# the audit verb of each status an officer may set
STATUS_VERBS = {"exited": "exit", "graduated": "graduate", "suspended": "suspend", "enrolled": "reinstate",
                "deceased": "record"}


class StatusChange(BaseModel):
    status: str = Field(description="exited | graduated | suspended | enrolled (reinstate) | deceased")
    reason: str = Field(min_length=3, max_length=200)
    on: date | None = Field(None, ge=date(1900, 1, 1), le=date(2100, 12, 31))


@router.post("/enrolments/{enrolment_id}/status")
def change_status(enrolment_id: Id, body: StatusChange, session: DB, who: Officer) -> dict:
    """Exit, graduate, suspend or reinstate; a freed place is given to the next on the waiting list."""
    with _refusal_audited(session, who, STATUS_VERBS.get(body.status, "edit"), "enrolment", enrolment_id):
        out = _guard(en.end, session, enrolment_id, body.status, body.reason, who.username, body.on, who.scope)
    audit(session, who, "api", STATUS_VERBS[body.status], "enrolment", enrolment_id, detail=body.reason)
    return out


@router.get("/programs/{code}/reassessment")
def reassessment_list(code: str, session: DB, who: Reader, after: After = None, limit: Limit(1000) = 100) -> list[dict]:
    """Enrolments flagged for review after a registry update (no longer eligible: the failed criteria
    and the PMT score are in ``reason``; or nobody left to collect), within the user's district.
    Nobody is exited by a feed: an officer exits (``/enrolments/{id}/status``) or keeps
    (``/enrolments/{id}/review``). Audited."""
    rows = _guard(reassessment.reviews, session, code, district_id=who.scope, after=after, limit=limit)
    audit(session, who, "api", "read", "enrolment", district_id=who.scope,
          detail=f"read the reassessment list of {code}: {len(rows)} enrolments flagged"
                 + (f" after {after}" if after else ""))
    return rows


class Review(BaseModel):
    reason: str = Field(min_length=3, max_length=200, description="why the enrolment is kept")


@router.post("/enrolments/{enrolment_id}/review")
def keep_after_review(enrolment_id: Id, body: Review, session: DB, who: Officer) -> dict:
    """An officer checked an enrolment flagged for review and keeps it: the flag is cleared."""
    with _refusal_audited(session, who, "keep", "enrolment", enrolment_id):
        out = _guard(reassessment.clear_review, session, enrolment_id, body.reason, who.username,
                     district_scope=who.scope)
    audit(session, who, "api", "keep", "enrolment", enrolment_id, detail=body.reason)
    return out


@router.post("/programs/events")
def process_events(session: DB, who: Manager) -> dict:
    """Act on the registry's member.deceased events since last time (ends enrolments, fills places)."""
    return en.process_events(session, actor=who.username)


@router.post("/programs/{code}/graduation")
def graduate(code: str, session: DB, who: Manager, on: Day = None) -> dict:
    out = _guard(graduation.graduate, session, code, who.username, on)
    audit(session, who, "api", "graduate", "program", None, detail=f"{code}: {out['graduated']} graduated, {out['referred']} referred, "
                 f"{out['promoted']} enrolled from the waiting list")
    return out


# ---------------------------------------------------------------- cycles

class CycleOpen(BaseModel):
    starts_on: date = Field(ge=date(1900, 1, 1), le=date(2100, 12, 31))


@router.get("/programs/{code}/cycles")
def list_cycles(code: str, session: DB, who: Reader) -> list[dict]:
    return cycles.cycles(session, code)


@router.post("/programs/{code}/cycles", status_code=201)
def open_cycle(code: str, body: CycleOpen, session: DB, who: Manager) -> dict:
    c = _guard(cycles.open_cycle, session, code, body.starts_on, who.username)
    return {"id": c.id, "period": c.period, "status": c.status}


@router.post("/cycles/{cycle_id}/entitlements")
def entitlements(cycle_id: Id, session: DB, who: Manager) -> dict:
    return _guard(cycles.generate_entitlements, session, cycle_id)


@router.post("/cycles/{cycle_id}/approve")
def approve_cycle(cycle_id: Id, session: DB, who: Manager) -> dict:
    c = _guard(cycles.approve_cycle, session, cycle_id, who.username)
    audit(session, who, "api", "approve", "benefit_cycle", cycle_id, detail=c.checksum)
    return {"id": c.id, "status": c.status, "approved_by": c.approved_by, "checksum": c.checksum}


class Compliance(BaseModel):
    model_config = BODY_CONFIG
    records: list[Record] = Field(description="[{enrolment_id, condition, met | value}]")


@router.post("/cycles/{cycle_id}/compliance")
def compliance(cycle_id: Id, body: Compliance, session: DB, who: Officer) -> dict:
    """Conditions met or not for enrolments of the cycle's program, all or nothing: a bad record (named by its
    number and field) refuses the request with 422, one outside the user's district with 403."""
    try:
        out = cycles.record_compliance(session, cycle_id, body.records, who.username, district_scope=who.scope)
    except cycles.OutOfScope as exc:
        session.rollback()
        audit(session, who, "api", "record", "benefit_cycle", cycle_id, district_id=who.scope,
              outcome="denied", detail=str(exc))
        session.commit()  # keep the audit record of the refusal, nothing else
        raise HTTPException(403, str(exc)) from None
    except cycles.CycleNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except cycles.CycleError as exc:
        raise HTTPException(422, str(exc)) from None
    audit(session, who, "api", "record", "benefit_cycle", cycle_id, district_id=who.scope,
          detail=f"{len(body.records)} compliance records: {out['recorded']} recorded, {out['warnings']} warnings, "
                 f"{out['suspensions']} suspensions")
    return out


# ---------------------------------------------------------------- payments

@router.post("/cycles/{cycle_id}/payroll", status_code=201)
def make_payroll(cycle_id: Id, session: DB, who: Manager) -> dict:
    """The cycle's payroll (the same one if it exists already)."""
    p = _guard(pr.generate, session, cycle_id, who.username)
    return pr.payroll_summary(session, p.id)


@router.get("/payrolls/{payroll_id}")
def payroll(payroll_id: Id, session: DB, who: Reader) -> dict:
    return _guard(pr.payroll_summary, session, payroll_id)


@router.post("/payrolls/{payroll_id}/approve")
def approve_payroll(payroll_id: Id, session: DB, who: Manager) -> dict:
    _guard(pr.approve, session, payroll_id, who.username)
    audit(session, who, "api", "approve", "payroll", payroll_id)
    return pr.payroll_summary(session, payroll_id)


@router.post("/payrolls/{payroll_id}/export")
def export(payroll_id: Id, session: DB, who: Manager) -> dict:
    """Write pain.001 and CSV instruction files for the instructions not yet sent."""
    out = _guard(pr.export, session, payroll_id, var_dir() / "payments")
    audit(session, who, "api", "export", "payroll", payroll_id, detail=f"{out['instructions']} instructions")
    return out


async def _raw_body(request: Request) -> bytes:
    """The request body as sent, whatever its content type (reading it does not block the loop)."""
    return await request.body()


STATUS_FILE_BODY = {"requestBody": {"required": True, "description": "the status file: CSV, pain.002 or camt.054",
                                    "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in (
                                        "text/csv", "application/xml", "application/octet-stream")}}}


@router.post("/payments/status-files", openapi_extra=STATUS_FILE_BODY,
             responses={409: {"description": "this file was imported already, or is being imported by another upload"}})
def status_file(session: DB, who: Manager, data: Annotated[bytes, Depends(_raw_body)], name: str = "status") -> dict:
    """A bank's status file as the request body: CSV, pain.002 or camt.054, applied once.

    Sending the same file again (or at the same time as another upload) is answered 409 naming the
    import that applied it, and changes nothing. Lines that cannot apply (never sent, another
    amount, no amount, unknown, paid twice, ...) are rejected: ``rejected_lines`` lists the first
    1000 with their reasons. A plain ``def``: the reconciliation (blocking database work, row locks)
    runs in the thread pool, never on the event loop."""
    out = _guard(pr.reconcile, session, data, name, who.username)
    audit(session, who, "api", "reconcile", "status_import", out["import_id"],
          detail=f"{out['lines']} lines of {name[:80]} ({out['format']}): {out['applied']} applied, "
                 f"{out['duplicates']} duplicates, {out['rejected']} rejected")
    return out


class FundRelease(BaseModel):
    amount: float = Field(gt=0, lt=1e13, description="PKR released into the program's fund")
    reference: str = Field(min_length=1, max_length=80, description="the treasury's release order")


@router.post("/programs/{code}/fund-releases", status_code=201)
def release_funds(code: str, body: FundRelease, session: DB, who: Manager) -> dict:
    """Money released into a program's fund (a ledger entry) before it can pay: a payroll is approved
    only when the fund holds its total. The same reference again records nothing more."""
    out = _guard(pr.release_funds, session, code, body.amount, body.reference, who.username)
    audit(session, who, "api", "release", "fund_release", out["release_id"],
          detail=f"Rs {out['amount']:,.2f} released to {code} (reference {body.reference})")
    return out


@router.post("/payrolls/{payroll_id}/retry")
def retry(payroll_id: Id, session: DB, who: Manager) -> dict:
    return {"retried": pr.retry_failed(session, payroll_id)}


@router.post("/payments/return-unclaimed")
def return_unclaimed(session: DB, who: Manager, days: Days = 90) -> dict:
    return {"returned": _guard(pr.return_unclaimed, session, None, days)}


@router.get("/payments/ledger")
def ledger(session: DB, who: Reader, program: Annotated[str | None, Query(max_length=40)] = None) -> dict:
    return pr.ledger_check(session, program)


class Pickup(BaseModel):
    district_id: int = Field(ge=1, le=MAX_ID)
    first_day: date = Field(ge=date(1900, 1, 1), le=date(2100, 12, 31))
    slots_per_day: int = Field(8, ge=1, le=24)
    days: int = Field(5, ge=1, le=60)


@router.post("/payrolls/{payroll_id}/pickup")
def schedule(payroll_id: Id, body: Pickup, session: DB, who: Manager) -> dict:
    """Pickup slots for a district's pull-channel beneficiaries, by outlet capacity and distance."""
    return _guard(pickup.schedule, session, payroll_id, body.district_id, body.first_day,
                  slots_per_day=body.slots_per_day, days=body.days)


@router.get("/districts/{district_id}/pickup")
def occupancy(district_id: Id, session: DB, who: Reader) -> list[dict]:
    if who.scope is not None and who.scope != district_id:
        audit(session, who, "api", "read", "pickup_slot", None, district_id=district_id, outcome="denied",
              detail=f"refused: pickup slots of district {district_id} asked for by a user of district {who.scope}")
        session.commit()  # keep the audit record of the refusal
        raise HTTPException(403, f"district {district_id} is outside your district")
    audit(session, who, "api", "read", "pickup_slot", None, district_id=district_id)
    return pickup.occupancy(session, district_id)
