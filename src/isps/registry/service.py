"""The registry's service layer: read households and people, change them with provenance,
and answer "what did we know on date D, and from whom".

Every function takes a ``district_scope``: ``None`` for province-wide users, or the
one district a district officer or counter operator may see. The scope is applied in
the query itself, so nothing outside it is ever loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.registry import cnic as cnic_rules
from isps.registry import events
from isps.registry.fields import (DATE_OF_DEATH, HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS, check_death,
                                  check_effective_date, check_value)
from isps.registry.models import Household, IngestBatch, Individual, ValueChange
from isps.registry.vocab import SOURCES


class RegistryError(ValueError):
    """A request the registry refuses; the message names the record and field."""


class OutOfScope(PermissionError):
    """The record exists but lies outside the user's district."""


def get_household(session: Session, household_id: int, district_scope: int | None = None) -> Household | None:
    household = session.get(Household, household_id)
    if household is not None and district_scope is not None and household.district_id != district_scope:
        raise OutOfScope(f"household {household_id} is outside your district")
    return household


def members(session: Session, household_id: int, include_deceased: bool = True) -> list[Individual]:
    stmt = select(Individual).where(Individual.household_id == household_id)
    if not include_deceased:
        stmt = stmt.where(Individual.date_of_death.is_(None))
    return list(session.scalars(stmt.order_by(Individual.roster_line, Individual.id)))


def find_by_cnic(session: Session, raw_cnic: str, district_scope: int | None = None) -> list[Individual]:
    """Everyone registered under a CNIC (normally one person; more points at a duplicate)."""
    number = cnic_rules.normalise(raw_cnic)
    people = list(session.scalars(select(Individual).where(Individual.cnic == number)))
    if district_scope is not None and people and all(p.district_id != district_scope for p in people):
        raise OutOfScope("this CNIC is registered outside your district")
    return [p for p in people if district_scope is None or p.district_id == district_scope]


# ---------------------------------------------------------------- changes with provenance

@dataclass(frozen=True)
class Provenance:
    source: str
    actor: str
    effective_date: date
    source_ref: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise RegistryError(f"source must be one of {', '.join(SOURCES)}")
        try:
            check_effective_date(self.effective_date)
        except ValueError as exc:
            raise RegistryError(str(exc)) from None


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _newest_effective(session: Session, entity: str, entity_id: int, field_name: str) -> date | None:
    return session.scalar(select(ValueChange.effective_date).where(
        ValueChange.entity == entity, ValueChange.entity_id == entity_id, ValueChange.field == field_name)
        .order_by(ValueChange.effective_date.desc()).limit(1))


def _apply(session: Session, record, entity: str, household_id: int, changes: dict, prov: Provenance) -> list[str]:
    """Write one history row per changed field; move the current value only when this change is
    not older than the newest one already known for that field (late news stays history)."""
    changed = []
    for name, value in changes.items():
        old = getattr(record, name)
        if old == value:
            continue
        newest = _newest_effective(session, entity, record.id, name)
        session.add(ValueChange(entity=entity, entity_id=record.id, household_id=household_id,
                                district_id=record.district_id, field=name, old_value=_as_text(old),
                                new_value=_as_text(value), source=prov.source, source_ref=prov.source_ref,
                                effective_date=prov.effective_date, actor=prov.actor))
        if newest is None or prov.effective_date >= newest:
            setattr(record, name, value)
            changed.append(name)
    return changed


def change_household(session: Session, household_id: int, raw_changes: dict, prov: Provenance,
                     district_scope: int | None = None) -> list[str]:
    """Validate and apply field changes to a household; record an event for re-scoring."""
    household = get_household(session, household_id, district_scope)
    if household is None:
        raise RegistryError(f"household {household_id} does not exist")
    changes = {}
    for name, raw in raw_changes.items():
        spec = HOUSEHOLD_FIELDS.get(name)
        if spec is None:
            raise RegistryError(f"household {household_id}: '{name}' is not a field that can be changed")
        try:
            changes[name] = check_value(spec, raw)
        except ValueError as exc:
            raise RegistryError(f"household {household_id}: {exc}") from None
    changed = _apply(session, household, "household", household.id, changes, prov)
    if changed:
        household.version += 1
        household.updated_at = datetime.now()
        if prov.source in ("survey", "operator"):
            household.verified_on = max(household.verified_on, prov.effective_date)
        events.record(session, events.HOUSEHOLD_CHANGED, "household", household.id, {"fields": changed})
    return changed


def _one_living_holder(session: Session, person: Individual, number: str) -> None:
    """A CNIC identifies one living person: refuse to give ``number`` to ``person`` while another
    living person holds it (the rule imports apply too, in registry.transfer)."""
    holder = session.execute(
        select(Individual.household_id, Individual.roster_line, Household.ref)
        .join(Household, Household.id == Individual.household_id)
        .where(Individual.cnic == number, Individual.date_of_death.is_(None), Individual.id != person.id)
        .order_by(Individual.household_id, Individual.roster_line).limit(1)).first()
    if holder is not None:
        raise RegistryError(f"individual {person.id}: CNIC {cnic_rules.mask(number)} is already held by a living "
                            f"member of household {holder.ref} ({holder.household_id}), roster line "
                            f"{holder.roster_line}: a CNIC identifies one person")


def change_individual(session: Session, individual_id: int, raw_changes: dict, prov: Provenance,
                      district_scope: int | None = None) -> list[str]:
    person = session.get(Individual, individual_id)
    if person is None:
        raise RegistryError(f"individual {individual_id} does not exist")
    if district_scope is not None and person.district_id != district_scope:
        raise OutOfScope(f"individual {individual_id} is outside your district")
    changes = {}
    for name, raw in raw_changes.items():
        if name == "cnic":
            try:
                changes[name] = cnic_rules.validate(raw, raw_changes.get("sex", person.sex)) if raw else None
            except cnic_rules.CnicError as exc:
                raise RegistryError(f"individual {individual_id}: {exc}") from None
            if changes[name] is not None and changes[name] != person.cnic:
                _one_living_holder(session, person, changes[name])
            continue
        if name == "date_of_death":
            try:
                changes[name] = check_value(DATE_OF_DEATH, raw) if raw else None
            except ValueError as exc:
                raise RegistryError(f"individual {individual_id}: {exc}") from None
            continue
        spec = INDIVIDUAL_FIELDS.get(name)
        if spec is None:
            raise RegistryError(f"individual {individual_id}: '{name}' is not a field that can be changed")
        try:
            changes[name] = check_value(spec, raw)
        except ValueError as exc:
            raise RegistryError(f"individual {individual_id}: {exc}") from None
    try:
        check_death(changes.get("date_of_death", person.date_of_death),
                    changes.get("date_of_birth", person.date_of_birth))
    except ValueError as exc:
        raise RegistryError(f"individual {individual_id}: {exc}") from None
    changed = _apply(session, person, "individual", person.household_id, changes, prov)
    if changed:
        person.updated_at = datetime.now()
        topic = events.MEMBER_DECEASED if "date_of_death" in changed and person.date_of_death else events.MEMBER_CHANGED
        events.record(session, topic, "household", person.household_id,
                      {"individual_id": person.id, "fields": changed})
    return changed


# ---------------------------------------------------------------- history and the past

@dataclass
class TimelineEntry:
    effective_date: date
    recorded_at: datetime
    source: str
    actor: str
    what: str
    field: str | None = None
    old_value: str | None = None
    new_value: str | None = None
    person: str | None = None
    source_ref: str | None = None


def history(session: Session, household_id: int) -> list[TimelineEntry]:
    """The household's timeline, newest first: its first registration and every change since."""
    household = session.get(Household, household_id)
    if household is None:
        return []
    batch = session.get(IngestBatch, household.batch_id)
    names = {p.id: p.full_name for p in members(session, household_id)}
    entries = [TimelineEntry(household.surveyed_on, batch.recorded_at, batch.source, batch.actor,
                             "registered", source_ref=batch.reference)]
    for c in session.scalars(select(ValueChange).where(ValueChange.household_id == household_id)):
        entries.append(TimelineEntry(c.effective_date, c.recorded_at, c.source, c.actor, "changed", c.field,
                                     c.old_value, c.new_value,
                                     names.get(c.entity_id) if c.entity == "individual" else None, c.source_ref))
    entries.sort(key=lambda e: (e.effective_date, e.recorded_at), reverse=True)
    return entries


@dataclass
class KnownValue:
    value: str | None
    source: str
    since: date


@dataclass
class Snapshot:
    household_id: int
    on: date
    known_by: datetime
    household: dict[str, KnownValue] = field(default_factory=dict)
    members: dict[int, dict[str, KnownValue]] = field(default_factory=dict)


def _known_values(current: dict, batch: IngestBatch, since: date, changes: list[ValueChange],
                  on: date, known_by: datetime) -> dict[str, KnownValue]:
    """Each field's value on ``on`` as known at ``known_by``: the newest change in force then, or
    else the value before the first change, or else the current one (first registration)."""
    out = {}
    for name, value in current.items():
        mine = [c for c in changes if c.field == name]
        in_force = [c for c in mine if c.effective_date <= on and c.recorded_at <= known_by]
        if in_force:
            last = max(in_force, key=lambda c: (c.effective_date, c.recorded_at))
            out[name] = KnownValue(last.new_value, last.source, last.effective_date)
        elif mine:
            first = min(mine, key=lambda c: (c.effective_date, c.recorded_at))
            out[name] = KnownValue(first.old_value, batch.source, since)
        else:
            out[name] = KnownValue(_as_text(value), batch.source, since)
    return out


def snapshot(session: Session, household_id: int, on: date, known_by: datetime | None = None) -> Snapshot | None:
    """What the registry knew about a household on ``on``, as recorded by ``known_by`` (default:
    now), and from which source each value came. Single-record path: small lists in memory."""
    household = session.get(Household, household_id)
    if household is None or household.surveyed_on > on:
        return None
    known_by = known_by or datetime.now()
    batch = session.get(IngestBatch, household.batch_id)
    changes = list(session.scalars(select(ValueChange).where(ValueChange.household_id == household_id)))
    snap = Snapshot(household_id, on, known_by)
    hh_changes = [c for c in changes if c.entity == "household"]
    snap.household = _known_values({k: getattr(household, k) for k in HOUSEHOLD_FIELDS}, batch,
                                   household.surveyed_on, hh_changes, on, known_by)
    for person in members(session, household_id):
        if person.member_since > on:
            continue
        person_batch = session.get(IngestBatch, person.batch_id)
        mine = [c for c in changes if c.entity == "individual" and c.entity_id == person.id]
        fields_now = {k: getattr(person, k) for k in (*INDIVIDUAL_FIELDS, "cnic", "date_of_death")}
        values = _known_values(fields_now, person_batch, person.member_since, mine, on, known_by)
        death = values["date_of_death"].value
        if death and date.fromisoformat(death) <= on:
            values["status"] = KnownValue("deceased", values["date_of_death"].source, values["date_of_death"].since)
        snap.members[person.id] = values
    return snap


# ---------------------------------------------------------------- one household registered at a counter

REGISTRATION_SOURCES = ("counter", "self_report", "operator")


def _adult_on(born: date, on: date) -> bool:
    return (on.year - born.year - ((on.month, on.day) < (born.month, born.day))) >= 18


def register_household(session: Session, household: dict, members: list[dict], prov: Provenance) -> Household:
    """Write one never-surveyed household and its members to the registry (the One Window's
    registration, once a second person verified it): ids from :mod:`isps.registry.ids`, one
    ``ingest_batch`` with the provenance's source (``counter``, or ``self_report`` for the citizen's
    own web channel), a ``household.created`` event so that scoring and eligibility follow.

    ``household`` holds ``district_id``, ``tehsil_id``, optional ``uc_id`` and the fields of
    :data:`HOUSEHOLD_FIELDS`; each member the fields of :data:`INDIVIDUAL_FIELDS` and optional
    ``cnic`` and ``id_document`` (``cnic`` | ``bform``), the head first. Every value is checked by
    the field rules again; a CNIC held by a living person is refused naming where it is (masked)."""
    from isps.registry import ids
    from isps.registry.models import Tehsil, UnionCouncil

    if prov.source not in REGISTRATION_SOURCES:
        raise RegistryError(f"a registration's source must be one of {', '.join(REGISTRATION_SOURCES)}")
    if not members:
        raise RegistryError("a household is registered with at least its head")
    try:
        district_id, tehsil_id = int(household["district_id"]), int(household["tehsil_id"])
    except (KeyError, TypeError, ValueError):
        raise RegistryError("household: district_id and tehsil_id are required") from None
    tehsil = session.get(Tehsil, tehsil_id)
    if tehsil is None or tehsil.district_id != district_id:
        raise RegistryError(f"household: tehsil_id {tehsil_id} is not a tehsil of district {district_id}")
    uc_id = household.get("uc_id")
    if uc_id not in (None, ""):
        uc = session.get(UnionCouncil, int(uc_id))
        if uc is None or uc.tehsil_id != tehsil_id:
            raise RegistryError(f"household: uc_id {uc_id} is not a union council of tehsil {tehsil_id}")
        uc_id = int(uc_id)
    else:
        uc_id = None
    values = {}
    for name, spec in HOUSEHOLD_FIELDS.items():
        try:
            values[name] = check_value(spec, household.get(name))
        except ValueError as exc:
            raise RegistryError(f"household: {exc}") from None
    people = []
    seen: dict[str, int] = {}
    for line, raw in enumerate(members, start=1):
        person = {}
        for name, spec in INDIVIDUAL_FIELDS.items():
            try:
                person[name] = check_value(spec, raw.get(name))
            except ValueError as exc:
                raise RegistryError(f"member {line}: {exc}") from None
        number = None
        if raw.get("cnic"):
            try:
                number = cnic_rules.validate(raw["cnic"], person["sex"])
            except cnic_rules.CnicError as exc:
                raise RegistryError(f"member {line}: {exc}") from None
            if number in seen:
                raise RegistryError(f"member {line}: CNIC {cnic_rules.mask(number)} is also member {seen[number]}'s")
            seen[number] = line
            holder = session.execute(
                select(Individual.roster_line, Household.ref, Household.district_id)
                .join(Household, Household.id == Individual.household_id)
                .where(Individual.cnic == number, Individual.date_of_death.is_(None)).limit(1)).first()
            if holder is not None:
                raise RegistryError(f"member {line}: CNIC {cnic_rules.mask(number)} is already registered in household "
                                    f"{holder.ref} (district {holder.district_id}), roster line {holder.roster_line}")
        document = raw.get("id_document") or None
        if number is None:
            document = None
        elif document not in (None, "cnic", "bform"):
            raise RegistryError(f"member {line}: id_document must be cnic or bform")
        elif document is None:
            document = "cnic" if _adult_on(person["date_of_birth"], prov.effective_date) else "bform"
        person.update(cnic=number, id_document=document)
        people.append(person)
    if people[0]["relation_to_head"] != "head" or sum(p["relation_to_head"] == "head" for p in people) != 1:
        raise RegistryError("member 1: the first member is the head, and a household has one head")

    batch = IngestBatch(source=prov.source, reference=(prov.source_ref or f"{prov.source} registration")[:200],
                        effective_date=prov.effective_date, actor=prov.actor,
                        summary={"households": 1, "members": len(people)})
    session.add(batch)
    session.flush()
    hid = ids.next_household_ids(session, district_id)[0]
    record = Household(id=hid, ref=f"CTR-{hid}" if prov.source == "counter" else f"SLF-{hid}",
                       district_id=district_id, tehsil_id=tehsil_id, uc_id=uc_id, **values, batch_id=batch.id,
                       surveyed_on=prov.effective_date, verified_on=prov.effective_date, version=1)
    session.add(record)
    session.flush()
    first = ids.next_individual_ids(session, district_id, len(people))
    for line, (pid, person) in enumerate(zip(first, people), start=1):
        session.add(Individual(id=pid, household_id=hid, district_id=district_id, roster_line=line, **person,
                               member_since=prov.effective_date, batch_id=batch.id))
    session.flush()
    events.record(session, events.HOUSEHOLD_CREATED, "household", hid, {"batch_id": batch.id, "source": prov.source})
    return record
