"""The browser's offline field work: what a laptop at a distribution site, or on a verification round,
keeps to work without a network (a site's list, my scheduled visits), and the one door its entries
come back through.

An entry made offline is sent later as JSON: :func:`submit` turns it into the instance ODK Collect
would have sent for the same form (``forms.build_instance``) and hands it to the inbox with channel
``browser``, so a hand-over or a visit from the browser is checked, kept, refused and applied exactly
as one from a phone, and is idempotent by the ``instanceID`` the browser made when the entry was
recorded (a resend after a lost reply changes nothing).

The lists carry what the hand-over screen needs and no more: names, masked CNICs (the CNIC seen is
checked on the server, never on the device), the line's item, amount and token. Every read is audited.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from isps.access.service import AccessError, Principal, audit, audit_many
from isps.citizen import receipts
from isps.fieldwork import forms
from isps.fieldwork.models import DistributionSite
from isps.registry import cnic as cnic_rules
from isps.registry import current

COLLECT = "field.collect"
CHANNEL = "web"
JOBS = ("receipt", "visit")
# what each job's entry may carry (the leaf names of the forms, contracts: isps_receipt, isps_visit)
FIELDS = {"receipt": ("site_id", "entry_id", "household_id", "evidence", "cnic_seen", "received_by"),
          "visit": ("application_id", "outcome", "note")}
EVIDENCE = ("fingerprint", "cnic")
OUTCOMES = ("confirmed", "not_found", "different")
INSTANCE_ID = re.compile(r"^uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_NOTE = 400


class EntryError(ValueError):
    """An entry that can never be kept as sent (a field missing or malformed): the message names the
    entry and the field; the device shows it on the entry and stops resending it."""


class NotFound(LookupError):
    """No such site."""


def _require(who: Principal) -> None:
    if not who.can(COLLECT):
        raise AccessError("collecting in the field needs the field.collect permission")


def sites(session: Session, who: Principal) -> list[DistributionSite]:
    """The distribution sites of the user's district (every district for a province-wide user)."""
    _require(who)
    query = select(DistributionSite).order_by(DistributionSite.name, DistributionSite.id)
    if who.scope is not None:
        query = query.where(DistributionSite.district_id == who.scope)
    return list(session.scalars(query))


def _money(value) -> str | None:
    if value is None:
        return None
    return f"{Decimal(value):,.0f}"


def site_of(session: Session, who: Principal, site_id: int) -> DistributionSite:
    """The site, if this user may work at it (its district); a refusal is audited (the caller commits)."""
    _require(who)
    site = session.get(DistributionSite, site_id)
    if site is None:
        raise NotFound(f"site {site_id}: no such distribution site")
    if who.scope is not None and site.district_id != who.scope:
        audit(session, who, CHANNEL, "read", "distribution_site", site.id, site.district_id, outcome="denied",
              detail="refused: offline list of a site outside the user's district")
        raise AccessError(f"site {site_id} is not in your district")
    return site


def site_list(session: Session, who: Principal, site_id: int) -> dict:
    """A site's whole list for the hand-over screen, audited as one read of the site's list: each
    line's recipient (the named person, else the household's head), masked CNIC, item, quantity,
    amount, token and whether (and when) it was handed over, with the household's current members
    (who else may take it)."""
    site = site_of(session, who, site_id)
    rows = session.execute(text("""
        SELECT e.id, e.household_id, e.item, e.quantity, e.amount, e.token, e.handed_over_at, e.evidence,
               COALESCE(e.individual_id, h.id) AS recipient_id,
               COALESCE(n.full_name, h.full_name) AS name, COALESCE(n.cnic, h.cnic) AS cnic
        FROM distribution_entry e
        LEFT JOIN individual n ON n.id = e.individual_id
        LEFT JOIN individual h ON h.household_id = e.household_id AND h.roster_line = 1 AND e.individual_id IS NULL
        WHERE e.site_id = :site
        ORDER BY e.token, e.id"""), {"site": site.id}).all()
    members: dict[int, list[dict]] = {}
    for m in session.execute(text(f"""
            SELECT i.household_id, i.id, i.full_name FROM individual i
            WHERE i.household_id IN (SELECT household_id FROM distribution_entry WHERE site_id = :site)
              AND {current.sql('i')}
            ORDER BY i.household_id, i.roster_line"""), {"site": site.id}):
        members.setdefault(m.household_id, []).append({"id": str(m.id), "name": m.full_name})
    audit(session, who, CHANNEL, "read", "distribution_site", site.id, site.district_id,
          detail=f"offline list: {len(rows)} lines")
    return {"site": {"id": site.id, "name": site.name, "kind": site.kind, "district_id": site.district_id},
            "entries": [{"id": r.id, "household_id": str(r.household_id), "recipient_id": str(r.recipient_id or ""),
                         "name": r.name or "", "cnic": cnic_rules.mask(r.cnic), "item": r.item,
                         "quantity": r.quantity, "amount": _money(r.amount), "token": r.token,
                         "handed_over": r.handed_over_at is not None,
                         "handed_over_at": str(r.handed_over_at)[:16] if r.handed_over_at else None,
                         "members": members.get(r.household_id, [])} for r in rows]}


def my_visits(session: Session, who: Principal) -> list[dict]:
    """The verification visits scheduled for this user (an application's open ``verify`` step whose
    visit is scheduled with this user as its owner), in date order, with the applicant and the
    address declared; the read audited per application."""
    _require(who)
    scope = "" if who.scope is None else "AND a.district_id = :district"
    rows = session.execute(text(f"""
        SELECT a.id, a.district_id, a.applicant_name, a.household_id, a.details, s.visit_on
        FROM application_step s JOIN application a ON a.id = s.application_id
        WHERE s.owner = :me AND s.name = 'verify' AND s.done_at IS NULL AND s.visit_on IS NOT NULL
          AND a.status = 'open' {scope}
        ORDER BY s.visit_on, a.id"""), {"me": who.username, "district": who.scope}).all()
    if rows:
        audit_many(session, who, CHANNEL, "read", "application", [(r.id, r.district_id) for r in rows],
                   detail="offline list of scheduled visits")
    out = []
    for r in rows:
        details = r.details if isinstance(r.details, dict) else {}
        household = details.get("household") if isinstance(details.get("household"), dict) else {}
        out.append({"id": r.id, "receipt": receipts.make("application", r.id), "applicant": r.applicant_name,
                    "address": str(household.get("address") or details.get("address") or ""),
                    "household_id": str(r.household_id) if r.household_id else "",
                    "visit_on": str(r.visit_on)[:10]})
    return out


def _text(entry: dict, name: str) -> str:
    value = entry.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise EntryError(f"{name} must be text")
    return str(value).strip()


def check_entry(payload: object) -> tuple[str, str, datetime, dict[str, str]]:
    """The browser's entry as (job, instance id, collected at, values), or :class:`EntryError` naming
    the field. Only the form's own fields are kept; the server decides everything else (the list, the
    district, the CNIC seen) when the submission is applied."""
    if not isinstance(payload, dict):
        raise EntryError("entry: a JSON object is expected")
    instance_id = payload.get("instance_id")
    if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
        raise EntryError("instance_id: 'uuid:' and a UUID made on the device is expected")
    job = payload.get("job")
    if job not in JOBS:
        raise EntryError(f"entry {instance_id}: job must be one of {', '.join(JOBS)}")
    raw_at = payload.get("collected_at")
    try:
        collected_at = forms.parse_time(str(raw_at)).replace(microsecond=0)
    except ValueError:
        raise EntryError(f"entry {instance_id}: collected_at must be a date and time, YYYY-MM-DDTHH:MM:SS") from None
    values = payload.get("values")
    if not isinstance(values, dict):
        raise EntryError(f"entry {instance_id}: values must be an object of the form's fields")
    unknown = sorted(set(values) - set(FIELDS[job]))
    if unknown:
        raise EntryError(f"entry {instance_id}: {unknown[0]} is not a field of the {job} form")
    try:
        clean = {name: _text(values, name) for name in FIELDS[job]}
    except EntryError as exc:
        raise EntryError(f"entry {instance_id}: {exc}") from None
    if job == "receipt":
        for name in ("site_id", "entry_id", "household_id"):
            if not clean[name].isdigit() or len(clean[name]) > 18:
                raise EntryError(f"entry {instance_id}: {name} must be a record number")
        if clean["evidence"] not in EVIDENCE:
            raise EntryError(f"entry {instance_id}: evidence must be fingerprint or cnic")
        seen = clean["cnic_seen"].replace("-", "")
        if clean["evidence"] == "cnic" and not (seen.isdigit() and len(seen) == 13):
            raise EntryError(f"entry {instance_id}: cnic_seen must be the 13 digits of the CNIC seen")
        clean["cnic_seen"] = seen if clean["evidence"] == "cnic" else ""
        if clean["received_by"] and (not clean["received_by"].isdigit() or len(clean["received_by"]) > 18):
            raise EntryError(f"entry {instance_id}: received_by must be a person's record number")
    else:
        if not clean["application_id"].isdigit() or len(clean["application_id"]) > 18:
            raise EntryError(f"entry {instance_id}: application_id must be a record number")
        if clean["outcome"] not in OUTCOMES:
            raise EntryError(f"entry {instance_id}: outcome must be one of {', '.join(OUTCOMES)}")
        if len(clean["note"]) > MAX_NOTE:
            raise EntryError(f"entry {instance_id}: note is longer than {MAX_NOTE} characters")
    return job, instance_id, collected_at, clean


def submit(session: Session, who: Principal, payload: object, now: datetime | None = None) -> dict:
    """One entry recorded offline, sent: built into its form's instance and received by the inbox
    (kept, applied, idempotent by its instanceID). Returns what the device shows on the entry:
    ``{"instance_id", "status": "accepted" | "refused" | "received", "message", "duplicate"}``.
    Raises :class:`EntryError` for an entry that cannot be a submission."""
    from isps.fieldwork import inbox

    _require(who)
    job, instance_id, collected_at, values = check_entry(payload)
    xml = forms.build_instance(forms.FORM_IDS[job], values, instance_id=instance_id, collected_at=collected_at)
    try:
        receipt = inbox.receive(session, xml=xml, attachments={}, user=who, channel="browser", now=now)
    except inbox.Refused as exc:
        return {"instance_id": instance_id, "status": "refused", "message": exc.message, "duplicate": False}
    return {"instance_id": instance_id, "status": receipt.status, "message": receipt.message,
            "duplicate": receipt.duplicate}
