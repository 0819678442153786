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
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import bindparam, select
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
    """Signed, expiring bearer tokens (and web session cookies) naming a user.

    The named user's role, district and whether they are active are read from the database at
    most once every :attr:`user_ttl` seconds per process (an API client sends a token with every
    request): a deactivation or a change of role or district reaches requests within that time."""

    user_ttl = 5.0

    def __init__(self, secret: str, max_age_hours: int = 12) -> None:
        self._s = URLSafeTimedSerializer(secret, salt="isps-auth")
        self.max_age = max_age_hours * 3600
        self._users: dict[str, tuple[float, Principal | None]] = {}

    def issue(self, principal: Principal) -> str:
        return self._s.dumps({"u": principal.username})

    def principal(self, session: Session, token: str) -> Principal:
        try:
            data = self._s.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise AuthError("your session has expired; sign in again") from None
        except BadSignature:
            raise AuthError("invalid token") from None
        username = data.get("u")
        now = time.monotonic()
        cached = self._users.get(username)
        if cached is None or cached[0] <= now:
            row = session.execute(_USER_BY_NAME, {"u": username}).first()
            who = Principal(row.username, row.role, row.district_id) if row is not None and row.active else None
            if len(self._users) > 10_000:
                self._users.clear()
            self._users[username] = cached = (now + self.user_ttl, who)
        if cached[1] is None:
            raise AuthError("this account is not active")
        return cached[1]


_USER_BY_NAME = select(User.username, User.role, User.district_id, User.active).where(User.username == bindparam("u"))
_AUDIT_INSERT = AuditRecord.__table__.insert()


def _audit_row(who: Principal, channel: str, action: str, entity: str, entity_id: int | None,
               district_id: int | None, outcome: str, detail: str | None) -> dict:
    return {"actor": who.username, "role": who.role, "channel": channel, "action": action, "entity": entity,
            "entity_id": entity_id, "district_id": district_id, "outcome": outcome,
            "detail": (detail or "")[:300] or None}


def audit(session: Session, who: Principal, channel: str, action: str, entity: str, entity_id: int | None = None,
          district_id: int | None = None, outcome: str = "ok", detail: str | None = None) -> None:
    """Write one audit record now, in the caller's transaction (it is durable when that commits)."""
    audit_many(session, who, channel, action, entity, [(entity_id, district_id)], outcome, detail)


def audit_many(session: Session, who: Principal, channel: str, action: str, entity: str,
               targets: list[tuple[int | None, int | None]], outcome: str = "ok", detail: str | None = None) -> None:
    """One audit record per (entity id, district id), in one statement; no ids are read back."""
    # a list of parameter sets, so that the database is not asked to return the new ids
    session.execute(_AUDIT_INSERT, [_audit_row(who, channel, action, entity, e, d, outcome, detail)
                                    for e, d in targets])


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
