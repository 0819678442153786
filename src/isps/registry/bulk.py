"""Set-based loading of Arrow tables into the registry's tables.

PostgreSQL gets ``COPY ... FROM STDIN`` (the fastest path it has); SQLite gets one
``executemany`` per table inside the caller's transaction. Either way the caller's
transaction decides: a failure leaves nothing half-written. :func:`swap_in_partition` builds a
whole partition of a partitioned table (PostgreSQL) as one new table, swapped in.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session


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


def swap_in_partition(session: Session, parent: str, partition: str, key: str, value: int, select_sql: str,
                      params: dict, *, not_null: Sequence[str], primary_key: Sequence[str],
                      indexes: Mapping[str, str], foreign_keys: Mapping[str, str],
                      defaults: Mapping[str, str] | None = None, replace: bool = False) -> int:
    """Materialise ``select_sql`` as the partition of ``parent`` (PostgreSQL, partitioned by
    ``key`` IN (``value``)) and return how many rows it holds.

    Why not ``INSERT INTO parent SELECT``: PostgreSQL never runs an INSERT's SELECT in parallel,
    and a million inserted rows cost a million foreign-key trigger calls and a million insertions
    into every index. One table swap costs one ``CREATE TABLE AS`` (parallel where the planner
    sees fit), one scan for the NOT NULLs and the CHECK on ``key`` (which spares ATTACH a scan of
    its own), each index built in bulk after the load, each foreign key checked by one statement,
    and ANALYZE before the attach (the planner must know the new rows' spread; done before, it
    does not lengthen the lock the attach takes). Readers of ``parent`` keep reading until the
    attach, which locks it (catalogue changes only) until the commit.

    ``select_sql`` is the full SELECT, its columns named and cast as the partition's.
    ``indexes`` maps an index's name suffix (``{partition}_{suffix}``) to its column list;
    ``foreign_keys`` maps a column to what it references (``"pmt_model (id)"``); ``defaults``
    maps a column to its default expression. With ``replace`` the partition already may exist
    (its rows also may sit in ``{parent}_default``): the new rows are built beside it as
    ``{partition}_new`` and only then is the old one dropped, its rows deleted from the default
    partition and the new one renamed into its place; without, ``partition`` must be new.

    Names (part of the schema): the primary key ``{partition}_pkey``, the CHECK
    ``ck_{partition}_{key without _id}``, the foreign keys ``fk_{partition}_{column}``.
    The caller holds whatever lock serialises builders of the same partition.
    """
    value = int(value)
    target = f"{partition}_new" if replace else partition
    x = session.execute
    x(text("SET LOCAL maintenance_work_mem = '256MB'"))  # room to sort the index builds in memory
    if replace:
        x(text(f"DROP TABLE IF EXISTS {target}"))
    n = x(text(f"CREATE TABLE {target} AS {select_sql}"), params).rowcount
    alters = [f"ALTER {c} SET NOT NULL" for c in not_null]
    alters += [f"ALTER {c} SET DEFAULT {d}" for c, d in (defaults or {}).items()]
    alters.append(f"ADD CONSTRAINT ck_{partition}_{key.removesuffix('_id')} CHECK ({key} = {value})")
    x(text(f"ALTER TABLE {target} " + ", ".join(alters)))  # one scan checks them all
    x(text(f"ALTER TABLE {target} ADD CONSTRAINT {target}_pkey PRIMARY KEY ({', '.join(primary_key)})"))
    for suffix, columns in indexes.items():
        x(text(f"CREATE INDEX {target}_{suffix} ON {target} ({columns})"))
    for column, ref in foreign_keys.items():
        x(text(f"ALTER TABLE {target} ADD CONSTRAINT fk_{partition}_{column} FOREIGN KEY ({column}) REFERENCES {ref}"))
    x(text(f"ANALYZE {target}"))
    if replace:  # the swap: from here to the commit, parent is locked (catalogue changes only)
        x(text(f"DROP TABLE IF EXISTS {partition}"))
        x(text(f"DELETE FROM {parent}_default WHERE {key} = :v"), {"v": value})
        x(text(f"ALTER TABLE {target} RENAME TO {partition}"))
        for suffix in ["pkey", *indexes]:
            x(text(f"ALTER INDEX {target}_{suffix} RENAME TO {partition}_{suffix}"))
    x(text(f"ALTER TABLE {parent} ATTACH PARTITION {partition} FOR VALUES IN ({value})"))
    return n
