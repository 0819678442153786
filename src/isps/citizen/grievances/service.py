"""Grievance redress for every program: filing at the counter, by the call centre, on the web or by
SMS; routing to the responsible agency and district and an owner; notes, assignment, escalation;
resolution with its root cause; the citizen's confirmation or the reopening.

What a category does when filed:

* ``wrong_exclusion`` starts a re-assessment of the household: a ``household.changed`` event in the
  registry's outbox (the same transaction), so the PMT re-scores it and
  :func:`isps.programs.reassessment.process_events` re-evaluates every running program's rule for it;
  when the complainant has an active administrative exclusion, an appeal (a change request
  ``exclusion:<reason>: lifted``, :mod:`isps.interop.feeds.changes`) is opened with the grievance as
  its evidence, for a second person to decide. Both are written in the grievance's history and the
  appeal is linked (``change_request_id``).
* the payment categories link the payment instruction (which must be the household's) and its
  ledger trail (:func:`payment_trail`);
* ``agent_deduction`` and ``agent_conduct`` are counted against the cash outlet (:func:`agent_counts`).

Every change writes a ``grievance_event``; nothing in the history is updated or deleted. Adapters
check the role (``grievance.take`` to file, ``grievance.handle`` for the rest) through the functions
here and write the audit records.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from isps import keyset
from isps.access.service import Principal
from isps.citizen import receipts
from isps.citizen.grievances import routing
from isps.citizen.grievances.models import OPEN_STATUSES, Grievance, GrievanceEvent
from isps.registry import events
from isps.registry.service import OutOfScope

CATEGORIES = ("payment_not_received", "payment_partial", "agent_deduction", "wrong_exclusion",
              "wrong_inclusion", "data_error", "staff_conduct", "agent_conduct", "other")
CHANNELS = ("counter", "web", "sms", "call_centre", "field")  # field: taken by an enumerator (issue 17)
PAYMENT_CATEGORIES = ("payment_not_received", "payment_partial", "agent_deduction")
AGENT_CATEGORIES = ("agent_deduction", "agent_conduct")
ROOT_CAUSES = ("bank_delay", "agent_misconduct", "registry_data_error", "eligibility_rule",
               "citizen_misunderstanding", "duplicate", "staff_conduct", "system_error", "other")
LANGS = ("ur", "en")
MAX_TEXT = 2000
MAX_RESOLUTION = 1000


class GrievanceError(ValueError):
    """A grievance that cannot be filed or changed; safe to show, names the field."""


class NotFound(LookupError):
    """No such grievance."""


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now()).replace(microsecond=0)


# ---------------------------------------------------------------- phones

def normalise_phone(raw: str | None) -> str | None:
    """A Pakistani mobile number as the message queue keeps it, 92XXXXXXXXXX (from 0300-1234567,
    +92 300 1234567…; :func:`isps.messaging.phones.normalise`); None for nothing given."""
    from isps.messaging.phones import PhoneError, normalise

    if raw is None or not str(raw).strip():
        return None
    try:
        return normalise(str(raw))
    except PhoneError as exc:
        raise GrievanceError(f"phone: {exc}") from None


def mask_phone(phone: str | None) -> str:
    """A phone as lists and logs show it: 92300*****67."""
    from isps.messaging.phones import mask

    return mask(phone) if phone else ""


# ---------------------------------------------------------------- history

def _event(session: Session, g: Grievance, kind: str, actor: str, at: datetime, *, note: str | None = None,
           from_owner: str | None = None, to_owner: str | None = None, from_level: int | None = None,
           to_level: int | None = None) -> None:
    session.add(GrievanceEvent(grievance_id=g.id, kind=kind, at=at, actor=actor[:60], note=(note or None) and note[:1000],
                               from_owner=from_owner, to_owner=to_owner, from_level=from_level, to_level=to_level))


def history(session: Session, grievance_id: int) -> list[GrievanceEvent]:
    """Everything that happened to a grievance, oldest first."""
    return list(session.scalars(select(GrievanceEvent).where(GrievanceEvent.grievance_id == grievance_id)
                                .order_by(GrievanceEvent.id)))


# ---------------------------------------------------------------- messages to the complainant

SMS = {
    "filed": {"en": "ISPS: your complaint is registered, receipt {receipt}. It will be answered by {due}. "
                    "Text {receipt} to {short_code} to follow it.",
              "ur": "ISPS: آپ کی شکایت درج ہو گئی ہے، رسید نمبر {receipt}۔ اس کا جواب {due} تک دیا جائے گا۔ "
                    "حالت جاننے کے لیے {receipt} لکھ کر {short_code} پر بھیجیں۔"},
    "resolved": {"en": "ISPS: your complaint {receipt} is resolved: {resolution}. If you are not satisfied, "
                       "text {receipt} NO to {short_code} (or {receipt} YES if you are) or tell the One Window counter.",
                 "ur": "ISPS: آپ کی شکایت {receipt} حل ہو گئی ہے: {resolution}۔ اگر آپ مطمئن نہیں تو اس رسید "
                       "کے ساتھ NO لکھ کر {short_code} پر بھیجیں (مطمئن ہوں تو YES) یا ون ونڈو کاؤنٹر پر بتائیں۔"},
}


def _sms(session: Session, g: Grievance, event: str, **values: str) -> bool:
    """Queue one message to the complainant (once: the key names the grievance and the event). The
    one place that calls the outbound queue."""
    if not g.phone:
        return False
    from isps.messaging import queue
    from isps.messaging.gateways import SHORT_CODE
    body = SMS[event.split("-")[0]][g.lang if g.lang in LANGS else "ur"].format(
        receipt=receipts.make("grievance", g.id), short_code=SHORT_CODE, **values)
    queue.enqueue(session, kind="grievance", phone=g.phone, text=body, key=f"grievance:{g.id}:{event}", lang=g.lang,
                  district_id=g.district_id, household_id=g.household_id, individual_id=g.individual_id)
    return True


# ---------------------------------------------------------------- filing

def _text(value: str | None, field: str, limit: int, required: bool = True) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise GrievanceError(f"{field}: required; say what the complaint is about")
        return None
    if len(value) > limit:
        raise GrievanceError(f"{field}: at most {limit:,} characters (it has {len(value):,})")
    return value


def _household(session: Session, household_id: int) -> tuple[int, int]:
    row = session.execute(text("SELECT id, district_id FROM household WHERE id = :h"), {"h": household_id}).first()
    if row is None:
        raise GrievanceError(f"household_id: there is no household {household_id}")
    return row.id, row.district_id


def payments_of_household(session: Session, household_id: int, limit: int = 50) -> list[dict]:
    """The household's payment instructions, newest first: what an intake form lets the operator pick."""
    rows = session.execute(text("""SELECT i.id, i.program_code, i.amount, i.status, i.attempt, i.channel,
            c.period, i.status_on, e.individual_id
        FROM payment_instruction i JOIN enrolment e ON e.id = i.enrolment_id
        JOIN payroll p ON p.id = i.payroll_id JOIN benefit_cycle c ON c.id = p.cycle_id
        WHERE e.household_id = :h ORDER BY i.id DESC LIMIT :n"""), {"h": household_id, "n": limit}).mappings()
    return [dict(r) for r in rows]


def _payment(session: Session, instruction_id: int) -> dict:
    row = session.execute(text("""SELECT i.id, i.program_code, i.district_id, e.household_id, s.outlet_id
        FROM payment_instruction i JOIN enrolment e ON e.id = i.enrolment_id
        LEFT JOIN pickup_slot s ON s.instruction_id = i.id WHERE i.id = :i"""), {"i": instruction_id}).mappings().first()
    if row is None:
        raise GrievanceError(f"payment_instruction_id: there is no payment {instruction_id}")
    return dict(row)


def file_grievance(session: Session, who: Principal | None, *, channel: str, category: str, description: str,
                   district_id: int | None, phone: str | None = None, complainant_name: str | None = None,
                   household_id: int | None = None, individual_id: int | None = None,
                   program_code: str | None = None, payment_instruction_id: int | None = None,
                   outlet_id: int | None = None, actor: str | None = None, now: datetime | None = None,
                   lang: str = "ur") -> Grievance:
    """File a grievance: checked, routed to an owner, its history begun, its category's effects started
    and the receipt sent by SMS when there is a phone. ``who`` is the staff member taking it (needs
    ``grievance.take``, or ``field.collect`` for the channel ``field``; a district-scoped user files in
    their district only); ``who=None`` with
    ``actor`` (``"sms:92300*****67"``) for a citizen's own channel. Raises :class:`GrievanceError`
    naming the field; nothing is written then."""
    now = _now(now)
    if who is not None:  # an enumerator takes a complaint in the field with the field form (field.collect)
        who.require("field.collect" if channel == "field" else "grievance.take")
        actor = who.username
    if not actor:
        raise GrievanceError("actor: a grievance filed without a signed-in user names its channel (sms:<phone>)")
    if channel not in CHANNELS:
        raise GrievanceError(f"channel: '{str(channel)[:20]}' is not one of {', '.join(CHANNELS)}")
    if category not in CATEGORIES:
        raise GrievanceError(f"category: '{str(category)[:30]}' is not one of {', '.join(CATEGORIES)}")
    if lang not in LANGS:
        raise GrievanceError(f"lang: '{str(lang)[:5]}' is not one of {', '.join(LANGS)}")
    description = _text(description, "description", MAX_TEXT)
    complainant_name = _text(complainant_name, "complainant_name", 120, required=False)
    phone = normalise_phone(phone)
    if district_id is not None and session.execute(text("SELECT 1 FROM district WHERE id = :d"),
                                                   {"d": district_id}).first() is None:
        raise GrievanceError(f"district_id: there is no district {district_id}")

    payment = _payment(session, payment_instruction_id) if payment_instruction_id is not None else None
    if payment is not None:
        if household_id is not None and payment["household_id"] != household_id:
            raise GrievanceError(f"payment_instruction_id: payment {payment_instruction_id} is not a payment of "
                                 f"household {household_id}")
        household_id = payment["household_id"]
        if program_code and program_code != payment["program_code"]:
            raise GrievanceError(f"program_code: payment {payment_instruction_id} is of {payment['program_code']}, "
                                 f"not {program_code}")
        program_code = payment["program_code"]
        if outlet_id is None:
            outlet_id = payment["outlet_id"]
    if individual_id is not None:
        person = session.execute(text("SELECT household_id FROM individual WHERE id = :i"),
                                 {"i": individual_id}).first()
        if person is None:
            raise GrievanceError(f"individual_id: there is no person {individual_id}")
        if household_id is not None and person.household_id != household_id:
            raise GrievanceError(f"individual_id: person {individual_id} is not a member of household {household_id}")
        household_id = person.household_id
    if household_id is not None:
        household_id, home = _household(session, household_id)
        if district_id is not None and district_id != home:
            raise GrievanceError(f"district_id: household {household_id} is in district {home}, not {district_id}")
        district_id = home
    scope = who.scope if who is not None else None
    if scope is not None:
        if district_id is not None and district_id != scope:
            raise OutOfScope(f"grievance: household {household_id} is outside your district" if household_id
                             else f"district_id: {district_id} is outside your district")
        district_id = scope
    agency = None
    if program_code:
        from isps.catalogue import get as program_of

        program = program_of(session, program_code)
        if program is None:
            raise GrievanceError(f"program_code: there is no program '{program_code[:40]}' in the catalogue")
        agency = program.agency
    if outlet_id is not None and session.execute(text("SELECT 1 FROM cash_outlet WHERE id = :o"),
                                                 {"o": outlet_id}).first() is None:
        raise GrievanceError(f"outlet_id: there is no cash outlet {outlet_id}")
    if category in AGENT_CATEGORIES and outlet_id is None:
        raise GrievanceError(f"outlet_id: a complaint about an agent ({category}) names the agent or cash outlet")

    owner, level = routing.route(session, district_id)
    g = Grievance(channel=channel, category=category, description=description, status="open",
                  district_id=district_id, agency=agency, program_code=program_code, household_id=household_id,
                  individual_id=individual_id, phone=phone, complainant_name=complainant_name,
                  payment_instruction_id=payment_instruction_id, outlet_id=outlet_id, owner=owner, level=level,
                  due_at=routing.due(category, now), opened_at=now, opened_by=actor[:60], reopen_count=0, lang=lang)
    session.add(g)
    session.flush()
    _event(session, g, "filed", actor, now, note=f"{category} by {channel}")
    where = (f"district {district_id}" if district_id is not None
             else "district unknown: routed to the province level")
    _event(session, g, "routed", "system", now, to_owner=owner, to_level=level,
           note=f"{where}; agency {agency or 'ISPS'}; due {g.due_at:%Y-%m-%d %H:%M}")
    if category == "wrong_exclusion":
        _start_reassessment(session, g, actor, now)
    if payment is not None:
        _event(session, g, "note", "system", now, note=f"payment {payment_instruction_id} linked")
    if channel != "sms":  # a texted complaint is acknowledged by the short code's own reply, with the receipt
        _sms(session, g, "filed", due=f"{g.due_at:%Y-%m-%d}")
    session.flush()
    return g


def _start_reassessment(session: Session, g: Grievance, actor: str, now: datetime) -> None:
    """A complaint of wrong exclusion: the household is re-assessed (a registry event the PMT and the
    programs' re-assessment act on) and an active exclusion of the complainant is appealed."""
    if g.household_id is None:
        _event(session, g, "reassessment", "system", now,
               note="no household named: the re-assessment starts when the complaint names one")
        return
    events.record(session, events.HOUSEHOLD_CHANGED, "household", g.household_id,
                  {"grievance_id": g.id, "reason": "grievance: wrong exclusion"})
    note = f"re-assessment of household {g.household_id} requested (registry event household.changed)"
    if g.individual_id is not None:
        from isps.interop.feeds import changes

        reasons = list(session.scalars(text("SELECT reason FROM exclusion_flag WHERE individual_id = :i AND active = :y "
                                            "ORDER BY reason"), {"i": g.individual_id, "y": True}))
        if reasons:
            row = changes.request_change(
                session, entity="individual", entity_id=g.individual_id,
                changes={changes.APPEAL + r: changes.LIFTED for r in reasons}, source="self_report",
                evidence=f"grievance {receipts.make('grievance', g.id)}: {g.description}"[:2000],
                requested_by=actor[:60], evidence_ref=receipts.make("grievance", g.id))
            g.change_request_id = row.id
            note += f"; appeal against the exclusion ({', '.join(reasons)}) opened as change request {row.id}"
    _event(session, g, "reassessment", "system", now, note=note)


# ---------------------------------------------------------------- reading

def get(session: Session, who: Principal, grievance_id: int, *, handle: bool = True) -> Grievance:
    """A grievance for a staff member: ``grievance.handle`` (or ``grievance.take`` with ``handle=False``)
    and, for a district-scoped role, the grievance's district. Raises AccessError, OutOfScope, NotFound."""
    if handle or not who.can("grievance.take"):
        who.require("grievance.handle")
    g = session.get(Grievance, grievance_id)
    if g is None:
        raise NotFound(f"there is no grievance {grievance_id}")
    if who.scope is not None and g.district_id != who.scope:
        raise OutOfScope(f"grievance {receipts.make('grievance', grievance_id)} is outside your district")
    return g


def is_late(g: Grievance, now: datetime | None = None) -> bool:
    return g.status in OPEN_STATUSES and g.due_at < _now(now)


def status_of(session: Session, grievance_id: int, now: datetime | None = None) -> dict | None:
    """What anyone holding the receipt may know: no personal data."""
    g = session.get(Grievance, grievance_id)
    if g is None:
        return None
    return _status(g, now)


def _status(g: Grievance, now: datetime | None = None) -> dict:
    return {"id": g.id, "receipt": receipts.make("grievance", g.id), "category": g.category, "status": g.status,
            "level": g.level, "level_role": routing.LEVELS[g.level], "due": g.due_at, "late": is_late(g, now),
            "resolution": (g.resolution or "")[:160] or None, "root_cause": g.root_cause,
            "opened": g.opened_at, "resolved": g.resolved_at, "program_code": g.program_code,
            "reopen_count": g.reopen_count}


def grievances_of(session: Session, *, household_id: int | None = None, phone: str | None = None,
                  limit: int = 50) -> list[dict]:
    """A household's or a phone's grievances (the phone in any usual writing), newest first, as
    :func:`status_of` gives them; none for a text that is not a mobile number."""
    if household_id is None and not phone:
        return []
    stmt = select(Grievance)
    if household_id is not None:
        stmt = stmt.where(Grievance.household_id == household_id)
    if phone:
        try:
            stmt = stmt.where(Grievance.phone == normalise_phone(phone))
        except GrievanceError:  # not a mobile number: nobody's grievances
            return []
    return [_status(g) for g in session.scalars(stmt.order_by(Grievance.id.desc()).limit(limit))]


# ---------------------------------------------------------------- the list

SORTS = {"opened": Grievance.id, "due": Grievance.due_at, "category": Grievance.category,
         "status": Grievance.status}
DEFAULT_SORT = keyset.Sort("opened", desc=True)


def _where(scope: int | None, *, status: str | None = None, category: str | None = None,
           channel: str | None = None, district_id: int | None = None, program: str | None = None,
           owner: str | None = None, late: bool = False, now: datetime | None = None) -> list:
    where = []
    if scope is not None:
        where.append(Grievance.district_id == scope)
    elif district_id is not None:
        where.append(Grievance.district_id == district_id)
    if status == "pending":  # open or reopened
        where.append(Grievance.status.in_(OPEN_STATUSES))
    elif status:
        where.append(Grievance.status == status)
    if category:
        where.append(Grievance.category == category)
    if channel:
        where.append(Grievance.channel == channel)
    if program:
        where.append(Grievance.program_code == program)
    if owner:
        where.append(Grievance.owner == owner)
    if late:
        where += [Grievance.status.in_(OPEN_STATUSES), Grievance.due_at < _now(now)]
    return where


def list_grievances(session: Session, scope: int | None, *, after: int | None = None, limit: int = 50,
                    sort: keyset.Sort | None = None, **filters) -> list[Grievance]:
    """A keyset page of grievances in a whitelisted order (:data:`SORTS`), filtered."""
    sort = sort or DEFAULT_SORT
    if sort.key not in SORTS:
        raise keyset.SortError(f"sort must be one of {', '.join(SORTS)}, not {sort.key!r}")
    stmt = select(Grievance).where(*_where(scope, **filters))
    rows = keyset.page(session, stmt, SORTS[sort.key], Grievance.id, after=after, limit=limit, desc=sort.desc,
                       nullable=False)
    return [r[0] for r in rows]


def count_grievances(session: Session, scope: int | None, **filters) -> int:
    return int(session.scalar(select(func.count()).select_from(Grievance).where(*_where(scope, **filters))) or 0)


def count_owned(session: Session, username: str, *, late_only: bool = False, now: datetime | None = None) -> int:
    return count_grievances(session, None, owner=username, status="pending", late=late_only, now=now)


# ---------------------------------------------------------------- handling

def _handling(session: Session, who: Principal, grievance_id: int, *, open_only: bool = True) -> Grievance:
    g = get(session, who, grievance_id)
    if open_only and g.status not in OPEN_STATUSES:
        raise GrievanceError(f"status: grievance {receipts.make('grievance', g.id)} is {g.status}; "
                             "only an open or reopened grievance can be changed")
    return g


def add_note(session: Session, who: Principal, grievance_id: int, note: str, now: datetime | None = None) -> Grievance:
    g = _handling(session, who, grievance_id, open_only=False)
    _event(session, g, "note", who.username, _now(now), note=_text(note, "note", MAX_RESOLUTION))
    session.flush()
    return g


def assign(session: Session, who: Principal, grievance_id: int, username: str, note: str | None = None,
           now: datetime | None = None) -> Grievance:
    """Give an open grievance to another active user who handles grievances (within its district for a
    district role); the level follows the new owner's role."""
    from isps.access.models import User

    now = _now(now)
    g = _handling(session, who, grievance_id)
    user = session.scalar(select(User).where(User.username == (username or "").strip()))
    if user is None or not user.active:
        raise GrievanceError(f"owner: there is no active user '{(username or '')[:60]}'")
    level = next((lvl for lvl, role in routing.LEVELS.items() if role == user.role), None)
    if level is None:
        raise GrievanceError(f"owner: {user.username} ({user.role.replace('_', ' ')}) does not handle grievances")
    if level in routing.SCOPED_LEVELS and user.district_id != g.district_id:
        raise GrievanceError(f"owner: {user.username} works in another district than grievance "
                             f"{receipts.make('grievance', g.id)}")
    if user.username == g.owner:
        raise GrievanceError(f"owner: {user.username} already owns grievance {receipts.make('grievance', g.id)}")
    _event(session, g, "assigned", who.username, now, from_owner=g.owner, to_owner=user.username,
           from_level=g.level, to_level=level, note=(note or "").strip()[:1000] or None)
    g.owner, g.level = user.username, level
    session.flush()
    return g


def escalate(session: Session, who: Principal, grievance_id: int, note: str | None = None,
             now: datetime | None = None) -> Grievance:
    """Send an open grievance one level up by hand (to the next level that has an active user)."""
    now = _now(now)
    g = _handling(session, who, grievance_id)
    for level in range(g.level + 1, routing.TOP + 1):
        owner = routing.pick(session, level, g.district_id)
        if owner:
            break
    else:
        raise GrievanceError(f"level: grievance {receipts.make('grievance', g.id)} is at the top of the hierarchy")
    _event(session, g, "escalated", who.username, now, from_owner=g.owner, to_owner=owner, from_level=g.level,
           to_level=level, note=(note or "").strip()[:1000] or "escalated by hand")
    g.owner, g.level, g.due_at = owner, level, now + timedelta(days=routing.ESCALATION_DAYS)
    session.flush()
    return g


def resolve(session: Session, who: Principal, grievance_id: int, *, root_cause: str, resolution: str,
            now: datetime | None = None) -> Grievance:
    """Resolve an open grievance with its root cause (:data:`ROOT_CAUSES`) and what was done; the
    complainant is told by SMS and asked to confirm."""
    now = _now(now)
    g = _handling(session, who, grievance_id)
    if root_cause not in ROOT_CAUSES:
        raise GrievanceError(f"root_cause: '{str(root_cause)[:30]}' is not one of {', '.join(ROOT_CAUSES)}")
    resolution = _text(resolution, "resolution", MAX_RESOLUTION)
    g.status, g.root_cause, g.resolution, g.resolved_at, g.resolved_by = "resolved", root_cause, resolution, now, who.username
    _event(session, g, "resolved", who.username, now, note=f"root cause {root_cause}: {resolution}")
    session.flush()
    _sms(session, g, f"resolved-{g.reopen_count}", resolution=resolution[:100])
    return g


def confirm(session: Session, grievance_id: int, by: Principal | str, satisfied: bool, note: str | None = None,
            now: datetime | None = None) -> Grievance:
    """The citizen's word on a resolved grievance: recorded by a grievance officer (``by`` a Principal)
    or given by the citizen themselves (``by`` their channel, ``"sms:92300*****67"``). Satisfied
    closes it; not satisfied reopens it (its history kept, a new due time, ``reopen_count`` + 1),
    with its owner if they can still act, else routed again."""
    now = _now(now)
    if isinstance(by, Principal):
        g = get(session, by, grievance_id)
        actor = by.username
    else:
        g = session.get(Grievance, grievance_id)
        if g is None:
            raise NotFound(f"there is no grievance {grievance_id}")
        actor = str(by)[:60]
    if g.status != "resolved":
        raise GrievanceError(f"status: grievance {receipts.make('grievance', g.id)} is {g.status}; only a resolved "
                             "grievance is confirmed or reopened")
    words = (note or "").strip()[:1000] or None
    if satisfied:
        g.status, g.citizen_confirmed_at = "closed", now
        _event(session, g, "confirmed", actor, now, note=words or "the citizen is satisfied")
    else:
        active = session.execute(text("SELECT 1 FROM app_user WHERE username = :u AND active = :y"),
                                 {"u": g.owner, "y": True}).first()
        owner, level = (g.owner, g.level) if active else routing.route(session, g.district_id)
        _event(session, g, "reopened", actor, now, from_owner=g.owner, to_owner=owner, from_level=g.level,
               to_level=level, note=words or "the citizen is not satisfied")
        g.status, g.owner, g.level = "reopened", owner, level
        g.reopen_count = (g.reopen_count or 0) + 1
        g.due_at = now + timedelta(days=routing.REOPENED_DAYS)
        g.resolution = g.root_cause = g.resolved_at = g.resolved_by = None  # kept in the history
    session.flush()
    return g


def escalate_late(session: Session, now: datetime) -> int:
    """Escalate every late open grievance one level up, once per lateness (the worker calls it); and
    first give the open grievances of disabled users to someone who can act. Set-based."""
    now = _now(now)
    routing.reassign_inactive(session, now)
    return routing.escalate_late(session, now)


def reassign_inactive(session: Session, now: datetime | None = None) -> int:
    """Open grievances of disabled users go to the least loaded user of their level or above."""
    return routing.reassign_inactive(session, _now(now))


# ---------------------------------------------------------------- payments and agents

def payment_trail(session: Session, instruction_id: int) -> dict | None:
    """A payment instruction, its attempts, the bank's status lines and its ledger postings (reads of the
    payments' tables; nothing changed)."""
    from isps.payments.payroll import e2e

    i = session.execute(text("""SELECT i.id, i.entitlement_id, i.attempt, i.program_code, i.district_id, i.channel,
            i.amount, i.status, i.status_on, i.payroll_id, p.exported_upto, c.period, e.household_id
        FROM payment_instruction i JOIN payroll p ON p.id = i.payroll_id JOIN benefit_cycle c ON c.id = p.cycle_id
        JOIN enrolment e ON e.id = i.enrolment_id WHERE i.id = :i"""), {"i": instruction_id}).mappings().first()
    if i is None:
        return None
    out = dict(i)
    out["end_to_end_id"] = e2e(i["entitlement_id"], i["attempt"])
    out["sent"] = i["status"] != "pending" or i["id"] <= (i["exported_upto"] or 0)
    out["attempts"] = [dict(r) for r in session.execute(text("""SELECT id, attempt, status, status_on, amount
        FROM payment_instruction WHERE entitlement_id = :e ORDER BY attempt"""), {"e": i["entitlement_id"]}).mappings()]
    ids = [a["id"] for a in out["attempts"]]
    e2es = [e2e(i["entitlement_id"], a["attempt"]) for a in out["attempts"]]
    out["status_lines"] = [dict(r) for r in session.execute(text("""SELECT l.end_to_end_id, l.status, l.amount,
            l.status_on, l.outcome, l.reason, m.file_name, m.imported_at
        FROM payment_status_line l JOIN payment_status_import m ON m.id = l.import_id
        WHERE l.end_to_end_id IN :e ORDER BY l.id""").bindparams(_expanding("e")), {"e": e2es}).mappings()]
    out["ledger"] = [dict(r) for r in session.execute(text("""SELECT ref_id, kind, debit, credit, amount, posted_at
        FROM ledger_entry WHERE ref_id IN :ids AND kind <> 'rel' ORDER BY id""").bindparams(_expanding("ids")),
                                                      {"ids": ids}).mappings()]
    slot = session.execute(text("""SELECT s.slot_start, o.id AS outlet_id, o.name AS outlet FROM pickup_slot s
        JOIN cash_outlet o ON o.id = s.outlet_id WHERE s.instruction_id = :i"""), {"i": instruction_id}).mappings().first()
    out["pickup"] = dict(slot) if slot else None
    return out


def _expanding(name: str):
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


def agent_counts(session: Session, scope: int | None = None, limit: int = 50) -> list[dict]:
    """Complaints against each agent or cash outlet (deduction, conduct), most first, within a district."""
    where = "AND o.district_id = :d" if scope is not None else ""
    cats = ", ".join(f"'{c}'" for c in AGENT_CATEGORIES)
    return [dict(r) for r in session.execute(text(f"""SELECT o.id AS outlet_id, o.name, o.kind, o.district_id,
            COUNT(*) AS total,
            SUM(CASE WHEN g.category = 'agent_deduction' THEN 1 ELSE 0 END) AS deduction,
            SUM(CASE WHEN g.category = 'agent_conduct' THEN 1 ELSE 0 END) AS conduct,
            SUM(CASE WHEN g.status IN ('open', 'reopened') THEN 1 ELSE 0 END) AS still_open
        FROM grievance g JOIN cash_outlet o ON o.id = g.outlet_id
        WHERE g.category IN ({cats}) {where}
        GROUP BY o.id, o.name, o.kind, o.district_id ORDER BY COUNT(*) DESC, o.id LIMIT :n"""),
                                                  {"d": scope, "n": limit}).mappings()]


__all__ = ["CATEGORIES", "CHANNELS", "ROOT_CAUSES", "GrievanceError", "NotFound", "file_grievance", "status_of",
           "grievances_of", "escalate_late", "confirm", "resolve", "assign", "escalate", "add_note", "get", "history",
           "list_grievances", "count_grievances", "payment_trail", "agent_counts", "payments_of_household",
           "normalise_phone", "mask_phone", "reassign_inactive"]
