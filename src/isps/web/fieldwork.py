"""Field work pages: the supervisor's progress (``/field``), assigning work (``/field/assign``) and the
list of assignments, devices (register with the token shown once, Collect's settings and QR code;
revoke), submissions (filters, the refused queue, one submission's values, its review) and
distribution sites (create, build a list, a site's list with its hand-overs).

Roles: ``field.assign`` (supervisors, district officers) assigns, registers devices and makes sites;
``field.review`` reads every submission and reviews refused ones; ``field.collect`` alone (enumerators)
sees its own assignments and submissions and its district's sites. Scoped roles see their district
only (a 403 page, audited, otherwise). Reads of people's data (a submission's values, a site's list of
recipients) are audited; CNICs are masked by ``fieldwork.lists``.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select, text

from isps.access.service import Principal, audit
from isps.api.params import Id
from isps.fieldwork import assignments as asg, distribution as dist, lists
from isps.fieldwork.models import DistributionSite, FieldSubmission
from isps.registry.models import UnionCouncil, Tehsil
from isps.web.common import CHANNEL, DB, FilterDay, FilterId, Geography, User, _tr, error_page, render
from isps.web.listing import PAGE, export, keyset_chunks, pager, wants_export

router = APIRouter(include_in_schema=False)
ASSIGN, REVIEW, COLLECT = "field.assign", "field.review", "field.collect"
SUBMISSION_COLUMNS = [(k, k) for k in ("id", "instance_id", "form_id", "version", "job", "channel", "enumerator",
                                       "district_id", "household_id", "collected_at", "received_at", "status",
                                       "reason", "reviewed_by", "reviewed_at", "review_note")]
ASSIGNMENT_COLUMNS = [(k, k) for k in ("id", "kind", "enumerator", "district_id", "tehsil_id", "union_council",
                                       "household_id", "application_id", "site_id", "status", "assigned_by",
                                       "assigned_at", "due_on", "done_at", "submission_id")]
ENTRY_COLUMNS = [(k, k) for k in ("id", "list_ref", "household_id", "individual_id", "recipient", "cnic", "item",
                                  "quantity", "amount", "token", "handed_over_at", "handed_over_by", "received_by",
                                  "evidence", "submission_id")]


def _any(who: Principal) -> bool:
    return who.can(COLLECT) or who.can(ASSIGN) or who.can(REVIEW)


def _deny(request: Request, session, who: Principal, entity: str, entity_id: int | None, district_id: int | None,
          message: str, action: str = "read") -> Response:
    audit(session, who, CHANNEL, action, entity, entity_id, district_id, outcome="denied", detail=f"refused: {message}"[:300])
    session.commit()
    return error_page(request, session, who, 403, message)


def _district(request: Request, session, who: Principal, district_id: int | None, entity: str):
    """The district a page shows: the user's own when scoped (another is refused), else the one asked."""
    if who.scope is not None and district_id not in (None, who.scope):
        return None, _deny(request, session, who, entity, None, district_id, _tr(request)("fw.outside_district"))
    return (who.scope if who.scope is not None else district_id), None


def _listed(request: Request, session, who: Principal, *, list_id: str, entity: str, columns: list, fetch, count,
            district: int | None, filters: dict, after: int | None):
    """One filtered list page of field work: the export of the whole list when asked (audited by the
    export), else ``(rows shown, pager)`` with the read audited; ``fetch(after, limit)`` and ``count()``
    are the domain's keyset page and COUNT for the same filters."""
    asked = ", ".join(f"{k} {v}" for k, v in filters.items() if v) or "no filter"
    fmt = wants_export(request, list_id)
    if fmt:
        return export(request, session, who, fmt, name=f"field_{list_id}", entity=entity, columns=columns,
                      detail=f"field {list_id} ({asked})", chunks=keyset_chunks(fetch, lambda r: r["id"])), None
    rows = fetch(after, PAGE + 1)
    shown = rows[:PAGE]
    total = count()
    audit(session, who, CHANNEL, "read", entity, None, district, detail=f"listed {len(shown)} of {total} ({asked})")
    session.commit()
    return shown, pager(request, total=total, shown=len(shown), id=list_id,
                        next_after=shown[-1]["id"] if len(rows) > PAGE else None)


def _tehsils(session, district: int | None) -> list[Tehsil]:
    if district is None:
        return []
    return list(session.scalars(select(Tehsil).where(Tehsil.district_id == district).order_by(Tehsil.name)))


# ---------------------------------------------------------------- progress

@router.get("/field")
def field_home(request: Request, session: DB, who: User, district_id: FilterId = None) -> Response:
    """The supervisor's page: progress per enumerator and per area, each figure linking to its list."""
    tr = _tr(request)
    if not (who.can(ASSIGN) or who.can(REVIEW)):
        if who.can(COLLECT):
            return RedirectResponse("/field/assignments?mine=1&status=open", status_code=303)
        return _deny(request, session, who, "field_assignment", None, who.scope, tr("fw.no_right"))
    district, refused = _district(request, session, who, district_id, "field_assignment")
    if refused:
        return refused
    today = date.today()
    by_user = asg.progress(session, who, by="enumerator", district_id=district, on=today)
    by_area = asg.progress(session, who, by="area", district_id=district, on=today)
    top = max([r["assigned"] + r["collected"] for r in by_user] or [1]) or 1
    for r in by_user:  # the stacked bar: accepted, refused, still open (of 100)
        r["bar"] = {"accepted": 100 * r["accepted"] / top, "refused": 100 * r["refused"] / top,
                    "open": 100 * r["open"] / top}
    totals = {k: sum(r[k] for r in by_user) for k in ("assigned", "open", "late", "collected", "accepted", "refused")}
    return render(request, "field_progress.html", {
        "by_user": by_user, "by_area": by_area, "totals": totals, "geo": Geography.load(session),
        "district_id": district, "scoped": who.scope is not None, "can_assign": who.can(ASSIGN)},
        who=who, session=session)


# ---------------------------------------------------------------- assigning

def _assign_page(request: Request, session, who: Principal, *, district: int | None, done: str | None = None,
                 error: str | None = None, form: dict | None = None, status: int = 200) -> Response:
    ucs = []
    if district is not None:
        ucs = session.execute(select(UnionCouncil.name, Tehsil.id).join(Tehsil, Tehsil.id == UnionCouncil.tehsil_id)
                              .where(Tehsil.district_id == district).order_by(UnionCouncil.name)).all()
    visits = []
    if district is not None:  # registrations waiting for verification: no personal data, only the receipt
        from isps.citizen import receipts

        visits = [{"id": a, "receipt": receipts.make("application", a), "visit_on": v.isoformat() if v else "",
                   "owner": o or ""}
                  for a, v, o in session.execute(text("""SELECT a.id, st.visit_on, st.owner FROM application a
                      JOIN application_step st ON st.application_id = a.id AND st.done_at IS NULL AND st.name = 'verify'
                      WHERE a.district_id = :d AND a.status = 'open' ORDER BY a.id DESC LIMIT 200"""), {"d": district})]
    sites = lists.list_sites(session, district_id=district, limit=200) if district is not None else []
    return render(request, "field_assign.html", {
        "district_id": district, "geo": Geography.load(session), "scoped": who.scope is not None,
        "enumerators": asg.collectors(session, district) if district is not None else [],
        "tehsils": _tehsils(session, district), "ucs": ucs, "visits": visits, "sites": sites,
        "done": done, "error": error, "form": form or {}}, who=who, session=session, status=status)


@router.get("/field/assign")
def assign_page(request: Request, session: DB, who: User, district_id: FilterId = None) -> Response:
    if not who.can(ASSIGN):
        return _deny(request, session, who, "field_assignment", None, who.scope, _tr(request)("fw.no_right_assign"),
                     action="assign")
    district, refused = _district(request, session, who, district_id, "field_assignment")
    return refused or _assign_page(request, session, who, district=district)


_IDS = re.compile(r"[\s,;]+")


def _ids(raw: str, field: str) -> list[int]:
    out = []
    for part in _IDS.split((raw or "").strip()):
        if not part:
            continue
        if not part.isdigit() or len(part) > 18:
            raise asg.AssignmentError(f"{field}: '{part[:20]}' is not a household id")
        out.append(int(part))
    if len(out) > 5000:
        raise asg.AssignmentError(f"{field}: at most 5,000 households at once")
    return out


def _opt_int(raw: str, field: str) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise asg.AssignmentError(f"{field}: '{raw[:20]}' is not a number")
    return int(raw)


@router.post("/field/assign")
def assign_post(request: Request, session: DB, who: User, kind: Annotated[str, Form(max_length=10)] = "",
                enumerator: Annotated[str, Form(max_length=80)] = "", district_id: Annotated[str, Form(max_length=4)] = "",
                tehsil_id: Annotated[str, Form(max_length=6)] = "",
                union_council: Annotated[str, Form(max_length=80)] = "",
                household_ids: Annotated[str, Form(max_length=100_000)] = "",
                application_id: Annotated[str, Form(max_length=18)] = "",
                site_id: Annotated[str, Form(max_length=18)] = "", due_on: Annotated[str, Form(max_length=10)] = ""
                ) -> Response:
    tr = _tr(request)
    if not who.can(ASSIGN):
        return _deny(request, session, who, "field_assignment", None, who.scope, tr("fw.no_right_assign"),
                     action="assign")
    form = {"kind": kind, "enumerator": enumerator, "tehsil_id": tehsil_id, "union_council": union_council,
            "household_ids": household_ids, "application_id": application_id, "site_id": site_id, "due_on": due_on}
    district = who.scope
    try:
        if district is None:
            district = _opt_int(district_id, "district_id")
        due = None
        if due_on.strip():
            try:
                due = date.fromisoformat(due_on.strip())
            except ValueError:
                raise asg.AssignmentError(f"due_on: '{due_on[:10]}' is not a date (YYYY-MM-DD)") from None
        n = asg.assign(session, who, kind=kind, enumerator=enumerator, household_ids=_ids(household_ids, "household_ids"),
                       tehsil_id=_opt_int(tehsil_id, "tehsil_id"), union_council=union_council.strip() or None,
                       application_id=_opt_int(application_id, "application_id"),
                       site_id=_opt_int(site_id, "site_id"), due_on=due)
    except (asg.AssignmentError, asg.OutOfScope, PermissionError, ValueError) as exc:
        session.rollback()
        return _assign_page(request, session, who, district=district, error=str(exc), form=form, status=422)
    session.commit()
    return _assign_page(request, session, who, district=district,
                        done=tr("fw.assign.done", n=n, kind=tr(f"fw.kind.{kind}"), enumerator=enumerator))


@router.get("/field/assignments")
def assignments_page(request: Request, session: DB, who: User, kind: str = "", status: str = "",
                     enumerator: str = "", late: str = "", mine: str = "", tehsil_id: FilterId = None,
                     district_id: FilterId = None, after: FilterId = None) -> Response:
    """Assignments (an enumerator sees only their own), newest first; the lists behind the progress."""
    tr = _tr(request)
    if not _any(who):
        return _deny(request, session, who, "field_assignment", None, who.scope, tr("fw.no_right"))
    district, refused = _district(request, session, who, district_id, "field_assignment")
    if refused:
        return refused
    own = mine or not (who.can(ASSIGN) or who.can(REVIEW))
    filters = {"district_id": district, "kind": kind if kind in asg.KINDS else None,
               "status": status if status in asg.STATUSES else None,
               "enumerator": who.username if own else (enumerator.strip()[:80] or None),
               "late_on": date.today() if late else None, "tehsil_id": tehsil_id}
    shown, paged = _listed(request, session, who, list_id="assignments", entity="field_assignment",
                           columns=ASSIGNMENT_COLUMNS, district=district, filters=filters, after=after,
                           fetch=lambda a, n: lists.list_assignments(session, after=a, limit=n, **filters),
                           count=lambda: lists.count_assignments(session, **filters))
    if paged is None:
        return shown  # the export
    return render(request, "field_assignments.html", {
        "rows": shown, "pager": paged,
        "kinds": asg.KINDS, "statuses": asg.STATUSES, "own": own, "geo": Geography.load(session),
        "f": {"kind": kind, "status": status, "enumerator": enumerator, "late": late, "mine": mine,
              "tehsil_id": tehsil_id or ""}}, who=who, session=session)


# ---------------------------------------------------------------- devices

def _devices_page(request: Request, session, who: Principal, *, after: int | None = None, made: dict | None = None,
                  error: str | None = None, form: dict | None = None, status: int = 200) -> Response:
    rows = lists.list_devices(session, district_id=who.scope, after=after, limit=PAGE + 1)
    shown = rows[:PAGE]
    total = lists.count_devices(session, district_id=who.scope)
    return render(request, "field_devices.html", {
        "rows": shown, "pager": pager(request, total=total, shown=len(shown), id="devices", exportable=False,
                                      next_after=shown[-1]["id"] if len(rows) > PAGE else None),
        "users": asg.collectors(session, who.scope), "made": made, "error": error, "form": form or {},
        "geo": Geography.load(session)}, who=who, session=session, status=status)


@router.get("/field/devices")
def devices_page(request: Request, session: DB, who: User, after: FilterId = None) -> Response:
    if not who.can(ASSIGN):
        return _deny(request, session, who, "field_device", None, who.scope, _tr(request)("fw.no_right_assign"))
    return _devices_page(request, session, who, after=after)


@router.post("/field/devices")
def register_device(request: Request, session: DB, who: User, code: Annotated[str, Form(max_length=40)] = "",
                    label: Annotated[str, Form(max_length=120)] = "",
                    username: Annotated[str, Form(max_length=80)] = "") -> Response:
    """Register a device: its token is shown on this answer only (with the server address, Collect's
    settings and their QR code), never again."""
    from isps.fieldwork import devices

    if not who.can(ASSIGN):
        return _deny(request, session, who, "field_device", None, who.scope, _tr(request)("fw.no_right_assign"),
                     action="create")
    form = {"code": code, "label": label, "username": username}
    try:
        device, token = devices.register_device(session, who, code=code, label=label, username=username)
    except (devices.DeviceError, PermissionError) as exc:
        session.rollback()
        return _devices_page(request, session, who, error=str(exc), form=form, status=422)
    base = str(request.base_url).rstrip("/")
    settings = devices.collect_settings(device, token, base)
    made = {"code": device.code, "username": device.username, "token": token,
            "server_url": settings["general"]["server_url"], "digest_url": f"{base}/openrosa",
            "settings": json.dumps(settings, indent=1, ensure_ascii=False), "qr": _qr(devices.qr_payload(settings))}
    session.commit()
    resp = _devices_page(request, session, who, made=made)
    return resp


def _qr(payload: str) -> str | None:
    """The settings' QR code as an SVG data URI (segno, pure Python), or None if segno is missing."""
    try:
        import segno
    except ImportError:  # pragma: no cover - declared in pyproject
        return None
    return segno.make(payload, error="l").svg_data_uri(scale=3, border=2)


@router.post("/field/devices/{device_id}/revoke")
def revoke_device(request: Request, device_id: Id, session: DB, who: User) -> Response:
    from isps.fieldwork import devices

    if not who.can(ASSIGN):
        return _deny(request, session, who, "field_device", device_id, who.scope, _tr(request)("fw.no_right_assign"),
                     action="revoke")
    try:
        devices.revoke_device(session, who, device_id)
    except devices.DeviceError as exc:
        session.rollback()
        return error_page(request, session, who, 404, str(exc))
    except PermissionError as exc:
        session.rollback()
        return _deny(request, session, who, "field_device", device_id, who.scope, str(exc), action="revoke")
    session.commit()
    return RedirectResponse("/field/devices", status_code=303)


# ---------------------------------------------------------------- submissions

@router.get("/field/submissions")
def submissions_page(request: Request, session: DB, who: User, status: str = "", job: str = "",
                     enumerator: str = "", day: FilterDay = None, unreviewed: str = "",
                     district_id: FilterId = None, after: FilterId = None) -> Response:
    """Every submission (a collector sees their own), filtered; ``?status=refused&unreviewed=1`` is the
    refused queue an officer works through."""
    tr = _tr(request)
    if not _any(who):
        return _deny(request, session, who, "field_submission", None, who.scope, tr("fw.no_right"))
    district, refused = _district(request, session, who, district_id, "field_submission")
    if refused:
        return refused
    own = not who.can(REVIEW)
    filters = {"district_id": district, "status": status if status in lists.STATUSES else None,
               "job": job if job in lists.JOBS else None,
               "enumerator": who.username if own else (enumerator.strip()[:80] or None), "day": day,
               "unreviewed": bool(unreviewed)}
    shown, paged = _listed(request, session, who, list_id="submissions", entity="field_submission",
                           columns=SUBMISSION_COLUMNS, district=district, filters=filters, after=after,
                           fetch=lambda a, n: lists.list_submissions(session, after=a, limit=n, **filters),
                           count=lambda: lists.count_submissions(session, **filters))
    if paged is None:
        return shown  # the export
    return render(request, "field_submissions.html", {
        "rows": shown, "pager": paged,
        "statuses": lists.STATUSES, "jobs": lists.JOBS, "own": own,
        "f": {"status": status, "job": job, "enumerator": enumerator, "day": day or "", "unreviewed": unreviewed}},
        who=who, session=session)


def _submission(request: Request, session, who: Principal, submission_id: int, action: str):
    s = session.get(FieldSubmission, submission_id)
    if s is None:
        audit(session, who, CHANNEL, action, "field_submission", submission_id, outcome="not_found")
        session.commit()
        return None, error_page(request, session, who, 404, _tr(request)("fw.no_submission", id=submission_id))
    if not _any(who) or (who.scope is not None and s.district_id != who.scope) or \
            (not who.can(REVIEW) and s.username != who.username):
        return None, _deny(request, session, who, "field_submission", s.id, s.district_id,
                           _tr(request)("fw.outside_district"), action=action)
    return s, None


def _submission_page(request: Request, session, who: Principal, s: FieldSubmission, *, error: str | None = None,
                     status: int = 200) -> Response:
    values, repeats, unreadable = lists.submission_values(s)
    audit(session, who, CHANNEL, "read", "field_submission", s.id, s.district_id, detail=f"{s.job} {s.instance_id}")
    session.commit()
    attachments = session.execute(text("SELECT name, content_type, size FROM field_attachment WHERE submission_id = :s "
                                       "ORDER BY name"), {"s": s.id}).all()
    return render(request, "field_submission.html", {
        "s": lists.submission_row(s), "result": s.result, "values": values, "repeats": repeats,
        "unreadable": unreadable, "attachments": attachments, "error": error,
        "can_review": who.can(REVIEW) and s.status == "refused" and s.reviewed_at is None},
        who=who, session=session, status=status)


@router.get("/field/submissions/{submission_id}")
def submission_page(request: Request, submission_id: Id, session: DB, who: User) -> Response:
    """One submission: what it said (CNICs masked), what became of it, why it was refused."""
    s, refused = _submission(request, session, who, submission_id, "read")
    return refused or _submission_page(request, session, who, s)


@router.post("/field/submissions/{submission_id}/review")
def review_submission(request: Request, submission_id: Id, session: DB, who: User,
                      note: Annotated[str, Form(max_length=400)] = "") -> Response:
    s, refused = _submission(request, session, who, submission_id, "review")
    if refused:
        return refused
    if not who.can(REVIEW):
        return _deny(request, session, who, "field_submission", s.id, s.district_id, _tr(request)("fw.no_right_review"),
                     action="review")
    try:
        lists.review(session, who, s.id, note)
    except lists.ReviewError as exc:
        session.rollback()
        return _submission_page(request, session, who, session.get(FieldSubmission, submission_id), error=str(exc),
                                status=422)
    session.commit()
    return RedirectResponse("/field/submissions?status=refused&unreviewed=1", status_code=303)


# ---------------------------------------------------------------- distribution sites

def _sites_page(request: Request, session, who: Principal, *, district: int | None, kind: str = "",
                after: int | None = None, error: str | None = None, form: dict | None = None,
                status: int = 200) -> Response:
    k = kind if kind in dist.KINDS else None
    rows = lists.list_sites(session, district_id=district, kind=k, after=after, limit=PAGE + 1)
    shown = rows[:PAGE]
    total = lists.count_sites(session, district_id=district, kind=k)
    geo = Geography.load(session)
    outlets = session.execute(text("SELECT id, name, tehsil_id FROM cash_outlet WHERE district_id = :d ORDER BY name"),
                              {"d": district}).all() if district is not None else []
    return render(request, "field_sites.html", {
        "rows": shown, "pager": pager(request, total=total, shown=len(shown), id="sites", exportable=False,
                                      next_after=shown[-1]["id"] if len(rows) > PAGE else None),
        "geo": geo, "district_id": district, "scoped": who.scope is not None, "kinds": dist.KINDS,
        "tehsils": _tehsils(session, district), "outlets": outlets, "can_assign": who.can(ASSIGN),
        "error": error, "form": form or {}, "f": {"kind": kind}}, who=who, session=session, status=status)


@router.get("/field/sites")
def sites_page(request: Request, session: DB, who: User, kind: str = "", district_id: FilterId = None,
               after: FilterId = None) -> Response:
    if not _any(who):
        return _deny(request, session, who, "distribution_site", None, who.scope, _tr(request)("fw.no_right"))
    district, refused = _district(request, session, who, district_id, "distribution_site")
    return refused or _sites_page(request, session, who, district=district, kind=kind, after=after)


def _day(raw: str, field: str) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise dist.DistributionError(f"{field}: '{raw[:10]}' is not a date (YYYY-MM-DD)") from None


@router.post("/field/sites")
def create_site(request: Request, session: DB, who: User, name: Annotated[str, Form(max_length=120)] = "",
                kind: Annotated[str, Form(max_length=10)] = "", district_id: Annotated[str, Form(max_length=4)] = "",
                tehsil_id: Annotated[str, Form(max_length=6)] = "", outlet_id: Annotated[str, Form(max_length=18)] = "",
                opens_on: Annotated[str, Form(max_length=10)] = "",
                closes_on: Annotated[str, Form(max_length=10)] = "") -> Response:
    if not who.can(ASSIGN):
        return _deny(request, session, who, "distribution_site", None, who.scope, _tr(request)("fw.no_right_assign"),
                     action="create")
    form = {"name": name, "kind": kind, "tehsil_id": tehsil_id, "outlet_id": outlet_id, "opens_on": opens_on,
            "closes_on": closes_on}
    district = who.scope
    try:
        if district is None:
            district = _opt_int(district_id, "district_id")
            if district is None:
                raise dist.DistributionError("district_id: choose the site's district")
        site = dist.create_site(session, who, name=name, kind=kind, district_id=district,
                                tehsil_id=_opt_int(tehsil_id, "tehsil_id"), outlet_id=_opt_int(outlet_id, "outlet_id"),
                                opens_on=_day(opens_on, "opens_on"), closes_on=_day(closes_on, "closes_on"))
    except (dist.DistributionError, asg.AssignmentError, PermissionError) as exc:
        session.rollback()
        return _sites_page(request, session, who, district=district, error=str(exc), form=form, status=422)
    session.commit()
    return RedirectResponse(f"/field/sites/{site.id}", status_code=303)


def _site(request: Request, session, who: Principal, site_id: int, action: str = "read"):
    s = session.get(DistributionSite, site_id)
    if s is None:
        audit(session, who, CHANNEL, action, "distribution_site", site_id, outcome="not_found")
        session.commit()
        return None, error_page(request, session, who, 404, _tr(request)("fw.no_site", id=site_id))
    if not _any(who) or (who.scope is not None and s.district_id != who.scope):
        return None, _deny(request, session, who, "distribution_site", s.id, s.district_id,
                           _tr(request)("fw.outside_district"), action=action)
    return s, None


def _site_page(request: Request, session, who: Principal, s: DistributionSite, *, handed: str = "",
               after: int | None = None, done: str | None = None, error: str | None = None, form: dict | None = None,
               status: int = 200) -> Response:
    flag = {"yes": True, "no": False}.get(handed)
    rows = lists.list_entries(session, s.id, handed=flag, after=after, limit=PAGE + 1)
    shown = rows[:PAGE]
    total = lists.count_entries(session, s.id, handed=flag)
    audit(session, who, CHANNEL, "read", "distribution_entry", s.id, s.district_id,
          detail=f"site {s.id}: listed {len(shown)} of {total} lines")
    session.commit()
    payrolls = []
    if s.kind == "cash" and who.can(ASSIGN):
        payrolls = session.execute(text("""SELECT p.id, p.program_code, COUNT(*) FROM payroll p
            JOIN payment_instruction i ON i.payroll_id = p.id JOIN pickup_slot ps ON ps.instruction_id = i.id
            WHERE ps.outlet_id = :o GROUP BY p.id, p.program_code ORDER BY p.id DESC LIMIT 50"""), {"o": s.outlet_id}).all()
    geo = Geography.load(session)
    return render(request, "field_site.html", {
        "site": s, "summary": dist.summary(session, s.id), "rows": shown, "geo": geo,
        "pager": pager(request, total=total, shown=len(shown), id="entries",
                       next_after=shown[-1]["id"] if len(rows) > PAGE else None),
        "payrolls": payrolls, "can_assign": who.can(ASSIGN), "done": done, "error": error, "form": form or {},
        "items": dist.ITEMS, "f": {"handed": handed}}, who=who, session=session, status=status)


@router.get("/field/sites/{site_id}")
def site_page(request: Request, site_id: Id, session: DB, who: User, handed: str = "",
              after: FilterId = None) -> Response:
    """A site's list with each line's hand-over (recipients' CNICs masked; the read audited), and export."""
    s, refused = _site(request, session, who, site_id)
    if refused:
        return refused
    fmt = wants_export(request, "entries")
    if fmt:
        flag = {"yes": True, "no": False}.get(handed)
        return export(request, session, who, fmt, name=f"site_{s.id}", entity="distribution_entry",
                      columns=ENTRY_COLUMNS, detail=f"the list of site {s.id}",
                      chunks=keyset_chunks(lambda a, n: lists.list_entries(session, s.id, handed=flag, after=a, limit=n),
                                           lambda r: r["id"]))
    return _site_page(request, session, who, s, handed=handed, after=after)


@router.post("/field/sites/{site_id}/list")
def build_list(request: Request, site_id: Id, session: DB, who: User,
               payroll_id: Annotated[str, Form(max_length=18)] = "", list_ref: Annotated[str, Form(max_length=60)] = "",
               item: Annotated[str, Form(max_length=40)] = "", quantity: Annotated[str, Form(max_length=6)] = "",
               household_ids: Annotated[str, Form(max_length=100_000)] = "") -> Response:
    """Build the site's list: cash lines from a payroll's pickup slots, or in-kind lines for households."""
    tr = _tr(request)
    s, refused = _site(request, session, who, site_id, action="create")
    if refused:
        return refused
    if not who.can(ASSIGN):
        return _deny(request, session, who, "distribution_site", s.id, s.district_id, tr("fw.no_right_assign"),
                     action="create")
    form = {"payroll_id": payroll_id, "list_ref": list_ref, "item": item, "quantity": quantity,
            "household_ids": household_ids}
    try:
        if s.kind == "cash":
            pid = _opt_int(payroll_id, "payroll_id")
            if pid is None:
                raise dist.DistributionError("payroll_id: choose a payroll")
            n = dist.list_from_payroll(session, who, s.id, pid)
        else:
            qty = _opt_int(quantity, "quantity") or 0
            n = dist.list_in_kind(session, who, s.id, list_ref=list_ref, item=item, quantity=qty,
                                  household_ids=_ids(household_ids, "household_ids"))
    except (dist.DistributionError, asg.AssignmentError, PermissionError) as exc:
        session.rollback()
        return _site_page(request, session, who, session.get(DistributionSite, site_id), error=str(exc), form=form,
                          status=422)
    session.commit()
    return _site_page(request, session, who, s, done=tr("fw.site.listed", n=n))


__all__ = ["router"]
