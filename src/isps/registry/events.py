"""The outbox: domain events written in the same transaction as the change.

A consumer (PMT re-scoring, later eligibility and payments) reads events past its
cursor and advances the cursor in the transaction that acts on them, so an event
is acted on once even across crashes.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from isps.registry.models import OutboxCursor, OutboxEvent

HOUSEHOLD_CHANGED = "household.changed"
HOUSEHOLD_CREATED = "household.created"
MEMBER_CHANGED = "member.changed"
MEMBER_DECEASED = "member.deceased"
# a member left the household alive (moved to another household, left, entered in error): beside the
# household.changed that re-scores it, so that a benefit they collected passes to another member
MEMBER_LEFT = "member.left"


def record(session: Session, topic: str, aggregate: str, aggregate_id: int, payload: dict | None = None) -> None:
    session.add(OutboxEvent(topic=topic, aggregate=aggregate, aggregate_id=aggregate_id, payload=payload or {}))


def cursor(session: Session, consumer: str) -> int:
    row = session.get(OutboxCursor, consumer, with_for_update=True)
    if row is None:
        row = OutboxCursor(consumer=consumer, last_event_id=0)
        session.add(row)
        session.flush()
    return row.last_event_id


def latest_event_id(session: Session) -> int:
    return session.scalar(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1)) or 0


def advance(session: Session, consumer: str, upto: int) -> None:
    cursor(session, consumer)
    session.execute(update(OutboxCursor).where(OutboxCursor.consumer == consumer).values(last_event_id=upto))
