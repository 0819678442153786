"""Web pages of the Single Beneficiary Registry: the clerical review queue (an operator accepts or
rejects an uncertain pair, seeing each field's contribution to the match weight) and the duplication
and concentration reports with CSV export. District officers see their district only; every page
view and decision is audited (channel ``web``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from isps.access.service import audit, audit_many
from isps.api.params import MAX_ID, After, Id
from isps.linkage import persons, reports
from isps import catalogue
from isps.registry import cnic as cnic_rules
from isps.registry.models import District
from isps.web import listing
from isps.web.common import CHANNEL, DB, SECURITY_HEADERS, User, bad_address_page, error_page, render
from isps.web.common import FilterId, _tr, program_name

router = APIRouter(include_in_schema=False)
DECIDE = "registry.import"
PAGE = 20  # review pairs are tall cards: fewer on a page than other lists


def _districts(session) -> dict[int, str]:
    return {d.id: d.name for d in session.query(District)}


QUEUE_COLUMNS = [("id", "pair"), ("program", "program"), ("weight", "match_weight"),
                 ("probability", "probability_pct"), ("partner_ref", "partner_ref"), ("partner_name", "partner_name"),
                 ("partner_cnic", "partner_cnic_masked"), ("partner_dob", "partner_date_of_birth"),
                 ("partner_district", "partner_district"), ("individual_id", "registry_individual"),
                 ("registry_name", "registry_name"), ("registry_dob", "registry_date_of_birth"),
                 ("registry_district", "registry_district")]


def _queue_filters(who, district_id: int | None, program: str, min_weight: float | None) -> dict:
    """A district officer's queue is their district's; others may narrow to one district."""
    return {"district_id": who.scope if who.scope is not None else district_id, "program": program.strip() or None,
            "min_weight": min_weight}


def _flat(items, names: dict[int, str]) -> list[dict]:
    """Review pairs as export rows (the partner's CNIC masked)."""
    return [{"id": i.candidate.id, "program": i.beneficiary.program_code,
             "weight": round(i.candidate.match_weight, 1),
             "probability": round(100 * i.candidate.match_probability, 1),
             "partner_ref": i.beneficiary.partner_ref, "partner_name": i.beneficiary.full_name,
             "partner_cnic": cnic_rules.mask(i.beneficiary.cnic) if i.beneficiary.cnic else None,
             "partner_dob": i.beneficiary.date_of_birth, "partner_district": names.get(i.beneficiary.district_id),
             "individual_id": i.individual.id if i.individual else None,
             "registry_name": i.individual.full_name if i.individual else None,
             "registry_dob": i.individual.date_of_birth if i.individual else None,
             "registry_district": names.get(i.individual.district_id) if i.individual else None} for i in items]


@router.get("/sbr/review")
def review_page(request: Request, session: DB, who: User, after: After = None, done: str = "",
                district_id: FilterId = None, program: Annotated[str, Query(max_length=40)] = "",
                min_weight: Annotated[float | None, Query(ge=-1000, le=1000)] = None,
                decided: After = None) -> Response:
    """The clerical review queue, a page of pairs at a time by keyset, with its total for the
    filters (program, district, lowest weight), its export, and bulk decisions."""
    filters = _queue_filters(who, district_id, program, min_weight)
    try:  # the order chosen (oldest first, or by weight): whitelisted, else a 400 page
        sort = listing.sort_of(request, tuple(persons.QUEUE_SORTS), listing.Sort("id"))
    except listing.SortError as exc:
        return bad_address_page(request, str(exc), 400)
    names = _districts(session)
    fmt = listing.wants_export(request, "queue")
    if fmt:
        return listing.export(request, session, who, fmt, name="review_queue", entity="match_candidate",
                              columns=QUEUE_COLUMNS, detail="the review queue",
                              chunks=(_flat(items, names) for items in listing.keyset_chunks(
                                  lambda a, n: persons.review_queue(session, after=a, limit=n, sort=sort,
                                                                    **filters),
                                  lambda i: i.candidate.id)))
    items = persons.review_queue(session, after=after, limit=PAGE + 1, sort=sort, **filters)
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
            for i in items[:PAGE]]
    pager = listing.pager(request, total=persons.count_queue(session, **filters), shown=len(view), id="queue",
                          next_after=view[-1]["id"] if len(items) > PAGE else None)
    tr = _tr(request)
    programs = [(p.code, program_name(tr, p.code)) for p in catalogue.programs(session)]
    return render(request, "linkage_review.html", {
        "items": view, "can_decide": who.can(DECIDE), "done": done if done in ("accept", "reject") else "",
        "decided": decided, "pager": pager, "filters": filters, "programs": programs, "locked": who.scope is not None,
        "districts": sorted(names.items(), key=lambda kv: kv[1]),
        "columns": listing.columns(request, tuple(persons.QUEUE_SORTS), sort),
        "sort_param": request.query_params.get("sort", "")}, who=who, session=session)


def _refuse_decision(request: Request, session, who, ids: list[int]) -> Response:
    audit_many(session, who, CHANNEL, "decide", "match_candidate", [(i, who.scope) for i in ids] or [(None, who.scope)],
               outcome="denied")
    session.commit()
    return error_page(request, session, who, 403, "your role may not decide review pairs")


@router.post("/sbr/review/bulk")
def decide_many(request: Request, session: DB, who: User, ids: Annotated[list[int], Form()] = [],  # noqa: B006
                decision: Annotated[str, Form()] = "") -> Response:
    """Several pairs decided at once, each through :func:`persons.decide` and audited on its own.
    Pairs outside the user's district or already decided are left alone (the page says how many
    were decided)."""
    ids = sorted({i for i in ids if 1 <= i <= MAX_ID})[:1000]
    if not who.can(DECIDE):
        return _refuse_decision(request, session, who, ids)
    if decision not in ("accept", "reject"):
        return error_page(request, session, who, 400, "the decision must be accept or reject")
    waiting = persons.waiting_pairs(session, ids, district_id=who.scope)
    if not waiting:
        return error_page(request, session, who, 404, _tr(request)("sbr.review.bulk_none"))
    decided = []
    for cid in waiting:
        try:
            persons.decide(session, cid, decision == "accept", who.username)
        except persons.LinkageError:  # an earlier accept in this batch closed the same line's other pairs
            continue
        decided.append(cid)
    audit_many(session, who, CHANNEL, "decide", "match_candidate", [(cid, who.scope) for cid in decided],
               detail=f"{decision} (bulk of {len(decided)})")
    return RedirectResponse(f"/sbr/review?done={decision}&decided={len(decided)}", status_code=303)


@router.post("/sbr/review/{candidate_id}")
def decide(request: Request, candidate_id: Id, session: DB, who: User,
           decision: Annotated[str, Form()] = "") -> Response:
    if not who.can(DECIDE):
        return _refuse_decision(request, session, who, [candidate_id])
    waiting = persons.waiting_pairs(session, [candidate_id], district_id=who.scope)
    if not waiting or decision not in ("accept", "reject"):
        return error_page(request, session, who, 404, "no such pair waiting for review")
    try:
        persons.decide(session, candidate_id, decision == "accept", who.username)
    except persons.LinkageError as exc:
        return error_page(request, session, who, 409, str(exc))
    audit(session, who, CHANNEL, "decide", "match_candidate", candidate_id, detail=decision)
    return RedirectResponse(f"/sbr/review?done={decision}", status_code=303)


def _report_rows(session, tr, name: str, rows: list) -> list[dict]:
    """A report's rows as a person reads them: district and program names instead of ids and codes,
    the kind of benefit in words, money as money."""
    districts = _districts(session)
    out = []
    for row in rows:
        d = asdict(row)
        if "district_id" in d:
            d["district_id"] = districts.get(d["district_id"], "—")
        for key in ("program_a", "program_b", "program_code"):
            if key in d:
                d[key] = program_name(tr, d[key])
        if name == "same_kind":
            d["programs"] = ", ".join(program_name(tr, c) for c in d["programs"].split(", ") if c)
        if "kind" in d:
            key = f"enrol.kind.{d['kind']}"
            d["kind"] = tr(key) if tr.has(key) else d["kind"].replace("_", " ")
        for key in reports.MONEY & d.keys():
            d[key] = f"PKR {d[key]:,.0f}"
        out.append(d)
    return out


@router.get("/sbr/reports")
def reports_page(request: Request, session: DB, who: User, report: str = "same_kind", program: str = "",
                 ceiling: float | None = None, format: str = "html") -> Response:
    tr = _tr(request)
    if report not in reports.REPORTS:
        report = "same_kind"
    if ceiling is None or not 0 <= ceiling <= 1e13:
        ceiling = reports.ceiling(session)
    rows = reports.run_report(session, report, district_id=who.scope, program=program or None, ceiling=ceiling)
    audit(session, who, CHANNEL, "report", "report", None, district_id=who.scope, detail=report)
    columns = [(c, tr(f"sbr.col.{c}")) for c in reports.columns(report)]
    if format in listing.FORMATS:  # the whole report, header row included even when it is empty
        return listing.export(request, session, who, format, name=report, entity="report", columns=columns,
                              chunks=iter([_report_rows(session, tr, report, rows)]), detail=f"the report {report}")
    programs = [(p.code, program_name(tr, p.code)) for p in catalogue.programs(session)]
    return render(request, "linkage_reports.html", {
        "report": report, "reports": list(reports.REPORTS), "rows": _report_rows(session, tr, report, rows[:500]),
        "total": len(rows), "columns": columns, "program": program, "programs": programs, "ceiling": ceiling,
        "money": reports.MONEY}, who=who, session=session)
