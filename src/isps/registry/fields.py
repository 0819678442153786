"""What each registry field may hold: the one definition that imports, edits and feeds check against.

Checks are written to run on whole columns (NumPy arrays) so an import validates a
million rows without a Python loop; :func:`check_value` applies the same rule to
one value for an operator's edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from isps.registry import vocab


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # text | int | float | bool | choice | date
    required: bool = True
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    max_len: int = 200
    words: bool = False  # written words (names, addresses): may not begin like a spreadsheet formula

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind in ("int", "float"):
            return f"a number from {self.low:g} to {self.high:g}"
        if self.kind == "bool":
            return "yes or no"
        if self.kind == "date":
            return "a date written YYYY-MM-DD"
        return f"text of at most {self.max_len} characters"


def _choice(name: str, choices: tuple[str, ...], required: bool = True) -> Field:
    return Field(name, "choice", required, choices)


HOUSEHOLD_FIELDS: dict[str, Field] = {f.name: f for f in [
    Field("address", "text", max_len=200, words=True),
    Field("urban", "bool"),
    *[_choice(k, v) for k, v in vocab.HOUSEHOLD_CATEGORICAL.items()],
    Field("rooms", "int", low=1, high=40),
    Field("electricity", "bool"),
    *[Field(d, "bool") for d in vocab.DURABLES],
    Field("land_acres", "float", low=0, high=10_000),
    Field("cattle", "int", low=0, high=1_000),
    Field("goats_sheep", "int", low=0, high=1_000),
    Field("tractor", "bool"),
    Field("monthly_income", "float", required=False, low=0, high=100_000_000),  # declared by the family
]}

INDIVIDUAL_FIELDS: dict[str, Field] = {f.name: f for f in [
    Field("full_name", "text", max_len=80, words=True),
    Field("father_husband_name", "text", required=False, max_len=80, words=True),
    _choice("sex", vocab.SEX),
    Field("date_of_birth", "date"),
    _choice("relation_to_head", vocab.RELATION),
    _choice("marital_status", vocab.MARITAL),
    _choice("disability", vocab.DISABILITY),
    _choice("education", vocab.EDUCATION),
    Field("enrolled_in_school", "bool"),
    Field("occupation", "text", required=False, max_len=60, words=True),
    _choice("labour_status", vocab.LABOUR),
    _choice("maternal_status", vocab.MATERNAL, required=False),
    Field("phone", "text", required=False, max_len=13),
]}

# a death is a date field of its own (refused in the future, like a birth), checked against the birth
DATE_OF_DEATH = Field("date_of_death", "date", required=False)

# the registry's records start in the 20th century; a change takes effect at the latest tomorrow (a
# change keyed in just after midnight in Pakistan may carry the next day's date on a server in UTC)
EARLIEST_EFFECTIVE = date(1900, 1, 1)
EFFECTIVE_GRACE_DAYS = 1

TRUE_WORDS = {"1", "true", "yes", "y", "t"}
FALSE_WORDS = {"0", "false", "no", "n", "f"}


_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"

# Control characters (C0, DEL, C1): a NUL cannot be stored by PostgreSQL and breaks an Excel sheet,
# and none belongs in a name, an address or a phone number.
CONTROL_CHARACTERS = r"[\x00-\x1f\x7f-\x9f]"
# What a spreadsheet reads as the start of a formula (OWASP CSV injection); tab and CR are control
# characters, refused above.
FORMULA_START = r"^[=+\-@]"


def as_text(raw) -> pa.Array:
    """Any column (Arrow or NumPy, text or typed) as trimmed text, with '' for empty."""
    arr = raw if isinstance(raw, (pa.Array, pa.ChunkedArray)) else pa.array(np.asarray(raw, dtype=object), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_boolean(arr.type):
        arr = pc.if_else(arr, "yes", "no")
    elif pa.types.is_date(arr.type) or pa.types.is_timestamp(arr.type):
        arr = pc.strftime(arr, format="%Y-%m-%d")
    elif not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    return pc.fill_null(pc.utf8_trim_whitespace(arr), "")


def parse_column(field: Field, raw) -> tuple[np.ndarray, np.ndarray]:
    """Parse a whole column into values; return (values, reason per row or None). No row loop:
    every rule is an Arrow or NumPy operation over the column."""
    text = as_text(raw)
    n = len(text)
    empty = pc.equal(text, "").to_numpy(zero_copy_only=False)
    ok = ~empty
    reason = np.full(n, None, dtype=object)
    if field.required:
        reason[empty] = "is required"
    values = np.full(n, None, dtype=object)
    if field.kind == "text":
        too_long = ok & (pc.utf8_length(text).to_numpy() > field.max_len)
        reason[too_long] = f"is longer than {field.max_len} characters"
        if field.words:
            formula = ok & pc.match_substring_regex(text, FORMULA_START).to_numpy(zero_copy_only=False)
            if formula.any():  # the error path: only refused rows are formatted
                first = pc.utf8_slice_codeunits(text, 0, 1).to_numpy(zero_copy_only=False)[formula]
                reason[formula] = ("may not begin with '" + first.astype(str).astype(object)
                                   + "': a spreadsheet would read it as a formula")
        control = ok & pc.match_substring_regex(text, CONTROL_CHARACTERS).to_numpy(zero_copy_only=False)
        if control.any():
            found = pc.extract_regex(text, f"(?P<c>{CONTROL_CHARACTERS})").field("c")
            reason[control] = [f"contains a control character (U+{ord(c):04X}), which a name, address or "
                               "number may not hold" for c in found.to_numpy(zero_copy_only=False)[control]]
        values[ok] = text.to_numpy(zero_copy_only=False)[ok]
    elif field.kind == "choice":
        low = pc.utf8_lower(text)
        good = pc.is_in(low, value_set=pa.array(field.choices)).to_numpy(zero_copy_only=False)
        reason[ok & ~good] = "must be " + field.describe()
        values[ok & good] = low.to_numpy(zero_copy_only=False)[ok & good]
    elif field.kind == "bool":
        low = pc.utf8_lower(text)
        t = pc.is_in(low, value_set=pa.array(sorted(TRUE_WORDS))).to_numpy(zero_copy_only=False)
        f = pc.is_in(low, value_set=pa.array(sorted(FALSE_WORDS))).to_numpy(zero_copy_only=False)
        reason[ok & ~(t | f)] = "must be yes or no"
        values[ok & t] = True
        values[ok & f] = False
    elif field.kind in ("int", "float"):
        is_num = pc.match_substring_regex(text, _NUMBER)
        num = pc.cast(pc.if_else(is_num, text, pa.scalar(None, pa.string())), pa.float64()).to_numpy(zero_copy_only=False)
        bad = ok & ~is_num.to_numpy(zero_copy_only=False)
        reason[bad] = "must be a number"
        with np.errstate(invalid="ignore"):
            out_of_range = ok & ~bad & ((num < field.low) | (num > field.high))
            reason[out_of_range] = "must be " + field.describe()
            if field.kind == "int":
                reason[ok & ~bad & ~out_of_range & (num != np.floor(num))] = "must be a whole number"
        good = ok & np.equal(reason, None)
        values[good] = num[good].astype(int).astype(object) if field.kind == "int" else num[good].astype(object)
    elif field.kind == "date":
        stamp = pc.strptime(pc.utf8_slice_codeunits(text, 0, 10), format="%Y-%m-%d", unit="s", error_is_null=True)
        parsed = pc.cast(stamp, pa.date32())
        bad = ok & pc.is_null(parsed).to_numpy(zero_copy_only=False)
        reason[bad] = "must be a date written YYYY-MM-DD"
        future = ok & ~bad & pc.fill_null(pc.greater(parsed, pa.scalar(date.today())), False).to_numpy(zero_copy_only=False)
        reason[future] = "is in the future"
        good = ok & np.equal(reason, None)
        values[good] = np.asarray(parsed.to_pylist(), dtype=object)[good]
    return values, reason


def check_effective_date(when: date) -> date:
    """When a change took effect: not before 1900, not after tomorrow. A change dated 9999-01-01 would
    hold every later correction back as "late news" forever."""
    latest = date.today() + timedelta(days=EFFECTIVE_GRACE_DAYS)
    if not EARLIEST_EFFECTIVE <= when <= latest:
        raise ValueError(f"effective_date {when.isoformat()} must be from {EARLIEST_EFFECTIVE.isoformat()} "
                         f"to {latest.isoformat()}")
    return when


def check_death(date_of_death: date | None, date_of_birth: date | None) -> None:
    """A death is not dated before the person's birth."""
    if date_of_death is not None and date_of_birth is not None and date_of_death < date_of_birth:
        raise ValueError(f"date_of_death {date_of_death.isoformat()} is before the person was born "
                         f"({date_of_birth.isoformat()})")


def check_value(field: Field, raw: object) -> object:
    """Parse one value as :func:`parse_column` would; raise ValueError with the reason."""
    values, reasons = parse_column(field, pa.array([None if raw is None else str(raw)], pa.string()))
    if reasons[0] is not None:
        raise ValueError(f"{field.name} {reasons[0]}")
    return values[0]
