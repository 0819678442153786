"""Persons: the clerical review queue, merge and unmerge, each with history.

Person ids never change. A merge keeps the smaller (older) id and marks the other ``merged_into``
it; its lines move to the survivor, and the history row lists them so that an unmerge puts back
exactly those lines. Accepting a review pair links the line to the registry individual and moves
it to that individual's person; rejecting it leaves the line where it was. Every step writes a
``person_history`` row with the actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from isps import keyset
from isps.linkage.models import Beneficiary, MatchCandidate, Person, PersonHistory
from isps.registry.models import Individual


class LinkageError(ValueError):
    """A review decision, merge or unmerge that cannot be done; the message is fit to show."""


def root(session: Session, person_id: int) -> int:
    p = session.get(Person, person_id)
    if p is None:
        raise LinkageError(f"no person {person_id}")
    return p.merged_into or p.id


def person_for_individual(session: Session, individual_id: int) -> int:
    p = session.scalar(select(Person).where(Person.individual_id == individual_id))
    if p is None:
        p = Person(individual_id=individual_id)
        session.add(p)
        session.flush()
    return p.merged_into or p.id


@dataclass
class ReviewItem:
    candidate: MatchCandidate
    beneficiary: Beneficiary
    individual: Individual | None


def _queue_where(district_id: int | None, program: str | None, min_weight: float | None) -> list:
    where = [MatchCandidate.status == "review"]
    if district_id is not None:
        where.append(Beneficiary.district_id == district_id)
    if program:
        where.append(Beneficiary.program_code == program)
    if min_weight is not None:
        where.append(MatchCandidate.match_weight >= min_weight)
    return where


# the orders the review queue offers: oldest first, or by match weight (each an index: status, column, id)
QUEUE_SORTS = {"id": MatchCandidate.id, "weight": MatchCandidate.match_weight}


def review_queue(session: Session, *, district_id: int | None = None, limit: int = 50,
                 after: int | None = None, program: str | None = None,
                 min_weight: float | None = None, sort: keyset.Sort | None = None) -> list[ReviewItem]:
    """Pairs waiting for a clerk, oldest first unless ordered by weight (:data:`QUEUE_SORTS`), a
    page at a time by keyset (``after``: the last pair id of the previous page), with the registry
    individuals read in one query."""
    stmt = (select(MatchCandidate, Beneficiary).join(Beneficiary, Beneficiary.id == MatchCandidate.beneficiary_id)
            .where(*_queue_where(district_id, program, min_weight)))
    sort = sort or keyset.Sort("id")
    if sort.key not in QUEUE_SORTS:
        raise keyset.SortError(f"sort must be one of {', '.join(QUEUE_SORTS)}, not {sort.key!r}")
    rows = keyset.page(session, stmt, QUEUE_SORTS[sort.key], MatchCandidate.id, after=after or None, limit=limit,
                       desc=sort.desc, nullable=False)
    wanted = {c.individual_id for c, _ in rows}
    people = ({i.id: i for i in session.scalars(select(Individual).where(Individual.id.in_(wanted)))}
              if wanted else {})
    return [ReviewItem(c, b, people.get(c.individual_id)) for c, b in rows]


def count_queue(session: Session, *, district_id: int | None = None, program: str | None = None,
                min_weight: float | None = None) -> int:
    """How many pairs :func:`review_queue` pages through with the same filters."""
    stmt = select(func.count()).select_from(MatchCandidate)
    if district_id is not None or program:  # the line is read only when a filter is about it
        stmt = stmt.join(Beneficiary, Beneficiary.id == MatchCandidate.beneficiary_id)
    return session.scalar(stmt.where(*_queue_where(district_id, program, min_weight))) or 0


def waiting_pairs(session: Session, ids: list[int], *, district_id: int | None = None) -> list[int]:
    """Of these pair ids, those still waiting for review within the district (one query): what a
    bulk decision may act on."""
    if not ids:
        return []
    return list(session.scalars(select(MatchCandidate.id)
                                .join(Beneficiary, Beneficiary.id == MatchCandidate.beneficiary_id)
                                .where(MatchCandidate.id.in_(ids), *_queue_where(district_id, None, None))
                                .order_by(MatchCandidate.id)))


def decide(session: Session, candidate_id: int, accept: bool, actor: str) -> MatchCandidate:
    """An operator's decision on a review pair."""
    cand = session.get(MatchCandidate, candidate_id)
    if cand is None:
        raise LinkageError(f"no review pair {candidate_id}")
    if cand.status != "review":
        raise LinkageError(f"pair {candidate_id} was already decided ({cand.status})")
    ben = session.get(Beneficiary, cand.beneficiary_id)
    now = datetime.now()
    cand.status, cand.decided_by, cand.decided_at = ("accepted" if accept else "rejected"), actor, now
    if not accept:
        session.add(PersonHistory(action="reject", person_id=ben.person_id or 0, actor=actor,
                                  detail={"candidate": cand.id, "beneficiary": ben.id,
                                          "individual": cand.individual_id}))
        still = session.scalar(select(func.count()).select_from(MatchCandidate).where(
            MatchCandidate.beneficiary_id == ben.id, MatchCandidate.status == "review"))
        if not still and ben.link_method == "review":
            ben.link_method = "none"
        session.flush()
        return cand
    ind = session.get(Individual, cand.individual_id)
    old_person = ben.person_id
    new_person = person_for_individual(session, cand.individual_id)
    ben.individual_id, ben.household_id = cand.individual_id, ind.household_id if ind else None
    ben.link_method, ben.match_weight, ben.person_id = "operator", cand.match_weight, new_person
    session.execute(update(MatchCandidate).where(MatchCandidate.beneficiary_id == ben.id,
                                                 MatchCandidate.status == "review", MatchCandidate.id != cand.id)
                    .values(status="rejected", decided_by=actor, decided_at=now))
    if old_person and old_person != new_person:
        left = session.scalar(select(func.count()).select_from(Beneficiary).where(Beneficiary.person_id == old_person))
        if not left:
            session.get(Person, old_person).merged_into = new_person
    session.add(PersonHistory(action="accept", person_id=new_person, other_person_id=old_person, actor=actor,
                              detail={"candidate": cand.id, "beneficiary": ben.id, "individual": cand.individual_id}))
    session.flush()
    return cand


def merge(session: Session, a: int, b: int, actor: str, reason: str = "") -> PersonHistory:
    """Two persons are one: the smaller id survives."""
    ra, rb = root(session, a), root(session, b)
    if ra == rb:
        raise LinkageError(f"persons {a} and {b} are already one person ({ra})")
    keep, gone = min(ra, rb), max(ra, rb)
    moved = list(session.scalars(select(Beneficiary.id).where(Beneficiary.person_id == gone)))
    children = list(session.scalars(select(Person.id).where(Person.merged_into == gone)))
    session.execute(update(Beneficiary).where(Beneficiary.person_id == gone).values(person_id=keep))
    session.execute(update(Person).where(Person.merged_into == gone).values(merged_into=keep))
    session.get(Person, gone).merged_into = keep
    h = PersonHistory(action="merge", person_id=keep, other_person_id=gone, actor=actor,
                      detail={"beneficiaries": moved, "persons": children, "reason": reason})
    session.add(h)
    session.flush()
    return h


def unmerge(session: Session, history_id: int, actor: str, reason: str = "") -> PersonHistory:
    """Undo a merge: the lines and persons it moved go back to the merged person."""
    h = session.get(PersonHistory, history_id)
    if h is None or h.action != "merge":
        raise LinkageError(f"history entry {history_id} is not a merge")
    if h.undone_by:
        raise LinkageError(f"merge {history_id} was already undone")
    gone, keep = h.other_person_id, h.person_id
    moved = (h.detail or {}).get("beneficiaries", [])
    children = (h.detail or {}).get("persons", [])
    if moved:
        session.execute(update(Beneficiary).where(Beneficiary.id.in_(moved), Beneficiary.person_id == keep)
                        .values(person_id=gone))
    if children:
        session.execute(update(Person).where(Person.id.in_(children)).values(merged_into=gone))
    session.get(Person, gone).merged_into = None
    u = PersonHistory(action="unmerge", person_id=gone, other_person_id=keep, actor=actor,
                      detail={"merge": h.id, "beneficiaries": moved, "reason": reason})
    session.add(u)
    session.flush()
    h.undone_by = u.id
    return u


def history(session: Session, person_id: int) -> list[PersonHistory]:
    return list(session.scalars(select(PersonHistory).where(
        (PersonHistory.person_id == person_id) | (PersonHistory.other_person_id == person_id))
        .order_by(PersonHistory.id)))


def person_lines(session: Session, person_id: int) -> list[Beneficiary]:
    return list(session.scalars(select(Beneficiary).where(Beneficiary.person_id == root(session, person_id))
                                .order_by(Beneficiary.id)))
