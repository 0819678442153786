"""The message envelope ``{signature, header, message}``: checked against the spec's own schemas
(the OpenAPI document's, compiled once per process by :mod:`isps.interop.dci.schema` with
jsonschema's verdict; jsonschema describes what is wrong when a request is refused), and the
spec's replies built here.

Errors, by where they arise:

* no, invalid or expired bearer token -> HTTP 401, ``HttpErrorResponse`` ``err.request.unauthorized``
* signature missing / not verifying -> HTTP 401, ``err.signature.missing`` / ``err.signature.invalid``
* header ``sender_id`` not the token's partner -> HTTP 403, ``err.sender_id.invalid``
* partner without a data-sharing agreement in force -> HTTP 403, ``err.request.forbidden``
* body not JSON, or not the spec's envelope -> HTTP 400, ack ``ERR`` ``err.request.bad``
  (``err.version.not_supported``, ``err.receiver_id.invalid``, ``err.encryption.invalid``,
  ``err.sender_uri.invalid`` likewise)
* header-level rejections (duplicate message_id, total_count) -> header ``status: rjct`` with
  the ``MsgHeaderStatusReasonCode``
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from isps.interop.dci import schema as schema_mod

VERSION = "1.0.0"
SPEC_URI = "urn:dci:social_api_v1.0.0"


class DciError(Exception):
    """A request refused before its business content is looked at."""

    def __init__(self, http_status: int, code: str, message: str, correlation_id: str | None = None,
                 header_reason: str | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.correlation_id = correlation_id
        self.header_reason = header_reason  # a MsgHeaderStatusReasonCode for a sync reply's header

    def body(self) -> dict:
        """The spec's reply: ``HttpErrorResponse`` for 401/403, else an ``ERR`` acknowledgement."""
        if self.http_status in (401, 403):
            return {"errors": [{"code": self.code, "message": self.message}]}
        return ack("ERR", self.correlation_id or new_id(), error=(self.code, self.message))

    def sync_header(self, sender_id: str, receiver_id: str, action: str) -> tuple[dict, dict]:
        """For sync endpoints (whose reply is an envelope): a ``rjct`` header, and the ``Error`` object
        (carried beside header and message, as the spec defines no slot for it there)."""
        reason = self.header_reason or HEADER_REASON.get(self.code)
        header = callback_header(sender_id, receiver_id, action, "rjct", 0, 0, (reason, f"{self.code}: {self.message}"))
        return header, {"code": self.code, "message": self.message[:999]}


HEADER_REASON = {"err.version.not_supported": "rjct.version.invalid"}


SPEC_FILE = "social_api_v1.0.0.json"


def spec_text() -> str:
    """The DCI Social Registry API v1.0.0 (OpenAPI 3.0.3, Apache-2.0) as shipped in the package
    (``interop/dci/data``), converted once from ../shared/specs/dci/social_api_v1.0.0.yaml so that
    an installed ISPS validates messages against the spec itself; tests/test_dci.py checks that it
    still equals the YAML."""
    return resources.files("isps.interop.dci").joinpath("data", SPEC_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def spec() -> dict:
    return json.loads(spec_text())


def served_spec(paths: list[str], base_url: str) -> dict:
    """The spec as ISPS serves it at ``/dci/openapi.json``: only the operations ISPS implements (the
    ``on-*`` callbacks and ``notify`` are the partner's side), with ISPS's own server URL, so that a
    partner's tooling (or a fuzzer) can call it as written."""
    doc = json.loads(spec_text())
    doc["paths"] = {path: doc["paths"][path] for path in paths if path in doc["paths"]}
    doc["servers"] = [{"url": base_url, "description": "this ISPS"}]
    return doc


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry().with_resource(SPEC_URI, Resource(contents=spec(), specification=DRAFT4))


def pointer(*parts: str) -> str:
    return SPEC_URI + "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@lru_cache(maxsize=64)
def validator(ref: str) -> Draft4Validator:
    return Draft4Validator({"$ref": ref}, registry=_registry(), format_checker=schema_mod.FORMAT_CHECKER)


def _request_parts(path: str) -> tuple[str, ...]:
    return ("paths", path, "post", "requestBody", "content", "application/json", "schema")


def request_validator(path: str) -> Draft4Validator:
    """jsonschema's validator for a path's request (used to describe what is wrong)."""
    return validator(pointer(*_request_parts(path)))


@lru_cache(maxsize=64)
def request_check(path: str):
    """``check(body) -> bool`` for a path's request: the schema compiled once per process
    (:mod:`isps.interop.dci.schema`), with jsonschema's verdict; jsonschema itself where the
    compiler does not cover the schema."""
    ref = "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in _request_parts(path))
    try:
        return schema_mod.compile_schema(spec(), ref)
    except schema_mod.Unsupported:
        return request_validator(path).is_valid


def describe(errors) -> str:
    """Schema errors without the offending values (they may be CNICs). A timestamp that is not the
    spec's date-time is named with the spec's reason code (``rjct.message_ts.invalid`` for the
    header's, ``rjct.timestamp.invalid`` for a request's) and what is expected."""
    out = []
    for e in [*_date_time_errors(errors), *errors][:3]:
        path = list(e.absolute_path)
        where = "/".join(str(p) for p in path) or "(envelope)"
        if e.validator == "format" and e.validator_value == "date-time":
            code = "rjct.message_ts.invalid" if path[-1:] == ["message_ts"] else "rjct.timestamp.invalid"
            out.append(f"{where}: {code}: {DATE_TIME_EXPECTED}")
        else:
            out.append(f"{where}: fails '{e.validator}'")
    return "; ".join(out)


DATE_TIME_EXPECTED = "not ISO 8601 with a timezone, e.g. 2022-12-04T17:20:07-04:00"


def _date_time_errors(errors) -> list:
    """The date-time failures among the errors and inside them (a request's timestamp fails inside
    the message's ``oneOf``, which alone would say only "fails 'oneOf'")."""
    out, todo = [], list(errors)
    while todo:
        e = todo.pop(0)
        if e.validator == "format" and e.validator_value == "date-time":
            out.append(e)
        todo.extend(e.context or ())
    return out


def _header_reason(errors) -> str | None:
    """The header's reason code when what is wrong is the header's message_ts."""
    for e in _date_time_errors(errors):
        if list(e.absolute_path) == ["header", "message_ts"]:
            return "rjct.message_ts.invalid"
    return None


def now_ts() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Envelope:
    signature: str | None
    header: dict
    message: dict
    raw: dict


def parse(raw_body: bytes, path: str, receiver_id: str) -> Envelope:
    """Parse and check a request envelope against the spec's request schema for ``path``."""
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise DciError(400, "err.request.bad", "the body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("header"), dict):
        raise DciError(400, "err.request.bad", "the body must be an envelope {signature, header, message}")
    header = body["header"]
    if header.get("version", VERSION) != VERSION:
        raise DciError(400, "err.version.not_supported", f"only version {VERSION} is supported")
    if header.get("is_msg_encrypted") or (isinstance(body.get("message"), dict) and "ciphertext" in body["message"]):
        raise DciError(400, "err.encryption.invalid", "encrypted messages are not accepted; send the message in clear over TLS")
    if not request_check(path)(body):
        errors = sorted(request_validator(path).iter_errors(body), key=lambda e: list(e.absolute_path))
        raise DciError(400, "err.request.bad", "the envelope does not follow the DCI spec: "
                       + (describe(errors) or "(envelope): fails the schema"), header_reason=_header_reason(errors))
    if header.get("receiver_id") not in (None, receiver_id):
        raise DciError(400, "err.receiver_id.invalid", f"receiver_id must be {receiver_id}")
    return Envelope(body.get("signature"), header, body["message"], body)


def ack(status: str, correlation_id: str, error: tuple[str, str] | None = None) -> dict:
    msg: dict = {"ack_status": status, "timestamp": now_ts(), "correlation_id": correlation_id}
    if error:
        msg["error"] = {"code": error[0], "message": error[1][:999]}
    return {"message": msg}


def callback_header(sender_id: str, receiver_id: str, action: str, status: str, total: int, completed: int,
                    reason: tuple[str | None, str] | None = None) -> dict:
    header = {"version": VERSION, "message_id": new_id(), "message_ts": now_ts(), "action": action,
              "status": status, "total_count": total, "completed_count": completed,
              "sender_id": sender_id, "receiver_id": receiver_id, "is_msg_encrypted": False}
    if reason:
        code, text = reason
        if code:
            header["status_reason_code"] = code
        header["status_reason_message"] = text[:999]
    return header
