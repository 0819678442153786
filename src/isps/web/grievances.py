"""Grievance redress pages: the list (keyset, total, filters, sortable columns, export), the intake
form used at the counter and by the call centre (find the citizen by CNIC, pick the payment), the
receipt, a grievance's file (the linked payment and its ledger trail, the history, and the actions:
assign, note, escalate, resolve with a root cause, record the citizen's confirmation or reopening),
the analytics, and the household page's panel.

Roles: ``grievance.take`` files and sees the receipt; ``grievance.handle`` opens a grievance and acts
on it; district roles only in their district (a 403 page otherwise, audited); auditors read the list
and the analytics. Every read of a grievance and every action is audited (channel ``web``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select, text

from isps.access.service import AccessError, audit
from isps.api.params import After, Id, QueryId
from isps.citizen import receipts
from isps.citizen.grievances import analytics, routing
from isps.citizen.grievances import service as gs
from isps.registry import cnic as cnic_rules
from isps.registry.models import Individual
from isps.registry.service import OutOfScope, find_by_cnic
from isps.services import household_file as files
from isps.web import listing
from isps.web.common import (CHANNEL, DB, open_household, FilterId, Geography, User, _district_name, _tr, error_page, program_name,
                             render)

router = APIRouter(include_in_schema=False)
TAKE, HANDLE = "grievance.take", "grievance.handle"
STATUS_FILTERS = ("pending", "open", "reopened", "resolved", "closed")
LIST_COLUMNS = [("receipt", "receipt"), ("category", "category"), ("status", "status"), ("channel", "channel"),
                ("district", "district"), ("program", "program"), ("agency", "agency"), ("owner", "owner"),
                ("level", "level"), ("opened", "opened_at"), ("due", "due_at"), ("late", "late"),
                ("root_cause", "root_cause"), ("reopen_count", "reopen_count")]


def _refuse(request: Request, session, who, action: str, entity_id: int | None, message: str,
            district_id: int | None = None) -> Response:
    audit(session, who, CHANNEL, action, "grievance", entity_id, district_id if district_id is not None else who.scope,
          outcome="denied", detail=f"refused: {message}"[:300])
    session.commit()
    return error_page(request, session, who, 403, message)


def _can_list(who) -> bool:
    return who.can(TAKE) or who.can(HANDLE) or who.can("audit.read")


def _row(tr, g, geo: Geography, now: datetime) -> dict:
    return {"id": g.id, "receipt": receipts.make("grievance", g.id), "category": tr(f"grv.cat.{g.category}"),
            "category_code": g.category, "status": tr(f"grv.status.{g.status}"), "status_code": g.status,
            "channel": tr(f"grv.channel.{g.channel}"),
            "district": _district_name(tr, geo.district_by_id.get(g.district_id)) if g.district_id else tr("grv.unknown_district"),
            "program": g.program_code or "", "agency": g.agency or "", "owner": g.owner or "",
            "level": tr(f"grv.level.{g.level}"), "opened": g.opened_at.strftime("%Y-%m-%d %H:%M"),
            "due": g.due_at.strftime("%Y-%m-%d %H:%M"), "late": tr("yes") if gs.is_late(g, now) else "",
            "is_late": gs.is_late(g, now), "root_cause": tr(f"grv.root.{g.root_cause}") if g.root_cause else "",
            "reopen_count": g.reopen_count}


# ---------------------------------------------------------------- the list

@router.get("/grievances")
def grievances_page(request: Request, session: DB, who: User, after: After = None, status: str = "",
                    category: str = "", channel: str = "", district_id: FilterId = None, program: str = "",
                    owner: str = "", late: str = "", mine: str = "") -> Response:
    """Grievances of the user's district (or all Punjab), filtered, sorted, a keyset page at a time."""
    tr = _tr(request)
    if not _can_list(who):
        return _refuse(request, session, who, "read", None, tr("grv.no_right"))
    try:
        sort = listing.sort_of(request, tuple(gs.SORTS), gs.DEFAULT_SORT)
    except listing.SortError as exc:
        return error_page(request, session, who, 400, str(exc))
    now = datetime.now()
    filters = {"status": status if status in STATUS_FILTERS else None,
               "category": category if category in gs.CATEGORIES else None,
               "channel": channel if channel in gs.CHANNELS else None, "district_id": district_id,
               "program": program.strip()[:40] or None, "owner": (who.username if mine else owner.strip()[:60]) or None,
               "late": bool(late), "now": now}
    geo = Geography.load(session)
    fmt = listing.wants_export(request, "grievances")
    if fmt:
        return listing.export(request, session, who, fmt, name="grievances", entity="grievance", columns=LIST_COLUMNS,
                              detail="the grievances",
                              chunks=([_row(tr, g, geo, now) for g in rows] for rows in listing.keyset_chunks(
                                  lambda a, n: gs.list_grievances(session, who.scope, after=a, limit=n, sort=sort,
                                                                  **filters), lambda r: r.id)))
    rows = gs.list_grievances(session, who.scope, after=after, limit=listing.PAGE + 1, sort=sort, **filters)
    view = [_row(tr, g, geo, now) for g in rows[:listing.PAGE]]
    pager = listing.pager(request, total=gs.count_grievances(session, who.scope, **filters), shown=len(view),
                          id="grievances", next_after=rows[listing.PAGE - 1].id if len(rows) > listing.PAGE else None)
    audit(session, who, CHANNEL, "read", "grievance", None, who.scope, detail="read the list of grievances")
    session.commit()
    programs = sorted(set(session.scalars(text("SELECT DISTINCT program_code FROM grievance WHERE program_code IS NOT NULL"))))
    return render(request, "grievances.html", {
        "rows": view, "pager": pager, "geo": geo, "locked": who.scope is not None,
        "columns": listing.columns(request, tuple(gs.SORTS), sort), "can_take": who.can(TAKE),
        "can_handle": who.can(HANDLE), "categories": gs.CATEGORIES, "channels": gs.CHANNELS,
        "statuses": STATUS_FILTERS, "programs": programs,
        "f": {"status": status, "category": category, "channel": channel, "district_id": district_id,
              "program": program, "owner": owner, "late": late, "mine": mine}}, who=who, session=session)


# ---------------------------------------------------------------- intake

def _person_found(session, who, raw: str) -> dict:
    """The citizen a CNIC names, their household's members and payments (within the user's district)."""
    try:
        number = cnic_rules.validate(raw)
    except cnic_rules.CnicError as exc:
        raise gs.GrievanceError(f"cnic: {exc}") from None
    try:
        people = find_by_cnic(session, number, who.scope)
    except OutOfScope:
        raise gs.GrievanceError(f"cnic: {cnic_rules.mask(number)} is registered outside your district") from None
    if not people:
        raise gs.GrievanceError(f"cnic: no person with CNIC {cnic_rules.mask(number)} is in the registry; "
                                "file the grievance without a household")
    return _household_found(session, people[0], cnic_rules.mask(number))


def _household_found(session, person: Individual, masked: str) -> dict:
    members = list(session.scalars(select(Individual).where(Individual.household_id == person.household_id)
                                   .order_by(Individual.id)))
    return {"person": person, "cnic": masked, "household_id": person.household_id,
            "district_id": person.district_id, "members": members,
            "payments": gs.payments_of_household(session, person.household_id)}


def _intake(request: Request, session, who, *, found: dict | None = None, error: str | None = None,
            form: dict | None = None, status: int = 200) -> Response:
    geo = Geography.load(session)
    outlets = session.execute(text("SELECT id, name, district_id FROM cash_outlet "
                                   + ("WHERE district_id = :d " if who.scope is not None else "")
                                   + "ORDER BY name LIMIT 500"), {"d": who.scope}).mappings().all()
    from isps.catalogue import programs as catalogue_programs

    return render(request, "grievance_new.html", {
        "found": found, "error": error, "form": form or {}, "categories": gs.CATEGORIES, "channels": gs.CHANNELS,
        "geo": geo, "locked": who.scope is not None, "outlets": outlets,
        "programs": [p.code for p in catalogue_programs(session)]}, who=who, session=session, status=status)


@router.get("/grievances/new")
def new_grievance(request: Request, session: DB, who: User, household: QueryId = None) -> Response:
    """The intake form: the channel it came by, the citizen (found by CNIC, or the household whose page
    it was opened from), the category, the payment."""
    if not who.can(TAKE):
        return _refuse(request, session, who, "file", None, _tr(request)("grv.no_right_take"))
    found = None
    if household is not None:
        try:
            f = files.open_household(session, who, household, CHANNEL)  # scope checked and audited
        except (OutOfScope, files.NotFound):
            session.commit()
            return error_page(request, session, who, 404, _tr(request)("error.no_household", id=household))
        living = [m for m in f.members if m.date_of_death is None] or list(f.members)
        if living:
            head = next((m for m in living if m.relation_to_head == "head"), living[0])
            found = _household_found(session, head, cnic_rules.mask(head.cnic) if head.cnic else "")
        session.commit()
    return _intake(request, session, who, found=found)


@router.post("/grievances/new/find")
def find_citizen(request: Request, session: DB, who: User, cnic: Annotated[str, Form(max_length=40)] = "",
                 channel: Annotated[str, Form(max_length=20)] = "counter") -> Response:
    """Find the complainant by CNIC (in a form, never in an address): their household and payments."""
    if not who.can(TAKE):
        return _refuse(request, session, who, "file", None, _tr(request)("grv.no_right_take"))
    try:
        found = _person_found(session, who, cnic)
    except gs.GrievanceError as exc:
        audit(session, who, CHANNEL, "lookup_cnic", "individual", None, who.scope, outcome="not_found",
              detail=str(exc)[:200])
        session.commit()
        return _intake(request, session, who, error=str(exc), form={"cnic": cnic, "channel": channel}, status=422)
    audit(session, who, CHANNEL, "lookup_cnic", "individual", found["person"].id, found["district_id"],
          detail=f"grievance intake: household {found['household_id']}")
    session.commit()
    return _intake(request, session, who, found=found, form={"cnic": cnic, "channel": channel,
                                                             "complainant_name": found["person"].full_name})


def _int(raw: str, field: str) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise gs.GrievanceError(f"{field}: '{raw[:20]}' is not a number")
    return int(raw)


@router.post("/grievances")
def file_grievance(request: Request, session: DB, who: User, channel: Annotated[str, Form(max_length=20)] = "",
                   category: Annotated[str, Form(max_length=30)] = "",
                   description: Annotated[str, Form(max_length=4000)] = "",
                   phone: Annotated[str, Form(max_length=30)] = "",
                   complainant_name: Annotated[str, Form(max_length=200)] = "",
                   household_id: Annotated[str, Form(max_length=20)] = "",
                   individual_id: Annotated[str, Form(max_length=20)] = "",
                   payment_instruction_id: Annotated[str, Form(max_length=20)] = "",
                   outlet_id: Annotated[str, Form(max_length=20)] = "",
                   program_code: Annotated[str, Form(max_length=60)] = "",
                   district_id: Annotated[str, Form(max_length=6)] = "",
                   lang: Annotated[str, Form(max_length=4)] = "ur",
                   cnic: Annotated[str, Form(max_length=40)] = "") -> Response:
    """File the grievance; the browser goes to its receipt."""
    tr = _tr(request)
    if not who.can(TAKE):
        return _refuse(request, session, who, "file", None, tr("grv.no_right_take"))
    form = {"channel": channel, "category": category, "description": description, "phone": phone,
            "complainant_name": complainant_name, "payment_instruction_id": payment_instruction_id,
            "outlet_id": outlet_id, "program_code": program_code, "district_id": district_id, "cnic": cnic,
            "lang": lang}
    try:
        g = gs.file_grievance(
            session, who, channel=channel, category=category, description=description, phone=phone or None,
            complainant_name=complainant_name or None, household_id=_int(household_id, "household_id"),
            individual_id=_int(individual_id, "individual_id"),
            payment_instruction_id=_int(payment_instruction_id, "payment_instruction_id"),
            outlet_id=_int(outlet_id, "outlet_id"), program_code=program_code.strip() or None,
            district_id=_int(district_id, "district_id"), lang=lang if lang in gs.LANGS else "ur")
    except (gs.GrievanceError, OutOfScope) as exc:
        session.rollback()
        found = None
        if household_id.isdigit() and individual_id.isdigit():  # the citizen found before: shown again
            person = session.get(Individual, int(individual_id))
            if person is not None and person.household_id == int(household_id) and (
                    who.scope is None or person.district_id == who.scope):
                found = _household_found(session, person, cnic_rules.mask(person.cnic) if person.cnic else "")
        audit(session, who, CHANNEL, "file", "grievance", None, who.scope,
              outcome="denied" if isinstance(exc, OutOfScope) else "failed", detail=str(exc)[:300])
        session.commit()
        return _intake(request, session, who, found=found, error=str(exc), form=form,
                       status=403 if isinstance(exc, OutOfScope) else 422)
    receipt = receipts.make("grievance", g.id)
    audit(session, who, CHANNEL, "file", "grievance", g.id, g.district_id,
          detail=f"{receipt} {g.category} by {g.channel}; owner {g.owner}")
    session.commit()
    return RedirectResponse(f"/grievances/{g.id}/receipt", status_code=303)


@router.get("/grievances/analytics")
def analytics_page(request: Request, session: DB, who: User) -> Response:
    """Causes by district, program, channel, agent and month; time to resolve; reopen rate; per agent."""
    tr = _tr(request)
    if not (who.can(HANDLE) or who.can("audit.read")):
        return _refuse(request, session, who, "report", None, tr("grv.no_right"))
    geo = Geography.load(session)
    data = analytics.summary(session, who.scope)
    agents = gs.agent_counts(session, who.scope)
    names = {a["outlet_id"]: a["name"] for a in agents}
    if data["by"]["agent"]:
        ids = sorted({r["key"] for r in data["by"]["agent"]} - set(names))
        if ids:
            names.update(dict(session.execute(text("SELECT id, name FROM cash_outlet WHERE id IN :i")
                                              .bindparams(gs._expanding("i")), {"i": ids}).all()))

    def label(dim: str, key) -> str:
        if key is None:
            return tr("grv.unknown_district") if dim == "district" else tr("grv.none")
        if dim == "district":
            return _district_name(tr, geo.district_by_id.get(key))
        if dim == "program":
            return program_name(tr, key)
        if dim == "channel":
            return tr(f"grv.channel.{key}")
        if dim == "agent":
            return names.get(key, f"#{key}")
        return f"\u2066{key}\u2069"

    tables = {}
    for dim, rows in data["by"].items():
        keys: dict = {}
        for r in rows:
            keys.setdefault(r["key"], {})[r["category"]] = r["n"]
        cats = [c for c in gs.CATEGORIES if any(c in v for v in keys.values())]
        tables[dim] = {"categories": cats, "rows": [{"label": label(dim, k), "counts": v, "total": sum(v.values())}
                                                     for k, v in keys.items()]}
    colours = ["#0b5d3b", "#e0b64a", "#b23b2e", "#5b8fb9", "#7d3c98", "#2c6e91", "#8a9a91", "#1f7a4d", "#3d3d3d"]
    district_table = tables["district"]
    chart = {"type": "bar", "stacked": True, "labels": [r["label"] for r in district_table["rows"]],
             "datasets": [{"label": tr(f"grv.cat.{c}"), "data": [r["counts"].get(c, 0) for r in district_table["rows"]],
                           "backgroundColor": colours[gs.CATEGORIES.index(c)]} for c in district_table["categories"]]}
    month_table = tables["month"]
    month_chart = {"type": "bar", "stacked": True, "labels": [r["label"] for r in month_table["rows"]],
                   "datasets": [{"label": tr(f"grv.cat.{c}"), "data": [r["counts"].get(c, 0) for r in month_table["rows"]],
                                 "backgroundColor": colours[gs.CATEGORIES.index(c)]} for c in month_table["categories"]]}
    audit(session, who, CHANNEL, "report", "grievance", None, who.scope, detail="grievance analytics")
    session.commit()
    return render(request, "grievance_analytics.html", {
        "tables": tables, "dims": analytics.DIMENSIONS, "time": data["time"], "reopen": data["reopen"],
        "roots": data["root_causes"], "chart": chart, "month_chart": month_chart, "agents": agents},
        who=who, session=session)


# ---------------------------------------------------------------- one grievance

def _open(request: Request, session, who, grievance_id: int, *, handle: bool = True):
    """The grievance, or the error page (403 audited, 404)."""
    tr = _tr(request)
    try:
        return gs.get(session, who, grievance_id, handle=handle), None
    except AccessError:
        return None, _refuse(request, session, who, "read", grievance_id, tr("grv.no_right"))
    except OutOfScope:
        g = session.get(gs.Grievance, grievance_id)
        return None, _refuse(request, session, who, "read", grievance_id, tr("grv.outside_district"),
                             g.district_id if g is not None else None)
    except gs.NotFound:
        audit(session, who, CHANNEL, "read", "grievance", grievance_id, who.scope, outcome="not_found")
        session.commit()
        return None, error_page(request, session, who, 404, tr("grv.not_found"))


@router.get("/grievances/{grievance_id}/receipt")
def receipt_page(request: Request, grievance_id: Id, session: DB, who: User) -> Response:
    """What the counter hands the citizen: the receipt number, where it went, by when."""
    g, refused = _open(request, session, who, grievance_id, handle=False)
    if refused:
        return refused
    audit(session, who, CHANNEL, "read", "grievance", g.id, g.district_id, detail="receipt")
    session.commit()
    geo = Geography.load(session)
    return render(request, "grievance_receipt.html", {"st": gs.status_of(session, g.id), "g": g,
                                                      "row": _row(_tr(request), g, geo, datetime.now()),
                                                      "can_handle": who.can(HANDLE)}, who=who, session=session)


def _said(tr, e) -> dict:
    """An event as the history shows it: what the system wrote in the reader's language, what people
    wrote as they wrote it."""
    view = {"kind": e.kind, "at": e.at, "actor": e.actor, "to_owner": e.to_owner, "to_level": e.to_level,
            "said": e.note}
    if e.actor == "system" or e.kind == "filed":
        if e.kind == "filed":
            view["said"] = None
        elif e.kind == "routed":
            view["said"] = tr("grv.said.routed_unknown") if "district unknown" in (e.note or "") else None
        elif e.kind in ("escalated", "reassigned"):
            view["said"] = tr(f"grv.said.{e.kind}")
        elif e.kind == "note" and (e.note or "").startswith("payment "):
            view["said"] = tr("grv.said.payment", id=(e.note or "").split()[1])
        elif e.kind == "reassessment":
            view["said"] = tr("grv.said.reassessment") + (f" ({e.note})" if tr.code == "en" else "")
    elif e.kind == "resolved" and e.note and e.note.startswith("root cause "):
        cause, _, words = e.note[len("root cause "):].partition(": ")
        view["said"] = f"{tr(f'grv.root.{cause}')}: {words}"
    return view


def _detail(request: Request, session, who, g, *, error: str | None = None, done: str = "",
            status: int = 200) -> Response:
    tr = _tr(request)
    geo = Geography.load(session)
    trail = gs.payment_trail(session, g.payment_instruction_id) if g.payment_instruction_id else None
    outlet = (session.execute(text("SELECT id, name, kind FROM cash_outlet WHERE id = :o"), {"o": g.outlet_id})
              .mappings().first() if g.outlet_id else None)
    against = (session.execute(text("SELECT COUNT(*) FROM grievance WHERE outlet_id = :o AND category IN "
                                    "('agent_deduction', 'agent_conduct')"), {"o": g.outlet_id}).scalar()
               if g.outlet_id else 0)
    person = session.get(Individual, g.individual_id) if g.individual_id else None
    candidates = session.execute(text("""SELECT username, role, district_id FROM app_user WHERE active = :y
        AND role IN ('grievance_officer', 'district_officer', 'program_manager', 'administrator')
        AND (role IN ('program_manager', 'administrator') OR district_id = :d)
        ORDER BY CASE role WHEN 'grievance_officer' THEN 1 WHEN 'district_officer' THEN 2
                           WHEN 'program_manager' THEN 3 ELSE 4 END, username"""),
                                 {"y": True, "d": g.district_id}).mappings().all()
    return render(request, "grievance.html", {
        "g": g, "row": _row(tr, g, geo, datetime.now()), "receipt": receipts.make("grievance", g.id),
        "history": [_said(tr, e) for e in gs.history(session, g.id)], "trail": trail, "outlet": outlet, "against": against,
        "person": person, "phone": gs.mask_phone(g.phone), "root_causes": gs.ROOT_CAUSES,
        "candidates": candidates, "open": g.status in ("open", "reopened"), "error": error, "done": done,
        "program": g.program_code}, who=who, session=session, status=status)


@router.get("/grievances/{grievance_id}")
def grievance_page(request: Request, grievance_id: Id, session: DB, who: User, done: str = "") -> Response:
    """A grievance's file: details, linked payment and its ledger trail, history, and the actions."""
    g, refused = _open(request, session, who, grievance_id)
    if refused:
        return refused
    audit(session, who, CHANNEL, "read", "grievance", g.id, g.district_id, detail=receipts.make("grievance", g.id))
    session.commit()
    return _detail(request, session, who, g, done=done if done in ACTIONS else "")


ACTIONS = {"assign": "assign", "note": "edit", "escalate": "escalate", "resolve": "resolve", "confirm": "confirm"}


def _act(request: Request, session, who, grievance_id: int, action: str, fn) -> Response:
    verb = ACTIONS[action]
    g, refused = _open(request, session, who, grievance_id)
    if refused:
        return refused
    try:
        result = fn(g)
    except gs.GrievanceError as exc:
        session.rollback()
        audit(session, who, CHANNEL, verb, "grievance", grievance_id, g.district_id, outcome="failed",
              detail=str(exc)[:300])
        session.commit()
        g = session.get(gs.Grievance, grievance_id)
        return _detail(request, session, who, g, error=str(exc), status=422)
    audit(session, who, CHANNEL, "reopen" if action == "confirm" and result.status == "reopened" else verb,
          "grievance", grievance_id, result.district_id,
          detail=f"{receipts.make('grievance', grievance_id)} {action}: now {result.status}, owner {result.owner}")
    session.commit()
    return RedirectResponse(f"/grievances/{grievance_id}?done={action}", status_code=303)


@router.post("/grievances/{grievance_id}/assign")
def assign(request: Request, grievance_id: Id, session: DB, who: User,
           owner: Annotated[str, Form(max_length=60)] = "", note: Annotated[str, Form(max_length=1000)] = "") -> Response:
    return _act(request, session, who, grievance_id, "assign",
                lambda g: gs.assign(session, who, g.id, owner, note or None))


@router.post("/grievances/{grievance_id}/note")
def note(request: Request, grievance_id: Id, session: DB, who: User,
         note: Annotated[str, Form(max_length=1000)] = "") -> Response:
    return _act(request, session, who, grievance_id, "note", lambda g: gs.add_note(session, who, g.id, note))


@router.post("/grievances/{grievance_id}/escalate")
def escalate(request: Request, grievance_id: Id, session: DB, who: User,
             note: Annotated[str, Form(max_length=1000)] = "") -> Response:
    return _act(request, session, who, grievance_id, "escalate", lambda g: gs.escalate(session, who, g.id, note or None))


@router.post("/grievances/{grievance_id}/resolve")
def resolve(request: Request, grievance_id: Id, session: DB, who: User,
            root_cause: Annotated[str, Form(max_length=40)] = "",
            resolution: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return _act(request, session, who, grievance_id, "resolve",
                lambda g: gs.resolve(session, who, g.id, root_cause=root_cause, resolution=resolution))


@router.post("/grievances/{grievance_id}/confirm")
def confirm(request: Request, grievance_id: Id, session: DB, who: User,
            satisfied: Annotated[str, Form(max_length=5)] = "", note: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """Record the citizen's word: satisfied closes it, not satisfied reopens it."""
    if satisfied not in ("yes", "no"):
        g, refused = _open(request, session, who, grievance_id)
        if refused:
            return refused
        return _detail(request, session, who, g, error=_tr(request)("grv.pick_satisfied"), status=422)
    return _act(request, session, who, grievance_id, "confirm",
                lambda g: gs.confirm(session, g.id, who, satisfied == "yes", note or None))


# ---------------------------------------------------------------- the household page's panel

@router.get("/households/{household_id}/grievances")
def household_panel(request: Request, household_id: Id, session: DB, who: User) -> Response:
    """The household's grievances (receipt, category, status, due, resolution), and a way to file one."""
    f, refused = open_household(request, session, who, household_id)
    if refused is not None:
        return refused
    rows = gs.grievances_of(session, household_id=household_id)
    session.commit()
    return render(request, "_grievances.html", {"rows": rows, "household_id": f.household.id,
                                                "can_take": who.can(TAKE), "can_handle": who.can(HANDLE),
                                                "levels": routing.LEVELS}, who=who, session=session)
