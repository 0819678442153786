"""Tables of the data feeds, source precedence, conflicts, exclusion flags, accounts,
change requests and re-certification flags.

A delivery is one file or API batch of one feed (``feed_delivery``, unique by feed and the
sender's reference); each record it carried is remembered by its own source reference
(``feed_record``), so re-delivering a file or a record changes nothing.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, SmallInteger, String, \
    Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId


class FeedDelivery(Base):
    __tablename__ = "feed_delivery"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    feed: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(80))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_batch.id"), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    records: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (UniqueConstraint("feed", "reference", name="uq_feed_delivery_feed_reference"),)


class FeedRejection(Base):
    """One refused row of a delivery and why, written in the delivery's own transaction, so that its
    row report can be read (and downloaded) later, not only by whoever sent it."""

    __tablename__ = "feed_rejection"
    delivery_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)   # order in the report
    row: Mapped[int] = mapped_column(Integer)
    record_ref: Mapped[str] = mapped_column(String(80))
    field: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(300))


class FeedRecord(Base):
    """A record already applied, by the sender's own reference (idempotency per record)."""

    __tablename__ = "feed_record"
    feed: Mapped[str] = mapped_column(String(20), primary_key=True)
    source_ref: Mapped[str] = mapped_column(String(80), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger)


class SourcePrecedence(Base):
    """Declared precedence of sources per field: a higher rank is believed over a lower one.
    ``field = '*'`` is the default for fields without rows of their own."""

    __tablename__ = "source_precedence"
    field: Mapped[str] = mapped_column(String(40), primary_key=True)
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    rank: Mapped[int] = mapped_column(SmallInteger)


class SourceConflict(Base):
    """A value offered by a lower-precedence source that the registry did not take."""

    __tablename__ = "source_conflict"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(12))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    household_id: Mapped[int] = mapped_column(BigInteger)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    field: Mapped[str] = mapped_column(String(40))
    kept_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    kept_source: Mapped[str] = mapped_column(String(20))
    kept_since: Mapped[date | None] = mapped_column(Date, nullable=True)
    offered_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    offered_source: Mapped[str] = mapped_column(String(20))
    offered_effective: Mapped[date] = mapped_column(Date)
    source_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | resolved
    resolved_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(400), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (Index("ix_source_conflict_district_status", "district_id", "status", "id"),)


class ExclusionFlag(Base):
    """A person excluded from targeted programs (a public-sector employee on a payroll)."""

    __tablename__ = "exclusion_flag"
    individual_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reason: Mapped[str] = mapped_column(String(30), primary_key=True)  # public_sector_employee
    household_id: Mapped[int] = mapped_column(BigInteger, index=True)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    detail: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))
    source_ref: Mapped[str] = mapped_column(String(200))
    effective_date: Mapped[date] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class FinancialAccount(Base):
    """A bank account (IBAN) or mobile wallet (number) held by a person."""

    __tablename__ = "financial_account"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(6))           # bank | wallet
    provider: Mapped[str] = mapped_column(String(40))
    account_number: Mapped[str] = mapped_column(String(34))
    individual_id: Mapped[int] = mapped_column(BigInteger, index=True)
    household_id: Mapped[int] = mapped_column(BigInteger, index=True)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    opened_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8))         # active | closed
    source_ref: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (UniqueConstraint("kind", "provider", "account_number", name="uq_financial_account_number"),)


class ChangeRequest(Base):
    """A change asked for by an operator or a citizen, with evidence, applied once a second
    person approves it (maker-checker)."""

    __tablename__ = "change_request"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(12))        # household | individual
    entity_id: Mapped[int] = mapped_column(BigInteger)
    household_id: Mapped[int] = mapped_column(BigInteger, index=True)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    changes: Mapped[dict] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(20))        # operator | self_report
    evidence: Mapped[str] = mapped_column(Text)
    evidence_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    effective_date: Mapped[date] = mapped_column(Date)
    requested_by: Mapped[str] = mapped_column(String(80))
    requested_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending | applied | rejected
    decided_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(String(400), nullable=True)
    applied_fields: Mapped[list | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (Index("ix_change_request_district_status", "district_id", "status", "id"),)


class RecertificationFlag(Base):
    """A household whose data were last verified too long ago, flagged for a visit."""

    __tablename__ = "recertification_flag"
    household_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    verified_on: Mapped[date] = mapped_column(Date)
    flagged_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="due")  # due | done

    __table_args__ = (Index("ix_recertification_flag_district_status", "district_id", "status"),)
