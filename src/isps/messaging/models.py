"""The message tables: the one outbound queue (``sms_message``), the delivery receipts as they
arrived (``sms_receipt``), per-phone opt-out (``sms_opt_out``) and inbound texts (``sms_inbound``).

* ``sms_message.key`` is unique: whoever enqueues names the message (``pickup:<slot>``,
  ``paid:<instruction>``, ``reply:<inbound>``), so enqueuing twice sends once.
* ``sms_inbound.gateway_ref`` is unique: a text the gateway hands over twice is stored once.
* A message moves queued → sending → sent → delivered | undeliverable, or → failed; a message to a
  phone that opted out is ``suppressed`` (kept, shown, never sent).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, SmallInteger, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId

STATUSES = ("queued", "sending", "sent", "delivered", "failed", "undeliverable", "suppressed")


class Message(Base):
    __tablename__ = "sms_message"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))
    phone: Mapped[str] = mapped_column(String(13))  # normalised: 923001234567
    text: Mapped[str] = mapped_column(Text)
    lang: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(14))
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    individual_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    household_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    district_id: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    send_after: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # last moved to 'sending'
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    gateway: Mapped[str | None] = mapped_column(String(10), nullable=True)
    gateway_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)

    __table_args__ = (
        Index("uq_sms_message_key", "key", unique=True),
        Index("ix_sms_message_due", "status", "send_after", "id"),   # what the dispatcher claims
        Index("ix_sms_message_household", "household_id", "id"),    # the household page's panel
        Index("ix_sms_message_phone", "phone", "id"),
        Index("ix_sms_message_gateway_id", "gateway_id"),            # delivery receipts
        Index("ix_sms_message_district", "district_id", "status", "id"),  # the /messages list
        Index("ix_sms_message_created", "created_at", "id"),
    )


class Receipt(Base):
    """A delivery receipt as the gateway sent it, kept even when it arrives before the message's
    gateway id is stored (the dispatcher applies it on its next pass)."""

    __tablename__ = "sms_receipt"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(14))  # delivered | undeliverable
    at: Mapped[datetime] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class OptOut(Base):
    __tablename__ = "sms_opt_out"
    phone: Mapped[str] = mapped_column(String(13), primary_key=True)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    via: Mapped[str] = mapped_column(String(40))  # sms | counter:<user> | web | cli
    changed_at: Mapped[datetime] = mapped_column(DateTime)


class Inbound(Base):
    __tablename__ = "sms_inbound"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    gateway_ref: Mapped[str] = mapped_column(String(80))
    phone: Mapped[str] = mapped_column(String(13))
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    outcome: Mapped[str] = mapped_column(String(12))  # answered | no_reply | stop | start | limited | silenced
    reply_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        Index("uq_sms_inbound_gateway_ref", "gateway_ref", unique=True),
        Index("ix_sms_inbound_phone", "phone", "received_at"),  # the rate limit
    )
