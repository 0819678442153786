"""The citizen's own sign-in: a one-time code sent by SMS to a phone registered for the household,
then a short-lived citizen session (never a staff session).

* **Asking for a code.** CNIC + phone. When the phone is registered for the CNIC holder's household
  (:func:`isps.citizen.standing.phone_registered`) a 6-digit code is queued as an SMS (kind ``otp``);
  otherwise nothing is sent, and the answer is the same, so a stranger learns nothing about a CNIC.
  Every request is a ``citizen_code`` row (sent or not), so the limits count refused requests too:
  :data:`PHONE_LIMIT` codes per phone and :data:`ADDRESS_LIMIT` requests per address in
  :data:`WINDOW`.
* **The code.** Valid :data:`CODE_LIFE` (ten minutes), :data:`TRIES` tries, kept only as a salted
  PBKDF2 hash; a newer code replaces the older ones; a used code is spent.
* **The session.** A random token in the citizen's cookie, kept as its SHA-256; :data:`SESSION_LIFE`
  from sign-in (thirty minutes), ended by signing out. It names the person and the household and
  carries the anti-forgery token of the citizen's forms.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, SmallInteger, String, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from isps.access.service import Principal, audit
from isps.citizen import standing as standing_of
from isps.db import Base, BigId
from isps.messaging import phones
from isps.messaging import queue as outbound
from isps.registry import cnic as cnic_rules
from isps.registry import current
from isps.registry.models import Individual

CODE_LIFE = timedelta(minutes=10)
TRIES = 5
WINDOW = timedelta(minutes=15)
PHONE_LIMIT = 3
ADDRESS_LIMIT = 10
SESSION_LIFE = timedelta(minutes=30)
ITERATIONS = 60_000
ROLE = "citizen"
CHANNEL = "web"


class CitizenCode(Base):
    """One request for a sign-in code (migration ``0016_selfservice``)."""

    __tablename__ = "citizen_code"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    phone: Mapped[str] = mapped_column(String(16))
    cnic: Mapped[str] = mapped_column(String(13))
    address: Mapped[str] = mapped_column(String(64))          # the requester's address, hashed
    individual_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: nothing was sent
    sent: Mapped[bool] = mapped_column(Boolean)
    salt: Mapped[str | None] = mapped_column(String(32), nullable=True)
    code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tries: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (Index("ix_citizen_code_phone", "phone", "created_at"),
                      Index("ix_citizen_code_address", "address", "created_at"),
                      Index("ix_citizen_code_cnic", "cnic", "phone", "id"))


class CitizenSession(Base):
    """A signed-in citizen (migration ``0016_selfservice``)."""

    __tablename__ = "citizen_session"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    individual_id: Mapped[int] = mapped_column(BigInteger)
    household_id: Mapped[int] = mapped_column(BigInteger)
    district_id: Mapped[int] = mapped_column(SmallInteger)
    phone: Mapped[str] = mapped_column(String(16))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    code_id: Mapped[int] = mapped_column(Integer)


class SignInError(ValueError):
    """A sign-in step refused; ``reason`` is a label key the page shows (``code.wrong``, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Citizen:
    """Who a citizen session is: the person, their household and district, and the session's token."""

    individual_id: int
    household_id: int
    district_id: int
    cnic: str
    name: str
    phone: str
    csrf: str

    @property
    def masked(self) -> str:
        return cnic_rules.mask(self.cnic)

    @property
    def principal(self) -> Principal:
        """The actor of the citizen's audit records: ``citizen:<masked CNIC>``."""
        return Principal(f"citizen:{self.masked}", ROLE, self.district_id)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _code_hash(code: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", code.encode(), bytes.fromhex(salt), ITERATIONS).hex()


def address_key(address: str | None) -> str:
    """A requester's address as it is kept: a digest, enough to count requests from it."""
    return _digest("isps-address:" + (address or "unknown"))


def normalise_phone(raw: str) -> str:
    """A Pakistani mobile number as ``923001234567`` (messaging's rule); ``PhoneError`` (a ValueError) else."""
    return phones.normalise(raw)


def _count(session: Session, column, value: str, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(CitizenCode)
                          .where(column == value, CitizenCode.created_at > since)) or 0


def request_code(session: Session, raw_cnic: str, phone: str, address: str | None, now: datetime,
                 lang: str = "ur") -> bool:
    """Ask for a sign-in code (see the module docstring). Returns whether a code was sent, for the
    caller's tests and logs only: the page must say the same either way. Raises :class:`SignInError`
    (``limit``) when the phone or address has asked too often, and ``cnic`` for a malformed CNIC."""
    try:
        number = cnic_rules.validate(raw_cnic)
    except cnic_rules.CnicError as exc:
        raise SignInError("cnic", str(exc)) from None
    key = address_key(address)
    since = now - WINDOW
    if (_count(session, CitizenCode.phone, phone, since) >= PHONE_LIMIT
            or _count(session, CitizenCode.address, key, since) >= ADDRESS_LIMIT):
        raise SignInError("limit", "too many codes asked for: wait a quarter of an hour")
    person = next((p for p in session.scalars(select(Individual).where(Individual.cnic == number, current.clause()))
                   if standing_of.phone_registered(session, p.household_id, phone)), None)
    row = CitizenCode(phone=phone, cnic=number, address=key, individual_id=person.id if person else None,
                      sent=person is not None, created_at=now, expires_at=now + CODE_LIFE, tries=0)
    who = Principal(f"citizen:{cnic_rules.mask(number)}", ROLE, person.district_id if person else None)
    if person is None:
        session.add(row)
        session.flush()
        audit(session, who, CHANNEL, "sign_in", "individual", None, outcome="denied",
              detail="sign-in code asked for with a phone not registered for the CNIC (nothing sent)")
        return False
    # a newer code replaces the older ones
    session.execute(update(CitizenCode).where(CitizenCode.cnic == number, CitizenCode.phone == phone,
                                              CitizenCode.used_at.is_(None), CitizenCode.sent.is_(True))
                    .values(used_at=now))
    code = f"{secrets.randbelow(10**6):06d}"
    row.salt = secrets.token_hex(16)
    row.code_hash = _code_hash(code, row.salt)
    session.add(row)
    session.flush()
    text = (f"ISPS: آپ کا کوڈ {code} ہے۔ 10 منٹ کے لیے۔ کسی کو نہ بتائیں۔" if lang == "ur"
            else f"ISPS: your sign-in code is {code}. Valid 10 minutes. Do not share it.")
    _enqueue(session, phone=phone, text=text, key=f"otp:{row.id}", lang=lang, individual_id=person.id,
             household_id=person.household_id, district_id=person.district_id)
    audit(session, who, CHANNEL, "send", "individual", person.id, person.district_id, detail="sign-in code sent by SMS")
    return True


def _enqueue(session: Session, **message) -> None:
    outbound.enqueue(session, kind="otp", **message)


def verify(session: Session, raw_cnic: str, phone: str, code: str, now: datetime) -> tuple[str, Citizen]:
    """Check a code; returns the new session's cookie token and the citizen. Raises
    :class:`SignInError`: ``code.wrong`` (tries left or not: the same answer whether a code was sent),
    ``code.expired``, ``code.tries`` (five wrong tries spent it)."""
    try:
        number = cnic_rules.validate(raw_cnic)
    except cnic_rules.CnicError as exc:
        raise SignInError("cnic", str(exc)) from None
    row = session.scalar(select(CitizenCode).where(CitizenCode.cnic == number, CitizenCode.phone == phone)
                         .order_by(CitizenCode.id.desc()).limit(1).with_for_update())
    who = Principal(f"citizen:{cnic_rules.mask(number)}", ROLE, None)
    # a request that sent nothing answers exactly as a real code does: wrong, spent after five tries, expired
    if row is None or row.tries >= TRIES or now > row.expires_at or not row.sent or row.used_at is not None:
        reason = ("code.wrong" if row is None else "code.tries" if row.tries >= TRIES
                  else "code.expired" if now > row.expires_at else "code.wrong")
        if row is not None and reason == "code.wrong":
            row.tries += 1
            if row.tries >= TRIES:
                reason = "code.tries"
        audit(session, who, CHANNEL, "sign_in", "individual", None, outcome="denied", detail=f"no live sign-in code ({reason})")
        raise SignInError(reason, "that code cannot be used")
    clean = "".join(ch for ch in code or "" if ch.isdigit())
    if len(clean) != 6 or not hmac.compare_digest(_code_hash(clean, row.salt), row.code_hash):
        row.tries += 1
        if row.tries >= TRIES:
            row.used_at = now
        audit(session, who, CHANNEL, "sign_in", "individual", row.individual_id, outcome="denied",
              detail=f"wrong sign-in code (try {row.tries} of {TRIES})")
        raise SignInError("code.tries" if row.tries >= TRIES else "code.wrong", "that code is not right")
    row.used_at = now
    person = session.get(Individual, row.individual_id)
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    session.add(CitizenSession(token_hash=_digest(token), individual_id=person.id, household_id=person.household_id,
                               district_id=person.district_id, phone=phone, csrf=csrf, created_at=now,
                               expires_at=now + SESSION_LIFE, code_id=row.id))
    citizen = Citizen(person.id, person.household_id, person.district_id, number, person.full_name, phone, csrf)
    audit(session, citizen.principal, CHANNEL, "sign_in", "individual", person.id, person.district_id,
          detail="signed in with a code sent by SMS")
    session.flush()
    return token, citizen


def citizen_of(session: Session, token: str | None, now: datetime) -> Citizen | None:
    """The citizen a cookie token belongs to, while the session lives; None otherwise."""
    if not token or len(token) > 100:
        return None
    row = session.get(CitizenSession, _digest(token))
    if row is None or row.ended_at is not None or now > row.expires_at:
        return None
    person = session.get(Individual, row.individual_id)
    if person is None or person.household_id != row.household_id or not current.is_current(person):
        return None
    return Citizen(person.id, row.household_id, row.district_id, person.cnic or "", person.full_name, row.phone,
                   row.csrf)


def sign_out(session: Session, token: str | None, now: datetime) -> None:
    if not token or len(token) > 100:
        return
    row = session.get(CitizenSession, _digest(token))
    if row is not None and row.ended_at is None:
        row.ended_at = now
        person = session.get(Individual, row.individual_id)
        who = Principal(f"citizen:{cnic_rules.mask(person.cnic if person else '')}", ROLE, row.district_id)
        audit(session, who, CHANNEL, "sign_out", "individual", row.individual_id, row.district_id)
