"""Receipt numbers: what a citizen is given for an application or a grievance, printed and by SMS,
and types back to ask its status.

A receipt is a prefix (``OW`` for a One Window application, ``GR`` for a grievance), the record's id,
and one Luhn check digit, so that a digit mistyped or two digits swapped on a phone keypad is caught
before any record is looked up (an unknown receipt and a mistyped one get different answers). The
number is not a secret: its status reply carries no personal data.
"""

from __future__ import annotations

import re

PREFIXES = {"OW": "application", "GR": "grievance"}
_SHAPE = re.compile(r"^\s*(OW|GR)[\s-]*(\d{2,12})\s*$", re.IGNORECASE)


class ReceiptError(ValueError):
    """A text that is not a receipt number; the message is safe to show to a citizen."""


def _luhn_digit(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # the digit next to the check digit is doubled
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def make(kind: str, record_id: int) -> str:
    """The receipt of an application (``kind="application"``) or grievance: ``OW12345`` + check digit."""
    prefix = next((p for p, k in PREFIXES.items() if k == kind), None)
    if prefix is None:
        raise ValueError(f"receipt kind must be one of {', '.join(PREFIXES.values())}")
    if record_id < 1:
        raise ValueError("a receipt needs a record id of 1 or more")
    digits = str(record_id)
    return f"{prefix}{digits}{_luhn_digit(digits)}"


def parse(text: str) -> tuple[str, int]:
    """``(kind, record id)`` of a receipt typed by a citizen (any case, spaces or a hyphen after the
    prefix allowed). Raises :class:`ReceiptError` when it is not a receipt or its check digit is wrong."""
    m = _SHAPE.match(text or "")
    if not m:
        raise ReceiptError("a receipt number starts with OW or GR followed by digits, e.g. OW10236")
    prefix, digits = m.group(1).upper(), m.group(2)
    body, check = digits[:-1], int(digits[-1])
    if _luhn_digit(body) != check:
        raise ReceiptError(f"{prefix}{digits} is not a valid receipt number: please check the digits")
    return PREFIXES[prefix], int(body)


def looks_like(text: str) -> bool:
    """Whether a text has the shape of a receipt (so a short code can tell it from a CNIC or keyword)."""
    return bool(_SHAPE.match(text or ""))
