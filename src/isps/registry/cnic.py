"""CNIC and B-form numbers: 13 digits written ``NNNNN-NNNNNNN-N``.

The first five digits name the locality of registration (Punjab's begin with 3),
and the last digit is odd for men and even for women. NADRA prints the same
format on B-forms for children.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"^\d{13}$")
_WRITTEN = re.compile(r"^\d{5}-\d{7}-\d$")


class CnicError(ValueError):
    """A CNIC that cannot be accepted; the message is fit to show to an operator."""


def normalise(raw: str | int | None) -> str:
    """Return the 13 digits of a CNIC written with or without dashes, or raise CnicError."""
    if raw is None:
        raise CnicError("CNIC is missing")
    text = str(raw).strip()
    if not text:
        raise CnicError("CNIC is missing")
    if _WRITTEN.match(text):
        return text.replace("-", "")
    if _DIGITS.match(text):
        return text
    digits = re.sub(r"\D", "", text)
    if len(digits) != 13:
        raise CnicError(f"CNIC '{mask_raw(text)}' must have 13 digits written NNNNN-NNNNNNN-N; it has {len(digits)}")
    raise CnicError(f"CNIC '{mask_raw(text)}' must be written NNNNN-NNNNNNN-N or as 13 digits")


def sex_digit_matches(cnic: str, sex: str) -> bool:
    """The last digit is odd for men and even for women; NADRA sets no rule for transgender persons."""
    last = int(cnic[-1])
    if sex == "male":
        return last % 2 == 1
    if sex == "female":
        return last % 2 == 0
    return True


def validate(raw: str | int | None, sex: str | None = None) -> str:
    """Normalise a CNIC and check its last digit against the recorded sex."""
    cnic = normalise(raw)
    if cnic.startswith("0"):
        raise CnicError(f"CNIC {mask(cnic)} cannot begin with 0: the first digit is the province code")
    if sex is not None and not sex_digit_matches(cnic, sex):
        parity = "odd" if sex == "male" else "even"
        raise CnicError(f"CNIC {mask(cnic)} ends in {cnic[-1]}, but a {sex} holder's CNIC ends in an {parity} digit")
    return cnic


def formatted(cnic: str) -> str:
    return f"{cnic[:5]}-{cnic[5:12]}-{cnic[12]}"


def mask(cnic: str | None) -> str:
    """The form shown in lists and logs: locality and last digits only."""
    if not cnic:
        return ""
    if len(cnic) != 13:
        return mask_raw(cnic)
    return f"{cnic[:5]}-*****{cnic[10:12]}-{cnic[12]}"


def mask_raw(text: str) -> str:
    """Mask whatever an operator typed, keeping only enough to recognise it."""
    if len(text) <= 4:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 5) + text[-2:]
