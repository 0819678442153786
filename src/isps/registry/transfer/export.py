"""Writing households and members out in the import layout (CSV, Parquet, Excel)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import Engine

from isps.registry import geography
from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS
from isps.registry.transfer.arrays import _ARROW_TYPES, _join
from isps.registry.transfer.cells import append_rows, spreadsheet_safe
from isps.registry.transfer.layout import _EXCEL_MAX_ROWS, _FORMATS, _HH_REST, HOUSEHOLDS, MEMBERS, _format_of
from isps.registry.transfer.report import ExportReport, TransferError


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
    """The written form: CNICs as NNNNN-NNNNNNN-N; yes/no for flags outside Parquet; text a
    spreadsheet opens safely in CSV and Excel (:mod:`.cells`). Parquet keeps the stored values:
    no spreadsheet runs it, and it is the lossless copy."""
    cols, names = [], batch.schema.names
    for name, col in zip(names, batch.columns):
        if name == "cnic":
            col = _join(pc.utf8_slice_codeunits(col, 0, 5), pc.utf8_slice_codeunits(col, 5, 12),
                        pc.utf8_slice_codeunits(col, 12, 13), sep="-")
        elif fmt != "parquet" and pa.types.is_boolean(col.type):
            col = pc.if_else(col, "yes", "no")
        elif fmt != "parquet":
            col = spreadsheet_safe(col)
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=names)


def _written_schema(schema: pa.Schema, fmt: str) -> pa.Schema:
    if fmt == "parquet":
        return schema
    return pa.schema([(f.name, pa.string() if pa.types.is_boolean(f.type) else f.type) for f in schema])


def _write_table_file(path: Path, fmt: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
    out_schema = _written_schema(schema, fmt)
    # every value quoted, quotes doubled (OWASP): a cell's text can never spill into the next one
    writer = (pacsv.CSVWriter(path, out_schema, write_options=pacsv.WriteOptions(quoting_style="all_valid"))
              if fmt == "csv" else pq.ParquetWriter(path, out_schema, compression="zstd"))
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
            append_rows(ws, _present(batch, "xlsx").columns)
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
