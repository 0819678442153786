"""Where a grievance goes and who owns it: the hierarchy, the service-level times, and the set-based
moves (escalating late grievances, reassigning those of a disabled user).

The hierarchy has four levels: 1 a grievance officer of the grievance's district, 2 its district
officer, 3 a program manager, 4 an administrator. A new grievance goes to the lowest level that has
an active user (a district without a grievance officer sends it to its district officer, and so
on); one whose district is unknown (an SMS from a phone the registry does not know) starts at the
province level (3). Within a level the owner is the least loaded active user: the fewest open
grievances, then the oldest account.

:func:`escalate_late` moves every late open grievance one level up (to the next level that has an
active user) in two statements, whatever their number: the moves are written as ``grievance_event``
rows first (from and to owner and level), then the grievances take the owner and level their new
event names and a new due time (:data:`ESCALATION_DAYS` after the move). A grievance is escalated
once per lateness: after the move it is not late until its new due time passes. At the top level
it stays late, on the administrators' list. :func:`reassign_inactive` gives the open grievances of
users who are disabled (or no longer hold a role of their level) to someone who can act, the same
way, at the same level or above.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources

from sqlalchemy import text
from sqlalchemy.orm import Session

LEVELS = {1: "grievance_officer", 2: "district_officer", 3: "program_manager", 4: "administrator"}
SCOPED_LEVELS = (1, 2)  # these levels act within the grievance's district
TOP = max(LEVELS)
PROVINCE_LEVEL = 3
OPEN_SQL = "('open', 'reopened')"
LOCK_KEY = 0x6772_6965  # the transaction-scoped advisory lock that serialises moves on PostgreSQL


@lru_cache(maxsize=1)
def _sla() -> dict:
    return json.loads(resources.files("isps.citizen").joinpath("data/grievance_sla.json").read_text(encoding="utf-8"))


def sla_days(category: str) -> int:
    """Days a grievance of this category has at its first level (``citizen/data/grievance_sla.json``)."""
    return int(_sla()["days"][category])


ESCALATION_DAYS = int(_sla()["escalation_days"])
REOPENED_DAYS = int(_sla()["reopened_days"])


def due(category: str, now: datetime) -> datetime:
    return now + timedelta(days=sla_days(category))


def _pick(level: int, district_sql: str) -> str:
    """The SQL of one level's least loaded active user (NULL when the level has nobody)."""
    scoped = f" AND u.district_id = {district_sql}" if level in SCOPED_LEVELS else ""
    return f"""(SELECT u.username FROM app_user u WHERE u.active = :yes AND u.role = '{LEVELS[level]}'{scoped}
        ORDER BY (SELECT COUNT(*) FROM grievance o WHERE o.owner = u.username AND o.status IN {OPEN_SQL}), u.id
        LIMIT 1)"""


def route(session: Session, district_id: int | None) -> tuple[str, int]:
    """(owner, level) for a new grievance of a district (None: the province level)."""
    start = 1 if district_id is not None else PROVINCE_LEVEL
    for level in range(start, TOP + 1):
        owner = session.execute(text(f"SELECT {_pick(level, ':d')}"), {"d": district_id, "yes": True}).scalar()
        if owner:
            return owner, level
    raise RuntimeError("no active administrator: a grievance would have no owner")


def pick(session: Session, level: int, district_id: int | None) -> str | None:
    """The least loaded active user of one level (within the district for levels 1 and 2)."""
    return session.execute(text(f"SELECT {_pick(level, ':d')}"), {"d": district_id, "yes": True}).scalar()


def _move(session: Session, now: datetime, *, kind: str, where: str, above: bool, note: str,
          new_due: datetime | None) -> int:
    """Move the open grievances matching ``where`` to the least loaded user of the next level that has
    one (strictly above their level with ``above``, else from their own level up): the events first,
    then the grievances from their events. Two statements, whatever the number of grievances."""
    if session.bind.dialect.name == "postgresql":  # one mover at a time (two workers, a page and a worker)
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    mark = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM grievance_event")).scalar_one()
    picks = ", ".join(
        f"CASE WHEN g.level {'<' if above else '<='} {lvl} THEN {_pick(lvl, 'g.district_id')} END AS p{lvl}"
        for lvl in LEVELS)
    first = "COALESCE(" + ", ".join(f"x.p{lvl}" for lvl in LEVELS) + ")"
    level_of = "CASE " + " ".join(f"WHEN x.p{lvl} IS NOT NULL THEN {lvl}" for lvl in LEVELS) + " END"
    p = {"now": now, "yes": True, "kind": kind, "mark": mark, "note": note}
    inserted = session.execute(text(f"""INSERT INTO grievance_event
            (grievance_id, kind, at, actor, from_owner, to_owner, from_level, to_level, note)
        SELECT x.id, :kind, :now, 'system', x.owner, {first}, x.level, {level_of}, :note
        FROM (SELECT g.id, g.owner, g.level, {picks} FROM grievance g
              WHERE g.status IN {OPEN_SQL} AND {where}) x
        WHERE {first} IS NOT NULL"""), p).rowcount or 0
    if not inserted:
        return 0
    mine = "e.grievance_id = grievance.id AND e.id > :mark AND e.kind = :kind"
    due_sql = ", due_at = :due" if new_due is not None else ""
    session.execute(text(f"""UPDATE grievance SET
            owner = (SELECT e.to_owner FROM grievance_event e WHERE {mine}),
            level = (SELECT e.to_level FROM grievance_event e WHERE {mine}){due_sql}
        WHERE id IN (SELECT e.grievance_id FROM grievance_event e WHERE e.id > :mark AND e.kind = :kind)"""),
                    {**p, "due": new_due})
    for obj in list(session.identity_map.values()):  # grievances loaded in this session read the moves
        if getattr(obj, "__tablename__", None) == "grievance":
            session.expire(obj)
    return int(inserted)


def escalate_late(session: Session, now: datetime) -> int:
    """Escalate every open grievance past its due time one level up (once per lateness); the count."""
    return _move(session, now, kind="escalated", where=f"g.due_at < :now AND g.level < {TOP}", above=True,
                 note=f"late: not resolved by its due time; escalated with {ESCALATION_DAYS} days to act",
                 new_due=now + timedelta(days=ESCALATION_DAYS))


def reassign_inactive(session: Session, now: datetime) -> int:
    """Give the open grievances of disabled users (or users whose role no longer handles grievances, or
    who now work in another district) to the least loaded active user of the same level or above; the
    count."""
    roles = ", ".join(f"'{r}'" for r in LEVELS.values())
    return _move(session, now, kind="reassigned", above=False, new_due=None,
                 where=f"NOT EXISTS (SELECT 1 FROM app_user a WHERE a.username = g.owner AND a.active = :yes "
                       f"AND a.role IN ({roles}) AND (a.role IN ('{LEVELS[3]}', '{LEVELS[4]}') "
                       f"OR a.district_id = g.district_id))",
                 note="the owner's account is disabled, no longer handles grievances or works in another "
                      "district: reassigned")
