"""Beneficiary lists from partners, by API (batches of records) or by file (CSV, Parquet, Excel).

A list is one batch, identified by the program and the partner's own reference: sending the same
reference again stores nothing and returns the first report (``replayed``). Within a program each
line is identified by the partner's own ``partner_ref``: a line already held with the same values
is ``unchanged``; one with changed values is ``updated`` and resolved again; a new one is
``inserted``.

Checks are column-wise (Arrow), as in :mod:`isps.registry.transfer`, and every problem is reported
with the row number the user sees. A line without ``partner_ref`` or ``full_name``, or repeating
a ``partner_ref`` of the same list, is rejected. A CNIC, date of birth, district or phone that
cannot be read is reported as a warning and the line is kept without that value: lists without
CNICs are exactly what identity resolution is for. No value is changed or dropped without a
warning on its row: a district read from an alias is silent (``D.G. Khan``, ``Lyallpur``), one read
from a misspelling is noted, a year of birth alone is kept as 1 January (the registers' own
placeholder, compared on the year only) and noted, a name longer than the column is noted.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import Engine, select, text

from isps.catalogue import Program
from isps.registry import cnic as cnic_rules
from isps.registry import geography
from isps.registry.bulk import insert_arrow
from isps.registry.transfer.cells import write_report_csv
from isps.linkage.models import Beneficiary, BeneficiaryBatch

COLUMNS = ("partner_ref", "cnic", "full_name", "father_husband_name", "sex", "date_of_birth", "district",
           "phone", "yearly_value")
REQUIRED = ("partner_ref", "full_name")
IDENTITY = ("cnic", "full_name", "father_husband_name", "sex", "date_of_birth", "district_id", "phone",
            "yearly_value")
_SEX = {"male": "male", "m": "male", "female": "female", "f": "female", "transgender": "transgender",
        "t": "transgender", "x": "transgender"}


class IngestError(ValueError):
    """A list that cannot be taken at all; the message is fit to show to the user."""


@dataclass(frozen=True)
class RowProblem:
    row: int
    partner_ref: str
    field: str
    reason: str
    severity: str  # rejected | warning

    def __str__(self) -> str:
        ref = f" ({self.partner_ref})" if self.partner_ref else ""
        return f"row {self.row}{ref}: {self.field}: {self.reason} [{self.severity}]"


@dataclass
class IngestReport:
    program_code: str
    partner: str
    reference: str
    channel: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    warnings: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    batch_id: int | None = None
    replayed: bool = False
    resolution: object | None = None  # the ResolveReport when the lines were resolved on arrival
    timings: dict = field(default_factory=dict)

    def summary(self) -> str:
        head = "already received: nothing changed" if self.replayed else f"batch {self.batch_id}"
        return (f"{self.program_code} / {self.reference} ({self.partner}, {self.channel}): {head}; {self.rows} rows: "
                f"{self.inserted} inserted, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.rejected} rejected, {self.warnings} warnings")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["problems"] = [asdict(p) for p in self.problems]
        d["resolution"] = asdict(self.resolution) if self.resolution is not None else None
        return d

    def write_csv(self, path: Path | str) -> Path:
        return write_report_csv(path, ["row", "partner_ref", "field", "reason", "severity"],
                                ((p.row, p.partner_ref, p.field, p.reason, p.severity) for p in self.problems))


# ---------------------------------------------------------------- reading

def read_file(path: Path | str) -> tuple[pa.Table, np.ndarray]:
    """A list as a table of strings and the row numbers the user sees (CSV/Excel: header is row 1)."""
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path.name}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as f:
                header = next(csv.reader(f), None)
            if not header:
                raise IngestError(f"{path.name}: the file is empty (no header row)")
            names = [_col(h) for h in header]
            table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
                                   convert_options=pacsv.ConvertOptions(
                                       column_types={n: pa.string() for n in names}, strings_can_be_null=True))
            return table, np.arange(2, table.num_rows + 2)
        if suffix in (".parquet", ".pq"):
            table = pq.read_table(path)
            table = table.rename_columns([_col(c) for c in table.column_names])
            return table, np.arange(1, table.num_rows + 1)
        if suffix == ".xlsx":
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True, data_only=True)
            try:
                rows = wb.worksheets[0].iter_rows(values_only=True)
                header = [_col(h) for h in next(rows, ()) if h is not None]
                cols: list[list] = [[] for _ in header]
                numbers = []
                for n, row in enumerate(rows, start=2):
                    if not any(v is not None and str(v).strip() for v in row):
                        continue
                    for c, v in zip(cols, list(row) + [None] * len(header)):
                        c.append(_cell(v))
                    numbers.append(n)
            finally:
                wb.close()
            return pa.table({h: pa.array(c, pa.string()) for h, c in zip(header, cols)}), np.asarray(numbers)
    except (pa.ArrowInvalid, OSError, ValueError, KeyError) as exc:
        if isinstance(exc, IngestError):
            raise
        raise IngestError(f"{path.name}: cannot be read: {str(exc).splitlines()[0]}") from None
    raise IngestError(f"{path.name}: the file type '{suffix}' is not supported; use .csv, .parquet or .xlsx")


def _col(name) -> str:
    return str(name or "").strip().lower().replace(" ", "_").replace("-", "_")


def _cell(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# ---------------------------------------------------------------- checking (column-wise)

class _Problems:
    def __init__(self, n: int) -> None:
        self.items: list[tuple[np.ndarray, str, str, str]] = []
        self.rejected = np.zeros(n, dtype=bool)

    def add(self, mask: np.ndarray, column: str, reason: str | pa.Array, severity: str) -> None:
        """Rows in ``mask`` have a problem in ``column``: one reason, or a reason per row."""
        if mask.any():
            self.items.append((mask, column, reason, severity))
            if severity == "rejected":
                self.rejected |= mask

    def report(self, rows: np.ndarray, refs: pa.Array) -> list[RowProblem]:
        out = []
        for mask, column, reason, severity in self.items:
            at = np.flatnonzero(mask)
            if not len(at):
                continue
            where = pa.array(at)
            whys = pc.take(reason, where).to_pylist() if isinstance(reason, pa.Array) else [reason] * len(at)
            for i, ref, why in zip(at.tolist(), pc.take(refs, where).to_pylist(), whys):
                out.append(RowProblem(int(rows[i]), ref or "", column, str(why), severity))
        return sorted(out, key=lambda p: (p.row, COLUMNS.index(p.field) if p.field in COLUMNS else 99))


def _text(table: pa.Table, name: str) -> pa.Array:
    """A column as trimmed text, blank as null."""
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    col = pc.utf8_trim_whitespace(table[name].cast(pa.string()))
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)


def _mask(a) -> np.ndarray:
    """A boolean Arrow array as numpy, null as False."""
    return np.asarray(pc.fill_null(a, False).to_numpy(zero_copy_only=False), dtype=bool)


def _per_unique(values: pa.Array, fn, type_: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """Apply fn (value -> (parsed, error)) once per distinct value; (parsed, error) per row."""
    uniq = pc.unique(values.drop_null())
    res = [fn(u) for u in uniq.to_pylist()]
    at = pc.index_in(values, value_set=uniq)  # null where the value is null
    return (pc.take(pa.array([r[0] for r in res], type_), at),
            pc.take(pa.array([r[1] for r in res], pa.string()), at))


def _parse_cnic(v: str):
    try:
        return cnic_rules.validate(v), None
    except cnic_rules.CnicError as exc:
        return None, f"{exc}; kept without CNIC"


def _cnics(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """CNICs checked with Arrow kernels; only the values that fail get a message, from
    :func:`isps.registry.cnic.validate` (the one definition of a valid CNIC)."""
    ok = pc.and_(pc.or_(pc.match_substring_regex(values, r"^\d{5}-\d{7}-\d$"),
                        pc.match_substring_regex(values, r"^\d{13}$")),
                 pc.invert(pc.starts_with(values, "0")))
    ok = pc.fill_null(ok, False)
    parsed = pc.if_else(ok, pc.replace_substring(values, "-", ""), pa.scalar(None, pa.string()))
    _, errors = _per_unique(pc.if_else(ok, pa.scalar(None, pa.string()), values), _parse_cnic, pa.string())
    return parsed, errors


_DMY = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
# a year alone, or a year with a zero day and month (00/00/1985, 1985-00-00): registers' "born in 1985"
_YEAR_ONLY = re.compile(r"^(?:(\d{4})(?:[/.-]0{1,2}[/.-]0{1,2})?|0{1,2}[/.-]0{1,2}[/.-](\d{4}))$")


def _parse_date(v: str):
    year = _YEAR_ONLY.match(v)
    if year:
        y = int(year[1] or year[2])
        if not (1900 <= y <= date.today().year):
            return None, f"date of birth '{v}' is not plausible; kept without it"
        # 1 January is the registers' own placeholder: resolution compares such dates on the year only
        return date(y, 1, 1), f"date of birth '{v}' is a year only; kept as 1 January {y}, compared on the year"
    try:
        m = _DMY.match(v)
        d = date(int(m[3]), int(m[2]), int(m[1])) if m else date.fromisoformat(v[:10])
    except (ValueError, TypeError):
        return None, f"date of birth '{v}' is not a date (YYYY-MM-DD or DD/MM/YYYY); kept without it"
    if not (date(1900, 1, 1) <= d <= date.today()):
        return None, f"date of birth {d.isoformat()} is not plausible; kept without it"
    return d, None


def _phones(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Mobile numbers as 03XXXXXXXXX: the digits, with +92 or 92 read as 0 and a leading 0 added to
    ten digits starting 3 (Arrow kernels); anything else is a warning and kept without the phone."""
    d = pc.replace_substring_regex(values, r"\D", "")
    zero = pa.scalar("0")
    d = pc.if_else(pc.and_(pc.starts_with(d, "92"), pc.equal(pc.utf8_length(d), 12)),
                   pc.binary_join_element_wise(zero, pc.utf8_slice_codeunits(d, 2), ""), d)
    d = pc.if_else(pc.and_(pc.starts_with(d, "3"), pc.equal(pc.utf8_length(d), 10)),
                   pc.binary_join_element_wise(zero, d, ""), d)
    ok = pc.fill_null(pc.and_(pc.equal(pc.utf8_length(d), 11), pc.starts_with(d, "03")), False)
    null = pa.scalar(None, pa.string())
    _, errors = _per_unique(pc.if_else(ok, null, values),
                            lambda v: (None, f"phone '{v}' is not a mobile number 03XXXXXXXXX; kept without it"),
                            pa.string())
    return pc.if_else(ok, d, null), errors


def _district_parser():
    """A district's id from what partners write (:func:`isps.registry.geography.read_district`: names,
    ids, aliases such as ``D.G. Khan`` or ``Lyallpur``, tehsils, near misspellings). A guess is kept
    and reported on the row; a value that fits no district is reported and the line kept without it."""
    def parse(v: str):
        found, note = geography.read_district(v)
        if found is None:
            return None, f"{note}; kept without it"
        return found, note
    return parse


def _money(v: str):
    try:
        x = float(v.replace(",", ""))
        return (x, None) if x >= 0 else (None, "yearly value is negative")
    except ValueError:
        return None, f"yearly value '{v}' is not a number"


def check(table: pa.Table, rows: np.ndarray, default_value: float | None) -> tuple[pa.Table, _Problems, pa.Array]:
    """Parse and check a list column by column (Arrow kernels; Python only once per distinct value
    that needs parsing); returns the clean columns, the problems and the refs."""
    n = table.num_rows
    problems = _Problems(n)
    ref = _text(table, "partner_ref")
    name = _text(table, "full_name")
    problems.add(_mask(pc.is_null(ref)), "partner_ref", "the partner's reference is missing", "rejected")
    problems.add(_mask(pc.greater(pc.utf8_length(ref), 60)), "partner_ref",
                 "the partner's reference is longer than 60 characters", "rejected")
    problems.add(_mask(pc.is_null(name)), "full_name", "the name is missing", "rejected")
    keyed = _mask(pc.is_valid(ref))
    if keyed.any():
        codes = pc.fill_null(pc.dictionary_encode(ref).indices, -1).to_numpy(zero_copy_only=False)
        _, first = np.unique(codes[keyed], return_index=True)
        seen = np.zeros(keyed.sum(), dtype=bool)
        seen[first] = True
        repeat = np.zeros(n, dtype=bool)
        repeat[np.flatnonzero(keyed)[~seen]] = True
        problems.add(repeat, "partner_ref", "this reference appears earlier in the same list", "rejected")

    def warn(column: str, err: pa.Array) -> None:
        problems.add(_mask(pc.is_valid(err)), column, err, "warning")

    cnic, err = _cnics(_text(table, "cnic"))
    warn("cnic", err)
    dob, err = _per_unique(_text(table, "date_of_birth"), _parse_date, pa.date32())
    warn("date_of_birth", err)
    district_raw = _text(table, "district") if "district" in table.column_names else _text(table, "district_id")
    district, err = _per_unique(district_raw, _district_parser(), pa.int16())
    warn("district", err)
    phone, err = _phones(_text(table, "phone"))
    warn("phone", err)
    sex, err = _per_unique(_text(table, "sex"),
                           lambda v: (_SEX.get(v.lower()), None if v.lower() in _SEX else
                                      f"sex '{v}' is not male, female or transgender; kept without it"), pa.string())
    warn("sex", err)
    value, err = _per_unique(_text(table, "yearly_value"), _money, pa.float64())
    problems.add(_mask(pc.is_valid(err)), "yearly_value", err, "rejected")
    if default_value is not None:
        value = pc.fill_null(value, pa.scalar(float(default_value)))
    for column in ("full_name", "father_husband_name"):
        problems.add(_mask(pc.greater(pc.utf8_length(_text(table, column)), 80)), column,
                     "longer than 80 characters; kept cut to 80", "warning")
    clean = pa.table({
        "partner_ref": ref,
        "cnic": cnic,
        "full_name": pc.utf8_slice_codeunits(name, 0, 80),
        "father_husband_name": pc.utf8_slice_codeunits(_text(table, "father_husband_name"), 0, 80),
        "sex": sex,
        "date_of_birth": dob,
        "district_id": district,
        "phone": phone,
        "yearly_value": value,
    })
    return clean, problems, ref


# ---------------------------------------------------------------- storing

def _existing(conn, program_code: str, refs: list[str]) -> dict[str, tuple]:
    """The lines of this program already held under these references (one join on a staged list)."""
    if not refs or conn.execute(text("SELECT 1 FROM beneficiary WHERE program_code = :p LIMIT 1"),
                                {"p": program_code}).first() is None:
        return {}
    conn.exec_driver_sql("DROP TABLE IF EXISTS sbr_refs")
    conn.exec_driver_sql("CREATE TEMPORARY TABLE sbr_refs (partner_ref VARCHAR(60))")
    insert_arrow(conn, "sbr_refs", pa.table({"partner_ref": pa.array(refs, pa.string())}))
    cols = ", ".join(f"b.{c}" for c in ("id", "partner_ref", *IDENTITY))
    rows = conn.execute(text(f"SELECT {cols} FROM beneficiary b JOIN sbr_refs r ON r.partner_ref = b.partner_ref "
                             "WHERE b.program_code = :p"), {"p": program_code}).all()
    conn.exec_driver_sql("DROP TABLE sbr_refs")
    return {row[1]: row for row in rows}


def _same(old, new: dict) -> bool:
    for i, name in enumerate(IDENTITY):
        a, b = old[2 + i], new[name]
        if isinstance(a, str) and name == "date_of_birth":
            a = date.fromisoformat(a)
        if name == "yearly_value" and a is not None and b is not None:
            if abs(float(a) - float(b)) > 0.005:
                return False
            continue
        if a != b:
            return False
    return True


def ingest_table(engine: Engine, program_code: str, table: pa.Table, *, partner: str, reference: str,
                 actor: str, channel: str = "api", rows: np.ndarray | None = None,
                 resolve: bool = False) -> IngestReport:
    """Take one partner list (a table of strings with the :data:`COLUMNS`) for a program. With
    ``resolve`` the new lines are resolved (:mod:`isps.linkage.resolve`) before they are stored, so
    each is written once, already linked; otherwise :func:`isps.linkage.resolve.resolve` does it later."""
    if not reference or not reference.strip():
        raise IngestError("a list needs the partner's reference (the partner's own name for this list)")
    reference = reference.strip()[:200]
    report = IngestReport(program_code, partner, reference, channel)
    with engine.begin() as conn:
        program = conn.execute(select(Program.code, Program.amount_pkr, Program.payments_per_year)
                               .where(Program.code == program_code)).first()
        if program is None:
            raise IngestError(f"no program with the code '{program_code}' in the catalogue")
        done = conn.execute(select(BeneficiaryBatch.id, BeneficiaryBatch.summary).where(
            BeneficiaryBatch.program_code == program_code, BeneficiaryBatch.reference == reference)).first()
        if done is not None:
            first = dict(done.summary or {})
            report.batch_id, report.replayed = done.id, True
            report.rows = first.get("rows", 0)
            report.unchanged = report.rows - first.get("rejected", 0)
            report.rejected = first.get("rejected", 0)
            return report
        default_value = (program.amount_pkr or 0.0) * program.payments_per_year
        rows = rows if rows is not None else np.arange(1, table.num_rows + 1)
        import time

        t0 = time.perf_counter()
        clean, problems, refs = check(table, rows, default_value)
        report.timings["check"] = round(time.perf_counter() - t0, 2)
        keep = ~problems.rejected
        report.rows = table.num_rows
        report.rejected = int(problems.rejected.sum())
        report.problems = problems.report(rows, refs)
        report.warnings = sum(1 for p in report.problems if p.severity == "warning")
        clean = clean.filter(pa.array(keep))
        batch_id = conn.execute(BeneficiaryBatch.__table__.insert().values(
            program_code=program_code, partner=partner, reference=reference, channel=channel, actor=actor)
            .returning(BeneficiaryBatch.id)).scalar_one()
        report.batch_id = batch_id
        old = _existing(conn, program_code, clean["partner_ref"].to_pylist())
        if old:
            is_new = np.array([r not in old for r in clean["partner_ref"].to_pylist()])
            changed = []
            for rec in clean.filter(pa.array(~is_new)).to_pylist():
                prev = old[rec["partner_ref"]]
                if _same(prev, rec):
                    report.unchanged += 1
                else:
                    changed.append({**{k: rec[k] for k in IDENTITY}, "id": prev[0], "batch_id": batch_id})
            if changed:
                sets = ", ".join(f"{k} = :{k}" for k in (*IDENTITY, "batch_id"))
                conn.execute(text(f"UPDATE beneficiary SET {sets}, individual_id = NULL, household_id = NULL, "
                                  "link_method = NULL, match_weight = NULL, run_id = NULL WHERE id = :id"), changed)
                report.updated = len(changed)
            clean = clean.filter(pa.array(is_new))
        n = clean.num_rows
        clean = clean.append_column("program_code", pa.array([program_code] * n, pa.string())) \
                     .append_column("batch_id", pa.array(np.full(n, batch_id, dtype=np.int64)))
        if resolve and n:
            from isps.linkage import resolve as resolution

            base = resolution.reserve_ids(conn, "beneficiary", n)
            clean = clean.add_column(0, "id", pa.array(np.arange(base + 1, base + n + 1, dtype=np.int64)))
            res, run = resolution.resolve_new_lines(
                conn, clean.select(["id", "cnic", "full_name", "father_husband_name", "sex", "date_of_birth",
                                    "district_id", "phone"]), actor=actor)
            for col in ("individual_id", "household_id", "link_method", "match_weight", "person_id"):
                clean = clean.append_column(col, res.lines[col])
            clean = clean.append_column("run_id", pa.array(np.full(n, run.run_id, dtype=np.int64)))
            report.resolution = run
            report.timings["resolve"] = round(time.perf_counter() - t0, 2)
        from isps.linkage.resolve import store  # a large list: indexes rebuilt after the COPY

        store(conn, "beneficiary", clean)
        report.timings["stored"] = round(time.perf_counter() - t0, 2)
        report.inserted = n
        conn.execute(BeneficiaryBatch.__table__.update().where(BeneficiaryBatch.id == batch_id).values(
            summary={"rows": report.rows, "inserted": report.inserted, "updated": report.updated,
                     "unchanged": report.unchanged, "rejected": report.rejected, "warnings": report.warnings}))
    return report


def ingest_records(engine: Engine, program_code: str, records: list[dict], *, partner: str, reference: str,
                   actor: str, resolve: bool = False) -> IngestReport:
    """An API batch: a list of dicts with the :data:`COLUMNS` (rows numbered from 1)."""
    cols = {c: pa.array([None if r.get(c) is None else str(r.get(c)) for r in records], pa.string())
            for c in COLUMNS}
    return ingest_table(engine, program_code, pa.table(cols), partner=partner, reference=reference, actor=actor,
                        channel="api", resolve=resolve)


def ingest_file(engine: Engine, program_code: str, path: Path | str, *, partner: str, actor: str,
                reference: str | None = None, resolve: bool = False) -> IngestReport:
    """A file (CSV, Parquet or Excel; the first sheet) with the :data:`COLUMNS`; the reference is the
    file name unless given."""
    path = Path(path)
    table, rows = read_file(path)
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise IngestError(f"{path.name}: the columns {', '.join(missing)} are missing "
                          f"(expected: {', '.join(COLUMNS)})")
    return ingest_table(engine, program_code, table, partner=partner, reference=reference or path.name,
                        actor=actor, channel="file", rows=rows, resolve=resolve)
