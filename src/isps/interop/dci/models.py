"""Tables of the DCI API: partners, their public keys, data-sharing agreements, consents,
transactions (for txn status), subscriptions and outbound deliveries (callbacks, notifications)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, \
    UniqueConstraint, false, func
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId


class DciPartner(Base):
    """A system allowed to call the API (an SPMIS, a provincial department, a program)."""

    __tablename__ = "dci_partner"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sender_id: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(60), unique=True)
    client_secret_hash: Mapped[str] = mapped_column(String(200))
    callback_uri: Mapped[str | None] = mapped_column(String(300), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    # a conformance suite's sandbox client: served only where ISPS_DCI_TEST_PARTNERS=1, every request
    # marked "test partner" in the audit; accept_unsigned (test partners only) skips signature checks
    test_partner: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    accept_unsigned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class DciPartnerKey(Base):
    """A partner's public signing key; ``kid`` is the middle part of the signature's key id."""

    __tablename__ = "dci_partner_key"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("dci_partner.id"), index=True)
    kid: Mapped[str] = mapped_column(String(100))
    algorithm: Mapped[str] = mapped_column(String(20))  # ed25519 | rsa-sha256
    public_key_pem: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (UniqueConstraint("partner_id", "kid", name="uq_dci_partner_key_partner_kid"),)


class DciAgreement(Base):
    """A data-sharing agreement: which fields the partner may receive, for which purpose, and
    whether each person's consent must be on record first."""

    __tablename__ = "dci_agreement"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("dci_partner.id"), index=True)
    reference: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(60))
    fields: Mapped[list] = mapped_column(JSON)
    consent_required: Mapped[bool] = mapped_column(Boolean)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class DciConsent(Base):
    """A person's consent to share their record with a partner for a purpose."""

    __tablename__ = "dci_consent"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("dci_partner.id"))
    individual_id: Mapped[int] = mapped_column(BigInteger)
    purpose: Mapped[str] = mapped_column(String(60))
    given_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    evidence: Mapped[str | None] = mapped_column(String(200), nullable=True)
    recorded_by: Mapped[str] = mapped_column(String(60))
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    __table_args__ = (Index("ix_dci_consent_partner_individual", "partner_id", "individual_id"),)


class DciTransaction(Base):
    """One message received from a partner: its ids, state and (once done) the response message."""

    __tablename__ = "dci_transaction"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("dci_partner.id"))
    message_id: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))  # search | subscribe | unsubscribe | txn-status
    transaction_id: Mapped[str] = mapped_column(String(99))
    correlation_id: Mapped[str] = mapped_column(String(99), unique=True)
    status: Mapped[str] = mapped_column(String(4))  # rcvd | pdng | succ | rjct
    reference_ids: Mapped[list] = mapped_column(JSON)
    request: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    response: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("partner_id", "message_id", name="uq_dci_transaction_partner_message"),
        Index("ix_dci_transaction_partner_txn", "partner_id", "transaction_id"),
    )


class DciSubscription(Base):
    __tablename__ = "dci_subscription"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(99), unique=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("dci_partner.id"), index=True)
    transaction_id: Mapped[str] = mapped_column(String(99))
    reference_id: Mapped[str] = mapped_column(String(100))
    reg_event_type: Mapped[str] = mapped_column(String(60))
    filter_type: Mapped[str] = mapped_column(String(20))
    filter: Mapped[dict | list] = mapped_column(JSON)
    notify_record_type: Mapped[str] = mapped_column(String(60))
    frequency: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(12))  # subscribe | unsubscribe
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class DciDelivery(Base):
    """A message ISPS sent (or failed to send) to a partner: on-search, on-subscribe, notify..."""

    __tablename__ = "dci_delivery"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("dci_partner.id"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(String(300))
    envelope: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10))  # sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
