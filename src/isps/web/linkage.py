"""Web pages of the Single Beneficiary Registry: the clerical review queue (an operator accepts or
rejects an uncertain pair, seeing each field's contribution to the match weight) and the duplication
and concentration reports with CSV export. District officers see their district only; every page
view and decision is audited (channel ``web``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from isps.access.service import audit
from isps.api.params import After, Id
from isps.linkage import persons, reports
from isps.programs import catalogue
from isps.registry.models import District
from isps.web.common import CHANNEL, DB, SECURITY_HEADERS, User, error_page, render

router = APIRouter(include_in_schema=False)
DECIDE = "registry.import"


def _districts(session) -> dict[int, str]:
    return {d.id: d.name for d in session.query(District)}


@router.get("/sbr/review")
def review_page(request: Request, session: DB, who: User, after: After = None, done: str = "") -> Response:
    items = persons.review_queue(session, district_id=who.scope, after=after, limit=25)
    names = _districts(session)
    audit(session, who, CHANNEL, "read", "match_candidate", None, district_id=who.scope)
    view = [{"id": i.candidate.id, "weight": round(i.candidate.match_weight, 1),
             "probability": round(100 * i.candidate.match_probability, 1),
             "explanation": i.candidate.explanation, "program": i.beneficiary.program_code,
             "left": {"name": i.beneficiary.full_name, "fh": i.beneficiary.father_husband_name or "—",
                      "dob": str(i.beneficiary.date_of_birth or "—"), "sex": i.beneficiary.sex or "—",
                      "district": names.get(i.beneficiary.district_id, "—"), "ref": i.beneficiary.partner_ref},
             "right": None if i.individual is None else {
                 "name": i.individual.full_name, "fh": i.individual.father_husband_name or "—",
                 "dob": str(i.individual.date_of_birth), "sex": i.individual.sex,
                 "district": names.get(i.individual.district_id, "—"), "id": i.individual.id}}
            for i in items]
    return render(request, "linkage_review.html", {"items": view, "can_decide": who.can(DECIDE), "done": done,
                                                   "next_after": view[-1]["id"] if len(view) == 25 else None},
                  who=who, session=session)


@router.post("/sbr/review/{candidate_id}")
def decide(request: Request, candidate_id: Id, session: DB, who: User,
           decision: Annotated[str, Form()] = "") -> Response:
    if not who.can(DECIDE):
        audit(session, who, CHANNEL, "decide", "match_candidate", candidate_id, outcome="denied")
        session.commit()
        return error_page(request, session, who, 403, "your role may not decide review pairs")
    item = next((i for i in persons.review_queue(session, district_id=who.scope, limit=1, after=candidate_id - 1)
                 if i.candidate.id == candidate_id), None)
    if item is None or decision not in ("accept", "reject"):
        return error_page(request, session, who, 404, "no such pair waiting for review")
    try:
        persons.decide(session, candidate_id, decision == "accept", who.username)
    except persons.LinkageError as exc:
        return error_page(request, session, who, 409, str(exc))
    audit(session, who, CHANNEL, "decide", "match_candidate", candidate_id, detail=decision)
    return RedirectResponse(f"/sbr/review?done={decision}", status_code=303)


@router.get("/sbr/reports")
def reports_page(request: Request, session: DB, who: User, report: str = "same_kind", program: str = "",
                 ceiling: float = reports.CEILING, format: str = "html") -> Response:
    if report not in reports.REPORTS:
        report = "same_kind"
    rows = reports.run_report(session, report, district_id=who.scope, program=program or None, ceiling=ceiling)
    audit(session, who, CHANNEL, "report", "report", None, district_id=who.scope, detail=report)
    if format == "csv":
        resp = Response(reports.to_csv(rows), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{report}.csv"'})
        resp.headers.update(SECURITY_HEADERS)
        return resp
    dicts = [asdict(r) for r in rows[:500]]
    names = _districts(session)
    for d in dicts:
        if "district_id" in d:
            d["district_id"] = names.get(d["district_id"], "—")
    programs = [(p.code, p.name) for p in catalogue.programs(session)]
    return render(request, "linkage_reports.html", {
        "report": report, "reports": list(reports.REPORTS), "rows": dicts, "total": len(rows),
        "columns": list(dicts[0]) if dicts else [], "program": program, "programs": programs, "ceiling": ceiling},
        who=who, session=session)
