"""Enrolment, waiting lists, cycles, entitlements, compliance, graduation and referrals.

Every table is keyed by ``program_code`` (the codes of the eligibility rules and of the
program catalogue). ``individual_id`` is 0 for a household-unit enrolment, as in
``eligibility_result``; ``recipient_id`` is the person who receives the money.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (JSON, BigInteger, Boolean, Date, DateTime, Float, Index, Integer, SmallInteger, String,
                        UniqueConstraint, func)
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId


class EnrolmentPolicy(Base):
    """How a program enrols and pays: capacity (slots, budget per cycle), quotas, incompatible
    programs, ranking of the waiting list, amount rule, conditions, graduation and referral."""

    __tablename__ = "enrolment_policy"
    program_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    unit: Mapped[str] = mapped_column(String(10))  # household | member
    frequency: Mapped[str] = mapped_column(String(12))  # monthly | quarterly | once | semester
    slots: Mapped[int | None] = mapped_column(Integer, nullable=True)
    budget_per_cycle: Mapped[float | None] = mapped_column(Float, nullable=True)
    spec: Mapped[dict] = mapped_column(JSON)  # amount, quotas, incompatible, rank_by, conditions, graduation
    updated_by: Mapped[str] = mapped_column(String(60))
    updated_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class Enrolment(Base):
    __tablename__ = "enrolment"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    program_code: Mapped[str] = mapped_column(String(40))
    household_id: Mapped[int] = mapped_column(BigInteger)
    individual_id: Mapped[int] = mapped_column(BigInteger)  # 0: the household is the unit
    recipient_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    tehsil_id: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(12))  # waiting | enrolled | suspended | exited | graduated | deceased
    rank_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    female: Mapped[bool] = mapped_column(Boolean)
    disabled: Mapped[bool] = mapped_column(Boolean)
    channel: Mapped[str] = mapped_column(String(14))  # bank | mobile_wallet | agent | cash_outlet | post
    account: Mapped[str | None] = mapped_column(String(34), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(13), nullable=True)
    run_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    warnings: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    listed_on: Mapped[date] = mapped_column(Date)
    enrolled_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    ended_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)

    __table_args__ = (
        UniqueConstraint("program_code", "household_id", "individual_id", name="uq_enrolment_person"),
        Index("ix_enrolment_program_status", "program_code", "status", "rank_value"),
        Index("ix_enrolment_program_status_id", "program_code", "status", "id"),  # keyset pages and totals
        # the other orders a list offers (programs.enrolment.SORTS): (sort value, id) keysets
        Index("ix_enrolment_sort_district", "program_code", "status", "district_id", "id"),
        Index("ix_enrolment_sort_listed", "program_code", "status", "listed_on", "id"),
        Index("ix_enrolment_sort_enrolled", "program_code", "status", "enrolled_on", "id"),
        Index("ix_enrolment_household", "household_id"),
        Index("ix_enrolment_recipient", "recipient_id"),
        Index("ix_enrolment_district_status", "district_id", "status", "program_code"),  # a district's counts (home)
    )


class EnrolmentCount(Base):
    """How many enrolments each program has per district and status, kept by the database itself
    (triggers of migration ``0015_enrolment_counts``, in the transaction that changes ``enrolment``):
    the totals above a program's lists read a few rows here instead of counting a million
    enrolments on every request. :mod:`isps.programs.counts` reads it, checks it and rebuilds it."""

    __tablename__ = "enrolment_count"
    program_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    district_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(12), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class EnrolmentEvent(Base):
    """Every change of an enrolment's status, with its reason: the history a grievance reads."""

    __tablename__ = "enrolment_event"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    enrolment_id: Mapped[int] = mapped_column(BigInteger, index=True)
    program_code: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(60))
    on_date: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class BenefitCycle(Base):
    """One payment period of a program. Once approved its entitlements are frozen: the policy used
    is kept in ``policy_snapshot`` and the entitlements' count, total and checksum are recorded."""

    __tablename__ = "benefit_cycle"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    program_code: Mapped[str] = mapped_column(String(40))
    period: Mapped[str] = mapped_column(String(12))  # 2026-07 | 2026-Q3
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10))  # draft | approved
    policy_snapshot: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    entitlements: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[float] = mapped_column(Float, default=0)
    checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_by: Mapped[str] = mapped_column(String(60))
    approved_by: Mapped[str | None] = mapped_column(String(60), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (UniqueConstraint("program_code", "period", name="uq_benefit_cycle_period"),)


class Entitlement(Base):
    __tablename__ = "entitlement"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cycle_id: Mapped[int] = mapped_column(BigInteger)
    enrolment_id: Mapped[int] = mapped_column(BigInteger)
    program_code: Mapped[str] = mapped_column(String(40))
    household_id: Mapped[int] = mapped_column(BigInteger)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    base_amount: Mapped[float] = mapped_column(Float)
    top_up: Mapped[float] = mapped_column(Float, default=0)
    amount: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("cycle_id", "enrolment_id", name="uq_entitlement_cycle_enrolment"),)


class ComplianceRecord(Base):
    """Whether a condition of a conditional transfer was met in a cycle (school attendance, health visit)."""

    __tablename__ = "compliance_record"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    enrolment_id: Mapped[int] = mapped_column(BigInteger)
    cycle_id: Mapped[int] = mapped_column(BigInteger)
    condition: Mapped[str] = mapped_column(String(30))  # school_attendance | health_visit
    met: Mapped[bool] = mapped_column(Boolean)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)  # e.g. attendance share
    consequence: Mapped[str | None] = mapped_column(String(12), nullable=True)  # warning | suspension
    recorded_by: Mapped[str] = mapped_column(String(60))

    __table_args__ = (UniqueConstraint("enrolment_id", "cycle_id", "condition", name="uq_compliance_once"),)


class Referral(Base):
    """A graduate (or anyone) referred from one program to another suited to their needs."""

    __tablename__ = "referral"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    from_program: Mapped[str] = mapped_column(String(40))
    to_program: Mapped[str] = mapped_column(String(40))
    household_id: Mapped[int] = mapped_column(BigInteger)
    individual_id: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(20))  # listed | duplicate | incompatible
    on_date: Mapped[date] = mapped_column(Date)

    __table_args__ = (UniqueConstraint("from_program", "to_program", "household_id", "individual_id",
                                       name="uq_referral_once"),)


class EnrolmentRefusal(Base):
    """A household or person the enrolment filter kept off a program because of another program they
    already receive: ``rule`` is ``same_kind`` (both pay for one need), ``incompatible`` (a pair the
    catalogue forbids) or ``ceiling`` (the household's yearly value from all programs would pass the
    catalogue's ceiling). ``source`` says where the other benefit was found: ``enrolment`` (an ISPS
    enrolment, ``other_ref`` its id) or ``list`` (a partner's beneficiary line, ``other_ref`` its id,
    with the list's batch and the partner's own reference kept, so the reason can name them even
    if the line is later replaced). Read by the enrolment and household pages."""

    __tablename__ = "enrolment_refusal"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    program_code: Mapped[str] = mapped_column(String(40))
    run_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    household_id: Mapped[int] = mapped_column(BigInteger)
    individual_id: Mapped[int] = mapped_column(BigInteger)  # 0: the household is the unit
    person_individual_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # who was checked
    district_id: Mapped[int] = mapped_column(SmallInteger)
    rule: Mapped[str] = mapped_column(String(12))  # same_kind | incompatible | ceiling
    other_program: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(10))  # enrolment | list
    other_ref: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    batch_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    partner_ref: Mapped[str | None] = mapped_column(String(60), nullable=True)
    yearly_value: Mapped[float | None] = mapped_column(Float, nullable=True)  # the household's, for ``ceiling``
    actor: Mapped[str] = mapped_column(String(60))
    on_date: Mapped[date] = mapped_column(Date)

    __table_args__ = (
        Index("ix_enrolment_refusal_program", "program_code", "id"),
        Index("ix_enrolment_refusal_household", "household_id"),
    )
