"""Message signatures as the spec's ``MsgSignature`` describes them.

The ``signature`` field of an envelope is::

    Signature: namespace="spdci", kidId="{sender_id}|{key_id}|{algorithm}", algorithm="ed25519",
    created="1606970629", expires="1607030629", headers="(created) (expires) digest",
    signature="<base64>"

and signs ``{header}+{message}``: the digest is BLAKE2b-512 over the canonical JSON of the
header followed by the canonical JSON of the message (keys sorted, no whitespace, UTF-8), and
the signed string is the three lines

    (created): 1606970629
    (expires): 1607030629
    digest: BLAKE-512=<base64 digest>

signed with the sender's private key: Ed25519, or RSA (PKCS#1 v1.5 over SHA-256, algorithm
``rsa-sha256``). The receiver looks up the public key registered for ``sender_id`` and
``key_id`` and verifies. ISPS signs its own responses and callbacks the same way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

ALGORITHMS = ("ed25519", "rsa-sha256")
HEADERS = "(created) (expires) digest"
CLOCK_SKEW_S = 300
_PAIR = re.compile(r'([A-Za-z]+)\s*=\s*"([^"]*)"')


class SignatureMissing(ValueError):
    pass


class SignatureInvalid(ValueError):
    pass


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(header: dict, message) -> str:
    h = hashlib.blake2b(canonical(header) + canonical(message if message is not None else {}), digest_size=64)
    return base64.b64encode(h.digest()).decode()


def signing_string(created: int, expires: int, digest_b64: str) -> bytes:
    return f"(created): {created}\n(expires): {expires}\ndigest: BLAKE-512={digest_b64}".encode()


@dataclass(frozen=True)
class ParsedSignature:
    sender_id: str
    key_id: str
    algorithm: str
    created: int
    expires: int
    headers: str
    signature: bytes


def parse(value: str | None) -> ParsedSignature:
    if not value or not value.strip():
        raise SignatureMissing("the envelope carries no signature")
    text = value.strip()
    if text.lower().startswith("signature:"):
        text = text[len("signature:"):]
    params = dict(_PAIR.findall(text))
    key = params.get("kidId") or params.get("keyId")
    if not key or key.count("|") != 2:
        raise SignatureInvalid('the signature needs kidId="{sender_id}|{key_id}|{algorithm}"')
    sender_id, key_id, key_alg = key.split("|")
    algorithm = params.get("algorithm", key_alg).lower()
    if algorithm not in ALGORITHMS or key_alg.lower() != algorithm:
        raise SignatureInvalid(f"signature algorithm must be one of {', '.join(ALGORITHMS)}")
    try:
        created, expires = int(params["created"]), int(params["expires"])
        sig = base64.b64decode(params["signature"], validate=True)
    except (KeyError, ValueError):
        raise SignatureInvalid("the signature needs created, expires and a base64 signature") from None
    if params.get("headers", HEADERS) != HEADERS:
        raise SignatureInvalid(f'the signature must cover headers="{HEADERS}"')
    return ParsedSignature(sender_id, key_id, algorithm, created, expires, HEADERS, sig)


def load_public_key(pem: str, algorithm: str):
    key = serialization.load_pem_public_key(pem.encode())
    if algorithm == "ed25519" and not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError("an ed25519 key was expected")
    if algorithm == "rsa-sha256" and not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("an RSA key was expected")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    return key


def verify(parsed: ParsedSignature, public_key, header: dict, message, now: float | None = None) -> None:
    now = time.time() if now is None else now
    if parsed.created > now + CLOCK_SKEW_S:
        raise SignatureInvalid("the signature was created in the future")
    if parsed.expires < now:
        raise SignatureInvalid("the signature has expired")
    data = signing_string(parsed.created, parsed.expires, digest(header, message))
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(parsed.signature, data)
        else:
            public_key.verify(parsed.signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise SignatureInvalid("the signature does not match the header and message") from None


def sign(private_key, sender_id: str, key_id: str, header: dict, message, ttl_s: int = 300,
         now: float | None = None) -> str:
    """The ``signature`` value for an envelope (used by ISPS, and by partners' client code and tests)."""
    created = int(time.time() if now is None else now)
    expires = created + ttl_s
    data = signing_string(created, expires, digest(header, message))
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        algorithm, raw = "ed25519", private_key.sign(data)
    else:
        algorithm, raw = "rsa-sha256", private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return (f'Signature: namespace="spdci", kidId="{sender_id}|{key_id}|{algorithm}", algorithm="{algorithm}", '
            f'created="{created}", expires="{expires}", headers="{HEADERS}", '
            f'signature="{base64.b64encode(raw).decode()}"')


def public_pem(private_key) -> str:
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def derived_ed25519(secret: str, purpose: str) -> ed25519.Ed25519PrivateKey:
    """A deterministic Ed25519 key from the server secret, so every worker process holds the same key."""
    seed = hashlib.sha256(f"isps-dci:{purpose}:{secret}".encode()).digest()
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
