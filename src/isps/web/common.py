"""What every web page shares: the session dependency, the signed-in user, rendering in the
reader's language with the security headers, error pages, and the geography for filters.

The page modules (:mod:`isps.web.routes`, :mod:`isps.web.programs`, :mod:`isps.web.linkage`,
:mod:`isps.web.updates`, :mod:`isps.web.payments`, :mod:`isps.web.targeting`, :mod:`isps.web.feeds`,
:mod:`isps.web.partners`, :mod:`isps.web.users`) import from here and never from each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
import hmac
from urllib.parse import urlencode, urlsplit

from datetime import date

from fastapi import Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BeforeValidator, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.access.service import AuthError, Principal
from isps.api.deps import SESSION_COOKIE, UNSAFE_METHODS, Refused, audit_refusal, DB
from isps.api.params import FIRST_DAY, LAST_DAY, MAX_ID
from isps.registry.models import District, Tehsil
from isps.web import lang as i18n

# A filter form sends every field, the empty ones as "": for a page's filter an empty field is no filter,
# not a bad number or date (the API's QueryId and Day keep refusing "")
_blank = BeforeValidator(lambda v: None if v == "" else v)
FilterId = Annotated[Annotated[int, Field(ge=1, le=MAX_ID)] | None, _blank, Query(description="a record's id")]
FilterDay = Annotated[Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)] | None, _blank,
                      Query(description="a date from 1900-01-01 to 2100-12-31")]

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
CHANNEL = "web"
# Pages show personal data: keep them out of caches, frames and other origins.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'self'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


# ---------------------------------------------------------------- sign-in and rendering

class SignInRequired(Exception):
    """No valid session cookie: send the browser to the sign-in page."""


class FormRefused(Refused):
    """A web form or htmx request that did not come from an ISPS page: answered with the error page."""


CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def _origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else "null"


def allowed_origins(request: Request) -> set[str]:
    """Where a form may be posted from: ``ISPS_ALLOWED_ORIGINS`` (set it behind a reverse proxy
    that terminates TLS), else this request's own scheme and host."""
    configured = getattr(request.app.state, "allowed_origins", None)
    if configured:
        return set(configured)
    return {f"{request.url.scheme}://{request.headers.get('host', '')}".lower()}


def origin_guard(request: Request) -> None:
    """An unsafe web request's Origin (or, without one, its Referer), when sent, must be an allowed
    origin: a page on another site cannot post a form here."""
    if request.method not in UNSAFE_METHODS:
        return
    origin = _origin_of(request.headers.get("origin")) or _origin_of(request.headers.get("referer"))
    if origin is not None and origin not in allowed_origins(request):
        raise FormRefused(_tr(request)("error.forged"), f"refused: {request.method} {request.url.path} "
                          f"posted from another site ({origin[:80]})", channel=CHANNEL,
                          token=request.cookies.get(SESSION_COOKIE))


async def csrf_guard(request: Request) -> None:
    """Every unsafe web request must come from an ISPS page: :func:`origin_guard`, and a request
    with a session must carry the session's anti-forgery token (a hidden ``csrf_token`` field in
    every form, the ``X-CSRF-Token`` header that base.html gives every htmx request). The token is
    what holds when a proxy or browser sends neither Origin nor Referer. No database work: the
    check runs on the event loop."""
    if request.method not in UNSAFE_METHODS:
        return
    origin_guard(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    expected = request.app.state.tokens.csrf(cookie)
    if expected is None:
        return  # no valid session: the route sends the browser to sign in, nothing was done
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        sent = (await request.form()).get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise FormRefused(_tr(request)("error.forged"), f"refused: {request.method} {request.url.path} "
                          f"without this session's anti-forgery token", channel=CHANNEL, token=cookie)


async def _form_refused(request: Request, exc: FormRefused) -> Response:
    await audit_refusal(request, exc)
    return error_page(request, None, None, 403, exc.message)


def page_user(request: Request, session: DB, _guard: Annotated[None, Depends(csrf_guard)] = None) -> Principal:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired()
    try:
        return request.app.state.tokens.principal(session, token)
    except AuthError:
        raise SignInRequired() from None


User = Annotated[Principal, Depends(page_user)]


def _tr(request: Request) -> i18n.Translator:
    return i18n.translator(request.cookies.get(i18n.COOKIE))


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


async def _sign_in_required(request: Request, exc: SignInRequired) -> Response:
    if _is_htmx(request):
        current = urlsplit(request.headers.get("HX-Current-URL", "/"))  # the page, not the partial
        path = (current.path or "/") + (f"?{current.query}" if current.query else "")
        resp = Response(status_code=401, headers={"HX-Redirect": "/login?" + urlencode({"next": _safe_next(path)})})
    else:
        resp = RedirectResponse("/login?" + urlencode({"next": _here(request)}), status_code=303)
    if request.cookies.get(SESSION_COOKIE):
        resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@dataclass
class Geography:
    districts: list[District]
    tehsils: list[Tehsil]
    district_by_id: dict[int, District] = field(default_factory=dict)
    tehsil_by_id: dict[int, Tehsil] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> Geography:
        districts = list(session.scalars(select(District).order_by(District.name)))
        tehsils = list(session.scalars(select(Tehsil).order_by(Tehsil.name)))
        return cls(districts, tehsils, {d.id: d for d in districts}, {t.id: t for t in tehsils})

    def tehsils_of(self, district_id: int | None) -> list[Tehsil]:
        return [t for t in self.tehsils if district_id is not None and t.district_id == district_id]


def _district_name(tr: i18n.Translator, d: District | None) -> str:
    if d is None:
        return "—"
    return d.name_ur if tr.code == "ur" and d.name_ur else d.name


def tehsil_name(tr: i18n.Translator, t: Tehsil | None) -> str:
    """A tehsil's name in the page's language (the Urdu name where the geography has one)."""
    if t is None:
        return "—"
    return t.name_ur if tr.code == "ur" and getattr(t, "name_ur", None) else t.name


def program_name(tr: i18n.Translator, code: str) -> str:
    """A program's one display name in the page's language: the catalogue's (``name_ur`` in Urdu),
    never its code; the rules, the chips, the reports and the page titles all read it here."""
    from isps.catalogue import display_name

    return display_name(code, tr.code)


def agency_name(tr: i18n.Translator, agency: str | None) -> str:
    """An agency's name in the page's language (the catalogue's ``agency_ur`` in Urdu)."""
    from isps.catalogue import agency_name as name

    return name(agency, tr.code) if agency else "—"


def render(request: Request, name: str, context: dict, *, who: Principal | None = None,
           session: Session | None = None, status: int = 200, headers: dict | None = None) -> Response:
    tr = _tr(request)
    me = None
    if who is not None:
        district = session.get(District, who.scope) if (session is not None and who.scope) else None
        me = {"username": who.username, "role": tr(f"role.{who.role}"),
              "district": _district_name(tr, district) if district else tr("header.all_punjab"),
              "can_audit": who.can("audit.read"), "can_edit": who.can("registry.write"),
              "can_simulate": who.can("pmt.manage"), "can_pay": who.can("pmt.manage") or who.can("audit.read")}
        me.update(can_users=who.can("users.manage"), can_feeds=who.can("registry.import"),
                  can_partners=who.can("partners.manage"), can_consent=who.can("consent.record"),
                  can_messages=who.can("messages.read"))
        me["can_grievances"] = who.can("grievance.take") or who.can("grievance.handle") or who.can("audit.read")
        me["can_field"] = who.can("field.collect") or who.can("field.assign") or who.can("field.review")
        me["can_field_manage"] = who.can("field.assign") or who.can("field.review")
    ctx = {"t": tr, "lang": tr.code, "dir": tr.dir, "me": me, "here": _here(request), "path": request.url.path,
           "district_name": lambda d: _district_name(tr, d),
           "tehsil_name": lambda t: tehsil_name(tr, t),
           "program_name": lambda code: program_name(tr, code),
           "agency_name": lambda agency: agency_name(tr, agency),
           "csrf": request.app.state.tokens.csrf(request.cookies.get(SESSION_COOKIE)) if who is not None else None,
           **context}
    resp = templates.TemplateResponse(request, name, ctx, status_code=status, headers=headers)
    resp.headers.update(SECURITY_HEADERS)
    return resp


def error_page(request: Request, session: Session | None, who: Principal | None, status: int, message: str) -> Response:
    tr = _tr(request)
    title = {403: tr("error.403.title"), 404: tr("error.404.title")}.get(status, tr("error.title"))
    return render(request, "error.html", {"title": title, "message": message, "status": status},
                  who=who, session=session, status=status)


def bad_address_page(request: Request, message: str, status: int = 400) -> Response:
    """A page's answer to an address it cannot use (an id beyond any record, a word where a number
    goes): a page saying what is wrong, never a 500 or a JSON body in the browser."""
    tr = _tr(request)
    return render(request, "error.html", {"title": tr("error.title"),
                                          "message": tr("error.bad_address", problem=message), "status": status},
                  status=status)


def open_household(request: Request, session: Session, who: Principal, household_id: int):
    """The household file (scope applied, the read audited) for a page or panel, or the refusal page:
    ``(file, None)``, or ``(None, page)`` with 403 outside the user's district and 404 for no such
    household. The refusal's audit record is committed whatever the page answers."""
    from isps.registry.service import OutOfScope
    from isps.services import household_file as files

    tr = _tr(request)
    try:
        return files.open_household(session, who, household_id, CHANNEL), None
    except OutOfScope:
        session.commit()
        return None, error_page(request, session, who, 403, tr("error.outside_district", id=household_id))
    except files.NotFound:
        session.commit()
        return None, error_page(request, session, who, 404, tr("error.no_household", id=household_id))
