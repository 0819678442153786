"""Web pages of the One Window's applications: the list (keyset, total, filters, sorts, export;
scoped to the user's district), a new application (registration of a never-surveyed household with
member rows added and removed by htmx, a program application or referral, a change or appeal with
evidence), one application (its steps with owner, due time and late flag, its history, the actions
of the role whose step it is), the printable receipt, and the household page's applications panel.

Every read of an application (which carries people's data) is audited; an application outside the
user's district answers 403, audited as refused. The verification of a registration is done at once
and its scoring (the events' drain) runs in the background (``services.jobs``); the page polls the
outcome and then shows the score and every program's eligibility with its reasons."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select, text

from isps.access.models import User as UserRow
from isps.access.service import audit
from isps.api.params import After, Id
from isps.catalogue import display_name
from isps.citizen import applications as ap
from isps.citizen import receipts
from isps.citizen.applications import registration
from isps.keyset import Sort, SortError
from isps.messaging.gateways import SHORT_CODE
from isps.registry import cnic as cnic_rules
from isps.registry import vocab
from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS
from isps.registry.models import Household, Individual, Tehsil
from isps.registry.service import OutOfScope as RegistryScope
from isps.services import applications as verification
from isps.services import household_file as files
from isps.services import jobs
from isps.targeting import pmt
from isps.targeting.eligibility import rules as eligibility
from isps.web import listing
from isps.web.common import (CHANNEL, DB, SECURITY_HEADERS, FilterId, Geography, User, _district_name, _tr, error_page,
                             render)

router = APIRouter(include_in_schema=False)
TAKE, DECIDE = "application.take", "application.decide"
COLUMNS = [("receipt", "receipt"), ("kind", "kind"), ("channel", "channel"), ("status", "status"),
           ("step", "step"), ("due", "step_due"), ("late", "late"), ("district", "district"),
           ("program", "program"), ("applicant", "applicant"), ("opened", "opened_at"), ("disposal", "disposal")]
STEP_NAMES = tuple(dict.fromkeys(s["name"] for steps in ap.steps_of().values() for s in steps))
CHOICE_FIELDS = {**vocab.HOUSEHOLD_CATEGORICAL, **vocab.INDIVIDUAL_CATEGORICAL}
MEMBER_SELECTS = ("sex", "relation_to_head", "marital_status", "education", "disability", "labour_status",
                  "maternal_status")
MEMBER_YES_NO = ("enrolled_in_school",)
CHANGE_FIELDS = {"household": tuple(HOUSEHOLD_FIELDS), "individual": tuple(INDIVIDUAL_FIELDS) + ("cnic",)}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


def _denied(request: Request, session, who, action: str, entity_id: int | None, message: str,
            district_id: int | None = None) -> Response:
    audit(session, who, CHANNEL, action, "application", entity_id, district_id or who.scope, outcome="denied",
          detail=f"refused: {message}"[:400])
    session.commit()
    return error_page(request, session, who, 403, message)


def _programs(session) -> list[str]:
    from isps.programs import enrolment as en
    from isps.programs.models import EnrolmentPolicy

    return sorted(set(en.DEFAULT_POLICIES) | set(session.scalars(select(EnrolmentPolicy.program_code))))


# ---------------------------------------------------------------- the list

def _row(app: ap.Application, step, tr, geo: Geography, now: datetime) -> dict:
    return {"id": app.id, "receipt": receipts.make("application", app.id), "kind": tr(f"application.kind.{app.kind}"),
            "channel": tr(f"application.channel.{app.channel}"), "status": tr(f"application.status.{app.status}"),
            "step": tr(f"application.step.{step.name}") if step else "—", "due": _when(step.due_at) if step else "—",
            "late": bool(step and step.due_at < now), "district": _district_name(tr, geo.district_by_id.get(app.district_id)),
            "program": display_name(app.program_code, tr.code) if app.program_code else "—",
            "applicant": app.applicant_name, "opened": _when(app.opened_at),
            "disposal": tr(f"application.disposal.{app.disposal}") if app.disposal else "—"}


@router.get("/applications")
def list_page(request: Request, session: DB, who: User, after: After = None, district_id: FilterId = None,
              kind: Annotated[str, Query(max_length=20)] = "", status: Annotated[str, Query(max_length=20)] = "",
              step: Annotated[str, Query(max_length=20)] = "", late: Annotated[str, Query(max_length=5)] = "",
              program: Annotated[str, Query(max_length=60)] = "") -> Response:
    """Every application in the user's district (or all Punjab), filtered, sorted, paged by keyset."""
    tr = _tr(request)
    geo = Geography.load(session)
    scope = who.scope if who.scope is not None else district_id
    filters = {"kind": kind if kind in ap.KINDS else None, "status": status if status in ap.service.STATUSES else None,
               "step": step if step in STEP_NAMES else None, "late": late == "1",
               "program": program if program in _programs(session) else None}
    try:
        sort = listing.sort_of(request, tuple(ap.service.SORTS), Sort("id", True))
    except SortError as exc:
        return error_page(request, session, who, 400, str(exc))
    now = datetime.now()
    fmt = listing.wants_export(request, "applications")
    if fmt:
        def chunk(a, n):
            rows = ap.service.listing(session, district_id=scope, after=a, limit=n, sort=sort, now=now, **filters)
            steps = ap.service.open_steps_of(session, [r.id for r in rows])
            return [{**_row(r, steps.get(r.id), tr, geo, now), "late": "yes" if (steps.get(r.id) and
                     steps[r.id].due_at < now) else ""} for r in rows]
        return listing.export(request, session, who, fmt, name="applications", entity="application",
                              columns=COLUMNS, detail="the One Window applications",
                              chunks=listing.keyset_chunks(chunk, lambda r: r["id"]))
    rows = ap.service.listing(session, district_id=scope, after=after, limit=listing.PAGE + 1, sort=sort, now=now,
                              **filters)
    shown = rows[:listing.PAGE]
    steps = ap.service.open_steps_of(session, [r.id for r in shown])
    view = [_row(r, steps.get(r.id), tr, geo, now) for r in shown]
    total = ap.service.count_listing(session, district_id=scope, now=now, **filters)
    pager = listing.pager(request, total=total, shown=len(view), id="applications",
                          next_after=shown[-1].id if len(rows) > listing.PAGE else None)
    audit(session, who, CHANNEL, "read", "application", None, who.scope,
          detail=f"listed applications: {total} match")
    session.commit()
    return render(request, "applications.html", {
        "rows": view, "pager": pager, "geo": geo, "locked": who.scope is not None, "district_id": scope,
        "f": {"kind": kind, "status": status, "step": step, "late": late, "program": program},
        "kinds": ap.KINDS, "statuses": ap.service.STATUSES, "steps": STEP_NAMES, "programs": _programs(session),
        "cols": listing.columns(request, tuple(ap.service.SORTS), sort), "can_take": who.can(TAKE)},
        who=who, session=session)


# ---------------------------------------------------------------- a new application

def _blank_member(relation: str = "head") -> dict:
    return {"relation_to_head": relation, "enrolled_in_school": "no", "disability": "none", "education": "none",
            "marital_status": "married" if relation == "head" else "never_married",
            "labour_status": "not_in_labour_force", "maternal_status": ""}


def _form_context(session, who, kind: str, form: dict, household=None) -> dict:
    district = who.scope if who.scope is not None else form.get("district_id")
    tehsils = list(session.scalars(select(Tehsil).where(Tehsil.district_id == district).order_by(Tehsil.name))) \
        if district is not None else []
    members = []
    if household is not None:
        members = [{"id": m.id, "name": m.full_name, "line": m.roster_line} for m in session.scalars(
            select(Individual).where(Individual.household_id == household.id, Individual.date_of_death.is_(None))
            .order_by(Individual.roster_line))]
    return {"kind": kind, "form": form, "tehsils": tehsils, "choices": CHOICE_FIELDS, "selects": MEMBER_SELECTS,
            "checks": ("electricity", *vocab.DURABLES, "tractor"), "evidence_kinds": registration.EVIDENCE_KINDS, "programs": _programs(session),
            "household": household, "members": members, "change_fields": CHANGE_FIELDS,
            "appeals": ap.service.APPEALS, "kinds": ap.KINDS, "geo": Geography.load(session),
            "district_id": district, "locked": who.scope is not None}


def _new_page(request: Request, session, who, kind: str, form: dict, household=None, error: str | None = None,
              status: int = 200) -> Response:
    return render(request, "application_new.html", {**_form_context(session, who, kind, form, household),
                                                    "error": error}, who=who, session=session, status=status)


def _household_for(request: Request, session, who, household_id: int | None):
    """The household an application is about, read through the audited household file."""
    if household_id is None:
        return None
    f = files.open_household(session, who, household_id, CHANNEL)
    return f.household


def _household_or_refusal(request: Request, session, who, household_id: int | None) -> tuple[object, Response | None]:
    """:func:`_household_for`, or the refusal page: 403 outside the user's district, 404 for no such
    household (the refusal audited and committed). Returns ``(household, None)`` or ``(None, page)``."""
    tr = _tr(request)
    try:
        return _household_for(request, session, who, household_id), None
    except RegistryScope:
        session.commit()
        return None, error_page(request, session, who, 403, tr("error.outside_district", id=household_id))
    except files.NotFound:
        session.commit()
        return None, error_page(request, session, who, 404, tr("error.no_household", id=household_id))


@router.get("/applications/new")
def new_page(request: Request, session: DB, who: User, kind: Annotated[str, Query(max_length=20)] = "",
             household_id: FilterId = None, district_id: FilterId = None) -> Response:
    """Choose the kind; then its form (a registration's household and member rows, or a program,
    referral or change for a registered household)."""
    tr = _tr(request)
    if not who.can(TAKE):
        return _denied(request, session, who, "create", None, tr("application.cannot_take"))
    kind = kind if kind in ap.KINDS else ""
    household, refused = (_household_or_refusal(request, session, who, household_id)
                          if kind and kind != "registration" else (None, None))
    if refused is not None:
        return refused
    form = {"members": [_blank_member()], "evidence": [{}, {}]} if kind == "registration" else {"evidence": [{}]}
    if who.scope is None and district_id is not None:
        form["district_id"] = district_id
    session.commit()
    return _new_page(request, session, who, kind, form, household)


@router.get("/applications/new/member")
def member_row(request: Request, session: DB, who: User, n: Annotated[int, Query(ge=1, le=30)] = 2) -> Response:
    """One more member row for the registration form (htmx appends it)."""
    if not who.can(TAKE):
        return _denied(request, session, who, "create", None, _tr(request)("app.cannot_take"))
    return render(request, "_application_member_new.html", {
        "m": _blank_member("son"), "n": n, "choices": CHOICE_FIELDS, "selects": MEMBER_SELECTS}, who=who,
        session=session)


@router.get("/applications/new/none")
def no_row(request: Request, who: User) -> Response:
    """What a removed member row is replaced with (htmx deletes the row; nothing is stored before submitting)."""
    return Response("", media_type="text/html", headers=SECURITY_HEADERS)


def _rows(form, names: tuple[str, ...]) -> list[dict]:
    """Repeated form fields (one value per row, in order) as a list of row dicts."""
    columns = {name: form.getlist(name) for name in names}
    count = max((len(v) for v in columns.values()), default=0)
    return [{name: (columns[name][i] if i < len(columns[name]) else "") for name in names} for i in range(count)]


@router.post("/applications/new")
async def create(request: Request, session: DB, who: User) -> Response:
    """Record the application (its receipt step done by the taker) and show it."""
    tr = _tr(request)
    if not who.can(TAKE):
        return _denied(request, session, who, "create", None, tr("application.cannot_take"))
    form = await request.form()
    kind = str(form.get("kind", ""))
    if kind not in ap.KINDS:
        return _new_page(request, session, who, "", {}, error=tr("application.choose_kind"), status=422)
    evidence = [e for e in _rows(form, ("evidence_kind", "evidence_ref"))]
    evidence = [{"kind": e["evidence_kind"].strip(), "reference": e["evidence_ref"].strip()} for e in evidence]
    kept: dict = {"applicant_name": str(form.get("applicant_name", ""))[:80], "phone": str(form.get("phone", ""))[:20],
                  "evidence": evidence or [{}]}
    household = None
    raw_household = str(form.get("household_id", "")).strip()
    household_id = int(raw_household) if raw_household.isdigit() and len(raw_household) < 19 else None
    if kind == "registration":
        hh = {name: str(form.get(name, "")).strip()[:200] for name in registration.HOUSEHOLD_FORM}
        for d in (*vocab.DURABLES, "tractor", "electricity", "urban"):
            hh[d] = "yes" if form.get(d) in ("yes", "on") else ("no" if d != "urban" or form.get(d) is not None
                                                                  else "")
        names = tuple("phone_m" if f == "phone" else f for f in registration.MEMBER_FIELDS)
        members = [{("phone" if k == "phone_m" else k): v.strip()[:200] for k, v in m.items()}
                   for m in _rows(form, names)]
        kept.update(household=hh, members=members or [_blank_member()])
        details = {"household": hh, "members": members}
        district_id = who.scope
        if district_id is None:
            raw = str(form.get("district_id", ""))
            district_id = int(raw) if raw.isdigit() and len(raw) < 4 else None
            kept["district_id"] = district_id
            if district_id is None:
                return _new_page(request, session, who, kind, kept, error=tr("application.choose_district"), status=422)
    else:
        household, refused = _household_or_refusal(request, session, who, household_id)
        if refused is not None:
            return refused
        if household is None:
            return _new_page(request, session, who, kind, kept, error=tr("application.choose_household"), status=422)
        district_id = household.district_id
        details = {}
        kept.update(program=str(form.get("program", "")), individual_id=str(form.get("individual_id", "")),
                    referred_by=str(form.get("referred_by", ""))[:80])
        if kind == "referral":
            details["referred_by"] = kept["referred_by"].strip() or who.username
        if kind == "change":
            member_id = str(form.get("individual_id", "")).strip()
            member_id = member_id if member_id.isdigit() and len(member_id) < 19 else ""
            entity = "individual" if member_id else "household"
            changes = {r["change_field"]: r["change_value"].strip()[:200]
                       for r in _rows(form, ("change_field", "change_value")) if r["change_field"]}
            details = {"entity": entity, "entity_id": member_id or household.id, "changes": changes,
                       "appeal": str(form.get("appeal", "data")), "note": str(form.get("note", ""))[:400]}
            kept.update(changes=[{"field": k, "value": v} for k, v in changes.items()] or [{}],
                        appeal=details["appeal"], note=details["note"])
    individual = str(form.get("individual_id", "")).strip()
    if not (individual.isdigit() and len(individual) < 19):
        individual = ""
    try:
        app = ap.open_application(
            session, who, kind=kind, channel="counter", district_id=district_id,
            applicant_name=kept["applicant_name"], phone=kept["phone"] or None,
            household_id=household.id if household is not None else None,
            individual_id=int(individual) if individual.isdigit() else None,
            program_code=kept.get("program") or None, details=details, evidence=evidence)
    except ap.OutOfScope:
        return _denied(request, session, who, "create", None, tr("error.outside_district", id=district_id))
    except ap.ApplicationError as exc:
        session.rollback()
        household = session.get(Household, household.id) if household is not None else None
        return _new_page(request, session, who, kind, kept, household, error=str(exc), status=422)
    verb = {"referral": "refer", "registration": "register"}.get(kind, "create")
    audit(session, who, CHANNEL, verb, "application", app.id, app.district_id,
          detail=f"{kind} application {receipts.make('application', app.id)} taken"
                 + (f" for {app.program_code}" if app.program_code else ""))
    session.commit()
    return RedirectResponse(f"/applications/{app.id}?done=opened", status_code=303)


# ---------------------------------------------------------------- one application

def _open(request: Request, session, who, application_id: int, action: str = "read"):
    """The application for this user, or the refusal page (403 audited, 404)."""
    tr = _tr(request)
    try:
        app = ap.get(session, who, application_id)
    except ap.OutOfScope:
        app_row = session.get(ap.Application, application_id)
        return None, _denied(request, session, who, action, application_id,
                             tr("application.outside_district", receipt=receipts.make("application", application_id)),
                             app_row.district_id if app_row else None)
    if app is None:
        return None, error_page(request, session, who, 404, tr("application.not_found", id=application_id))
    return app, None


def _staged(app: ap.Application) -> dict | None:
    """A staged registration as the page shows it: CNICs masked."""
    if app.kind != "registration" or not app.details:
        return None
    members = [{**m, "cnic": cnic_rules.mask(m.get("cnic")) if m.get("cnic") else "—"}
               for m in app.details.get("members", [])]
    return {"household": app.details.get("household", {}), "members": members}


def _eligibility(session, household_id: int, tr) -> list[dict]:
    """Every active program's decision for the household, with its reasons (each said once)."""
    out = []
    for _, rule in eligibility.active_rules(session):
        decisions = eligibility.explain(session, rule, household_id, lang=tr.code)
        if not decisions:
            continue
        reasons: list[str] = []
        for d in decisions:
            for o in d.outcomes:
                if o.met == d.eligible and o.sentence and o.sentence not in reasons:
                    reasons.append(o.sentence)
        out.append({"code": rule.code, "name": display_name(rule.code, tr.code),
                    "eligible": any(d.eligible for d in decisions), "reasons": reasons[:4],
                    "people": [d.person for d in decisions if d.person and d.eligible]})
    out.sort(key=lambda r: (not r["eligible"], r["name"]))
    return out


def _score(session, household_id: int) -> float | None:
    model = pmt.active_model(session)
    if model is None:
        return None
    return session.execute(text("SELECT score FROM pmt_score WHERE model_id = :m AND household_id = :h"),
                           {"m": model.id, "h": household_id}).scalar()


def _outcome(session, app: ap.Application, tr) -> dict | None:
    """After a registration is scored: the household, its score and eligibility for every program."""
    if app.household_id is None or app.kind != "registration":
        return None
    hh = session.get(Household, app.household_id)
    scoring = app.status == "open" and app.step == "score"
    return {"scoring": scoring, "ref": hh.ref, "household_id": hh.id,
            "score": None if scoring else _score(session, hh.id),
            "programs": [] if scoring else _eligibility(session, hh.id, tr)}


def _actions(session, who, app: ap.Application, step) -> dict:
    if app.status != "open" or step is None:
        return {}
    second = who.username != app.opened_by
    decide = who.can(DECIDE) and second
    users = []
    if decide and step.name == "verify":
        users = [u for u in session.scalars(select(UserRow.username).where(
            UserRow.active.is_(True), UserRow.district_id == app.district_id, UserRow.username != app.opened_by)
            .order_by(UserRow.username))]
    return {"verify": decide and step.name == "verify" and step.visit_on is None,
            "visit": decide and step.name == "verify", "record_visit": decide and step.visit_on is not None,
            "decide": decide and step.name == "decide",
            "reject": decide and step.name in ("verify", "decide") and app.change_request_id is None,
            "withdraw": (who.can(TAKE) or who.can(DECIDE)) and app.change_request_id is None,
            "review": step.name == "review", "users": users,
            "taker_only": who.can(DECIDE) and not second}


def _detail(request: Request, session, who, app: ap.Application, *, error: str | None = None, done: str = "",
            job: str | None = None, status: int = 200) -> Response:
    tr = _tr(request)
    now = datetime.now()
    steps = ap.steps(session, app.id)
    step = next((s for s in steps if s.done_at is None), None)
    geo = Geography.load(session)
    hh = session.get(Household, app.household_id) if app.household_id else None
    person = session.get(Individual, app.individual_id) if app.individual_id else None
    view = {"id": app.id, "receipt": receipts.make("application", app.id), "kind": app.kind, "channel": app.channel,
            "status": app.status, "district": _district_name(tr, geo.district_by_id.get(app.district_id)),
            "applicant": app.applicant_name, "phone": app.phone or "—",
            "program": display_name(app.program_code, tr.code) if app.program_code else None,
            "household": hh, "person": person.full_name if person else None, "referred_by": app.referred_by,
            "opened_by": app.opened_by, "opened": _when(app.opened_at), "disposal": app.disposal,
            "reason": app.disposal_reason, "disposed": _when(app.disposed_at), "disposed_by": app.disposed_by,
            "change_request_id": app.change_request_id, "details": app.details or {},
            "evidence": app.evidence or []}
    if app.disposal == "registered" and hh is not None:
        view["reason"] = f"{tr('application.registered_as')} {hh.ref}"
    if app.disposal == "refused" and app.program_code and app.household_id and tr.code != "en" \
            and not (app.disposal_reason or "").startswith("already listed"):
        from isps.programs import enrolment as en
        from isps.web.refusals import refusal_text  # the refusal in the reader's language, from its stored fields

        row = en.last_refusal(session, app.program_code, app.household_id, app.individual_id or 0)
        if row is not None:
            view["reason"] = refusal_text(tr, row)
    return render(request, "application.html", {
        "a": view, "staged": _staged(app), "outcome": _outcome(session, app, tr), "job": job,
        "steps": [{"name": s.name, "role": s.owner_role, "owner": s.owner, "due": _when(s.due_at),
                   "done": _when(s.done_at) if s.done_at else None, "by": s.done_by, "outcome": s.outcome,
                   "note": s.note, "visit_on": s.visit_on.isoformat() if s.visit_on else None,
                   "level": s.escalation_level, "late": s.done_at is None and s.due_at < now,
                   "current": s is step} for s in steps],
        "history": [{"at": _when(e.at), "actor": e.actor, "what": e.what, "step": e.step, "detail": e.detail}
                    for e in ap.history(session, app.id)],
        "actions": _actions(session, who, app, step), "error": error, "done": done,
        "today": date.today().isoformat(), "visit_outcomes": ap.service.VISIT_OUTCOMES},
        who=who, session=session, status=status)


@router.get("/applications/{application_id}")
def detail_page(request: Request, application_id: Id, session: DB, who: User,
                done: Annotated[str, Query(max_length=20)] = "", job: Annotated[str, Query(max_length=40)] = "") -> Response:
    app, refused = _open(request, session, who, application_id)
    if refused is not None:
        return refused
    audit(session, who, CHANNEL, "read", "application", app.id, app.district_id)
    session.commit()
    return _detail(request, session, who, app, done=done if done.isalpha() else "", job=job or None)


@router.get("/applications/{application_id}/outcome")
def outcome_fragment(request: Request, application_id: Id, session: DB, who: User,
                     job: Annotated[str, Query(max_length=40)] = "") -> Response:
    """The registration's outcome, polled by the page while the household is being scored."""
    app, refused = _open(request, session, who, application_id)
    if refused is not None:
        return refused
    tr = _tr(request)
    running = jobs.get(job) if job else None
    failed = running.error if running is not None and running.state == "failed" else None
    audit(session, who, CHANNEL, "read", "application", app.id, app.district_id, detail="outcome of the registration")
    session.commit()
    return render(request, "_application_outcome.html", {
        "a": {"id": app.id}, "outcome": _outcome(session, app, tr), "job": job, "failed": failed},
        who=who, session=session)


def _act(request: Request, session, who, application_id: int, action: str, work) -> Response:
    """Run one step's action: refusals shown on the page (422), scope refused (403 audited)."""
    tr = _tr(request)
    app, refused = _open(request, session, who, application_id, action)
    if refused is not None:
        return refused
    try:
        outcome = work(app)
    except ap.OutOfScope:
        session.rollback()
        return _denied(request, session, who, action, application_id,
                       tr("application.outside_district", receipt=receipts.make("application", application_id)))
    except ap.NotAllowed as exc:
        session.rollback()
        return _denied(request, session, who, action, application_id, str(exc))
    except ap.ApplicationError as exc:
        session.rollback()
        audit(session, who, CHANNEL, action, "application", application_id, app.district_id, outcome="failed",
              detail=str(exc)[:400])
        session.commit()
        app = session.get(ap.Application, application_id)
        return _detail(request, session, who, app, error=str(exc), status=422)
    session.commit()
    return outcome


@router.post("/applications/{application_id}/verify")
def verify(request: Request, application_id: Id, session: DB, who: User,
           note: Annotated[str, Form(max_length=400)] = "") -> Response:
    """A second person verifies the staged registration: it enters the registry now and is scored
    in the background; the page then shows the outcome."""
    def work(app):
        verification.verify(session, who, app.id, note.strip() or None, CHANNEL)
        session.commit()
        job = verification.start_scoring(session.get_bind(), who, app.id)
        return RedirectResponse(f"/applications/{app.id}?done=verified&job={job.id}", status_code=303)
    return _act(request, session, who, application_id, "verify", work)


@router.post("/applications/{application_id}/visit")
def schedule(request: Request, application_id: Id, session: DB, who: User,
             visit_on: Annotated[str, Form(max_length=20)] = "", assignee: Annotated[str, Form(max_length=80)] = "",
             note: Annotated[str, Form(max_length=400)] = "") -> Response:
    def work(app):
        try:
            when = date.fromisoformat(visit_on.strip())
        except ValueError:
            raise ap.ApplicationError("visit_on: a visit's date is written YYYY-MM-DD") from None
        ap.schedule_visit(session, who, app.id, when, assignee, note.strip() or None)
        audit(session, who, CHANNEL, "assign", "application", app.id, app.district_id,
              detail=f"survey visit on {when.isoformat()} by {assignee[:40]}")
        return RedirectResponse(f"/applications/{app.id}?done=scheduled", status_code=303)
    return _act(request, session, who, application_id, "assign", work)


@router.post("/applications/{application_id}/visit-result")
def visit_result(request: Request, application_id: Id, session: DB, who: User,
                 outcome: Annotated[str, Form(max_length=20)] = "",
                 note: Annotated[str, Form(max_length=400)] = "") -> Response:
    def work(app):
        household = ap.record_visit(session, who, app.id, outcome, note.strip() or None)
        audit(session, who, CHANNEL, "verify" if household else "reject", "application", app.id, app.district_id,
              detail=f"survey visit: {outcome}")
        if household is None:
            return RedirectResponse(f"/applications/{app.id}?done=disposed", status_code=303)
        session.commit()
        job = verification.start_scoring(session.get_bind(), who, app.id)
        return RedirectResponse(f"/applications/{app.id}?done=verified&job={job.id}", status_code=303)
    return _act(request, session, who, application_id, "verify", work)


@router.post("/applications/{application_id}/decide")
def decide(request: Request, application_id: Id, session: DB, who: User) -> Response:
    """A program application or referral through the one enrolment path."""
    def work(app):
        out = ap.decide(session, who, app.id)
        audit(session, who, CHANNEL, "decide", "application", app.id, app.district_id,
              detail=f"{app.program_code}: {out['disposal']} ({out['reason']})"[:400])
        return RedirectResponse(f"/applications/{app.id}?done=decided", status_code=303)
    return _act(request, session, who, application_id, "decide", work)


@router.post("/applications/{application_id}/dispose")
def dispose(request: Request, application_id: Id, session: DB, who: User,
            disposal: Annotated[str, Form(max_length=20)] = "", reason: Annotated[str, Form(max_length=400)] = "") -> Response:
    def work(app):
        ap.dispose(session, who, app.id, disposal, reason)
        audit(session, who, CHANNEL, "reject" if disposal == "rejected" else "close", "application", app.id,
              app.district_id, detail=f"{disposal}: {reason[:200]}")
        return RedirectResponse(f"/applications/{app.id}?done=disposed", status_code=303)
    return _act(request, session, who, application_id, "close", work)


@router.post("/applications/{application_id}/note")
def add_note(request: Request, application_id: Id, session: DB, who: User,
             note: Annotated[str, Form(max_length=400)] = "") -> Response:
    def work(app):
        ap.note(session, who, app.id, note)
        audit(session, who, CHANNEL, "record", "application", app.id, app.district_id, detail="note added")
        return RedirectResponse(f"/applications/{app.id}?done=noted", status_code=303)
    return _act(request, session, who, application_id, "record", work)


@router.get("/applications/{application_id}/receipt")
def receipt(request: Request, application_id: Id, session: DB, who: User) -> Response:
    """The citizen's printed receipt (print CSS: the page prints on its own)."""
    app, refused = _open(request, session, who, application_id)
    if refused is not None:
        return refused
    tr = _tr(request)
    geo = Geography.load(session)
    state = ap.status_of(session, app.id)
    audit(session, who, CHANNEL, "read", "application", app.id, app.district_id, detail="printed the receipt")
    session.commit()
    return render(request, "application_receipt.html", {
        "r": {**state, "id": app.id, "applicant": app.applicant_name, "opened_by": app.opened_by,
              "district": _district_name(tr, geo.district_by_id.get(app.district_id)),
              "program_name": display_name(app.program_code, tr.code) if app.program_code else None,
              "opened": _when(app.opened_at), "phone": app.phone}, "short_code": SHORT_CODE}, who=who, session=session)


# ---------------------------------------------------------------- the household page's panel

@router.get("/households/{household_id}/applications")
def household_panel(request: Request, household_id: Id, session: DB, who: User) -> Response:
    household, refused = _household_or_refusal(request, session, who, household_id)
    if refused is not None:
        return refused
    session.commit()
    rows = ap.applications_of(session, household_id=household_id, limit=20)
    return render(request, "_application_panel.html", {
        "rows": rows, "household_id": household_id, "can_take": who.can(TAKE) and (
            who.scope is None or who.scope == household.district_id)}, who=who, session=session)
