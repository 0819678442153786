"""Tables of the Single Beneficiary Registry.

* ``beneficiary_batch``: one list received from a partner (API call or file), unique by the
  program and the partner's own reference, so a list sent twice is stored once.
* ``beneficiary``: one line of a partner's list, unique by (program, partner_ref); the fields as
  the partner wrote them, and the resolution: the registry individual it was linked to (if any),
  the person it belongs to, how (``cnic``, ``splink``, ``review``, ``operator``, ``none``) and
  with what match weight.
* ``person``: a stable person identifier. A person is created once and never renumbered: adding
  records only creates persons or adds records to existing ones; a merge keeps the older id and
  marks the other ``merged_into``; an unmerge restores it.
* ``match_candidate``: a scored pair (beneficiary, registry individual) with the field-by-field
  explanation of its match weight; ``status`` is ``linked``, ``review`` (the clerical queue),
  ``accepted``, ``rejected``.
* ``person_history``: every link, merge, unmerge and review decision, with actor and time.
* ``linkage_run``: one resolution run, its counts and the trained model's parameters.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (JSON, BigInteger, Date, DateTime, Float, ForeignKey, Index, Integer, SmallInteger,
                        String, UniqueConstraint, func, text)
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId
from isps.catalogue import Program  # noqa: F401  (the foreign key's table)


class BeneficiaryBatch(Base):
    __tablename__ = "beneficiary_batch"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    program_code: Mapped[str] = mapped_column(ForeignKey("program.code"))
    partner: Mapped[str] = mapped_column(String(80))
    reference: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(8))  # api | file
    actor: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (UniqueConstraint("program_code", "reference", name="uq_beneficiary_batch_reference"),)


class Beneficiary(Base):
    __tablename__ = "beneficiary"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    program_code: Mapped[str] = mapped_column(ForeignKey("program.code"))
    partner_ref: Mapped[str] = mapped_column(String(60))
    batch_id: Mapped[int] = mapped_column(ForeignKey("beneficiary_batch.id"))
    cnic: Mapped[str | None] = mapped_column(String(13), nullable=True, index=True)
    full_name: Mapped[str] = mapped_column(String(80))
    father_husband_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    sex: Mapped[str | None] = mapped_column(String(12), nullable=True)
    date_of_birth: Mapped[date | None] = mapped_column(Date, nullable=True)
    district_id: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    phone: Mapped[str | None] = mapped_column(String(13), nullable=True)
    yearly_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    # resolution
    individual_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    household_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    person_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    link_method: Mapped[str | None] = mapped_column(String(10), nullable=True)
    match_weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    run_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        UniqueConstraint("program_code", "partner_ref", name="uq_beneficiary_partner_ref"),
        # only the lines waiting for resolution: small, and free for lines resolved on arrival
        Index("ix_beneficiary_pending", "id", postgresql_where=text("run_id IS NULL"),
              sqlite_where=text("run_id IS NULL")),
        Index("ix_beneficiary_district", "district_id", "id"),  # a district's review queue (home page)
    )


class Person(Base):
    __tablename__ = "person"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    individual_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    cnic: Mapped[str | None] = mapped_column(String(13), nullable=True, index=True)
    origin_beneficiary_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    merged_into: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class MatchCandidate(Base):
    __tablename__ = "match_candidate"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    beneficiary_id: Mapped[int] = mapped_column(BigInteger, index=True)
    individual_id: Mapped[int] = mapped_column(BigInteger)
    match_weight: Mapped[float] = mapped_column(Float)
    match_probability: Mapped[float] = mapped_column(Float)
    explanation: Mapped[list] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10))  # linked | review | accepted | rejected
    run_id: Mapped[int] = mapped_column(BigInteger)
    decided_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (Index("ix_match_candidate_status", "status", "id"),
                      Index("ix_match_candidate_status_weight", "status", "match_weight", "id"))  # sorted by weight


class PersonHistory(Base):
    __tablename__ = "person_history"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(12))  # merge | unmerge | accept | reject
    person_id: Mapped[int] = mapped_column(BigInteger, index=True)
    other_person_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    detail: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    undone_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class LinkageRun(Base):
    __tablename__ = "linkage_run"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    counts: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    model: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    records: Mapped[int] = mapped_column(Integer, default=0)
