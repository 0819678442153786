"""The pre-loaded lists a field form reads offline (its media files, CSV), made for one device: the
places of its district, and the work its user was given there.

Each file is one query, scoped twice (the user's assignments and the device's district), so a device
carries nothing of another district and nothing its user was not given. CNICs are masked as lists
mask them everywhere (``registry.cnic.mask``); the enumerator asks to see the card, the form never
shows the number. Columns ``name`` and ``label`` are what ``select_one_from_file`` shows and stores;
the other columns are what the form pre-fills (``instance('households')/root/item[name=...]/roof``).
The forms' ``label`` column is one for every language (XLSForm reads no translations from a CSV), so a
place's label carries its English and Urdu names.

Who downloads a file and when is the adapter's to audit (the OpenRosa door knows the request); these
functions only read.
"""

from __future__ import annotations

import csv
import io

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from isps.citizen.applications.models import Application
from isps.fieldwork.forms import FormSpec, as_text
from isps.fieldwork.models import DistributionEntry, DistributionSite, FieldAssignment, FieldDevice
from isps.registry import current
from isps.registry.cnic import mask
from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS
from isps.registry.geography import tehsil_names_ur
from isps.registry.models import District, Household, Individual, Tehsil, UnionCouncil

SEP = " · "


def media_for(session: Session, device: FieldDevice, spec: FormSpec) -> list[tuple[str, bytes]]:
    """(file name, content) of every media file of the form, for this device's user and district."""
    return [(name, render(session, device, name)) for name in spec.media]


def render(session: Session, device: FieldDevice, name: str) -> bytes:
    """One media file; ``KeyError`` for a name no form uses."""
    return _FILES[name](session, device)


def _csv(header: list[str], rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[as_text(v) for v in row] for row in rows])
    return out.getvalue().encode("utf-8")


def _open(device: FieldDevice, kind: str):
    """The device user's open assignments of one kind in the device's district."""
    return and_(FieldAssignment.enumerator == device.username, FieldAssignment.kind == kind,
                FieldAssignment.status == "open", FieldAssignment.district_id == device.district_id)


def places(session: Session, device: FieldDevice) -> bytes:
    """The district (one row, ``kind`` district: the forms' ``district_id``), its tehsils and their
    union councils (``tehsil_id`` filters a union council by the chosen tehsil)."""
    d = device.district_id
    district = session.execute(select(District.id, District.name, District.name_ur).where(District.id == d)).all()
    tehsils = session.execute(select(Tehsil.id, Tehsil.name, Tehsil.name_ur).where(Tehsil.district_id == d)
                              .order_by(Tehsil.name)).all()
    ucs = session.execute(select(UnionCouncil.id, UnionCouncil.name, UnionCouncil.tehsil_id)
                          .join(Tehsil, Tehsil.id == UnionCouncil.tehsil_id).where(Tehsil.district_id == d)
                          .order_by(UnionCouncil.tehsil_id, UnionCouncil.id)).all()
    urdu = tehsil_names_ur()
    rows = [(i, _both(n, u), n, u, "district", "", i) for i, n, u in district]
    rows += [(i, _both(n, u or urdu.get(i)), n, u or urdu.get(i, ""), "tehsil", i, d) for i, n, u in tehsils]
    rows += [(i, n, n, "", "uc", t, d) for i, n, t in ucs]
    return _csv(["name", "label", "label_en", "label_ur", "kind", "tehsil_id", "district_id"], rows)


def _both(en: str, ur: str | None) -> str:
    return f"{en} / {ur}" if ur else en


def _heads():
    """Each household's current head (the lowest roster line of the current heads)."""
    first = (select(Individual.household_id, func.min(Individual.roster_line).label("line"))
             .where(Individual.relation_to_head == "head", current.clause()).group_by(Individual.household_id)
             .subquery())
    head = aliased(Individual)
    return first, head


def households(session: Session, device: FieldDevice) -> bytes:
    """The households of the user's open survey assignments, with every value a re-survey pre-fills
    (named as the registry's columns) and the head's name and masked CNIC to find the family by."""
    first, head = _heads()
    cols = [getattr(Household, n) for n in HOUSEHOLD_FIELDS]
    rows = session.execute(
        select(Household.id, head.full_name, head.cnic, Household.district_id, Household.tehsil_id, Household.uc_id,
               *cols)
        .join(FieldAssignment, FieldAssignment.household_id == Household.id)
        .outerjoin(first, first.c.household_id == Household.id)
        .outerjoin(head, and_(head.household_id == Household.id, head.roster_line == first.c.line))
        .where(_open(device, "survey"), Household.district_id == device.district_id)
        .order_by(Household.id)).all()
    out = []
    for hid, name, cnic, district_id, tehsil_id, uc_id, *values in rows:
        address = values[list(HOUSEHOLD_FIELDS).index("address")]
        out.append((hid, SEP.join(str(x) for x in (hid, name or "", mask(cnic), address) if x != ""),
                    name, mask(cnic), district_id, tehsil_id, uc_id, *values))
    return _csv(["name", "label", "head_name", "head_cnic_masked", "district_id", "tehsil_id", "union_council",
                 *HOUSEHOLD_FIELDS], out)


def members(session: Session, device: FieldDevice) -> bytes:
    """The current members of the user's assigned households, numbered ``line`` 1, 2, ... in roster order
    (the survey's repeat finds its pre-filled person by household and line); CNIC masked, the rest as
    the registry holds it."""
    line = func.row_number().over(partition_by=Individual.household_id,
                                  order_by=(Individual.roster_line, Individual.id))
    cols = [getattr(Individual, n) for n in INDIVIDUAL_FIELDS]
    rows = session.execute(
        select(Individual.id, Individual.household_id, line, Individual.cnic, Individual.id_document, *cols)
        .join(FieldAssignment, FieldAssignment.household_id == Individual.household_id)
        .where(_open(device, "survey"), Individual.district_id == device.district_id, current.clause())
        .order_by(Individual.household_id, Individual.roster_line, Individual.id)).all()
    out = [(iid, hid, n, SEP.join(x for x in (values[0], mask(cnic)) if x), mask(cnic), doc or "none", *values)
           for iid, hid, n, cnic, doc, *values in rows]
    return _csv(["name", "household_id", "line", "label", "cnic_masked", "id_document", *INDIVIDUAL_FIELDS], out)


def visits(session: Session, device: FieldDevice) -> bytes:
    """The user's open verification visits: the application, who applied and where to find them (the
    household's address on record, else the address the application gives)."""
    given = Application.details["household"]["address"].as_string()
    rows = session.execute(
        select(Application.id, Application.applicant_name, func.coalesce(Household.address, given),
               Application.household_id)
        .join(FieldAssignment, FieldAssignment.application_id == Application.id)
        .outerjoin(Household, Household.id == Application.household_id)
        .where(_open(device, "visit"), Application.district_id == device.district_id)
        .order_by(Application.id)).all()
    out = [(a, SEP.join(str(x) for x in (a, name, address or "") if x != ""), name, address, hid)
           for a, name, address, hid in rows]
    return _csv(["name", "label", "applicant", "address", "household_id"], out)


def _site_ids(device: FieldDevice):
    return (select(FieldAssignment.site_id).where(_open(device, "site"), FieldAssignment.site_id.is_not(None))
            .scalar_subquery())


def sites(session: Session, device: FieldDevice) -> bytes:
    """The distribution sites the user staffs (open ``site`` assignments) in the device's district."""
    rows = session.execute(
        select(DistributionSite.id, DistributionSite.name, DistributionSite.kind, DistributionSite.opens_on,
               DistributionSite.closes_on)
        .where(DistributionSite.id.in_(_site_ids(device)), DistributionSite.district_id == device.district_id)
        .order_by(DistributionSite.id)).all()
    out = [(i, SEP.join(x for x in (name, kind, as_text(opens) + (f"–{as_text(closes)}" if closes else "")) if x),
            name, kind, opens, closes) for i, name, kind, opens, closes in rows]
    return _csv(["name", "label", "site_name", "kind", "opens_on", "closes_on"], out)


def entries(session: Session, device: FieldDevice) -> bytes:
    """The lines of those sites' lists not yet handed over: who is to receive what (the named recipient,
    else the household's current head), token, item, quantity, amount; CNIC masked."""
    first, head = _heads()
    named = aliased(Individual)
    rows = session.execute(
        select(DistributionEntry.id, DistributionEntry.site_id, DistributionEntry.household_id,
               DistributionEntry.token, func.coalesce(named.full_name, head.full_name),
               func.coalesce(named.cnic, head.cnic), DistributionEntry.item, DistributionEntry.quantity,
               DistributionEntry.amount, func.coalesce(named.id, head.id))
        .join(DistributionSite, DistributionSite.id == DistributionEntry.site_id)
        .outerjoin(named, named.id == DistributionEntry.individual_id)
        .outerjoin(first, first.c.household_id == DistributionEntry.household_id)
        .outerjoin(head, and_(head.household_id == DistributionEntry.household_id, head.roster_line == first.c.line))
        .where(DistributionEntry.site_id.in_(_site_ids(device)), DistributionEntry.handed_over_at.is_(None),
               DistributionEntry.district_id == device.district_id,
               DistributionSite.district_id == device.district_id)
        .order_by(DistributionEntry.site_id, DistributionEntry.token, DistributionEntry.id)).all()
    out = []
    for eid, site, hid, token, name, cnic, item, qty, amount, person in rows:
        what = f"Rs {as_text(amount)}" if amount is not None else f"{qty} × {item}"
        label = SEP.join(x for x in (f"#{token}" if token is not None else "", name or "", mask(cnic), what) if x)
        out.append((eid, label, site, hid, person, name, mask(cnic), item, qty, amount, token))
    return _csv(["name", "label", "site_id", "household_id", "individual_id", "recipient", "cnic_masked", "item",
                 "quantity", "amount", "token"], out)


def recipients(session: Session, device: FieldDevice) -> bytes:
    """The current members of the households on those sites' lists, for "who took it" when not the
    named recipient (the receipt filters them by the chosen line's household)."""
    on_list = (select(DistributionEntry.household_id)
               .where(DistributionEntry.site_id.in_(_site_ids(device)), DistributionEntry.handed_over_at.is_(None),
                      DistributionEntry.district_id == device.district_id)
               .distinct().subquery())
    rows = session.execute(
        select(Individual.id, Individual.household_id, Individual.full_name, Individual.relation_to_head,
               Individual.cnic)
        .join(on_list, on_list.c.household_id == Individual.household_id)
        .where(Individual.district_id == device.district_id, current.clause())
        .order_by(Individual.household_id, Individual.roster_line, Individual.id)).all()
    out = [(i, SEP.join(x for x in (name, relation, mask(cnic)) if x), hid, name, relation, mask(cnic))
           for i, hid, name, relation, cnic in rows]
    return _csv(["name", "label", "household_id", "full_name", "relation_to_head", "cnic_masked"], out)


_FILES = {"places.csv": places, "households.csv": households, "members.csv": members, "visits.csv": visits,
          "sites.csv": sites, "entries.csv": entries, "recipients.csv": recipients}
