"""Enrolment totals without counting enrolments: ``enrolment_count`` holds how many enrolments each
program has per district and status, kept by database triggers in the transaction of every change
to ``enrolment`` (migration ``0015_enrolment_counts``: statement-level and set-based on PostgreSQL,
row triggers on SQLite). Reading a program's summary is then a few rows, however many enrolments
there are.

:func:`check` compares the table with a fresh COUNT (what a nightly check or a test runs);
:func:`rebuild` replaces it with that COUNT (after a restore, or if :func:`check` ever finds a
difference), in one transaction.
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from isps.programs.models import EnrolmentCount

KEY = "program_code, district_id, status"


def by_status(session: Session, code: str, district_id: int | None = None) -> dict[str, int]:
    """A program's enrolments per status (within one district if given); statuses with none left out."""
    stmt = select(EnrolmentCount.status, func.sum(EnrolmentCount.n)).where(EnrolmentCount.program_code == code)
    if district_id is not None:
        stmt = stmt.where(EnrolmentCount.district_id == district_id)
    rows = session.execute(stmt.group_by(EnrolmentCount.status))
    return {s: int(n) for s, n in rows if n}


def by_program(session: Session, district_id: int | None = None) -> dict[str, dict[str, int]]:
    """Every program's enrolments per status (within one district if given)."""
    stmt = select(EnrolmentCount.program_code, EnrolmentCount.status, func.sum(EnrolmentCount.n))
    if district_id is not None:
        stmt = stmt.where(EnrolmentCount.district_id == district_id)
    out: dict[str, dict[str, int]] = {}
    for code, status, n in session.execute(stmt.group_by(EnrolmentCount.program_code, EnrolmentCount.status)):
        if n:
            out.setdefault(code, {})[status] = int(n)
    return out


FRESH = f"SELECT {KEY}, COUNT(*) AS n FROM enrolment GROUP BY {KEY}"


def check(session: Session) -> list[dict]:
    """Every (program, district, status) whose kept count differs from a fresh COUNT of
    ``enrolment``: empty when the table is right. One full outer comparison in SQL."""
    rows = session.execute(text(f"""
        SELECT f.program_code, f.district_id, f.status, f.n AS counted, COALESCE(c.n, 0) AS kept
        FROM ({FRESH}) f LEFT JOIN enrolment_count c ON c.program_code = f.program_code
             AND c.district_id = f.district_id AND c.status = f.status
        WHERE COALESCE(c.n, 0) <> f.n
        UNION ALL
        SELECT c.program_code, c.district_id, c.status, 0, c.n FROM enrolment_count c
        WHERE c.n <> 0 AND NOT EXISTS (SELECT 1 FROM enrolment e WHERE e.program_code = c.program_code
              AND e.district_id = c.district_id AND e.status = c.status)
        ORDER BY 1, 2, 3"""))
    return [{"program": p, "district_id": d, "status": s, "counted": int(a), "kept": int(b)}
            for p, d, s, a, b in rows]


def rebuild(session: Session) -> int:
    """Replace the kept counts with a fresh COUNT (set-based, in the caller's transaction);
    returns how many rows the table holds. The table is locked meanwhile on PostgreSQL, so no
    enrolment change slips between the DELETE and the INSERT."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE enrolment IN SHARE MODE"))
    session.execute(text("DELETE FROM enrolment_count"))
    session.execute(text(f"INSERT INTO enrolment_count ({KEY}, n) {FRESH}"))
    return int(session.scalar(select(func.count()).select_from(EnrolmentCount)) or 0)
