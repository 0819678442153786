"""Devices registered to a user and a district, and how ODK Collect / KoboCollect authenticate as one.

A supervisor registers a phone (or laptop) to an enumerator of the district: the device gets a code
(the digest user name, e.g. ``kasur-07``) and a random token, shown once and put in Collect's settings
(a QR code). Only the token's SHA-256 is kept, and the digest's HA1 = MD5(code:realm:token), which
digest authentication needs the server to hold (it is a password equivalent for this realm only, and
worth no more than the token: revoking the device kills both).

Two ways in, as ODK Central's app users and ODK Aggregate did:

* the token in the server address, ``/openrosa/key/<token>/...`` (:func:`authenticate_token`): what
  the QR code configures, nothing for the enumerator to type;
* HTTP Digest (RFC 7616, MD5, ``qop=auth``), user name the device's code, password the token
  (:func:`authenticate_digest`). Nonces are stateless: a time stamp and an HMAC of it with the server's
  secret key, good for :data:`NONCE_SECONDS`; an expired one is answered with ``stale=true`` so that
  Collect retries with the new nonce without asking the enumerator anything.

A device works only while it is active and its user is active and may collect (``field.collect``):
deactivating the user or changing their role stops the device at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from isps import config
from isps.access.models import User
from isps.access.service import Principal, audit
from isps.fieldwork.models import FieldDevice

REALM = "ISPS field devices"
NONCE_SECONDS = 15 * 60
CODE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,39}$")
CHANNEL = "odk"


class DeviceError(ValueError):
    """A registration or revocation that cannot be done; the message names the device and the field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _ha1(code: str, token: str) -> str:
    return _md5(f"{code}:{REALM}:{token}")


class NotAllowed(DeviceError, PermissionError):
    """The user may not manage this device (role, or another district): a DeviceError and a PermissionError,
    so that a caller catching either refuses it cleanly."""


def _check_manager(who: Principal, district_id: int | None, what: str) -> None:
    if not who.can("field.assign"):
        raise NotAllowed(f"a {who.role.replace('_', ' ')} may not {what} (needs field.assign)", "who")
    if who.scope is not None and who.scope != district_id:
        raise NotAllowed(f"{what}: the device's user is not of your district", "district_id")


def register_device(session: Session, who: Principal, *, code: str, label: str, username: str,
                    now: datetime | None = None) -> tuple[FieldDevice, str]:
    """Register a device to ``username`` (an active user of a district who may collect); returns the
    device and its token, which is shown once and never kept. Audited (``create``)."""
    code = (code or "").strip().lower()
    label = (label or "").strip()
    if not CODE.match(code):
        raise DeviceError("device code must be 3 to 40 lowercase letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit (e.g. kasur-07)", "code")
    if not label or len(label) > 120:
        raise DeviceError(f"device {code}: the label must be 1 to 120 characters", "label")
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise DeviceError(f"device {code}: no user '{username}'", "username")
    carrier = Principal(user.username, user.role, user.district_id)
    if not user.active or not carrier.can("field.collect"):
        raise DeviceError(f"device {code}: {username} is not an active user who may collect in the field "
                          f"(role {user.role})", "username")
    if user.district_id is None:
        raise DeviceError(f"device {code}: {username} has no district; a device works in one district", "username")
    _check_manager(who, user.district_id, "register a device")
    if session.execute(select(FieldDevice.id).where(FieldDevice.code == code)).first() is not None:
        raise DeviceError(f"device code {code} is already taken", "code")
    token = secrets.token_urlsafe(32)
    device = FieldDevice(code=code, label=label, username=user.username, district_id=user.district_id,
                         token_hash=_sha256(token), digest_ha1=_ha1(code, token), active=True,
                         registered_by=who.username, registered_at=now or datetime.now())
    session.add(device)
    session.flush()
    audit(session, who, CHANNEL, "create", "field_device", device.id, user.district_id,
          detail=f"device {code} ({label}) registered to {user.username}")
    return device, token


def revoke_device(session: Session, who: Principal, device_id: int) -> FieldDevice:
    """Revoke a device: its token and digest password stop working at once. Audited (``revoke``)."""
    device = session.get(FieldDevice, device_id)
    if device is None:
        raise DeviceError(f"no device {device_id}", "device_id")
    _check_manager(who, device.district_id, "revoke a device")
    if device.active:
        device.active = False
        session.flush()
    audit(session, who, CHANNEL, "revoke", "field_device", device.id, device.district_id,
          detail=f"device {device.code} of {device.username} revoked")
    return device


def principal_of(session: Session, device: FieldDevice) -> Principal | None:
    """Who the device acts for: its user, when that user is active and may still collect; else None."""
    row = session.execute(select(User.username, User.role, User.district_id, User.active)
                          .where(User.username == device.username)).first()
    if row is None or not row.active:
        return None
    who = Principal(row.username, row.role, row.district_id)
    return who if who.can("field.collect") else None


def _seen(session: Session, device: FieldDevice, now: datetime | None) -> FieldDevice | None:
    if not device.active or principal_of(session, device) is None:
        return None
    at = now or datetime.now()
    # at most one write a minute per device: a form download is a dozen requests
    if device.last_seen_at is None or (at - device.last_seen_at).total_seconds() >= 60:
        session.execute(update(FieldDevice).where(FieldDevice.id == device.id).values(last_seen_at=at))
        device.last_seen_at = at
    return device


def authenticate_token(session: Session, token: str, now: datetime | None = None) -> FieldDevice | None:
    """The active device whose token this is (its user active and allowed to collect), or None."""
    if not token or len(token) > 200:
        return None
    device = session.execute(select(FieldDevice).where(FieldDevice.token_hash == _sha256(token))).scalar_one_or_none()
    return None if device is None else _seen(session, device, now)


# --- HTTP Digest (RFC 7616), as ODK Collect (OkHttp's digest authenticator) speaks it ---------------

def _nonce_key(secret: str | None) -> bytes:
    return hashlib.sha256(f"isps-digest-nonce:{secret or config.secret_key()}".encode()).digest()


def make_nonce(secret: str | None = None, at: float | None = None) -> str:
    """A stateless nonce: the time it was made and an HMAC of that time with the server's key."""
    stamp = str(int(at if at is not None else time.time()))
    mac = hmac.new(_nonce_key(secret), stamp.encode(), hashlib.sha256).hexdigest()[:32]
    return base64.urlsafe_b64encode(f"{stamp}:{mac}".encode()).decode().rstrip("=")


def nonce_state(nonce: str, secret: str | None = None, at: float | None = None) -> str:
    """``fresh``, ``stale`` (ours, but older than :data:`NONCE_SECONDS`) or ``bad`` (not ours)."""
    try:
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4)).decode()
        stamp, mac = raw.split(":", 1)
        made = int(stamp)
    except (ValueError, UnicodeDecodeError):
        return "bad"
    good = hmac.new(_nonce_key(secret), stamp.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(mac, good):
        return "bad"
    age = (at if at is not None else time.time()) - made
    return "fresh" if -60 <= age <= NONCE_SECONDS else "stale"


def digest_challenge(secret: str | None = None, *, stale: bool = False, at: float | None = None) -> str:
    """The ``WWW-Authenticate`` header of a 401 that asks for digest credentials."""
    header = (f'Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{make_nonce(secret, at)}", '
              f'opaque="{hashlib.md5(REALM.encode(), usedforsecurity=False).hexdigest()}"')
    return header + (", stale=true" if stale else "")


_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_authorization(header: str) -> dict[str, str] | None:
    """The parameters of a ``Digest`` Authorization header, or None for another scheme."""
    if not header or not header[:7].lower() == "digest ":
        return None
    return {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
            for m in _PARAM.finditer(header[7:])}


@dataclass
class DigestResult:
    device: FieldDevice | None
    stale: bool = False      # right credentials on an expired nonce: challenge again with stale=true
    revoked: bool = False    # right credentials of a device revoked (or whose user may no longer collect)


def check_digest(session: Session, header: str, method: str, uri: str, *, secret: str | None = None,
                 now: datetime | None = None, at: float | None = None) -> DigestResult:
    """Check a digest answer for a request (``uri``: the request's path, with its query if any)."""
    p = parse_authorization(header)
    if not p or any(not p.get(k) for k in ("username", "nonce", "uri", "response")):
        return DigestResult(None)
    if p.get("realm") != REALM or p.get("algorithm", "MD5").upper() != "MD5":
        return DigestResult(None)
    # the digest covers the address it was computed for: it must be this request's
    if p["uri"].split("?", 1)[0] != uri.split("?", 1)[0]:
        return DigestResult(None)
    state = nonce_state(p["nonce"], secret, at)
    if state == "bad":
        return DigestResult(None)
    device = session.execute(select(FieldDevice).where(FieldDevice.code == p["username"].lower())).scalar_one_or_none()
    if device is None:
        return DigestResult(None)
    ha2 = _md5(f"{method.upper()}:{p['uri']}")
    qop = p.get("qop")
    if qop == "auth":
        if not p.get("nc") or not p.get("cnonce"):
            return DigestResult(None)
        expected = _md5(f"{device.digest_ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
    elif qop is None:  # RFC 2069 style, still answered by some clients
        expected = _md5(f"{device.digest_ha1}:{p['nonce']}:{ha2}")
    else:
        return DigestResult(None)
    if not hmac.compare_digest(expected, p["response"].lower()):
        return DigestResult(None)
    if state == "stale":
        return DigestResult(None, stale=True)
    seen = _seen(session, device, now)
    return DigestResult(seen, revoked=seen is None)


def authenticate_digest(session: Session, header: str, method: str, uri: str, *, secret: str | None = None,
                        now: datetime | None = None) -> FieldDevice | None:
    """The active device a digest Authorization header proves, or None (see :func:`check_digest`)."""
    return check_digest(session, header, method, uri, secret=secret, now=now).device


def digest_response(code: str, token: str, challenge: str, method: str, uri: str, *, nc: str = "00000001",
                    cnonce: str | None = None) -> str:
    """The Authorization header a client answers a challenge with (what Collect computes): used by the
    tests' Collect and by anyone checking a device's credentials from a script."""
    c = parse_authorization(challenge) or {}
    cnonce = cnonce or secrets.token_hex(8)
    ha1 = _ha1(code, token)
    ha2 = _md5(f"{method.upper()}:{uri}")
    response = _md5(f"{ha1}:{c['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{code}", realm="{c["realm"]}", nonce="{c["nonce"]}", uri="{uri}", '
            f'algorithm=MD5, response="{response}", qop=auth, nc={nc}, cnonce="{cnonce}", opaque="{c.get("opaque", "")}"')


# --- Collect's settings ----------------------------------------------------------------------------

def collect_settings(device: FieldDevice, token: str, base_url: str, *, project: str = "ISPS Punjab") -> dict:
    """ODK Collect's settings for this device, as its QR code carries them (Collect's "Configure via QR
    code"; KoboCollect reads the same): the server address with the token in it, so nothing is typed,
    forms kept exactly as the server lists them, finished forms sent automatically, and the server
    locked so that the phone cannot be pointed elsewhere."""
    base = base_url.rstrip("/")
    return {
        "general": {
            "server_url": f"{base}/openrosa/key/{token}",
            "username": "",
            "password": "",
            "form_update_mode": "match_exactly",
            "periodic_form_updates_check": "every_one_hour",
            "autosend": "wifi_and_cellular",
            "delete_send": False,
            "default_completed": True,
            "metadata_username": device.username,
        },
        "admin": {"change_server": False, "automatic_update": False, "change_form_metadata": False},
        "project": {"name": f"{project} · {device.code}", "icon": "P", "color": "#1b5e20"},
    }


def collect_settings_digest(device: FieldDevice, token: str, base_url: str) -> dict:
    """The same settings for digest authentication: ``/openrosa`` with the device code and token as user
    name and password (for teams that type the settings in rather than scan a QR code)."""
    settings = collect_settings(device, token, base_url)
    settings["general"].update(server_url=f"{base_url.rstrip('/')}/openrosa", username=device.code, password=token)
    return settings


def qr_payload(settings: dict) -> str:
    """What Collect's settings QR code encodes: the settings JSON, zlib-deflated, base64."""
    import json
    import zlib

    return base64.b64encode(zlib.compress(json.dumps(settings, separators=(",", ":")).encode())).decode()

