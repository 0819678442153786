"""Tables of the alternatives to PMT targeting: administrative means tests (electricity
consumption and telecom spending) and digital applications validated by a community
committee.

Every selection carries its ``targeting_method`` so that reports count community-validated,
means-tested and PMT-based selections apart.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Float, ForeignKey, Index, Integer, SmallInteger, String, func
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId


class ElectricityReading(Base):
    """Units (kWh) billed to a household's meter in a month, as reported by its distribution company."""

    __tablename__ = "electricity_reading"
    household_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # first day of the billing month
    district_id: Mapped[int] = mapped_column(SmallInteger)
    units: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(20))      # disco | synthetic | import
    reference: Mapped[str] = mapped_column(String(60))   # the DISCO (LESCO, FESCO, ...) or its file
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class TelecomSpend(Base):
    """What a household's SIMs on one operator spent in a month (PKR), from operator billing."""

    __tablename__ = "telecom_spend"
    household_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    operator: Mapped[str] = mapped_column(String(12), primary_key=True)  # Jazz | Zong | Telenor | Ufone
    district_id: Mapped[int] = mapped_column(SmallInteger)
    amount_pkr: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(20))
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class MeansTestRun(Base):
    __tablename__ = "means_test_run"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    targeting_method: Mapped[str] = mapped_column(String(30))  # electricity_means_test | telecom_means_test
    through_month: Mapped[date] = mapped_column(Date)           # last month of the window
    months: Mapped[int] = mapped_column(SmallInteger)
    threshold: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(60))
    started_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    evaluated: Mapped[int] = mapped_column(Integer, default=0)
    eligible: Mapped[int] = mapped_column(Integer, default=0)
    insufficient: Mapped[int] = mapped_column(Integer, default=0)


class MeansTestResult(Base):
    __tablename__ = "means_test_result"
    run_id: Mapped[int] = mapped_column(ForeignKey("means_test_run.id"), primary_key=True)
    household_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(20))  # eligible | not_eligible | insufficient_data
    average: Mapped[float | None] = mapped_column(Float, nullable=True)  # over the months found
    months_found: Mapped[int] = mapped_column(SmallInteger)

    __table_args__ = (Index("ix_means_test_result_run_district", "run_id", "district_id", "status"),)


class CommunityApplication(Base):
    """A digital application (web or SMS), validated or rejected by a community committee."""

    __tablename__ = "community_application"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    targeting_method: Mapped[str] = mapped_column(String(30), default="community_validation")
    cnic: Mapped[str] = mapped_column(String(13), index=True)
    full_name: Mapped[str] = mapped_column(String(80))
    father_husband_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(13), nullable=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("district.id"))
    tehsil_id: Mapped[int] = mapped_column(ForeignKey("tehsil.id"))
    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"), nullable=True)
    channel: Mapped[str] = mapped_column(String(6))  # web | sms
    submitted_at: Mapped[datetime] = mapped_column(DateTime)
    entered_by: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(10), default="submitted")  # submitted | validated | rejected
    committee: Mapped[str | None] = mapped_column(String(120), nullable=True)
    validated_by: Mapped[str | None] = mapped_column(String(60), nullable=True)
    validated_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    note: Mapped[str] = mapped_column(String(400), default="")

    __table_args__ = (Index("ix_community_application_district_status", "district_id", "status"),)
