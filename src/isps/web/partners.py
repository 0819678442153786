"""DCI partners in the browser: the administrator registers a partner (its client secret shown once,
in a box that copies whole), rotates the secret, revokes or restores the partner, adds and revokes
its signing keys, and makes and ends its data-sharing agreements (which fields, for what purpose,
consent or not); a counter operator, district officer or administrator records a citizen's consent
for a partner, from the household page or the consent page, within their district.

Every step is a function of :mod:`isps.interop.dci.partners` (which checks the role and audits);
this module only reads forms and shows answers. Refusals are audited and shown, never a 500.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.registry import current
from isps.access.service import AccessError, Principal, audit
from isps.api.params import Id, QueryId
from isps.interop.dci import partners as dci
from isps.interop.dci.models import DciPartner
from isps.registry import cnic as cnic_rules
from isps.services import household_file as files
from isps.registry.service import OutOfScope
from isps.web import common as r
from isps.web.common import DB, User
from isps.web.listing import PAGE, export, keyset_chunks, pager, wants_export

router = APIRouter(include_in_schema=False)
MANAGE = "partners.manage"
CONSENT = "consent.record"
NOTICES = ("key_added", "key_revoked", "agreement_made", "agreement_ended", "revoked", "restored")
COLUMNS = [(k, k) for k in ("id", "sender_id", "name", "client_id", "active", "test", "agreement", "purpose")]


def _refused(request: Request, session: Session, who: Principal, action: str, entity: str, entity_id: int | None,
             what: str) -> Response:
    tr = r._tr(request)
    audit(session, who, r.CHANNEL, action, entity, entity_id, who.scope, outcome="denied",
          detail=f"refused: a {who.role.replace('_', ' ')} may not {what}")
    return r.error_page(request, session, who, 403, tr("admin.forbidden", role=tr(f"role.{who.role}")))


def _guard(request: Request, session: Session, who: Principal, action: str, entity_id: int | None,
           what: str) -> Response | None:
    return None if who.can(MANAGE) else _refused(request, session, who, action, "dci_partner", entity_id, what)


def _day(raw: str, what: str) -> date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise dci.PartnerError(f"{what}: a date written YYYY-MM-DD, not {raw[:20]!r}") from None
    if not 2000 <= day.year <= 2100:
        raise dci.PartnerError(f"{what}: a date from 2000 to 2100")
    return day


# ---------------------------------------------------------------- the list and registration

def _list(request: Request, session: Session, who: Principal, after: int | None, *, error: str | None = None,
          form: dict | None = None, status: int = 200) -> Response:
    fmt = wants_export(request, "partners")
    if fmt:
        chunks = keyset_chunks(lambda a, n: dci.list_partners(session, after=a, limit=n), lambda p: p["id"])
        return export(request, session, who, fmt, name="dci_partners", entity="dci_partner", columns=COLUMNS,
                      chunks=chunks, detail="the DCI partners")
    rows = dci.list_partners(session, after=after, limit=PAGE + 1)
    shown = rows[:PAGE]
    more = rows[PAGE - 1]["id"] if len(rows) > PAGE else None
    pg = pager(request, total=dci.count_partners(session), shown=len(shown), next_after=more, id="partners")
    audit(session, who, r.CHANNEL, "read", "dci_partner", None, None, detail=f"listed {len(shown)} partners")
    from isps import config
    return r.render(request, "admin_partners.html", {"rows": shown, "pager": pg, "error": error, "form": form or {},
                                                     "test_allowed": config.dci_test_partners()},
                    who=who, session=session, status=status)


@router.get("/partners")
def partners_page(request: Request, session: DB, who: User, after: QueryId = None) -> Response:
    """Every DCI partner with its agreement in force, and the form to register one."""
    return _guard(request, session, who, "read", None, "read the DCI partners") or _list(request, session, who, after)


@router.post("/partners")
def register(request: Request, session: DB, who: User, sender_id: Annotated[str, Form()] = "",
             name: Annotated[str, Form()] = "", callback: Annotated[str, Form()] = "",
             test: Annotated[str, Form()] = "") -> Response:
    """Register a partner: its page answers, with the client secret shown this once."""
    refused = _guard(request, session, who, "create", None, f"register partners ({sender_id[:60]})")
    if refused:
        return refused
    form = {"sender_id": sender_id[:100], "name": name[:200], "callback": callback[:300], "test": bool(test)}
    try:
        partner, secret = dci.register(session, who, r.CHANNEL, sender_id[:120], name[:220], callback[:320],
                                       test=bool(test))
    except dci.PartnerError as exc:
        session.rollback()
        audit(session, who, r.CHANNEL, "create", "dci_partner", None, None, outcome="denied", detail=f"refused: {exc}")
        return _list(request, session, who, None, error=str(exc), form=form, status=422)
    return _page(request, session, who, partner.id, secret=secret)


# ---------------------------------------------------------------- one partner

def _page(request: Request, session: Session, who: Principal, partner_id: int, *, secret: str | None = None,
          error: str | None = None, status: int = 200) -> Response:
    tr = r._tr(request)
    try:
        f = dci.partner_file(session, partner_id)
    except dci.PartnerError:
        return r.error_page(request, session, who, 404, tr("admin.partners.unknown"))
    done = request.query_params.get("done", "")
    notice = tr(f"admin.partners.done.{done}") if done in NOTICES else None
    audit(session, who, r.CHANNEL, "read", "dci_partner", partner_id, None, detail=f"opened {f['partner'].sender_id}")
    return r.render(request, "admin_partner.html", {
        **f, "secret": secret, "notice": notice, "error": error, "fields": dci.FIELDS,
        "member_fields": dci.MEMBER_FIELDS, "today": date.today().isoformat()}, who=who, session=session, status=status)


@router.get("/partners/{partner_id}")
def partner_page(request: Request, partner_id: Id, session: DB, who: User) -> Response:
    """A partner: registration, keys, agreements (fields and purposes), consents on record."""
    return _guard(request, session, who, "read", partner_id, f"open partner {partner_id}") or _page(
        request, session, who, partner_id)


def _step(request: Request, session: Session, who: Principal, partner_id: int, action: str, what: str, fn) -> Response:
    """One administrator's step on a partner: role first (403), a refusal of the rules shown on its page."""
    refused = _guard(request, session, who, action, partner_id, what)
    if refused:
        return refused
    try:
        return fn()
    except dci.PartnerError as exc:
        session.rollback()
        audit(session, who, r.CHANNEL, action, "dci_partner", partner_id, None, outcome="denied",
              detail=f"refused: {str(exc)[:250]}")
        return _page(request, session, who, partner_id, error=str(exc), status=422)


def _back(partner_id: int, done: str) -> RedirectResponse:
    return RedirectResponse(f"/partners/{partner_id}?done={done}", status_code=303)


@router.post("/partners/{partner_id}/secret")
def rotate(request: Request, partner_id: Id, session: DB, who: User) -> Response:
    """A new client secret, shown this once; the old one stops working."""
    return _step(request, session, who, partner_id, "rotate", f"rotate partner {partner_id}'s secret", lambda: _page(
        request, session, who, partner_id, secret=dci.rotate_secret(session, who, r.CHANNEL, partner_id)))


@router.post("/partners/{partner_id}/revoke")
def revoke(request: Request, partner_id: Id, session: DB, who: User) -> Response:
    def fn() -> Response:
        dci.set_partner_active(session, who, r.CHANNEL, partner_id, False)
        return _back(partner_id, "revoked")
    return _step(request, session, who, partner_id, "revoke", f"revoke partner {partner_id}", fn)


@router.post("/partners/{partner_id}/restore")
def restore(request: Request, partner_id: Id, session: DB, who: User) -> Response:
    def fn() -> Response:
        dci.set_partner_active(session, who, r.CHANNEL, partner_id, True)
        return _back(partner_id, "restored")
    return _step(request, session, who, partner_id, "enable", f"restore partner {partner_id}", fn)


@router.post("/partners/{partner_id}/keys")
def add_key(request: Request, partner_id: Id, session: DB, who: User, kid: Annotated[str, Form()] = "",
            algorithm: Annotated[str, Form()] = "ed25519", pem: Annotated[str, Form()] = "") -> Response:
    """Register a public key that verifies the partner's message signatures."""
    def fn() -> Response:
        dci.add_signing_key(session, who, r.CHANNEL, partner_id, kid[:120], algorithm[:20], pem[:20_000])
        return _back(partner_id, "key_added")
    return _step(request, session, who, partner_id, "create", f"add a key to partner {partner_id}", fn)


@router.post("/partners/{partner_id}/keys/{key_id}/revoke")
def revoke_key(request: Request, partner_id: Id, key_id: Id, session: DB, who: User) -> Response:
    def fn() -> Response:
        dci.revoke_key(session, who, r.CHANNEL, partner_id, key_id)
        return _back(partner_id, "key_revoked")
    return _step(request, session, who, partner_id, "revoke", f"revoke key {key_id}", fn)


@router.post("/partners/{partner_id}/agreements")
def make_agreement(request: Request, partner_id: Id, session: DB, who: User,
                   reference: Annotated[str, Form()] = "", purpose: Annotated[str, Form()] = "",
                   fields: Annotated[list[str], Form()] = [], consent: Annotated[str, Form()] = "",  # noqa: B006
                   valid_to: Annotated[str, Form()] = "") -> Response:
    """A data-sharing agreement (it replaces the one in force): fields granted, purpose, consent, end date."""
    def fn() -> Response:
        dci.make_agreement(session, who, r.CHANNEL, partner_id, reference[:120], purpose[:80],
                           [f[:40] for f in fields[:len(dci.FIELDS) + 5]], bool(consent),
                           _day(valid_to[:20], f"agreement {reference.strip()[:60]}: valid to"))
        return _back(partner_id, "agreement_made")
    return _step(request, session, who, partner_id, "create", f"make an agreement for partner {partner_id}", fn)


@router.post("/partners/{partner_id}/agreements/{agreement_id}/end")
def end_agreement(request: Request, partner_id: Id, agreement_id: Id, session: DB, who: User) -> Response:
    def fn() -> Response:
        dci.end_agreement(session, who, r.CHANNEL, partner_id, agreement_id)
        return _back(partner_id, "agreement_ended")
    return _step(request, session, who, partner_id, "end", f"end agreement {agreement_id}", fn)


# ---------------------------------------------------------------- a citizen's consent

def _consent(request: Request, session: Session, who: Principal, household_id: int | None, *,
             error: str | None = None, done: str | None = None, form: dict | None = None, status: int = 200) -> Response:
    tr = r._tr(request)
    partners = [p for p in dci.list_partners(session, limit=500) if p["active"]]
    members = None
    if household_id is not None:
        try:
            f = files.open_household(session, who, household_id, r.CHANNEL)
        except OutOfScope:
            return r.error_page(request, session, who, 403, tr("error.outside_district", id=household_id))
        except files.NotFound:
            return r.error_page(request, session, who, 404, tr("admin.consent.no_household"))
        members = [{"id": m.id, "name": m.full_name, "cnic": cnic_rules.mask(m.cnic) if m.cnic else "—"}
                   for m in f.members if current.is_current(m)]
    return r.render(request, "admin_consent.html", {
        "partners": partners, "household_id": household_id, "members": members, "error": error, "done": done,
        "form": form or {}}, who=who, session=session, status=status)


@router.get("/consent")
def consent_page(request: Request, session: DB, who: User, household: QueryId = None) -> Response:
    """Record a citizen's consent for a partner: by CNIC, or choosing the person from their household."""
    if not who.can(CONSENT):
        return _refused(request, session, who, "record", "individual", None, "record consent")
    return _consent(request, session, who, household)


@router.post("/consent")
def record_consent(request: Request, session: DB, who: User, partner_id: Annotated[str, Form()] = "",
                   cnic: Annotated[str, Form()] = "", individual_id: Annotated[str, Form()] = "",
                   household: Annotated[str, Form()] = "", purpose: Annotated[str, Form()] = "",
                   expires: Annotated[str, Form()] = "", evidence: Annotated[str, Form()] = "") -> Response:
    """The consent recorded (audited on the person); refused outside the user's district."""
    if not who.can(CONSENT):
        return _refused(request, session, who, "record", "individual", None, "record consent")
    tr = r._tr(request)
    hh = int(household) if household.isdigit() and len(household) < 19 else None
    form = {"partner_id": partner_id[:20], "purpose": purpose[:60], "expires": expires[:20], "evidence": evidence[:200]}
    pid = int(partner_id) if partner_id.isdigit() and len(partner_id) < 19 else None
    person = int(individual_id) if individual_id.isdigit() and len(individual_id) < 19 else None
    try:
        if pid is None or session.get(DciPartner, pid) is None:
            raise dci.PartnerError(tr("admin.consent.choose_partner"))
        row, masked = dci.consent_at_counter(session, who, r.CHANNEL, pid, cnic[:40], individual_id=person,
                                             purpose=purpose, expires_on=_day(expires, "consent: expires on"),
                                             evidence=evidence)
    except AccessError as exc:
        session.commit()  # the refusal's audit record
        return _consent(request, session, who, None, error=str(exc), form=form, status=403)
    except dci.PartnerError as exc:
        session.rollback()
        audit(session, who, r.CHANNEL, "record", "individual", person, who.scope, outcome="denied",
              detail=f"refused: {str(exc)[:250]}")
        return _consent(request, session, who, hh, error=str(exc), form=form, status=422)
    sender = session.scalar(select(DciPartner.sender_id).where(DciPartner.id == pid))
    return _consent(request, session, who, hh, done=tr("admin.consent.done", cnic=masked, partner=sender,
                                                        purpose=row.purpose, id=row.id))
