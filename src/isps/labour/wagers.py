"""Daily wagers: registration at a booth, the days they worked, and the rotation of offered work.

**Rotation.** A day's work offered at a booth goes to the booth's registered, living daily wagers
who have been idle longest: idle since the last day they worked before the offered day (or since
they registered, if they never have), earliest first; among those idle since the same day, who has
worked fewer days first (without it, a tie would always go to the earliest registered, and the
later ones would fall a turn behind every cycle), then registration date, then registry id, so the
same state always gives the same picks. People already offered work or working that day are
passed over, and so is anyone whose newest word to the labour registries, by the offered day, is a
job (a quarterly report, or an employer's or contractor's upload, saying they are employed, formally
or not, or self-employed: ``labour_person``): the work is for those without any. A later report of
``daily_wager`` or ``unemployed`` (or a stale report, which is not employment) puts them back.
Offering and recording the days worked are each one ``INSERT ... SELECT`` (a window function ranks
the whole booth), never a loop over wagers. Taken in turn day after day, the rule
spreads the work evenly: over a month, no wager works two days more than another at the same booth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from isps.labour import registers
from isps.labour.models import LabourWorker, WagerDay, WorkOffer, WorkOfferPick
from isps.labour.status import LabourError, person_for, required_text
from isps.registry import current
from isps.registry.fields import Field

_BOOTH = Field("booth", "text", max_len=80, words=True)
_EMPLOYER = Field("employer", "text", max_len=120, words=True)
_WORK = Field("description", "text", max_len=200, words=True)



def register_wager(session: Session, cnic: str, booth: str, registered_on: date, actor: str,
                   district_scope: int | None = None) -> LabourWorker:
    """Register the registry person holding ``cnic`` as a daily wager at ``booth``."""
    booth = required_text(_BOOTH, booth)
    person = person_for(session, cnic, district_scope)
    return registers.enrol(session, person, "daily_wager", registered_on, actor, booth=booth,
                           source_ref=f"booth {booth}")


def record_day(session: Session, individual_id: int, worked_on: date, actor: str,
               district_scope: int | None = None) -> WagerDay:
    """A day worked that the wager reports at the booth (work found on their own)."""
    worker = session.scalar(select(LabourWorker).where(LabourWorker.register == "daily_wager",
                                                       LabourWorker.individual_id == individual_id,
                                                       LabourWorker.active.is_(True)))
    if worker is None or (district_scope is not None and worker.district_id != district_scope):
        raise LabourError(f"individual {individual_id}: not a registered daily wager in your district")
    if worked_on > date.today():
        raise LabourError(f"worked_on: {worked_on.isoformat()} is in the future")
    if session.get(WagerDay, (individual_id, worked_on)) is not None:
        raise LabourError(f"worked_on: {worked_on.isoformat()} is recorded already for individual {individual_id}")
    day = WagerDay(individual_id=individual_id, worked_on=worked_on, district_id=worker.district_id,
                   offer_id=None, source_ref=f"reported at {worker.booth or 'the booth'} by {actor}"[:200])
    session.add(day)
    session.flush()
    return day


_PICK = f"""
INSERT INTO labour_offer_pick (offer_id, individual_id, district_id, work_on, rank, idle_since)
SELECT :offer, individual_id, district_id, :on, rnk, idle_since FROM (
    SELECT individual_id, district_id, COALESCE(last_day, since) AS idle_since,
           ROW_NUMBER() OVER (ORDER BY COALESCE(last_day, since), days, since, individual_id) AS rnk
    FROM (
        SELECT w.individual_id, w.district_id, w.since,
               (SELECT MAX(d.worked_on) FROM labour_wager_day d
                WHERE d.individual_id = w.individual_id AND d.worked_on < :on) AS last_day,
               (SELECT COUNT(*) FROM labour_wager_day d
                WHERE d.individual_id = w.individual_id AND d.worked_on < :on) AS days
        FROM labour_worker w
        JOIN individual i ON i.id = w.individual_id AND {current.sql('i')}
        WHERE w.register = 'daily_wager' AND w.active = :yes AND w.district_id = :district AND w.booth = :booth
          AND w.since <= :on
          AND NOT EXISTS (SELECT 1 FROM labour_offer_pick p WHERE p.individual_id = w.individual_id
                          AND p.work_on = :on)
          AND NOT EXISTS (SELECT 1 FROM labour_wager_day x WHERE x.individual_id = w.individual_id
                          AND x.worked_on = :on)
          AND NOT EXISTS (SELECT 1 FROM labour_person lp WHERE lp.individual_id = w.individual_id
                          AND lp.status IN ('employed_formal', 'employed_informal', 'self_employed')
                          AND lp.status_on <= :on)
    ) booth
) ranked WHERE rnk <= :slots"""
# Each wager's last day and count of days are read through the primary key (individual_id,
# worked_on) of labour_wager_day: a few index pages per wager of the booth, whatever the planner
# believes about the tables' sizes (a GROUP BY over the district's days was re-run per wager when
# the statistics of a young table said it was empty).


def offer_work(session: Session, district_id: int, booth: str, work_on: date, slots: int, employer: str,
               description: str, actor: str, district_scope: int | None = None) -> WorkOffer:
    """Offer ``slots`` places of a day's work at a booth; the places go by rotation (module docstring)."""
    if district_scope is not None and district_id != district_scope:
        raise LabourError(f"district: work can be offered only in your district ({district_scope})")
    if not 1 <= slots <= 500:
        raise LabourError("slots: a number from 1 to 500")
    offer = WorkOffer(district_id=district_id, booth=required_text(_BOOTH, booth), work_on=work_on, slots=slots,
                      employer=required_text(_EMPLOYER, employer), description=required_text(_WORK, description), offered_by=actor)
    session.add(offer)
    session.flush()
    session.execute(text(_PICK), {"offer": offer.id, "on": work_on, "district": district_id, "booth": offer.booth,
                                  "slots": slots, "yes": True})
    return offer


def take_offer(session: Session, offer_id: int, declined: tuple[int, ...] = ()) -> int:
    """Record the offered day as worked for everyone picked who did not decline; returns how many."""
    offer = session.get(WorkOffer, offer_id)
    if offer is None:
        raise LabourError(f"offer {offer_id} does not exist")
    skip = " AND p.individual_id NOT IN (" + ", ".join(str(int(i)) for i in declined) + ")" if declined else ""
    result = session.execute(text(f"""
        INSERT INTO labour_wager_day (individual_id, worked_on, district_id, offer_id, source_ref)
        SELECT p.individual_id, p.work_on, p.district_id, p.offer_id, :ref FROM labour_offer_pick p
        WHERE p.offer_id = :offer {skip}
          AND NOT EXISTS (SELECT 1 FROM labour_wager_day d WHERE d.individual_id = p.individual_id
                          AND d.worked_on = p.work_on)"""),
        {"offer": offer_id, "ref": f"offer {offer_id}: {offer.employer}"[:200]})
    return result.rowcount or 0


@dataclass(frozen=True)
class Pick:
    rank: int
    individual_id: int
    full_name: str
    idle_since: date | None
    days_this_month: int


def picks(session: Session, offer_id: int) -> list[Pick]:
    from isps.registry.models import Individual

    offer = session.get(WorkOffer, offer_id)
    if offer is None:
        return []
    month = offer.work_on.replace(day=1)
    days = (select(WagerDay.individual_id, func.count().label("n")).where(
        WagerDay.worked_on >= month, WagerDay.worked_on <= offer.work_on).group_by(WagerDay.individual_id).subquery())
    rows = session.execute(
        select(WorkOfferPick.rank, WorkOfferPick.individual_id, Individual.full_name, WorkOfferPick.idle_since,
               func.coalesce(days.c.n, 0))
        .join(Individual, Individual.id == WorkOfferPick.individual_id)
        .outerjoin(days, days.c.individual_id == WorkOfferPick.individual_id)
        .where(WorkOfferPick.offer_id == offer_id).order_by(WorkOfferPick.rank)).all()
    return [Pick(*r) for r in rows]


def booths(session: Session, district_id: int | None) -> list[str]:
    q = select(LabourWorker.booth).where(LabourWorker.register == "daily_wager", LabourWorker.booth.is_not(None))
    if district_id is not None:
        q = q.where(LabourWorker.district_id == district_id)
    return sorted({b for b in session.scalars(q.distinct())})


def _wagers(district_id: int | None):
    q = select(LabourWorker).where(LabourWorker.register == "daily_wager", LabourWorker.active.is_(True))
    return q.where(LabourWorker.district_id == district_id) if district_id is not None else q


def wagers(session: Session, district_id: int | None = None, after: int | None = None,
           limit: int = 50) -> list[LabourWorker]:
    q = _wagers(district_id)
    if after:
        q = q.where(LabourWorker.id > after)
    return list(session.scalars(q.order_by(LabourWorker.id).limit(limit)))


def count_wagers(session: Session, district_id: int | None = None) -> int:
    return session.scalar(select(func.count()).select_from(_wagers(district_id).subquery())) or 0
