"""A never-surveyed household registered at the One Window: the household's Poverty Score Card
fields and its members, checked by the registry's own field rules (:mod:`isps.registry.fields`)
and kept staged in the application's ``details`` (not in the registry) until a second person
verifies them; then written through :func:`isps.registry.service.register_household`.

Every refusal names the part of the form it is about: ``household: rooms must be a number from 1 to
40`` or ``member 2: date_of_birth must be a date written YYYY-MM-DD``.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.registry import cnic as cnic_rules
from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS, check_value
from isps.registry.models import Household, Individual, Tehsil, UnionCouncil
from isps.registry.vocab import DURABLES

# what the counter keys in for each member, in the form's order (the registry's field rules check them)
MEMBER_FIELDS = ("full_name", "father_husband_name", "cnic", "id_document", "sex", "date_of_birth",
                 "relation_to_head", "marital_status", "education", "enrolled_in_school", "disability",
                 "occupation", "labour_status", "maternal_status", "phone")
HOUSEHOLD_FORM = ("tehsil_id", "uc_id", *HOUSEHOLD_FIELDS)
# yes/no fields a form may leave unticked (a checkbox not ticked is "no"); counts left empty are 0
DEFAULT_NO = (*DURABLES, "tractor", "electricity", "enrolled_in_school")
DEFAULT_ZERO = ("land_acres", "cattle", "goats_sheep")
EVIDENCE_KINDS = ("cnic_seen", "bform_seen", "utility_bill", "death_certificate", "disability_certificate",
                  "school_certificate", "salary_slip", "affidavit", "other")
MAX_MEMBERS = 30


class RegistrationError(ValueError):
    """A registration the form must correct; the message names the member row (or household) and field."""


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _blank(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def check_household(session: Session, district_id: int, raw: dict) -> dict:
    """The household part, as clean text (what the application keeps staged)."""
    out: dict[str, str | None] = {}
    try:
        tehsil_id = int(str(raw.get("tehsil_id", "")).strip())
    except ValueError:
        raise RegistrationError("household: tehsil_id is required") from None
    tehsil = session.get(Tehsil, tehsil_id) if 0 < tehsil_id < 32_768 else None
    if tehsil is None or tehsil.district_id != district_id:
        raise RegistrationError(f"household: tehsil {tehsil_id} is not a tehsil of this district")
    out["tehsil_id"] = str(tehsil_id)
    uc = raw.get("uc_id")
    if not _blank(uc):
        text_uc = str(uc).strip()
        uc_row = session.get(UnionCouncil, int(text_uc)) if text_uc.isdigit() and len(text_uc) < 10 else None
        if uc_row is None or uc_row.tehsil_id != tehsil_id:
            raise RegistrationError(f"household: uc_id {str(uc)[:12]} is not a union council of tehsil {tehsil.name}")
        out["uc_id"] = str(uc_row.id)
    else:
        out["uc_id"] = None
    for name, spec in HOUSEHOLD_FIELDS.items():
        value = raw.get(name)
        if _blank(value) and name in DEFAULT_NO:
            value = "no"
        if _blank(value) and name in DEFAULT_ZERO:
            value = "0"
        try:
            out[name] = _text(check_value(spec, None if _blank(value) else str(value).strip()))
        except ValueError as exc:
            raise RegistrationError(f"household: {exc}") from None
    return out


def check_members(session: Session, members: list[dict], on: date | None = None) -> list[dict]:
    """The members, each checked by the registry's field rules; a CNIC already in the registry is
    refused naming where it is (masked), with the change path to follow instead."""
    if not members:
        raise RegistrationError("member 1: a household is registered with at least its head")
    if len(members) > MAX_MEMBERS:
        raise RegistrationError(f"member {MAX_MEMBERS + 1}: a household of more than {MAX_MEMBERS} members "
                                "is registered as more than one household")
    out, seen = [], {}
    for line, raw in enumerate(members, start=1):
        person: dict[str, str | None] = {}
        for name, spec in INDIVIDUAL_FIELDS.items():
            value = raw.get(name)
            if _blank(value) and name in DEFAULT_NO:
                value = "no"
            try:
                person[name] = _text(check_value(spec, None if _blank(value) else str(value).strip()))
            except ValueError as exc:
                raise RegistrationError(f"member {line}: {exc}") from None
        number = None
        if not _blank(raw.get("cnic")):
            try:
                number = cnic_rules.validate(str(raw["cnic"]), person["sex"])
            except cnic_rules.CnicError as exc:
                raise RegistrationError(f"member {line}: cnic: {exc}") from None
            if number in seen:
                raise RegistrationError(f"member {line}: cnic {cnic_rules.mask(number)} is already given for "
                                        f"member {seen[number]}")
            seen[number] = line
        document = (raw.get("id_document") or "").strip() or None
        if number is not None and document not in (None, "cnic", "bform"):
            raise RegistrationError(f"member {line}: id_document must be cnic or bform")
        person["cnic"] = number
        person["id_document"] = document if number is not None else None
        out.append(person)
    heads = [i for i, p in enumerate(out, start=1) if p["relation_to_head"] == "head"]
    if heads != [1]:
        where = heads[1] if len(heads) > 1 else 1
        raise RegistrationError(f"member {where}: relation_to_head: the first member is the head, and a "
                                "household has one head")
    if seen:
        held = session.execute(
            select(Individual.cnic, Individual.roster_line, Household.ref, Household.district_id)
            .join(Household, Household.id == Individual.household_id)
            .where(Individual.cnic.in_(list(seen)), Individual.date_of_death.is_(None))
            .order_by(Individual.id)).first()
        if held is not None:
            raise RegistrationError(
                f"member {seen[held.cnic]}: cnic {cnic_rules.mask(held.cnic)} is already in the registry "
                f"(household {held.ref}, district {held.district_id}, roster line {held.roster_line}): this "
                "person is registered; apply for a change of that household instead of a new registration")
    return out


def check_evidence(evidence: list[dict] | None) -> list[dict]:
    """Documents seen at the counter: a kind and a reference (a number, a scan's name)."""
    out = []
    for i, item in enumerate(evidence or [], start=1):
        kind = str(item.get("kind", "")).strip()
        ref = str(item.get("reference", "")).strip()
        if not kind and not ref:
            continue
        if kind not in EVIDENCE_KINDS:
            raise RegistrationError(f"evidence {i}: kind must be one of {', '.join(EVIDENCE_KINDS)}")
        if not ref:
            raise RegistrationError(f"evidence {i}: reference is required (the document's number or scan)")
        if len(ref) > 120 or ref[:1] in "=+-@":
            raise RegistrationError(f"evidence {i}: reference must be plain text of at most 120 characters")
        digits = "".join(ch for ch in ref if ch.isdigit())
        if len(digits) == 13 and all(ch.isdigit() or ch in " -" for ch in ref):
            ref = cnic_rules.mask(digits)  # a CNIC seen is kept masked: the number itself is the member's
        entry = {"kind": kind, "reference": ref}
        if item.get("member"):
            entry["member"] = str(item["member"])[:3]
        out.append(entry)
    return out


def as_registry(details: dict, district_id: int) -> tuple[dict, list[dict]]:
    """The staged household and members in the shape :func:`register_household` takes."""
    household = {**details["household"], "district_id": district_id}
    return household, [dict(m) for m in details["members"]]
