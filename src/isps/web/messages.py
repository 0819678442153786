"""Messages in the browser: the household page's panel (the texts ISPS sent or will send to the
household, with their status, and each member's phone opted in or out) and the ``/messages`` list
of the whole queue (permission ``messages.read``, a scoped role sees its district only; filters by
status, kind, district and day; keyset pages with the total; sortable; CSV/Excel export). Phones
are masked everywhere; every read is audited, and a refusal too.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from isps.access.service import Principal, audit
from isps.api.params import Id
from isps.keyset import SortError
from isps.messaging import optout, queue
from isps.messaging.models import STATUSES
from isps.messaging.phones import PhoneError, mask, normalise
from isps.registry.models import Household, Individual
from isps.web.common import (CHANNEL, DB, FilterDay, FilterId, Geography, User, _district_name, _is_htmx, _tr,
                             bad_address_page, error_page, render)
from isps.web.listing import PAGE, columns, export, keyset_chunks, pager, sort_of, wants_export

router = APIRouter(include_in_schema=False)
READ = "messages.read"
OPT = "consent.record"  # who records a citizen's consent at a counter also records their opt-out
PANEL_ROWS = 20
EXPORT_COLUMNS = [(k, k) for k in ("id", "created_at", "kind", "phone", "lang", "status", "attempts", "sent_at",
                                   "delivered_at", "error", "household_id", "district_id", "text")]


def _stamp(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _view(rows: list[dict]) -> list[dict]:
    for r in rows:
        for k in ("created_at", "sent_at", "delivered_at"):
            r[k] = _stamp(r[k])
    return rows


def _household(request: Request, session, who: Principal, household_id: int, action: str):
    """The household (or the error page): a scoped user outside its district is refused, audited."""
    tr = _tr(request)
    hh = session.get(Household, household_id)
    if hh is None:
        audit(session, who, CHANNEL, action, "household", household_id, outcome="not_found", detail="messages")
        session.commit()
        return None, error_page(request, session, who, 404, tr("error.no_household", id=household_id))
    if not who.can(READ) or (who.scope is not None and hh.district_id != who.scope):
        audit(session, who, CHANNEL, action, "household", household_id, hh.district_id, outcome="denied",
              detail=f"refused: the messages of a household of district {hh.district_id} "
                     f"(a {who.role.replace('_', ' ')} of district {who.scope})")
        session.commit()
        return None, error_page(request, session, who, 403, tr("error.outside_district", id=household_id))
    return hh, None


def _panel(request: Request, session, who: Principal, hh: Household, outcome: dict | None = None,
           status: int = 200) -> Response:
    rows = _view(queue.messages_of(session, household_id=hh.id, limit=PANEL_ROWS))
    members = session.execute(select(Individual.id, Individual.full_name, Individual.phone)
                              .where(Individual.household_id == hh.id, Individual.date_of_death.is_(None))
                              .order_by(Individual.roster_line)).all()
    phones = []
    for m in members:
        try:
            number = normalise(m.phone) if m.phone else None
        except PhoneError:
            number = None
        if number:
            phones.append({"individual": m.id, "name": m.full_name, "phone": mask(number),
                           "opted_out": optout.is_opted_out(session, number)})
    audit(session, who, CHANNEL, "read", "household", hh.id, hh.district_id,
          detail=f"the household's messages ({len(rows)} shown)")
    session.commit()
    return render(request, "_messages.html", {"household_id": hh.id, "messages": rows, "phones": phones,
                                              "can_opt": who.can(OPT), "outcome": outcome},
                  who=who, session=session, status=status)


@router.get("/households/{household_id}/messages")
def panel(request: Request, household_id: Id, session: DB, who: User) -> Response:
    hh, refused = _household(request, session, who, household_id, "read")
    return refused or _panel(request, session, who, hh)


@router.post("/households/{household_id}/messages/opt")
def opt(request: Request, household_id: Id, session: DB, who: User, individual: Annotated[str, Form()] = "",
        choice: Annotated[str, Form()] = "") -> Response:
    """Opt a member's phone out of ISPS messages (or back in), at the citizen's request at a counter."""
    tr = _tr(request)
    action = "opt_in" if choice == "in" else "opt_out"
    hh, refused = _household(request, session, who, household_id, action)
    if refused:
        return refused
    if not who.can(OPT):
        audit(session, who, CHANNEL, action, "individual", None, hh.district_id, outcome="denied",
              detail=f"refused: a {who.role.replace('_', ' ')} may not change a citizen's messages")
        session.commit()
        return error_page(request, session, who, 403, tr("msg.cannot_opt", role=tr(f"role.{who.role}")))
    person = session.get(Individual, int(individual)) if individual.isdigit() and len(individual) < 19 else None
    if person is None or person.household_id != hh.id or choice not in ("in", "out"):
        return _panel(request, session, who, hh, {"error": tr("msg.pick_member")}, status=422)
    try:
        number = normalise(person.phone or "")
    except PhoneError as exc:
        return _panel(request, session, who, hh, {"error": str(exc)}, status=422)
    changed = (optout.opt_in if choice == "in" else optout.opt_out)(session, number, f"web:{who.username}"[:40])
    audit(session, who, CHANNEL, action, "individual", person.id, hh.district_id,
          detail=f"{mask(number)} {'opted in' if choice == 'in' else 'opted out'}"
                 f"{'' if changed else ' (no change)'} at the citizen's request")
    session.commit()
    if not _is_htmx(request):
        return RedirectResponse(f"/households/{hh.id}#messages", status_code=303)
    return _panel(request, session, who, hh, {"done": "msg.opted_done." + choice, "name": person.full_name})


@router.get("/messages")
def messages_page(request: Request, session: DB, who: User, status: str = "", kind: str = "",
                  district_id: FilterId = None, day: FilterDay = None, after: FilterId = None) -> Response:
    """The outbound queue, newest first."""
    tr = _tr(request)
    if not who.can(READ):
        audit(session, who, CHANNEL, "read", "message", outcome="denied",
              detail=f"refused: a {who.role.replace('_', ' ')} may not read the message queue")
        session.commit()
        return error_page(request, session, who, 403, tr("msg.forbidden", role=tr(f"role.{who.role}")))
    if who.scope is not None and district_id not in (None, who.scope):
        audit(session, who, CHANNEL, "read", "message", None, district_id, outcome="denied",
              detail=f"refused: the messages of district {district_id} (a {who.role.replace('_', ' ')} "
                     f"of district {who.scope})")
        session.commit()
        return error_page(request, session, who, 403, tr("msg.outside_district"))
    district = who.scope if who.scope is not None else district_id
    status = status if status in STATUSES else ""
    kind = kind.strip()[:20]
    if kind and not queue.KIND_SHAPE.match(kind):
        return bad_address_page(request, "kind must be a lowercase word, e.g. pickup", 400)
    try:
        sort = sort_of(request, tuple(queue.SORTS), queue.DEFAULT_SORT)
    except SortError as exc:
        return bad_address_page(request, str(exc), 400)
    filters = {"status": status or None, "kind": kind or None, "district_id": district, "day": day}
    asked = ", ".join(f"{k} {v}" for k, v in filters.items() if v) or "no filter"
    fmt = wants_export(request, "messages")
    if fmt:
        chunks = keyset_chunks(lambda a, n: _view(queue.list_messages(session, after=a, limit=n, sort=sort,
                                                                      **filters)), lambda m: m["id"])
        return export(request, session, who, fmt, name="messages", entity="message", columns=EXPORT_COLUMNS,
                      chunks=chunks, detail=f"the message queue ({asked})")
    rows = _view(queue.list_messages(session, after=after, limit=PAGE + 1, sort=sort, **filters))
    shown = rows[:PAGE]
    more = shown[-1]["id"] if len(rows) > PAGE else None
    total = queue.count_messages(session, **filters)
    audit(session, who, CHANNEL, "read", "message", None, district, detail=f"listed {len(shown)} of {total} ({asked})")
    session.commit()
    geo = Geography.load(session)
    for r in shown:
        r["district"] = _district_name(tr, geo.district_by_id.get(r["district_id"])) if r["district_id"] else "—"
    return render(request, "messages.html", {
        "rows": shown, "pager": pager(request, total=total, shown=len(shown), next_after=more, id="messages"),
        "columns": columns(request, tuple(queue.SORTS), sort), "statuses": STATUSES, "kinds": queue.KINDS,
        "geo": geo, "scoped": who.scope is not None,
        "filters": {"status": status, "kind": kind, "district_id": district or "", "day": day or ""}},
        who=who, session=session)


__all__ = ["router"]
