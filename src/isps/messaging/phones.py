"""Pakistani mobile numbers: one form everywhere (``923001234567``), masked in lists and logs.

A number is accepted as written on forms, rosters and by gateways: ``0300-1234567``,
``+92 300 1234567``, ``92 300 1234567``, ``0092300…`` or ``3001234567``. Only mobiles (``3xx``
after the country code, ten digits) are: a landline cannot receive an SMS.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().]")
# the same rule as SQL (queue producers normalise in the database): digits only, then one of the prefixes
MOBILE = re.compile(r"^3\d{9}$")


class PhoneError(ValueError):
    """Not a Pakistani mobile number; the message is safe to show and names the value."""


def normalise(raw: str) -> str:
    """``923001234567`` for any usual way of writing a Pakistani mobile; else :class:`PhoneError`."""
    if raw is None:
        raise PhoneError("no phone number was given")
    shown = str(raw).strip()[:30]
    digits = _SEPARATORS.sub("", shown)
    if digits.startswith("+"):
        digits = digits[1:]
    if not digits.isdigit():
        raise PhoneError(f"{shown!r} is not a phone number: only digits, spaces, '-' and a leading '+' are allowed")
    if digits.startswith("0092"):
        digits = digits[4:]
    elif digits.startswith("92") and len(digits) == 12:
        digits = digits[2:]
    elif digits.startswith("0") and len(digits) == 11:
        digits = digits[1:]
    if not MOBILE.match(digits):
        raise PhoneError(f"{shown!r} is not a Pakistani mobile number (03xx followed by 7 digits, e.g. 0300-1234567)")
    return "92" + digits


def mask(phone: str) -> str:
    """``92300*****67``: the network prefix and the last two digits, for lists and logs."""
    p = (phone or "").strip()
    if len(p) < 7:
        return "*" * len(p)
    return p[:5] + "*" * (len(p) - 7) + p[-2:]


def display(phone: str) -> str:
    """``0300-1234567``: how a Pakistani reads a normalised number (for the citizen's own screen)."""
    return f"0{phone[2:5]}-{phone[5:]}" if len(phone) == 12 and phone.startswith("92") else phone


__all__ = ["PhoneError", "normalise", "mask", "display"]
