"""Web pages of NSER Plus for district offices: what other registries changed, where sources
disagree, the change requests waiting for a second person, and the households due for
re-certification.

A conflict (a lower-ranked source offered a value over a higher one's) is closed with a note; a
change request is approved or rejected by someone other than its maker; both within the user's
district. Every page view and decision is audited (channel ``web``)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from isps.access.service import audit
from isps.api.params import Id
from isps.interop import feeds
from isps.interop.feeds import changes
from isps.registry.models import District
from isps.registry.service import OutOfScope
from isps.web.common import CHANNEL, DB, User, _tr, error_page, render

router = APIRouter(include_in_schema=False)
DECIDE = "registry.write"
LIST = 50


def _kind(tr, c) -> str | None:
    """A membership request's headline (add a member, remove one) in the page's language."""
    kind = changes.kind_of(c.changes)
    if kind not in changes.MEMBER_KINDS:
        return None
    return tr(f"updates.kind.{kind.replace('.', '_')}", id=c.entity_id)


def _items(tr, asked: dict) -> list[tuple[str, str, str]]:
    """What a request asks, as (label, value) pairs: a new member's fields, a removal's reason and
    destination, or the fields to change; CNICs masked, vocabulary codes in the page's language."""
    kind = changes.kind_of(asked)
    values = changes.shown(asked[kind] if kind in changes.MEMBER_KINDS else asked)
    out = []
    for name, value in values.items():
        if name in ("reason", "detail"):
            shown = tr(f"mem.reason.{value}")
        elif name == "id_document":
            shown = tr(f"ow.doc.{value}")
        else:
            shown = tr.value("relation_to_head" if name == "relation" else name, value)
        # a number or a Latin name reads left to right inside an Urdu sentence (a masked CNIC would turn round)
        out.append((tr.field(name), shown, "rtl" if re.search("[\u0600-\u06ff]", shown) else "ltr"))
    return out


def _page(request: Request, session, who, *, done: str = "", error: str | None = None, status: int = 200,
          older_than_days: int = changes.DEFAULT_RECERTIFY_DAYS) -> Response:
    names = {d.id: d.name for d in session.query(District)}
    conflicts = feeds.list_conflicts(session, district_scope=who.scope, limit=LIST)
    tr = _tr(request)
    requests = [{"id": c.id, "entity": c.entity, "entity_id": c.entity_id, "household_id": c.household_id,
                 "district": names.get(c.district_id, "—"), "changes": changes.shown(c.changes), "source": c.source,
                 "kind": _kind(tr, c), "items": _items(tr, c.changes),
                 "evidence": c.evidence, "requested_by": c.requested_by, "mine": c.requested_by == who.username}
                for c in changes.list_change_requests(session, "pending", who.scope, limit=LIST)]
    due_counts = changes.count_recertification_due(session, older_than_days, who.scope)
    due = changes.recertification_due(session, older_than_days, who.scope, limit=LIST, oldest_first=True)
    deliveries = feeds.deliveries(session, limit=10) if who.scope is None else []
    audit(session, who, CHANNEL, "read", "registry_updates", None, who.scope,
          detail=f"read the registry updates: {len(conflicts)} conflicts, {len(requests)} change requests, "
                 f"{sum(due_counts.values())} households due for re-certification")
    return render(request, "updates.html", {
        "conflicts": conflicts, "requests": requests, "district_of": names.get,
        "due_counts": sorted(((names.get(d, "—"), n) for d, n in due_counts.items()), key=lambda x: -x[1]),
        "due_total": sum(due_counts.values()), "due": due, "older_than_days": older_than_days,
        "deliveries": deliveries, "can_decide": who.can(DECIDE), "done": done, "error": error},
        who=who, session=session, status=status)


@router.get("/updates")
def page(request: Request, session: DB, who: User, done: str = "",
         older_than_days: Annotated[int, Query(ge=1, le=changes.MAX_RECERTIFY_DAYS)] = changes.DEFAULT_RECERTIFY_DAYS
         ) -> Response:
    return _page(request, session, who, done=done, older_than_days=older_than_days)


def _refuse(request: Request, session, who, what: str, record_id: int) -> Response:
    audit(session, who, CHANNEL, what, "registry_updates", record_id, who.scope, outcome="denied")
    session.commit()
    return error_page(request, session, who, 403, _tr(request)("updates.cannot_decide"))


@router.post("/updates/conflicts/{conflict_id}/resolve")
def resolve(request: Request, conflict_id: Id, session: DB, who: User,
            resolution: Annotated[str, Form()] = "") -> Response:
    if not who.can(DECIDE):
        return _refuse(request, session, who, "resolve", conflict_id)
    try:
        feeds.resolve_conflict(session, conflict_id, who.username, resolution.strip(), district_scope=who.scope)
    except feeds.FeedError as exc:
        session.rollback()
        return _page(request, session, who, error=str(exc), status=422)
    audit(session, who, CHANNEL, "resolve", "source_conflict", conflict_id, who.scope,
          detail=resolution[:200])
    return RedirectResponse("/updates?done=conflict", status_code=303)


@router.post("/updates/change-requests/{request_id}")
def decide(request: Request, request_id: Id, session: DB, who: User, decision: Annotated[str, Form()] = "",
           note: Annotated[str, Form()] = "") -> Response:
    if not who.can(DECIDE):
        return _refuse(request, session, who, "decide", request_id)
    if decision not in ("approve", "reject"):
        return _page(request, session, who, error=_tr(request)("updates.choose"), status=422)
    try:
        if decision == "approve":
            row = changes.approve_change(session, request_id, who.username, note.strip() or None,
                                         district_scope=who.scope)
        else:
            row = changes.reject_change(session, request_id, who.username, note.strip(), district_scope=who.scope)
    except OutOfScope:
        session.rollback()
        return error_page(request, session, who, 403, _tr(request)("error.outside_district"))
    except (changes.ChangeRequestError, ValueError) as exc:
        session.rollback()
        return _page(request, session, who, error=str(exc), status=422)
    audit(session, who, CHANNEL, decision, row.entity, row.entity_id, row.district_id,
          detail=f"change request {request_id}")
    return RedirectResponse(f"/updates?done={decision}", status_code=303)
