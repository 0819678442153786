"""Distribution sites, their lists and the hand-over, marked once.

A site is where relief is handed over: the counter of a payments ``cash_outlet`` on pickup days
(``kind="cash"``), or an in-kind point (a school, a union council office) handing out ration packs
(``kind="in_kind"``). Its list is built set-based, one ``INSERT ... SELECT``:

* cash: the live pull-channel instructions of a payroll that ``payments.pickup.schedule`` gave a
  seat at the site's outlet: amount, household, the named recipient, the seat as the token;
* in kind: chosen households of the site's district, an item and a quantity, the head (or the first
  current member) as the named recipient.

Building a list again adds only what is missing (``uq_distribution_entry_line``). The hand-over
(a receipt from ODK Collect or the browser, applied by ``fieldwork.apply``) marks a line once with a
conditional ``UPDATE ... WHERE handed_over_at IS NULL``: under retries or two laptops at one site, one
wins and the other is refused as a duplicate. It checks the line is on that site's list and, when
the evidence is a CNIC, that the CNIC seen is the recipient's (or that of ``received_by``, who must be
a current member of the household, ``registry/current.py``).

A cash hand-over does not post to the payments ledger: the bank's or agent's status file remains the
truth of a payment (reconciliation, ``payments.payroll``); the site's mark is field evidence of who
took the money, compared with that file, never a second source of payment.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from isps.access.models import User
from isps.access.service import Principal, audit
from isps.fieldwork.models import DistributionEntry, DistributionSite
from isps.payments.models import CashOutlet, Payroll
from isps.payments.pickup import PULL_CHANNELS
from isps.registry import cnic as cnic_rules, current
from isps.registry.models import Individual, Tehsil

KINDS = ("cash", "in_kind")
EVIDENCE = ("fingerprint", "cnic")
ITEMS = ("ration_pack", "flour_bag", "hygiene_kit", "tent", "blanket", "cooking_set", "other")

# the household's named recipient when the list does not name one: the head if still a current
# member, else the current member first on the roster (correlated, so a list is still one statement)
_FIRST_MEMBER = (f"(SELECT m.id FROM individual m WHERE m.household_id = {{h}} AND {current.sql('m')} "
                 "ORDER BY m.roster_line, m.id LIMIT 1)")


class DistributionError(ValueError):
    """A site or a list that cannot be made; the message names the record and the field."""


class OutOfScope(PermissionError):
    """The site lies outside the user's district."""


class HandOverRefused(ValueError):
    """A hand-over that is not recorded: not on this site's list, a duplicate, a CNIC that does not
    match. ``entry_id`` and ``field`` say which line and which of the receipt's fields; the message,
    naming both, is what the device and the officer's refused queue show."""

    def __init__(self, entry_id: int, field: str, message: str):
        super().__init__(f"entry {entry_id}: {field}: {message}")
        self.entry_id = entry_id
        self.field = field


def _in_scope(who: Principal, district_id: int) -> None:
    if who.scope is not None and who.scope != district_id:
        raise OutOfScope(f"district {district_id} is outside your district")


def site(session: Session, who: Principal, site_id: int) -> DistributionSite:
    """A site the user may see (scope), or :class:`DistributionError` / :class:`OutOfScope`."""
    row = session.get(DistributionSite, site_id)
    if row is None:
        raise DistributionError(f"site {site_id} does not exist")
    _in_scope(who, row.district_id)
    return row


def create_site(session: Session, who: Principal, *, name: str, kind: str, district_id: int,
                tehsil_id: int | None = None, outlet_id: int | None = None, opens_on: date | None = None,
                closes_on: date | None = None) -> DistributionSite:
    """A distribution site of the user's district. A cash site is an outlet's counter (its tehsil is the
    outlet's); an in-kind site names its tehsil when it has one."""
    who.require("field.assign")
    _in_scope(who, district_id)
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise DistributionError("name: a site needs a name of 1 to 120 characters")
    if kind not in KINDS:
        raise DistributionError(f"kind: '{str(kind)[:20]}' is not one of {', '.join(KINDS)}")
    if opens_on and closes_on and closes_on < opens_on:
        raise DistributionError(f"closes_on: {closes_on.isoformat()} is before opens_on {opens_on.isoformat()}")
    if kind == "cash":
        outlet = session.get(CashOutlet, outlet_id) if outlet_id else None
        if outlet is None or outlet.district_id != district_id:
            raise DistributionError(f"outlet_id: a cash site is a cash outlet of district {district_id}; "
                                    f"{outlet_id or 'none'} is not")
        tehsil_id = outlet.tehsil_id
    elif outlet_id:
        raise DistributionError("outlet_id: an in-kind site has no cash outlet")
    if tehsil_id is not None:
        t = session.get(Tehsil, tehsil_id)
        if t is None or t.district_id != district_id:
            raise DistributionError(f"tehsil_id: tehsil {tehsil_id} is not in district {district_id}")
    row = DistributionSite(name=name, kind=kind, district_id=district_id, tehsil_id=tehsil_id, outlet_id=outlet_id,
                           opens_on=opens_on, closes_on=closes_on, created_by=who.username)
    session.add(row)
    session.flush()
    audit(session, who, "field", "create", "distribution_site", row.id, district_id, detail=f"{kind}: {name}")
    return row


def list_from_payroll(session: Session, who: Principal, site_id: int, payroll_id: int) -> int:
    """The site's cash lines: every live pull-channel instruction of the payroll seated at the site's
    outlet (``pickup_slot``), within the site's dates when it has them; one ``INSERT ... SELECT``.
    Returns the lines added (a second run adds none)."""
    who.require("field.assign")
    s = site(session, who, site_id)
    if s.kind != "cash":
        raise DistributionError(f"site {site_id}: kind: an in-kind site's list is built from households, not a payroll")
    if session.get(Payroll, payroll_id) is None:
        raise DistributionError(f"payroll_id: payroll {payroll_id} does not exist")
    dates = ""
    params = {"site": s.id, "district": s.district_id, "ref": f"payroll:{payroll_id}", "payroll": payroll_id,
              "outlet": s.outlet_id}
    if s.opens_on:
        dates += " AND ps.slot_start >= :opens"
        params["opens"] = datetime.combine(s.opens_on, datetime.min.time())
    if s.closes_on:
        dates += " AND ps.slot_start < :closes"
        params["closes"] = datetime.combine(s.closes_on + timedelta(days=1), datetime.min.time())
    channels = ", ".join(f"'{c}'" for c in PULL_CHANNELS)
    n = session.execute(text(f"""INSERT INTO distribution_entry (site_id, district_id, list_ref, household_id,
            individual_id, item, quantity, amount, instruction_id, token)
        SELECT :site, :district, CAST(:ref AS VARCHAR(60)), e.household_id,
               COALESCE(e.recipient_id, NULLIF(e.individual_id, 0), {_FIRST_MEMBER.format(h='e.household_id')}),
               'cash', 1, i.amount, i.id, ps.seat
        FROM pickup_slot ps
        JOIN payment_instruction i ON i.id = ps.instruction_id
        JOIN enrolment e ON e.id = i.enrolment_id
        WHERE ps.outlet_id = :outlet AND i.payroll_id = :payroll AND i.district_id = :district
          AND i.status IN ('pending', 'sent') AND i.channel IN ({channels}){dates}
          AND NOT EXISTS (SELECT 1 FROM distribution_entry d WHERE d.site_id = :site AND d.list_ref = :ref
                          AND d.household_id = e.household_id AND d.item = 'cash')"""), params).rowcount
    audit(session, who, "field", "create", "distribution_entry", s.id, s.district_id,
          detail=f"site {s.id}: {n} cash lines from payroll {payroll_id}")
    return n


def list_in_kind(session: Session, who: Principal, site_id: int, *, list_ref: str, item: str, quantity: int,
                 household_ids: list[int]) -> int:
    """In-kind lines (``quantity`` of ``item`` each) for chosen households of the site's district, one
    ``INSERT ... SELECT``; a household outside the district or unknown refuses the whole list (nothing
    half-written). Returns the lines added (a household already on this list is not added again)."""
    who.require("field.assign")
    s = site(session, who, site_id)
    if s.kind != "in_kind":
        raise DistributionError(f"site {site_id}: kind: a cash site's list comes from a payroll's pickup slots")
    list_ref = (list_ref or "").strip()
    if not list_ref or len(list_ref) > 60:
        raise DistributionError("list_ref: name the list in 1 to 60 characters, e.g. ration:2026-12")
    item = (item or "").strip()
    if not item or len(item) > 40:
        raise DistributionError("item: name the item in 1 to 40 characters, e.g. ration_pack")
    if not isinstance(quantity, int) or not 1 <= quantity <= 1000:
        raise DistributionError(f"quantity: {quantity} is not a whole number from 1 to 1000")
    ids = sorted({int(h) for h in household_ids or []})
    if not ids:
        raise DistributionError("household_ids: choose at least one household")
    found = set(session.execute(text("SELECT id FROM household WHERE district_id = :d AND id IN :ids")
                                .bindparams(bindparam("ids", expanding=True)),
                                {"d": s.district_id, "ids": ids}).scalars())
    missing = [h for h in ids if h not in found]
    if missing:
        raise DistributionError(f"household_ids: {', '.join(map(str, missing[:5]))}"
                                f"{' …' if len(missing) > 5 else ''} not households of district {s.district_id}")
    n = session.execute(text(f"""INSERT INTO distribution_entry (site_id, district_id, list_ref, household_id,
            individual_id, item, quantity)
        SELECT :site, h.district_id, CAST(:ref AS VARCHAR(60)), h.id, {_FIRST_MEMBER.format(h='h.id')},
               CAST(:item AS VARCHAR(40)), :qty
        FROM household h
        WHERE h.district_id = :d AND h.id IN :ids
          AND NOT EXISTS (SELECT 1 FROM distribution_entry x WHERE x.site_id = :site AND x.list_ref = :ref
                          AND x.household_id = h.id AND x.item = :item)""")
                        .bindparams(bindparam("ids", expanding=True)),
                        {"site": s.id, "ref": list_ref, "item": item, "qty": quantity, "d": s.district_id,
                         "ids": ids}).rowcount
    audit(session, who, "field", "create", "distribution_entry", s.id, s.district_id,
          detail=f"site {s.id}: {n} lines of {item} x{quantity} ({list_ref})")
    return n


def _handed_by(session: Session, username: str) -> Principal:
    """The audit's actor: the user the device or browser belongs to (their role and district)."""
    u = session.scalar(select(User).where(User.username == username))
    if u is None:
        return Principal(username, "enumerator", None)
    return Principal(u.username, u.role, u.district_id)


def hand_over(session: Session, *, site_id: int, entry_id: int, by: str, evidence: str, cnic_seen: str | None,
              received_by: int | None, at: datetime, submission_id: int | None) -> DistributionEntry:
    """Mark one line of a site's list handed over, once. Raises :class:`HandOverRefused` (nothing
    written) when the line is not on that site's list, the evidence is unknown, ``received_by`` is not
    a current member of the line's household, the CNIC seen is not the receiver's, the date is outside
    the site's days, or the line was already handed over (a duplicate, however it raced)."""
    entry = session.get(DistributionEntry, entry_id)
    if entry is None or entry.site_id != site_id:
        raise HandOverRefused(entry_id, "entry_id", f"not on the list of site {site_id}")
    if entry.handed_over_at is not None:
        raise HandOverRefused(entry_id, "entry_id", f"already handed over on {entry.handed_over_at:%Y-%m-%d %H:%M} "
                                                    f"by {entry.handed_over_by} (duplicate)")
    if evidence not in EVIDENCE:
        raise HandOverRefused(entry_id, "evidence", f"'{str(evidence)[:20]}' is not one of {', '.join(EVIDENCE)}")
    s = session.get(DistributionSite, site_id)
    if (s.opens_on and at.date() < s.opens_on) or (s.closes_on and at.date() > s.closes_on):
        raise HandOverRefused(entry_id, "at", f"{at:%Y-%m-%d} is outside the days of site {site_id} "
                                              f"({s.opens_on or '…'} to {s.closes_on or '…'})")
    person_id = received_by or entry.individual_id
    person = session.get(Individual, person_id) if person_id else None
    if received_by is not None and (person is None or person.household_id != entry.household_id
                                    or not current.is_current(person)):
        raise HandOverRefused(entry_id, "received_by", f"person {received_by} is not a current member of "
                                                       f"household {entry.household_id}")
    if evidence == "cnic":
        try:
            seen = cnic_rules.normalise(cnic_seen)
        except cnic_rules.CnicError as e:
            raise HandOverRefused(entry_id, "cnic_seen", str(e)) from None
        if person is None or not person.cnic:
            raise HandOverRefused(entry_id, "cnic_seen", "the receiver has no CNIC on record: take a fingerprint")
        if seen != person.cnic:
            raise HandOverRefused(entry_id, "cnic_seen", f"{cnic_rules.mask(seen)} is not the CNIC of the receiver "
                                                         f"({cnic_rules.mask(person.cnic)})")
    # once: the WHERE holds the rule, so a second receipt (a retry, another laptop) updates nothing
    done = session.execute(update(DistributionEntry)
                           .where(DistributionEntry.id == entry_id, DistributionEntry.site_id == site_id,
                                  DistributionEntry.handed_over_at.is_(None))
                           .values(handed_over_at=at, handed_over_by=by, received_by=person_id,
                                   evidence=evidence, submission_id=submission_id)
                           .execution_options(synchronize_session=False)).rowcount
    if done != 1:
        session.expire(entry)
        raise HandOverRefused(entry_id, "entry_id", "already handed over (duplicate)")
    session.expire(entry)
    audit(session, _handed_by(session, by), "field", "hand_over", "distribution_entry", entry_id, entry.district_id,
          detail=f"site {site_id}, household {entry.household_id}: {entry.item} x{entry.quantity} ({evidence})")
    return entry


def summary(session: Session, site_id: int) -> dict:
    """A site's list in figures: lines, handed over, still to hand over, and cash amounts."""
    row = session.execute(text("""SELECT COUNT(*), COUNT(handed_over_at), COALESCE(SUM(amount), 0),
            COALESCE(SUM(CASE WHEN handed_over_at IS NOT NULL THEN amount ELSE 0 END), 0)
        FROM distribution_entry WHERE site_id = :s"""), {"s": site_id}).one()
    return {"lines": int(row[0]), "handed_over": int(row[1]), "remaining": int(row[0]) - int(row[1]),
            "amount": float(row[2]), "amount_handed_over": float(row[3])}


__all__ = ["KINDS", "EVIDENCE", "ITEMS", "DistributionError", "OutOfScope", "HandOverRefused", "site", "create_site",
           "list_from_payroll", "list_in_kind", "hand_over", "summary"]
