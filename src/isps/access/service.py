"""Users, roles, district scope, sign-in tokens and the audit log.

A district officer or counter operator works inside one district: their
:class:`Principal` carries that district as its ``scope`` and every registry query
is filtered by it. Province-wide roles have no scope. Every read of a person's
record is written to ``audit_log``, whether it was allowed or refused.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import bindparam, case, delete, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from isps import keyset
from isps.access.models import AuditRecord, AuthSession, SignInFailure, User

ROLES = ("administrator", "program_manager", "district_officer", "counter_operator", "grievance_officer",
         "field_supervisor", "enumerator", "auditor")
SCOPED_ROLES = ("district_officer", "counter_operator", "grievance_officer", "field_supervisor", "enumerator")

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "registry.read": ROLES,
    "registry.write": ("administrator", "district_officer", "counter_operator"),
    "registry.import": ("administrator", "program_manager"),
    "pmt.manage": ("administrator", "program_manager"),
    "audit.read": ("administrator", "auditor"),
    "users.manage": ("administrator",),
    "partners.manage": ("administrator",),                      # DCI partners, keys, agreements
    "consent.record": ("administrator", "district_officer", "counter_operator"),
    "enrolment.apply": ("administrator", "district_officer", "counter_operator"),
    # the citizen's door (issue 11): applications at the One Window counter, their verification and
    # disposal by a second person; grievances taken by anyone who meets citizens, handled by the
    # grievance officers and escalated up to the program managers; the outbound message queue
    "application.take": ("administrator", "district_officer", "counter_operator"),
    "application.decide": ("administrator", "program_manager", "district_officer"),
    "grievance.take": ("administrator", "district_officer", "counter_operator", "grievance_officer"),
    "grievance.handle": ("administrator", "program_manager", "district_officer", "grievance_officer"),
    "messages.read": ("administrator", "program_manager", "district_officer", "counter_operator",
                      "grievance_officer", "auditor"),
    # field work (issue 17): enumerators and distribution-site staff collect (on a registered device
    # or in the browser offline); supervisors register devices, assign work by area and deal with
    # what was refused; district officers can do all of it in their district
    "field.collect": ("administrator", "district_officer", "field_supervisor", "enumerator"),
    "field.assign": ("administrator", "district_officer", "field_supervisor"),
    "field.review": ("administrator", "program_manager", "district_officer", "field_supervisor"),
    # monitoring (issue 14): every role reads the dashboard of its scope; the program managers and
    # administrators run the delivery unit's routine (priorities, targets, baselines, stocktakes)
    "monitoring.read": ROLES,
    "delivery.manage": ("administrator", "program_manager"),
}

ROLE_LABELS = {
    "administrator": "Administrator", "program_manager": "Program manager", "district_officer": "District officer",
    "counter_operator": "One Window counter operator",
    "grievance_officer": "Grievance officer", "field_supervisor": "Field supervisor", "enumerator": "Enumerator",
    "auditor": "Auditor",
}


# What an audit record says was done: one fixed vocabulary of lowercase verbs, so that the log can
# be searched and does not drift ("Read" vs "read"). What was attempted is the action; whether it
# was allowed is the outcome. :func:`audit` refuses anything else.
ACTIONS = frozenset({
    "read", "search", "lookup_cnic", "export", "report",               # reading people's data
    "edit", "create", "import", "ingest", "resolve", "merge", "unmerge",  # changing it
    "approve", "reject", "decide", "enrol", "exit", "suspend", "reinstate", "keep", "review", "graduate",
    "fit", "activate", "reconcile", "release", "notify", "record",
    "register", "verify", "refer", "file", "assign", "escalate", "close", "reopen", "confirm",  # applications, grievances
    "send", "opt_out", "opt_in",                                          # messages
    "submit", "hand_over",                                                # field work
    "sign_in", "sign_out", "unlock",                                      # sessions and accounts
    "disable", "enable", "reset_password", "rotate", "revoke", "end",     # accounts, partners' keys, agreements
    "refused",  # a request refused before it reached an action (forged form, cookie write, role)
})
# What a DCI partner's request did (interop.dci writes these rows itself, in batches, without a
# Principal): a vocabulary of its own, checked there, listed and labelled on the audit page.
DCI_ACTIONS = frozenset({"dci.token", "dci.sync_search", "dci.search", "dci.sync_txn_status", "dci.txn_status",
                         "dci.subscribe", "dci.unsubscribe", "dci.notify"})
OUTCOMES = ("ok", "denied", "not_found", "failed")

# sign-in throttling: an account is locked after this many failures in the window (until an
# administrator unlocks it); an address is refused (429) for the rest of the window after its limit
ACCOUNT_FAILURES = 5
ADDRESS_FAILURES = 20
FAILURE_WINDOW = timedelta(minutes=15)


class AccessError(PermissionError):
    pass


class AuthError(PermissionError):
    """Sign-in failed or the token is invalid; the message is safe to show."""


class AccountLocked(AuthError):
    """Too many failed sign-ins for this user name: an administrator must unlock it."""


class TooManyAttempts(AuthError):
    """Too many failed sign-ins from this address: refused until the window has passed."""


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


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user name is unknown: the same PBKDF2 work either way,
    so that the response time does not tell existing user names apart."""
    return hash_password(secrets.token_hex(16))


def _now() -> datetime:
    return datetime.now().replace(microsecond=0)


def authenticate(session: Session, username: str, password: str) -> Principal:
    """Check a user name and password (always one PBKDF2 verification, known user or not)."""
    user = session.scalar(select(User).where(User.username == username))
    ok = verify_password(password, user.password_hash if user is not None else _dummy_hash())
    if user is None or not user.active or not ok:
        raise AuthError("wrong username or password")
    return Principal(user.username, user.role, user.district_id)


def _account_key(username: str) -> str:
    return f"user:{username[:60]}"


def _address_key(address: str | None) -> str:
    return f"addr:{(address or 'unknown')[:60]}"


def _count_failure(session: Session, key: str, now: datetime, lock_at: int | None) -> None:
    """One more failure for a key, in one upsert: a window that has passed starts again at 1;
    an account key reaching ``lock_at`` is locked (and stays so after the window)."""
    t = SignInFailure.__table__
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    expired = t.c.first_at < now - FAILURE_WINDOW
    count = case((expired, 1), else_=t.c.failures + 1)
    stmt = insert(t).values(key=key, failures=1, first_at=now, last_at=now, locked=lock_at == 1)
    stmt = stmt.on_conflict_do_update(index_elements=[t.c.key], set_={
        "failures": count, "first_at": case((expired, now), else_=t.c.first_at), "last_at": now,
        "locked": or_(t.c.locked, count >= lock_at) if lock_at else t.c.locked})
    session.execute(stmt)


def sign_in(session: Session, username: str, password: str, address: str | None, channel: str) -> Principal:
    """The one door for a password (web sign-in and the API's token): throttled per address,
    locked per account after :data:`ACCOUNT_FAILURES` failures in :data:`FAILURE_WINDOW`, and
    audited (success and failure, with the address, never the password).

    Failures are counted per user name as typed, known or not, so that a lockout does not tell
    which names exist. The caller must commit even when this raises: the counters and the audit
    record of a failure are the point."""
    now = _now()
    username = username.strip()[:60]
    who = Principal(username or "(none)", "unknown", None)
    address_row = session.execute(select(SignInFailure.failures, SignInFailure.first_at)
                                  .where(SignInFailure.key == _address_key(address))).first()
    if address_row and address_row.failures >= ADDRESS_FAILURES and address_row.first_at >= now - FAILURE_WINDOW:
        audit(session, who, channel, "sign_in", "user", outcome="denied",
              detail=f"refused: too many failed sign-ins from {address or 'an unknown address'}")
        raise TooManyAttempts("too many failed sign-ins from your address; try again in a few minutes")
    locked = is_locked(session, username)
    try:
        principal = authenticate(session, username, password)
    except AuthError:
        principal = None
    if principal is not None and not locked:
        session.execute(delete(SignInFailure).where(SignInFailure.key == _account_key(username)))
        audit(session, principal, channel, "sign_in", "user", detail=f"signed in from {address or 'an unknown address'}")
        return principal
    if locked:
        audit(session, who, channel, "sign_in", "user", outcome="denied",
              detail=f"refused: the account is locked; attempt from {address or 'an unknown address'}")
        raise AccountLocked("this account is locked after too many failed sign-ins; ask an administrator to unlock it")
    _count_failure(session, _account_key(username), now, ACCOUNT_FAILURES)
    _count_failure(session, _address_key(address), now, None)
    audit(session, who, channel, "sign_in", "user", outcome="failed",
          detail=f"wrong user name or password from {address or 'an unknown address'}")
    raise AuthError("wrong username or password")


def is_locked(session: Session, username: str) -> bool:
    """Whether a user name is locked after failed sign-ins (known user or not)."""
    return bool(session.scalar(select(SignInFailure.locked).where(SignInFailure.key == _account_key(username))))


def unlock(session: Session, who: Principal, username: str, channel: str) -> bool:
    """An administrator clears an account's failed sign-ins (and its lock). True if it was locked."""
    who.require("users.manage")
    if session.scalar(select(User.id).where(User.username == username)) is None:
        raise ValueError(f"no user '{username}'")
    was = is_locked(session, username)
    session.execute(delete(SignInFailure).where(SignInFailure.key == _account_key(username)))
    audit(session, who, channel, "unlock", "user",
          detail=f"unlocked {username}" if was else f"cleared failed sign-ins of {username} (it was not locked)")
    return was


class Tokens:
    """Signed, expiring bearer tokens (and web session cookies) naming a user and a session.

    Each token carries the id of an ``auth_session`` row; signing out revokes that row. The
    session and its user (role, district, active) are read from the database in one indexed
    look-up at most once every :attr:`user_ttl` seconds per process (an API client sends a token
    with every request): a sign-out in this process takes effect at once (its cache entry is
    dropped), while a sign-out, deactivation or change of role in another worker process reaches
    requests here within :attr:`user_ttl` seconds."""

    user_ttl = 5.0

    def __init__(self, secret: str, max_age_hours: int = 12) -> None:
        self._s = URLSafeTimedSerializer(secret, salt="isps-auth")
        self._csrf_key = hashlib.sha256(f"isps-csrf:{secret}".encode()).digest()
        self.max_age = max_age_hours * 3600
        self._sessions: dict[str, tuple[float, Principal | None]] = {}

    def issue(self, session: Session, principal: Principal, channel: str) -> str:
        """A new session for a signed-in user, and its signed token."""
        sid = secrets.token_hex(16)
        session.execute(_SESSION_INSERT, {"id": sid, "username": principal.username, "channel": channel,
                                          "created_at": _now(), "revoked_at": None})
        return self._s.dumps({"u": principal.username, "s": sid})

    def _load(self, token: str) -> dict:
        try:
            return self._s.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise AuthError("your session has expired; sign in again") from None
        except BadSignature:
            raise AuthError("invalid token") from None

    def session_id(self, token: str | None) -> str | None:
        """The session a token names (signature checked, no database), or None."""
        if not token:
            return None
        try:
            return self._load(token).get("s")
        except AuthError:
            return None

    def csrf(self, token: str | None) -> str | None:
        """The anti-forgery token of a session: bound to it, unguessable without the secret key."""
        sid = self.session_id(token)
        return hmac.new(self._csrf_key, sid.encode(), hashlib.sha256).hexdigest()[:40] if sid else None

    def revoke(self, session: Session, token: str | None) -> str | None:
        """Sign out: the session is revoked for good (in this process at once). Its user, or None."""
        sid = self.session_id(token)
        if sid is None:
            return None
        session.execute(update(AuthSession).where(AuthSession.id == sid, AuthSession.revoked_at.is_(None))
                        .values(revoked_at=_now()))
        self._sessions[sid] = (time.monotonic() + self.user_ttl, None)
        return self._load(token).get("u")

    def principal(self, session: Session, token: str) -> Principal:
        data = self._load(token)
        sid = data.get("s")
        if not sid:
            raise AuthError("this session is no longer valid; sign in again")
        now = time.monotonic()
        cached = self._sessions.get(sid)
        if cached is None or cached[0] <= now:
            row = session.execute(_SESSION_USER, {"s": sid}).first()
            who = (Principal(row.username, row.role, row.district_id)
                   if row is not None and row.active and row.revoked_at is None else None)
            if len(self._sessions) > 10_000:
                self._sessions.clear()
            self._sessions[sid] = cached = (now + self.user_ttl, who)
        if cached[1] is None:
            raise AuthError("you have signed out or this account is not active; sign in again")
        return cached[1]


_SESSION_INSERT = AuthSession.__table__.insert()
# one look-up by primary key, joined to the user by its unique name
_SESSION_USER = (select(User.username, User.role, User.district_id, User.active, AuthSession.revoked_at)
                 .join(User, User.username == AuthSession.username).where(AuthSession.id == bindparam("s")))
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
    """One audit record per (entity id, district id), in one statement; no ids are read back.
    The action must be one of :data:`ACTIONS` and the outcome one of :data:`OUTCOMES`."""
    if action not in ACTIONS:
        raise ValueError(f"audit action '{action}' is not in the vocabulary (isps.access.service.ACTIONS)")
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome '{outcome}' is not one of {', '.join(OUTCOMES)}")
    # a list of parameter sets, so that the database is not asked to return the new ids
    session.execute(_AUDIT_INSERT, [_audit_row(who, channel, action, entity, e, d, outcome, detail)
                                    for e, d in targets])


def _trail_where(entity: str | None, entity_id: int | None, actor: str | None, action: str | None,
                 outcome: str | None, district_id: int | None, since: date | None, until: date | None) -> list:
    where = []
    if entity:
        where.append(AuditRecord.entity == entity)
    if entity_id is not None:
        where.append(AuditRecord.entity_id == entity_id)
    if actor:
        where.append(AuditRecord.actor == actor)
    if action:
        where.append(AuditRecord.action == action)
    if outcome:
        where.append(AuditRecord.outcome == outcome)
    if district_id is not None:
        where.append(AuditRecord.district_id == district_id)
    if since is not None:
        where.append(AuditRecord.at >= datetime.combine(since, datetime.min.time()))
    if until is not None:  # the whole last day
        where.append(AuditRecord.at < datetime.combine(until + timedelta(days=1), datetime.min.time()))
    return where


# the orders the audit log offers, each a (column, id) index; "at" is the id order, the order the
# log is written in (ids are given in the order records are written, "at" is the writer's clock)
TRAIL_SORTS = {"at": AuditRecord.id, "actor": AuditRecord.actor, "action": AuditRecord.action}
TRAIL_DEFAULT_SORT = keyset.Sort("at", desc=True)


def audit_trail(session: Session, *, entity: str | None = None, entity_id: int | None = None,
                actor: str | None = None, limit: int = 200, before_id: int | None = None,
                action: str | None = None, outcome: str | None = None, district_id: int | None = None,
                since: date | None = None, until: date | None = None,
                sort: keyset.Sort | None = None) -> list[AuditRecord]:
    """The audit log, newest first unless another order (:data:`TRAIL_SORTS`) is asked for, a page
    at a time by keyset (``before_id``: the last id of the previous page, in whichever order),
    filtered by who, what, which record, outcome, district and day range."""
    stmt = select(AuditRecord).where(*_trail_where(entity, entity_id, actor, action, outcome, district_id,
                                                   since, until))
    sort = sort or TRAIL_DEFAULT_SORT
    if sort.key not in TRAIL_SORTS:
        raise keyset.SortError(f"sort must be one of {', '.join(TRAIL_SORTS)}, not {sort.key!r}")
    rows = keyset.page(session, stmt, TRAIL_SORTS[sort.key], AuditRecord.id, after=before_id or None, limit=limit,
                       desc=sort.desc, nullable=False)
    return [r[0] for r in rows]


def count_trail(session: Session, *, entity: str | None = None, entity_id: int | None = None,
                actor: str | None = None, action: str | None = None, outcome: str | None = None,
                district_id: int | None = None, since: date | None = None, until: date | None = None) -> int:
    """How many audit records :func:`audit_trail` pages through with the same filters."""
    return session.scalar(select(func.count()).select_from(AuditRecord).where(
        *_trail_where(entity, entity_id, actor, action, outcome, district_id, since, until))) or 0


# ---------------------------------------------------------------- managing users (administrators)

USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
PASSWORD_MIN = 10


class UserError(ValueError):
    """A user change that cannot be made; the message names the user and the field."""


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    full_name: str
    role: str
    district_id: int | None
    active: bool
    locked: bool
    created_at: datetime | None


def _user_where(role: str | None, district_id: int | None, active: bool | None, locked_only: bool) -> list:
    where = []
    if role:
        where.append(User.role == role)
    if district_id is not None:
        where.append(User.district_id == district_id)
    if active is not None:
        where.append(User.active == active)
    if locked_only:
        where.append(User.username.in_(select(func.substr(SignInFailure.key, 6))
                                       .where(SignInFailure.key.like("user:%"), SignInFailure.locked)))
    return where


def list_users(session: Session, *, after: int | None = None, limit: int = 50, role: str | None = None,
               district_id: int | None = None, active: bool | None = None, locked_only: bool = False) -> list[UserRow]:
    """Users by id, a keyset page at a time (``after`` the last id shown), with whether each is locked
    after failed sign-ins (one join on the failure counters, never a look-up per user)."""
    lock = (select(SignInFailure.locked).where(SignInFailure.key == literal("user:") + User.username)
            .correlate(User).scalar_subquery())
    stmt = select(User, lock).where(*_user_where(role, district_id, active, locked_only))
    if after:
        stmt = stmt.where(User.id > after)
    rows = session.execute(stmt.order_by(User.id).limit(limit)).all()
    return [UserRow(u.id, u.username, u.full_name, u.role, u.district_id, u.active, bool(locked), u.created_at)
            for u, locked in rows]


def count_users(session: Session, *, role: str | None = None, district_id: int | None = None,
                active: bool | None = None, locked_only: bool = False) -> int:
    """How many users :func:`list_users` pages through with the same filters."""
    return session.scalar(select(func.count()).select_from(User).where(
        *_user_where(role, district_id, active, locked_only))) or 0


def _check_username(username: str) -> str:
    name = username.strip().lower()
    if not 2 <= len(name) <= 60 or not set(name) <= USERNAME_CHARS:
        raise UserError(f"user name '{username[:60]}': 2 to 60 letters, digits, dots, dashes or underscores")
    return name


def _check_password(username: str, password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise UserError(f"user {username}: password: at least {PASSWORD_MIN} characters")
    if password.strip().lower() == username:
        raise UserError(f"user {username}: password: must not be the user name")


def _role_district(username: str, role: str, district_id: int | None) -> int | None:
    if role not in ROLES:
        raise UserError(f"user {username}: role: must be one of {', '.join(ROLES)}")
    if role in SCOPED_ROLES and district_id is None:
        raise UserError(f"user {username}: district: a {ROLE_LABELS[role].lower()} needs a district")
    return district_id if role in SCOPED_ROLES else None


def new_password() -> str:
    """An initial or reset password, shown once to the administrator: 16 URL-safe characters."""
    return secrets.token_urlsafe(12)


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"no user '{username[:60]}'")
    return user


def _end_sessions(session: Session, username: str) -> None:
    """Sign a user out everywhere (disabled, password reset): their open sessions are revoked."""
    session.execute(update(AuthSession).where(AuthSession.username == username, AuthSession.revoked_at.is_(None))
                    .values(revoked_at=_now()))


def add_user(session: Session, who: Principal, channel: str, username: str, role: str, *, full_name: str = "",
             district_id: int | None = None, password: str | None = None) -> tuple[User, str | None]:
    """An administrator creates a user (audited ``create``). Without a password one is made and
    returned, to be shown once; with one, None is returned in its place."""
    who.require("users.manage")
    name = _check_username(username)
    district_id = _role_district(name, role, district_id)
    if district_id is not None:
        from isps.registry.models import District
        if session.get(District, district_id) is None:
            raise UserError(f"user {name}: district: no district {district_id}")
    made = password is None
    password = new_password() if made else password
    _check_password(name, password)
    try:
        user = create_user(session, name, password, role, full_name.strip()[:120], district_id)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    audit(session, who, channel, "create", "user", user.id, district_id,
          detail=f"created {name} as {role}" + (f" in district {district_id}" if district_id else "")
          + ("; initial password generated" if made else "; initial password set"))
    return user, password if made else None


def change_role(session: Session, who: Principal, channel: str, username: str, role: str,
                district_id: int | None) -> User:
    """An administrator changes a user's role and district scope (audited ``edit``, old and new). The
    new scope applies within :attr:`Tokens.user_ttl` seconds to sessions already open."""
    who.require("users.manage")
    user = _user(session, username)
    district_id = _role_district(user.username, role, district_id)
    if user.username == who.username and role != user.role:
        raise UserError(f"user {user.username}: role: you may not change your own role")
    if district_id is not None:
        from isps.registry.models import District
        if session.get(District, district_id) is None:
            raise UserError(f"user {user.username}: district: no district {district_id}")
    before = f"{user.role}" + (f" in district {user.district_id}" if user.district_id else "")
    user.role, user.district_id = role, district_id
    session.flush()
    audit(session, who, channel, "edit", "user", user.id, district_id,
          detail=f"{user.username}: {before} -> {role}" + (f" in district {district_id}" if district_id else ""))
    return user


def set_active(session: Session, who: Principal, channel: str, username: str, active: bool) -> User:
    """An administrator disables a user (signed out everywhere, can no longer sign in) or enables
    them again; audited ``disable`` / ``enable``. No one disables their own account."""
    who.require("users.manage")
    user = _user(session, username)
    if not active and user.username == who.username:
        raise UserError(f"user {user.username}: you may not disable your own account")
    user.active = active
    if not active:
        _end_sessions(session, user.username)
    session.flush()
    audit(session, who, channel, "enable" if active else "disable", "user", user.id, user.district_id,
          detail=f"{'enabled' if active else 'disabled'} {user.username}")
    return user


def reset_password(session: Session, who: Principal, channel: str, username: str,
                   password: str | None = None) -> str | None:
    """An administrator sets a new password (or has one made, returned to be shown once); the user's
    sessions are ended and a lock after failed sign-ins cleared. Audited ``reset_password``."""
    who.require("users.manage")
    user = _user(session, username)
    made = password is None
    password = new_password() if made else password
    _check_password(user.username, password)
    user.password_hash = hash_password(password)
    _end_sessions(session, user.username)
    session.execute(delete(SignInFailure).where(SignInFailure.key == _account_key(user.username)))
    session.flush()
    audit(session, who, channel, "reset_password", "user", user.id, user.district_id,
          detail=f"password of {user.username} {'generated' if made else 'set'}; sessions ended")
    return password if made else None
