"""The short code's answer, found for the adapters (the SMS API routes, ``isps sms receive``) and
the worker: :func:`isps.citizen.shortcode.answer` when the citizen's door has it, otherwise no
answer at all (the text is still stored, STOP and START still work): never a made-up reply."""

from __future__ import annotations

import importlib
from datetime import datetime

from sqlalchemy.orm import Session


def no_answer(session: Session, phone: str, text: str, received_at: datetime) -> str | None:
    return None


def handler():
    """The short code's handler: ``(session, phone, text, received_at) -> reply text | None``."""
    try:
        return importlib.import_module("isps.citizen.shortcode").answer
    except (ImportError, AttributeError):
        return no_answer
