"""Duplication and concentration of benefits, set-based SQL over resolved beneficiary lines.

* :func:`same_kind` — one person in two programs of the same kind (or twice in one program);
* :func:`household_overlaps` — several members of one household in household-unit programs of the
  same kind (a household benefit paid twice);
* :func:`household_ceiling` — yearly benefit value per household above a policy ceiling;
* :func:`overlap_matrix` — persons in both of two programs, for every pair;
* :func:`by_district_program` — lines, persons and duplicated lines per district and program.

Every function takes an optional district (an officer's scope) and program.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields

from sqlalchemy import text
from sqlalchemy.orm import Session

CEILING = 150_000.0  # PKR a year per household: a policy parameter, not a fact


def _where(district_id: int | None, program: str | None, alias: str = "b") -> tuple[str, dict]:
    parts, params = [f"{alias}.person_id IS NOT NULL"], {}
    if district_id is not None:
        parts.append(f"{alias}.district_id = :district")
        params["district"] = district_id
    if program:
        parts.append(f"{alias}.program_code = :program")
        params["program"] = program
    return " AND ".join(parts), params


@dataclass
class Duplicate:
    person_id: int
    kind: str
    programs: str
    lines: int
    district_id: int | None
    yearly_value: float


def same_kind(session: Session, *, district_id: int | None = None, program: str | None = None) -> list[Duplicate]:
    where, params = _where(district_id, None)
    having = ""
    if program:
        having = " AND sum(CASE WHEN b.program_code = :program THEN 1 ELSE 0 END) > 0"
        params["program"] = program
    sql = ("SELECT b.person_id, p.kind, count(*) AS n, min(b.district_id), coalesce(sum(b.yearly_value), 0) "
           "FROM beneficiary b JOIN program p ON p.code = b.program_code "
           f"WHERE {where} GROUP BY b.person_id, p.kind HAVING count(*) > 1{having} ORDER BY b.person_id, p.kind")
    rows = session.execute(text(sql), params).all()
    progs = _programs_of(session, [r[0] for r in rows])
    return [Duplicate(r[0], r[1], ", ".join(sorted(progs.get((r[0], r[1]), []))), r[2], r[3], float(r[4]))
            for r in rows]


def _programs_of(session: Session, persons: list[int]) -> dict:
    out: dict = {}
    for lo in range(0, len(persons), 1000):
        part = persons[lo:lo + 1000]
        if not part:
            continue
        params = {f"p{i}": v for i, v in enumerate(part)}
        sql = ("SELECT b.person_id, p.kind, b.program_code FROM beneficiary b JOIN program p ON p.code = b.program_code "
               f"WHERE b.person_id IN ({', '.join(':' + k for k in params)})")
        for pid, kind, code in session.execute(text(sql), params):
            out.setdefault((pid, kind), []).append(code)
    return out


@dataclass
class HouseholdOverlap:
    household_id: int
    kind: str
    persons: int
    lines: int
    district_id: int | None


def household_overlaps(session: Session, *, district_id: int | None = None,
                       program: str | None = None) -> list[HouseholdOverlap]:
    where, params = _where(district_id, program)
    sql = ("SELECT b.household_id, p.kind, count(DISTINCT b.person_id), count(*), min(b.district_id) "
           "FROM beneficiary b JOIN program p ON p.code = b.program_code "
           f"WHERE {where} AND b.household_id IS NOT NULL AND p.unit = 'household' "
           "GROUP BY b.household_id, p.kind HAVING count(DISTINCT b.person_id) > 1 ORDER BY b.household_id")
    return [HouseholdOverlap(*r) for r in session.execute(text(sql), params).all()]


@dataclass
class Concentration:
    household_id: int
    yearly_value: float
    programs: int
    persons: int
    district_id: int | None


def household_ceiling(session: Session, *, ceiling: float = CEILING, district_id: int | None = None,
                      program: str | None = None) -> list[Concentration]:
    where, params = _where(district_id, program)
    sql = ("SELECT b.household_id, sum(b.yearly_value), count(DISTINCT b.program_code), count(DISTINCT b.person_id), "
           f"min(b.district_id) FROM beneficiary b WHERE {where} AND b.household_id IS NOT NULL "
           "GROUP BY b.household_id HAVING sum(b.yearly_value) > :ceiling ORDER BY sum(b.yearly_value) DESC")
    return [Concentration(r[0], float(r[1]), r[2], r[3], r[4])
            for r in session.execute(text(sql), {**params, "ceiling": ceiling}).all()]


@dataclass
class Overlap:
    program_a: str
    program_b: str
    persons: int


def overlap_matrix(session: Session, *, district_id: int | None = None) -> list[Overlap]:
    where, params = _where(district_id, None, "a")
    sql = ("SELECT a.program_code, b.program_code, count(DISTINCT a.person_id) FROM beneficiary a "
           "JOIN beneficiary b ON b.person_id = a.person_id AND b.program_code > a.program_code "
           f"WHERE {where} GROUP BY a.program_code, b.program_code ORDER BY 3 DESC, 1, 2")
    return [Overlap(*r) for r in session.execute(text(sql), params).all()]


@dataclass
class DistrictProgram:
    district_id: int | None
    program_code: str
    lines: int
    persons: int
    duplicated_lines: int
    yearly_value: float


def by_district_program(session: Session, *, district_id: int | None = None,
                        program: str | None = None) -> list[DistrictProgram]:
    where, params = _where(district_id, program)
    sql = ("WITH dup AS (SELECT b.person_id, p.kind FROM beneficiary b JOIN program p ON p.code = b.program_code "
           "  WHERE b.person_id IS NOT NULL GROUP BY b.person_id, p.kind HAVING count(*) > 1) "
           "SELECT b.district_id, b.program_code, count(*), count(DISTINCT b.person_id), "
           "  sum(CASE WHEN d.person_id IS NOT NULL THEN 1 ELSE 0 END), coalesce(sum(b.yearly_value), 0) "
           "FROM beneficiary b JOIN program p ON p.code = b.program_code "
           "LEFT JOIN dup d ON d.person_id = b.person_id AND d.kind = p.kind "
           f"WHERE {where} GROUP BY b.district_id, b.program_code ORDER BY b.district_id, b.program_code")
    return [DistrictProgram(r[0], r[1], r[2], r[3], int(r[4] or 0), float(r[5]))
            for r in session.execute(text(sql), params).all()]


REPORTS = {"same_kind": same_kind, "household_overlaps": household_overlaps, "household_ceiling": household_ceiling,
           "overlap_matrix": overlap_matrix, "by_district_program": by_district_program}


ROW_TYPES = {"same_kind": Duplicate, "household_overlaps": HouseholdOverlap, "household_ceiling": Concentration,
             "overlap_matrix": Overlap, "by_district_program": DistrictProgram}
# readable column names (the web page words them in the reader's language as ``sbr.col.<field>``)
HEADERS = {"person_id": "Person", "kind": "Kind of benefit", "programs": "Programs", "lines": "List lines",
           "district_id": "District", "yearly_value": "Yearly value (PKR)", "household_id": "Household",
           "persons": "Persons", "program_a": "Program", "program_b": "Other program", "program_code": "Program",
           "duplicated_lines": "Lines duplicated"}
MONEY = frozenset({"yearly_value"})


def columns(name: str) -> list[str]:
    """The fields of a report's rows, in order (also when it has no rows)."""
    return [f.name for f in fields(ROW_TYPES[name])]


def ceiling(session: Session) -> float:
    """The household ceiling the reports use by default: the catalogue's, else :data:`CEILING`."""
    from isps.catalogue import household_ceiling

    return household_ceiling(session) or CEILING


def run_report(session: Session, name: str, **kw) -> list:
    if name not in REPORTS:
        raise KeyError(name)
    if name == "overlap_matrix":
        kw.pop("program", None)
    if name != "household_ceiling":
        kw.pop("ceiling", None)
    return REPORTS[name](session, **kw)


def to_csv(rows: list, name: str | None = None) -> str:
    """The rows as CSV under readable column names, money as whole rupees; an empty report still
    has its header row (``name`` says which report, for its columns)."""
    buf = io.StringIO()
    names = columns(name) if name else ([f.name for f in fields(rows[0])] if rows else [])
    if not names:
        return ""
    out = csv.writer(buf)
    out.writerow([HEADERS.get(n, n) for n in names])
    for r in rows:
        d = asdict(r)
        out.writerow([f"{d[n]:.0f}" if n in MONEY and d[n] is not None else d[n] for n in names])
    return buf.getvalue()
