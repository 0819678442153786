"""Enrolment at the counter: on a household's page, an operator applies for a program for the
household or one member, through the one enrolment path (``programs.enrolment.enrol_one``: the
duplicate, incompatibility, same-kind and ceiling filter against ISPS's own enrolments and every
partner list). A refusal is shown at once with its reason in the reader's language (the other
program, its agency and the list it came from); the household's past refusals are listed below.

The panel is a fragment the household page loads (``hx-get``), so the household page itself does
not change; the form posts with the anti-forgery token, the role is checked here, and reading the
panel is audited like the household page."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select, text

from isps.registry import current
from isps.access.service import audit
from isps.api.params import Id
from isps.programs import enrolment as en
from isps.programs.models import EnrolmentPolicy
from isps.registry.service import OutOfScope
from isps.web.common import CHANNEL, DB, User, _is_htmx, _tr, error_page, open_household, render
from isps.web.refusals import refusal_text

router = APIRouter(include_in_schema=False)
APPLY = "enrolment.apply"


def enrolling_programs(session) -> list[str]:
    """The programs ISPS enrols into: those with a shipped or stored enrolment policy."""
    return sorted(set(en.DEFAULT_POLICIES) | set(session.scalars(select(EnrolmentPolicy.program_code))))


def _panel(request: Request, session, who, household_id: int, outcome: dict | None = None,
           status: int = 200) -> Response:
    tr = _tr(request)
    f, refused = open_household(request, session, who, household_id)
    if refused is not None:
        return refused
    rows = en.refusals(session, household_id=household_id, limit=50)
    for r in rows:
        r["text"] = refusal_text(tr, r)
    if outcome and outcome.get("refusal"):
        outcome["refusal"]["text"] = refusal_text(tr, outcome["refusal"])
    enrolments = session.execute(text("""SELECT id, program_code, individual_id, status, reason FROM enrolment
        WHERE household_id = :h ORDER BY id"""), {"h": household_id}).mappings().all()
    names = {m.id: m.full_name for m in f.members}
    members = [{"id": m.id, "name": m.full_name} for m in f.members if current.is_current(m)]
    exclusions = [dict(x) for x in session.execute(text("""SELECT x.individual_id, x.reason, x.detail,
            x.source_ref AS source, x.effective_date, x.active,
            (SELECT MAX(c.id) FROM change_request c WHERE c.entity = 'individual'
                AND c.entity_id = x.individual_id AND c.status = 'pending') AS pending
        FROM exclusion_flag x WHERE x.household_id = :h ORDER BY x.individual_id, x.reason"""),
                                                   {"h": household_id}).mappings()]
    for x in exclusions:
        x["name"] = names.get(x["individual_id"], "—")
        x["date"] = str(x["effective_date"])[:10]
    return render(request, "_enrolment.html", {
        "exclusions": exclusions, "can_appeal": who.can("registry.write"),
        "household_id": household_id, "can_apply": who.can(APPLY), "programs": enrolling_programs(session),
        "members": members, "refusals": rows, "names": names, "outcome": outcome,
        "enrolments": [dict(e) for e in enrolments]}, who=who, session=session, status=status)


@router.post("/households/{household_id}/appeal")
def appeal(request: Request, household_id: Id, session: DB, who: User, individual: Annotated[str, Form()] = "",
           reason: Annotated[str, Form()] = "", evidence: Annotated[str, Form()] = "",
           evidence_ref: Annotated[str, Form()] = "") -> Response:
    """Appeal a member's administrative exclusion (the public-sector payroll flag): a change request
    with its evidence, lifted once a second person approves it (Registry updates)."""
    from isps.interop.feeds import changes

    tr = _tr(request)
    if not who.can("registry.write"):
        audit(session, who, CHANNEL, "create", "change_request", None, who.scope, outcome="denied",
              detail=f"refused: a {who.role.replace('_', ' ')} may not appeal an exclusion")
        session.commit()
        return error_page(request, session, who, 403, tr("enrol.cannot_appeal"))
    try:
        person = int(individual)
    except ValueError:
        return _panel(request, session, who, household_id, {"error": tr("enrol.pick_member")}, status=422)
    with session.no_autoflush:
        owner = session.execute(text("SELECT household_id FROM individual WHERE id = :i"), {"i": person}).scalar()
    if owner != household_id:
        return _panel(request, session, who, household_id, {"error": tr("enrol.pick_member")}, status=422)
    try:
        row = changes.request_change(session, entity="individual", entity_id=person,
                                     changes={changes.APPEAL + reason[:30]: changes.LIFTED}, source="operator",
                                     evidence=evidence[:2000], requested_by=who.username,
                                     evidence_ref=evidence_ref.strip()[:200] or None, district_scope=who.scope)
    except OutOfScope:
        session.rollback()
        return error_page(request, session, who, 403, tr("error.outside_district", id=household_id))
    except changes.ChangeRequestError as exc:
        session.rollback()
        return _panel(request, session, who, household_id, {"error": str(exc)}, status=422)
    audit(session, who, CHANNEL, "create", "change_request", row.id, row.district_id,
          detail=f"appeal against the exclusion {reason[:30]} of individual {person}")
    session.commit()
    if not _is_htmx(request):
        return RedirectResponse(f"/households/{household_id}#enrolment", status_code=303)
    return _panel(request, session, who, household_id, {"appealed": row.id})


@router.get("/households/{household_id}/enrolment")
def panel(request: Request, household_id: Id, session: DB, who: User) -> Response:
    return _panel(request, session, who, household_id)


@router.post("/households/{household_id}/enrol")
def apply(request: Request, household_id: Id, session: DB, who: User,
          program: Annotated[str, Form()] = "", member: Annotated[str, Form()] = "") -> Response:
    """Apply for one program for the household (or one member, for a member program) through the
    one enrolment path; the answer (listed, enrolled, or refused with its reason) comes back in the
    panel. A plain (non-htmx) post returns to the household page."""
    tr = _tr(request)
    if not who.can(APPLY):
        audit(session, who, CHANNEL, "enrol", "household", household_id, who.scope, outcome="denied",
              detail=f"refused: a {who.role.replace('_', ' ')} may not apply for a program")
        session.commit()
        return error_page(request, session, who, 403, tr("enrol.cannot_apply"))
    if program not in enrolling_programs(session):
        return _panel(request, session, who, household_id, {"error": tr("enrol.bad_program", program=program[:40])},
                      status=422)
    f, refused = open_household(request, session, who, household_id)
    if refused is not None:
        return refused
    unit = en.policy(session, program).unit
    individual = 0
    if unit == "member":
        living = {m.id for m in f.members if current.is_current(m)}
        try:
            individual = int(member)
        except ValueError:
            individual = -1
        if individual not in living:
            return _panel(request, session, who, household_id, {"error": tr("enrol.pick_member")}, status=422)
    try:
        result, enrolment_id = en.enrol_one(session, program, household_id, individual, who.username,
                                            f"applied at the counter by {who.username}", on=date.today())
    except en.EnrolmentError as exc:
        session.rollback()
        return _panel(request, session, who, household_id, {"error": str(exc)}, status=422)
    refusal = en.last_refusal(session, program, household_id, individual) if result == "incompatible" else None
    detail = (f"{program}: {result}" + (f" ({refusal['reason']})" if refusal else ""))[:400]
    audit(session, who, CHANNEL, "enrol", "household", household_id, f.household.district_id, detail=detail)
    session.commit()
    if not _is_htmx(request):
        return RedirectResponse(f"/households/{household_id}#enrolment", status_code=303)
    status_now = None
    if enrolment_id is not None:
        status_now = session.execute(text("SELECT status FROM enrolment WHERE id = :i"), {"i": enrolment_id}).scalar()
    return _panel(request, session, who, household_id, {
        "program": program, "result": result, "status": status_now, "refusal": refusal})
