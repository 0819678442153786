"""Field work in the browser without a network: the distribution receipt and the verification visit
on a laptop (issue 17).

The pages are shells that a service worker (``/field/offline/sw.js``, scope ``/field/offline/``) keeps
with their scripts and styles, so they open with the network off; their lists come as JSON
(``/field/offline/data``), kept by the same worker; entries are kept in the browser's IndexedDB with
an ``instanceID`` made on the device and sent to ``/field/offline/submit`` when the network returns,
where :func:`isps.fieldwork.offline.submit` hands them to the same inbox ODK Collect's submissions go
through (idempotent by instanceID). Why not Enketo: ``docs/fieldwork/offline.md``.

Roles: ``field.collect`` (enumerators, field supervisors, district officers), in their district.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from isps.access.service import AccessError, Principal, audit
from isps.fieldwork import offline
from isps.web.common import (CHANNEL, DB, SECURITY_HEADERS, SESSION_COOKIE, FilterId, SignInRequired, User, _tr,
                             csrf_guard, error_page, page_user, render)

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static" / "field_offline"
# the labels the page's script shows (entry states, messages), handed to it in the page
SCRIPT_LABELS = ("waiting", "sent", "refused", "handed_over", "not_handed_over", "waiting_visit",
                 "offline", "online", "sign_in_again", "recorded_action", "no_match", "cnic_needed", "note_needed",
                 "choose_outcome", "named_recipient", "last_sync", "never_synced", "list_unavailable",
                 "outcome.confirmed", "outcome.not_found", "outcome.different", "evidence.fingerprint",
                 "evidence.cnic", "nothing_waiting", "n_waiting", "sent_count", "accepted", "already_here")


def _labels(request: Request) -> str:
    tr = _tr(request)
    return json.dumps({key: tr(f"fo.js.{key}") for key in SCRIPT_LABELS}, ensure_ascii=False)


def _refused_page(request: Request, session, who: Principal, message: str, status: int = 403) -> Response:
    session.commit()  # the refusal's audit record
    return error_page(request, session, who, status, message)


@router.get("/field/offline/receipt")
def receipt_page(request: Request, session: DB, who: User, site: FilterId = None) -> Response:
    """The hand-over screen of one site (``?site=<id>``), or the sites of the district to choose from."""
    tr = _tr(request)
    if not who.can(offline.COLLECT):
        return _refused_page(request, session, who, tr("fo.error.permission"))
    if site is None:
        return render(request, "field_offline_sites.html", {"title": tr("fo.sites.title"),
                                                            "sites": offline.sites(session, who)},
                      who=who, session=session)
    try:
        found = offline.site_of(session, who, site)  # the list itself comes as data, read by the page
    except offline.NotFound:
        return _refused_page(request, session, who, tr("fo.error.no_site", id=site), 404)
    except AccessError:
        return _refused_page(request, session, who, tr("fo.error.outside_district", id=site))
    return render(request, "field_offline_receipt.html",
                  {"title": tr("fo.receipt.title"), "page": "receipt", "site": found, "labels": _labels(request),
                   "data_url": f"/field/offline/data?site={site}"}, who=who, session=session)


@router.get("/field/offline/visits")
def visits_page(request: Request, session: DB, who: User) -> Response:
    """My scheduled verification visits; the outcome and a note recorded for each, offline."""
    tr = _tr(request)
    if not who.can(offline.COLLECT):
        return _refused_page(request, session, who, tr("fo.error.permission"))
    return render(request, "field_offline_visits.html",
                  {"title": tr("fo.visits.title"), "page": "visits", "site": None, "labels": _labels(request),
                   "data_url": "/field/offline/data?list=visits"}, who=who, session=session)


def _json(body: dict, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _json_user(request: Request, session: DB) -> Principal | None:
    """The signed-in user, or None: the page's script is told 401 (and asks to sign in again) instead
    of being redirected to the sign-in page as a browser is."""
    try:
        return page_user(request, session)
    except SignInRequired:
        return None


@router.get("/field/offline/data")
def data(request: Request, session: DB, site: FilterId = None,
         which: Annotated[str | None, Query(alias="list", max_length=20)] = None) -> Response:
    """The list a page works from, as JSON (kept by the service worker for offline use): a site's list
    (``?site=<id>``) or my scheduled visits (``?list=visits``)."""
    who = _json_user(request, session)
    if who is None:
        return _json({"error": "sign in"}, 401)
    tr = _tr(request)
    if not who.can(offline.COLLECT):
        return _json({"error": tr("fo.error.permission")}, 403)
    try:
        if site is not None:
            body = offline.site_list(session, who, site)
        elif which == "visits":
            body = {"visits": offline.my_visits(session, who)}
        else:
            return _json({"error": tr("fo.error.which_list")}, 400)
    except offline.NotFound:
        return _json({"error": tr("fo.error.no_site", id=site)}, 404)
    except AccessError:
        session.commit()
        return _json({"error": tr("fo.error.outside_district", id=site)}, 403)
    session.commit()
    return _json(body)


@router.get("/field/offline/session")
def session_state(request: Request, session: DB) -> Response:
    """Whether the browser is still signed in, and the session's anti-forgery token: the page asks
    before sending what waits, since a page opened from the cache may be older than the session."""
    who = _json_user(request, session)
    if who is None:
        return _json({"signed_in": False}, 401)
    return _json({"signed_in": True, "username": who.username,
                  "csrf": request.app.state.tokens.csrf(request.cookies.get(SESSION_COOKIE))})


@router.post("/field/offline/submit", dependencies=[Depends(csrf_guard)])
async def submit(request: Request, session: DB) -> Response:
    """One entry recorded on the device (JSON): built into its form's instance and received by the
    inbox. 200 with the outcome (accepted, refused with its reason, or a resend already here); 422 for
    an entry that can never be a submission (the device shows why and stops sending it); 401 when not
    signed in (the entry keeps waiting)."""
    try:
        payload = json.loads(await request.body())
    except ValueError:
        payload = None
    return await run_in_threadpool(_submit_sync, request, session, payload)  # the database work off the loop


def _submit_sync(request: Request, session, payload) -> Response:
    who = _json_user(request, session)
    if who is None:
        return _json({"error": "sign in"}, 401)
    tr = _tr(request)
    if not who.can(offline.COLLECT):
        audit(session, who, CHANNEL, "submit", "field_submission", None, who.scope, outcome="denied",
              detail="refused: browser entry without field.collect")
        session.commit()
        return _json({"status": "refused", "message": tr("fo.error.permission")}, 403)
    try:
        outcome = offline.submit(session, who, payload)
    except offline.EntryError as exc:
        session.rollback()
        return _json({"status": "refused", "message": str(exc)}, 422)
    session.commit()
    return _json(outcome)


@router.get("/field/offline/sw.js")
def service_worker() -> Response:
    """The service worker, served from the scope it controls (``/field/offline/``); never cached by
    HTTP so that a new version is found at once."""
    return FileResponse(STATIC / "sw.js", media_type="text/javascript",
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})
