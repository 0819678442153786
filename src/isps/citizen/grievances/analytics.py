"""What the grievances say: their causes by district, program, channel, agent and month; how long
they take to resolve (median and 90th percentile); how often a resolution is reopened.

Each figure is one GROUP BY over ``grievance`` (within a district for a district role). The
percentiles are nearest-rank over the resolved grievances' hours (the value at position
ceil(p × n) in ascending order), computed by the database with a window function on SQLite and
PostgreSQL alike, so no list of durations leaves it.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

DIMENSIONS = ("district", "program", "channel", "agent", "month")


def _month(dialect: str) -> str:
    return "to_char(g.opened_at, 'YYYY-MM')" if dialect == "postgresql" else "strftime('%Y-%m', g.opened_at)"


def _hours(dialect: str) -> str:
    if dialect == "postgresql":
        return "EXTRACT(EPOCH FROM (g.resolved_at - g.opened_at)) / 3600.0"
    return "(julianday(g.resolved_at) - julianday(g.opened_at)) * 24.0"


def _scope(scope: int | None) -> str:
    return "g.district_id = :scope" if scope is not None else "1 = 1"


def causes(session: Session, dimension: str, scope: int | None = None) -> list[dict]:
    """Grievances by a dimension and category: ``[{"key", "category", "n"}]``. ``agent`` counts the
    complaints naming a cash outlet; ``program`` and ``district`` keep the unknown (None) apart."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}")
    dialect = session.bind.dialect.name
    key = {"district": "g.district_id", "program": "g.program_code", "channel": "g.channel",
           "agent": "g.outlet_id", "month": _month(dialect)}[dimension]
    extra = " AND g.outlet_id IS NOT NULL" if dimension == "agent" else ""
    rows = session.execute(text(f"""SELECT {key} AS k, g.category, COUNT(*) AS n FROM grievance g
        WHERE {_scope(scope)}{extra} GROUP BY {key}, g.category ORDER BY 1, 2"""), {"scope": scope}).all()
    return [{"key": r.k, "category": r.category, "n": int(r.n)} for r in rows]


def root_causes(session: Session, scope: int | None = None) -> list[dict]:
    """Resolved and closed grievances by root cause and category."""
    rows = session.execute(text(f"""SELECT g.root_cause, g.category, COUNT(*) AS n FROM grievance g
        WHERE {_scope(scope)} AND g.root_cause IS NOT NULL GROUP BY g.root_cause, g.category ORDER BY 1, 2"""),
                           {"scope": scope}).all()
    return [{"root_cause": r.root_cause, "category": r.category, "n": int(r.n)} for r in rows]


def time_to_resolve(session: Session, scope: int | None = None) -> dict:
    """Hours from filing to (the latest) resolution of the resolved and closed grievances: how many,
    the median and the 90th percentile (nearest rank), per category and overall."""
    h = _hours(session.bind.dialect.name)
    sql = f"""WITH d AS (SELECT g.category, {h} AS hours FROM grievance g
                WHERE {_scope(scope)} AND g.resolved_at IS NOT NULL),
        r AS (SELECT category, hours, ROW_NUMBER() OVER (PARTITION BY category ORDER BY hours) AS rn,
                     COUNT(*) OVER (PARTITION BY category) AS n FROM d
              UNION ALL
              SELECT '*', hours, ROW_NUMBER() OVER (ORDER BY hours), COUNT(*) OVER () FROM d)
        SELECT category, MAX(n) AS n,
               MAX(CASE WHEN rn = CAST((n + 1) / 2 AS INTEGER) THEN hours END) AS median,
               MAX(CASE WHEN rn = CAST((9 * n + 9) / 10 AS INTEGER) THEN hours END) AS p90
        FROM r GROUP BY category ORDER BY category"""
    out = {}
    for row in session.execute(text(sql), {"scope": scope}):
        out[row.category] = {"n": int(row.n), "median_hours": round(float(row.median), 1),
                             "p90_hours": round(float(row.p90), 1)}
    return {"overall": out.pop("*", {"n": 0, "median_hours": None, "p90_hours": None}), "by_category": out}


def reopen_rate(session: Session, scope: int | None = None) -> dict:
    """Of the grievances ever resolved (resolved, closed, or reopened since), the share reopened at least once."""
    row = session.execute(text(f"""SELECT
            SUM(CASE WHEN g.resolved_at IS NOT NULL OR g.reopen_count > 0 THEN 1 ELSE 0 END) AS resolved,
            SUM(CASE WHEN g.reopen_count > 0 THEN 1 ELSE 0 END) AS reopened,
            COUNT(*) AS total
        FROM grievance g WHERE {_scope(scope)}"""), {"scope": scope}).one()
    resolved, reopened = int(row.resolved or 0), int(row.reopened or 0)
    return {"total": int(row.total or 0), "resolved": resolved, "reopened": reopened,
            "rate": round(100 * reopened / resolved, 1) if resolved else None}


def summary(session: Session, scope: int | None = None) -> dict:
    return {"by": {d: causes(session, d, scope) for d in DIMENSIONS}, "root_causes": root_causes(session, scope),
            "time": time_to_resolve(session, scope), "reopen": reopen_rate(session, scope)}
