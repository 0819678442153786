"""Per-citizen opt-out, by phone number: a phone that texted STOP (or was opted out at a counter)
gets no more messages from ISPS, except what it cannot do without (a one-time code it asked for,
the confirmation of its opt-out, the answer to a text it sent). One row per phone holds the
current state; ``via`` says who changed it last (``sms``, ``web:<user>``, ``cli``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.messaging.models import OptOut
from isps.messaging.phones import normalise


def _set(session: Session, phone: str, out: bool, via: str) -> bool:
    number = normalise(phone)
    row = session.get(OptOut, number, with_for_update=True)
    if row is None:
        if not out:
            return False  # never opted out: nothing to change
        session.add(OptOut(phone=number, opted_out=True, via=via[:40], changed_at=datetime.now()))
        session.flush()
        return True
    if row.opted_out == out:
        return False
    row.opted_out, row.via, row.changed_at = out, via[:40], datetime.now()
    session.flush()
    return True


def opt_out(session: Session, phone: str, via: str) -> bool:
    """Stop messages to ``phone``; True when it was not already opted out."""
    return _set(session, phone, True, via)


def opt_in(session: Session, phone: str, via: str) -> bool:
    """Messages to ``phone`` again; True when it had opted out."""
    return _set(session, phone, False, via)


def is_opted_out(session: Session, phone: str) -> bool:
    number = normalise(phone)
    return bool(session.scalar(select(OptOut.opted_out).where(OptOut.phone == number)))


__all__ = ["opt_out", "opt_in", "is_opted_out"]
