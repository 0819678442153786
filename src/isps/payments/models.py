"""Payrolls, payment instructions, status lines, the double-entry ledger, cash outlets and pickup slots.

Exactly once is held by the database, not by the code's care:

* ``payroll.cycle_id`` is unique: a cycle has one payroll, however often it is generated;
* ``payment_instruction`` has one row per (entitlement, attempt), and a partial unique index
  allows at most one *live* instruction (pending, sent, paid, unclaimed) per entitlement, so an
  entitlement can never be paid twice, even by a retry;
* ``payment_status_line.idem_key`` is unique: a status line (instruction, status, bank reference)
  is applied once, whichever file or import brings it again;
* ``payment_status_import.file_sha256`` is unique: a status file is imported once, however many
  people upload it at the same time;
* ``ledger_entry`` has a unique (``kind``, ``ref_id``): every movement is posted once;
* ``fund_release`` has a unique (``program_code``, ``reference``): a release is posted once.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (BigInteger, Boolean, Date, DateTime, Float, Index, Integer, SmallInteger, String, Text,
                        UniqueConstraint, func, text)
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId

LIVE = ("pending", "sent", "paid", "unclaimed")


class Payroll(Base):
    __tablename__ = "payroll"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cycle_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    program_code: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10))  # draft | approved | exported
    instructions: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[float] = mapped_column(Float, default=0)
    made_by: Mapped[str] = mapped_column(String(60))
    made_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    approved_by: Mapped[str | None] = mapped_column(String(60), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    exported_upto: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # last instruction id in a file


class PaymentInstruction(Base):
    __tablename__ = "payment_instruction"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    payroll_id: Mapped[int] = mapped_column(BigInteger)
    entitlement_id: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(SmallInteger)  # the ISO 20022 EndToEndId is E<entitlement_id>-<attempt>
    enrolment_id: Mapped[int] = mapped_column(BigInteger)
    program_code: Mapped[str] = mapped_column(String(40))
    district_id: Mapped[int] = mapped_column(SmallInteger)
    channel: Mapped[str] = mapped_column(String(14))
    biometric: Mapped[bool] = mapped_column(Boolean)  # pull channels: paid only after a fingerprint match
    amount: Mapped[float] = mapped_column(Float)
    # pending (issued; sent once its id is at or below payroll.exported_upto) | paid | failed | unclaimed |
    # reversed | returned | stopped (the beneficiary died before it was sent: money back to the fund)
    status: Mapped[str] = mapped_column(String(10))
    status_on: Mapped[date | None] = mapped_column(Date, nullable=True)

    __table_args__ = (
        UniqueConstraint("entitlement_id", "attempt", name="uq_payment_instruction_attempt"),
        Index("uq_payment_instruction_live", "entitlement_id", unique=True,
              sqlite_where=text("status IN ('pending','sent','paid','unclaimed')"),
              postgresql_where=text("status IN ('pending','sent','paid','unclaimed')")),
        Index("ix_payment_instruction_payroll", "payroll_id"),
        # an enrolment's payments, newest first: the citizen screen (migration 0016_onewindow)
        Index("ix_payment_instruction_enrolment", "enrolment_id", "id"),
        # the home page's counts, read from the index: failed, unclaimed and paid this quarter by district,
        # and each payroll's instructions by status and district (migration 0015_home_counts)
        Index("ix_payment_instruction_status", "status", "district_id", "status_on", "amount"),
        Index("ix_payment_instruction_payroll_status", "payroll_id", "status", "district_id"),
    )


class StatusImport(Base):
    __tablename__ = "payment_status_import"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    file_name: Mapped[str] = mapped_column(String(200))
    file_sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(10))  # csv | pain.002 | camt.054
    lines: Mapped[int] = mapped_column(Integer, default=0)
    applied: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str] = mapped_column(String(60))
    imported_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (Index("uq_payment_status_import_sha", "file_sha256", unique=True),)


class StatusLine(Base):
    __tablename__ = "payment_status_line"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(BigInteger, index=True)
    idem_key: Mapped[str] = mapped_column(String(80), unique=True)
    end_to_end_id: Mapped[str] = mapped_column(String(35))
    status: Mapped[str] = mapped_column(String(10))
    amount: Mapped[float | None] = mapped_column(Float, nullable=True)
    status_on: Mapped[date | None] = mapped_column(Date, nullable=True)  # none when the file's date was not a date
    biometric_ok: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(12), nullable=True)  # applied | rejected
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)  # why a line was rejected


class LedgerEntry(Base):
    """One double-entry posting: ``amount`` debited to one account and credited to another, for one
    beneficiary (enrolment) of one program. ``(kind, ref_id)`` is unique: each movement of each
    entitlement or instruction is posted once, whatever is retried or imported again.

    Accounts: ``treasury`` (the budget money comes from), ``fund`` (released to the program, not yet
    issued), ``clearing`` (sent to a channel, not confirmed),
    ``disbursed`` (in the beneficiary's hand), ``payable`` (owed again after a failure or reversal).
    """

    __tablename__ = "ledger_entry"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(3))  # rel | snd | pd | fl | rv | rty | rt (payments.payroll.POSTING)
    ref_id: Mapped[int] = mapped_column(BigInteger)  # the payment instruction (the fund release for 'rel')
    debit: Mapped[str] = mapped_column(String(10))
    credit: Mapped[str] = mapped_column(String(10))
    program_code: Mapped[str] = mapped_column(String(40))
    enrolment_id: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[float] = mapped_column(Float)
    posted_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (UniqueConstraint("kind", "ref_id", name="uq_ledger_entry_movement"),
                      Index("ix_ledger_entry_enrolment", "enrolment_id"))


class FundRelease(Base):
    """Money released from the treasury into a program's fund, before the program may pay it out:
    posted once to the ledger (kind ``rel``, keyed by this row's id). ``(program_code, reference)`` is
    unique, so recording the same release again (a retried command) posts nothing twice."""

    __tablename__ = "fund_release"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    program_code: Mapped[str] = mapped_column(String(40))
    amount: Mapped[float] = mapped_column(Float)
    reference: Mapped[str] = mapped_column(String(80))  # the treasury's release order
    released_by: Mapped[str] = mapped_column(String(60))
    released_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (UniqueConstraint("program_code", "reference", name="uq_fund_release_reference"),)


class CashOutlet(Base):
    __tablename__ = "cash_outlet"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(14))  # agent | cash_outlet | post_office
    district_id: Mapped[int] = mapped_column(SmallInteger, index=True)
    tehsil_id: Mapped[int] = mapped_column(SmallInteger)
    capacity_per_slot: Mapped[int] = mapped_column(Integer)


class PickupSlot(Base):
    """A beneficiary's turn at an outlet: (outlet, slot, seat) is unique and seat ≤ capacity."""

    __tablename__ = "pickup_slot"
    instruction_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    outlet_id: Mapped[int] = mapped_column(BigInteger)
    slot_start: Mapped[datetime] = mapped_column(DateTime)
    seat: Mapped[int] = mapped_column(Integer)
    same_tehsil: Mapped[bool] = mapped_column(Boolean)
    sms: Mapped[str] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("outlet_id", "slot_start", "seat", name="uq_pickup_slot_seat"),)
