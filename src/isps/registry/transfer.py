"""Import and export of households and their members, for partner departments.

Files come in one layout, read and written alike so that an export imports back
unchanged: a *households* table and a *members* table, either as two CSV or two
Parquet files (``<stem>_households.csv`` and ``<stem>_members.csv``) or as one Excel
workbook with the sheets ``households`` and ``members``.

An import is checked column by column with :func:`isps.registry.fields.parse_column`
(the one definition of valid values) and Arrow/NumPy set operations, never row by
row. Valid rows land, invalid rows do not, and every rejected row is reported with
the row number the user sees, the field and the reason. A household whose row is
invalid is rejected with its members; a new household whose head (roster line 1) is
missing or invalid is rejected too. Existing records (matched by household_ref, and
members by household and roster line) are updated with one ``value_change`` row per
changed field, carrying source, effective date, actor, file name and batch, as
:mod:`isps.registry.service` does for an operator's edit. Importing the same file
twice changes nothing. The whole import is one transaction.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import Engine, bindparam, func, select, update
from sqlalchemy.exc import DBAPIError

from isps.registry import events, geography, vocab
from isps.registry.bulk import insert_arrow
from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS, Field, as_text, parse_column
from isps.registry.ids import HOUSEHOLD_RANGE, INDIVIDUAL_RANGE
from isps.registry.models import Household, IngestBatch, Individual, ValueChange

HOUSEHOLDS = "households"
MEMBERS = "members"

_HH_REST = tuple(n for n in HOUSEHOLD_FIELDS if n not in ("urban", "address"))
HOUSEHOLD_COLUMNS: tuple[str, ...] = ("household_ref", "district", "tehsil", "uc", "urban", "address", *_HH_REST)
HOUSEHOLD_OPTIONAL = frozenset({"uc", *(n for n, f in HOUSEHOLD_FIELDS.items() if not f.required)})
MEMBER_COLUMNS: tuple[str, ...] = ("household_ref", "roster_line", "cnic", "id_document", *INDIVIDUAL_FIELDS,
                                   "date_of_death")
MEMBER_OPTIONAL = frozenset({"cnic", "id_document", "date_of_death",
                             *(n for n, f in INDIVIDUAL_FIELDS.items() if not f.required)})

_REF = Field("household_ref", "text", max_len=40)
_ROSTER = Field("roster_line", "int", low=1, high=99)
_ID_DOCUMENT = Field("id_document", "choice", required=False, choices=("cnic", "bform"))
_DEATH = Field("date_of_death", "date", required=False)
_TEXT_COLUMNS = ("household_ref", "district", "tehsil", "uc", "cnic")

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "xlsx"}
_EXCEL_MAX_ROWS = 1_048_576
_IN_CHUNK = 2_000
_KEY = 100_000  # household_id * _KEY + roster_line identifies a roster line


class TransferError(ValueError):
    """A file that cannot be imported or an export that cannot be written; the message names
    the file and what is wrong with it, fit to show to the user as it is."""


# ---------------------------------------------------------------- reports

@dataclass(frozen=True)
class RowError:
    sheet: str          # households | members
    row: int            # as the user sees it: header is row 1 (CSV, Excel); 1-based index (Parquet)
    household_ref: str
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.sheet} row {self.row}"
        if self.household_ref:
            where += f" (household {self.household_ref})"
        return f"{where}: {self.field}: {self.reason}"


@dataclass
class SheetCounts:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0

    def __str__(self) -> str:
        return (f"{self.rows} rows: {self.inserted} inserted, {self.updated} updated, "
                f"{self.unchanged} unchanged, {self.rejected} rejected")


@dataclass
class ImportReport:
    reference: str
    source: str
    actor: str
    effective_date: date
    households: SheetCounts = field(default_factory=SheetCounts)
    members: SheetCounts = field(default_factory=SheetCounts)
    errors: list[RowError] = field(default_factory=list)
    value_changes: int = 0
    events: int = 0
    batch_id: int | None = None  # None when nothing was written

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]

    def to_rows(self) -> list[dict]:
        """One dict per rejected value: sheet, row, household_ref, field, reason."""
        return [asdict(e) for e in self.errors]

    def summary(self) -> str:
        batch = f"batch {self.batch_id}" if self.batch_id is not None else "nothing written"
        out = [f"{self.reference}: {batch} (source {self.source}, effective {self.effective_date.isoformat()}, "
               f"by {self.actor})",
               f"  households: {self.households}",
               f"  members:    {self.members}",
               f"  value changes recorded: {self.value_changes}; events for re-scoring: {self.events}"]
        if self.errors:
            rows = len({(e.sheet, e.row) for e in self.errors})
            out.append(f"  {len(self.errors)} problems on {rows} rejected rows")
        return "\n".join(out)

    def write_csv(self, path: Path | str) -> Path:
        """The rejected-rows report: one line per problem (CNICs masked, as in the messages)."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["sheet", "row", "household_ref", "field", "reason"])
            out.writerows((e.sheet, e.row, e.household_ref, e.field, e.reason) for e in self.errors)
        return path


@dataclass
class ExportReport:
    paths: list[Path]
    fmt: str
    district_id: int | None
    households: int
    members: int

    def summary(self) -> str:
        where = "the province" if self.district_id is None else f"district {self.district_id}"
        files = ", ".join(str(p) for p in self.paths)
        return f"exported {self.households} households and {self.members} members of {where} to {files}"


# ---------------------------------------------------------------- small column helpers

def _np(arr) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.to_numpy(zero_copy_only=False)


def _text(raw) -> np.ndarray:
    """A column as trimmed text ('' for empty), as a NumPy object array."""
    return _np(as_text(raw)).astype(object)


def _index(keys, values) -> np.ndarray:
    """Position of each key among ``values`` (first occurrence), -1 where absent."""
    k = keys if isinstance(keys, pa.Array) else pa.array(keys)
    if len(values) == 0 or len(k) == 0:
        return np.full(len(k), -1, dtype=np.int64)
    v = values if isinstance(values, pa.Array) else pa.array(values, type=k.type)
    return _np(pc.fill_null(pc.index_in(k, value_set=v), -1)).astype(np.int64)


def _isin(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """np.isin for text keys, by hash (NumPy's isin on object arrays compares every pair)."""
    return _index(pa.array(keys.tolist(), pa.string()), pa.array(values.tolist(), pa.string())) >= 0


def _say(mask: np.ndarray, *parts) -> np.ndarray:
    """Messages for the rows in ``mask`` only (None elsewhere); each part is text or a per-row array.
    Only rejected rows are formatted, so a clean million-row file formats nothing."""
    out = np.full(len(mask), None, dtype=object)
    idx = np.flatnonzero(mask)
    if len(idx):
        msg = np.full(len(idx), "", dtype=object)
        for part in parts:
            if not isinstance(part, str):
                part = np.asarray(part, dtype=object)[idx].astype(str).astype(object)
            msg = msg + part
        out[idx] = msg
    return out


def _join(*parts, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


def _objects(values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values) if not isinstance(values, np.ndarray) else values
    return out


def _as_text_values(values: np.ndarray, kind: str) -> np.ndarray:
    """Values as the history stores them (as registry.service's ``_as_text``), column-wise."""
    out = np.full(len(values), None, dtype=object)
    some = np.not_equal(values, None)
    if not some.any():
        return out
    v = values[some]
    if kind == "bool":
        out[some] = np.where(v.astype(bool), "yes", "no")
    elif kind == "float":
        out[some] = np.char.mod("%g", v.astype(float)).astype(object)
    elif kind == "int":
        out[some] = v.astype(np.int64).astype(str).astype(object)
    elif kind == "date":
        out[some] = _np(pc.cast(pa.array(list(v), pa.date32()), pa.string()))
    else:
        out[some] = v
    return out


_ARROW_TYPES = {"text": pa.string(), "choice": pa.string(), "bool": pa.bool_(), "int": pa.int64(),
                "float": pa.float64(), "date": pa.date32()}


# ---------------------------------------------------------------- row errors, column-wise

class _Errors:
    """Per-row problems of one sheet, kept as (mask, field, reason or reasons) until reported."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.items: list[tuple[np.ndarray, str, object]] = []

    def add(self, mask, field_name: str, reason) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self.items.append((mask, field_name, reason))

    def add_reasons(self, field_name: str, reasons: np.ndarray) -> None:
        self.add(np.not_equal(reasons, None), field_name, reasons)

    def bad(self) -> np.ndarray:
        out = np.zeros(self.n, dtype=bool)
        for mask, _, _ in self.items:
            out |= mask
        return out

    def report(self, sheet: str, rownums: np.ndarray, refs: np.ndarray) -> list[RowError]:
        out = []
        for mask, field_name, reason in self.items:  # the error path: only rejected rows are visited
            idx = np.flatnonzero(mask)
            texts = reason[idx] if isinstance(reason, np.ndarray) else [reason] * len(idx)
            out.extend(RowError(sheet, int(rownums[i]), str(refs[i] or ""), field_name, str(r))
                       for i, r in zip(idx, texts))
        return out


def _duplicates(keys: np.ndarray, valid: np.ndarray, rownums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose key occurs more than once among the valid rows, and the rows it occurs on."""
    n = len(keys)
    mask = np.zeros(n, dtype=bool)
    where = np.full(n, None, dtype=object)
    pos = np.flatnonzero(valid)
    if len(pos) < 2:
        return mask, where
    _, inv, counts = np.unique(keys[pos].astype(str), return_inverse=True, return_counts=True)
    dup = counts[inv] > 1
    if not dup.any():
        return mask, where
    mask[pos[dup]] = True
    groups = inv[dup]
    rows = rownums[pos[dup]]
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    for members in np.split(order, bounds):  # one pass per duplicated key, not per row
        listed = ", ".join(str(int(r)) for r in rows[members])
        where[pos[dup][members]] = listed
    return mask, where


# ---------------------------------------------------------------- reading files

@dataclass
class _Sheet:
    name: str
    file: str
    table: pa.Table
    rows: np.ndarray                                        # row number per table row, as the user sees it
    broken: list[tuple[int, str]] = field(default_factory=list)  # rows the reader could not split


def _format_of(path: Path, fmt: str | None = None) -> str:
    if fmt:
        key = fmt.lower().lstrip(".")
        key = {"pq": "parquet", "excel": "xlsx"}.get(key, key)
        if key not in ("csv", "parquet", "xlsx"):
            raise TransferError(f"format '{fmt}' is not supported; use csv, parquet or xlsx")
        return key
    found = _FORMATS.get(path.suffix.lower())
    if found is None:
        raise TransferError(f"{path.name}: the file type '{path.suffix or '(none)'}' is not supported; "
                            "use .csv, .parquet or .xlsx")
    return found


def _normalise_header(names: list, file: str, sheet: str) -> list[str]:
    out = [str(n if n is not None else "").strip().lower().replace(" ", "_").replace("-", "_") for n in names]
    seen, twice = set(), []
    for n in out:
        if n and n in seen:
            twice.append(n)
        seen.add(n)
    if twice:
        raise TransferError(f"{file} ({sheet}): the columns {', '.join(sorted(set(twice)))} appear more than once")
    return [n or f"_blank_{i}" for i, n in enumerate(out)]


def _read_csv(path: Path, sheet: str) -> _Sheet:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError:
        raise TransferError(f"{path.name}: cannot be read as CSV: it is not UTF-8 text") from None
    except OSError as exc:
        raise TransferError(f"{path.name}: cannot be read: {exc.strerror or exc}") from None
    except csv.Error as exc:
        raise TransferError(f"{path.name}: cannot be read as CSV: {exc}") from None
    if not header or all(not str(h).strip() for h in header):
        raise TransferError(f"{path.name}: the file is empty (no header row)")
    names = _normalise_header(header, path.name, sheet)
    broken: list[tuple[int, str]] = []

    def skip(row) -> str:
        broken.append((int(row.number) if row.number is not None else -1,
                       f"has {row.actual_columns} values but the header has {row.expected_columns} columns"))
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False,
                                             invalid_row_handler=skip),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError) as exc:
        raise TransferError(f"{path.name}: cannot be read as CSV: {str(exc).splitlines()[0]}") from None
    # rows are numbered as a spreadsheet shows them: the header is row 1, the first record row 2
    total = table.num_rows + len(broken)
    numbers = np.arange(2, total + 2, dtype=np.int64)
    if broken:
        numbers = numbers[~np.isin(numbers, [b[0] for b in broken])][:table.num_rows]
    return _Sheet(sheet, path.name, table, numbers, broken)


def _read_parquet(path: Path, sheet: str) -> _Sheet:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise TransferError(f"{path.name}: cannot be read as Parquet: {str(exc).splitlines()[0]}") from None
    if table.num_columns == 0:
        raise TransferError(f"{path.name}: the file is empty (no columns)")
    table = table.rename_columns(_normalise_header(table.column_names, path.name, sheet))
    return _Sheet(sheet, path.name, table, np.arange(1, table.num_rows + 1, dtype=np.int64))


def _cell_text(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == datetime.min.time() else v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _read_xlsx(path: Path) -> tuple[_Sheet, _Sheet]:
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise TransferError(f"{path.name}: cannot be read as an Excel workbook (.xlsx): "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    try:
        by_name = {ws.title.strip().lower(): ws for ws in wb.worksheets}
        missing = [s for s in (HOUSEHOLDS, MEMBERS) if s not in by_name]
        if missing:
            raise TransferError(f"{path.name}: the workbook needs the sheets 'households' and 'members'; "
                                f"'{', '.join(missing)}' is missing (its sheets: "
                                f"{', '.join(ws.title for ws in wb.worksheets)})")
        return tuple(_read_sheet(by_name[s], path.name, s) for s in (HOUSEHOLDS, MEMBERS))
    finally:
        wb.close()


def _read_sheet(ws, file: str, sheet: str) -> _Sheet:
    ws.reset_dimensions()
    rows = ws.iter_rows(values_only=True)  # the file reader walks rows; validation does not
    header = next(rows, None)
    if not header or all(h is None or not str(h).strip() for h in header):
        raise TransferError(f"{file}: the sheet '{sheet}' is empty (no header row)")
    names = _normalise_header(list(header), file, sheet)
    width = len(names)
    columns: list[list] = [[] for _ in names]
    numbers = []
    for number, row in enumerate(rows, start=2):
        cells = [_cell_text(v) for v in row[:width]]
        if not any(c is not None and c.strip() for c in cells):
            continue
        cells += [None] * (width - len(cells))
        for col, c in zip(columns, cells):
            col.append(c)
        numbers.append(number)
    table = pa.table({n: pa.array(c, type=pa.string()) for n, c in zip(names, columns)})
    return _Sheet(sheet, file, table, np.asarray(numbers, dtype=np.int64))


def _read(path: Path, fmt: str, sheet: str) -> _Sheet:
    if not path.exists():
        raise TransferError(f"{path.name}: no such file ({path})")
    if path.stat().st_size == 0:
        raise TransferError(f"{path.name}: the file is empty")
    return _read_csv(path, sheet) if fmt == "csv" else _read_parquet(path, sheet)


def _companion(households_path: Path) -> Path | None:
    stem = households_path.stem
    if stem.lower().endswith("_households"):
        candidate = households_path.with_name(stem[: -len("_households")] + "_members" + households_path.suffix)
        if candidate.exists():
            return candidate
    return None


def _prepare(sheet: _Sheet, columns: tuple[str, ...], optional: frozenset[str]) -> _Sheet:
    """Check the columns, drop blank rows (keeping the others' numbers), keep known columns only."""
    have = set(sheet.table.column_names)
    missing = [c for c in columns if c not in optional and c not in have]
    if missing:
        raise TransferError(f"{sheet.file} ({sheet.name}): missing required columns: {', '.join(missing)}. "
                            f"Expected columns: {', '.join(columns)} (optional: {', '.join(sorted(optional))})")
    keep = [c for c in columns if c in have]
    table = sheet.table.select(keep)
    if table.num_rows:
        blank = np.ones(table.num_rows, dtype=bool)
        for c in keep:
            blank &= _np(pc.equal(as_text(table[c]), "")).astype(bool)
        if blank.any():
            table = table.filter(pa.array(~blank))
            sheet.rows = sheet.rows[~blank]
    sheet.table = table
    return sheet


def _read_input(households_path: Path, members_path: Path | None) -> tuple[_Sheet, _Sheet | None]:
    fmt = _format_of(households_path)
    if fmt == "xlsx":
        if members_path is not None:
            raise TransferError(f"{households_path.name}: an Excel workbook carries both sheets "
                                "(households and members); do not name a separate members file")
        if not households_path.exists():
            raise TransferError(f"{households_path.name}: no such file ({households_path})")
        hh, mem = _read_xlsx(households_path)
    else:
        hh = _read(households_path, fmt, HOUSEHOLDS)
        members_path = members_path or _companion(households_path)
        mem = _read(members_path, _format_of(members_path), MEMBERS) if members_path is not None else None
    hh = _prepare(hh, HOUSEHOLD_COLUMNS, HOUSEHOLD_OPTIONAL)
    if hh.table.num_rows == 0 and not hh.broken:
        raise TransferError(f"{hh.file} ({HOUSEHOLDS}): there are no household rows below the header")
    if mem is not None:
        mem = _prepare(mem, MEMBER_COLUMNS, MEMBER_OPTIONAL)
    return hh, mem


# ---------------------------------------------------------------- checking the sheets

@dataclass
class _Parsed:
    sheet: _Sheet
    errors: _Errors
    ref: np.ndarray                 # household_ref as text
    values: dict[str, np.ndarray]   # parsed values per field present in the file

    @property
    def n(self) -> int:
        return len(self.ref)


@dataclass
class _Geo:
    district_ids: np.ndarray
    district_keys: list[str]
    district_names: np.ndarray      # by district id
    tehsil_keys: list[str]          # "<district id>|<tehsil name lower>"
    tehsil_ids: np.ndarray
    tehsil_names: np.ndarray        # by tehsil id
    uc_keys: list[str]              # "<tehsil id>|<uc name lower>" and "<tehsil id>|<number>"
    uc_ids: np.ndarray
    uc_names: dict[int, str]


def _geo() -> _Geo:
    ds = geography.districts()
    top_d = max(d.id for d in ds) + 1
    dnames = np.full(top_d, "", dtype=object)
    tkeys, tids, ukeys, uids, unames = [], [], [], [], {}
    tnames = {}
    for d in ds:
        dnames[d.id] = d.name
        for tid, tname in d.tehsils:
            tkeys.append(f"{d.id}|{tname.lower()}")
            tids.append(tid)
            tnames[tid] = tname
        for uc_id, tid, name in geography.union_councils(d):
            number = name.split(" ", 1)[0].removeprefix("UC-")
            ukeys += [f"{tid}|{name.lower()}", f"{tid}|{number}"]
            uids += [uc_id, uc_id]
            unames[uc_id] = name
    tname_arr = np.full(max(tnames) + 1, "", dtype=object)
    for tid, name in tnames.items():
        tname_arr[tid] = name
    return _Geo(np.array([d.id for d in ds]), [d.name.lower() for d in ds], dnames, tkeys,
                np.asarray(tids, dtype=np.int64), tname_arr, ukeys, np.asarray(uids, dtype=np.int64), unames)


def _parse_households(sheet: _Sheet, geo: _Geo) -> _Parsed:
    t = sheet.table
    n = t.num_rows
    err = _Errors(n)
    ref = _text(t["household_ref"])
    _, reasons = parse_column(_REF, t["household_ref"])
    err.add_reasons("household_ref", reasons)
    dup, rows = _duplicates(ref, ref != "", sheet.rows)
    err.add(dup, "household_ref", _say(dup, "appears more than once in the file (rows ", rows, ")"))

    values: dict[str, np.ndarray] = {}
    # where: district, tehsil within it, union council within the tehsil
    dtext = as_text(t["district"])
    d_at = _index(pc.utf8_lower(dtext), geo.district_keys)
    district_id = np.where(d_at >= 0, geo.district_ids[np.maximum(d_at, 0)], 0).astype(np.int64)
    d_empty = _np(pc.equal(dtext, "")).astype(bool)
    err.add(d_empty, "district", "is required")
    unknown = ~d_empty & (d_at < 0)
    err.add(unknown, "district", _say(unknown, "'", _np(dtext), "' is not a district of Punjab"))
    ttext = as_text(t["tehsil"])
    t_empty = _np(pc.equal(ttext, "")).astype(bool)
    t_at = _index(_join(pc.cast(pa.array(district_id), pa.string()), pc.utf8_lower(ttext), sep="|"), geo.tehsil_keys)
    tehsil_id = np.where(t_at >= 0, geo.tehsil_ids[np.maximum(t_at, 0)], 0).astype(np.int64)
    err.add(t_empty, "tehsil", "is required")
    unknown = ~t_empty & (d_at >= 0) & (t_at < 0)
    err.add(unknown, "tehsil", _say(unknown, "'", _np(ttext), "' is not a tehsil of district ",
                                    geo.district_names[district_id]))
    values["district_id"] = district_id.astype(object)
    values["tehsil_id"] = tehsil_id.astype(object)
    if "uc" in t.column_names:
        utext = as_text(t["uc"])
        u_empty = _np(pc.equal(utext, "")).astype(bool)
        u_at = _index(_join(pc.cast(pa.array(tehsil_id), pa.string()), pc.utf8_lower(utext), sep="|"), geo.uc_keys)
        uc_id = np.full(n, None, dtype=object)
        found = u_at >= 0
        uc_id[found] = geo.uc_ids[u_at[found]].astype(object)
        unknown = ~u_empty & (t_at >= 0) & ~found
        err.add(unknown, "uc", _say(unknown, "'", _np(utext), "' is not a union council of tehsil ",
                                    geo.tehsil_names[tehsil_id]))
        values["uc_id"] = uc_id
    for name, spec in HOUSEHOLD_FIELDS.items():
        if name in t.column_names:  # an optional column left out of the file leaves that field alone
            values[name], reasons = parse_column(spec, t[name])
            err.add_reasons(name, reasons)
    return _Parsed(sheet, err, ref, values)


def _mask_cnics(number: pa.Array) -> pa.Array:
    """cnic.mask over a column of 13-digit numbers."""
    return _join(pc.utf8_slice_codeunits(number, 0, 5), "-*****", pc.utf8_slice_codeunits(number, 10, 12), "-",
                 pc.utf8_slice_codeunits(number, 12, 13))


def _mask_raw(text: pa.Array) -> pa.Array:
    """cnic.mask_raw over a column of whatever was typed."""
    length = pc.utf8_length(text)
    short = pc.less_equal(length, 4)
    stars = pc.binary_repeat("*", pc.max_element_wise(pc.subtract(length, 5), 0))
    long_form = _join(pc.utf8_slice_codeunits(text, 0, 3), stars, pc.utf8_slice_codeunits(text, -2))
    return pc.if_else(short, pc.binary_repeat("*", length), long_form)


def _parse_cnic(raw, sex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rules of :func:`isps.registry.cnic.validate`, over a whole column: 13 digits written
    NNNNN-NNNNNNN-N or plain, not beginning with 0, last digit odd for men and even for women."""
    text = as_text(raw)
    n = len(text)
    reason = np.full(n, None, dtype=object)
    empty = _np(pc.equal(text, "")).astype(bool)
    well_formed = _np(pc.or_(pc.match_substring_regex(text, r"^\d{5}-\d{7}-\d$"),
                             pc.match_substring_regex(text, r"^\d{13}$"))).astype(bool)
    digits = pc.utf8_length(pc.replace_substring_regex(text, r"\D", ""))
    ndigits = _np(digits)
    shown = _np(_mask_raw(text))
    wrong_count = ~empty & ~well_formed & (ndigits != 13)
    reason[wrong_count] = _say(wrong_count, "CNIC '", shown, "' must have 13 digits written NNNNN-NNNNNNN-N; it has ",
                               ndigits)[wrong_count]
    wrong_form = ~empty & ~well_formed & (ndigits == 13)
    reason[wrong_form] = _say(wrong_form, "CNIC '", shown,
                              "' must be written NNNNN-NNNNNNN-N or as 13 digits")[wrong_form]
    number = pc.replace_substring(text, "-", "")
    masked = _np(_mask_cnics(number))
    zero = well_formed & _np(pc.starts_with(number, "0")).astype(bool)
    reason[zero] = _say(zero, "CNIC ", masked, " cannot begin with 0: the first digit is the province code")[zero]
    last_text = pc.utf8_slice_codeunits(number, 12, 13)
    last = np.where(well_formed, _np(pc.cast(pc.if_else(pa.array(well_formed), last_text, "0"), pa.int64())), 0)
    male = np.equal(sex, "male") & (last % 2 == 0)
    female = np.equal(sex, "female") & (last % 2 == 1)
    for wrong, who, parity in ((male, "male", "odd"), (female, "female", "even")):
        wrong = well_formed & ~zero & wrong
        reason[wrong] = _say(wrong, "CNIC ", masked, " ends in ", _np(last_text),
                             f", but a {who} holder's CNIC ends in an {parity} digit")[wrong]
    values = np.full(n, None, dtype=object)
    good = well_formed & np.equal(reason, None)
    values[good] = _np(number).astype(object)[good]
    return values, reason


def _adult_on(dob: np.ndarray, on: date) -> np.ndarray:
    try:
        cutoff = on.replace(year=on.year - 18)
    except ValueError:  # 29 February
        cutoff = on.replace(year=on.year - 18, day=28)
    known = np.not_equal(dob, None)
    out = np.zeros(len(dob), dtype=bool)
    if known.any():
        out[known] = _np(pc.less_equal(pa.array(list(dob[known]), pa.date32()), pa.scalar(cutoff))).astype(bool)
    return out


def _parse_members(sheet: _Sheet) -> _Parsed:
    t = sheet.table
    n = t.num_rows
    cols = set(t.column_names)
    err = _Errors(n)
    ref = _text(t["household_ref"])
    _, reasons = parse_column(_REF, t["household_ref"])
    err.add_reasons("household_ref", reasons)
    values: dict[str, np.ndarray] = {}
    values["roster_line"], reasons = parse_column(_ROSTER, t["roster_line"])
    err.add_reasons("roster_line", reasons)
    for name, spec in INDIVIDUAL_FIELDS.items():
        if name in cols:
            values[name], reasons = parse_column(spec, t[name])
            err.add_reasons(name, reasons)
    if "cnic" in cols:
        values["cnic"], reasons = _parse_cnic(t["cnic"], values["sex"])
        err.add_reasons("cnic", reasons)
    if "id_document" in cols:
        values["id_document"], reasons = parse_column(_ID_DOCUMENT, t["id_document"])
        err.add_reasons("id_document", reasons)
    if "date_of_death" in cols:
        values["date_of_death"], reasons = parse_column(_DEATH, t["date_of_death"])
        err.add_reasons("date_of_death", reasons)
        both = np.not_equal(values["date_of_death"], None) & np.not_equal(values["date_of_birth"], None)
        before = np.zeros(n, dtype=bool)
        if both.any():
            before[both] = _np(pc.less(pa.array(list(values["date_of_death"][both]), pa.date32()),
                                       pa.array(list(values["date_of_birth"][both]), pa.date32()))).astype(bool)
        err.add(before, "date_of_death", "is before the date of birth")
    # roster line 1 is the head, and only the head is on line 1
    line = values["roster_line"]
    relation = values["relation_to_head"]
    known = np.not_equal(line, None) & np.not_equal(relation, None)
    is_one = known & np.equal(line, 1)
    is_head = known & np.equal(relation, "head")
    err.add(is_one & ~is_head, "relation_to_head",
            "roster line 1 is the head of the household, so relation_to_head must be head")
    misplaced = is_head & ~is_one
    err.add(misplaced, "relation_to_head",
            _say(misplaced, "is head, but the head must be on roster line 1 (this row is on line ", line, ")"))
    # (household_ref, roster_line) once in the file
    keys = _np(_join(pa.array(ref.tolist(), pa.string()), pc.cast(pa.array(line.tolist(), pa.int64()), pa.string()),
                     sep="\x1f")).astype(object)
    dup, rows = _duplicates(keys, (ref != "") & np.not_equal(line, None), sheet.rows)
    err.add(dup, "roster_line", _say(dup, "roster line ", line, " of this household appears more than once (rows ",
                                     rows, ")"))
    return _Parsed(sheet, err, ref, values)


# ---------------------------------------------------------------- reading the registry

def _fetch(conn, columns: list, key_column, keys: np.ndarray) -> dict[str, np.ndarray]:
    """Current rows whose ``key_column`` is among ``keys``, as NumPy object columns."""
    names = [c.name for c in columns]
    parts: list[list] = [[] for _ in names]
    uniq = list(dict.fromkeys(keys.tolist()))
    for lo in range(0, len(uniq), _IN_CHUNK):
        rows = conn.execute(select(*columns).where(key_column.in_(uniq[lo:lo + _IN_CHUNK]))).all()
        if rows:
            for part, col in zip(parts, zip(*rows)):
                part.extend(col)
    return {name: _objects(part) for name, part in zip(names, parts)}


def _id_offsets(conn, table, districts: np.ndarray, base: int) -> dict[int, int]:
    wanted = sorted({int(d) for d in districts})
    out = {d: 0 for d in wanted}
    if wanted:
        for d, mx in conn.execute(select(table.c.district_id, func.max(table.c.id))
                                  .where(table.c.district_id.in_(wanted)).group_by(table.c.district_id)):
            out[int(d)] = int(mx) - int(d) * base
    return out


def _allocate(next_by_district: dict[int, int], district: np.ndarray, base: int) -> np.ndarray:
    """Ids in each district's range, continuing where that district stopped (as synth does)."""
    if len(district) == 0:
        return np.zeros(0, dtype=np.int64)
    district = district.astype(np.int64)
    order = np.argsort(district, kind="stable")
    sorted_d = district[order]
    rank = np.arange(len(district)) - np.searchsorted(sorted_d, sorted_d, side="left")
    lookup = np.zeros(int(sorted_d.max()) + 1, dtype=np.int64)
    for d, v in next_by_district.items():
        lookup[d] = v
    out = np.empty(len(district), dtype=np.int64)
    out[order] = sorted_d * base + lookup[sorted_d] + rank + 1
    uniq, counts = np.unique(district, return_counts=True)
    for d, k in zip(uniq, counts):
        next_by_district[int(d)] = next_by_district.get(int(d), 0) + int(k)
    return out


# ---------------------------------------------------------------- the import

_HH_KINDS = {**{n: f.kind for n, f in HOUSEHOLD_FIELDS.items()}, "tehsil_id": "int", "uc_id": "int"}
_MEMBER_KINDS = {**{n: f.kind for n, f in INDIVIDUAL_FIELDS.items()}, "cnic": "text", "id_document": "text",
                 "date_of_death": "date"}


@dataclass
class _Changes:
    """Candidate field changes of existing records, one entry per (record, field)."""

    entity: str
    row: list = field(default_factory=list)        # position in the updated set
    field_name: list = field(default_factory=list)
    old: list = field(default_factory=list)
    new: list = field(default_factory=list)

    def add(self, rows: np.ndarray, name: str, old: np.ndarray, new: np.ndarray, kind: str) -> None:
        self.row.append(rows)
        self.field_name.append(np.full(len(rows), name, dtype=object))
        self.old.append(_as_text_values(old, kind))
        self.new.append(_as_text_values(new, kind))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.row:
            e = np.zeros(0, dtype=object)
            return np.zeros(0, dtype=np.int64), e, e, e
        return (np.concatenate(self.row), np.concatenate(self.field_name), np.concatenate(self.old),
                np.concatenate(self.new))


def _diff(entity: str, current: dict[str, np.ndarray], proposed: dict[str, np.ndarray],
          kinds: dict[str, str]) -> tuple[_Changes, dict[str, np.ndarray]]:
    changes = _Changes(entity)
    changed = {}
    for name, new in proposed.items():
        old = current[name]
        mask = np.not_equal(old, new)
        changed[name] = mask
        if mask.any():
            rows = np.flatnonzero(mask)
            changes.add(rows, name, old[rows], new[rows], kinds[name])
    return changes, changed


def _history_decisions(conn, entity: str, entity_ids: np.ndarray, fields_: np.ndarray, new_text: np.ndarray,
                       effective: date) -> tuple[np.ndarray, np.ndarray]:
    """For candidate changes: (apply to the current value?, write a history row?).

    As registry.service does, a change moves the current value only when it is not older
    than the newest change already known for that field (late news stays history). A late
    change already in the history with the same value and date is not written again, so a
    repeated import adds nothing."""
    n = len(entity_ids)
    if n == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    vc = ValueChange.__table__
    newest_keys, newest_dates, same_keys = [], [], []
    uniq = sorted({int(i) for i in entity_ids})
    for lo in range(0, len(uniq), _IN_CHUNK):
        part = uniq[lo:lo + _IN_CHUNK]
        for eid, fname, mx in conn.execute(
                select(vc.c.entity_id, vc.c.field, func.max(vc.c.effective_date))
                .where(vc.c.entity == entity, vc.c.entity_id.in_(part)).group_by(vc.c.entity_id, vc.c.field)):
            newest_keys.append(f"{eid}|{fname}")
            newest_dates.append(mx if isinstance(mx, date) else date.fromisoformat(str(mx)))
        for eid, fname, value in conn.execute(
                select(vc.c.entity_id, vc.c.field, vc.c.new_value)
                .where(vc.c.entity == entity, vc.c.entity_id.in_(part), vc.c.effective_date == effective)):
            same_keys.append(f"{eid}|{fname}|{'' if value is None else value}\x1e{value is None}")
    keys = _join(pc.cast(pa.array(entity_ids.astype(np.int64)), pa.string()), pa.array(fields_, pa.string()),
                 sep="|")
    at = _index(keys, newest_keys)
    newest = np.asarray(newest_dates + [date.min], dtype=object)[np.where(at >= 0, at, len(newest_dates))]
    apply = (at < 0) | np.greater_equal(np.full(n, effective, dtype=object), newest)
    with_value = _join(keys, pa.array(np.where(np.equal(new_text, None), "", new_text), pa.string()), sep="|")
    with_value = _join(with_value, pa.array(np.where(np.equal(new_text, None), "True", "False").astype(object)),
                       sep="\x1e")
    already = _index(with_value, same_keys) >= 0
    write = apply | ~already
    return apply, write


class _Import:
    def __init__(self, conn, hh: _Parsed, mem: _Parsed | None, report: ImportReport) -> None:
        self.conn = conn
        self.hh = hh
        self.mem = mem
        self.report = report
        self.eff = report.effective_date
        self.now = datetime.now()

    # -- cross-sheet and registry checks
    def run(self) -> None:
        hh, mem, conn = self.hh, self.mem, self.conn
        H = Household.__table__
        refs = np.concatenate([hh.ref, mem.ref if mem is not None else np.zeros(0, dtype=object)])
        refs = refs[refs != ""]
        reg = _fetch(conn, [H.c.id, H.c.ref, H.c.district_id, H.c.tehsil_id, H.c.uc_id,
                            *(H.c[n] for n in HOUSEHOLD_FIELDS), H.c.verified_on, H.c.version], H.c.ref, refs)
        reg_refs = pa.array(reg["ref"].tolist(), pa.string())
        hh_reg = _index(pa.array(hh.ref.tolist(), pa.string()), reg_refs)
        geo_names = _geo().district_names

        # an import does not move a household to another district (its id says where it is stored)
        exists = hh_reg >= 0
        moved = np.zeros(hh.n, dtype=bool)
        if exists.any():
            reg_d = np.zeros(hh.n, dtype=np.int64)
            reg_d[exists] = reg["district_id"][hh_reg[exists]].astype(np.int64)
            new_d = hh.values["district_id"].astype(np.int64)
            moved = exists & (new_d != 0) & (reg_d != new_d)
            hh.errors.add(moved, "district", _say(moved, "the household is registered in ", geo_names[reg_d],
                                                  "; an import cannot move it to another district"))
        hh_own_bad = hh.errors.bad()

        hh_refs = pa.array(hh.ref.tolist(), pa.string())
        if mem is not None:
            m_refs = pa.array(mem.ref.tolist(), pa.string())
            m_file = _index(m_refs, hh_refs)
            m_reg = _index(m_refs, reg_refs)
            mem.errors.add((mem.ref != "") & (m_file < 0) & (m_reg < 0), "household_ref",
                           "is neither in the households sheet nor in the registry")
            mem_own_bad = mem.errors.bad()
            line = mem.values["roster_line"]
            line_one = np.equal(line, 1)
            heads_ok = mem.ref[line_one & ~mem_own_bad]
            head_any = _index(hh_refs, pa.array(mem.ref[line_one].tolist(), pa.string()))
            head_rows = mem.sheet.rows[line_one]
        else:
            heads_ok = np.zeros(0, dtype=object)
            head_any = np.full(hh.n, -1)
            head_rows = np.zeros(0, dtype=np.int64)

        # a new household needs a valid head (roster line 1)
        new_ok = ~hh_own_bad & (hh_reg < 0)
        headless = new_ok & ~_isin(hh.ref, heads_ok)
        if headless.any():
            why = np.full(hh.n, "has no member on roster line 1 (the head), so the household is rejected",
                          dtype=object)
            had = head_any >= 0
            if had.any():
                why[had] = _say(had, "its head (members row ", head_rows[np.maximum(head_any, 0)],
                                ") was rejected, so the household is rejected")[had]
            if mem is None:
                why[:] = "no members file was given: a new household needs its members, at least the head"
            hh.errors.add(headless, "members", why)
        hh_bad = hh.errors.bad()

        if mem is not None:
            # members of a rejected household are rejected with it
            bad_refs = pa.array(hh.ref[hh_bad & (hh.ref != "")].tolist(), pa.string())
            first = m_file
            cascade = ~mem_own_bad & (_index(m_refs, bad_refs) >= 0)
            if cascade.any():
                own = hh_own_bad[np.maximum(first, 0)]
                why = np.where(own, _say(cascade & own, "household rejected: its row in the households sheet (row ",
                                         hh.sheet.rows[np.maximum(first, 0)], ") has errors"),
                               "household rejected: it has no valid head on roster line 1").astype(object)
                mem.errors.add(cascade, "household_ref", why)
            mem_ok = ~mem.errors.bad()
        self._counts(self.report.households, hh, hh_bad)

        # ---------------- households: new ones and changes to existing ones
        hh_ok = ~hh_bad
        new_rows = np.flatnonzero(hh_ok & (hh_reg < 0))
        upd_rows = np.flatnonzero(hh_ok & (hh_reg >= 0))
        at = hh_reg[upd_rows]
        compared = [n for n in ("tehsil_id", "uc_id", *HOUSEHOLD_FIELDS) if n in hh.values]
        current = {n: reg[n][at] for n in compared}
        proposed = {n: hh.values[n][upd_rows] for n in compared}
        hh_changes, _ = _diff("household", current, proposed, _HH_KINDS)
        h_pos, h_field, h_old, h_new = hh_changes.arrays()
        h_ids = reg["id"][at].astype(np.int64)
        h_apply, h_write = _history_decisions(conn, "household", h_ids[h_pos], h_field, h_new, self.eff)

        # ---------------- members
        if mem is not None:
            ok_rows = np.flatnonzero(mem_ok)
            new_hh_refs = hh.ref[new_rows]
            in_new = _index(pa.array(mem.ref[ok_rows].tolist(), pa.string()),
                            pa.array(new_hh_refs.tolist(), pa.string()))
            in_reg = m_reg[ok_rows]
            m_hh_reg = np.where(in_new < 0, in_reg, -1)  # a member's household in the registry
            reg_member_hh = np.where(m_hh_reg >= 0, reg["id"][np.maximum(m_hh_reg, 0)].astype(np.int64), 0) \
                if len(reg["id"]) else np.zeros(len(ok_rows), dtype=np.int64)
            I = Individual.__table__
            member_cols = [c for c in ("cnic", "id_document", *INDIVIDUAL_FIELDS, "date_of_death")
                           if c in mem.values]
            stored = _fetch(conn, [I.c.id, I.c.household_id, I.c.district_id, I.c.roster_line,
                                   *(I.c[c] for c in ("cnic", "id_document", *INDIVIDUAL_FIELDS, "date_of_death"))],
                            I.c.household_id, reg_member_hh[m_hh_reg >= 0])
            stored_key = (stored["household_id"].astype(np.int64) * _KEY + stored["roster_line"].astype(np.int64)) \
                if len(stored["id"]) else np.zeros(0, dtype=np.int64)
            line_ok = mem.values["roster_line"][ok_rows].astype(np.int64)
            key = np.where(m_hh_reg >= 0, reg_member_hh * _KEY + line_ok, -1)
            m_at = np.where(m_hh_reg >= 0, _index(pa.array(key), pa.array(stored_key, pa.int64())), -1)
            m_upd = ok_rows[m_at >= 0]
            s_at = m_at[m_at >= 0]
            m_new = ok_rows[m_at < 0]
            cur = {c: stored[c][s_at] for c in member_cols}
            prop = {c: mem.values[c][m_upd] for c in member_cols}
            self._member_rules(cur, prop, m_upd)
            m_changes, _ = _diff("individual", cur, prop, _MEMBER_KINDS)
            m_pos, m_field, m_old, m_new_text = m_changes.arrays()
            m_ids = stored["id"][s_at].astype(np.int64)
            m_apply, m_write = _history_decisions(conn, "individual", m_ids[m_pos], m_field, m_new_text, self.eff)
        else:
            m_upd = m_new = np.zeros(0, dtype=np.int64)
            m_pos = np.zeros(0, dtype=np.int64)
            m_apply = m_write = np.zeros(0, dtype=bool)

        written_h = np.isin(np.arange(len(upd_rows)), h_pos[h_write])
        self.report.households.inserted = len(new_rows)
        self.report.households.updated = int(written_h.sum())
        self.report.households.unchanged = len(upd_rows) - int(written_h.sum())
        if mem is not None:
            written_m = np.isin(np.arange(len(m_upd)), m_pos[m_write])
            self._counts(self.report.members, mem, ~mem_ok)
            self.report.members.inserted = len(m_new)
            self.report.members.updated = int(written_m.sum())
            self.report.members.unchanged = len(m_upd) - int(written_m.sum())
        self.report.value_changes = int(h_write.sum() + m_write.sum())
        if len(new_rows) == 0 and len(m_new) == 0 and not h_write.any() and not m_write.any():
            return  # nothing to write: no batch either, so a repeated import leaves no trace

        # ---------------- write, all in the caller's transaction
        batch_id = conn.execute(IngestBatch.__table__.insert().values(
            source=self.report.source, reference=self.report.reference[:200], effective_date=self.eff,
            actor=self.report.actor).returning(IngestBatch.__table__.c.id)).scalar_one()
        self.report.batch_id = int(batch_id)

        new_hh_ids = self._insert_households(new_rows, batch_id)
        topics, aggregates, payloads = [], [], []
        if len(new_rows):
            topics.append(np.full(len(new_rows), events.HOUSEHOLD_CREATED, dtype=object))
            aggregates.append(new_hh_ids)
            payloads.append(np.full(len(new_rows), f'{{"batch_id": {batch_id}, "source": "{self.report.source}"}}',
                                    dtype=object))

        vc_parts = []
        applied_fields = []  # (household id, field) pairs that moved the current state
        if len(upd_rows):
            h_dist = reg["district_id"][at].astype(np.int64)
            vc_parts.append(self._value_changes("household", h_ids[h_pos], h_ids[h_pos], h_dist[h_pos],
                                                h_field, h_old, h_new, h_write, batch_id))
            self._update_households(upd_rows, at, reg, h_pos, h_field, h_apply, compared)
            applied_fields.append((h_ids[h_pos][h_apply], h_field[h_apply]))

        if mem is not None:
            self._insert_members(m_new, new_hh_refs, new_hh_ids, reg, m_reg, batch_id)
            if len(m_upd):
                m_hh = stored["household_id"][s_at].astype(np.int64)
                m_dist = stored["district_id"][s_at].astype(np.int64)
                vc_parts.append(self._value_changes("individual", m_ids[m_pos], m_hh[m_pos], m_dist[m_pos],
                                                    m_field, m_old, m_new_text, m_write, batch_id))
                self._update_members(m_upd, m_ids, m_pos, m_field, m_apply, cur, prop)
                applied_fields.append((m_hh[m_pos][m_apply], ("member." + m_field[m_apply].astype(str)).astype(object)))
                died = m_apply & np.equal(m_field, "date_of_death") & np.not_equal(m_new_text, None)
                if died.any():
                    topics.append(np.full(int(died.sum()), events.MEMBER_DECEASED, dtype=object))
                    aggregates.append(m_hh[m_pos][died])
                    payloads.append((f'{{"batch_id": {batch_id}, "individual_id": '
                                     + m_ids[m_pos][died].astype(str).astype(object) + "}"))
            added = m_new[~_isin(mem.ref[m_new], new_hh_refs)]
            if len(added):
                hh_ids_added = reg["id"][m_reg[added]].astype(np.int64)
                applied_fields.append((hh_ids_added, np.full(len(added), "member.added", dtype=object)))

        if vc_parts:
            data = pa.concat_tables(vc_parts)
            insert_arrow(conn, "value_change", data)
        # one household.changed event per household whose current state moved, naming the fields
        if applied_fields:
            ids = np.concatenate([a for a, _ in applied_fields])
            names = np.concatenate([b for _, b in applied_fields])
            if len(ids):
                grouped = (pa.table({"household_id": pa.array(ids, pa.int64()), "field": pa.array(names, pa.string())})
                           .group_by("household_id").aggregate([("field", "distinct")]))
                fields_json = pc.binary_join(grouped["field_distinct"], '", "')
                topics.append(np.full(grouped.num_rows, events.HOUSEHOLD_CHANGED, dtype=object))
                aggregates.append(_np(grouped["household_id"]).astype(np.int64))
                payloads.append(_np(_join(f'{{"batch_id": {batch_id}, "fields": ["', fields_json, '"]}'))
                                .astype(object))
        if topics:
            topic = np.concatenate(topics)
            insert_arrow(conn, "outbox_event", pa.table({
                "topic": pa.array(topic, pa.string()),
                "aggregate": pa.array(np.full(len(topic), "household", dtype=object), pa.string()),
                "aggregate_id": pa.array(np.concatenate(aggregates), pa.int64()),
                "payload": pa.array(np.concatenate(payloads), pa.string()),
            }))
            self.report.events = len(topic)
        conn.execute(IngestBatch.__table__.update().where(IngestBatch.__table__.c.id == batch_id).values(
            summary={"households": asdict(self.report.households), "members": asdict(self.report.members),
                     "value_changes": self.report.value_changes, "events": self.report.events}))

    @staticmethod
    def _counts(counts: SheetCounts, parsed: _Parsed, bad: np.ndarray) -> None:
        counts.rows = parsed.n + len(parsed.sheet.broken)
        counts.rejected = int(bad.sum()) + len(parsed.sheet.broken)

    def _member_rules(self, cur: dict, prop: dict, m_upd: np.ndarray) -> None:
        """Fields an existing member keeps when the file is silent: an empty date_of_death does not
        undo a recorded death, and the kind of document stays unless the number changed."""
        if "date_of_death" in prop:
            prop["date_of_death"] = np.where(np.equal(prop["date_of_death"], None), cur["date_of_death"],
                                             prop["date_of_death"])
        if "cnic" in prop:
            given = prop.get("id_document", np.full(len(m_upd), None, dtype=object))
            same_number = np.equal(prop["cnic"], cur["cnic"])
            derived = np.where(_adult_on(self.mem.values["date_of_birth"][m_upd], self.eff), "cnic", "bform")
            doc = np.where(np.not_equal(given, None), given, np.where(same_number, cur["id_document"], derived))
            prop["id_document"] = np.where(np.equal(prop["cnic"], None), None, doc).astype(object)
        else:
            prop.pop("id_document", None)

    # -- writers
    def _insert_households(self, rows: np.ndarray, batch_id: int) -> np.ndarray:
        hh = self.hh
        if len(rows) == 0:
            return np.zeros(0, dtype=np.int64)
        district = hh.values["district_id"][rows].astype(np.int64)
        ids = _allocate(_id_offsets(self.conn, Household.__table__, district, HOUSEHOLD_RANGE), district,
                        HOUSEHOLD_RANGE)
        n = len(rows)
        cols = {
            "id": pa.array(ids, pa.int64()),
            "ref": pa.array(hh.ref[rows].tolist(), pa.string()),
            "district_id": pa.array(district, pa.int64()),
            "tehsil_id": pa.array(hh.values["tehsil_id"][rows].astype(np.int64), pa.int64()),
            "uc_id": pa.array(list(hh.values["uc_id"][rows]) if "uc_id" in hh.values else [None] * n, pa.int64()),
        }
        for name, spec in HOUSEHOLD_FIELDS.items():
            if name in hh.values:
                cols[name] = pa.array(list(hh.values[name][rows]), _ARROW_TYPES[spec.kind])
        cols["batch_id"] = pa.array(np.full(n, batch_id), pa.int64())
        cols["surveyed_on"] = pa.array([self.eff] * n, pa.date32())
        cols["verified_on"] = cols["surveyed_on"]
        cols["version"] = pa.array(np.ones(n, dtype=np.int64), pa.int64())
        insert_arrow(self.conn, "household", pa.table(cols))
        return ids

    def _insert_members(self, rows: np.ndarray, new_refs: np.ndarray, new_ids: np.ndarray, reg: dict,
                        m_reg: np.ndarray, batch_id: int) -> None:
        mem = self.mem
        if len(rows) == 0:
            return
        n = len(rows)
        refs = mem.ref[rows]
        new_at = _index(pa.array(refs.tolist(), pa.string()), pa.array(new_refs.tolist(), pa.string()))
        hh_ids = np.where(new_at >= 0, new_ids[np.maximum(new_at, 0)] if len(new_ids) else 0, 0).astype(np.int64)
        from_reg = new_at < 0
        if from_reg.any():
            hh_ids[from_reg] = reg["id"][m_reg[rows[from_reg]]].astype(np.int64)
        district = hh_ids // HOUSEHOLD_RANGE
        ids = _allocate(_id_offsets(self.conn, Individual.__table__, district, INDIVIDUAL_RANGE), district,
                        INDIVIDUAL_RANGE)
        v = mem.values
        cnic = v["cnic"][rows] if "cnic" in v else np.full(n, None, dtype=object)
        given = v["id_document"][rows] if "id_document" in v else np.full(n, None, dtype=object)
        derived = np.where(_adult_on(v["date_of_birth"][rows], self.eff), "cnic", "bform").astype(object)
        doc = np.where(np.equal(cnic, None), None, np.where(np.not_equal(given, None), given, derived))
        cols = {
            "id": pa.array(ids, pa.int64()),
            "household_id": pa.array(hh_ids, pa.int64()),
            "district_id": pa.array(district, pa.int64()),
            "roster_line": pa.array(v["roster_line"][rows].astype(np.int64), pa.int64()),
            "cnic": pa.array(list(cnic), pa.string()),
            "id_document": pa.array(list(doc), pa.string()),
        }
        for name, spec in INDIVIDUAL_FIELDS.items():
            values = v[name][rows] if name in v else np.full(n, None, dtype=object)
            cols[name] = pa.array(list(values), _ARROW_TYPES[spec.kind])
        cols["date_of_death"] = pa.array(list(v["date_of_death"][rows]) if "date_of_death" in v else [None] * n,
                                         pa.date32())
        cols["member_since"] = pa.array([self.eff] * n, pa.date32())
        cols["batch_id"] = pa.array(np.full(n, batch_id), pa.int64())
        insert_arrow(self.conn, "individual", pa.table(cols))

    def _value_changes(self, entity: str, entity_ids, household_ids, district_ids, fields_, old, new,
                       write: np.ndarray, batch_id: int) -> pa.Table:
        k = int(write.sum())
        r = self.report
        return pa.table({
            "entity": pa.array([entity] * k, pa.string()),
            "entity_id": pa.array(entity_ids[write], pa.int64()),
            "household_id": pa.array(household_ids[write], pa.int64()),
            "district_id": pa.array(district_ids[write], pa.int64()),
            "field": pa.array(fields_[write], pa.string()),
            "old_value": pa.array(old[write], pa.string()),
            "new_value": pa.array(new[write], pa.string()),
            "source": pa.array([r.source] * k, pa.string()),
            "source_ref": pa.array([r.reference[:200]] * k, pa.string()),
            "effective_date": pa.array([self.eff] * k, pa.date32()),
            "actor": pa.array([r.actor] * k, pa.string()),
            "batch_id": pa.array(np.full(k, batch_id), pa.int64()),
        })

    def _update_households(self, upd_rows, at, reg, pos, fields_, apply, compared) -> None:
        touched = np.unique(pos[apply])
        if len(touched) == 0:
            return
        state = {}
        for name in compared:
            moved = np.zeros(len(upd_rows), dtype=bool)
            moved[pos[apply & np.equal(fields_, name)]] = True
            state[name] = np.where(moved, self.hh.values[name][upd_rows], reg[name][at])[touched]
        version = reg["version"][at][touched].astype(np.int64) + 1
        verified = reg["verified_on"][at][touched]
        if self.report.source in ("survey", "operator"):
            verified = np.where(np.less(verified, np.full(len(verified), self.eff, dtype=object)), self.eff, verified)
        H = Household.__table__
        values = {name: bindparam(f"p_{name}") for name in compared}
        values |= {"version": bindparam("p_version"), "verified_on": bindparam("p_verified_on"),
                   "updated_at": bindparam("p_updated_at")}
        stmt = update(H).where(H.c.id == bindparam("p_id")).values(values)
        keys = ["p_id", *(f"p_{n}" for n in compared), "p_version", "p_verified_on", "p_updated_at"]
        columns = [reg["id"][at][touched].astype(np.int64).tolist(), *(state[n].tolist() for n in compared),
                   version.tolist(), list(verified), [self.now] * len(touched)]
        self.conn.execute(stmt, [dict(zip(keys, row)) for row in zip(*columns)])

    def _update_members(self, m_upd, m_ids, pos, fields_, apply, cur, prop) -> None:
        touched = np.unique(pos[apply])
        if len(touched) == 0:
            return
        names = list(prop)
        state = {}
        for name in names:
            moved = np.zeros(len(m_upd), dtype=bool)
            moved[pos[apply & np.equal(fields_, name)]] = True
            state[name] = np.where(moved, prop[name], cur[name])[touched]
        I = Individual.__table__
        values = {name: bindparam(f"p_{name}") for name in names} | {"updated_at": bindparam("p_updated_at")}
        stmt = update(I).where(I.c.id == bindparam("p_id")).values(values)
        keys = ["p_id", *(f"p_{n}" for n in names), "p_updated_at"]
        columns = [m_ids[touched].tolist(), *(state[n].tolist() for n in names), [self.now] * len(touched)]
        self.conn.execute(stmt, [dict(zip(keys, row)) for row in zip(*columns)])


def import_households(engine: Engine, households_path: Path, members_path: Path | None = None, *, actor: str,
                      source: str = "import", effective_date: date | None = None) -> ImportReport:
    """Import a households file and its members file (CSV or Parquet), or one Excel workbook with
    the sheets households and members. Valid rows land and invalid ones are reported; all in
    one transaction. Raises :class:`TransferError` for a file that cannot be imported at all."""
    if source not in vocab.SOURCES:
        raise TransferError(f"source must be one of {', '.join(vocab.SOURCES)}")
    if not actor:
        raise TransferError("an import needs the actor: who is loading the file")
    households_path = Path(households_path)
    members_path = Path(members_path) if members_path is not None else None
    hh_sheet, mem_sheet = _read_input(households_path, members_path)
    reference = hh_sheet.file if mem_sheet is None or mem_sheet.file == hh_sheet.file \
        else f"{hh_sheet.file} + {mem_sheet.file}"
    report = ImportReport(reference, source, actor, effective_date or date.today())

    hh = _parse_households(hh_sheet, _geo())
    mem = _parse_members(mem_sheet) if mem_sheet is not None else None
    try:
        with engine.begin() as conn:
            job = _Import(conn, hh, mem, report)
            job.run()
    except DBAPIError as exc:
        first = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise TransferError(f"{reference}: the database refused the import, and nothing was stored: {first}") from exc

    errors = hh.errors.report(HOUSEHOLDS, hh_sheet.rows, hh.ref)
    errors += [RowError(HOUSEHOLDS, r, "", "row", why) for r, why in hh_sheet.broken]
    if mem is not None:
        errors += mem.errors.report(MEMBERS, mem_sheet.rows, mem.ref)
        errors += [RowError(MEMBERS, r, "", "row", why) for r, why in mem_sheet.broken]
    order = {HOUSEHOLDS: 0, MEMBERS: 1}
    column = {HOUSEHOLDS: {c: i for i, c in enumerate(HOUSEHOLD_COLUMNS)},
              MEMBERS: {c: i for i, c in enumerate(MEMBER_COLUMNS)}}
    report.errors = sorted(errors, key=lambda e: (order[e.sheet], e.row, column[e.sheet].get(e.field, 99)))
    return report


# ---------------------------------------------------------------- export

_HH_SCHEMA = pa.schema([("household_ref", pa.string()), ("district", pa.string()), ("tehsil", pa.string()),
                        ("uc", pa.string()), ("urban", pa.bool_()), ("address", pa.string()),
                        *((n, _ARROW_TYPES[HOUSEHOLD_FIELDS[n].kind]) for n in _HH_REST)])
_MEMBER_SCHEMA = pa.schema([("household_ref", pa.string()), ("roster_line", pa.int64()), ("cnic", pa.string()),
                            ("id_document", pa.string()),
                            *((n, _ARROW_TYPES[f.kind]) for n, f in INDIVIDUAL_FIELDS.items()),
                            ("date_of_death", pa.date32())])


def _export_sql(district_id: int | None) -> tuple[str, str, str, str]:
    where_h = f" WHERE h.district_id = {int(district_id)}" if district_id is not None else ""
    where_i = f" WHERE i.district_id = {int(district_id)}" if district_id is not None else ""
    hh_cols = ", ".join(f"h.{n}" for n in ("urban", "address", *_HH_REST))
    households = (f"SELECT h.ref, d.name, t.name, u.name, {hh_cols} FROM household h "
                  "JOIN district d ON d.id = h.district_id JOIN tehsil t ON t.id = h.tehsil_id "
                  f"LEFT JOIN union_council u ON u.id = h.uc_id{where_h} ORDER BY h.id")
    m_cols = ", ".join(f"i.{n}" for n in _MEMBER_SCHEMA.names[1:])
    members = (f"SELECT h.ref, {m_cols} FROM individual i JOIN household h ON h.id = i.household_id"
               f"{where_i} ORDER BY i.household_id, i.roster_line, i.id")
    return (households, members, f"SELECT count(*) FROM household h{where_h}",
            f"SELECT count(*) FROM individual i{where_i}")


def _sql_batches(conn, sql: str, schema: pa.Schema, rows_per_batch: int = 100_000) -> Iterator[pa.RecordBatch]:
    """A query's rows as Arrow record batches: COPY on PostgreSQL, fetchmany on SQLite."""
    if conn.dialect.name == "postgresql":
        with tempfile.TemporaryFile() as tmp:
            raw = conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
                for block in copy:
                    tmp.write(block)
            if tmp.tell() == 0:
                return
            tmp.seek(0)
            reader = pacsv.open_csv(
                tmp, read_options=pacsv.ReadOptions(column_names=schema.names, block_size=16 << 20),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(column_types=dict(zip(schema.names, schema.types)),
                                                     true_values=["t"], false_values=["f"], null_values=[""],
                                                     strings_can_be_null=True, quoted_strings_can_be_null=False))
            for batch in reader:
                yield batch
        return
    result = conn.exec_driver_sql(sql)
    while rows := result.fetchmany(rows_per_batch):
        arrays = []
        for col, typ in zip(zip(*rows), schema.types):
            if pa.types.is_boolean(typ):
                arrays.append(pc.cast(pa.array(col, pa.int64()), pa.bool_()))
            elif pa.types.is_date(typ):
                arrays.append(pc.cast(pa.array(col, pa.string()), pa.date32()))
            else:
                arrays.append(pa.array(col, typ))
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _present(batch: pa.RecordBatch, fmt: str) -> pa.RecordBatch:
    """The written form: CNICs as NNNNN-NNNNNNN-N; yes/no for flags outside Parquet."""
    cols, names = [], batch.schema.names
    for name, col in zip(names, batch.columns):
        if name == "cnic":
            col = _join(pc.utf8_slice_codeunits(col, 0, 5), pc.utf8_slice_codeunits(col, 5, 12),
                        pc.utf8_slice_codeunits(col, 12, 13), sep="-")
        elif fmt != "parquet" and pa.types.is_boolean(col.type):
            col = pc.if_else(col, "yes", "no")
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=names)


def _written_schema(schema: pa.Schema, fmt: str) -> pa.Schema:
    if fmt == "parquet":
        return schema
    return pa.schema([(f.name, pa.string() if pa.types.is_boolean(f.type) else f.type) for f in schema])


def _write_table_file(path: Path, fmt: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
    out_schema = _written_schema(schema, fmt)
    writer = (pacsv.CSVWriter(path, out_schema) if fmt == "csv"
              else pq.ParquetWriter(path, out_schema, compression="zstd"))
    try:
        for batch in batches:
            writer.write_batch(pa.RecordBatch.from_arrays(_present(batch, fmt).columns, schema=out_schema))
    finally:
        writer.close()


def _write_xlsx(path: Path, sheets: list[tuple[str, pa.Schema, Iterator[pa.RecordBatch]]]) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    for name, schema, batches in sheets:
        ws = wb.create_sheet(name)
        ws.append(schema.names)
        for batch in batches:
            batch = _present(batch, "xlsx")
            for row in zip(*(c.to_pylist() for c in batch.columns)):  # the file writer walks rows
                ws.append(row)
    wb.save(path)


def export_households(engine: Engine, out_path: Path, *, district_id: int | None = None,
                      fmt: str | None = None) -> ExportReport:
    """Write households and members (all, or one district's) in the import layout: ``.csv`` and
    ``.parquet`` as ``<stem>_households`` and ``<stem>_members`` files, ``.xlsx`` as one workbook."""
    out_path = Path(out_path)
    fmt = _format_of(out_path, fmt)
    if district_id is not None and all(d.id != int(district_id) for d in geography.districts()):
        raise TransferError(f"there is no district with id {district_id}")
    suffix = {"csv": ".csv", "parquet": ".parquet", "xlsx": ".xlsx"}[fmt]
    stem = out_path.stem if out_path.suffix.lower() in _FORMATS else out_path.name
    if fmt == "xlsx":
        targets = [out_path.with_name(stem + suffix)]
    else:
        targets = [out_path.with_name(f"{stem}_{HOUSEHOLDS}{suffix}"), out_path.with_name(f"{stem}_{MEMBERS}{suffix}")]
    if not targets[0].parent.is_dir():
        raise TransferError(f"cannot write {targets[0].name}: the folder {targets[0].parent} does not exist")
    hh_sql, mem_sql, hh_count_sql, mem_count_sql = _export_sql(district_id)
    parts = [t.with_name(t.name + ".part") for t in targets]
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":  # both sheets from one snapshot
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                n_hh = int(conn.exec_driver_sql(hh_count_sql).scalar_one())
                n_mem = int(conn.exec_driver_sql(mem_count_sql).scalar_one())
                if fmt == "xlsx":
                    if max(n_hh, n_mem) >= _EXCEL_MAX_ROWS:
                        raise TransferError(f"{targets[0].name}: {max(n_hh, n_mem):,} rows do not fit in an Excel "
                                            f"sheet (at most {_EXCEL_MAX_ROWS - 1:,}); export as .csv or .parquet")
                    _write_xlsx(parts[0], [(HOUSEHOLDS, _HH_SCHEMA, _sql_batches(conn, hh_sql, _HH_SCHEMA)),
                                           (MEMBERS, _MEMBER_SCHEMA, _sql_batches(conn, mem_sql, _MEMBER_SCHEMA))])
                else:
                    _write_table_file(parts[0], fmt, _HH_SCHEMA, _sql_batches(conn, hh_sql, _HH_SCHEMA))
                    _write_table_file(parts[1], fmt, _MEMBER_SCHEMA, _sql_batches(conn, mem_sql, _MEMBER_SCHEMA))
        for part, target in zip(parts, targets):
            os.replace(part, target)
    except OSError as exc:
        raise TransferError(f"cannot write {targets[0].name}: {exc.strerror or exc}") from None
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return ExportReport(targets, fmt, district_id, n_hh, n_mem)
