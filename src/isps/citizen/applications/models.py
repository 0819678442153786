"""Tables of the One Window's applications: the application, its steps (each with an owner, a
service-level due time and an escalation level) and its history (never updated).

Keyed by registry ids without foreign keys into the registry (as the feeds' and labour's tables
are), so the branch lands on its own; ``district_id`` on every row for scoped lists.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, DateTime, ForeignKey, Index, SmallInteger, String, \
    UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId


class Application(Base):
    """One application made at the One Window (or by web, SMS, a survey team), from its receipt to
    its final disposal."""

    __tablename__ = "application"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(12))                # registration | program | change | referral
    channel: Mapped[str] = mapped_column(String(8))              # counter | web | sms | survey
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | disposed
    step: Mapped[str | None] = mapped_column(String(20), nullable=True)  # the open step's name (lists filter on it)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    household_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    individual_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    program_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    applicant_name: Mapped[str] = mapped_column(String(80))
    phone: Mapped[str | None] = mapped_column(String(13), nullable=True, index=True)
    details: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    evidence: Mapped[list | None] = mapped_column(JSON, nullable=True)
    referred_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    opened_by: Mapped[str] = mapped_column(String(80))
    opened_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    disposal: Mapped[str | None] = mapped_column(String(12), nullable=True)
    disposal_reason: Mapped[str | None] = mapped_column(String(400), nullable=True)
    disposed_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    disposed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    change_request_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)

    __table_args__ = (Index("ix_application_district_status", "district_id", "status", "id"),)


class ApplicationStep(Base):
    """One step of an application: who owns it (a role, then a person once taken), when it is due,
    when and by whom it was done, with what outcome; escalated one level up the hierarchy when late."""

    __tablename__ = "application_step"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id"))
    district_id: Mapped[int] = mapped_column(SmallInteger)
    seq: Mapped[int] = mapped_column(SmallInteger)
    name: Mapped[str] = mapped_column(String(20))
    owner_role: Mapped[str] = mapped_column(String(20))
    owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    due_at: Mapped[datetime] = mapped_column(DateTime)
    done_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    done_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    note: Mapped[str | None] = mapped_column(String(400), nullable=True)
    visit_on: Mapped[date | None] = mapped_column(Date, nullable=True)  # a survey visit's date, when scheduled
    escalation_level: Mapped[int] = mapped_column(SmallInteger, default=0)

    __table_args__ = (UniqueConstraint("application_id", "seq", name="uq_application_step_application_id"),
                      # the open steps that are late, found from the index (the worker, the home page)
                      Index("ix_application_step_open_due", "done_at", "due_at"))


class ApplicationEvent(Base):
    """The application's history: every step done, escalation, note, visit and the disposal."""

    __tablename__ = "application_event"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(80))
    what: Mapped[str] = mapped_column(String(20))
    step: Mapped[str | None] = mapped_column(String(20), nullable=True)
    detail: Mapped[str | None] = mapped_column(String(400), nullable=True)


TABLES = ("application", "application_step", "application_event")
