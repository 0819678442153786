"""Users, roles, district scope, sign-in tokens and the audit log.

A district officer or counter operator works inside one district: their
:class:`Principal` carries that district as its ``scope`` and every registry query
is filtered by it. Province-wide roles have no scope. Every read of a person's
record is written to ``audit_log``, whether it was allowed or refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.access.models import AuditRecord, User

ROLES = ("administrator", "program_manager", "district_officer", "counter_operator", "auditor")
SCOPED_ROLES = ("district_officer", "counter_operator")

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "registry.read": ROLES,
    "registry.write": ("administrator", "district_officer", "counter_operator"),
    "registry.import": ("administrator", "program_manager"),
    "pmt.manage": ("administrator", "program_manager"),
    "audit.read": ("administrator", "auditor"),
    "users.manage": ("administrator",),
}

ROLE_LABELS = {
    "administrator": "Administrator", "program_manager": "Program manager", "district_officer": "District officer",
    "counter_operator": "One Window counter operator", "auditor": "Auditor",
}


class AccessError(PermissionError):
    pass


class AuthError(PermissionError):
    """Sign-in failed or the token is invalid; the message is safe to show."""


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    district_id: int | None

    @property
    def scope(self) -> int | None:
        return self.district_id if self.role in SCOPED_ROLES else None

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS.get(permission, ())

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise AccessError(f"a {ROLE_LABELS[self.role].lower()} may not do this ({permission})")


def hash_password(password: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), 120_000).hex()
    return f"pbkdf2_sha256${salt}${digest}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
    except ValueError:
        return False
    return hmac.compare_digest(hash_password(password, salt).split("$")[2], digest)


def create_user(session: Session, username: str, password: str, role: str, full_name: str = "",
                district_id: int | None = None) -> User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role in SCOPED_ROLES and district_id is None:
        raise ValueError(f"a {ROLE_LABELS[role].lower()} needs a district")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ValueError(f"user '{username}' already exists")
    user = User(username=username, full_name=full_name or username, role=role, district_id=district_id,
                password_hash=hash_password(password), active=True)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> Principal:
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not verify_password(password, user.password_hash):
        raise AuthError("wrong username or password")
    return Principal(user.username, user.role, user.district_id)


class Tokens:
    """Signed, expiring bearer tokens (and web session cookies) naming a user."""

    def __init__(self, secret: str, max_age_hours: int = 12) -> None:
        self._s = URLSafeTimedSerializer(secret, salt="isps-auth")
        self.max_age = max_age_hours * 3600

    def issue(self, principal: Principal) -> str:
        return self._s.dumps({"u": principal.username})

    def principal(self, session: Session, token: str) -> Principal:
        try:
            data = self._s.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise AuthError("your session has expired; sign in again") from None
        except BadSignature:
            raise AuthError("invalid token") from None
        user = session.scalar(select(User).where(User.username == data.get("u")))
        if user is None or not user.active:
            raise AuthError("this account is not active")
        return Principal(user.username, user.role, user.district_id)


def audit(session: Session, who: Principal, channel: str, action: str, entity: str, entity_id: int | None = None,
          district_id: int | None = None, outcome: str = "ok", detail: str | None = None) -> None:
    session.add(AuditRecord(actor=who.username, role=who.role, channel=channel, action=action, entity=entity,
                            entity_id=entity_id, district_id=district_id, outcome=outcome,
                            detail=(detail or "")[:300] or None))


def audit_trail(session: Session, *, entity: str | None = None, entity_id: int | None = None,
                actor: str | None = None, limit: int = 200, before_id: int | None = None) -> list[AuditRecord]:
    stmt = select(AuditRecord)
    if entity:
        stmt = stmt.where(AuditRecord.entity == entity)
    if entity_id is not None:
        stmt = stmt.where(AuditRecord.entity_id == entity_id)
    if actor:
        stmt = stmt.where(AuditRecord.actor == actor)
    if before_id:
        stmt = stmt.where(AuditRecord.id < before_id)
    return list(session.scalars(stmt.order_by(AuditRecord.id.desc()).limit(limit)))
