"""The registry's service layer: read households and people, change them with provenance,
and answer "what did we know on date D, and from whom".

Every function takes a ``district_scope``: ``None`` for province-wide users, or the
one district a district officer or counter operator may see. The scope is applied in
the query itself, so nothing outside it is ever loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from isps.registry import cnic as cnic_rules
from isps.registry import events, ids
from isps.registry import current
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
        stmt = stmt.where(current.clause())
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


def _one_living_holder(session: Session, person: Individual | None, number: str, label: str | None = None) -> None:
    """A CNIC identifies one living person: refuse to give ``number`` to ``person`` (None: a new
    member) while a current member of a household holds it (the rule imports apply too, in
    registry.transfer). A person who left a household keeps their record, not the number's use."""
    holder = session.execute(
        select(Individual.household_id, Individual.roster_line, Household.ref)
        .join(Household, Household.id == Individual.household_id)
        .where(Individual.cnic == number, current.clause(), Individual.id != (person.id if person else 0))
        .order_by(Individual.household_id, Individual.roster_line).limit(1)).first()
    if holder is not None:
        raise RegistryError(f"{label or f'individual {person.id}'}: CNIC {cnic_rules.mask(number)} is already held by a living "
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
        elif person.left_on is not None and person.left_on <= on:
            values["status"] = KnownValue("left", "operator", person.left_on)
        snap.members[person.id] = values
    return snap


# ---------------------------------------------------------------- household membership

# Why a person stops being a current member. ``died`` takes the death path (date_of_death,
# ``member.deceased``); ``moved_to_household`` moves the person's record to another registered
# household; ``left`` (with what happened: married away, migrated, whereabouts unknown) and
# ``entered_in_error`` keep the person on record with ``left_on`` and ``left_reason``.
REMOVAL_REASONS = ("died", "moved_to_household", "left", "entered_in_error")
LEFT_DETAILS = ("married_away", "migrated", "whereabouts_unknown")
MEMBER_ADDED = "member.added"      # named in a household.changed event's fields (DCI NewHouseHoldMember)
MEMBER_REMOVED = "member.removed"
# what a new member's record must carry; the rest take the roster's defaults
MEMBER_REQUIRED = ("full_name", "sex", "date_of_birth", "relation_to_head")
MEMBER_DEFAULTS = {"marital_status": "never_married", "disability": "none", "education": "none",
                   "enrolled_in_school": "no", "labour_status": "not_in_labour_force"}
ID_DOCUMENTS = ("cnic", "bform")


def _history(session: Session, person: Individual, household_id: int, name: str, old: object, new: object,
             prov: Provenance, batch_id: int | None = None) -> None:
    session.add(ValueChange(entity="individual", entity_id=person.id, household_id=household_id,
                            district_id=ids.district_of_household(household_id),
                            field=name, old_value=_as_text(old), new_value=_as_text(new), source=prov.source,
                            source_ref=prov.source_ref, effective_date=prov.effective_date, actor=prov.actor,
                            batch_id=batch_id))


def check_member(session: Session, household: Household, member: dict) -> dict:
    """A new member's values checked against the registry's field rules (the maker's step and the
    checker's alike); returns the typed values. Every message names the household and the field."""
    label = f"household {household.id}: new member"
    unknown = [k for k in member if k not in INDIVIDUAL_FIELDS and k not in ("cnic", "id_document")]
    if unknown:
        raise RegistryError(f"{label}: '{unknown[0]}' is not a field of a member")
    raw = {**MEMBER_DEFAULTS, **{k: v for k, v in member.items() if v not in (None, "")}}
    for name in MEMBER_REQUIRED:
        if not str(raw.get(name, "")).strip():
            raise RegistryError(f"{label}: {name} is required")
    values = {}
    for name, value in raw.items():
        if name in ("cnic", "id_document"):
            continue
        try:
            values[name] = check_value(INDIVIDUAL_FIELDS[name], value)
        except ValueError as exc:
            raise RegistryError(f"{label}: {exc}") from None
    document = str(raw.get("id_document") or ("cnic" if raw.get("cnic") else "")).strip().lower() or None
    if raw.get("cnic"):
        if document not in ID_DOCUMENTS:
            raise RegistryError(f"{label}: id_document must be one of {', '.join(ID_DOCUMENTS)}")
        try:  # a B-form is written like a CNIC; its last digit follows the child's sex too
            values["cnic"] = cnic_rules.validate(raw["cnic"], values["sex"])
        except cnic_rules.CnicError as exc:
            raise RegistryError(f"{label}: cnic: {exc}") from None
        values["id_document"] = document
    elif document:
        raise RegistryError(f"{label}: cnic is required when id_document is {document}")
    if values["relation_to_head"] == "head" and session.scalar(
            select(Individual.id).where(Individual.household_id == household.id,
                                        Individual.relation_to_head == "head", current.clause()).limit(1)):
        raise RegistryError(f"{label}: relation_to_head cannot be head: the household has a head; "
                            "change the head's relation first")
    return values


def add_member(session: Session, household_id: int, member: dict, prov: Provenance,
               district_scope: int | None = None) -> Individual:
    """A person joins a registered household (a newborn with a B-form, a bride, a returning migrant):
    a new individual id from the district's range, the next roster line, the first values carried
    by an ingest batch of their own, a ``membership`` history row, and a ``household.changed``
    event naming ``member.added`` (so the PMT, eligibility and DCI subscribers act on it)."""
    household = get_household(session, household_id, district_scope)
    if household is None:
        raise RegistryError(f"household {household_id} does not exist")
    values = check_member(session, household, member)
    if values.get("cnic"):
        _one_living_holder(session, None, values["cnic"], f"household {household_id}: new member: cnic")
    if values["date_of_birth"] > prov.effective_date:
        raise RegistryError(f"household {household_id}: new member: date_of_birth "
                            f"{values['date_of_birth'].isoformat()} is after the day they join "
                            f"({prov.effective_date.isoformat()})")
    batch = IngestBatch(source=prov.source, reference=(prov.source_ref or f"member added to {household.ref}")[:200],
                        effective_date=prov.effective_date, actor=prov.actor[:80],
                        summary={"household_id": household.id, "member": "added"})
    session.add(batch)
    session.flush()
    line = session.scalar(select(func.max(Individual.roster_line)).where(Individual.household_id == household.id))
    person = Individual(id=ids.next_individual_ids(session, household.district_id)[0], household_id=household.id,
                        district_id=household.district_id, roster_line=(line or 0) + 1,
                        member_since=prov.effective_date, batch_id=batch.id, **values)
    session.add(person)
    session.flush()
    _history(session, person, household.id, "membership", None, "joined", prov, batch.id)
    household.version += 1
    household.updated_at = datetime.now()
    events.record(session, events.HOUSEHOLD_CHANGED, "household", household.id,
                  {"fields": [MEMBER_ADDED], "individual_id": person.id})
    return person


def remove_member(session: Session, individual_id: int, reason: str, prov: Provenance, *,
                  detail: str | None = None, to_household: int | None = None, relation: str | None = None,
                  district_scope: int | None = None) -> Individual:
    """A person stops being a current member of their household, for ``reason`` (REMOVAL_REASONS),
    on ``prov.effective_date``. Nothing is deleted: the dead keep their date of death, those who
    left their ``left_on`` and ``left_reason``, and a move is history on both households."""
    person = session.get(Individual, individual_id)
    if person is None:
        raise RegistryError(f"individual {individual_id} does not exist")
    if district_scope is not None and person.district_id != district_scope:
        raise OutOfScope(f"individual {individual_id} is outside your district")
    label = f"individual {individual_id}"
    if reason not in REMOVAL_REASONS:
        raise RegistryError(f"{label}: reason must be one of {', '.join(REMOVAL_REASONS)}")
    if not current.is_current(person):
        state = "died" if person.date_of_death else f"left the household on {person.left_on.isoformat()}"
        raise RegistryError(f"{label}: is no longer a current member ({state})")
    if prov.effective_date < person.member_since:
        raise RegistryError(f"{label}: effective_date {prov.effective_date.isoformat()} is before the person "
                            f"joined the household ({person.member_since.isoformat()})")
    if reason == "died":
        change_individual(session, individual_id, {"date_of_death": prov.effective_date.isoformat()}, prov,
                          district_scope)
        return person
    old_household = person.household_id
    others = session.scalar(select(func.count()).select_from(Individual).where(
        Individual.household_id == old_household, Individual.id != person.id, current.clause())) or 0
    if person.relation_to_head == "head" and others and reason != "entered_in_error":
        raise RegistryError(f"{label}: relation_to_head: the head cannot leave while {others} members remain; "
                            "make another member head first (an edit of relation_to_head)")
    if reason == "moved_to_household":
        if to_household is None:
            raise RegistryError(f"{label}: to_household is required when the reason is moved_to_household")
        target = get_household(session, to_household, district_scope)
        if target is None:
            raise RegistryError(f"{label}: to_household {to_household} does not exist")
        if target.id == old_household:
            raise RegistryError(f"{label}: to_household {to_household} is the household the person is in")
        try:
            new_relation = check_value(INDIVIDUAL_FIELDS["relation_to_head"], relation or "other")
        except ValueError as exc:
            raise RegistryError(f"{label}: {exc}") from None
        if new_relation == "head" and session.scalar(select(Individual.id).where(
                Individual.household_id == target.id, Individual.relation_to_head == "head", current.clause())):
            raise RegistryError(f"{label}: relation_to_head cannot be head: household {target.id} has a head")
        line = session.scalar(select(func.max(Individual.roster_line)).where(Individual.household_id == target.id))
        moves = {"household_id": (old_household, target.id), "roster_line": (person.roster_line, (line or 0) + 1),
                 "relation_to_head": (person.relation_to_head, new_relation),
                 "member_since": (person.member_since, prov.effective_date)}
        for hid in (old_household, target.id):  # the move is on both households' timelines
            for name, (old, new) in moves.items():
                if old != new or name == "household_id":
                    _history(session, person, hid, name, old, new, prov)
        person.household_id, person.district_id = target.id, target.district_id
        person.roster_line, person.relation_to_head = (line or 0) + 1, new_relation
        person.member_since = prov.effective_date
        target.version += 1
        target.updated_at = datetime.now()
        events.record(session, events.HOUSEHOLD_CHANGED, "household", target.id,
                      {"fields": [MEMBER_ADDED], "individual_id": person.id, "from_household": old_household})
    else:
        why = "entered_in_error" if reason == "entered_in_error" else detail
        if why not in (*LEFT_DETAILS, "entered_in_error"):
            raise RegistryError(f"{label}: detail must be one of {', '.join(LEFT_DETAILS)} when the reason is left")
        _history(session, person, old_household, "left_on", None, prov.effective_date, prov)
        _history(session, person, old_household, "left_reason", None, why, prov)
        person.left_on, person.left_reason = prov.effective_date, why
    person.updated_at = datetime.now()
    household = session.get(Household, old_household)
    household.version += 1
    household.updated_at = datetime.now()
    removed = {"individual_id": person.id, "reason": reason,
               **({"to_household": to_household} if reason == "moved_to_household" else {})}
    events.record(session, events.HOUSEHOLD_CHANGED, "household", old_household, {"fields": [MEMBER_REMOVED], **removed})
    events.record(session, events.MEMBER_LEFT, "household", old_household, removed)
    session.flush()
    return person

# ---------------------------------------------------------------- one household registered at a counter

REGISTRATION_SOURCES = ("counter", "self_report", "operator", "survey")
# the prefix of a registered household's reference, by the door it came through (a field survey's
# new household: SRV-, issue 17)
REF_PREFIX = {"counter": "CTR", "survey": "SRV"}


def _adult_on(born: date, on: date) -> bool:
    return (on.year - born.year - ((on.month, on.day) < (born.month, born.day))) >= 18


def register_household(session: Session, household: dict, members: list[dict], prov: Provenance) -> Household:
    """Write one never-surveyed household and its members to the registry (the One Window's
    registration, once a second person verified it): ids from :mod:`isps.registry.ids`, one
    ``ingest_batch`` with the provenance's source (``counter``, or ``self_report`` for the citizen's
    own web channel, ``survey`` for a household found by a field survey), a ``household.created`` event so that scoring and eligibility follow.

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
    record = Household(id=hid, ref=f"{REF_PREFIX.get(prov.source, 'SLF')}-{hid}",
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
