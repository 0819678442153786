"""Laid-off workers with skills, employers' vacancies, and the job board that matches them.

**Matching** (one SQL statement over the skill tables): a laid-off worker is a candidate for a
vacancy when they share at least one of its skills, are alive, still on the laid-off register and
have not reported being employed since (a stale report does not count as employed). Candidates are
ranked by the number of the vacancy's skills they have, then by living in the vacancy's district,
then by recency of the lay-off (the most recently laid off first: their skills are current and the
employer asked for them), then by registry id so the order is always the same. A district-scoped
user sees the candidates of their own district only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from isps.labour import registers
from isps.labour.models import LabourSkill, LabourWorker, Vacancy, VacancySkill
from isps.labour.status import LabourError, person_for
from isps.labour.vocab import EMPLOYED, SKILLS
from isps.registry import cnic as cnic_rules
from isps.registry import current
from isps.registry.fields import Field, check_value


def _skills(raw) -> list[str]:
    items = raw.split(",") if isinstance(raw, str) else list(raw or [])
    skills = sorted({s.strip().lower().replace(" ", "_") for s in items if s and s.strip()})
    wrong = [s for s in skills if s not in SKILLS]
    if wrong:
        raise LabourError(f"skills: {', '.join(wrong)[:80]} not known; skills are {', '.join(SKILLS)}")
    if not skills:
        raise LabourError("skills: name at least one skill")
    return skills


def register_laid_off(session: Session, cnic: str, laid_off_on: date, skills, actor: str,
                      district_scope: int | None = None) -> LabourWorker:
    """Put a laid-off worker on the register with their skills; the registry records them unemployed
    from ``laid_off_on`` (a job-loss shock for the vulnerability index)."""
    wanted = _skills(skills)
    person = person_for(session, cnic, district_scope)
    row = registers.enrol(session, person, "laid_off", laid_off_on, actor, source_ref=f"laid off {laid_off_on}")
    session.execute(LabourSkill.__table__.delete().where(LabourSkill.individual_id == person.id))
    session.execute(LabourSkill.__table__.insert(), [{"individual_id": person.id, "skill": s,
                                                      "district_id": person.district_id} for s in wanted])
    return row


_TEXT = {"employer": Field("employer", "text", max_len=120, words=True),
         "title": Field("title", "text", max_len=120, words=True)}


def post_vacancy(session: Session, district_id: int, employer: str, title: str, skills, slots: int, posted_on: date,
                 actor: str, district_scope: int | None = None) -> Vacancy:
    if district_scope is not None and district_id != district_scope:
        raise LabourError("district: a vacancy can be posted only in your district")
    values = {}
    for name, raw in (("employer", employer), ("title", title)):
        try:
            values[name] = check_value(_TEXT[name], (raw or "").strip())
        except ValueError as exc:
            raise LabourError(f"{name}: {exc}") from None
        if not values[name]:
            raise LabourError(f"{name}: is required")
    if not 1 <= slots <= 1000:
        raise LabourError("slots: a number from 1 to 1000")
    wanted = _skills(skills)
    vacancy = Vacancy(district_id=district_id, employer=values["employer"], title=values["title"],
                      skills=",".join(wanted), slots=slots, posted_on=posted_on, posted_by=actor, open=True)
    session.add(vacancy)
    session.flush()
    session.execute(VacancySkill.__table__.insert(), [{"vacancy_id": vacancy.id, "skill": s} for s in wanted])
    return vacancy


@dataclass(frozen=True)
class Match:
    individual_id: int
    full_name: str
    cnic: str                 # masked
    district_id: int
    skills: int               # how many of the vacancy's skills
    same_district: bool
    laid_off_on: date
    phone: str | None


_MATCH = f"""
SELECT w.individual_id, i.full_name, i.cnic, w.district_id, COUNT(*) AS skills,
       CASE WHEN w.district_id = v.district_id THEN 1 ELSE 0 END AS same_district, w.since, i.phone
FROM labour_vacancy v
JOIN labour_vacancy_skill vs ON vs.vacancy_id = v.id
JOIN labour_skill ls ON ls.skill = vs.skill
JOIN labour_worker w ON w.individual_id = ls.individual_id AND w.register = 'laid_off' AND w.active = :yes
JOIN individual i ON i.id = w.individual_id AND {current.sql('i')}
LEFT JOIN labour_person lp ON lp.individual_id = w.individual_id
WHERE v.id = :vacancy {{scope}}
  AND NOT (lp.status IS NOT NULL AND lp.status IN ({", ".join(f"'{s}'" for s in EMPLOYED)}) AND lp.status_on > w.since)
GROUP BY w.individual_id, i.full_name, i.cnic, w.district_id, v.district_id, w.since, i.phone
ORDER BY skills DESC, same_district DESC, w.since DESC, w.individual_id
LIMIT :limit"""


def matches(session: Session, vacancy_id: int, district_scope: int | None = None, limit: int = 20) -> list[Match]:
    vacancy = session.get(Vacancy, vacancy_id)
    if vacancy is None:
        raise LabourError(f"vacancy {vacancy_id} does not exist")
    if district_scope is not None and vacancy.district_id != district_scope:
        raise LabourError(f"vacancy {vacancy_id} is outside your district")
    scope = "AND w.district_id = :district" if district_scope is not None else ""
    rows = session.execute(text(_MATCH.format(scope=scope)),
                           {"vacancy": vacancy_id, "yes": True, "limit": limit, "district": district_scope}).all()
    return [Match(r[0], r[1], cnic_rules.mask(r[2]) if r[2] else "—", r[3], int(r[4]), bool(r[5]),
                  r[6] if isinstance(r[6], date) else date.fromisoformat(str(r[6])), r[7]) for r in rows]


def _vacancies(district_id: int | None):
    q = select(Vacancy).where(Vacancy.open.is_(True))
    return q.where(Vacancy.district_id == district_id) if district_id is not None else q


def vacancies(session: Session, district_id: int | None = None, after: int | None = None,
              limit: int = 50) -> list[Vacancy]:
    q = _vacancies(district_id)
    if after:
        q = q.where(Vacancy.id > after)
    return list(session.scalars(q.order_by(Vacancy.id).limit(limit)))


def count_vacancies(session: Session, district_id: int | None = None) -> int:
    return session.scalar(select(func.count()).select_from(_vacancies(district_id).subquery())) or 0
