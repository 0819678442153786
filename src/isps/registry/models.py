"""The registry's tables: geography, households, individuals and the provenance of every value.

Current state lives in ``household`` and ``individual`` (fast to read); every
change after a record first lands is kept in ``value_change`` with its source,
effective date and recorded time, and the first values carry the ``ingest_batch``
they came in. Together they answer "what did we know on date D, and from whom".

Every large table carries ``district_id``: the shard key. Household ids are
allocated in per-district ranges (see :mod:`isps.registry.ids`), so PostgreSQL can
range-partition ``household`` and ``individual`` by district, and Citus can
co-locate a household with its members.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (JSON, BigInteger, Boolean, Date, DateTime, Float, ForeignKey, Index,
                        Integer, SmallInteger, String, Text, func, text)
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId
from isps.registry.current import CURRENT


class Division(Base):
    __tablename__ = "division"
    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    name_ur: Mapped[str] = mapped_column(String(60))


class District(Base):
    __tablename__ = "district"
    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    division_id: Mapped[int] = mapped_column(ForeignKey("division.id"))
    name: Mapped[str] = mapped_column(String(60), unique=True)
    name_ur: Mapped[str] = mapped_column(String(60))
    population_2017_m: Mapped[float] = mapped_column(Float)
    urban_share: Mapped[float] = mapped_column(Float)


class Tehsil(Base):
    __tablename__ = "tehsil"
    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("district.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    name_ur: Mapped[str | None] = mapped_column(String(60), nullable=True)  # migration 0015_tehsil_name_ur


class UnionCouncil(Base):
    __tablename__ = "union_council"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tehsil_id: Mapped[int] = mapped_column(ForeignKey("tehsil.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))


class IngestBatch(Base):
    """One arrival of data: a survey load, a file import, a feed delivery, an operator's edit."""

    __tablename__ = "ingest_batch"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(200))
    effective_date: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    actor: Mapped[str] = mapped_column(String(80))
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class Household(Base):
    __tablename__ = "household"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ref: Mapped[str] = mapped_column(String(40), unique=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("district.id"))
    tehsil_id: Mapped[int] = mapped_column(ForeignKey("tehsil.id"))
    uc_id: Mapped[int | None] = mapped_column(ForeignKey("union_council.id"), nullable=True)
    urban: Mapped[bool] = mapped_column(Boolean)
    address: Mapped[str] = mapped_column(String(200))
    # Poverty Score Card: housing
    tenure: Mapped[str] = mapped_column(String(12))
    rooms: Mapped[int] = mapped_column(SmallInteger)
    roof: Mapped[str] = mapped_column(String(12))
    wall: Mapped[str] = mapped_column(String(14))
    toilet: Mapped[str] = mapped_column(String(8))
    drinking_water: Mapped[str] = mapped_column(String(12))
    electricity: Mapped[bool] = mapped_column(Boolean)
    cooking_fuel: Mapped[str] = mapped_column(String(10))
    # durables
    fridge: Mapped[bool] = mapped_column(Boolean)
    freezer: Mapped[bool] = mapped_column(Boolean)
    air_conditioner: Mapped[bool] = mapped_column(Boolean)
    air_cooler: Mapped[bool] = mapped_column(Boolean)
    washing_machine: Mapped[bool] = mapped_column(Boolean)
    television: Mapped[bool] = mapped_column(Boolean)
    motorcycle: Mapped[bool] = mapped_column(Boolean)
    car: Mapped[bool] = mapped_column(Boolean)
    computer: Mapped[bool] = mapped_column(Boolean)
    # productive assets
    land_acres: Mapped[float] = mapped_column(Float)
    cattle: Mapped[int] = mapped_column(SmallInteger)
    goats_sheep: Mapped[int] = mapped_column(SmallInteger)
    tractor: Mapped[bool] = mapped_column(Boolean)
    # declared by the family (scholarship and One Window applications); the PSC does not ask it
    monthly_income: Mapped[float | None] = mapped_column(Float, nullable=True)
    # provenance of the first values and of the last verification
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batch.id"))
    surveyed_on: Mapped[date] = mapped_column(Date)
    verified_on: Mapped[date] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __table_args__ = (
        Index("ix_household_district_tehsil", "district_id", "tehsil_id", "id"),
        # households due for re-certification and the verified share, counted from the index (home page)
        Index("ix_household_district_verified", "district_id", "verified_on"),
    )


class Individual(Base):
    __tablename__ = "individual"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    roster_line: Mapped[int] = mapped_column(SmallInteger)  # line on the household's roster, 1 = head
    cnic: Mapped[str | None] = mapped_column(String(13), nullable=True, index=True)
    id_document: Mapped[str | None] = mapped_column(String(6), nullable=True)  # cnic | bform
    full_name: Mapped[str] = mapped_column(String(80))
    father_husband_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    sex: Mapped[str] = mapped_column(String(12))
    date_of_birth: Mapped[date] = mapped_column(Date)
    relation_to_head: Mapped[str] = mapped_column(String(16))
    marital_status: Mapped[str] = mapped_column(String(14))
    disability: Mapped[str] = mapped_column(String(12))
    education: Mapped[str] = mapped_column(String(14))
    enrolled_in_school: Mapped[bool] = mapped_column(Boolean)
    occupation: Mapped[str | None] = mapped_column(String(60), nullable=True)
    labour_status: Mapped[str] = mapped_column(String(20))
    maternal_status: Mapped[str | None] = mapped_column(String(10), nullable=True)  # pregnant | lactating
    phone: Mapped[str | None] = mapped_column(String(13), nullable=True)
    date_of_death: Mapped[date | None] = mapped_column(Date, nullable=True)
    # left the household alive (married away, migrated, whereabouts unknown, entered in error): kept on
    # record, no longer a current member (isps.registry.current; migration 0016_onewindow)
    left_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    left_reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    member_since: Mapped[date] = mapped_column(Date)
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batch.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    # the dead, found without reading everyone (migration 0012): payments check them before every export
    __table_args__ = (Index("ix_individual_deceased", "id", sqlite_where=text("date_of_death IS NOT NULL"),
                            postgresql_where=text("date_of_death IS NOT NULL")),
                      # the current members of a district, counted from the index (home page, migrations
                      # 0015_home_counts, 0016_onewindow: the predicate of isps.registry.current)
                      Index("ix_individual_district_alive", "district_id", sqlite_where=text(CURRENT),
                            postgresql_where=text(CURRENT)),
                      # One Window finds a citizen by mobile number (migration 0016_onewindow)
                      Index("ix_individual_phone", "phone"))


class ValueChange(Base):
    """One field of one record changed: old and new value, who said so, for when, and when we learnt it."""

    __tablename__ = "value_change"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(12))  # household | individual
    entity_id: Mapped[int] = mapped_column(BigInteger)
    household_id: Mapped[int] = mapped_column(BigInteger, index=True)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    field: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    new_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(String(20))
    source_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    effective_date: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    actor: Mapped[str] = mapped_column(String(80))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_batch.id"), nullable=True)

    __table_args__ = (Index("ix_value_change_entity", "entity", "entity_id"),)


class HouseholdConsumption(Base):
    """Measured (or, in synthetic data, true) consumption per adult equivalent per month, in PKR.

    Stands in for a household income and expenditure survey: PMT models are fitted
    and judged against it, never scored from it.
    """

    __tablename__ = "household_consumption"
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), primary_key=True)
    consumption_pae: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(20))


class OutboxEvent(Base):
    """A domain event recorded in the same transaction as the change that caused it.

    Lower modules (the registry) never call higher ones (targeting, programs,
    payments); each of those reads the events after its own cursor.
    """

    __tablename__ = "outbox_event"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(60), index=True)
    aggregate: Mapped[str] = mapped_column(String(20))
    aggregate_id: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class OutboxCursor(Base):
    """How far each consumer has read the outbox."""

    __tablename__ = "outbox_cursor"
    consumer: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
