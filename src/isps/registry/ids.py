"""Identifiers allocated in per-district ranges.

A household's id is ``district_id * 10**10 + n`` and an individual's is
``district_id * 10**11 + n``. Range partitioning by id is then partitioning by
district, and an id says where its record is stored without a look-up. Two
concurrent allocations in one district collide on the primary key and the losing
transaction is retried by its caller; bulk loads allocate whole ranges at once.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from isps.registry.models import Household, Individual

HOUSEHOLD_RANGE = 10**10
INDIVIDUAL_RANGE = 10**11


def district_of_household(household_id: int) -> int:
    return household_id // HOUSEHOLD_RANGE


def next_household_ids(session: Session, district_id: int, count: int = 1) -> list[int]:
    lo = district_id * HOUSEHOLD_RANGE
    current = session.scalar(select(func.max(Household.id)).where(Household.id >= lo, Household.id < lo + HOUSEHOLD_RANGE))
    start = (current or lo) + 1
    return list(range(start, start + count))


def next_individual_ids(session: Session, district_id: int, count: int = 1) -> list[int]:
    lo = district_id * INDIVIDUAL_RANGE
    current = session.scalar(select(func.max(Individual.id)).where(Individual.id >= lo, Individual.id < lo + INDIVIDUAL_RANGE))
    start = (current or lo) + 1
    return list(range(start, start + count))
