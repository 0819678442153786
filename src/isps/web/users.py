"""The administrator's user desk: the list of users (keyset pager with total, filters by role,
district and state, CSV/Excel export), creating a user (the initial password made and shown once,
or set), changing a role and district scope, disabling and enabling, unlocking and resetting a
password. Every change goes through :mod:`isps.access.service` (which audits it); any other role
gets the 403 page and an audit record of the refusal.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from isps.access import service as access
from isps.access.models import User as UserRecord
from isps.access.service import Principal, audit
from isps.api.params import Id, QueryId
from isps.citizen.grievances.service import reassign_inactive as reassign_grievances
from isps.web import common as r
from isps.web.common import DB, FilterId, Geography, User
from isps.web.listing import PAGE, export, keyset_chunks, pager, wants_export

router = APIRouter(include_in_schema=False)
STATES = ("active", "disabled", "locked")
NOTICES = ("created", "changed", "disabled", "enabled", "unlocked", "not_locked")
COLUMNS = [("id", "id"), ("username", "username"), ("full_name", "full_name"), ("role", "role"),
           ("district", "district"), ("state", "state"), ("created_at", "created_at")]


def _refused(request: Request, session: Session, who: Principal, action: str, what: str) -> Response:
    tr = r._tr(request)
    audit(session, who, r.CHANNEL, action, "user", None, who.scope, outcome="denied",
          detail=f"refused: a {who.role.replace('_', ' ')} may not {what}")
    return r.error_page(request, session, who, 403, tr("admin.forbidden", role=tr(f"role.{who.role}")))


def _guard(request: Request, session: Session, who: Principal, action: str, what: str) -> Response | None:
    return None if who.can("users.manage") else _refused(request, session, who, action, what)


def _filters(role: str, district_id: int | None, state: str) -> dict:
    return {"role": role if role in access.ROLES else None, "district_id": district_id,
            "active": {"active": True, "disabled": False}.get(state), "locked_only": state == "locked"}


def _view(rows: list[access.UserRow], geo: Geography, label, tr) -> list[dict]:
    """Rows as the page (``label`` = the translator) or an export (``label`` keeps the codes) shows them."""
    return [{"id": u.id, "username": u.username, "full_name": u.full_name, "role": label(f"role.{u.role}"),
             "role_code": u.role, "district_id": u.district_id, "active": u.active, "locked": u.locked,
             "district": r._district_name(tr, geo.district_by_id.get(u.district_id)) if u.district_id else "—",
             "state": "locked" if u.locked else ("active" if u.active else "disabled"),
             "created_at": u.created_at.strftime("%Y-%m-%d") if u.created_at else ""} for u in rows]


def _list(request: Request, session: Session, who: Principal, *, role: str = "", district_id: int | None = None,
          state: str = "", after: int | None = None, made: dict | None = None, error: str | None = None,
          form: dict | None = None, status: int = 200) -> Response:
    tr = r._tr(request)
    geo = Geography.load(session)
    query = _filters(role, district_id, state)
    fmt = wants_export(request, "users")
    if fmt:
        chunks = keyset_chunks(lambda a, n: access.list_users(session, after=a, limit=n, **query), lambda u: u.id)
        return export(request, session, who, fmt, name="users", entity="user", columns=COLUMNS, detail="the users",
                      chunks=(_view(rows, geo, lambda key: key.split(".", 1)[1], tr) for rows in chunks))
    rows = access.list_users(session, after=after, limit=PAGE + 1, **query)
    users = _view(rows[:PAGE], geo, tr, tr)
    more = rows[PAGE - 1].id if len(rows) > PAGE else None
    pg = pager(request, total=access.count_users(session, **query), shown=len(users), next_after=more, id="users")
    done = request.query_params.get("done", "")
    notice = tr(f"admin.users.done.{done}", name=request.query_params.get("name", "")[:60]) if done in NOTICES else None
    audit(session, who, r.CHANNEL, "read", "user", None, None, detail=f"listed {len(users)} users")
    return r.render(request, "admin_users.html", {
        "users": users, "pager": pg, "geo": geo, "roles": access.ROLES, "scoped": access.SCOPED_ROLES,
        "states": STATES, "filters": {"role": query["role"] or "", "district_id": district_id, "state": state},
        "made": made, "error": error, "form": form or {}, "notice": notice}, who=who, session=session, status=status)


@router.get("/users")
def users_page(request: Request, session: DB, who: User, role: Annotated[str, Query(max_length=20)] = "",
               district_id: FilterId = None, state: Annotated[str, Query(max_length=10)] = "",
               after: QueryId = None) -> Response:
    """Every user, a page at a time, with role, district and whether the account is disabled or locked."""
    return _guard(request, session, who, "read", "list the users") or _list(
        request, session, who, role=role, district_id=district_id, state=state if state in STATES else "", after=after)


def _district(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) < 6 else None


@router.post("/users")
def create_user(request: Request, session: DB, who: User, username: Annotated[str, Form()] = "",
                full_name: Annotated[str, Form()] = "", role: Annotated[str, Form()] = "",
                district_id: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "") -> Response:
    """Create a user; without a password one is made and shown once on the answering page (never in an address)."""
    refused = _guard(request, session, who, "create", f"create users ({username[:60]})")
    if refused:
        return refused
    form = {"username": username[:60], "full_name": full_name[:120], "role": role[:20], "district_id": district_id[:6]}
    try:
        user, made = access.add_user(session, who, r.CHANNEL, username[:80], role[:20], full_name=full_name[:120],
                                     district_id=_district(district_id), password=password or None)
    except access.UserError as exc:
        session.rollback()
        audit(session, who, r.CHANNEL, "create", "user", None, None, outcome="denied", detail=f"refused: {exc}")
        return _list(request, session, who, error=str(exc), form=form, status=422)
    shown = {"username": user.username, "password": made} if made else None
    if shown is None:
        return RedirectResponse(f"/users?done=created&name={user.username}", status_code=303)
    return _list(request, session, who, made=shown)


def _one(request: Request, session: Session, who: Principal, user_id: int, *, error: str | None = None,
         made: str | None = None, status: int = 200) -> Response:
    tr = r._tr(request)
    row = session.get(UserRecord, user_id)
    if row is None:
        return r.error_page(request, session, who, 404, tr("admin.users.unknown"))
    geo = Geography.load(session)
    u = _view(access.list_users(session, after=user_id - 1, limit=1), geo, tr, tr)[0]
    done = request.query_params.get("done", "")
    notice = tr(f"admin.users.done.{done}", name=row.username) if done in NOTICES else None
    audit(session, who, r.CHANNEL, "read", "user", user_id, None, detail=f"opened {row.username}")
    return r.render(request, "admin_user.html", {
        "u": u, "geo": geo, "roles": access.ROLES, "scoped": access.SCOPED_ROLES,
        "notice": notice, "error": error, "made": made, "is_self": row.username == who.username},
        who=who, session=session, status=status)


@router.get("/users/{user_id}")
def user_page(request: Request, user_id: Id, session: DB, who: User) -> Response:
    """One user: role and district, state, and the administrator's actions on the account."""
    return _guard(request, session, who, "read", f"open user {user_id}") or _one(request, session, who, user_id)


def _step(request: Request, session: Session, who: Principal, user_id: int, action: str, fn) -> Response:
    refused = _guard(request, session, who, action, f"{action.replace('_', ' ')} user {user_id}")
    if refused:
        return refused
    row = session.get(UserRecord, user_id)
    if row is None:
        return r.error_page(request, session, who, 404, r._tr(request)("admin.users.unknown"))
    try:
        out = fn(row.username)
    except access.UserError as exc:
        session.rollback()
        audit(session, who, r.CHANNEL, action, "user", user_id, None, outcome="denied", detail=f"refused: {exc}")
        return _one(request, session, who, user_id, error=str(exc), status=422)
    return out


@router.post("/users/{user_id}/role")
def change_role(request: Request, user_id: Id, session: DB, who: User, role: Annotated[str, Form()] = "",
                district_id: Annotated[str, Form()] = "") -> Response:
    """A new role and district scope (a district for district officers and counter operators)."""
    def fn(name: str) -> Response:
        access.change_role(session, who, r.CHANNEL, name, role[:20], _district(district_id))
        reassign_grievances(session)
        return RedirectResponse(f"/users/{user_id}?done=changed", status_code=303)
    return _step(request, session, who, user_id, "edit", fn)


@router.post("/users/{user_id}/disable")
def disable(request: Request, user_id: Id, session: DB, who: User) -> Response:
    """Disable the account: signed out everywhere, no sign-in until enabled again."""
    def fn(name: str) -> Response:
        access.set_active(session, who, r.CHANNEL, name, False)
        reassign_grievances(session)  # their open grievances go to someone who can act, in this transaction
        return RedirectResponse(f"/users/{user_id}?done=disabled", status_code=303)
    return _step(request, session, who, user_id, "disable", fn)


@router.post("/users/{user_id}/enable")
def enable(request: Request, user_id: Id, session: DB, who: User) -> Response:
    def fn(name: str) -> Response:
        access.set_active(session, who, r.CHANNEL, name, True)
        return RedirectResponse(f"/users/{user_id}?done=enabled", status_code=303)
    return _step(request, session, who, user_id, "enable", fn)


@router.post("/users/{user_id}/unlock")
def unlock(request: Request, user_id: Id, session: DB, who: User) -> Response:
    """Clear the failed sign-ins that locked the account."""
    def fn(name: str) -> Response:
        try:
            was = access.unlock(session, who, name, r.CHANNEL)
        except ValueError as exc:
            raise access.UserError(str(exc)) from None
        return RedirectResponse(f"/users/{user_id}?done={'unlocked' if was else 'not_locked'}", status_code=303)
    return _step(request, session, who, user_id, "unlock", fn)


@router.post("/users/{user_id}/password")
def reset_password(request: Request, user_id: Id, session: DB, who: User,
                   password: Annotated[str, Form()] = "") -> Response:
    """A new password: the one typed, or one made and shown once on the answering page."""
    def fn(name: str) -> Response:
        made = access.reset_password(session, who, r.CHANNEL, name, password or None)
        if made is None:
            return RedirectResponse(f"/users/{user_id}?done=changed", status_code=303)
        return _one(request, session, who, user_id, made=made)
    return _step(request, session, who, user_id, "reset_password", fn)
