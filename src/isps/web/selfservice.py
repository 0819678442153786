"""The citizen's own pages (``/my``): no staff sign-in. A citizen gives their CNIC and phone, receives
a one-time code by SMS on a phone registered for their household, and then, for half an hour, sees
their household's standing, applications, grievances and messages and acts on them.

The citizen's session is a cookie of its own (``isps_citizen``, path ``/my``, http-only, SameSite
strict): the browser never sends it to a staff page, and the staff pages read only the staff
cookie, so no staff page is reachable with it. Every form carries the citizen session's anti-forgery
token and is posted from this site only. Pages are mobile-first (``my.css``) in both languages.
"""

from __future__ import annotations

import hmac
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from isps.citizen import grievances, receipts, selfservice, signin
from isps.labour.vocab import REPORTABLE
from isps.web.common import DB, FormRefused, _tr, origin_guard, program_name, render

router = APIRouter()
COOKIE = "isps_citizen"
PATH = "/my"
CATEGORIES = grievances.CATEGORIES  # what a citizen may complain about
WORK = REPORTABLE  # what the quarterly report may say (labour.vocab)


def _ltr(value: object) -> str:
    """A number, date or receipt inside a sentence of either language, kept left to right (Unicode
    isolates), so that an Urdu sentence does not reverse its parts."""
    return f"\u2066{value}\u2069"


def _now() -> datetime:
    return datetime.now()


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _page(request: Request, name: str, context: dict, status: int = 200) -> Response:
    return render(request, name, {"my_csrf": None, "citizen": None, "ltr": _ltr, **context}, status=status)


def _citizen(request: Request, session) -> signin.Citizen | None:
    return signin.citizen_of(session, request.cookies.get(COOKIE), _now())


def _guard(request: Request, citizen: signin.Citizen | None, sent: str) -> None:
    """A citizen's form: posted from this site, with this session's anti-forgery token."""
    origin_guard(request)
    if citizen is None or not isinstance(sent, str) or not hmac.compare_digest(sent, citizen.csrf):
        raise FormRefused(_tr(request)("my.error.forged"),
                          f"refused: {request.method} {request.url.path} without the citizen session's token",
                          channel="web")


def _signed_out(request: Request) -> Response:
    resp = RedirectResponse(PATH + "?expired=1", status_code=303)
    resp.delete_cookie(COOKIE, path=PATH)
    return resp


class SignedOut(Exception):
    """No valid citizen session (never signed in, expired, signed out): back to the sign-in page."""


async def signed_out_handler(request: Request, exc: SignedOut) -> Response:
    return _signed_out(request)


def _signed_in(request: Request, session: DB) -> signin.Citizen:
    """The signed-in citizen of a page, or :class:`SignedOut`."""
    citizen = _citizen(request, session)
    if citizen is None:
        raise SignedOut()
    return citizen


def _signed_in_form(request: Request, citizen: Annotated[signin.Citizen, Depends(_signed_in)],
                    csrf_token: Annotated[str, Form()] = "") -> signin.Citizen:
    """The signed-in citizen of a form, posted from this site with this session's token."""
    _guard(request, citizen, csrf_token)
    return citizen


SignedIn = Annotated[signin.Citizen, Depends(_signed_in)]  # a page: signed in, else back to sign-in
SignedInForm = Annotated[signin.Citizen, Depends(_signed_in_form)]  # a form: signed in and guarded
HANDLER = (SignedOut, signed_out_handler)  # registered by web.routes.mount


# ---------------------------------------------------------------- signing in

@router.get(PATH)
def start_page(request: Request, session: DB, expired: str = "") -> Response:
    if _citizen(request, session) is not None:
        return RedirectResponse(PATH + "/home", status_code=303)
    tr = _tr(request)
    return _page(request, "my_start.html", {"error": None, "notice": tr("my.signin.expired") if expired else None,
                                            "cnic": "", "phone": ""})


def _normalised_phone(raw: str) -> str | None:
    try:
        return signin.normalise_phone(raw)
    except ValueError:
        return None


@router.post(PATH + "/code")
def ask_code(request: Request, session: DB, cnic: Annotated[str, Form()] = "",
             phone: Annotated[str, Form()] = "") -> Response:
    """Ask for a code: the same page follows whether or not the phone is registered for the CNIC."""
    origin_guard(request)
    tr = _tr(request)
    cnic, phone = cnic.strip()[:20], phone.strip()[:20]
    number = _normalised_phone(phone)
    if number is None:
        return _page(request, "my_start.html", {"error": tr("my.error.phone"), "bad": "phone", "notice": None,
                                                "cnic": cnic, "phone": phone}, 422)
    try:
        signin.request_code(session, cnic, number, _address(request), _now(), lang=tr.code)
    except signin.SignInError as exc:
        session.commit()
        if exc.reason == "limit":
            return _page(request, "my_start.html", {"error": tr("my.error.limit"), "bad": None, "notice": None,
                                                    "cnic": cnic, "phone": phone}, 429)
        return _page(request, "my_start.html", {"error": tr("my.error.cnic", problem=str(exc)), "bad": "cnic",
                                                "notice": None, "cnic": cnic, "phone": phone}, 422)
    return _page(request, "my_code.html", {"cnic": cnic, "phone": phone, "error": None})


@router.post(PATH + "/verify")
def verify_code(request: Request, session: DB, cnic: Annotated[str, Form()] = "",
                phone: Annotated[str, Form()] = "", code: Annotated[str, Form()] = "") -> Response:
    origin_guard(request)
    tr = _tr(request)
    cnic, phone = cnic.strip()[:20], phone.strip()[:20]
    number = _normalised_phone(phone)
    try:
        if number is None:
            raise signin.SignInError("code.wrong", "no such phone")
        token, _ = signin.verify(session, cnic, number, code.strip()[:12], _now())
    except signin.SignInError as exc:
        session.commit()  # the try is counted and audited
        if exc.reason in ("code.tries", "code.expired"):
            return _page(request, "my_start.html", {"error": tr(f"my.error.{exc.reason}"), "bad": None,
                                                    "notice": None, "cnic": cnic, "phone": phone}, 422)
        return _page(request, "my_code.html", {"cnic": cnic, "phone": phone,
                                               "error": tr("my.error.code.wrong")}, 422)
    resp = RedirectResponse(PATH + "/home", status_code=303)
    resp.set_cookie(COOKIE, token, max_age=int(signin.SESSION_LIFE.total_seconds()), path=PATH, httponly=True,
                    samesite="strict", secure=request.url.scheme == "https")
    return resp


@router.post(PATH + "/signout")
def sign_out(request: Request, session: DB, csrf_token: Annotated[str, Form()] = "") -> Response:
    citizen = _citizen(request, session)
    if citizen is not None:
        _guard(request, citizen, csrf_token)
        signin.sign_out(session, request.cookies.get(COOKIE), _now())
    resp = RedirectResponse(PATH, status_code=303)
    resp.delete_cookie(COOKIE, path=PATH)
    return resp


# ---------------------------------------------------------------- the citizen's page

def _home(request: Request, session, citizen: signin.Citizen, *, status: int = 200, error: str | None = None,
          done: str | None = None, form: dict | None = None) -> Response:
    tr = _tr(request)
    view = selfservice.overview(session, citizen, tr.code)
    s = view.standing
    programs = ([{"name": program_name(tr, p.code), "status": p.status, "reasons": p.reasons, "who": p.who}
                 for p in s.enrolled]
                + [{"name": program_name(tr, p.code), "status": p.status, "reasons": p.reasons, "who": p.who}
                   for p in s.eligible + s.not_eligible])
    return _page(request, "my_home.html", {
        "citizen": citizen, "my_csrf": citizen.csrf, "masked": citizen.masked, "view": view, "programs": programs,
        "band": s.band, "next_payment": s.next_payment and {
            "program": program_name(tr, s.next_payment.program), "amount": _ltr(f"{s.next_payment.amount:,.0f}"),
            "pickup": _ltr(s.next_payment.pickup.strftime("%Y-%m-%d %H:%M")) if s.next_payment.pickup else None},
        "categories": CATEGORIES, "work": WORK, "error": error, "done": done, "form": form or {},
        "apply_programs": selfservice.programs_to_apply(session, citizen),
    }, status)


@router.get(PATH + "/home")
def home_page(request: Request, session: DB, citizen: SignedIn) -> Response:
    return _home(request, session, citizen)


@router.post(PATH + "/grievance")
def file_grievance(request: Request, session: DB, citizen: SignedInForm,
                   category: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "") -> Response:
    tr = _tr(request)
    try:
        receipt = selfservice.file_grievance(session, citizen, category, description, _now(), tr.code)
    except selfservice.SelfServiceError as exc:
        session.rollback()
        return _home(request, session, citizen, status=422, error=tr("my.error.grievance", problem=str(exc)),
                     form={"category": category, "description": description[:2000]})
    return _home(request, session, citizen, done=tr("my.done.grievance", receipt=_ltr(receipt)))


@router.post(PATH + "/grievance/{grievance_id}/confirm")
def confirm_grievance(request: Request, session: DB, grievance_id: str, citizen: SignedInForm,
                      satisfied: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "") -> Response:
    tr = _tr(request)
    try:
        gid = int(grievance_id)
        if not 1 <= gid <= 2**62 or satisfied not in ("yes", "no"):
            raise ValueError
    except ValueError:
        return _home(request, session, citizen, status=400, error=tr("my.error.confirm_form"))
    try:
        selfservice.confirm_grievance(session, citizen, gid, satisfied == "yes", note.strip()[:1000], _now())
    except selfservice.SelfServiceError as exc:
        session.commit()  # a refusal is audited
        return _home(request, session, citizen, status=422, error=tr("my.error.grievance", problem=str(exc)))
    receipt = receipts.make("grievance", gid)
    return _home(request, session, citizen,
                 done=tr("my.done.closed" if satisfied == "yes" else "my.done.reopened", receipt=_ltr(receipt)))


@router.post(PATH + "/report")
def report_work(request: Request, session: DB, citizen: SignedInForm,
                status: Annotated[str, Form()] = "") -> Response:
    tr = _tr(request)
    try:
        due = selfservice.report_work(session, citizen, status, date.today())
    except selfservice.SelfServiceError as exc:
        session.rollback()
        return _home(request, session, citizen, status=422, error=tr("my.error.report", problem=str(exc)))
    return _home(request, session, citizen, done=tr("my.done.report", due=_ltr(due.isoformat()) if due else "—"))


@router.post(PATH + "/messages")
def choose_messages(request: Request, session: DB, citizen: SignedInForm,
                    wanted: Annotated[str, Form()] = "") -> Response:
    tr = _tr(request)
    if wanted not in ("yes", "no"):
        return _home(request, session, citizen, status=400, error=tr("my.error.messages", problem="wanted: yes or no"))
    try:
        selfservice.set_messages(session, citizen, wanted == "yes")
    except selfservice.SelfServiceError as exc:
        return _home(request, session, citizen, status=422, error=tr("my.error.messages", problem=str(exc)))
    return _home(request, session, citizen, done=tr("my.done.opt_in" if wanted == "yes" else "my.done.opt_out"))


# ---------------------------------------------------------------- a receipt's status, no sign-in

@router.get(PATH + "/status")
def receipt_status(request: Request, session: DB, receipt: str = "") -> Response:
    """What a receipt says, to anyone holding it: kind, status, step, dates; no personal data."""
    tr = _tr(request)
    raw = receipt.strip()[:30]
    if not raw:
        return _page(request, "my_status.html", {"receipt": "", "found": None, "error": None})
    try:
        kind, record_id = receipts.parse(raw)
    except receipts.ReceiptError:
        return _page(request, "my_status.html", {"receipt": raw, "found": None,
                                                 "error": tr("my.status.bad", receipt=_ltr(raw))}, 400)
    found = selfservice.receipt_status(session, kind, record_id)
    number = receipts.make(kind, record_id)
    if found is None:
        return _page(request, "my_status.html", {"receipt": number, "found": None,
                                                 "error": tr("my.status.unknown", receipt=_ltr(number))}, 404)
    return _page(request, "my_status.html", {"receipt": number, "kind": kind, "found": found, "error": None})


@router.post(PATH + "/apply")
def apply_for_program(request: Request, session: DB, citizen: SignedInForm,
                      program: Annotated[str, Form()] = "") -> Response:
    tr = _tr(request)
    try:
        receipt = selfservice.apply(session, citizen, program.strip()[:40], _now())
    except selfservice.SelfServiceError as exc:
        session.rollback()
        return _home(request, session, citizen, status=422, error=tr("my.error.apply", problem=str(exc)))
    return _home(request, session, citizen, done=tr("my.done.apply", receipt=_ltr(receipt)))


# ---------------------------------------------------------------- registering a household

MEMBER_ROWS = 6
HOUSEHOLD_CHOICES = ("tenure", "roof", "wall", "toilet", "drinking_water", "cooking_fuel")
HOUSEHOLD_NUMBERS = ("rooms", "land_acres", "cattle", "goats_sheep", "monthly_income")
MEMBER_CHOICES = ("sex", "relation_to_head", "marital_status", "education", "disability", "labour_status")


def _register_page(request: Request, session, *, values: dict | None = None, error: str | None = None,
                   receipt: str | None = None, status: int = 200) -> Response:
    from isps.registry import vocab
    from isps.registry.models import District, Tehsil
    from sqlalchemy import select

    districts = {d.id: d for d in session.scalars(select(District))}
    tehsils = list(session.scalars(select(Tehsil).order_by(Tehsil.district_id, Tehsil.name)))
    groups: dict[int, list] = {}
    for t in tehsils:
        groups.setdefault(t.district_id, []).append(t)
    return _page(request, "my_register.html", {
        "values": values or {}, "error": error, "receipt": receipt, "rows": range(1, MEMBER_ROWS + 1),
        "groups": sorted(((districts[k], v) for k, v in groups.items()), key=lambda kv: kv[0].name),
        "household_choices": {k: vocab.HOUSEHOLD_CATEGORICAL[k] for k in HOUSEHOLD_CHOICES},
        "member_choices": {k: vocab.INDIVIDUAL_CATEGORICAL[k] for k in MEMBER_CHOICES},
        "durables": vocab.DURABLES, "numbers": HOUSEHOLD_NUMBERS,
    }, status)


@router.get(PATH + "/register")
def register_page(request: Request, session: DB) -> Response:
    return _register_page(request, session)


@router.post(PATH + "/register")
async def register_household(request: Request, session: DB) -> Response:
    """A household's own registration request: checked by the registry's field rules (the error names
    the member row and field), kept as an application awaiting verification, receipt shown and sent."""
    origin_guard(request)
    tr = _tr(request)
    form = await request.form()
    values = {k: str(v)[:200] for k, v in form.items() if isinstance(v, str)}
    from isps.registry import vocab
    from isps.registry.models import Tehsil

    phone = _normalised_phone(values.get("phone", ""))
    if phone is None:
        return _register_page(request, session, values=values, error=tr("my.error.phone"), status=422)
    try:
        tehsil = session.get(Tehsil, int(values.get("tehsil_id", "")))
    except ValueError:
        tehsil = None
    if tehsil is None:
        return _register_page(request, session, values=values, error=tr("my.register.error.tehsil"), status=422)
    household = {"tehsil_id": str(tehsil.id), "address": values.get("address", ""),
                 "urban": values.get("urban", ""), "electricity": "yes" if values.get("electricity") else "no",
                 "tractor": "yes" if values.get("tractor") else "no",
                 **{k: values.get(k, "") for k in HOUSEHOLD_CHOICES + HOUSEHOLD_NUMBERS},
                 **{d: "yes" if values.get(d) else "no" for d in vocab.DURABLES}}
    members = []
    for i in range(1, MEMBER_ROWS + 1):
        row = {k: values.get(f"m{i}_{k}", "").strip() for k in
               ("full_name", "father_husband_name", "cnic", "date_of_birth", *MEMBER_CHOICES)}
        if not row["full_name"]:
            continue
        row["enrolled_in_school"] = "yes" if values.get(f"m{i}_enrolled_in_school") else "no"
        if row["cnic"]:
            row["id_document"] = "cnic"
        if i == 1:
            row["relation_to_head"] = "head"
            row["phone"] = selfservice.local_phone(phone)
        members.append(row)
    try:
        receipt = selfservice.register(session, phone=phone, district_id=tehsil.district_id, household=household,
                                       members=members, address=_address(request), now=_now())
    except selfservice.SelfServiceError as exc:
        session.rollback()
        return _register_page(request, session, values=values, status=422,
                              error=tr("my.register.error", problem=str(exc)))
    return _register_page(request, session, receipt=_ltr(receipt))
