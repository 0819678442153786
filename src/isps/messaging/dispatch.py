"""Sending what is queued, exactly once, with retries, and settling delivery receipts.

A pass of :func:`send_due`:

1. **Claim** up to ``limit`` due messages in one statement (``UPDATE … SET status='sending' WHERE id
   IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``, committed before anything is sent). On
   PostgreSQL two workers skip each other's rows, so no message is claimed twice; SQLite has one
   writer at a time, and the ``status='queued'`` condition of the UPDATE does the same.
2. **Send** each claimed message and record the outcome in its own short transaction: ``sent``
   with the gateway's id; a temporary refusal (throttled, not connected) goes back to ``queued``
   with a back-off (30 s, 2 min, 10 min, 30 min) until :data:`MAX_ATTEMPTS`; a permanent refusal is
   ``failed``.
3. **Never resend blindly.** A message whose fate is unknown (the worker stopped between handing it
   over and recording the answer, or the gateway took it and timed out before answering) may have
   reached the phone. Such a message, left in ``sending`` for :data:`STALE_AFTER`, is settled as
   ``failed`` with the reason, and is sent again only when someone asks for it
   (:func:`isps.messaging.queue.requeue`, ``isps sms requeue``) after checking.
4. **Receipts** are stored as they arrive (:func:`record_receipt`); one that arrives before its
   message's gateway id was recorded (a fast network) is applied by the next pass, set-based.

:func:`send_one` sends a single message at once (the short code's reply to a text).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import datetime, timedelta

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from isps.db import is_postgres, transaction
from isps.messaging.gateways import Gateway, GatewayError
from isps.messaging.models import Receipt

MAX_ATTEMPTS = 5
BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(minutes=30))
STALE_AFTER = timedelta(minutes=5)  # far longer than any gateway call (SMPP answers within seconds)
UNDELIVERED = "the network could not deliver it (the phone is off, out of reach or the number is closed)"
UNCERTAIN = "the gateway may have taken it (no answer was recorded): not resent; requeue it after checking"


_SQLITE_WRITER = threading.RLock()


def _serial(engine: Engine):
    """On SQLite, this process's short write transactions queue here (a hand-over in microseconds)
    instead of polling SQLite's busy lock (sleeps of up to 100 ms under load); PostgreSQL needs none."""
    return _SQLITE_WRITER if engine.dialect.name == "sqlite" else nullcontext()


def backoff(attempts: int) -> timedelta:
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def _claim(session: Session, now: datetime, limit: int, message_id: int | None = None) -> list:
    lock = " FOR UPDATE SKIP LOCKED" if is_postgres(session.get_bind()) else ""
    one = " AND id = :m" if message_id is not None else ""
    return list(session.execute(text(f"""UPDATE sms_message SET status = 'sending', claimed_at = :now,
            attempts = attempts + 1
        WHERE status = 'queued' AND id IN (SELECT id FROM sms_message WHERE status = 'queued'
            AND send_after <= :now{one} ORDER BY id LIMIT :n{lock})
        RETURNING id, phone, text, attempts"""), {"now": now, "n": limit, "m": message_id}))


def _record(engine: Engine, gateway: Gateway, row, now: datetime) -> str:
    """Send one claimed message and record what happened; returns sent | retried | failed."""
    try:
        ref = gateway.send(row.id, row.phone, row.text)
    except GatewayError as exc:
        reason = str(exc)[:150]
        uncertain = getattr(exc, "uncertain", False)
        with _serial(engine), transaction(engine) as s:
            if exc.temporary and not uncertain and row.attempts < MAX_ATTEMPTS:
                s.execute(text("""UPDATE sms_message SET status = 'queued', send_after = :after, error = :e
                    WHERE id = :id AND status = 'sending'"""),
                          {"after": now + backoff(row.attempts), "e": f"attempt {row.attempts}: {reason}",
                           "id": row.id})
                return "retried"
            why = (UNCERTAIN if uncertain else
                   f"gave up after {row.attempts} attempts: {reason}" if exc.temporary else reason)
            s.execute(text("UPDATE sms_message SET status = 'failed', gateway = :g, error = :e "
                           "WHERE id = :id AND status = 'sending'"),
                      {"g": gateway.name, "e": why[:200], "id": row.id})
        return "failed"
    gid = str(ref)[:64]
    with _serial(engine), transaction(engine) as s:
        # sent, or at once delivered/undeliverable when its receipt outran this update (a fast network)
        s.execute(text("""UPDATE sms_message SET
                status = COALESCE((SELECT r.state FROM sms_receipt r WHERE r.gateway_id = :ref
                                   ORDER BY r.id DESC LIMIT 1), 'sent'),
                delivered_at = (SELECT r.at FROM sms_receipt r WHERE r.gateway_id = :ref AND r.state = 'delivered'
                                ORDER BY r.id DESC LIMIT 1),
                error = CASE WHEN (SELECT r.state FROM sms_receipt r WHERE r.gateway_id = :ref
                                   ORDER BY r.id DESC LIMIT 1) = 'undeliverable' THEN :undelivered END,
                sent_at = :now, gateway = :g, gateway_id = :ref
            WHERE id = :id AND status = 'sending'"""),
                  {"now": datetime.now(), "g": gateway.name, "ref": gid, "id": row.id, "undelivered": UNDELIVERED})
    return "sent"


def settle_unknown(session: Session, now: datetime) -> int:
    """Messages left in ``sending`` longer than :data:`STALE_AFTER` (a worker stopped mid-send):
    failed with the reason, never resent blindly."""
    return session.execute(text("""UPDATE sms_message SET status = 'failed', error = :e
        WHERE status = 'sending' AND claimed_at < :stale"""), {"e": UNCERTAIN, "stale": now - STALE_AFTER}).rowcount


def record_receipt(session: Session, gateway_id: str, state: str, at: datetime) -> int:
    """A delivery receipt: ``delivered`` or ``undeliverable`` for the message the gateway knows as
    ``gateway_id``. Stored first (so an early receipt is not lost), then applied; returns the number
    of messages it changed now (0 when it came before the message's id was recorded)."""
    if state not in ("delivered", "undeliverable"):
        raise ValueError(f"a receipt's state is delivered or undeliverable, not {state!r}")
    gid = str(gateway_id)[:64]
    session.add(Receipt(gateway_id=gid, state=state, at=at, received_at=datetime.now()))
    session.flush()
    return _apply(session, gid, state, at)


def _apply(session: Session, gid: str, state: str, at) -> int:
    if state == "delivered":
        change, params = "status = 'delivered', delivered_at = :at", {"at": at}
    else:
        change, params = "status = 'undeliverable', error = :undelivered", {"undelivered": UNDELIVERED}
    return session.execute(text(f"""UPDATE sms_message SET {change}
        WHERE gateway_id = :g AND status IN ('sending', 'sent')"""), {**params, "g": gid}).rowcount


def apply_receipts(session: Session, now: datetime) -> int:
    """Receipts of the last day that found no sent message when they came (set-based, one statement)."""
    return session.execute(text("""UPDATE sms_message SET
            status = (SELECT r.state FROM sms_receipt r WHERE r.gateway_id = sms_message.gateway_id
                      ORDER BY r.id DESC LIMIT 1),
            delivered_at = (SELECT CASE WHEN r.state = 'delivered' THEN r.at END FROM sms_receipt r
                            WHERE r.gateway_id = sms_message.gateway_id ORDER BY r.id DESC LIMIT 1),
            error = (SELECT CASE WHEN r.state = 'undeliverable' THEN :undelivered END FROM sms_receipt r
                     WHERE r.gateway_id = sms_message.gateway_id ORDER BY r.id DESC LIMIT 1)
        WHERE status = 'sent' AND gateway_id IN (SELECT gateway_id FROM sms_receipt WHERE received_at >= :since)"""),
                           {"since": now - timedelta(days=1), "undelivered": UNDELIVERED}).rowcount


def send_due(engine: Engine, gateway: Gateway, *, now: datetime | None = None, limit: int = 200,
             workers: int = 4) -> dict:
    """One pass: settle the unknown, apply early receipts, claim and send what is due, ``workers``
    messages at a time (a gateway's answer takes a round trip; SMPP and HTTP take several at once).
    Returns the counts: claimed, sent, retried, failed, settled (unknown fate), receipts (applied late)."""
    now = now or datetime.now()
    with _serial(engine), transaction(engine) as s:
        settled = settle_unknown(s, now)
        late = apply_receipts(s, now)
    with _serial(engine), transaction(engine) as s:
        rows = _claim(s, now, limit)
    counts = {"claimed": len(rows), "sent": 0, "retried": 0, "failed": 0, "settled": settled, "receipts": late}
    if workers > 1 and len(rows) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(rows)), thread_name_prefix="sms-send") as pool:
            outcomes = list(pool.map(lambda row: _record(engine, gateway, row, now), rows))
    else:
        outcomes = [_record(engine, gateway, row, now) for row in rows]
    for outcome in outcomes:
        counts[outcome] += 1
    return counts


def send_one(engine: Engine, gateway: Gateway, message_id: int, *, now: datetime | None = None) -> str | None:
    """Send one queued message now (a reply to a citizen's text); returns sent | retried | failed,
    or None when it is not queued and due (already sent, suppressed, taken by another worker)."""
    now = now or datetime.now()
    with _serial(engine), transaction(engine) as s:
        rows = _claim(s, now, 1, message_id)
    if not rows:
        return None
    return _record(engine, gateway, rows[0], now)


def callbacks(engine: Engine, gateway: Gateway, handler) -> tuple:
    """The ``(on_text, on_receipt)`` a process hands to ``gateway.start``: a text is stored and
    answered (:func:`isps.messaging.inbound.receive` with ``handler``, one transaction) and its reply
    sent at once (:func:`send_one`); a receipt is recorded (:func:`record_receipt`)."""
    from isps.messaging import inbound

    def on_text(phone: str, body: str, gateway_ref: str, received_at: datetime) -> None:
        with _serial(engine), transaction(engine) as s:
            result = inbound.receive(s, phone=phone, text=body, gateway_ref=gateway_ref, received_at=received_at,
                                     handler=handler)
            reply, now = result.reply, datetime.now()
            # the reply claimed in the same transaction that stored it: sent the moment this commits
            claimed = _claim(s, now, 1, reply.id) if reply is not None and reply.status == "queued" else []
        if claimed:
            _record(engine, gateway, claimed[0], now)

    def on_receipt(gateway_id: str, state: str, at: datetime) -> None:
        with _serial(engine), transaction(engine) as s:
            record_receipt(s, gateway_id, state, at)

    return on_text, on_receipt


__all__ = ["send_due", "send_one", "callbacks", "record_receipt", "apply_receipts", "settle_unknown", "MAX_ATTEMPTS",
           "backoff", "STALE_AFTER"]
