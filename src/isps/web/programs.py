"""Web pages for enrolment: a program's enrolled households and waiting list, and exiting an
enrolment (the next on the waiting list is enrolled automatically, and the page says who)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from isps.access.service import audit
from isps.api.params import After, Id, QueryId
from isps.programs import enrolment as en
from isps.programs import reassessment
from isps.web import common as r
from isps.web import listing
from isps.web.common import DB, FilterId, User
from isps.web.refusals import refusal_text

router = APIRouter(include_in_schema=False)


ENROLLED_COLUMNS = [("id", "enrolment"), ("household_id", "household"), ("district", "district"),
                    ("tehsil", "tehsil"), ("rank_value", "pmt"), ("channel", "channel"), ("listed_on", "listed_on"),
                    ("enrolled_on", "enrolled_on"), ("reason", "reason")]


def _filters(who, district_id: int | None, tehsil_id: int | None, channel: str) -> dict:
    """The list filters a user may set: a district officer's district is fixed by their scope."""
    return {"district_id": who.scope if who.scope is not None else district_id, "tehsil_id": tehsil_id,
            "channel": channel if channel in en.CHANNELS else None}


def _named(rows: list[dict], geo: r.Geography, tr) -> list[dict]:
    for e in rows:
        e["district"] = r._district_name(tr, geo.district_by_id.get(e["district_id"]))
        t = geo.tehsil_by_id.get(e.get("tehsil_id") or -1)
        e["tehsil"] = r.tehsil_name(tr, t)
    return rows


SORT_PARAMS = {"enrolled": ("sort", "after"), "waiting": ("wsort", "wafter")}  # each list's order and cursor


def _page(request: Request, session, who, code: str, promoted: str = "", exited: int | None = None,
          error: str | None = None, status: int = 200, kept: int | None = None, after: int | None = None,
          wafter: int | None = None, filters: dict | None = None, rafter: int | None = None) -> Response:
    tr = r._tr(request)
    try:  # each list's order, chosen by its column headers: whitelisted, else a 400 page
        sorts = {s_: listing.sort_of(request, tuple(en.SORTS), en.default_sort(s_), param)
                 for s_, (param, _) in SORT_PARAMS.items()}
    except listing.SortError as exc:
        return r.bad_address_page(request, str(exc), 400)
    try:
        summary = en.summary(session, code)
    except en.EnrolmentError:
        return r.error_page(request, session, who, 404, tr("programs.no_program"))
    if who.scope is not None:  # the counts above a district's lists are the district's own
        summary = {**summary, "counts": en.overview(session, who.scope).get(code, {}), "scoped": True}
    filters = filters or _filters(who, None, None, "")
    geo = r.Geography.load(session)
    for status_ in ("enrolled", "waiting"):
        fmt = listing.wants_export(request, status_)
        if fmt:
            return listing.export(
                request, session, who, fmt, name=f"{code}_{status_}", entity="enrolment", columns=ENROLLED_COLUMNS,
                chunks=(_named(rows, geo, tr) for rows in listing.keyset_chunks(
                    lambda a, n, s_=status_: en.listing(session, code, s_, after=a, limit=n, sort=sorts[s_],
                                                        **filters),
                    lambda e: e["id"])),
                detail=f"the {status_} list of {code}")
    refused_page = _refused(request, session, who, code, filters, geo, tr, rafter)
    if isinstance(refused_page, Response):
        return refused_page
    enrolled = _named(en.listing(session, code, "enrolled", after=after, limit=listing.PAGE + 1,
                                 sort=sorts["enrolled"], **filters), geo, tr)
    waiting = _named(en.listing(session, code, "waiting", after=wafter, limit=listing.PAGE + 1,
                                sort=sorts["waiting"], **filters), geo, tr)
    unfiltered = all(v is None for v in filters.values())  # the summary has counted these already

    def total(status_: str) -> int:
        return summary["counts"].get(status_, 0) if unfiltered else en.count_listing(session, code, status_, **filters)

    pagers = {status_: listing.pager(request, total=total(status_),
                                     shown=len(rows[:listing.PAGE]), cursor=cursor, id=status_, others=(other, "rafter"),
                                     next_after=rows[listing.PAGE - 1]["id"] if len(rows) > listing.PAGE else None)
              for status_, rows, cursor, other in (("enrolled", enrolled, "after", "wafter"),
                                                   ("waiting", waiting, "wafter", "after"))}
    flagged = reassessment.reviews(session, code, district_id=who.scope, limit=50)
    promoted_ids = [int(x) for x in promoted.split(",") if x.strip().isdigit()]
    audit(session, who, "web", "read", "enrolment", None, who.scope, detail=f"read the enrolment page of {code}")
    return r.render(request, "programs_enrolment.html", {
        "code": code, "summary": summary, "enrolled": enrolled[:listing.PAGE], "waiting": waiting[:listing.PAGE],
        "promoted": promoted_ids, "exited": exited, "error": error, "can_exit": who.can("registry.write"),
        "flagged": flagged, "kept": kept, "pagers": pagers, "filters": filters, "geo": geo,
        "locked": who.scope is not None, "channels": en.CHANNELS,
        "wafter_at": pagers["waiting"].start, "refused": refused_page,
        "columns": {s_: listing.columns(request, tuple(en.SORTS), sorts[s_], param=param, cursor=cursor)
                    for s_, (param, cursor) in SORT_PARAMS.items()}}, who=who, session=session, status=status)


REFUSED_COLUMNS = [("on", "date"), ("household_id", "household"), ("district", "district"),
                   ("person_name", "person"), ("rule", "rule"), ("other_name", "other_program"),
                   ("other_agency", "other_agency"), ("partner", "list_partner"), ("list_reference", "list"),
                   ("partner_ref", "list_line"), ("text", "reason")]


def _refused(request: Request, session, who, code: str, filters: dict, geo, tr, rafter: int | None):
    """The program's refusals because of another program (newest first, by keyset, with its total and
    export), each reason in the reader's language; the district filter applies, the others do not."""
    district = filters.get("district_id")

    def worded(rows: list[dict]) -> list[dict]:
        for x in rows:
            x["text"] = refusal_text(tr, x)
            x["other_name"] = r.program_name(tr, x["other_program"])
            x["other_agency"] = r.agency_name(tr, x["other_agency"])
            x["district"] = r._district_name(tr, geo.district_by_id.get(x["district_id"]))
        return rows

    fmt = listing.wants_export(request, "refused")
    if fmt:
        return listing.export(
            request, session, who, fmt, name=f"{code}_refused", entity="enrolment", columns=REFUSED_COLUMNS,
            chunks=(worded(rows) for rows in listing.keyset_chunks(
                lambda a, n: en.refusals(session, program=code, district_id=district, after=a, limit=n),
                lambda x: x["id"])), detail=f"the refusals of {code}")
    rows = worded(en.refusals(session, program=code, district_id=district, after=rafter, limit=listing.PAGE + 1))
    pager = listing.pager(request, total=en.count_refusals(session, program=code, district_id=district),
                          shown=len(rows[:listing.PAGE]), cursor="rafter", id="refused", others=("after", "wafter"),
                          next_after=rows[listing.PAGE - 1]["id"] if len(rows) > listing.PAGE else None)
    return {"rows": rows[:listing.PAGE], "pager": pager}


@router.get("/programs/{code}/enrolment")
def page(request: Request, code: str, session: DB, who: User, promoted: str = "",
         exited: QueryId = None, kept: QueryId = None, after: After = None, wafter: After = None,
         district_id: FilterId = None, tehsil_id: FilterId = None, channel: str = "", rafter: After = None) -> Response:
    """A program's enrolled households and waiting list, each paged by keyset with its total for
    the filters (district and tehsil, payment channel) and its export; and who was refused because
    of another program, with the reason."""
    return _page(request, session, who, code, promoted, exited, kept=kept, after=after, wafter=wafter,
                 filters=_filters(who, district_id, tehsil_id, channel), rafter=rafter)


def _decide(request: Request, session, who, code: str, enrolment_id: int, decide, action: str, reason: str,
            then) -> Response:
    """An officer's decision on one enrolment from the program page: refused without the right or
    outside the district, a refusal of the rule shown on the page (422), else audited and sent back
    to the page (``then``: the page's query string, from the decision's result)."""
    tr = r._tr(request)
    if not who.can("registry.write"):
        audit(session, who, "web", action, "enrolment", enrolment_id, outcome="denied",
              detail=f"refused: a {who.role.replace('_', ' ')} may not {action} an enrolment of {code}")
        return r.error_page(request, session, who, 403, tr("programs.cannot_exit"))
    try:
        out = decide(reason.strip())
    except en.OutOfScope:
        session.rollback()
        audit(session, who, "web", action, "enrolment", enrolment_id, outcome="denied",
              detail=f"refused: enrolment {enrolment_id} of {code} is outside district {who.scope}")
        return r.error_page(request, session, who, 403, tr("error.outside_district"))
    except en.EnrolmentError as exc:
        session.rollback()
        return _page(request, session, who, code, error=str(exc), status=422)
    audit(session, who, "web", action, "enrolment", enrolment_id, detail=reason[:200])
    return RedirectResponse(f"/programs/{code}/enrolment?{then(out)}", status_code=303)


@router.post("/programs/{code}/enrolment/{enrolment_id}/keep")
def keep(request: Request, code: str, enrolment_id: Id, session: DB, who: User,
         reason: Annotated[str, Form()] = "") -> Response:
    """An officer checked an enrolment flagged after a registry update and keeps it, saying why."""
    return _decide(request, session, who, code, enrolment_id, lambda why: reassessment.clear_review(
        session, enrolment_id, why, who.username, district_scope=who.scope), "keep", reason,
        lambda _: f"kept={enrolment_id}")


@router.post("/programs/{code}/enrolment/{enrolment_id}/exit")
def exit_(request: Request, code: str, enrolment_id: Id, session: DB, who: User,
          reason: Annotated[str, Form()] = "") -> Response:
    """An officer exits an enrolment; the next on the waiting list takes the place (the page says who)."""
    return _decide(request, session, who, code, enrolment_id, lambda why: en.end(
        session, enrolment_id, "exited", why, who.username, district_scope=who.scope), "exit", reason,
        lambda out: f"exited={enrolment_id}&promoted=" + ",".join(str(i) for i in out["promoted_ids"]))


@router.get("/programs")
def programs_page(request: Request, session: DB, who: User, pillar: str = "") -> Response:
    """The program catalogue beside what each program holds today (enrolled, waiting, within the
    user's district), with the way into each program's enrolment page (payments: ``web/payments.py``)."""
    from isps import catalogue

    chosen = pillar if pillar in catalogue.PILLARS else None
    counts = en.overview(session, district_id=who.scope)
    tr = r._tr(request)
    rows = [{"code": p.code, "name": r.program_name(tr, p.code), "agency": p.agency, "level": p.level, "pillar": p.pillar,
             "benefit_type": p.benefit_type, "amount": p.amount_pkr, "frequency": p.frequency,
             "enrolled": counts.get(p.code, {}).get("enrolled", 0), "waiting": counts.get(p.code, {}).get("waiting", 0),
             "enrols_here": p.code in en.DEFAULT_POLICIES or p.code in counts}
            for p in catalogue.programs(session, pillar=chosen)]
    rows.sort(key=lambda r: (not r["enrols_here"], -r["enrolled"], r["name"]))  # by name in the page's language
    audit(session, who, "web", "read", "program_catalogue", None, who.scope, detail=f"read the program catalogue ({chosen or 'all pillars'})")
    return r.render(request, "programs.html", {
        "rows": rows, "pillars": catalogue.PILLARS, "pillar": chosen or ""}, who=who, session=session)
