"""The one outbound message queue: every SMS ISPS sends is a row of ``sms_message`` first.

:func:`enqueue` is idempotent by ``key`` (unique in the database, ``INSERT … ON CONFLICT DO
NOTHING`` on both backends): the producer names the message (``pickup:<slot>``,
``paid:<instruction>``, ``reply:<inbound>``), so a step run twice, or two workers racing, queue it
once. A message to a phone that opted out is stored as ``suppressed`` (the citizen's screen shows
it, nobody sends it) unless its kind is :data:`ESSENTIAL`. :mod:`isps.messaging.dispatch` sends
what is queued.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from sqlalchemy import case, exists, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from isps import keyset
from isps.messaging.models import STATUSES, Message, OptOut
from isps.messaging.phones import mask, normalise

# what a phone that opted out still receives: a one-time code it asked for, the confirmation of its
# opt-out, and the answer to a text it has just sent (a question is a request for that one answer)
ESSENTIAL = frozenset({"otp", "opt_out", "reply"})
# the kinds ISPS sends today (the /messages filter offers them); a producer may name another kind,
# a lowercase word (``selfreport``, ``grievance``…)
KINDS = ("pickup", "paid", "receipt", "status", "reminder", "selfreport", "reply", "otp", "opt_out", "opt_in")
KIND_SHAPE = re.compile(r"^[a-z][a-z_]{0,19}$")
LANGS = ("ur", "en")
MAX_TEXT = 1000  # characters: at most 15 UCS-2 parts


class QueueError(ValueError):
    """A message that cannot be queued; the message names the field."""


def _insert(session: Session):
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(Message)


def enqueue(session: Session, *, kind: str, phone: str, text: str, key: str, lang: str = "ur",
            individual_id: int | None = None, household_id: int | None = None,
            district_id: int | None = None, send_after: datetime | None = None) -> Message:
    """Queue one message (or return the one already queued under ``key``). Raises
    :class:`isps.messaging.phones.PhoneError` for a number that is not a mobile, :class:`QueueError`
    for an empty or over-long text, an unknown kind or language, or an empty key."""
    key = (key or "").strip()
    if not key or len(key) > 120:
        raise QueueError("a message needs a key of 1 to 120 characters (it makes enqueuing idempotent)")
    if not KIND_SHAPE.match(kind or ""):
        raise QueueError(f"kind must be a lowercase word of at most 20 letters (e.g. {', '.join(KINDS[:4])}), "
                         f"not {kind!r}")
    if lang not in LANGS:
        raise QueueError(f"lang must be ur or en, not {lang!r}")
    text = (text or "").strip()
    if not text:
        raise QueueError(f"message {key}: the text is empty")
    if len(text) > MAX_TEXT:
        raise QueueError(f"message {key}: the text has {len(text)} characters, at most {MAX_TEXT} are sent")
    number = normalise(phone)
    now = datetime.now()
    # one statement: the opt-out read inside it, the row back by RETURNING (none when the key was queued before)
    out = kind not in ESSENTIAL
    status = (case((exists().where(OptOut.phone == number, OptOut.opted_out.is_(True)), "suppressed"),
                   else_="queued") if out else literal("queued"))
    stmt = _insert(session).values(
        key=key, kind=kind, phone=number, text=text, lang=lang, status=status,
        attempts=0, individual_id=individual_id, household_id=household_id, district_id=district_id,
        send_after=send_after or now, created_at=now).on_conflict_do_nothing(index_elements=["key"])
    made = session.scalars(stmt.returning(Message), execution_options={"populate_existing": True}).first()
    if made is not None:
        return made
    return session.scalars(select(Message).where(Message.key == key)).one()


def _view(m: Message) -> dict:
    return {"id": m.id, "kind": m.kind, "phone": mask(m.phone), "text": m.text, "lang": m.lang, "status": m.status,
            "attempts": m.attempts, "created_at": m.created_at, "sent_at": m.sent_at,
            "delivered_at": m.delivered_at, "error": m.error, "household_id": m.household_id,
            "district_id": m.district_id, "key": m.key}


def messages_of(session: Session, *, household_id: int | None = None, phone: str | None = None,
                limit: int = 20) -> list[dict]:
    """A household's (or a phone's) messages, newest first, the phone masked."""
    if household_id is None and phone is None:
        raise QueueError("messages_of needs a household_id or a phone")
    stmt = select(Message)
    if household_id is not None:
        stmt = stmt.where(Message.household_id == household_id)
    if phone is not None:
        stmt = stmt.where(Message.phone == normalise(phone))
    return [_view(m) for m in session.scalars(stmt.order_by(Message.id.desc()).limit(max(1, min(limit, 500))))]


# ---------------------------------------------------------------- the /messages list

SORTS = {"id": Message.id, "created": Message.created_at, "status": Message.status, "kind": Message.kind,
         "attempts": Message.attempts}
DEFAULT_SORT = keyset.Sort("id", desc=True)


def _filtered(*, status: str | None, kind: str | None, district_id: int | None, day: date | None):
    stmt = select(Message)
    if status:
        if status not in STATUSES:
            raise QueueError(f"status must be one of {', '.join(STATUSES)}")
        stmt = stmt.where(Message.status == status)
    if kind:
        if not KIND_SHAPE.match(kind):
            raise QueueError("kind must be a lowercase word, e.g. pickup")
        stmt = stmt.where(Message.kind == kind)
    if district_id is not None:
        stmt = stmt.where(Message.district_id == district_id)
    if day is not None:
        start = datetime.combine(day, datetime.min.time())
        stmt = stmt.where(Message.created_at >= start, Message.created_at < start + timedelta(days=1))
    return stmt


def list_messages(session: Session, *, after: int | None = None, limit: int = 50, status: str | None = None,
                  kind: str | None = None, district_id: int | None = None, day: date | None = None,
                  sort: keyset.Sort = DEFAULT_SORT) -> list[dict]:
    """One keyset page of the queue (filters: status, kind, district, day of creation), phones masked."""
    stmt = _filtered(status=status, kind=kind, district_id=district_id, day=day)
    col = SORTS[sort.key]
    rows = keyset.page(session, stmt, col, Message.id, after=after, limit=limit, desc=sort.desc,
                       nullable=False)
    return [_view(r[0]) for r in rows]


def count_messages(session: Session, *, status: str | None = None, kind: str | None = None,
                   district_id: int | None = None, day: date | None = None) -> int:
    stmt = _filtered(status=status, kind=kind, district_id=district_id, day=day)
    return int(session.scalar(stmt.with_only_columns(func.count()).select_from(Message).order_by(None)) or 0)


def requeue(session: Session, message_id: int) -> bool:
    """Send a failed message again, deliberately (after an operator checked that the citizen did not
    get it: a message a crash left unsettled is failed, never resent blindly). True when requeued."""
    m = session.get(Message, message_id, with_for_update=True)
    if m is None or m.status != "failed":
        return False
    m.status, m.send_after, m.error, m.attempts = "queued", datetime.now(), None, 0
    session.flush()
    return True


__all__ = ["enqueue", "messages_of", "list_messages", "count_messages", "requeue", "ESSENTIAL", "KINDS",
           "QueueError", "Message", "SORTS", "DEFAULT_SORT"]
