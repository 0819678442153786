"""Reading CSV, Parquet and Excel files into Arrow tables of text, with the row numbers the user sees."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from isps.registry.fields import as_text
from isps.registry.transfer.arrays import _np
from isps.registry.transfer.cells import unescape
from isps.registry.transfer.layout import (HOUSEHOLD_COLUMNS, HOUSEHOLD_OPTIONAL, HOUSEHOLDS, MEMBER_COLUMNS,
                                           MEMBER_OPTIONAL, MEMBERS, _format_of)
from isps.registry.transfer.report import TransferError


# ---------------------------------------------------------------- reading files

@dataclass
class _Sheet:
    name: str
    file: str
    table: pa.Table
    rows: np.ndarray                                        # row number per table row, as the user sees it
    broken: list[tuple[int, str]] = field(default_factory=list)  # rows the reader could not split


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
    for sheet in (hh, mem):  # the quote an export put before formula-like text comes off again
        if sheet is not None and _format_of(Path(sheet.file)) != "parquet":
            sheet.table = pa.table({n: unescape(sheet.table[n].combine_chunks()) for n in sheet.table.column_names})
    hh = _prepare(hh, HOUSEHOLD_COLUMNS, HOUSEHOLD_OPTIONAL)
    if hh.table.num_rows == 0 and not hh.broken:
        raise TransferError(f"{hh.file} ({HOUSEHOLDS}): there are no household rows below the header")
    if mem is not None:
        mem = _prepare(mem, MEMBER_COLUMNS, MEMBER_OPTIONAL)
    return hh, mem
