"""One Window: the counter's first screen. One search box finds a citizen by CNIC, B-form, mobile
number or name (:mod:`isps.citizen.find`); one result opens the citizen screen (the household page
with everything the state gives the household, :mod:`isps.services.benefits`, and its membership
panel: members added, removed and corrected by change requests a second person approves).

The search is sent by POST, so a CNIC or phone number never sits in an address, the history or a
log; the next page is another POST with the last id seen (keyset). Every search is audited
(``search``; a CNIC or B-form look-up as ``lookup_cnic``) with the number masked, and a scoped
user's search is confined to their district: a number registered only outside it is refused, said
so, and audited as denied."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from isps import catalogue
from isps.access.service import audit
from isps.api.params import Id
from isps.citizen import find
from isps.interop.feeds import changes
from isps.programs.models import Enrolment
from isps.registry import current, vocab
from isps.registry import service as registry_service
from isps.registry.models import Individual
from isps.registry.service import OutOfScope
from isps.services import benefits
from isps.web.common import (CHANNEL, DB, open_household, Geography, User, _district_name, _is_htmx, _tr, agency_name, error_page,
                             program_name, render, tehsil_name)

router = APIRouter(include_in_schema=False)
PAGE = 25
READ = "registry.read"


def _forbidden(request: Request, session, who) -> Response:
    audit(session, who, CHANNEL, "search", "individual", outcome="denied", detail="One Window search without registry.read")
    session.commit()
    return error_page(request, session, who, 403, _tr(request)("ow.forbidden"))


@router.get("/onewindow")
def onewindow_page(request: Request, session: DB, who: User) -> Response:
    if not who.can(READ):
        return _forbidden(request, session, who)
    return render(request, "onewindow.html", {"q": "", "father": "", "found": None}, who=who, session=session)


def _view(rows: list[dict], geo: Geography, tr) -> list[dict]:
    for r in rows:
        r["district"] = _district_name(tr, geo.district_by_id.get(r["district_id"]))
        r["tehsil"] = tehsil_name(tr, geo.tehsil_by_id.get(r["tehsil_id"]))
        r["document"] = tr("ow.doc.bform" if r["id_document"] == "bform" else "ow.doc.cnic") if r["cnic_masked"] else ""
        r["status_label"] = tr(f"ow.status.{r['status']}")
    return rows


@router.post("/onewindow")
def onewindow_find(request: Request, session: DB, who: User, q: Annotated[str, Form()] = "",
                   father: Annotated[str, Form()] = "", after: Annotated[str, Form()] = "",
                   start: Annotated[str, Form()] = "") -> Response:
    """Search; one person found opens their household (the citizen screen) at their roster line."""
    tr = _tr(request)
    if not who.can(READ):
        return _forbidden(request, session, who)
    context = {"q": q.strip()[:find.QUERY_MAX], "father": father.strip()[:find.QUERY_MAX]}
    partial = _is_htmx(request)

    def answer(found: dict, status: int = 200) -> Response:
        if partial:
            return render(request, "_onewindow_results.html", {**context, "found": found}, status=status)
        return render(request, "onewindow.html", {**context, "found": found}, who=who, session=session, status=status)

    try:
        query = find.parse(q, father)
    except find.FindError as exc:
        return answer({"error": str(exc) if tr.code == "en" else f"{tr('ow.error.query')} ({exc})"}, 422)
    cursor = int(after) if after.strip().isdigit() and len(after.strip()) < 19 else None
    first = int(start) if start.strip().isdigit() and len(start.strip()) < 9 else 1
    action = "lookup_cnic" if query.kind == "cnic" else "search"
    if who.scope is not None and find.outside_scope(session, query, who.scope):
        audit(session, who, CHANNEL, action, "individual", district_id=who.scope, outcome="denied",
              detail=f"One Window: {query.shown()} is registered outside the user's district")
        session.commit()
        return answer({"error": tr("ow.error.scope")}, 403)
    page = find.find(session, query, who.scope, after=cursor, limit=PAGE)
    total = find.count(session, query, who.scope)
    audit(session, who, CHANNEL, action, "individual", district_id=who.scope,
          detail=f"One Window: {query.shown()}: {total} people" + (f" (after {cursor})" if cursor else ""))
    session.commit()
    if total == 1 and cursor is None:
        person = page.rows[0]
        target = f"/households/{person['household_id']}#person-{person['id']}"
        if partial:
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    rows = _view(page.rows, Geography.load(session), tr)
    return answer({"rows": rows, "total": total, "start": first, "next_after": page.next_after, "kind": query.kind,
                   "next_start": first + len(rows)})


# ---------------------------------------------------------------- the citizen screen: benefits

def _open(request: Request, session, who, household_id: int):
    """The household through the household file (scope, audit); an error page when refused."""
    return open_household(request, session, who, household_id)


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


@router.get("/households/{household_id}/benefits")
def benefits_panel(request: Request, household_id: Id, session: DB, who: User) -> Response:
    """Per member, every program they are in (ISPS enrolments and partners' lists) and each
    enrolment's newest payments: a panel of the citizen screen, asked for by htmx once it loads."""
    tr = _tr(request)
    f, refused = _open(request, session, who, household_id)
    if refused:
        return refused
    lines = benefits.household_benefits(session, household_id)
    agencies = {p["code"]: p.get("agency", "") for p in catalogue.shipped()}
    names = {m.id: m.full_name for m in f.members}
    rows = []
    for line in lines:
        rows.append({
            "source": line.source, "code": line.program_code, "program": program_name(tr, line.program_code),
            "agency": (line.partner if line.source == "partner" else agency_name(tr, agencies.get(line.program_code)))
            or "—", "member": names.get(line.individual_id) if line.individual_id else
            tr("ben.household_by", name=names[line.recipient_id]) if line.recipient_id in names else tr("ben.household"),
            "member_id": line.individual_id,
            "status": tr(f"enrol.state.{line.status}") if line.status else tr("ben.on_list"),
            "since": (line.since or line.list_date).isoformat() if (line.since or line.list_date) else "—",
            "channel": tr(f"channel.{line.channel}") if line.channel else "—",
            "amount": _money(line.amount), "enrolment_id": line.enrolment_id, "more": line.payments_total > len(line.payments),
            "payments_total": line.payments_total,
            "payments": [{"id": p.id, "period": p.period, "amount": _money(p.amount), "status": p.status,
                          "status_label": tr(f"payments.state.{p.status}"),
                          "on": p.status_on.isoformat() if p.status_on else "—", "channel": tr(f"channel.{p.channel}"),
                          "attempt": p.attempt} for p in line.payments]})
    audit(session, who, CHANNEL, "read", "household", household_id, f.household.district_id,
          detail=f"benefits: {sum(r['source'] == 'isps' for r in rows)} enrolments, "
                 f"{sum(r['source'] == 'partner' for r in rows)} partner list lines")
    session.commit()
    return render(request, "_benefits.html", {"hh_id": household_id, "rows": rows})


@router.get("/households/{household_id}/benefits/{enrolment_id}/payments")
def enrolment_payments(request: Request, household_id: Id, enrolment_id: Id, session: DB, who: User,
                       before: str = "") -> Response:
    """All the payments of one of the household's enrolments, newest first, a page at a time."""
    tr = _tr(request)
    f, refused = _open(request, session, who, household_id)
    if refused:
        return refused
    enrolment = session.get(Enrolment, enrolment_id)
    if enrolment is None or enrolment.household_id != household_id:
        return error_page(request, session, who, 404, tr("ben.no_enrolment", id=enrolment_id))
    cursor = int(before) if before.isdigit() and len(before) < 19 else None
    page, next_before, total = benefits.enrolment_payments(session, enrolment_id, cursor)
    audit(session, who, CHANNEL, "read", "enrolment", enrolment_id, f.household.district_id,
          detail=f"payments of enrolment {enrolment_id} ({len(page)} of {total})")
    session.commit()
    return render(request, "onewindow_payments.html", {
        "hh": f.household, "program": program_name(tr, enrolment.program_code), "total": total,
        "enrolment_id": enrolment_id, "next_before": next_before,
        "payments": [{"period": p.period, "amount": _money(p.amount), "status": p.status,
                      "status_label": tr(f"payments.state.{p.status}"), "attempt": p.attempt,
                      "on": p.status_on.isoformat() if p.status_on else "—", "channel": tr(f"channel.{p.channel}")}
                     for p in page]}, who=who, session=session)


# ---------------------------------------------------------------- household membership at the counter

WRITE = "registry.write"
MEMBER_FORM = ("full_name", "father_husband_name", "sex", "date_of_birth", "relation_to_head", "marital_status",
               "cnic", "id_document", "phone", "education", "disability", "labour_status")
EDIT_FORM = ("full_name", "father_husband_name", "date_of_birth", "marital_status", "phone", "education",
             "labour_status", "disability", "relation_to_head")


def _shown_value(tr, name: str, value) -> str:
    if name in ("reason", "detail"):
        return tr(f"mem.reason.{value}")
    if name == "id_document":
        return tr(f"ow.doc.{value}")
    return tr.value("relation_to_head" if name == "relation" else name, value)


def _kind_label(tr, kind: str) -> str:
    return tr(f"mem.kind.{kind.replace('.', '_')}")


def _membership(request: Request, session, who, household_id: int, *, message: dict | None = None,
                status: int = 200, values: dict | None = None) -> Response:
    """The membership panel: each current member with Remove and Edit forms, an Add member form, and
    the household's requests waiting for a second person (with registry.write)."""
    tr = _tr(request)
    f, refused = _open(request, session, who, household_id)
    if refused:
        return refused
    pending = []
    for c in changes.list_change_requests(session, "pending", who.scope, household_id=household_id):
        kind = changes.kind_of(c.changes)
        what = changes.shown(c.changes.get(kind, c.changes) if kind in changes.MEMBER_KINDS else c.changes)
        person = next((m.full_name for m in f.members if c.entity == "individual" and m.id == c.entity_id), None)
        pending.append({"id": c.id, "kind": _kind_label(tr, kind), "person": person, "by": c.requested_by,
                        "what": [(tr.field(k), shown, "rtl" if re.search("[\u0600-\u06ff]", shown) else "ltr")
                                 for k, v in what.items() if v not in (None, "") for shown in [_shown_value(tr, k, v)]],
                        "on": c.effective_date.isoformat(), "evidence": c.evidence})
    members = [{"id": m.id, "name": m.full_name, "line": m.roster_line,
                "values": {k: ("" if getattr(m, k) is None else
                               getattr(m, k).isoformat() if hasattr(getattr(m, k), "isoformat") else str(getattr(m, k)))
                           for k in EDIT_FORM}}
               for m in f.members if current.is_current(m)]
    session.commit()
    return render(request, "_membership.html", {
        "hh_id": household_id, "members": members, "pending": pending, "can_write": who.can(WRITE),
        "message": message, "values": values or {}, "today": date.today().isoformat(),
        "choices": {k: vocab.INDIVIDUAL_CATEGORICAL[k] for k in ("sex", "relation_to_head", "marital_status",
                                                                  "education", "disability", "labour_status")},
        "reasons": registry_service.REMOVAL_REASONS, "details": registry_service.LEFT_DETAILS,
        "csrf": request.app.state.tokens.csrf(request.cookies.get("isps_session"))}, status=status)


@router.get("/households/{household_id}/membership")
def membership_panel(request: Request, household_id: Id, session: DB, who: User) -> Response:
    return _membership(request, session, who, household_id)


def _when(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw.strip()) if raw.strip() else date.today()
    except ValueError:
        return None


def _after_request(request: Request, session, who, household_id: int, row, detail: str) -> Response:
    audit(session, who, CHANNEL, "create", "change_request", row.id, row.district_id, detail=detail)
    session.commit()
    if not _is_htmx(request):
        return RedirectResponse(f"/households/{household_id}#membership", status_code=303)
    return _membership(request, session, who, household_id, message={"done": row.id})


def _refused(request: Request, session, who, household_id: int, exc: Exception, values: dict | None = None) -> Response:
    session.rollback()
    if isinstance(exc, OutOfScope):
        return error_page(request, session, who, 403, _tr(request)("error.outside_district", id=household_id))
    return _membership(request, session, who, household_id, message={"error": str(exc)}, status=422, values=values)


def _cannot_write(request: Request, session, who, household_id: int) -> Response:
    audit(session, who, CHANNEL, "create", "change_request", None, who.scope, outcome="denied",
          detail=f"membership change of household {household_id} without registry.write")
    session.commit()
    tr = _tr(request)
    return error_page(request, session, who, 403, tr("error.cannot_edit", role=tr(f"role.{who.role}")))


@router.post("/households/{household_id}/members")
async def add_member(request: Request, household_id: Id, session: DB, who: User) -> Response:
    """Ask for a member to be added (a newborn, a bride, a returning migrant), with evidence."""
    if not who.can(WRITE):
        return _cannot_write(request, session, who, household_id)
    form = await request.form()
    values = {k: str(form.get(k) or "").strip()[:100] for k in MEMBER_FORM}
    evidence, evidence_ref = str(form.get("evidence") or "").strip()[:2000], str(form.get("evidence_ref") or "").strip()[:200]
    when = _when(str(form.get("effective_date") or ""))
    if when is None:
        return _refused(request, session, who, household_id,
                        ValueError(f"household {household_id}: effective_date must be a date written YYYY-MM-DD"), values)
    try:
        row = changes.request_member_add(session, household_id=household_id, member=values, source="operator",
                                         evidence=evidence, requested_by=who.username,
                                         evidence_ref=evidence_ref or None, effective_date=when, district_scope=who.scope)
    except (OutOfScope, changes.ChangeRequestError) as exc:
        return _refused(request, session, who, household_id, exc, values)
    return _after_request(request, session, who, household_id, row, f"member.add to household {household_id}")


def _member_of(session, household_id: int, individual_id: int):
    person = session.get(Individual, individual_id)
    return person if person is not None and person.household_id == household_id else None


@router.post("/households/{household_id}/members/{individual_id}/remove")
def remove_member(request: Request, household_id: Id, individual_id: Id, session: DB, who: User,
                  reason: Annotated[str, Form()] = "", detail: Annotated[str, Form()] = "",
                  to_household: Annotated[str, Form()] = "", relation: Annotated[str, Form()] = "",
                  effective_date: Annotated[str, Form()] = "", evidence: Annotated[str, Form()] = "",
                  evidence_ref: Annotated[str, Form()] = "") -> Response:
    """Ask for a member to be removed (died, moved to another household, left, entered in error)."""
    if not who.can(WRITE):
        return _cannot_write(request, session, who, household_id)
    if _member_of(session, household_id, individual_id) is None:
        return error_page(request, session, who, 404, _tr(request)("mem.not_member", id=individual_id))
    when = _when(effective_date)
    target = to_household.strip()
    try:
        if when is None:
            raise changes.ChangeRequestError(f"individual {individual_id}: effective_date must be a date written YYYY-MM-DD")
        if target and not (target.isdigit() and len(target) < 19):
            raise changes.ChangeRequestError(f"individual {individual_id}: to_household must be a household id")
        row = changes.request_member_remove(
            session, individual_id=individual_id, reason=reason.strip(), detail=detail.strip() or None,
            to_household=int(target) if target else None, relation=relation.strip() or None, source="operator",
            evidence=evidence[:2000], requested_by=who.username, evidence_ref=evidence_ref.strip()[:200] or None,
            effective_date=when, district_scope=who.scope)
    except (OutOfScope, changes.ChangeRequestError) as exc:
        return _refused(request, session, who, household_id, exc)
    return _after_request(request, session, who, household_id, row,
                          f"member.remove of individual {individual_id} ({reason.strip()[:30]})")


@router.post("/households/{household_id}/members/{individual_id}/edit")
async def edit_member(request: Request, household_id: Id, individual_id: Id, session: DB, who: User) -> Response:
    """Ask for a member's details to be corrected (name spelling, date of birth, marital status, phone...)."""
    if not who.can(WRITE):
        return _cannot_write(request, session, who, household_id)
    person = _member_of(session, household_id, individual_id)
    if person is None:
        return error_page(request, session, who, 404, _tr(request)("mem.not_member", id=individual_id))
    form = await request.form()
    asked = {}
    for k in EDIT_FORM:
        if k not in form:
            continue
        new = str(form.get(k) or "").strip()[:100]
        old = getattr(person, k)
        old = "" if old is None else old.isoformat() if hasattr(old, "isoformat") else str(old)
        if new != old:
            asked[k] = new or None
    when = _when(str(form.get("effective_date") or ""))
    try:
        if when is None:
            raise changes.ChangeRequestError(f"individual {individual_id}: effective_date must be a date written YYYY-MM-DD")
        if not asked:
            raise changes.ChangeRequestError(f"individual {individual_id}: nothing was changed")
        row = changes.request_change(session, entity="individual", entity_id=individual_id, changes=asked,
                                     source="operator", evidence=str(form.get("evidence") or "")[:2000],
                                     requested_by=who.username,
                                     evidence_ref=str(form.get("evidence_ref") or "").strip()[:200] or None,
                                     effective_date=when, district_scope=who.scope)
    except (OutOfScope, changes.ChangeRequestError) as exc:
        return _refused(request, session, who, household_id, exc)
    return _after_request(request, session, who, household_id, row,
                          f"edit of individual {individual_id}: {', '.join(asked)}")
