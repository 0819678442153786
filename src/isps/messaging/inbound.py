"""Texts citizens send to the short code: stored once, rate-limited, STOP and START handled here,
everything else answered by the handler the caller gives (the short code's, in ``citizen/``, which
sits above this module and is never imported by it).

:func:`receive` stores the text (idempotent by the gateway's reference: a text handed over twice is
one row and one reply), then:

* ``STOP`` / ``بند`` opts the phone out and ``START`` / ``شروع`` back in, with a confirmation
  (in the script the citizen wrote in);
* a phone that sent more than :data:`RATE_LIMIT` texts within :data:`RATE_WINDOW` gets one
  "too many messages" reply for the first text over the limit, then silence (every text is still
  stored, with its outcome);
* otherwise the handler's answer is queued as the reply (``reply:<inbound id>``), which the
  caller sends at once (:func:`isps.messaging.dispatch.send_one`).

A handler that fails is rolled back to a savepoint: what it half-wrote is undone, the text stays
stored, and the citizen is told to try again later.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy import text as sql
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from isps.messaging import optout, texts
from isps.messaging.models import Inbound, Message
from isps.messaging.phones import PhoneError, normalise
from isps.messaging.queue import enqueue

Handler = Callable[[Session, str, str, datetime], "str | None"]
RATE_LIMIT = 10                     # texts answered per phone within the window
RATE_WINDOW = timedelta(hours=1)
STOP_WORDS = frozenset({"STOP", "بند"})
START_WORDS = frozenset({"START", "شروع"})
MAX_STORED = 1000
log = logging.getLogger(__name__)


@dataclass
class InboundResult:
    inbound_id: int
    outcome: str              # answered | no_reply | stop | start | limited | silenced | bad_phone | error
    reply: Message | None
    duplicate: bool = False   # the gateway had handed this text over before: nothing new was done


def keyword(text: str) -> str:
    """The text as a keyword: trimmed, upper-case, without surrounding punctuation."""
    return re.sub(r"^[\s\W_]+|[\s\W_]+$", "", text or "").upper()


def _insert(session: Session):
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(Inbound)


def receive(session: Session, *, phone: str, text: str, gateway_ref: str, received_at: datetime,
            handler: Handler) -> InboundResult:
    ref = (gateway_ref or "").strip()[:80]
    if not ref:
        raise ValueError("an inbound text needs the gateway's reference (it makes receiving idempotent)")
    body = (text or "").strip()[:MAX_STORED]
    try:
        number, bad = normalise(phone), False
    except PhoneError:
        number, bad = (phone or "?").strip()[:13], True
    if not bad and session.get_bind().dialect.name == "postgresql":
        # one phone's texts are stored and counted one after the other (a flood handled in parallel
        # still answers the first RATE_LIMIT, tells the next one once, then stays silent); SQLite has one writer
        session.execute(sql("SELECT pg_advisory_xact_lock(hashtext('isps.sms_inbound'), hashtext(:p))"),
                        {"p": number})
    row = session.scalars(_insert(session).values(
        gateway_ref=ref, phone=number, text=body, received_at=received_at, outcome="received")
        .on_conflict_do_nothing(index_elements=["gateway_ref"]).returning(Inbound)).first()
    if row is None:  # handed over before
        row = session.scalars(select(Inbound).where(Inbound.gateway_ref == ref)).one()
    if row.outcome != "received":  # handled before: the same answer, nothing new
        reply = session.get(Message, row.reply_id) if row.reply_id else None
        return InboundResult(row.id, row.outcome, reply, duplicate=True)
    if bad:  # an alphanumeric sender or a landline: nobody to answer
        row.outcome = "bad_phone"
        session.flush()
        return InboundResult(row.id, row.outcome, None)
    earlier = session.scalar(select(func.count()).select_from(Inbound).where(
        Inbound.phone == number, Inbound.id < row.id, Inbound.received_at > received_at - RATE_WINDOW)) or 0
    over = earlier >= RATE_LIMIT
    lang = texts.language_of(body)
    word = keyword(body)
    reply_text, kind = None, "reply"
    if word in STOP_WORDS or word in START_WORDS:
        stop = word in STOP_WORDS
        changed = (optout.opt_out if stop else optout.opt_in)(session, number, "sms")
        row.outcome = "stop" if stop else "start"
        if changed or not over:
            reply_text, kind = texts.text("opt_out" if stop else "opt_in", lang), ("opt_out" if stop else "opt_in")
    elif over:
        row.outcome = "limited" if earlier == RATE_LIMIT else "silenced"
        if earlier == RATE_LIMIT:
            reply_text = texts.text("limited", lang)
    else:
        nested = session.begin_nested()
        try:
            reply_text = handler(session, number, body, received_at)
            nested.commit()
            row.outcome = "answered" if reply_text else "no_reply"
        except Exception:  # noqa: BLE001 - a handler's bug must not lose the text or leave half its work
            nested.rollback()
            log.exception("the short code's handler failed on inbound text %s", row.id)
            row.outcome, reply_text = "error", texts.text("error", lang)
    reply = None
    if reply_text:
        reply = enqueue(session, kind=kind, phone=number, text=reply_text, key=f"reply:{row.id}",
                        lang=texts.language_of(reply_text))
        row.reply_id = reply.id
    session.flush()
    return InboundResult(row.id, row.outcome, reply)


__all__ = ["receive", "InboundResult", "Handler", "RATE_LIMIT", "RATE_WINDOW", "keyword"]
