"""Tables of the labour registries.

Every row names the registry person it is about (``individual_id``, with ``household_id`` and
``district_id`` so district pages and partitioning need no join) and says where it came from and
when (``source_ref``, the date it is in force). No foreign keys into the registry: like the feeds,
the labour registries are keyed by registry ids and land as their own migration branch.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Float, Index, Integer, String, Text, UniqueConstraint, \
    func
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId


class LabourUpload(Base):
    """One employer's or contractor's file, received whole (a refused file leaves no row here)."""

    __tablename__ = "labour_upload"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    door: Mapped[str] = mapped_column(String(20))               # formal | contractor | sector
    reference: Mapped[str] = mapped_column(String(200))         # the sender's file name or reference
    employer: Mapped[str] = mapped_column(String(120))          # the uploading employer or contractor
    actor: Mapped[str] = mapped_column(String(80))
    district_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the uploader's district, if scoped
    batch_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (UniqueConstraint("door", "reference", name="uq_labour_upload_door_reference"),)


class LabourRecord(Base):
    """One line of an upload: a worker's month with one employer (contribution, days, wage)."""

    __tablename__ = "labour_record"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    upload_id: Mapped[int] = mapped_column(BigInteger)
    door: Mapped[str] = mapped_column(String(20))
    register: Mapped[str] = mapped_column(String(20))
    individual_id: Mapped[int] = mapped_column(BigInteger)
    household_id: Mapped[int] = mapped_column(BigInteger)
    district_id: Mapped[int] = mapped_column(Integer)
    employer_ref: Mapped[str] = mapped_column(String(40))      # EOBI/PESSI or contractor registration number
    employer_name: Mapped[str] = mapped_column(String(120))
    scheme: Mapped[str | None] = mapped_column(String(20), nullable=True)   # eobi | pessi | ADP scheme code
    month: Mapped[date] = mapped_column(Date)                   # first day of the month the line is about
    days_worked: Mapped[int | None] = mapped_column(Integer, nullable=True)
    wage: Mapped[float] = mapped_column(Float)
    contribution: Mapped[float | None] = mapped_column(Float, nullable=True)
    row: Mapped[int] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("door", "employer_ref", "individual_id", "month",
                                       name="uq_labour_record_line"),
                      Index("ix_labour_record_person", "individual_id", "month"),
                      Index("ix_labour_record_district", "district_id", "id"))


class LabourWorker(Base):
    """A person on one labour register (since when, from which door), with a booth for daily wagers
    and the lay-off date for laid-off workers."""

    __tablename__ = "labour_worker"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    register: Mapped[str] = mapped_column(String(20))
    individual_id: Mapped[int] = mapped_column(BigInteger)
    household_id: Mapped[int] = mapped_column(BigInteger)
    district_id: Mapped[int] = mapped_column(Integer)
    since: Mapped[date] = mapped_column(Date)                  # registered on (laid off on, for laid_off)
    booth: Mapped[str | None] = mapped_column(String(80), nullable=True)
    source_ref: Mapped[str] = mapped_column(String(200))
    recorded_by: Mapped[str] = mapped_column(String(80))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (UniqueConstraint("register", "individual_id", name="uq_labour_worker_register_person"),
                      Index("ix_labour_worker_district", "district_id", "register", "id"))


class LabourSkill(Base):
    __tablename__ = "labour_skill"
    individual_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    skill: Mapped[str] = mapped_column(String(30), primary_key=True)
    district_id: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_labour_skill_skill", "skill", "individual_id"),)


class LabourPerson(Base):
    """One row per person on any register: the employment status they last reported (or that their
    registration implied), and when the next quarterly report is due. ``status = 'stale'`` once a
    report is more than the grace period late: the person no longer counts as employed."""

    __tablename__ = "labour_person"
    individual_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    household_id: Mapped[int] = mapped_column(BigInteger)
    district_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    status_on: Mapped[date] = mapped_column(Date)
    status_source: Mapped[str] = mapped_column(String(20))     # registration | upload | report
    report_due: Mapped[date] = mapped_column(Date)
    stale_since: Mapped[date | None] = mapped_column(Date, nullable=True)

    __table_args__ = (Index("ix_labour_person_due", "report_due"),
                      Index("ix_labour_person_district", "district_id", "individual_id"))


class LabourReport(Base):
    """A quarterly self-report of employment status."""

    __tablename__ = "labour_report"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    individual_id: Mapped[int] = mapped_column(BigInteger)
    district_id: Mapped[int] = mapped_column(Integer)
    due_on: Mapped[date] = mapped_column(Date)                  # the due date it answers
    reported_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(20))           # counter | web | sms | ivr (the channel is issue-owned elsewhere)
    recorded_by: Mapped[str] = mapped_column(String(80))

    __table_args__ = (Index("ix_labour_report_person", "individual_id", "reported_on"),)


class LabourReminder(Base):
    """A reminder the schedule says is owed (sending it is the messaging channel's job)."""

    __tablename__ = "labour_reminder"
    individual_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    due_on: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)   # before | due | overdue
    district_id: Mapped[int] = mapped_column(Integer)
    send_on: Mapped[date] = mapped_column(Date)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Shop(Base):
    """A registered shop: the certificate number is its unique, printable id."""

    __tablename__ = "labour_shop"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    certificate_no: Mapped[str] = mapped_column(String(30), unique=True)
    individual_id: Mapped[int] = mapped_column(BigInteger)
    household_id: Mapped[int] = mapped_column(BigInteger)
    district_id: Mapped[int] = mapped_column(Integer)
    shop_name: Mapped[str] = mapped_column(String(120))
    trade: Mapped[str] = mapped_column(String(80))
    address: Mapped[str] = mapped_column(String(200))
    registered_on: Mapped[date] = mapped_column(Date)
    registered_by: Mapped[str] = mapped_column(String(80))

    __table_args__ = (Index("ix_labour_shop_district", "district_id", "id"),)


class WorkOffer(Base):
    """A day's work offered at a booth: ``slots`` places, given by rotation (:mod:`isps.labour.wagers`)."""

    __tablename__ = "labour_work_offer"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    district_id: Mapped[int] = mapped_column(Integer)
    booth: Mapped[str] = mapped_column(String(80))
    work_on: Mapped[date] = mapped_column(Date)
    employer: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(200))
    slots: Mapped[int] = mapped_column(Integer)
    offered_by: Mapped[str] = mapped_column(String(80))


class WorkOfferPick(Base):
    """Who was offered a place, in rotation order."""

    __tablename__ = "labour_offer_pick"
    offer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    individual_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district_id: Mapped[int] = mapped_column(Integer)
    work_on: Mapped[date] = mapped_column(Date)
    rank: Mapped[int] = mapped_column(Integer)
    idle_since: Mapped[date | None] = mapped_column(Date, nullable=True)   # last day worked before the offer

    __table_args__ = (UniqueConstraint("individual_id", "work_on", name="uq_labour_offer_pick_day"),)


class WagerDay(Base):
    """A day a daily wager worked (through an offer or reported at the booth)."""

    __tablename__ = "labour_wager_day"
    individual_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    worked_on: Mapped[date] = mapped_column(Date, primary_key=True)
    district_id: Mapped[int] = mapped_column(Integer)
    offer_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source_ref: Mapped[str] = mapped_column(String(200))

    __table_args__ = (Index("ix_labour_wager_day_district", "district_id", "worked_on"),)


class Vacancy(Base):
    """An employer's vacancy on the job board, matched to laid-off workers by skill."""

    __tablename__ = "labour_vacancy"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    district_id: Mapped[int] = mapped_column(Integer)
    employer: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(120))
    skills: Mapped[str] = mapped_column(Text)                  # codes, comma-separated (also in labour_vacancy_skill)
    slots: Mapped[int] = mapped_column(Integer)
    posted_on: Mapped[date] = mapped_column(Date)
    posted_by: Mapped[str] = mapped_column(String(80))
    open: Mapped[bool] = mapped_column(Boolean, default=True)


class VacancySkill(Base):
    __tablename__ = "labour_vacancy_skill"
    vacancy_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    skill: Mapped[str] = mapped_column(String(30), primary_key=True)


class LabourLeaving(Base):
    """Someone taken off a register (a wager who left, a shop closed, a laid-off worker who found
    work): when, why, by whom. The register row is made inactive, never deleted; this row is the
    history (one per leaving: a person who comes back and leaves again has two)."""

    __tablename__ = "labour_leaving"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    register: Mapped[str] = mapped_column(String(20))
    individual_id: Mapped[int] = mapped_column(BigInteger)
    household_id: Mapped[int] = mapped_column(BigInteger)
    district_id: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)   # labour_worker row made inactive
    shop_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)     # the shop closed
    registered_since: Mapped[date] = mapped_column(Date)
    left_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(20))            # labour.vocab.LEAVE_REASONS
    now_status: Mapped[str | None] = mapped_column(String(20), nullable=True)  # what they do now, if said
    note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (Index("ix_labour_leaving_district", "district_id", "register", "id"),
                      Index("ix_labour_leaving_person", "individual_id"),
                      Index("ix_labour_leaving_shop", "shop_id"))


# created by migration 0015_labour from this metadata; labour_leaving is 0015_labour_leaving's
TABLES = ("labour_upload", "labour_record", "labour_worker", "labour_skill", "labour_person", "labour_report",
          "labour_reminder", "labour_shop", "labour_work_offer", "labour_offer_pick", "labour_wager_day",
          "labour_vacancy", "labour_vacancy_skill")
