"""Grievances and their history.

``grievance`` holds a complaint's current state (who owns it, at which level of the hierarchy, when
it is due, how it was resolved); ``grievance_event`` is its history: every filing, routing,
assignment, escalation, note, resolution, confirmation and reopening, written once and never
updated or deleted, so that a reopened grievance keeps everything that happened before.

Every open grievance has an owner: a CHECK constraint holds it (``status`` resolved or closed, or
``owner`` not null), and :mod:`isps.citizen.grievances.routing` always finds one (a grievance
officer of the district, else its district officer, else a program manager, else an administrator).
Registry, payment and outlet ids are kept without foreign keys, as the other capabilities' tables
are, so that this branch of migrations lands on its own.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, SmallInteger, String, func
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId

OPEN_STATUSES = ("open", "reopened")
STATUSES = ("open", "resolved", "closed", "reopened")


class Grievance(Base):
    __tablename__ = "grievance"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(12))
    category: Mapped[str] = mapped_column(String(24))
    description: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(10))  # open | resolved | closed | reopened
    district_id: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)  # None: district unknown
    agency: Mapped[str | None] = mapped_column(String(120), nullable=True)
    program_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    household_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    individual_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    phone: Mapped[str | None] = mapped_column(String(16), nullable=True)
    complainant_name: Mapped[str | None] = mapped_column(String(120), nullable=True)
    payment_instruction_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    outlet_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    change_request_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # an appeal it started
    owner: Mapped[str | None] = mapped_column(String(60), nullable=True)
    level: Mapped[int] = mapped_column(SmallInteger)  # 1 grievance officer .. 4 administrator
    due_at: Mapped[datetime] = mapped_column(DateTime)
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    opened_by: Mapped[str] = mapped_column(String(60))
    resolution: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    root_cause: Mapped[str | None] = mapped_column(String(24), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(60), nullable=True)
    citizen_confirmed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reopen_count: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    lang: Mapped[str] = mapped_column(String(2), default="ur", server_default="ur")  # the SMS language

    __table_args__ = (
        CheckConstraint("status IN ('resolved', 'closed') OR owner IS NOT NULL", name="owner"),
        CheckConstraint("status IN ('open', 'resolved', 'closed', 'reopened')", name="status"),
        Index("ix_grievance_owner", "owner", "status"),
        Index("ix_grievance_district", "district_id", "status", "id"),
        Index("ix_grievance_due", "status", "due_at"),
        Index("ix_grievance_household", "household_id"),
        Index("ix_grievance_phone", "phone"),
        Index("ix_grievance_outlet", "outlet_id"),
    )


class GrievanceEvent(Base):
    """One thing that happened to a grievance. Written once, never changed."""

    __tablename__ = "grievance_event"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    grievance_id: Mapped[int] = mapped_column(BigInteger)
    # filed | routed | assigned | escalated | note | reassessment | resolved | confirmed | reopened | reassigned
    kind: Mapped[str] = mapped_column(String(14))
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(60))
    from_owner: Mapped[str | None] = mapped_column(String(60), nullable=True)
    to_owner: Mapped[str | None] = mapped_column(String(60), nullable=True)
    from_level: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    to_level: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    note: Mapped[str | None] = mapped_column(String(1000), nullable=True)

    __table_args__ = (Index("ix_grievance_event_grievance", "grievance_id", "id"),)


TABLES = ("grievance", "grievance_event")
