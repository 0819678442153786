"""Users with a role and a district scope, and the audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, SmallInteger, String, func
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId
from isps.registry import models as _registry  # noqa: F401 - users reference district


class User(Base):
    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    full_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("district.id"), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class AuditRecord(Base):
    """One read or change of a person's record, by whom, through which channel."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now(), index=True)
    actor: Mapped[str] = mapped_column(String(60))
    role: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(10))  # api | web | cli
    action: Mapped[str] = mapped_column(String(30))
    entity: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    district_id: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    outcome: Mapped[str] = mapped_column(String(10), default="ok")  # ok | denied | not_found
    detail: Mapped[str | None] = mapped_column(String(300), nullable=True)

    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"), Index("ix_audit_log_actor", "actor", "id"),
                      Index("ix_audit_log_action", "action", "id"))  # sorted by action (migration 0015_list_sorts)


class AuthSession(Base):
    """One signed-in session (a web cookie or an API bearer token): its id travels inside the
    signed token, and signing out revokes it here, so a copied token dies with the sign-out."""

    __tablename__ = "auth_session"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(60), index=True)
    channel: Mapped[str] = mapped_column(String(10))  # web | api
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class SignInFailure(Base):
    """Failed sign-ins counted per account (``user:<name>``) and per client address (``addr:<ip>``)
    in a sliding window; an account past the limit stays locked until an administrator unlocks it.
    Kept in the database so that every worker process sees the same counts."""

    __tablename__ = "sign_in_failure"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(DateTime)
    last_at: Mapped[datetime] = mapped_column(DateTime)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
