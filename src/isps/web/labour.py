"""Web pages of the labour registries: booth registration of daily wagers and the rotation of a
day's work, shop registration and the printable certificate, and the job board (laid-off workers,
vacancies and their matches). Counter operators and district officers work in their own district
only; every list pages by keyset with its total and export; every read of people's records and
every registration is audited (channel ``web``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import urlencode

import tempfile
from pathlib import Path

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from isps.access.service import audit
from isps.api.params import After, Id, QueryId
from isps.labour import jobs, registers, reports, shops, uploads, wagers
from isps.labour.status import LabourError, person_for
from isps.labour.vocab import EMPLOYED, LEAVE_REASONS, REPORTABLE, SKILLS
from isps.registry import cnic as cnic_rules
from isps.registry.models import Individual
from isps.web import listing
from isps.web.common import CHANNEL, DB, FilterId, Geography, User, _district_name, _tr, error_page, render

router = APIRouter(include_in_schema=False)
WRITE = "registry.write"


def _day(raw: str) -> date:
    try:
        return date.fromisoformat(raw.strip()) if raw and raw.strip() else date.today()
    except ValueError:
        raise LabourError(f"date: '{raw[:20]}' is not a date written YYYY-MM-DD") from None


def _district_for(who, raw: int | None) -> int:
    """The district a form acts in: a scoped user's own; a province-wide user must choose one."""
    if who.scope is not None:
        return who.scope
    if raw is None:
        raise LabourError("district: choose the district")
    return raw


def _refused(request: Request, session, who, entity: str) -> Response:
    audit(session, who, CHANNEL, "create", entity, None, who.scope, outcome="denied")
    session.commit()
    return error_page(request, session, who, 403, _tr(request)("labour.no_right"))


def _names(session, ids: list[int]) -> dict[int, Individual]:
    if not ids:
        return {}
    return {p.id: p for p in session.query(Individual).filter(Individual.id.in_(ids))}


def _leavings(session, register: str, scope: int | None) -> list[dict]:
    """The register's newest leavings (who, when, why, by whom): the history kept when someone is taken off."""
    rows = registers.leavings(session, register, scope, limit=10)
    people = _names(session, [x.individual_id for x in rows])
    return [{"name": people[x.individual_id].full_name if x.individual_id in people else "—",
             "left_on": x.left_on, "reason": x.reason, "now": x.now_status, "note": x.note or "",
             "by": x.recorded_by, "since": x.registered_since} for x in rows]


LEAVE_FORM = {"reasons": LEAVE_REASONS, "now_choices": REPORTABLE, "employed": EMPLOYED}
PAGE_OF = {"daily_wager": "/labour/wagers", "laid_off": "/labour/jobs", "shopkeeper": "/labour/shops"}


# ---------------------------------------------------------------- daily wagers

WAGER_COLUMNS = [("id", "registration"), ("individual_id", "individual"), ("name", "name"), ("cnic", "cnic_masked"),
                 ("district", "district"), ("booth", "booth"), ("since", "registered_on")]


def _wager_rows(session, rows, geo: Geography, tr) -> list[dict]:
    people = _names(session, [w.individual_id for w in rows])
    return [{"id": w.id, "individual_id": w.individual_id, "name": people[w.individual_id].full_name,
             "cnic": cnic_rules.mask(people[w.individual_id].cnic) if people[w.individual_id].cnic else "—",
             "district": _district_name(tr, geo.district_by_id.get(w.district_id)), "booth": w.booth,
             "since": w.since} for w in rows]


def _wagers_page(request: Request, session, who, *, after: int | None = None, district_id: int | None = None,
                 offer_id: int | None = None, done: str = "", error: str | None = None, status: int = 200,
                 form: dict | None = None) -> Response:
    tr = _tr(request)
    geo = Geography.load(session)
    scope = who.scope if who.scope is not None else district_id
    fmt = listing.wants_export(request, "wagers")
    if fmt:
        return listing.export(request, session, who, fmt, name="daily_wagers", entity="labour_worker",
                              columns=WAGER_COLUMNS, detail="the daily wagers' register",
                              chunks=(_wager_rows(session, rows, geo, tr) for rows in listing.keyset_chunks(
                                  lambda a, n: wagers.wagers(session, scope, after=a, limit=n), lambda w: w.id)))
    rows = wagers.wagers(session, scope, after=after, limit=listing.PAGE + 1)
    view = _wager_rows(session, rows[:listing.PAGE], geo, tr)
    pager = listing.pager(request, total=wagers.count_wagers(session, scope), shown=len(view), id="wagers",
                          next_after=rows[listing.PAGE - 1].id if len(rows) > listing.PAGE else None)
    picks = wagers.picks(session, offer_id) if offer_id else []
    offer = session.get(wagers.WorkOffer, offer_id) if offer_id else None
    if offer is not None and who.scope is not None and offer.district_id != who.scope:
        offer, picks = None, []
    audit(session, who, CHANNEL, "read", "labour_worker", None, who.scope, detail="read the daily wagers' register")
    return render(request, "labour_wagers.html", {
        "rows": view, "pager": pager, "geo": geo, "locked": who.scope is not None, "district_id": scope,
        "can_write": who.can(WRITE), "booths": wagers.booths(session, scope), "offer": offer, "picks": picks,
        "leavings": _leavings(session, "daily_wager", scope), "leave": LEAVE_FORM, "done": done, "error": error,
        "form": form or {}, "today": date.today().isoformat()},
        who=who, session=session, status=status)


@router.get("/labour/wagers")
def wagers_page(request: Request, session: DB, who: User, after: After = None, district_id: FilterId = None,
                offer: QueryId = None, done: str = "") -> Response:
    """The daily wagers' register of the district, booth registration, and the day's work offered
    by rotation (the picks of the last offer are shown)."""
    return _wagers_page(request, session, who, after=after, district_id=district_id, offer_id=offer,
                        done=done if done in ("registered", "day", "left") else "")


@router.post("/labour/wagers")
def register_wager(request: Request, session: DB, who: User, cnic: Annotated[str, Form(max_length=40)] = "",
                   booth: Annotated[str, Form(max_length=100)] = "",
                   registered_on: Annotated[str, Form(max_length=20)] = "") -> Response:
    """Register a daily wager at a booth (counter operator, district officer)."""
    if not who.can(WRITE):
        return _refused(request, session, who, "labour_worker")
    try:
        w = wagers.register_wager(session, cnic, booth, _day(registered_on), who.username, who.scope)
    except LabourError as exc:
        session.rollback()
        return _wagers_page(request, session, who, error=str(exc), status=422,
                            form={"cnic": cnic, "booth": booth, "registered_on": registered_on})
    audit(session, who, CHANNEL, "create", "labour_worker", w.id, w.district_id,
          detail=f"daily wager at {w.booth}: individual {w.individual_id}")
    session.commit()
    return RedirectResponse("/labour/wagers?done=registered", status_code=303)


@router.post("/labour/wagers/day")
def record_day(request: Request, session: DB, who: User, cnic: Annotated[str, Form(max_length=40)] = "",
               worked_on: Annotated[str, Form(max_length=20)] = "") -> Response:
    """A day a wager worked on their own, reported at the booth: it counts in the rotation."""
    if not who.can(WRITE):
        return _refused(request, session, who, "labour_wager_day")
    try:
        person = person_for(session, cnic, who.scope)
        day = wagers.record_day(session, person.id, _day(worked_on), who.username, who.scope)
    except LabourError as exc:
        session.rollback()
        return _wagers_page(request, session, who, error=str(exc), status=422, form={"day_cnic": cnic})
    audit(session, who, CHANNEL, "record", "labour_wager_day", None, day.district_id,
          detail=f"individual {day.individual_id} worked on {day.worked_on}")
    session.commit()
    return RedirectResponse("/labour/wagers?done=day", status_code=303)


@router.post("/labour/wagers/offer")
def offer_work(request: Request, session: DB, who: User, booth: Annotated[str, Form(max_length=100)] = "",
               slots: Annotated[int, Form(ge=1, le=500)] = 1, employer: Annotated[str, Form(max_length=140)] = "",
               description: Annotated[str, Form(max_length=220)] = "",
               work_on: Annotated[str, Form(max_length=20)] = "",
               district_id: Annotated[int | None, Form(ge=1, le=99)] = None) -> Response:
    """Offer a day's work at a booth: the places go to the wagers idle longest; the page shows who."""
    if not who.can(WRITE):
        return _refused(request, session, who, "labour_work_offer")
    try:
        offer = wagers.offer_work(session, _district_for(who, district_id), booth, _day(work_on), slots, employer,
                                  description, who.username, who.scope)
        wagers.take_offer(session, offer.id)
    except LabourError as exc:
        session.rollback()
        return _wagers_page(request, session, who, error=str(exc), status=422,
                            form={"offer_booth": booth, "employer": employer, "description": description})
    audit(session, who, CHANNEL, "record", "labour_work_offer", offer.id, offer.district_id,
          detail=f"{slots} places at {offer.booth} on {offer.work_on}")
    session.commit()
    return RedirectResponse(f"/labour/wagers?{urlencode({'offer': offer.id})}", status_code=303)


# ---------------------------------------------------------------- shops

SHOP_COLUMNS = [("certificate_no", "certificate_no"), ("shop_name", "shop_name"), ("trade", "trade"),
                ("owner", "owner"), ("cnic", "cnic_masked"), ("district", "district"),
                ("registered_on", "registered_on"), ("closed_on", "closed_on")]


def _shop_rows(session, rows, geo: Geography, tr) -> list[dict]:
    people = _names(session, [x.individual_id for x in rows])
    closed = shops.closed_on(session, [x.id for x in rows])
    return [{"id": x.id, "certificate_no": x.certificate_no, "shop_name": x.shop_name, "trade": x.trade,
             "closed_on": closed.get(x.id),
             "owner": people[x.individual_id].full_name,
             "cnic": cnic_rules.mask(people[x.individual_id].cnic) if people[x.individual_id].cnic else "—",
             "district": _district_name(tr, geo.district_by_id.get(x.district_id)),
             "registered_on": x.registered_on} for x in rows]


def _shops_page(request: Request, session, who, *, after: int | None = None, district_id: int | None = None,
                done: str = "", error: str | None = None, status: int = 200, form: dict | None = None) -> Response:
    tr = _tr(request)
    geo = Geography.load(session)
    scope = who.scope if who.scope is not None else district_id
    fmt = listing.wants_export(request, "shops")
    if fmt:
        return listing.export(request, session, who, fmt, name="shops", entity="labour_shop", columns=SHOP_COLUMNS,
                              detail="the shop register",
                              chunks=(_shop_rows(session, rows, geo, tr) for rows in listing.keyset_chunks(
                                  lambda a, n: shops.shops(session, scope, after=a, limit=n), lambda x: x.id)))
    rows = shops.shops(session, scope, after=after, limit=listing.PAGE + 1)
    view = _shop_rows(session, rows[:listing.PAGE], geo, tr)
    pager = listing.pager(request, total=shops.count_shops(session, scope), shown=len(view), id="shops",
                          next_after=rows[listing.PAGE - 1].id if len(rows) > listing.PAGE else None)
    audit(session, who, CHANNEL, "read", "labour_shop", None, who.scope, detail="read the shop register")
    return render(request, "labour_shops.html", {
        "leavings": _leavings(session, "shopkeeper", scope), "leave": LEAVE_FORM, "done": done,
        "rows": view, "pager": pager, "geo": geo, "locked": who.scope is not None, "district_id": scope,
        "can_write": who.can(WRITE), "error": error, "form": form or {}, "today": date.today().isoformat()},
        who=who, session=session, status=status)


@router.get("/labour/shops")
def shops_page(request: Request, session: DB, who: User, after: After = None, district_id: FilterId = None,
               done: str = "") -> Response:
    """The shop register of the district, the registration form and closing a shop."""
    return _shops_page(request, session, who, after=after, district_id=district_id,
                       done=done if done == "left" else "")


@router.post("/labour/shops")
def register_shop(request: Request, session: DB, who: User, cnic: Annotated[str, Form(max_length=40)] = "",
                  shop_name: Annotated[str, Form(max_length=140)] = "", trade: Annotated[str, Form(max_length=100)] = "",
                  address: Annotated[str, Form(max_length=220)] = "",
                  registered_on: Annotated[str, Form(max_length=20)] = "") -> Response:
    """Register a shop; the browser goes to its certificate, ready to print."""
    if not who.can(WRITE):
        return _refused(request, session, who, "labour_shop")
    try:
        shop = shops.register_shop(session, cnic, shop_name, trade, address, _day(registered_on), who.username,
                                   who.scope)
    except LabourError as exc:
        session.rollback()
        return _shops_page(request, session, who, error=str(exc), status=422,
                           form={"cnic": cnic, "shop_name": shop_name, "trade": trade, "address": address})
    audit(session, who, CHANNEL, "create", "labour_shop", shop.id, shop.district_id,
          detail=f"shop {shop.certificate_no}")
    session.commit()
    return RedirectResponse(f"/labour/shops/{shop.certificate_no}/certificate", status_code=303)


@router.get("/labour/shops/{certificate_no}/certificate")
def shop_certificate(request: Request, certificate_no: str, session: DB, who: User) -> Response:
    """The shop's registration certificate, laid out for printing and display in the shop."""
    if len(certificate_no) > 30:
        return error_page(request, session, who, 404, _tr(request)("labour.no_certificate"))
    try:
        cert = shops.certificate(session, certificate_no, who.scope)
    except LabourError as exc:
        audit(session, who, CHANNEL, "read", "labour_shop", None, who.scope, outcome="not_found",
              detail=certificate_no[:30])
        session.commit()
        return error_page(request, session, who, 404, str(exc))
    audit(session, who, CHANNEL, "read", "labour_shop", None, cert.district_id, detail=f"certificate {cert.certificate_no}")
    return render(request, "labour_certificate.html", {"c": cert}, who=who, session=session)


# ---------------------------------------------------------------- job board

VACANCY_COLUMNS = [("id", "vacancy"), ("title", "title"), ("employer", "employer"), ("skills", "skills"),
                   ("slots", "slots"), ("district", "district"), ("posted_on", "posted_on")]


def _vacancy_rows(rows, geo: Geography, tr) -> list[dict]:
    return [{"id": v.id, "title": v.title, "employer": v.employer, "skills": v.skills,
             "skill_list": v.skills.split(","), "slots": v.slots,
             "district": _district_name(tr, geo.district_by_id.get(v.district_id)), "posted_on": v.posted_on}
            for v in rows]


def _jobs_page(request: Request, session, who, *, after: int | None = None, district_id: int | None = None,
               done: str = "", error: str | None = None, status: int = 200, form: dict | None = None) -> Response:
    tr = _tr(request)
    geo = Geography.load(session)
    scope = who.scope if who.scope is not None else district_id
    fmt = listing.wants_export(request, "vacancies")
    if fmt:
        return listing.export(request, session, who, fmt, name="vacancies", entity="labour_vacancy",
                              columns=VACANCY_COLUMNS, detail="the job board",
                              chunks=(_vacancy_rows(rows, geo, tr) for rows in listing.keyset_chunks(
                                  lambda a, n: jobs.vacancies(session, scope, after=a, limit=n), lambda v: v.id)))
    rows = jobs.vacancies(session, scope, after=after, limit=listing.PAGE + 1)
    view = _vacancy_rows(rows[:listing.PAGE], geo, tr)
    pager = listing.pager(request, total=jobs.count_vacancies(session, scope), shown=len(view), id="vacancies",
                          next_after=rows[listing.PAGE - 1].id if len(rows) > listing.PAGE else None)
    counts = reports.counts(session, date.today(), scope)
    audit(session, who, CHANNEL, "read", "labour_vacancy", None, who.scope, detail="read the job board")
    return render(request, "labour_jobs.html", {
        "rows": view, "pager": pager, "geo": geo, "locked": who.scope is not None, "district_id": scope,
        "leavings": _leavings(session, "laid_off", scope), "leave": LEAVE_FORM,
        "can_write": who.can(WRITE), "skills": SKILLS, "counts": counts, "reportable": REPORTABLE, "done": done, "error": error,
        "form": form or {}, "today": date.today().isoformat()}, who=who, session=session, status=status)


@router.get("/labour/jobs")
def jobs_page(request: Request, session: DB, who: User, after: After = None, district_id: FilterId = None,
              done: str = "") -> Response:
    """The job board: open vacancies (keyset, total, export), posting one, registering a laid-off
    worker with skills, and the labour registry's counts (stale reports not counted as employed)."""
    return _jobs_page(request, session, who, after=after, district_id=district_id,
                      done=done if done in ("laid_off", "report", "left") else "")


@router.post("/labour/reports")
def quarterly_report(request: Request, session: DB, who: User, cnic: Annotated[str, Form(max_length=40)] = "",
                     status: Annotated[str, Form(max_length=30)] = "",
                     reported_on: Annotated[str, Form(max_length=20)] = "") -> Response:
    """A quarterly employment-status report made at the counter."""
    if not who.can(WRITE):
        return _refused(request, session, who, "labour_report")
    try:
        row = reports.report_by_cnic(session, cnic, status, _day(reported_on), who.username, "counter", who.scope)
    except LabourError as exc:
        session.rollback()
        return _jobs_page(request, session, who, error=str(exc), status=422, form={"report_cnic": cnic})
    audit(session, who, CHANNEL, "record", "labour_report", row.id, row.district_id, detail=f"reported {status}")
    session.commit()
    return RedirectResponse("/labour/jobs?done=report", status_code=303)


@router.post("/labour/jobs/laid-off")
def register_laid_off(request: Request, session: DB, who: User, cnic: Annotated[str, Form(max_length=40)] = "",
                      laid_off_on: Annotated[str, Form(max_length=20)] = "",
                      skills: Annotated[list[str], Form()] = []) -> Response:  # noqa: B006
    if not who.can(WRITE):
        return _refused(request, session, who, "labour_worker")
    try:
        w = jobs.register_laid_off(session, cnic, _day(laid_off_on), skills[:20], who.username, who.scope)
    except LabourError as exc:
        session.rollback()
        return _jobs_page(request, session, who, error=str(exc), status=422, form={"cnic": cnic, "skills": skills})
    audit(session, who, CHANNEL, "create", "labour_worker", w.id, w.district_id,
          detail=f"laid-off worker: individual {w.individual_id}")
    session.commit()
    return RedirectResponse("/labour/jobs?done=laid_off", status_code=303)


@router.post("/labour/jobs/vacancies")
def post_vacancy(request: Request, session: DB, who: User, employer: Annotated[str, Form(max_length=140)] = "",
                 title: Annotated[str, Form(max_length=140)] = "", skills: Annotated[list[str], Form()] = [],  # noqa: B006
                 slots: Annotated[int, Form(ge=1, le=1000)] = 1,
                 district_id: Annotated[int | None, Form(ge=1, le=99)] = None) -> Response:
    if not who.can(WRITE):
        return _refused(request, session, who, "labour_vacancy")
    try:
        v = jobs.post_vacancy(session, _district_for(who, district_id), employer, title, skills[:20], slots,
                              date.today(), who.username, who.scope)
    except LabourError as exc:
        session.rollback()
        return _jobs_page(request, session, who, error=str(exc), status=422,
                          form={"employer": employer, "title": title, "vskills": skills})
    audit(session, who, CHANNEL, "create", "labour_vacancy", v.id, v.district_id, detail=v.title)
    session.commit()
    return RedirectResponse(f"/labour/jobs/{v.id}", status_code=303)


@router.get("/labour/jobs/{vacancy_id}")
def vacancy_matches(request: Request, vacancy_id: Id, session: DB, who: User) -> Response:
    """A vacancy and the laid-off workers it matches, best first (skills, district, recency)."""
    try:
        found = jobs.matches(session, vacancy_id, who.scope, limit=50)
    except LabourError as exc:
        audit(session, who, CHANNEL, "read", "labour_vacancy", vacancy_id, who.scope, outcome="not_found")
        session.commit()
        return error_page(request, session, who, 404, str(exc))
    vacancy = session.get(jobs.Vacancy, vacancy_id)
    geo = Geography.load(session)
    audit(session, who, CHANNEL, "read", "labour_vacancy", vacancy_id, vacancy.district_id,
          detail=f"matches of vacancy {vacancy_id}: {len(found)} people")
    return render(request, "labour_matches.html", {
        "v": _vacancy_rows([vacancy], geo, _tr(request))[0], "matches": found,
        "district_of": lambda d: _district_name(_tr(request), geo.district_by_id.get(d))}, who=who, session=session)


# ---------------------------------------------------------------- taking someone off a register

@router.post("/labour/leave")
def take_off(request: Request, session: DB, who: User,
             off: Annotated[str, Form(alias="register", max_length=20)] = "",
             cnic: Annotated[str, Form(max_length=40)] = "", certificate_no: Annotated[str, Form(max_length=40)] = "",
             left_on: Annotated[str, Form(max_length=20)] = "", reason: Annotated[str, Form(max_length=30)] = "",
             now: Annotated[str, Form(max_length=30)] = "", note: Annotated[str, Form(max_length=220)] = "") -> Response:
    """Take a daily wager or a laid-off worker off their register, or close a shop (counter operator,
    district officer): the register row is kept, inactive, with when, why and by whom."""
    register = off if off in PAGE_OF else "daily_wager"
    entity = "labour_shop" if register == "shopkeeper" else "labour_worker"
    if not who.can(WRITE):
        return _refused(request, session, who, entity)
    try:
        if register == "shopkeeper":
            left = shops.close_shop(session, certificate_no, _day(left_on), reason, who.username, now=now or None,
                                    note=note, district_scope=who.scope)
        else:
            left = registers.take_off_by_cnic(session, register, cnic, _day(left_on), reason, who.username,
                                              now=now or None, note=note, district_scope=who.scope)
    except LabourError as exc:
        session.rollback()
        form = {"leave_cnic": cnic, "leave_cert": certificate_no, "leave_note": note}
        page = {"daily_wager": _wagers_page, "laid_off": _jobs_page, "shopkeeper": _shops_page}[register]
        return page(request, session, who, error=str(exc), status=422, form=form)
    audit(session, who, CHANNEL, "exit", entity, left.shop_id or left.worker_id, left.district_id,
          detail=f"off the {register} register on {left.left_on} ({left.reason}): individual {left.individual_id}")
    session.commit()
    return RedirectResponse(f"{PAGE_OF[register]}?done=left", status_code=303)


# ---------------------------------------------------------------- employers' uploads

IMPORT = "registry.import"
UPLOAD_COLUMNS = [("id", "upload"), ("door", "door"), ("reference", "reference"), ("employer", "employer"),
                  ("rows", "rows"), ("actor", "received_by"), ("received_at", "received_at")]
MAX_UPLOAD = 50 << 20


def _upload_rows(rows) -> list[dict]:
    return [{"id": u.id, "door": u.door, "reference": u.reference, "employer": u.employer, "rows": u.rows,
             "actor": u.actor, "received_at": u.received_at.strftime("%Y-%m-%d %H:%M")} for u in rows]


def _uploads_page(request: Request, session, who, *, after: int | None = None, report=None,
                  status: int = 200, error: str | None = None) -> Response:
    fmt = listing.wants_export(request, "uploads")
    if fmt:
        return listing.export(request, session, who, fmt, name="labour_uploads", entity="labour_upload",
                              columns=UPLOAD_COLUMNS, detail="the employers' uploads",
                              chunks=(_upload_rows(rows) for rows in listing.keyset_chunks(
                                  lambda a, n: uploads.received(session, after=a, limit=n), lambda u: u.id)))
    rows = uploads.received(session, after=after, limit=listing.PAGE + 1)
    view = _upload_rows(rows[:listing.PAGE])
    pager = listing.pager(request, total=uploads.count_received(session), shown=len(view), id="uploads",
                          next_after=rows[listing.PAGE - 1].id if len(rows) > listing.PAGE else None)
    audit(session, who, CHANNEL, "read", "labour_upload", None, who.scope, detail="read the employers' uploads")
    return render(request, "labour_uploads.html", {
        "rows": view, "pager": pager, "doors": uploads.DOORS.values(), "can_upload": who.can(IMPORT),
        "report": report, "errors": (report.errors[:200] if report else []), "error": error},
        who=who, session=session, status=status)


@router.get("/labour/uploads")
def uploads_page(request: Request, session: DB, who: User, after: After = None) -> Response:
    """The employers' and contractors' doors: the prescribed formats, the upload form and the files
    received (newest first)."""
    return _uploads_page(request, session, who, after=after)


@router.post("/labour/uploads")
async def upload_file(request: Request, session: DB, who: User, door: Annotated[str, Form(max_length=20)] = "",
                      file: Annotated[UploadFile | None, File()] = None) -> Response:
    """Receive one file; a file with any bad row is refused whole and the page lists every problem."""
    if not who.can(IMPORT):
        return _refused(request, session, who, "labour_upload")
    if file is None or not file.filename:
        return _uploads_page(request, session, who, status=422, error=_tr(request)("labour.uploads.no_file"))
    name = Path(file.filename).name[:200]
    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        return _uploads_page(request, session, who, status=422, error=_tr(request)("labour.uploads.too_big"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (Path(name).stem[:80] + Path(name).suffix.lower())
        path.write_bytes(data)
        try:
            report = uploads.upload(request.app.state.engine, door, path, actor=who.username, reference=name,
                                    district_scope=who.scope)
        except uploads.UploadError as exc:
            audit(session, who, CHANNEL, "import", "labour_upload", None, who.scope, outcome="failed", detail=name)
            session.commit()
            return _uploads_page(request, session, who, status=422, error=str(exc))
    audit(session, who, CHANNEL, "import", "labour_upload", report.upload_id, who.scope,
          outcome="ok" if report.ok else "failed", detail=report.summary()[:400])
    session.commit()
    return _uploads_page(request, session, who, report=report, status=200 if report.ok else 422)
