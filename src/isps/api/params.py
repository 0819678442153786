"""The API's parameter types, declared once so every route bounds its inputs the same way.

Ids and keyset cursors are 64-bit database keys: a larger number would overflow the driver (SQLite
``OverflowError``, PostgreSQL ``NumericValueOutOfRange``) and answer 500, so the type stops it with
a 422 naming the parameter. Page sizes start at 1 (a negative ``LIMIT`` means "no limit" on SQLite),
day counts and dates stay inside what ``datetime.date`` can subtract, free text is short enough for a
``LIKE`` pattern, and floats are finite (``inf``/``nan`` are numbers to Python but not to a rule).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Path, Query
from pydantic import ConfigDict

MAX_ID = 2**63 - 1          # the largest BIGINT key
MAX_DAYS = 36_500           # a hundred years: any longer look-back or grace period is a typing error
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2100, 12, 31)
NAME_MAX = 100              # a person's name as typed into a search box
TEXT_MAX = 200

Id = Annotated[int, Path(ge=1, le=MAX_ID, description="a record's id (1 to 2⁶³-1)")]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="a record's id (1 to 2⁶³-1)")]
After = Annotated[int | None, Query(ge=0, le=MAX_ID, description="keyset cursor: the last id of the previous page")]
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description=f"a number of days, 1 to {MAX_DAYS:,}")]
Day = Annotated[date | None, Query(ge=FIRST_DAY, le=LAST_DAY, description="a date from 1900-01-01 to 2100-12-31")]
RequiredDay = Annotated[date, Query(ge=FIRST_DAY, le=LAST_DAY, description="a date from 1900-01-01 to 2100-12-31")]
Name = Annotated[str | None, Query(max_length=NAME_MAX, description=f"part of a name, at most {NAME_MAX} characters")]
Text = Annotated[str | None, Query(max_length=TEXT_MAX)]
Finite = Annotated[float | None, Query(allow_inf_nan=False)]
Score = Annotated[float | None, Query(ge=0, le=100, allow_inf_nan=False, description="a PMT score on the 0-100 scale")]
Money = Annotated[float | None, Query(ge=0, le=1e13, allow_inf_nan=False, description="an amount in PKR")]


def Limit(high: int):  # noqa: N802 - a type factory, named like the types it makes
    """A page size from 1 to ``high``: the cap holds whatever the caller sends."""
    return Annotated[int, Query(ge=1, le=high, description=f"rows per page, 1 to {high}")]


# one record of a batch (a feed delivery, a partner's list, compliance): field names to plain values
Record = dict[str, str | int | float | bool | None]

# request bodies: numbers must be finite (JSON's 1e999 parses to inf) and text bounded by the field rules
BODY_CONFIG = ConfigDict(allow_inf_nan=False)
