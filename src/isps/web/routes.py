"""The web app: server-rendered pages (Jinja2 + htmx) for district offices and One Window counters.

Pages sign in with the same users and roles as the API and keep the signed token in
the ``isps_session`` cookie (http-only, SameSite=Lax). People's records are read only
through :mod:`isps.services.household_file`, so the district scope and the audit log
apply exactly as they do for the API (channel ``web``). Everything the pages need is
served from here (htmx is vendored in ``static/``), so a counter works without the
internet. Labels come from ``i18n/en.json`` and ``i18n/ur.json`` (see :mod:`isps.web.lang`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session

from isps.registry import current
from isps.access.service import TRAIL_DEFAULT_SORT, TRAIL_SORTS
from isps.access.service import (ACTIONS, DCI_ACTIONS, OUTCOMES, AccessError, AccountLocked, AuthError, Principal,
                                 TooManyAttempts, audit, audit_trail, count_trail, sign_in)
from isps.access.service import unlock as access_unlock
from isps.api.deps import SESSION_COOKIE, client_address
from isps.api.params import MAX_ID
from isps.web.common import FilterDay, FilterId  # a filter form's empty fields are no filter
from isps.registry import cnic as cnic_rules
from isps.registry import vocab
from isps.registry.cnic import CnicError
from isps.registry.models import District, Tehsil, UnionCouncil
from isps.registry.service import OutOfScope, RegistryError, history
from isps.services import household_file as files
from isps.services.household_file import search_sentence
from isps.targeting import pmt, vulnerability
from isps.targeting.eligibility import rules as eligibility
from isps.targeting.models import PmtScore
from isps.targeting.search import SearchError, count_households, search_households
from isps.web import lang as i18n
from isps.keyset import Sort, SortError
from isps.keyset import parse as parse_sort
from isps.targeting.search import SORTS as SEARCH_SORTS
from isps.web.listing import columns, export, keyset_chunks, pager, sort_of, wants_export
from isps.web.common import tehsil_name
from isps.web.common import (CHANNEL, DB, open_household, HERE, FormRefused, Geography, SignInRequired, User, _district_name,
                             _form_refused, _is_htmx, _safe_next, _sign_in_required, _tr, bad_address_page,
                             csrf_guard, error_page, origin_guard, render)

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25
AUDIT_PAGE = 100

HOUSING = ("tenure", "rooms", "roof", "wall", "toilet", "drinking_water", "electricity", "cooking_fuel")
ASSETS = ("land_acres", "cattle", "goats_sheep", "tractor")
EDITABLE = ("rooms", "roof", "toilet", "electricity", "fridge", "motorcycle", "car", "land_acres")


# ---------------------------------------------------------------- sign in, sign out, language

@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None, "username": ""})


@router.post("/login", dependencies=[Depends(origin_guard)])
def login(request: Request, session: DB, username: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    tr = _tr(request)
    try:
        who = sign_in(session, username, password, client_address(request), CHANNEL)
    except AuthError as exc:
        session.commit()  # the failure's count and audit record are kept
        status, key = ((429, "error.throttled") if isinstance(exc, TooManyAttempts) else
                       (403, "error.locked") if isinstance(exc, AccountLocked) else (401, "login.error"))
        return render(request, "login.html", {"next": _safe_next(next), "error": tr(key), "username": username},
                      status=status)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    tokens = request.app.state.tokens
    resp.set_cookie(SESSION_COOKIE, tokens.issue(session, who, CHANNEL), max_age=tokens.max_age, path="/",
                    httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return resp


@router.post("/logout", dependencies=[Depends(csrf_guard)])
def logout(request: Request, session: DB) -> Response:
    """Sign out: the session is revoked on the server, so a copy of the cookie no longer works."""
    token = request.cookies.get(SESSION_COOKIE)
    tokens = request.app.state.tokens
    try:
        who = tokens.principal(session, token) if token else None
    except AuthError:
        who = None
    tokens.revoke(session, token)
    if who is not None:
        audit(session, who, CHANNEL, "sign_out", "user", detail=f"signed out from {client_address(request)}")
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/lang/{code}")
def set_language(code: str, next: str = "/") -> Response:
    resp = RedirectResponse(_safe_next(next), status_code=303)
    if code in i18n.LANGUAGES:
        resp.set_cookie(i18n.COOKIE, code, max_age=365 * 24 * 3600, path="/", samesite="lax")
    return resp


# ---------------------------------------------------------------- registry search

@dataclass
class SearchForm:
    district_id: int | None = None
    tehsil_id: int | None = None
    pmt_min: float | None = None
    pmt_max: float | None = None
    name: str = ""
    after: int | None = None
    scope_refused: int | None = None  # the other district a scoped user asked for (refused, audited)
    raw: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    sort: Sort = field(default_factory=lambda: Sort("id"))
    sort_error: str | None = None  # a sort the results do not offer (the page answers 400)

    def query(self, after: int | None = None, sort: bool = True) -> str:
        """The filters (and the order, unless ``sort`` is False) as a query string (for "more",
        the column headers, the exports and the address bar)."""
        keep = {k: v for k, v in self.raw.items() if k in ("district_id", "tehsil_id", "pmt_min", "pmt_max", "name")
                + (("sort",) if sort else ()) and v}
        if after is not None:
            keep["after"] = str(after)
        return urlencode(keep)


def _parse_search(params, who: Principal, tr: i18n.Translator) -> SearchForm:
    raw = {k: (params.get(k) or "").strip()
           for k in ("district_id", "tehsil_id", "pmt_min", "pmt_max", "name", "after", "sort")}
    form = SearchForm(name=raw["name"][:80], raw=raw)
    try:
        form.sort = parse_sort(raw["sort"], tuple(SEARCH_SORTS), Sort("id"))
    except SortError as exc:
        form.sort_error = str(exc)
    for key in ("district_id", "tehsil_id", "after"):
        if raw[key]:
            value = _record_id(raw[key], lowest=0 if key == "after" else 1)
            if value is None:
                form.errors.append(tr("search.error.number", field=tr(f"search.{key}")))
            else:
                setattr(form, key, value)
    for key in ("pmt_min", "pmt_max"):
        if raw[key]:
            try:
                value = float(raw[key])
            except ValueError:
                value = -1.0
            if not 0 <= value <= 100:
                form.errors.append(tr("search.error.pmt", field=tr(f"search.{key}")))
            else:
                setattr(form, key, value)
    if form.pmt_min is not None and form.pmt_max is not None and form.pmt_min > form.pmt_max:
        form.errors.append(tr("search.error.range"))
    if who.scope is not None:
        if form.district_id not in (None, who.scope):
            form.errors.append(tr("search.error.scope"))
            form.scope_refused = form.district_id
        form.district_id = who.scope
        raw["district_id"] = str(who.scope)
    return form


@dataclass
class Results:
    rows: list[dict]
    next_after: int | None
    query: str
    error: str | None = None
    total: int | None = None  # how many households match the filters (all pages)
    columns: dict = field(default_factory=dict)  # the sortable headers (isps.web.listing.Column)
    exports: dict = field(default_factory=dict)  # format → address of the export of these results


SEARCH_COLUMNS = [("id", "household"), ("ref", "ref"), ("district", "district"), ("tehsil", "tehsil"),
                  ("area", "area"), ("address", "address"), ("head_name", "head_name"),
                  ("head_cnic_masked", "head_cnic_masked"), ("pmt", "pmt")]


def _search_filters(session: Session, who: Principal, form: SearchForm) -> dict:
    model = pmt.active_model(session)
    return {"district_id": form.district_id, "tehsil_id": form.tehsil_id, "pmt_min": form.pmt_min,
            "pmt_max": form.pmt_max, "name": form.name or None, "model_id": model.id if model else None,
            "district_scope": who.scope}


def _named_rows(rows: list[dict], geo: Geography, tr: i18n.Translator) -> list[dict]:
    for r in rows:
        r["district"] = _district_name(tr, geo.district_by_id.get(r["district_id"]))
        r["tehsil"] = tehsil_name(tr, geo.tehsil_by_id.get(r["tehsil_id"]))
        r["area"] = "urban" if r.get("urban") else "rural"
        r["pmt"] = None if r.get("score") is None else f"{r['score']:.2f}"  # as the page shows it
    return rows


def _search_links(request: Request, form: SearchForm) -> tuple[dict, dict]:
    """The column headers' addresses (each a new order from the first page, on the search page
    wherever it is routed) and the export addresses (the same filters and order)."""
    cols = columns(request, tuple(SEARCH_SORTS), form.sort, path=request.url_for("search_page").path)
    query = form.query()
    exports = {fmt: "/search/results?" + (query + "&" if query else "") + f"format={fmt}&list=search"
               for fmt in ("csv", "xlsx")}
    return cols, exports


def _export_search(request: Request, session: Session, who: Principal, form: SearchForm, fmt: str,
                   geo: Geography, tr: i18n.Translator) -> Response:
    """The whole of what the search shows (its filters, its order), CSV or Excel, CNICs masked as
    on the page, audited as an export (:func:`isps.web.listing.export`)."""
    if form.scope_refused is not None:  # refused and audited, as the page's search is
        audit(session, who, CHANNEL, "export", "household", district_id=form.scope_refused, outcome="denied",
              detail=f"refused: a {who.role.replace('_', ' ')} of district {who.scope} asked for an export of "
                     f"district {form.scope_refused}")
        session.commit()
        return error_page(request, session, who, 403, tr("search.error.scope"))
    if form.errors or form.sort_error:
        return error_page(request, session, who, 400, " ".join(form.errors) or form.sort_error)
    filters = _search_filters(session, who, form)
    try:
        count_households(session, **filters)  # the scope and the name's length checked before anything is written
    except OutOfScope:
        return error_page(request, session, who, 403, tr("search.error.scope"))
    except SearchError as exc:
        return error_page(request, session, who, 400, str(exc))
    chunks = keyset_chunks(lambda a, n: _named_rows(search_households(session, after=a, limit=n, sort=form.sort,
                                                                      **filters).rows, geo, tr),
                           lambda r: r["id"])
    asked = search_sentence(form.tehsil_id, form.pmt_min, form.pmt_max, form.name, 0)
    asked = asked.removeprefix("searched ").rsplit(":", 1)[0]  # what was asked, without the count
    return export(request, session, who, fmt, name="households", entity="household", columns=SEARCH_COLUMNS,
                  chunks=chunks, detail=f"the search results of {asked}"
                  + (f" in district {form.district_id}" if form.district_id else "") + f", sorted by {form.sort.param}")


def _run_search(session: Session, who: Principal, form: SearchForm, geo: Geography, tr: i18n.Translator) -> Results:
    if form.scope_refused is not None:
        audit(session, who, CHANNEL, "search", "household", district_id=form.scope_refused, outcome="denied",
              detail=f"refused: a {who.role.replace('_', ' ')} of district {who.scope} asked for households of "
                     f"district {form.scope_refused}")
    if form.errors:
        return Results([], None, form.query(), error=" ".join(form.errors))
    filters = _search_filters(session, who, form)
    try:
        page = search_households(session, after=form.after, limit=PAGE_SIZE, sort=form.sort, **filters)
        total = count_households(session, **filters) if form.after is None else None  # the first page says it
    except OutOfScope:
        return Results([], None, form.query(), error=tr("search.error.scope"))
    except SearchError as exc:
        return Results([], None, form.query(), error=str(exc))
    audit(session, who, CHANNEL, "search", "household", district_id=form.district_id or who.scope,
          detail=search_sentence(form.tehsil_id, form.pmt_min, form.pmt_max, form.name, len(page.rows), form.after))
    _named_rows(page.rows, geo, tr)
    return Results(page.rows, page.next_after, form.query(), None, total)


def _wants_results(params) -> bool:
    return any(k in params for k in ("district_id", "tehsil_id", "pmt_min", "pmt_max", "name", "after", "search",
                                     "sort"))


@router.get("/search")
def search_page(request: Request, session: DB, who: User) -> Response:
    """The registry search: filters, the results in the chosen order with their count, and the
    export of what they show."""
    tr = _tr(request)
    geo = Geography.load(session)
    form = _parse_search(request.query_params, who, tr)
    if form.sort_error:
        return bad_address_page(request, form.sort_error, 400)
    fmt = wants_export(request, "search")
    if fmt:
        return _export_search(request, session, who, form, fmt, geo, tr)
    results = _run_search(session, who, form, geo, tr) if _wants_results(request.query_params) else None
    if results is not None:
        results.columns, results.exports = _search_links(request, form)
    return render(request, "search.html", {"form": form, "geo": geo, "results": results, "locked": who.scope is not None,
                                           "tehsils": geo.tehsils_of(form.district_id), "cnic_result": None},
                  who=who, session=session)


@router.get("/search/results")
def search_results(request: Request, session: DB, who: User) -> Response:
    """The results table (or, with ``after``, just the next rows) for htmx to swap in."""
    tr = _tr(request)
    geo = Geography.load(session)
    form = _parse_search(request.query_params, who, tr)
    if form.sort_error:
        return bad_address_page(request, form.sort_error, 400)
    fmt = wants_export(request, "search")
    if fmt:
        return _export_search(request, session, who, form, fmt, geo, tr)
    results = _run_search(session, who, form, geo, tr)
    results.columns, results.exports = _search_links(request, form)
    headers = {}
    if _is_htmx(request) and form.after is None:
        headers["HX-Push-Url"] = "/search?" + (results.query or "search=1")
    name = "_rows.html" if form.after is not None and not results.error else "_results.html"
    return render(request, name, {"results": results}, headers=headers)


@router.get("/search/tehsils")
def tehsil_options(request: Request, session: DB, who: User, district_id: str = "") -> Response:
    try:
        chosen = int(district_id) if district_id else None
    except ValueError:
        chosen = None
    if who.scope is not None:
        chosen = who.scope
    geo = Geography.load(session)
    return render(request, "_tehsils.html", {"tehsils": geo.tehsils_of(chosen), "selected": None})


@router.post("/search/cnic")
def cnic_lookup(request: Request, session: DB, who: User, cnic: Annotated[str, Form()] = "") -> Response:
    """A CNIC typed at the counter goes to the person's household. Sent by POST so the number
    stays out of addresses, history and logs."""
    tr = _tr(request)
    people, message = [], None
    try:
        people = files.lookup_cnic(session, who, cnic, CHANNEL)
    except CnicError as exc:
        message = str(exc) if tr.code == "en" else tr("cnic.invalid")
    except OutOfScope:
        session.commit()  # keep the audit record of the refusal
        message = tr("cnic.out_of_scope")
    except files.NotFound:
        session.commit()
        message = tr("cnic.not_found")
    if len(people) == 1:
        session.commit()
        target = f"/households/{people[0].household_id}#person-{people[0].id}"
        if _is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    found = [{"id": p.id, "household_id": p.household_id, "name": p.full_name,
              "father_husband_name": p.father_husband_name, "cnic": cnic_rules.mask(p.cnic)} for p in people]
    context = {"cnic_result": {"message": message, "people": found}}
    if _is_htmx(request):
        return render(request, "_cnic.html", context)
    geo = Geography.load(session)
    form = _parse_search({}, who, tr)
    return render(request, "search.html", {"form": form, "geo": geo, "results": None, "locked": who.scope is not None,
                                           "tehsils": geo.tehsils_of(form.district_id), **context},
                  who=who, session=session, status=200 if people else 422)


# ---------------------------------------------------------------- the household page

def _age(born: date, died: date | None) -> int:
    end = died or date.today()
    return end.year - born.year - ((end.month, end.day) < (born.month, born.day))


def _household_view(session: Session, f: files.HouseholdFile, tr: i18n.Translator) -> dict:
    hh = f.household
    uc = session.get(UnionCouncil, hh.uc_id) if hh.uc_id else None
    district = session.get(District, hh.district_id)
    members = [{"id": m.id, "roster_line": m.roster_line, "name": m.full_name,
                "father_husband_name": m.father_husband_name or "—",
                "relation": tr.value("relation_to_head", m.relation_to_head), "sex": tr.value("sex", m.sex),
                "age": _age(m.date_of_birth, m.date_of_death), "date_of_birth": m.date_of_birth.isoformat(),
                "cnic": cnic_rules.formatted(m.cnic) if m.cnic else None,
                "bform": m.id_document == "bform", "marital": tr.value("marital_status", m.marital_status),
                "education": tr.value("education", m.education), "labour": tr.value("labour_status", m.labour_status),
                "disability": tr.value("disability", m.disability), "has_disability": m.disability != "none",
                "maternal": tr.value("maternal_status", getattr(m, "maternal_status", None))
                if getattr(m, "maternal_status", None) not in (None, "none") else None,
                "deceased": m.date_of_death.isoformat() if m.date_of_death else None,
                "left": m.left_on.isoformat() if m.left_on else None, "left_reason": m.left_reason} for m in f.members]
    income = getattr(hh, "monthly_income", None)  # declared by the family, where the registry holds it
    return {
        "id": hh.id, "ref": hh.ref, "address": hh.address, "district": _district_name(tr, district),
        "tehsil": tehsil_name(tr, session.get(Tehsil, hh.tehsil_id)),
        "uc": uc.name if uc else "—", "area": tr("area.urban" if hh.urban else "area.rural"),
        "surveyed_on": hh.surveyed_on.isoformat(), "verified_on": hh.verified_on.isoformat(), "version": hh.version,
        "housing": [(tr.field(k), tr.value(k, getattr(hh, k))) for k in HOUSING],
        "durables": [(tr.field(k), getattr(hh, k)) for k in vocab.DURABLES],
        "assets": [(tr.field(k), tr.value(k, getattr(hh, k))) for k in ASSETS]
        + ([(tr.field("monthly_income"), f"{income:,.0f}")] if income is not None else []),
        "members": members, "living": sum(1 for m in f.members if current.is_current(m)),
        "current": {k: getattr(hh, k) for k in EDITABLE},
    }


def _score_view(session: Session, household_id: int, tr: i18n.Translator) -> dict | None:
    b = pmt.breakdown(session, household_id)
    if b is None:
        return None
    biggest = max([abs(b.base_points), *(abs(c.points) for c in b.contributions)] or [1.0]) or 1.0
    parts = []
    for c in b.contributions:
        name = c.indicator.partition(":")[0]
        kind = pmt.INDICATORS[name].kind
        if kind == "numeric":  # SQLite gives int/float, PostgreSQL Decimal
            shown = f"{float(c.value or 0):.2f}".rstrip("0").rstrip(".")
        elif kind == "flag":  # SQLite gives 0/1, PostgreSQL a bool
            shown = tr("yes" if c.value else "no")
        else:
            shown = tr.value(name, c.value)
        parts.append({"key": c.indicator, "label": tr(f"ind.{name}"), "value": shown, "weight": c.weight,
                      "points": c.points, "width": round(50 * abs(c.points) / biggest, 2)})
    raw = b.base_points + sum(c.points for c in b.contributions)
    return {"model": b.model, "version": b.model_version, "score": b.score, "region": tr(f"area.{b.region}"),
            "scored_at": b.scored_at, "base": b.base_points, "base_width": round(50 * abs(b.base_points) / biggest, 2),
            "parts": parts, "raw": raw, "clamped": abs(raw - b.score) > 0.005,
            "moving": [p for p in parts if abs(p["points"]) >= 0.005],
            "still": [p for p in parts if abs(p["points"]) < 0.005]}


def _timeline_view(session: Session, household_id: int, tr: i18n.Translator) -> list[dict]:
    out = []
    for e in history(session, household_id):
        out.append({"effective_date": e.effective_date.isoformat(), "recorded_at": e.recorded_at.strftime("%Y-%m-%d %H:%M"),
                    "registered": e.what == "registered",
                    "field": tr.field(e.field) if e.field else None,
                    "old": tr.value(e.field, e.old_value) if e.field else None,
                    "new": tr.value(e.field, e.new_value) if e.field else None,
                    "person": e.person, "source": tr.value("source", e.source), "actor": e.actor,
                    "source_ref": e.source_ref})
    return out


def _programs_view(session: Session, household_id: int, tr: i18n.Translator) -> list[dict]:
    """Every program's decision for the household, one row per program: for a member program, who
    of the members considered is eligible, and each reason once with the members it concerns (a
    reason shared by all of them is said once), instead of one near-identical row per member."""
    out = []
    for _, rule in eligibility.active_rules(session):
        decisions = eligibility.explain(session, rule, household_id, lang=tr.code)
        if not decisions:
            continue
        members = [d for d in decisions if d.person]
        reasons: dict[str, list[str]] = {}
        for d in decisions:
            for o in d.outcomes:
                if o.met == d.eligible and o.sentence:
                    reasons.setdefault(o.sentence, []).append(d.person or "")
        eligible = [d.person for d in members if d.eligible]
        out.append({
            "program": rule.name, "code": rule.code, "eligible": any(d.eligible for d in decisions),
            "members": len(members), "eligible_people": eligible,
            "person": None if members else decisions[0].person,
            "reasons": [{"text": text, "who": [] if len(who) == max(len(decisions), 1) else who}
                        for text, who in reasons.items()]})
    out.sort(key=lambda r: (not r["eligible"], r["program"]))
    return out


def _household_response(request: Request, session: Session, who: Principal, household_id: int, *,
                        edit: dict | None = None, status: int = 200, saved: list[str] | None = None,
                        was: float | None = None) -> Response:
    tr = _tr(request)
    f, refused = open_household(request, session, who, household_id)
    if refused is not None:
        return refused
    view = _household_view(session, f, tr)
    edit = edit or {"values": {k: _form_value(k, v) for k, v in view["current"].items()},
                    "effective_date": date.today().isoformat(), "source_ref": "", "error": None, "bad": None}
    return render(request, "household.html", {
        "hh": view, "score": _score_view(session, household_id, tr), "timeline": _timeline_view(session, household_id, tr),
        "programs": _programs_view(session, household_id, tr),
        "vulnerability": vulnerability.breakdown(session, household_id),
        "edit": edit, "choices": {k: vocab.HOUSEHOLD_CATEGORICAL[k] for k in ("roof", "toilet")},
        "saved": [tr.field(s) for s in saved] if saved is not None else None, "was": was, "today": date.today().isoformat(),
    }, who=who, session=session, status=status)


def _form_value(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def _record_id(raw: str, lowest: int = 1) -> int | None:
    """A record id (or keyset cursor) typed into an address: a whole number a database key can hold
    (up to 2⁶³-1), or None; a larger one would overflow the driver."""
    try:
        value = int(raw.strip())
    except (ValueError, AttributeError):
        return None
    return value if lowest <= value <= MAX_ID else None


def _household_id(raw: str) -> int | None:
    return _record_id(raw)


@router.get("/households/{household_id}")
def household_page(request: Request, household_id: str, session: DB, who: User,
                   saved: str | None = None, was: str = "") -> Response:
    hid = _household_id(household_id)
    if hid is None:
        return error_page(request, session, who, 404, _tr(request)("error.no_household", id=household_id))
    fields = [s for s in saved.split(",") if s in EDITABLE] if saved is not None else None
    try:
        before = float(was) if was else None
    except ValueError:
        before = None
    return _household_response(request, session, who, hid, saved=fields, was=before)


@router.post("/households/{household_id}/edit")
def edit_household(request: Request, household_id: str, session: DB, who: User,
                   rooms: Annotated[str, Form()] = "", roof: Annotated[str, Form()] = "",
                   toilet: Annotated[str, Form()] = "", electricity: Annotated[str, Form()] = "",
                   fridge: Annotated[str, Form()] = "", motorcycle: Annotated[str, Form()] = "",
                   car: Annotated[str, Form()] = "", land_acres: Annotated[str, Form()] = "",
                   effective_date: Annotated[str, Form()] = "", source_ref: Annotated[str, Form()] = "") -> Response:
    """An officer's correction of a few indicators, kept with source "operator" and re-scored at once."""
    tr = _tr(request)
    hid = _household_id(household_id)
    if hid is None:
        return error_page(request, session, who, 404, tr("error.no_household", id=household_id))
    if not who.can("registry.write"):
        return error_page(request, session, who, 403, tr("error.cannot_edit", role=tr(f"role.{who.role}")))
    values = {"rooms": rooms, "roof": roof, "toilet": toilet, "electricity": electricity, "fridge": fridge,
              "motorcycle": motorcycle, "car": car, "land_acres": land_acres}
    values = {k: v.strip() for k, v in values.items()}
    edit = {"values": values, "effective_date": effective_date.strip(), "source_ref": source_ref.strip()[:200],
            "error": None, "bad": None}
    try:
        when = date.fromisoformat(edit["effective_date"]) if edit["effective_date"] else date.today()
        if when > date.today():
            raise ValueError
    except ValueError:
        edit.update(error=tr("edit.error.date"), bad="effective_date")
        return _household_response(request, session, who, hid, edit=edit, status=422)
    model = pmt.active_model(session)
    before = session.get(PmtScore, (model.id, hid)) if model else None
    was = before.score if before else None
    try:
        changed = files.edit_household(session, who, hid, values, files.USER_SOURCE, when, edit["source_ref"] or None,
                                       CHANNEL)
    except OutOfScope:
        session.commit()
        return error_page(request, session, who, 403, tr("error.outside_district", id=hid))
    except AccessError:
        return error_page(request, session, who, 403, tr("error.cannot_edit", role=tr(f"role.{who.role}")))
    except RegistryError as exc:
        session.rollback()
        message = str(exc)
        bad = next((k for k in EDITABLE if f": {k} " in message or message.endswith(f": {k}")), None)
        if tr.code != "en" and bad:
            message = f"{tr('edit.error.field', field=tr.field(bad))} ({message})"
        edit.update(error=message, bad=bad)
        return _household_response(request, session, who, hid, edit=edit, status=422)
    session.commit()
    query = urlencode({"saved": ",".join(changed), **({"was": f"{was:.4f}"} if was is not None else {})})
    return RedirectResponse(f"/households/{hid}?{query}#score", status_code=303)


# ---------------------------------------------------------------- the audit log

AUDIT_COLUMNS = [("id", "id"), ("at", "at"), ("actor", "actor"), ("role", "role"), ("channel", "channel"),
                 ("action", "action"), ("entity", "entity"), ("entity_id", "entity_id"), ("district", "district"),
                 ("outcome", "outcome"), ("detail", "detail")]
AUDIT_ENTITIES = ("household", "individual", "enrolment", "match_candidate", "payroll", "user", "request")


@router.get("/audit")
def audit_page(request: Request, session: DB, who: User, actor: Annotated[str, Query(max_length=60)] = "",
               entity: str = "", entity_id: str = "", before_id: str = "", action: str = "", outcome: str = "",
               district_id: FilterId = None, since: FilterDay = None, until: FilterDay = None) -> Response:
    """The audit log newest first, a page at a time by keyset (``before_id``), with its total for the
    filters (who, what, which record, outcome, district, days) and its export (itself audited)."""
    tr = _tr(request)
    if not who.can("audit.read"):
        return error_page(request, session, who, 403, tr("error.audit_forbidden", role=tr(f"role.{who.role}")))
    def as_int(raw: str) -> int | None:
        return _record_id(raw) if raw.strip() else None
    for name, raw in (("entity_id", entity_id), ("before_id", before_id)):
        if raw.strip() and as_int(raw) is None:
            return bad_address_page(request, f"{name} must be a record id from 1 to {MAX_ID}", 400)
    try:  # the order chosen by a column header (whitelisted); the cursor is the last id shown in it
        sort = sort_of(request, tuple(TRAIL_SORTS), TRAIL_DEFAULT_SORT)
    except SortError as exc:
        return bad_address_page(request, str(exc), 400)
    entity = entity if entity in AUDIT_ENTITIES else ""
    query = {"entity": entity or None, "entity_id": as_int(entity_id), "actor": actor.strip() or None,
             "action": action if action in ACTIONS | DCI_ACTIONS else None, "outcome": outcome if outcome in OUTCOMES else None,
             "district_id": district_id, "since": since, "until": until}
    geo = Geography.load(session)

    def view(rows, label) -> list[dict]:
        return [{"id": a.id, "at": a.at.strftime("%Y-%m-%d %H:%M:%S") if a.at else "", "actor": a.actor,
                 "role": label(f"role.{a.role}"), "channel": label(f"channel.{a.channel}"),
                 "action": label(f"action.{a.action}"), "entity": label(f"entity.{a.entity}"), "entity_id": a.entity_id,
                 "link": a.entity == "household" and a.entity_id is not None,
                 "district": _district_name(tr, geo.district_by_id.get(a.district_id)) if a.district_id else "—",
                 "outcome": a.outcome, "outcome_label": label(f"outcome.{a.outcome}"), "detail": a.detail or ""}
                for a in rows]

    fmt = wants_export(request, "audit")
    if fmt:  # the codes, not the labels: an export is read by tools as much as by people
        chunks = keyset_chunks(lambda before, n: audit_trail(session, limit=n, before_id=before, sort=sort, **query),
                               lambda a: a.id)
        return export(request, session, who, fmt, name="audit_log", entity="audit_log", columns=AUDIT_COLUMNS,
                      detail="the audit log", chunks=(view(rows, lambda key: key.split(".", 1)[1]) for rows in chunks))
    rows = audit_trail(session, limit=AUDIT_PAGE + 1, before_id=as_int(before_id), sort=sort, **query)
    entries = view(rows[:AUDIT_PAGE], tr)
    more = rows[AUDIT_PAGE - 1].id if len(rows) > AUDIT_PAGE else None
    filters = {"actor": actor.strip(), "entity": entity, "entity_id": entity_id.strip(),
               "action": query["action"] or "", "outcome": query["outcome"] or "", "district_id": district_id,
               "since": since or "", "until": until or ""}
    pg = pager(request, total=count_trail(session, **query), shown=len(entries), next_after=more, cursor="before_id",
               id="audit")
    done = request.query_params.get("unlocked", "")[:60]
    unlocked = (tr("audit.unlock.done" if request.query_params.get("was") == "1" else "audit.unlock.was_not", name=done)
                if done else None)
    return render(request, "audit.html", {"entries": entries, "filters": filters, "pager": pg, "geo": geo,
                                          "entities": AUDIT_ENTITIES, "actions": sorted(ACTIONS | DCI_ACTIONS), "outcomes": OUTCOMES,
                                          "can_unlock": who.can("users.manage"), "unlocked": unlocked,
                                          "columns": columns(request, tuple(TRAIL_SORTS), sort, cursor="before_id")},
                  who=who, session=session)


@router.post("/users/unlock")
def unlock_user(request: Request, session: DB, who: User, username: Annotated[str, Form()] = "") -> Response:
    """An administrator unlocks an account locked after failed sign-ins (from the audit page)."""
    tr = _tr(request)
    name = username.strip()
    if not who.can("users.manage"):
        audit(session, who, CHANNEL, "unlock", "user", outcome="denied",
              detail=f"refused: a {who.role.replace('_', ' ')} may not unlock accounts ({name[:60]})")
        return error_page(request, session, who, 403, tr("audit.unlock.forbidden", role=tr(f"role.{who.role}")))
    try:
        was = access_unlock(session, who, name, CHANNEL)
    except ValueError:
        return error_page(request, session, who, 404, tr("audit.unlock.unknown", name=name[:60]))
    return RedirectResponse("/audit?" + urlencode({"actor": name, "unlocked": name, "was": int(was)}), status_code=303)


# ---------------------------------------------------------------- the district risk map

@router.get("/risk")
def risk_page(request: Request, session: DB, who: User, shock: str = "flood") -> Response:
    """Per district: exposure to a shock, mean household vulnerability, and the highly vulnerable."""
    tr = _tr(request)
    if shock not in vulnerability.HAZARDS:
        shock = "flood"
    geo = Geography.load(session)
    rows = vulnerability.district_risk(session, shock)
    top = max((r.mean_score or 0 for r in rows), default=0) or 1
    view = [{"name": _district_name(tr, geo.district_by_id.get(r.district_id)), "exposure": r.exposure,
             "households": r.households, "mean": r.mean_score, "high": r.highly_vulnerable, "share": r.share_high,
             "width": round(100 * (r.mean_score or 0) / top, 1), "mine": r.district_id == who.scope} for r in rows]
    return render(request, "risk.html", {"rows": view, "shock": shock, "shocks": vulnerability.HAZARDS,
                                         "scored": any(r.households for r in rows)}, who=who, session=session)


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(__import__("isps.web.home", fromlist=["router"]).router)  # / : the home page
    app.include_router(__import__("isps.web.linkage", fromlist=["router"]).router)  # /sbr review and reports
    app.include_router(__import__("isps.web.programs", fromlist=["router"]).router)  # enrolment pages
    app.include_router(__import__("isps.web.labour", fromlist=["router"]).router)  # labour registries
    app.include_router(__import__("isps.web.updates", fromlist=["router"]).router)  # NSER Plus: conflicts, requests
    app.include_router(__import__("isps.web.payments", fromlist=["router"]).router)  # funds, cycles, payrolls, files
    app.include_router(__import__("isps.web.targeting", fromlist=["router"]).router)  # PMT models, means tests, simulator
    app.include_router(__import__("isps.web.feeds", fromlist=["router"]).router)  # feed deliveries, row reports
    app.include_router(__import__("isps.web.partners", fromlist=["router"]).router)  # DCI partners, consent
    app.include_router(__import__("isps.web.users", fromlist=["router"]).router)  # users, roles, district scopes
    app.include_router(__import__("isps.web.field_offline", fromlist=["router"]).router)  # field work offline in the browser
    app.include_router(__import__("isps.web.enrol", fromlist=["router"]).router)  # applying at the counter, refusals
    app.include_router(__import__("isps.web.worker", fromlist=["router"]).router)  # /admin/worker: background tasks
    app.include_router(__import__("isps.web.selfservice", fromlist=["router"]).router)  # /my: the citizen's own pages
    app.include_router(__import__("isps.web.onewindow", fromlist=["router"]).router)  # find a citizen, benefits, members
    app.include_router(__import__("isps.web.messages", fromlist=["router"]).router)  # SMS: household panel, /messages
    app.include_router(__import__("isps.web.applications", fromlist=["router"]).router)  # One Window applications
    app.include_router(__import__("isps.web.grievances", fromlist=["router"]).router)  # grievance redress
    app.include_router(__import__("isps.web.fieldwork", fromlist=["router"]).router)  # /field: assignments, devices, sites
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(FormRefused, _form_refused)
    app.add_exception_handler(*__import__("isps.web.selfservice", fromlist=["HANDLER"]).HANDLER)  # /my signed out
