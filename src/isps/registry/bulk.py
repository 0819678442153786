"""Set-based loading of Arrow tables into the registry's tables.

PostgreSQL gets ``COPY ... FROM STDIN`` (the fastest path it has); SQLite gets one
``executemany`` per table inside the caller's transaction. Either way the caller's
transaction decides: a failure leaves nothing half-written.
"""

from __future__ import annotations

import io
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, text


def insert_arrow(conn: Connection, table: str, data: pa.Table) -> int:
    if data.num_rows == 0:
        return 0
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, table, data)
    else:
        _executemany(conn, table, data)
    return data.num_rows


def _copy_postgres(conn: Connection, table: str, data: pa.Table) -> None:
    buf = io.BytesIO()
    pacsv.write_csv(data, buf, write_options=pacsv.WriteOptions(include_header=False, batch_size=65_536))
    cols = ", ".join(data.column_names)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT csv)") as copy:
            view = buf.getbuffer()
            step = 1 << 20
            for i in range(0, len(view), step):
                copy.write(view[i:i + step])


def _sqlite_column(col: pa.ChunkedArray) -> list:
    if pa.types.is_date(col.type) or pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.string())
    return col.to_pylist()


def _executemany(conn: Connection, table: str, data: pa.Table) -> None:
    cols = data.column_names
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
    raw = conn.connection.driver_connection
    step = 200_000
    for lo in range(0, data.num_rows, step):
        part = data.slice(lo, step)
        rows = zip(*(_sqlite_column(part.column(c)) for c in cols))
        raw.executemany(sql, rows)


@contextmanager
def deferred_constraints(conn: Connection, tables: list[str]):
    """Load a large volume into PostgreSQL the way pg_restore does: drop the loaded tables'
    secondary indexes and foreign keys, COPY, then rebuild the indexes and re-check every
    foreign key in one set-based pass (``NOT VALID`` + ``VALIDATE``) instead of one trigger
    per row. DDL is transactional in PostgreSQL, so a failure restores everything.

    Only for loads into a registry nobody else is writing (a first load, a rebuild): the
    caller decides. On SQLite it does nothing.
    """
    if conn.dialect.name != "postgresql":
        yield
        return
    from isps.db import Base

    meta = Base.metadata
    fks = [fk for t in tables for fk in meta.tables[t].foreign_key_constraints]
    indexes = [ix for t in tables for ix in meta.tables[t].indexes]
    for fk in fks:
        conn.execute(text(f'ALTER TABLE {fk.table.name} DROP CONSTRAINT "{fk.name}"'))
    for ix in indexes:
        conn.execute(text(f'DROP INDEX "{ix.name}"'))
    yield
    for ix in indexes:
        ix.create(conn)
    for fk in fks:
        cols = ", ".join(c.name for c in fk.columns)
        ref_cols = ", ".join(e.column.name for e in fk.elements)
        conn.execute(text(f'ALTER TABLE {fk.table.name} ADD CONSTRAINT "{fk.name}" FOREIGN KEY ({cols}) '
                          f'REFERENCES {fk.referred_table.name} ({ref_cols}) NOT VALID'))
        conn.execute(text(f'ALTER TABLE {fk.table.name} VALIDATE CONSTRAINT "{fk.name}"'))
