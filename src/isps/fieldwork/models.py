"""Tables of field work: devices, submissions and their attachments, assignments, distribution sites
and their lists.

Keyed by registry, application and payment ids without foreign keys into those modules' tables (as
the applications' and feeds' tables are), so the branch lands on its own; ``district_id`` on every
row for scoped lists.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, LargeBinary, \
    Numeric, SmallInteger, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId


class FieldDevice(Base):
    """A phone or laptop registered to one user and one district. ODK Collect authenticates with the
    device's token, in the server address (``/openrosa/key/<token>``, as ODK Central's app users) or as
    the digest password of the device's code; only a hash of the token is kept, and the digest's HA1
    (MD5 of code:realm:token, which digest authentication needs the server to hold)."""

    __tablename__ = "field_device"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)          # the digest user name, e.g. "kasur-07"
    label: Mapped[str] = mapped_column(String(120))                     # "Samsung A12, Shazia's team"
    username: Mapped[str] = mapped_column(String(80), index=True)       # the ISPS user who carries it
    district_id: Mapped[int] = mapped_column(SmallInteger)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)    # sha256 hex of the token
    digest_ha1: Mapped[str] = mapped_column(String(32))
    odk_device_id: Mapped[str | None] = mapped_column(String(120), nullable=True)  # the deviceID Collect reports
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    registered_by: Mapped[str] = mapped_column(String(80))
    registered_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class FieldSubmission(Base):
    """One submitted instance of a form, kept whole (its XML) whatever became of it. ``instance_id`` is
    unique: a resubmission after a lost reply finds the row and changes nothing. ``status`` is
    ``received`` (kept, not yet applied), ``accepted`` (applied: ``result`` says to what) or ``refused``
    (``reason`` says why, for an officer; ``reviewed_by`` once an officer has dealt with it)."""

    __tablename__ = "field_submission"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(80), unique=True)
    form_id: Mapped[str] = mapped_column(String(60))
    form_version: Mapped[str] = mapped_column(String(40))
    job: Mapped[str] = mapped_column(String(10))                         # survey | visit | receipt | grievance
    device_id: Mapped[int | None] = mapped_column(ForeignKey("field_device.id"), nullable=True)
    channel: Mapped[str] = mapped_column(String(8), default="odk")       # odk | browser
    username: Mapped[str] = mapped_column(String(80))
    district_id: Mapped[int] = mapped_column(SmallInteger)
    household_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    collected_at: Mapped[datetime] = mapped_column(DateTime)              # when the form was filled (not received)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    xml: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="received")  # received | accepted | refused
    reason: Mapped[str | None] = mapped_column(String(400), nullable=True)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    review_note: Mapped[str | None] = mapped_column(String(400), nullable=True)

    __table_args__ = (Index("ix_field_submission_district_status", "district_id", "status", "id"),
                      Index("ix_field_submission_user", "username", "id"))


class FieldAttachment(Base):
    """A file sent with a submission (a photo of the hand-over); bounded in size by the inbox."""

    __tablename__ = "field_attachment"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("field_submission.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (UniqueConstraint("submission_id", "name", name="uq_field_attachment_name"),)


_OPEN_SURVEY = text("status = 'open' AND kind = 'survey'")
_OPEN_VISIT = text("status = 'open' AND kind = 'visit'")


class FieldAssignment(Base):
    """Work given to an enumerator: a household to survey (``survey``), an application's verification
    visit (``visit``) or a distribution site to staff (``site``). ``status``: ``open`` | ``done`` (the
    submission that did it) | ``cancelled``. At most one open assignment per thing (partial unique
    indexes in the migration's model: household for surveys, application for visits)."""

    __tablename__ = "field_assignment"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))                          # survey | visit | site
    enumerator: Mapped[str] = mapped_column(String(80))
    district_id: Mapped[int] = mapped_column(SmallInteger)
    tehsil_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    union_council: Mapped[str | None] = mapped_column(String(80), nullable=True)
    household_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    application_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    site_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(10), default="open")
    assigned_by: Mapped[str] = mapped_column(String(80))
    assigned_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    due_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    submission_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_field_assignment_enumerator", "enumerator", "status", "id"),
                      Index("ix_field_assignment_district", "district_id", "kind", "status", "id"),
                      Index("uq_field_assignment_open_household", "household_id", unique=True,
                            postgresql_where=_OPEN_SURVEY, sqlite_where=_OPEN_SURVEY),
                      Index("uq_field_assignment_open_visit", "application_id", unique=True,
                            postgresql_where=_OPEN_VISIT, sqlite_where=_OPEN_VISIT))


class DistributionSite(Base):
    """Where relief is handed over: a cash outlet's counter on pickup days, or an in-kind distribution
    point (a school, a union council office)."""

    __tablename__ = "distribution_site"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(8))                          # cash | in_kind
    district_id: Mapped[int] = mapped_column(SmallInteger)
    tehsil_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outlet_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)   # payments.cash_outlet, for cash
    opens_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    closes_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class DistributionEntry(Base):
    """One line of a site's list: who is to receive what. ``handed_over_at`` is set once (a conditional
    update), by the receipt that did it; a second receipt for the same line is refused as a duplicate."""

    __tablename__ = "distribution_entry"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("distribution_site.id"))
    district_id: Mapped[int] = mapped_column(SmallInteger)
    list_ref: Mapped[str] = mapped_column(String(60))                     # "payroll:12", "ration:2026-12"
    household_id: Mapped[int] = mapped_column(BigInteger)
    individual_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)   # the named recipient
    item: Mapped[str] = mapped_column(String(40))                         # "cash" | "ration_pack" | ...
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), nullable=True)  # cash, in rupees
    instruction_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # payments, for cash
    token: Mapped[int | None] = mapped_column(Integer, nullable=True)     # the seat/token number on the list
    handed_over_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    handed_over_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    received_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)     # the person who took it
    evidence: Mapped[str | None] = mapped_column(String(12), nullable=True)        # fingerprint | cnic
    submission_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (UniqueConstraint("site_id", "list_ref", "household_id", "item",
                                       name="uq_distribution_entry_line"),
                      Index("ix_distribution_entry_site", "site_id", "id"))


TABLES = ("field_device", "field_submission", "field_attachment", "field_assignment", "distribution_site",
          "distribution_entry")
