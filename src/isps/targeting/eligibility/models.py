"""Eligibility rules as stored data, their runs, and each run's materialised decisions."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, SmallInteger, String, func
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId


class EligibilityRule(Base):
    """One version of a program's rule. ``spec`` holds the criteria (see ``data/rules/*.json``)."""

    __tablename__ = "eligibility_rule"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    program_code: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="active")  # draft | active | retired
    created_by: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class EligibilityRun(Base):
    __tablename__ = "eligibility_run"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("eligibility_rule.id"), index=True)
    on_date: Mapped[date] = mapped_column(Date)
    pmt_model_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    actor: Mapped[str] = mapped_column(String(60))
    started_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    evaluated: Mapped[int] = mapped_column(Integer, default=0)
    eligible: Mapped[int] = mapped_column(Integer, default=0)


class EligibilityResult(Base):
    """One decision: a household (``individual_id`` 0) or a member. ``failed`` is a bit mask of the
    rule's criteria that were not met, so the reason can be told in any language later. On
    PostgreSQL the table is partitioned by run (migration 0011): a run over the whole registry or a
    district is built in bulk as a partition of its own, smaller runs share the default one."""

    __tablename__ = "eligibility_result"
    run_id: Mapped[int] = mapped_column(ForeignKey("eligibility_run.id"), primary_key=True)
    household_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    individual_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    eligible: Mapped[bool] = mapped_column(Boolean)
    failed: Mapped[int] = mapped_column(Integer)
    pmt: Mapped[float | None] = mapped_column(Float, nullable=True)
    age: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    monthly_income: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_eligibility_result_run_district", "run_id", "district_id", "eligible"),)
