"""Partners, their signing keys, data-sharing agreements and consents; OAuth2 client-credential
tokens (JWTs signed by ISPS with Ed25519, with an expiry).

A partner is not a staff user: it is a system registered with a ``sender_id`` (the DCI header's
``sender_id``), an OAuth2 client id and secret, a callback base URI and one or more public keys.
Its active agreement lists the fields it may receive (see :data:`FIELDS`) and says whether a
person's consent must be on record before their record is shared.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime

import jwt
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from isps import config
from isps.access.service import hash_password, verify_password
from isps.interop.dci import signing
from isps.interop.dci.models import DciAgreement, DciConsent, DciPartner, DciPartnerKey

# Fields a data-sharing agreement can grant. Member fields describe a person, group fields a household.
MEMBER_FIELDS = ("identifier", "name", "father_husband_name", "sex", "birth_date", "death_date", "marital_status",
                 "is_disabled", "disability", "education_level", "employment_status", "occupation",
                 "relationship_head", "phone_number", "registration_date", "address")
GROUP_FIELDS = ("group_identifier", "place", "poverty_score", "group_size", "group_head_info", "member_list",
                "housing", "assets", "registration_date", "last_updated", "address")
FIELDS = tuple(dict.fromkeys(MEMBER_FIELDS + GROUP_FIELDS))
TOKEN_AUDIENCE = "dci"
VERIFIED_TOKENS_MAX = 10_000  # verified bearer tokens remembered per process


class PartnerError(ValueError):
    pass


TEST_PARTNERS_OFF = ("test partners are refused: this deployment does not set ISPS_DCI_TEST_PARTNERS=1 "
                     "(never set it in production)")


class TokenError(PermissionError):
    pass


@dataclass(frozen=True)
class Agreement:
    id: int
    reference: str
    purpose: str
    fields: frozenset
    consent_required: bool


@dataclass(frozen=True)
class Partner:
    id: int
    sender_id: str
    name: str
    callback_uri: str | None
    agreement: Agreement | None
    test: bool = False  # a test partner (conformance suite): config.dci_test_partners must be on
    accept_unsigned: bool = False  # a test partner whose signatures are not checked

    @property
    def username(self) -> str:  # Principal-like, for access.service.audit
        return self.sender_id[:60]

    role = "partner"
    district_id = None


# ---------------------------------------------------------------- registration

def register_partner(session: Session, sender_id: str, name: str, callback_uri: str | None = None,
                     test: bool = False, accept_unsigned: bool = False) -> tuple[DciPartner, str]:
    """Register a partner; returns it and its client secret (shown once, stored hashed). A test
    partner (``test``, for a conformance suite) only where the deployment enables them; only a test
    partner may be ``accept_unsigned`` (its messages' signatures are not checked)."""
    if accept_unsigned and not test:
        raise PartnerError("only a test partner may send unsigned messages: register it as a test partner")
    if test and not config.dci_test_partners():
        raise PartnerError(TEST_PARTNERS_OFF)
    if session.scalar(select(DciPartner.id).where(DciPartner.sender_id == sender_id)) is not None:
        raise PartnerError(f"partner '{sender_id}' is already registered")
    secret = secrets.token_urlsafe(32)
    partner = DciPartner(sender_id=sender_id, name=name, client_id=f"dci-{uuid.uuid4().hex[:16]}",
                         client_secret_hash=hash_password(secret), callback_uri=callback_uri, active=True,
                         test_partner=test, accept_unsigned=accept_unsigned)
    session.add(partner)
    session.flush()
    _CACHE.clear()
    return partner, secret


def add_key(session: Session, partner_id: int, kid: str, algorithm: str, public_key_pem: str) -> DciPartnerKey:
    try:
        signing.load_public_key(public_key_pem, algorithm)
    except ValueError as exc:
        raise PartnerError(f"key {kid}: {exc}") from None
    if "|" in kid:
        raise PartnerError("a key id may not contain '|'")
    key = DciPartnerKey(partner_id=partner_id, kid=kid, algorithm=algorithm, public_key_pem=public_key_pem, active=True)
    session.add(key)
    session.flush()
    _CACHE.clear()
    return key


def set_agreement(session: Session, partner_id: int, reference: str, purpose: str, fields: list[str],
                  consent_required: bool, actor: str, valid_from: date | None = None,
                  valid_to: date | None = None) -> DciAgreement:
    """Record a partner's data-sharing agreement; it replaces the one in force."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise PartnerError(f"unknown fields {', '.join(unknown)}; an agreement may grant {', '.join(FIELDS)}")
    session.execute(update(DciAgreement).where(DciAgreement.partner_id == partner_id, DciAgreement.active)
                    .values(active=False))
    row = DciAgreement(partner_id=partner_id, reference=reference, purpose=purpose, fields=sorted(set(fields)),
                       consent_required=consent_required, valid_from=valid_from or date.today(), valid_to=valid_to,
                       active=True, created_by=actor)
    session.add(row)
    session.flush()
    _CACHE.clear()
    return row


def record_consent(session: Session, partner_id: int, individual_id: int, purpose: str, actor: str,
                   given_on: date | None = None, expires_on: date | None = None,
                   evidence: str | None = None) -> DciConsent:
    row = DciConsent(partner_id=partner_id, individual_id=individual_id, purpose=purpose,
                     given_on=given_on or date.today(), expires_on=expires_on, evidence=evidence, recorded_by=actor)
    session.add(row)
    session.flush()
    return row


def record_consent_by_identifier(session: Session, partner_id: int, number: str, actor: str,
                                 purpose: str | None = None, expires_on: date | None = None,
                                 evidence: str | None = None) -> DciConsent:
    """A person's consent, found by CNIC or B-form number, for ``purpose`` or else the purpose of the
    partner's agreement in force: consent gates results only when its purpose is the agreement's
    (:func:`isps.interop.dci.search.member_consent`), so that is the purpose an officer means."""
    person_id = _person_by_identifier(session, number)
    if purpose is None:
        purpose = _agreement_purpose(session, partner_id)
    return record_consent(session, partner_id, person_id, purpose, actor, expires_on=expires_on, evidence=evidence)


def _person_by_identifier(session: Session, number: str) -> int:
    """The one registry person holding a CNIC or B-form number (messages name it masked)."""
    from isps.registry import cnic as cnic_rules
    from isps.registry.models import Individual

    try:
        normalised = cnic_rules.normalise(number)
    except cnic_rules.CnicError as exc:
        raise PartnerError(f"identifier {cnic_rules.mask_raw(number)}: {exc}") from None
    people = session.scalars(select(Individual.id).where(Individual.cnic == normalised).limit(2)).all()
    if len(people) != 1:
        raise PartnerError(f"no one in the registry holds {cnic_rules.mask(normalised)}" if not people else
                           f"more than one person holds {cnic_rules.mask(normalised)}: correct the registry first")
    return people[0]


def revoke_consent(session: Session, consent_id: int) -> None:
    session.execute(update(DciConsent).where(DciConsent.id == consent_id).values(revoked_at=datetime.now()))


# ---------------------------------------------------------------- the administrator's desk (audited)

def _partner(session: Session, partner_id: int) -> DciPartner:
    row = session.get(DciPartner, partner_id)
    if row is None:
        raise PartnerError(f"no partner {partner_id}")
    return row


def list_partners(session: Session, *, after: int | None = None, limit: int = 50) -> list[dict]:
    """Partners by id, a keyset page at a time, each with its agreement in force (if any)."""
    stmt = select(DciPartner, DciAgreement).outerjoin(
        DciAgreement, and_(DciAgreement.partner_id == DciPartner.id, DciAgreement.active))
    if after:
        stmt = stmt.where(DciPartner.id > after)
    return [{"id": p.id, "sender_id": p.sender_id, "name": p.name, "client_id": p.client_id, "active": p.active,
             "test": p.test_partner, "agreement": a.reference if a else None, "purpose": a.purpose if a else None}
            for p, a in session.execute(stmt.order_by(DciPartner.id).limit(limit))]


def count_partners(session: Session) -> int:
    from sqlalchemy import func
    return session.scalar(select(func.count()).select_from(DciPartner)) or 0


def partner_file(session: Session, partner_id: int) -> dict:
    """One partner: its registration, signing keys, every agreement (newest first) and its consents on record."""
    from sqlalchemy import func
    p = _partner(session, partner_id)
    keys = list(session.scalars(select(DciPartnerKey).where(DciPartnerKey.partner_id == p.id).order_by(DciPartnerKey.id)))
    agreements = list(session.scalars(select(DciAgreement).where(DciAgreement.partner_id == p.id)
                                      .order_by(DciAgreement.id.desc())))
    consents = session.scalar(select(func.count()).select_from(DciConsent).where(
        DciConsent.partner_id == p.id, DciConsent.revoked_at.is_(None))) or 0
    return {"partner": p, "keys": keys, "agreements": agreements, "consents": consents}


def register(session: Session, who, channel: str, sender_id: str, name: str, callback_uri: str | None = None,
             test: bool = False, accept_unsigned: bool = False) -> tuple[DciPartner, str]:
    """:func:`register_partner` by an administrator, checked and audited (``create``)."""
    from isps.access.service import audit

    who.require("partners.manage")
    sender_id, name = sender_id.strip(), name.strip()
    if not sender_id or len(sender_id) > 100 or any(c.isspace() for c in sender_id):
        raise PartnerError("sender id: 1 to 100 characters without spaces (the DCI header's sender_id)")
    if not name or len(name) > 200:
        raise PartnerError(f"partner {sender_id}: name: 1 to 200 characters")
    callback_uri = (callback_uri or "").strip() or None
    if callback_uri and (len(callback_uri) > 300 or not callback_uri.startswith(("https://", "http://"))):
        raise PartnerError(f"partner {sender_id}: callback: an http(s) address of at most 300 characters")
    partner, secret = register_partner(session, sender_id, name, callback_uri, test, accept_unsigned)
    audit(session, who, channel, "create", "dci_partner", partner.id,
          detail=f"registered {sender_id} ({name[:80]}), client {partner.client_id}" + (" TEST PARTNER" if test else ""))
    return partner, secret


def rotate_secret(session: Session, who, channel: str, partner_id: int) -> str:
    """A new client secret (returned once, stored hashed); the old one stops working at once.
    Tokens already issued stay valid until they expire (at most the token lifetime)."""
    from isps.access.service import audit

    who.require("partners.manage")
    p = _partner(session, partner_id)
    secret = secrets.token_urlsafe(32)
    p.client_secret_hash = hash_password(secret)
    session.flush()
    _CACHE.clear()
    audit(session, who, channel, "rotate", "dci_partner", p.id, detail=f"new client secret for {p.sender_id}")
    return secret


def set_partner_active(session: Session, who, channel: str, partner_id: int, active: bool) -> DciPartner:
    """Revoke a partner (no new token, no request served) or restore it; audited."""
    from isps.access.service import audit

    who.require("partners.manage")
    p = _partner(session, partner_id)
    p.active = active
    session.flush()
    _CACHE.clear()
    audit(session, who, channel, "enable" if active else "revoke", "dci_partner", p.id,
          detail=f"{'restored' if active else 'revoked'} partner {p.sender_id}")
    return p


def add_signing_key(session: Session, who, channel: str, partner_id: int, kid: str, algorithm: str,
                    public_key_pem: str) -> DciPartnerKey:
    """:func:`add_key` by an administrator, audited (``create``)."""
    from isps.access.service import audit

    who.require("partners.manage")
    p = _partner(session, partner_id)
    kid = kid.strip()
    if not kid or len(kid) > 100:
        raise PartnerError(f"partner {p.sender_id}: key id: 1 to 100 characters")
    if algorithm not in signing.ALGORITHMS:
        raise PartnerError(f"partner {p.sender_id}: algorithm: ed25519 or rsa-sha256")
    if session.scalar(select(DciPartnerKey.id).where(DciPartnerKey.partner_id == p.id, DciPartnerKey.kid == kid,
                                                     DciPartnerKey.active)) is not None:
        raise PartnerError(f"partner {p.sender_id}: key {kid} is registered already; revoke it first")
    key = add_key(session, p.id, kid, algorithm, public_key_pem.strip() + "\n")
    audit(session, who, channel, "create", "dci_partner_key", key.id, detail=f"key {kid} ({algorithm}) for {p.sender_id}")
    return key


def revoke_key(session: Session, who, channel: str, partner_id: int, key_id: int) -> DciPartnerKey:
    """A signing key no longer verifies the partner's messages; audited."""
    from isps.access.service import audit

    who.require("partners.manage")
    key = session.get(DciPartnerKey, key_id)
    if key is None or key.partner_id != partner_id:
        raise PartnerError(f"partner {partner_id} has no key {key_id}")
    key.active = False
    session.flush()
    _CACHE.clear()
    audit(session, who, channel, "revoke", "dci_partner_key", key.id, detail=f"key {key.kid} of partner {partner_id}")
    return key


def make_agreement(session: Session, who, channel: str, partner_id: int, reference: str, purpose: str,
                   fields: list[str], consent_required: bool, valid_to: date | None = None) -> DciAgreement:
    """:func:`set_agreement` by an administrator (it replaces the one in force), checked and audited."""
    from isps.access.service import audit

    who.require("partners.manage")
    p = _partner(session, partner_id)
    reference, purpose = reference.strip(), purpose.strip()
    if not reference or len(reference) > 100:
        raise PartnerError(f"agreement for {p.sender_id}: reference: 1 to 100 characters")
    if not purpose or len(purpose) > 60:
        raise PartnerError(f"agreement {reference}: purpose: 1 to 60 characters")
    if not fields:
        raise PartnerError(f"agreement {reference}: fields: grant at least one field")
    if valid_to is not None and valid_to < date.today():
        raise PartnerError(f"agreement {reference}: valid to: a day from today on")
    row = set_agreement(session, p.id, reference, purpose, fields, consent_required, who.username, valid_to=valid_to)
    audit(session, who, channel, "create", "dci_agreement", row.id,
          detail=f"{reference} for {p.sender_id}: {purpose}; {', '.join(row.fields)}"
                 + ("; consent required" if consent_required else ""))
    return row


def end_agreement(session: Session, who, channel: str, partner_id: int, agreement_id: int) -> DciAgreement:
    """The agreement ends today: the partner receives no more fields under it; audited (``end``)."""
    from isps.access.service import audit

    who.require("partners.manage")
    row = session.get(DciAgreement, agreement_id)
    if row is None or row.partner_id != partner_id:
        raise PartnerError(f"partner {partner_id} has no agreement {agreement_id}")
    if not row.active:
        raise PartnerError(f"agreement {row.reference} has ended already")
    row.active, row.valid_to = False, date.today()
    session.flush()
    _CACHE.clear()
    audit(session, who, channel, "end", "dci_agreement", row.id, detail=f"ended {row.reference} of partner {partner_id}")
    return row


def consent_at_counter(session: Session, who, channel: str, partner_id: int, number: str | None = None, *,
                       individual_id: int | None = None, purpose: str | None = None, expires_on: date | None = None,
                       evidence: str | None = None) -> tuple[DciConsent, str]:
    """A counter operator or officer records a citizen's consent to share their record with a partner,
    the person named by CNIC / B-form ``number`` or chosen by ``individual_id`` from their household:
    the person must be registered in the user's district (district roles; a refusal is audited and
    nothing written), the partner active, the purpose that of its agreement unless given. Audited
    ``record`` on the person. Returns the consent and the person's masked CNIC."""
    from isps.access.service import AccessError, audit
    from isps.registry import cnic as cnic_rules
    from isps.registry.models import Individual

    who.require("consent.record")
    p = _partner(session, partner_id)
    if not p.active:
        raise PartnerError(f"partner {p.sender_id} is revoked: no consent can be recorded for it")
    if expires_on is not None and expires_on <= date.today():
        raise PartnerError("consent: expires on: a day after today")
    evidence = (evidence or "").strip()[:200] or None
    if individual_id is not None:
        person = session.get(Individual, individual_id)
        if person is None:
            raise PartnerError(f"consent: no person {individual_id} in the registry")
    elif number and number.strip():
        person = session.get(Individual, _person_by_identifier(session, number))
    else:
        raise PartnerError("consent: give the person's CNIC or B-form number")
    if who.scope is not None and person.district_id != who.scope:
        audit(session, who, channel, "record", "individual", person.id, who.scope, outcome="denied",
              detail=f"refused: consent for {p.sender_id} of a person outside the user's district")
        raise AccessError("this person is registered in another district: their consent is recorded there")
    purpose = (purpose or "").strip()[:60] or _agreement_purpose(session, p.id)
    row = record_consent(session, p.id, person.id, purpose, who.username, expires_on=expires_on, evidence=evidence)
    audit(session, who, channel, "record", "individual", person.id, person.district_id,
          detail=f"consent {row.id} for {p.sender_id} ({row.purpose})" + (f", evidence {evidence[:60]}" if evidence else ""))
    return row, cnic_rules.mask(person.cnic) if person.cnic else "—"


def _agreement_purpose(session: Session, partner_id: int) -> str:
    purpose = session.scalar(select(DciAgreement.purpose).where(DciAgreement.partner_id == partner_id,
                                                                DciAgreement.active))
    if purpose is None:
        raise PartnerError("this partner has no agreement in force: give the consent's purpose")
    return purpose


# ---------------------------------------------------------------- look-ups (cached briefly per process)

_CACHE: dict[tuple, tuple[float, object]] = {}
CACHE_TTL_S = 5.0


def _cached(session: Session, key: tuple, load):
    key = (str(session.get_bind().url), *key)
    hit = _CACHE.get(key)
    now = time.monotonic()
    if hit and now - hit[0] < CACHE_TTL_S:
        return hit[1]
    value = load()
    _CACHE[key] = (now, value)
    return value


def partner_by_sender(session: Session, sender_id: str) -> Partner | None:
    def load():
        row = session.scalar(select(DciPartner).where(DciPartner.sender_id == sender_id, DciPartner.active))
        if row is None:
            return None
        today = date.today()
        a = session.scalar(select(DciAgreement).where(
            DciAgreement.partner_id == row.id, DciAgreement.active, DciAgreement.valid_from <= today,
            or_(DciAgreement.valid_to.is_(None), DciAgreement.valid_to >= today)).order_by(DciAgreement.id.desc()))
        agreement = Agreement(a.id, a.reference, a.purpose, frozenset(a.fields), a.consent_required) if a else None
        return Partner(row.id, row.sender_id, row.name, row.callback_uri, agreement, row.test_partner,
                       row.accept_unsigned)
    return _cached(session, ("partner", sender_id), load)


def public_key(session: Session, partner: Partner, kid: str, algorithm: str):
    def load():
        row = session.scalar(select(DciPartnerKey).where(and_(
            DciPartnerKey.partner_id == partner.id, DciPartnerKey.kid == kid, DciPartnerKey.active)))
        if row is None or row.algorithm != algorithm:
            return None
        return signing.load_public_key(row.public_key_pem, row.algorithm)
    return _cached(session, ("key", partner.id, kid, algorithm), load)


def clear_cache() -> None:
    _CACHE.clear()


# ---------------------------------------------------------------- OAuth2 client credentials

class TokenIssuer:
    """Issues and checks the bearer JWTs of the token endpoint (EdDSA, signed by ISPS)."""

    def __init__(self, issuer: str, private_key, ttl_s: int = 3600) -> None:
        self.issuer = issuer
        self.key = private_key
        self.public = private_key.public_key()
        self.ttl_s = ttl_s
        # tokens already verified: token -> (sender_id, not before, expiry). A partner sends the
        # same bearer token with every request for its lifetime; its signature need not be checked
        # again, only its time window (the partner's being active is checked per request).
        self._verified: dict[str, tuple[str, float, float]] = {}

    def authenticate(self, session: Session, client_id: str, client_secret: str) -> DciPartner:
        row = session.scalar(select(DciPartner).where(DciPartner.client_id == client_id))
        if row is None or not row.active or not verify_password(client_secret, row.client_secret_hash):
            raise TokenError("unknown client or wrong secret")
        if row.test_partner and not config.dci_test_partners():
            raise TokenError(f"test partner: {TEST_PARTNERS_OFF}")
        return row

    def issue(self, partner: DciPartner, ttl_s: int | None = None, now: float | None = None) -> tuple[str, int]:
        now = int(time.time() if now is None else now)
        ttl = self.ttl_s if ttl_s is None else ttl_s
        claims = {"iss": self.issuer, "aud": TOKEN_AUDIENCE, "sub": partner.sender_id, "client_id": partner.client_id,
                  "iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex, "scope": "dci"}
        return jwt.encode(claims, self.key, algorithm="EdDSA"), ttl

    def check(self, token: str) -> str:
        """The partner's sender_id named by a valid token."""
        hit = self._verified.get(token)
        if hit is not None:
            sender_id, not_before, expires = hit
            now = time.time()
            if now < expires and now >= not_before:
                return sender_id
            self._verified.pop(token, None)
        try:
            claims = jwt.decode(token, self.public, algorithms=["EdDSA"], audience=TOKEN_AUDIENCE, issuer=self.issuer,
                                options={"require": ["exp", "sub", "iat"]})
        except jwt.ExpiredSignatureError:
            raise TokenError("the access token has expired") from None
        except jwt.InvalidTokenError:
            raise TokenError("the access token is invalid") from None
        if len(self._verified) >= VERIFIED_TOKENS_MAX:
            self._verified.clear()
        # PyJWT's rules: expired once exp <= now; not valid before nbf and iat
        not_before = max(float(claims.get("nbf", 0) or 0), float(claims.get("iat", 0) or 0))
        self._verified[token] = (claims["sub"], not_before, float(claims["exp"]))
        return claims["sub"]
