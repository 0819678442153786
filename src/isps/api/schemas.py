"""Pydantic shapes of the API's answers."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _utc(value: datetime) -> datetime:
    """The database keeps times without a zone, in UTC; an answer says so (RFC 3339 ``date-time``
    needs the offset, and a partner must not guess whether 10:00 is Lahore's or Greenwich's)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    role: str
    district_id: int | None


class Member(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    roster_line: int
    cnic: str | None = Field(description="13 digits; shown whole only on a person's own record, which is audited")
    id_document: str | None
    full_name: str
    father_husband_name: str | None
    sex: str
    date_of_birth: date
    relation_to_head: str
    marital_status: str
    disability: str
    education: str
    enrolled_in_school: bool
    occupation: str | None
    labour_status: str
    phone: str | None
    date_of_death: date | None


class Score(BaseModel):
    model: str
    model_version: int
    score: float
    scored_at: UtcDatetime


class Household(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    ref: str
    district_id: int
    district: str
    tehsil_id: int
    tehsil: str
    uc_id: int | None
    urban: bool
    address: str
    tenure: str
    rooms: int
    roof: str
    wall: str
    toilet: str
    drinking_water: str
    electricity: bool
    cooking_fuel: str
    fridge: bool
    freezer: bool
    air_conditioner: bool
    air_cooler: bool
    washing_machine: bool
    television: bool
    motorcycle: bool
    car: bool
    computer: bool
    land_acres: float
    cattle: int
    goats_sheep: int
    tractor: bool
    surveyed_on: date
    verified_on: date
    version: int
    pmt: Score | None
    members: list[Member]


class Person(Member):
    household_id: int
    district_id: int


class HouseholdRow(BaseModel):
    id: int
    ref: str
    district_id: int
    tehsil_id: int
    urban: bool
    address: str
    score: float | None
    head_name: str | None
    head_cnic_masked: str


class HouseholdPage(BaseModel):
    items: list[HouseholdRow]
    next_after: int | None = Field(description="pass as ?after= to get the next page; null on the last page")


class HistoryEntry(BaseModel):
    effective_date: date
    recorded_at: UtcDatetime
    source: str
    actor: str
    what: str
    field: str | None
    old_value: str | None
    new_value: str | None
    person: str | None
    source_ref: str | None


class KnownValue(BaseModel):
    value: str | None
    source: str
    since: date


class Snapshot(BaseModel):
    household_id: int
    on: date
    known_by: UtcDatetime
    household: dict[str, KnownValue]
    members: dict[int, dict[str, KnownValue]]


class HouseholdChange(BaseModel):
    """A user's edit. There is no ``source``: a user's edit is always kept with the source of a
    user's channel (``operator``); data providers' sources (NADRA, utilities...) arrive only
    through the feeds. A body naming ``source`` (or any other unknown field) is refused (422)."""

    # JSON's 1e999 reads as inf: not a number a field takes
    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")
    changes: dict[str, str | int | float | bool | None] = Field(
        description="field name to new value, e.g. {\"fridge\": true, \"rooms\": 3}")
    effective_date: date | None = Field(None, description="when the change took effect: from 1900-01-01 to tomorrow")
    source_ref: str | None = Field(None, max_length=200)


class ChangeResult(BaseModel):
    changed: list[str]
    pmt: Score | None


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: UtcDatetime
    actor: str
    role: str
    channel: str
    action: str
    entity: str
    entity_id: int | None
    district_id: int | None
    outcome: str
    detail: str | None
