"""The household file: what an officer sees when they open a household or look up a CNIC.

Both the API and the web app read people's records only through here, so the
district scope is enforced and every read (or refused read) is audited in one
place, whatever the channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from isps.access.service import Principal, audit, audit_many
from isps.registry import cnic as cnic_rules
from isps.registry import service as registry
from isps.registry.models import District, Household, Individual, Tehsil
from isps.registry.service import OutOfScope, Provenance
from isps.targeting import pmt
from isps.targeting.models import PmtScore


class NotFound(LookupError):
    pass


@dataclass
class HouseholdFile:
    household: Household
    district: str
    district_ur: str
    tehsil: str
    members: list[Individual]
    score: PmtScore | None
    model_name: str | None
    model_version: int | None


def _score(session: Session, household_id: int) -> tuple[PmtScore | None, str | None, int | None]:
    model = pmt.active_model(session)
    if model is None:
        return None, None, None
    # populate_existing: a re-score (an edit in this session) replaces the row by SQL, behind the
    # ORM; the score already in the session would otherwise be shown as the new one
    return (session.get(PmtScore, (model.id, household_id), populate_existing=True), model.name,
            model.version)


def open_household(session: Session, who: Principal, household_id: int, channel: str) -> HouseholdFile:
    try:
        household = registry.get_household(session, household_id, who.scope)
    except OutOfScope:
        audit(session, who, channel, "read", "household", household_id, outcome="denied",
              detail="outside the user's district")
        raise
    if household is None:
        audit(session, who, channel, "read", "household", household_id, outcome="not_found")
        raise NotFound(f"household {household_id} does not exist")
    audit(session, who, channel, "read", "household", household_id, household.district_id)
    district = session.get(District, household.district_id)
    score, name, version = _score(session, household_id)
    return HouseholdFile(household, district.name, district.name_ur, session.get(Tehsil, household.tehsil_id).name,
                         registry.members(session, household_id), score, name, version)


def search_sentence(tehsil_id: int | None, pmt_min: float | None, pmt_max: float | None, name: str | None,
                    results: int, after: int | None = None) -> str:
    """A search's audit detail as a sentence: what was asked and how many households came back."""
    asked = [f"tehsil {tehsil_id}" if tehsil_id else None,
             f"PMT {pmt_min if pmt_min is not None else 0:g} to {pmt_max if pmt_max is not None else 100:g}"
             if pmt_min is not None or pmt_max is not None else None,
             f"name like {name[:60]!r}" if name else None, f"after household {after}" if after else None]
    what = ", ".join(a for a in asked if a) or "all households in scope"
    return f"searched {what}: {results} households"


# what a CNIC look-up returns of each person (the API's Person; the web and CLI read a few of these)
PERSON_COLUMNS = ("id", "household_id", "district_id", "roster_line", "cnic", "id_document", "full_name",
                  "father_husband_name", "sex", "date_of_birth", "relation_to_head", "marital_status", "disability",
                  "education", "enrolled_in_school", "occupation", "labour_status", "phone", "date_of_death")
_BY_CNIC = select(*(getattr(Individual, c) for c in PERSON_COLUMNS)).where(Individual.cnic == bindparam("cnic"))


def lookup_cnic(session: Session, who: Principal, raw_cnic: str, channel: str) -> list[Row]:
    """Everyone registered under a CNIC within the user's scope (rows with :data:`PERSON_COLUMNS`),
    each read audited; refused (:class:`OutOfScope`) when all of them are outside the district."""
    people = session.execute(_BY_CNIC, {"cnic": cnic_rules.normalise(raw_cnic)}).all()
    scope = who.scope
    masked = cnic_rules.mask(cnic_rules.normalise(raw_cnic))
    if scope is not None and people and all(p.district_id != scope for p in people):
        # the refused target is recorded (the person and the masked CNIC), never shown to the user
        audit_many(session, who, channel, "lookup_cnic", "individual", [(p.id, p.district_id) for p in people],
                   outcome="denied", detail=f"refused: CNIC {masked} is registered outside the user's district")
        raise OutOfScope("this CNIC is registered outside your district")
    people = [p for p in people if scope is None or p.district_id == scope]
    if not people:
        audit(session, who, channel, "lookup_cnic", "individual", outcome="not_found",
              detail=f"no one registered under CNIC {masked}")
        raise NotFound("no one is registered under this CNIC")
    audit_many(session, who, channel, "lookup_cnic", "individual", [(p.id, p.district_id) for p in people])
    return people


def household_history(session: Session, who: Principal, household_id: int, channel: str) -> list[registry.TimelineEntry]:
    open_household(session, who, household_id, channel)
    return registry.history(session, household_id)


def household_as_of(session: Session, who: Principal, household_id: int, on: date,
                    known_by: datetime | None, channel: str) -> registry.Snapshot:
    open_household(session, who, household_id, channel)
    snap = registry.snapshot(session, household_id, on, known_by)
    if snap is None:
        raise NotFound(f"household {household_id} was not yet registered on {on.isoformat()}")
    return snap


# The source of every user's edit, whatever door it came through (the door is in the audit log):
# the source precedence ranks it as an officer's word. Data providers' sources come only via feeds.
USER_SOURCE = "operator"


def edit_household(session: Session, who: Principal, household_id: int, changes: dict, source: str,
                   effective_date: date | None, source_ref: str | None, channel: str) -> list[str]:
    """An officer's edit: validated, kept with its provenance, and the PMT re-scored at once."""
    who.require("registry.write")
    prov = Provenance(source=source, actor=who.username, effective_date=effective_date or date.today(),
                      source_ref=source_ref)
    try:
        changed = registry.change_household(session, household_id, changes, prov, who.scope)
    except OutOfScope:
        audit(session, who, channel, "edit", "household", household_id, outcome="denied")
        raise
    audit(session, who, channel, "edit", "household", household_id, detail=f"changed {', '.join(changed)}" if changed else "no change")
    session.flush()
    pmt.process_events(session)
    return changed
