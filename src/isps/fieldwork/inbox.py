"""The inbox: every submitted instance kept, once, whatever becomes of it.

A field app sends a form again whenever it did not hear the answer (the reply lost on a weak network,
the phone switched off), so a submission is idempotent by its ``instanceID``: the first copy is stored
(a unique key: of two copies posted at the same moment one is stored and the other finds it), a later
copy changes nothing and is told so. ODK Collect may also split a large submission into several posts,
each carrying the XML and some of the files, all but the last marked ``*isIncomplete*``: a later part
adds the files not yet kept, and the submission is applied when its last part has arrived.

A stored submission is applied at once, in the same transaction (:func:`isps.fieldwork.apply.
apply_submissions`), inside a savepoint: should applying fail unexpectedly, the submission stays
``received`` and the worker's ``field_apply`` task applies it later; the device is never answered
with a server error for what it sent right. What cannot be kept (malformed XML, too large, no device
or user) raises :class:`Refused` with the HTTP status and the message the device shows; nothing is
written but the audit record. A submission of a form version that is no longer accepted is kept,
refused with its reason, for an officer to see what was collected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from isps.access.service import Principal, audit
from isps.fieldwork import forms
from isps.fieldwork.devices import principal_of
from isps.fieldwork.models import FieldAttachment, FieldDevice, FieldSubmission

MAX_XML_BYTES = 512 * 1024
MAX_ATTACHMENT_BYTES = 8 * 1024 * 1024
MAX_ATTACHMENTS = 10
# what the server tells Collect (X-OpenRosa-Accept-Content-Length): one post holds the XML and one
# file at the most, with room for the multipart envelope; Collect splits larger submissions
MAX_POST_BYTES = MAX_XML_BYTES + MAX_ATTACHMENT_BYTES + 64 * 1024
CLOCK_SLACK = timedelta(minutes=10)   # a phone's clock this far ahead of the server's is believed
log = logging.getLogger(__name__)


class Refused(Exception):
    """A submission not kept: ``status`` is the HTTP status of the OpenRosa answer, ``message`` what the
    device shows (naming the field or file at fault)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Receipt:
    submission_id: int | None
    status: str              # accepted | refused | received
    message: str             # for the device (OpenRosa <message>)
    duplicate: bool          # the instanceID was already here: nothing changed


def _refuse(session: Session, who: Principal | None, channel: str, status: int, message: str,
            district_id: int | None = None) -> Refused:
    if who is not None:  # an unknown caller has no one to audit; the web server's log has the request
        audit(session, who, channel, "submit", "field_submission", None, district_id, outcome="failed",
              detail=f"not kept ({status}): {message}")
    return Refused(status, message)


def _caller(session: Session, device: FieldDevice | None, user: Principal | None, channel: str) -> Principal:
    if device is not None:
        who = principal_of(session, device) if device.active else None
        if who is None:
            raise Refused(403, f"device {device.code} is revoked or its user may no longer collect: "
                               f"ask your supervisor")
        return who
    if user is None:
        raise Refused(401, "the device is not registered: ask your supervisor for the server settings")
    if not user.can("field.collect"):
        raise _refuse(session, user, channel, 403, f"a {user.role.replace('_', ' ')} may not submit field forms")
    return user


def _int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() and len(value) < 19 else None


def _district(session: Session, who: Principal, device: FieldDevice | None, inst: forms.Instance) -> int | None:
    """The district the submission is made in: the device's, else the user's; for a province-wide user
    (an administrator in the browser), the district of the site, household or place the form names."""
    if device is not None:
        return device.district_id
    if who.district_id is not None:
        return who.district_id
    site, household = _int(inst.values.get("site_id")), _int(inst.values.get("household_id"))
    if site is not None:
        found = session.execute(text("SELECT district_id FROM distribution_site WHERE id = :i"), {"i": site}).first()
        if found:
            return found[0]
    if household is not None:
        found = session.execute(text("SELECT district_id FROM household WHERE id = :i"), {"i": household}).first()
        if found:
            return found[0]
    return _int(inst.values.get("district_id"))


def _collected(inst: forms.Instance, received: datetime) -> datetime:
    """When the form was filled: its own time, or the received time when it has none or says a time
    after it was received (a phone whose clock is wrong must not date its survey in the future, where
    it would outrank every later change)."""
    at = inst.collected_at
    return received if at is None or at > received + CLOCK_SLACK else at


def _store_files(session: Session, submission_id: int, files: dict[str, tuple[str, bytes]]) -> int:
    """Insert the files not kept yet (a later part of a split submission may repeat some)."""
    have = set(session.execute(select(FieldAttachment.name)
                               .where(FieldAttachment.submission_id == submission_id)).scalars())
    rows = [{"submission_id": submission_id, "name": name, "content_type": (ctype or "application/octet-stream")[:100],
             "size": len(data), "data": data} for name, (ctype, data) in files.items() if name not in have]
    if rows:
        session.execute(insert(FieldAttachment), rows)
    return len(rows)


def _apply(session: Session, submission_id: int, now: datetime | None) -> None:
    """Apply one stored submission in a savepoint; an unexpected failure leaves it ``received``."""
    from isps.fieldwork import apply as applying  # above the inbox in the part list, imported when used

    try:
        with session.begin_nested():
            applying.apply_submissions(session, [submission_id], now)
    except Exception:  # noqa: BLE001 - kept as received; the worker's field_apply task tries again
        log.exception("submission %s could not be applied now; left for the worker", submission_id)


def message_for(sub: FieldSubmission, duplicate: bool = False) -> str:
    """What the device is told about a stored submission (Collect shows it after sending)."""
    what = f"{sub.job} {sub.instance_id}"
    if duplicate:
        head = f"Already received on {sub.received_at:%d %b %Y %H:%M}; nothing changed. "
    else:
        head = ""
    if sub.status == "accepted":
        result = sub.result or {}
        detail = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.items()
                           if k in ("household_id", "application_id", "entry_id", "grievance_id", "changes"))
        return f"{head}ISPS accepted the {what}" + (f" ({detail})." if detail else ".")
    if sub.status == "refused":
        return (f"{head}ISPS kept the {what} but did NOT accept it: {sub.reason}. "
                f"Your supervisor will review it; do not send it again.")
    return f"{head}ISPS received the {what}; it will be processed shortly."


def receive(session: Session, *, xml: bytes, attachments: dict[str, tuple[str, bytes]],
            device: FieldDevice | None = None, user: Principal | None = None, channel: str = "odk",
            now: datetime | None = None, incomplete: bool = False) -> Receipt:
    """Keep a submitted instance (idempotent by instanceID) with its files and apply it.

    ``attachments`` maps each file's name to (content type, bytes); only the files the instance names
    are kept. ``incomplete``: a part of a split submission that more parts follow (Collect's
    ``*isIncomplete*``): stored, applied when the last part arrives. Raises :class:`Refused` for what
    is not kept; the caller commits either way (the refusal's audit record)."""
    at = now or datetime.now()
    who = _caller(session, device, user, channel)
    if len(xml) > MAX_XML_BYTES:
        raise _refuse(session, who, channel, 413, f"the form's XML is {len(xml):,} bytes; at most "
                                                  f"{MAX_XML_BYTES:,} are accepted")
    if len(attachments) > MAX_ATTACHMENTS:
        raise _refuse(session, who, channel, 413, f"{len(attachments)} files sent with one form; at most "
                                                  f"{MAX_ATTACHMENTS} are accepted")
    for name, (_ctype, data) in attachments.items():
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise _refuse(session, who, channel, 413,
                          f"file {name[:80]} is {len(data) / 1048576:.1f} MB; at most "
                          f"{MAX_ATTACHMENT_BYTES // 1048576} MB per file are accepted: take the photo again "
                          f"at a smaller size (Collect: Settings > Form management > Image size)")
    try:
        inst = forms.read_instance(xml)
    except forms.InstanceError as exc:
        raise _refuse(session, who, channel, 400, f"the form cannot be read: {exc}") from None
    files = {name: part for name, part in attachments.items() if name in set(inst.attachments) and len(name) <= 200}
    district = _district(session, who, device, inst)
    if district is None:
        raise _refuse(session, who, channel, 400, f"{inst.form_id} {inst.instance_id}: no district: the form "
                                                  f"names no site, household or district_id of yours")
    other_phone = ""
    if device is not None and inst.device_id:
        if device.odk_device_id is None:
            device.odk_device_id = inst.device_id[:120]
        elif device.odk_device_id != inst.device_id[:120]:  # the token copied to another phone? for the audit
            other_phone = f" from deviceID {inst.device_id[:40]}, not the device's {device.odk_device_id[:40]}"

    existing = _find(session, inst.instance_id)
    if existing is None:
        spec = forms.form(inst.form_id)
        row = {"instance_id": inst.instance_id, "form_id": inst.form_id, "form_version": inst.version[:40],
               "job": inst.job, "device_id": device.id if device else None, "channel": channel,
               "username": who.username, "district_id": district,
               "household_id": _int(inst.values.get("household_id")),
               "collected_at": _collected(inst, at), "received_at": at,
               "xml": xml.decode("utf-8", errors="replace"), "status": "received"}
        if spec is None or inst.version not in spec.accepted_versions:
            current = spec.version if spec else "none"
            row.update(status="refused", applied_at=at,
                       reason=f"form {inst.form_id} version {inst.version} is no longer accepted (the current "
                              f"version is {current}): get the blank form again and fill it anew")
        try:
            with session.begin_nested():
                submission_id = session.execute(insert(FieldSubmission).returning(FieldSubmission.id), row).scalar_one()
        except IntegrityError:  # the same instance posted at the same moment: the other copy was kept
            existing = _find(session, inst.instance_id)
            if existing is None:
                raise
        else:
            _store_files(session, submission_id, files)
            if row["status"] == "received" and not incomplete:
                _apply(session, submission_id, at)
            sub = session.get(FieldSubmission, submission_id)
            session.refresh(sub)
            _audit(session, who, channel, sub, "stored" + other_phone)
            return Receipt(sub.id, sub.status, message_for(sub), duplicate=False)

    # a copy of a submission already here: a resend after a lost reply, or the next part of a split one
    sub = existing
    same = sub.xml == xml.decode("utf-8", errors="replace")
    added = _store_files(session, sub.id, files) if same else 0
    applied = same and sub.status == "received" and not incomplete
    if applied:  # the last part of a split submission (or one whose applying failed before)
        _apply(session, sub.id, at)
        session.refresh(sub)
    fresh = bool(added) or applied
    note = "" if same else " (a different copy with the same instanceID was NOT kept)"
    _audit(session, who, channel, sub, f"resent{note}{other_phone}" + (f", {added} more files" if added else ""))
    return Receipt(sub.id, sub.status, message_for(sub, duplicate=not fresh) + note, duplicate=not fresh)


def _find(session: Session, instance_id: str) -> FieldSubmission | None:
    return session.execute(select(FieldSubmission).where(FieldSubmission.instance_id == instance_id)).scalar_one_or_none()


def _audit(session: Session, who: Principal, channel: str, sub: FieldSubmission, how: str) -> None:
    outcome = "denied" if sub.status == "refused" else "ok"
    detail = f"{sub.form_id} {sub.instance_id} {how}: {sub.status}" + (f" ({sub.reason})" if sub.reason else "")
    audit(session, who, channel, "submit", "field_submission", sub.id, sub.district_id, outcome=outcome, detail=detail)
