"""The feed framework: read a delivery, validate it column-wise, apply it in one transaction.

A *delivery* is one file (CSV or Parquet) or one API JSON batch of one named feed. It is

* **validated column by column** with :func:`isps.registry.fields.parse_column` and Arrow/NumPy
  set operations (no Python loop over rows); every rejected row is reported with its row number,
  the record's own reference, the field and the reason (CNICs masked);
* **idempotent**: a delivery is known by ``(feed, reference)`` and each record by the sender's
  ``record_ref``; re-delivering a file, or a record in another file, changes nothing;
* **applied in one transaction**, set-based: the adapter turns valid rows into candidate field
  changes (and rows of its own tables); the framework stages them, reads the current values, the
  newest history and the declared source precedence with a few joins, then writes ``value_change``
  rows, moves the current state with ``UPDATE ... FROM`` per field, records conflicts and writes the
  outbox events (``household.changed``, ``member.deceased``) — as :mod:`isps.registry.service` does
  for one edit: late news (an older effective date) is kept as history without overwriting a newer
  value, and a source of lower precedence for a field never overwrites a value given by a higher one
  (a ``source_conflict`` row is recorded instead, listable with :func:`list_conflicts`).

Re-scoring is a separate step: :func:`after_delivery` runs ``targeting.pmt.process_events``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, bindparam, column, func, insert, select, table, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from isps.db import transaction
from isps.registry import cnic as cnic_rules
from isps.registry import events
from isps.registry.bulk import insert_arrow
from isps.registry.fields import Field, as_text, parse_column
from isps.registry.models import Household, IngestBatch, Individual, ValueChange
from isps.registry.transfer import TransferError, _mask_cnics, _parse_cnic, _read_csv, _read_parquet
from isps.registry.transfer.arrays import _as_text_values as text_values, _np as np_of, _say
from isps.registry.transfer.cells import write_report_csv
from isps.registry.transfer.report import RowErrors
from isps.interop.models import FeedDelivery, SourceConflict

RECORD_REF = Field("record_ref", "text", max_len=80)


class FeedError(ValueError):
    """A delivery that cannot be applied at all (unknown feed, missing columns, unreadable file)."""


class DeliveryConflict(FeedError):
    """The delivery's records (or its reference) were committed by another delivery while this one was
    being applied: nothing of this one was applied, nothing is doubled. Sending it again applies what
    the other did not carry and reports the rest as repeated."""


def _unique_violation(exc: BaseException) -> bool:
    """A unique key refused the write: SQLAlchemy's IntegrityError, or the driver's own error from a
    COPY (PostgreSQL SQLSTATE 23505) that SQLAlchemy does not wrap."""
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc, "sqlstate", None) == "23505" or type(exc).__name__ in ("UniqueViolation", "IntegrityError")


def _records_table(records: list) -> pa.Table:
    """API records as a table whose columns are the union of every record's keys, in first-seen order:
    a key the first record lacks is a column all the same (null where a record has no value)."""
    bad = next((i for i, r in enumerate(records, 1) if not isinstance(r, dict)), None)
    if bad is not None:
        raise FeedError(f"record {bad} is not an object of field names and values")
    names = list(dict.fromkeys(str(k) for r in records for k in r))
    try:
        return pa.table({k: pa.array([r.get(k) for r in records]) for k in names})
    except (pa.ArrowException, OverflowError, TypeError, ValueError):  # mixed types in a column: text, parsed later
        return pa.table({k: pa.array([None if r.get(k) is None else str(r.get(k)) for r in records], pa.string())
                         for k in names})


# ---------------------------------------------------------------- the report

@dataclass(frozen=True)
class FeedRowError:
    row: int            # as the sender sees it: CSV header is row 1; Parquet and API records are 1-based
    record_ref: str
    field: str
    reason: str

    def __str__(self) -> str:
        ref = f" (record {self.record_ref})" if self.record_ref else ""
        return f"row {self.row}{ref}: {self.field}: {self.reason}"


@dataclass
class FeedReport(RowErrors):
    feed: str
    reference: str
    actor: str
    delivery_id: int | None = None
    batch_id: int | None = None
    already_applied: bool = False      # the whole delivery was applied before: nothing changed
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    repeated: int = 0                   # records applied before (by their record_ref), skipped
    value_changes: int = 0              # history rows written
    applied: int = 0                    # field changes that moved the current state
    unchanged: int = 0                  # field changes equal to the current value
    late: int = 0                       # late news: kept as history only
    conflicts: int = 0                  # lower-precedence values not taken
    rows_written: dict = field(default_factory=dict)  # per table of the adapter (readings, accounts, ...)
    events: int = 0
    errors: list[FeedRowError] = field(default_factory=list)

    def counts(self) -> dict:
        d = asdict(self)
        d.pop("errors")
        return d

    def summary(self) -> str:
        if self.already_applied:
            return f"{self.feed} {self.reference}: applied before as delivery {self.delivery_id}; nothing changed"
        out = [f"{self.feed} {self.reference}: delivery {self.delivery_id} by {self.actor}",
               f"  {self.records} records: {self.accepted} accepted, {self.rejected} rejected, "
               f"{self.repeated} applied before",
               f"  field changes: {self.applied} applied, {self.late} late (history only), {self.unchanged} unchanged, "
               f"{self.conflicts} conflicts; history rows {self.value_changes}; events {self.events}"]
        if self.rows_written:
            out.append("  rows written: " + ", ".join(f"{k} {v}" for k, v in self.rows_written.items()))
        return "\n".join(out)

    def write_csv(self, path: Path | str) -> Path:
        return write_report_csv(path, ["row", "record_ref", "field", "reason"],
                                ((e.row, e.record_ref, e.field, e.reason) for e in self.errors))


# ---------------------------------------------------------------- feed definitions

@dataclass(frozen=True)
class Feed:
    name: str
    title: str
    source: str                           # the registry source its changes carry: nadra | partner
    columns: tuple[Field, ...]            # besides record_ref; kind "cnic" is checked as a CNIC
    effective: str                        # the column that gives each record's effective date
    apply: Callable                       # apply(job: Job) -> None
    generate: Callable                    # generate(session, n, seed) -> pa.Table
    doc: str = ""

    def required(self) -> list[str]:
        return ["record_ref", *(c.name for c in self.columns if c.required)]


FEEDS: dict[str, Feed] = {}


def register(feed: Feed) -> Feed:
    FEEDS[feed.name] = feed
    return feed


def feed_named(name: str) -> Feed:
    from isps.interop import feeds as _pkg  # noqa: F401 - registers the adapters

    found = FEEDS.get(name)
    if found is None:
        raise FeedError(f"unknown feed '{name}'; feeds: {', '.join(sorted(FEEDS))}")
    return found


# ---------------------------------------------------------------- column helpers


def index_of(keys, values) -> np.ndarray:
    """Position of each key among ``values`` (first occurrence), -1 where absent (hash join)."""
    k = keys if isinstance(keys, pa.Array) else pa.array(list(keys) if isinstance(keys, np.ndarray) else keys)
    if len(values) == 0 or len(k) == 0:
        return np.full(len(k), -1, dtype=np.int64)
    v = values if isinstance(values, pa.Array) else pa.array(
        list(values) if isinstance(values, np.ndarray) else values, type=k.type)
    return np_of(pc.fill_null(pc.index_in(k, value_set=v), -1)).astype(np.int64)


def days(values: np.ndarray) -> np.ndarray:
    """Dates (objects) as day numbers since 1970, column-wise."""
    return np_of(pc.cast(pa.array(list(values), pa.date32()), pa.int32())).astype(np.int64)


def month_start(values: np.ndarray) -> pa.Array:
    """The first day of each date's month, column-wise."""
    d = np.asarray(np_of(pa.array(list(values), pa.date32())), dtype="datetime64[D]")
    return pa.array(d.astype("datetime64[M]").astype("datetime64[D]"))


def masked(cnics: np.ndarray) -> np.ndarray:
    """cnic.mask over a column of 13-digit numbers (None stays '')."""
    arr = pa.array([c if c else "0000000000000" for c in cnics.tolist()], pa.string()) if len(cnics) else \
        pa.array([], pa.string())
    return np_of(_mask_cnics(arr)).astype(object)


ARROW_TYPES = {"text": pa.string(), "choice": pa.string(), "bool": pa.bool_(), "int": pa.int64(),
               "float": pa.float64(), "date": pa.date32(), "cnic": pa.string()}
SQL_TYPES = {"text": "TEXT", "choice": "TEXT", "bool": "BOOLEAN", "int": "BIGINT", "float": "FLOAT",
             "date": "DATE", "cnic": "TEXT"}

# the kind of every registry column a feed may change
KINDS = {
    "household": {c.name: ("bool" if c.type.python_type is bool else "int" if c.type.python_type is int else
                           "float" if c.type.python_type is float else "date" if c.type.python_type is date
                           else "text") for c in Household.__table__.columns},
    "individual": {c.name: ("bool" if c.type.python_type is bool else "int" if c.type.python_type is int else
                            "float" if c.type.python_type is float else "date" if c.type.python_type is date
                            else "text") for c in Individual.__table__.columns},
}


# ---------------------------------------------------------------- reading a delivery

@dataclass
class _Input:
    table: pa.Table
    rows: np.ndarray
    broken: list[tuple[int, str]]


def _read(path_or_records) -> _Input:
    if isinstance(path_or_records, pa.Table):
        t = path_or_records
        return _Input(t, np.arange(1, t.num_rows + 1, dtype=np.int64), [])
    if isinstance(path_or_records, dict):  # the API JSON batch: {"feed", "reference", "records": [...]}
        path_or_records = path_or_records.get("records")
        if not isinstance(path_or_records, list):
            raise FeedError("an API batch carries its records as a list under 'records'")
    if isinstance(path_or_records, list):
        if not path_or_records:
            raise FeedError("the delivery has no records")
        t = _records_table(path_or_records)
        return _Input(t, np.arange(1, t.num_rows + 1, dtype=np.int64), [])
    path = Path(path_or_records)
    try:
        if path.suffix.lower() == ".csv":
            sheet = _read_csv(path, "records")
        elif path.suffix.lower() in (".parquet", ".pq"):
            sheet = _read_parquet(path, "records")
        else:
            raise FeedError(f"{path.name}: a feed file is .csv or .parquet")
    except TransferError as exc:
        raise FeedError(str(exc)) from None
    return _Input(sheet.table, sheet.rows, sheet.broken)


def _header(t: pa.Table) -> pa.Table:
    names = [str(n).strip().lower().replace(" ", "_").replace("-", "_") for n in t.column_names]
    return t.rename_columns(names)


# ---------------------------------------------------------------- the job an adapter works on

@dataclass
class _Change:
    pos: np.ndarray            # row index in the delivery
    entity: str
    entity_id: np.ndarray
    household_id: np.ndarray
    district_id: np.ndarray
    field: str
    values: np.ndarray         # typed
    effective: np.ndarray      # dates (objects)


class Job:
    """One delivery being applied: the parsed columns, the row problems and what the adapter asks
    the framework to write. Every method works on whole columns."""

    def __init__(self, feed: Feed, conn: Connection, values: dict[str, np.ndarray], refs: np.ndarray,
                 rows: np.ndarray, live: np.ndarray, report: FeedReport, batch_id: int, delivery_id: int,
                 actor: str, reference: str) -> None:
        self.feed, self.conn, self.values, self.refs, self.rows = feed, conn, values, refs, rows
        self.live = live                      # rows still to apply (valid, not applied before)
        self.n = len(refs)
        self.report, self.batch_id, self.delivery_id = report, batch_id, delivery_id
        self.actor, self.reference = actor, reference
        self.problems: list[tuple[np.ndarray, str, object]] = []
        self.changes: list[_Change] = []
        self.extra_events: list[tuple[str, np.ndarray, np.ndarray]] = []
        self.now = datetime.now()
        self.pg = conn.dialect.name == "postgresql"
        self._temp = 0

    # -- problems
    def reject(self, mask: np.ndarray, field_name: str, reason) -> None:
        mask = np.asarray(mask, dtype=bool) & self.live
        if mask.any():
            self.problems.append((mask, field_name, reason))
            self.live = self.live & ~mask

    def col(self, name: str) -> np.ndarray:
        return self.values.get(name, np.full(self.n, None, dtype=object))

    def effective(self) -> np.ndarray:
        return self.col(self.feed.effective)

    def source_ref(self, pos: np.ndarray) -> np.ndarray:
        prefix = f"{self.feed.name} {self.reference} #"
        return (prefix + self.refs[pos].astype(str)).astype(object)

    # -- temporary tables (COPY on PostgreSQL)
    def temp(self, columns: dict[str, str], data: pa.Table) -> str:
        self._temp += 1
        name = f"feed_tmp_{self._temp}"
        self.conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        cols = ", ".join(f"{c} {t}" for c, t in columns.items())
        self.conn.execute(text(f"CREATE TEMPORARY TABLE {name} ({cols})"))
        insert_arrow(self.conn, name, data)
        if self.pg and data.num_rows > 10_000:
            self.conn.execute(text(f"ANALYZE {name}"))
        return name

    def drop(self, name: str) -> None:
        self.conn.execute(text(f"DROP TABLE IF EXISTS {name}"))

    # -- finding registry records
    def people_by_cnic(self, name: str = "cnic", *, alive: bool = True, what: str = "person") -> dict[str, np.ndarray]:
        """Match the column ``name`` (13-digit numbers) to individuals, set-based. Rows with no match,
        or with more than one (a duplicate registration), are rejected. Returns per-row arrays
        ``individual_id, household_id, district_id, relation_to_head, sex, date_of_birth, date_of_death,
        id_document`` (meaningful where ``found``)."""
        keys = self.col(name)
        pos = np.flatnonzero(self.live & np.not_equal(keys, None))
        out = {k: np.full(self.n, None, dtype=object) for k in
               ("individual_id", "household_id", "district_id", "relation_to_head", "sex", "date_of_birth",
                "date_of_death", "id_document")}
        out["found"] = np.zeros(self.n, dtype=bool)
        if len(pos) == 0:
            return out
        tmp = self.temp({"pos": "BIGINT", "k": "TEXT"},
                        pa.table({"pos": pa.array(pos, pa.int64()), "k": pa.array(keys[pos].tolist(), pa.string())}))
        t = table(tmp, column("pos"), column("k"))
        I = Individual.__table__
        rows = self.conn.execute(select(t.c.pos, I.c.id, I.c.household_id, I.c.district_id, I.c.relation_to_head,
                                        I.c.sex, I.c.date_of_birth, I.c.date_of_death, I.c.id_document)
                                 .select_from(t.join(I, I.c.cnic == t.c.k))).all()
        self.drop(tmp)
        hits = np.zeros(self.n, dtype=np.int64)
        if rows:
            cols = list(zip(*rows))
            p = np.asarray(cols[0], dtype=np.int64)
            np.add.at(hits, p, 1)
            for k, c in zip(("individual_id", "household_id", "district_id", "relation_to_head", "sex",
                             "date_of_birth", "date_of_death", "id_document"), cols[1:]):
                arr = np.empty(len(c), dtype=object)
                arr[:] = list(c)
                out[k][p] = arr
        shown = masked(keys)
        none = np.zeros(self.n, dtype=bool)
        none[pos] = hits[pos] == 0
        self.reject(none, name, _say(none, f"no {what} with CNIC ", shown, " is in the registry"))
        many = hits > 1
        self.reject(many, name, _say(many, "CNIC ", shown, " is registered ", hits,
                                     " times (a duplicate registration); resolve it before this record can apply"))
        if alive:
            dead = self.live & np.not_equal(out["date_of_death"], None)
            self.reject(dead, name, _say(dead, "the person with CNIC ", shown, " is recorded as deceased"))
        out["found"] = self.live & (hits == 1)
        return out

    def households_by_ref(self, name: str = "household_ref") -> dict[str, np.ndarray]:
        keys = self.col(name)
        pos = np.flatnonzero(self.live & np.not_equal(keys, None))
        out = {"household_id": np.full(self.n, None, dtype=object), "district_id": np.full(self.n, None, dtype=object),
               "found": np.zeros(self.n, dtype=bool)}
        if len(pos):
            tmp = self.temp({"pos": "BIGINT", "k": "TEXT"},
                            pa.table({"pos": pa.array(pos, pa.int64()),
                                      "k": pa.array(keys[pos].tolist(), pa.string())}))
            t = table(tmp, column("pos"), column("k"))
            H = Household.__table__
            rows = self.conn.execute(select(t.c.pos, H.c.id, H.c.district_id)
                                     .select_from(t.join(H, H.c.ref == t.c.k))).all()
            self.drop(tmp)
            if rows:
                p, hid, did = (np.asarray(c) for c in zip(*rows))
                p = p.astype(np.int64)
                out["household_id"][p] = hid.astype(object)
                out["district_id"][p] = did.astype(object)
                out["found"][p] = True
        missing = self.live & ~out["found"]
        self.reject(missing, name, _say(missing, "no household ", keys, " is in the registry"))
        out["found"] &= self.live
        return out

    # -- what to write
    def change(self, mask: np.ndarray, entity: str, entity_id: np.ndarray, household_id: np.ndarray,
               district_id: np.ndarray, field_name: str, values: np.ndarray, effective: np.ndarray | None = None) -> None:
        """Propose ``field_name = values`` for the rows in ``mask`` (arrays are per delivery row)."""
        pos = np.flatnonzero(np.asarray(mask, dtype=bool) & self.live)
        if len(pos) == 0:
            return
        eff = self.effective() if effective is None else effective
        self.changes.append(_Change(pos, entity, np.asarray(entity_id)[pos].astype(np.int64),
                                    np.asarray(household_id)[pos].astype(np.int64),
                                    np.asarray(district_id)[pos].astype(np.int64), field_name,
                                    np.asarray(values, dtype=object)[pos], np.asarray(eff, dtype=object)[pos]))

    def event(self, topic: str, household_ids: np.ndarray, payloads: np.ndarray) -> None:
        if len(household_ids):
            self.extra_events.append((topic, np.asarray(household_ids, dtype=np.int64), np.asarray(payloads, dtype=object)))

    def upsert(self, target: str, data: pa.Table, key: list[str], update: list[str], types: dict[str, str]) -> int:
        """INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE: the same statement on both databases."""
        if data.num_rows == 0:
            return 0
        tmp = self.temp(types, data)
        cols = ", ".join(data.column_names)
        sets = ", ".join(f"{c} = excluded.{c}" for c in update)
        action = f"DO UPDATE SET {sets}" if update else "DO NOTHING"
        self.conn.execute(text(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {tmp} WHERE true "
                               f"ON CONFLICT ({', '.join(key)}) {action}"))
        self.drop(tmp)
        self.report.rows_written[target] = self.report.rows_written.get(target, 0) + data.num_rows
        return data.num_rows

    def insert(self, target: str, data: pa.Table) -> int:
        n = insert_arrow(self.conn, target, data)
        if n:
            self.report.rows_written[target] = self.report.rows_written.get(target, 0) + n
        return n


say = _say


# ---------------------------------------------------------------- precedence

def precedence(conn) -> dict[tuple[str, str], int]:
    return {(f, s): int(r) for f, s, r in conn.execute(text("SELECT field, source, rank FROM source_precedence"))}


def _ranks(prec: dict, fields_: np.ndarray, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank, declared?) per (field, source): the field's own row, else the '*' row, else 0."""
    n = len(fields_)
    rank = np.zeros(n, dtype=np.int64)
    declared = np.zeros(n, dtype=bool)
    if n == 0:
        return rank, declared
    declared_fields = {f for f, _ in prec if f != "*"}
    keys = (fields_.astype(str).astype(object) + "\x1f" + sources.astype(str).astype(object))
    uniq, inv = np.unique(keys.astype(str), return_inverse=True)
    u_rank = np.zeros(len(uniq), dtype=np.int64)
    u_decl = np.zeros(len(uniq), dtype=bool)
    for i, k in enumerate(uniq):  # one pass per distinct (field, source), a handful
        f, s = k.split("\x1f")
        u_decl[i] = f in declared_fields
        u_rank[i] = prec.get((f, s), prec.get(("*", s), 0)) if u_decl[i] else prec.get(("*", s), 0)
    return u_rank[inv], u_decl[inv]


# ---------------------------------------------------------------- applying the changes

def _apply_changes(job: Job) -> None:
    live_changes = []
    for c in job.changes:  # rows rejected after a change was proposed do not apply
        keep = job.live[c.pos]
        if keep.all():
            live_changes.append(c)
        elif keep.any():
            live_changes.append(_Change(c.pos[keep], c.entity, c.entity_id[keep], c.household_id[keep],
                                        c.district_id[keep], c.field, c.values[keep], c.effective[keep]))
    if not live_changes:
        return
    conn, report, source = job.conn, job.report, job.feed.source
    pos = np.concatenate([c.pos for c in live_changes])
    entity = np.concatenate([np.full(len(c.pos), c.entity, dtype=object) for c in live_changes])
    eid = np.concatenate([c.entity_id for c in live_changes])
    hid = np.concatenate([c.household_id for c in live_changes])
    did = np.concatenate([c.district_id for c in live_changes])
    fname = np.concatenate([np.full(len(c.pos), c.field, dtype=object) for c in live_changes])
    eff = np.concatenate([c.effective for c in live_changes])
    new_text = np.concatenate([text_values(c.values, KINDS[c.entity][c.field]) for c in live_changes])
    m = len(pos)
    seq = np.arange(m, dtype=np.int64)

    # current values and the source that gave them, and the newest history per (record, field)
    tmp = job.temp({"seq": "BIGINT", "entity": "TEXT", "entity_id": "BIGINT", "field": "TEXT"},
                   pa.table({"seq": pa.array(seq), "entity": pa.array(entity.tolist(), pa.string()),
                             "entity_id": pa.array(eid), "field": pa.array(fname.tolist(), pa.string())}))
    t = table(tmp, column("seq"), column("entity"), column("entity_id"), column("field"))
    cur_text = np.full(m, None, dtype=object)
    base_source = np.full(m, "", dtype=object)
    base_since = np.full(m, None, dtype=object)
    batch_source = dict(conn.execute(select(IngestBatch.__table__.c.id, IngestBatch.__table__.c.source)).all())
    for ent in ("household", "individual"):
        mine = np.equal(entity, ent)
        if not mine.any():
            continue
        T = Household.__table__ if ent == "household" else Individual.__table__
        since = T.c.surveyed_on if ent == "household" else T.c.member_since
        names = sorted({c.field for c in live_changes if c.entity == ent})
        ids = np.unique(eid[mine])
        tmp_ids = job.temp({"id": "BIGINT"}, pa.table({"id": pa.array(ids, pa.int64())}))
        ti = table(tmp_ids, column("id"))
        rows = conn.execute(select(T.c.id, T.c.batch_id, since, *(T.c[f] for f in names))
                            .select_from(ti.join(T, T.c.id == ti.c.id))).all()
        job.drop(tmp_ids)
        if not rows:
            continue
        cols = list(zip(*rows))
        got = np.asarray(cols[0], dtype=np.int64)
        order = np.argsort(got)
        got = got[order]
        rows_mine = np.flatnonzero(mine)
        at = np.searchsorted(got, eid[rows_mine])
        at_ok = (at < len(got)) & (got[np.minimum(at, len(got) - 1)] == eid[rows_mine])
        rows_mine, at = rows_mine[at_ok], at[at_ok]

        def column_of(k: int) -> np.ndarray:
            arr = np.empty(len(cols[k]), dtype=object)
            arr[:] = list(cols[k])
            return arr[order]

        batch = column_of(1)
        src = np.asarray([batch_source.get(b, "") for b in np.unique(batch)], dtype=object)  # per batch, a few
        base_source[rows_mine] = src[np.searchsorted(np.unique(batch), batch[at])]
        base_since[rows_mine] = column_of(2)[at]
        for k, f in enumerate(names):
            sel = np.equal(fname[rows_mine], f)
            if sel.any():
                cur_text[rows_mine[sel]] = text_values(column_of(3 + k)[at[sel]], KINDS[ent][f])
    V = ValueChange.__table__
    hist = conn.execute(select(t.c.seq, V.c.effective_date, V.c.source, V.c.id)
                        .select_from(t.join(V, (V.c.entity == t.c.entity) & (V.c.entity_id == t.c.entity_id)
                                            & (V.c.field == t.c.field)))).all()
    job.drop(tmp)
    has_hist = np.zeros(m, dtype=bool)
    newest = np.full(m, None, dtype=object)
    cur_source = base_source.copy()
    if hist:
        hs, hd, hsrc, hidn = zip(*hist)
        hs = np.asarray(hs, dtype=np.int64)
        hd_arr = np.empty(len(hd), dtype=object)
        hd_arr[:] = list(hd)
        hd_ord = np_of(pc.cast(pa.array(list(hd_arr), pa.date32()), pa.int32())).astype(np.int64)
        order = np.lexsort((np.asarray(hidn, dtype=np.int64), hd_ord, hs))
        last = np.ones(len(order), dtype=bool)
        last[:-1] = hs[order][1:] != hs[order][:-1]
        pick = order[last]
        has_hist[hs[pick]] = True
        newest[hs[pick]] = hd_arr[pick]
        cur_source[hs[pick]] = np.asarray(hsrc, dtype=object)[pick]
    kept_since = np.where(has_hist, newest, base_since)

    found = np.not_equal(base_source, "")
    same = np.equal(cur_text, new_text) | ~found
    new_rank, declared = _ranks(precedence(conn), fname, np.full(m, source, dtype=object))
    cur_rank, _ = _ranks(precedence(conn), fname, cur_source)
    conflict = ~same & declared & (new_rank < cur_rank)
    eff32 = np_of(pc.cast(pa.array(list(eff), pa.date32()), pa.int32())).astype(np.int64)
    newest32 = np.full(m, np.iinfo(np.int64).min, dtype=np.int64)
    if has_hist.any():
        newest32[has_hist] = np_of(pc.cast(pa.array(list(newest[has_hist]), pa.date32()), pa.int32()))
    # several changes to one field of one record in this delivery: the newest (then the last row) wins
    key = np_of(pc.binary_join_element_wise(pa.array(entity.tolist()), pc.cast(pa.array(eid), pa.string()),
                                            pa.array(fname.tolist()), "|")).astype(str)
    order = np.lexsort((pos, eff32, key))
    winner = np.zeros(m, dtype=bool)
    ks = key[order]
    is_last = np.ones(m, dtype=bool)
    is_last[:-1] = ks[1:] != ks[:-1]
    winner[order[is_last]] = True
    group = np.cumsum(np.r_[True, ks[1:] != ks[:-1]]) - 1
    last_of_group = order[is_last]
    winner_of = np.empty(m, dtype=np.int64)
    winner_of[order] = last_of_group[group]
    same = same | (~winner & np.equal(new_text, new_text[winner_of]))
    conflict = conflict & ~same
    apply = ~same & ~conflict & winner & (eff32 >= newest32)
    late = ~same & ~conflict & ~apply
    report.applied += int(apply.sum())
    report.late += int(late.sum())
    report.unchanged += int(same.sum())
    report.conflicts += int(conflict.sum())
    srcref = job.source_ref(pos)

    write = apply | late
    k = int(write.sum())
    if k:
        insert_arrow(conn, "value_change", pa.table({
            "entity": pa.array(entity[write].tolist(), pa.string()),
            "entity_id": pa.array(eid[write], pa.int64()),
            "household_id": pa.array(hid[write], pa.int64()),
            "district_id": pa.array(did[write], pa.int64()),
            "field": pa.array(fname[write].tolist(), pa.string()),
            "old_value": pa.array(cur_text[write].tolist(), pa.string()),
            "new_value": pa.array(new_text[write].tolist(), pa.string()),
            "source": pa.array([source] * k, pa.string()),
            "source_ref": pa.array([s[:200] for s in srcref[write].tolist()], pa.string()),
            "effective_date": pa.array(list(eff[write]), pa.date32()),
            "actor": pa.array([job.actor] * k, pa.string()),
            "batch_id": pa.array(np.full(k, job.batch_id), pa.int64()),
        }))
        report.value_changes += k
    k = int(conflict.sum())
    if k:
        insert_arrow(conn, "source_conflict", pa.table({
            "entity": pa.array(entity[conflict].tolist(), pa.string()),
            "entity_id": pa.array(eid[conflict], pa.int64()),
            "household_id": pa.array(hid[conflict], pa.int64()),
            "district_id": pa.array(did[conflict], pa.int64()),
            "field": pa.array(fname[conflict].tolist(), pa.string()),
            "kept_value": pa.array(cur_text[conflict].tolist(), pa.string()),
            "kept_source": pa.array(cur_source[conflict].tolist(), pa.string()),
            "kept_since": pa.array(list(kept_since[conflict]), pa.date32()),
            "offered_value": pa.array(new_text[conflict].tolist(), pa.string()),
            "offered_source": pa.array([source] * k, pa.string()),
            "offered_effective": pa.array(list(eff[conflict]), pa.date32()),
            "source_ref": pa.array([s[:200] for s in srcref[conflict].tolist()], pa.string()),
            "status": pa.array(["open"] * k, pa.string()),
            "recorded_at": pa.array([job.now] * k, pa.timestamp("us")),
        }))

    # move the current state: one UPDATE ... FROM per entity, each record written once
    all_values = np.concatenate([c.values for c in live_changes])
    for ent in ("household", "individual"):
        sel_ent = apply & np.equal(entity, ent)
        if not sel_ent.any():
            continue
        ids = np.unique(eid[sel_ent])
        data, types, sets = {"id": pa.array(ids, pa.int64())}, {"id": "BIGINT"}, []
        for f in np.unique(fname[sel_ent].astype(str)).tolist():
            sel = sel_ent & np.equal(fname, f)
            kind = KINDS[ent][f]
            at = np.searchsorted(ids, eid[sel])
            flag = np.zeros(len(ids), dtype=bool)
            flag[at] = True
            vals = np.full(len(ids), None, dtype=object)
            vals[at] = all_values[sel]
            data[f"s_{f}"], types[f"s_{f}"] = pa.array(flag), "BOOLEAN"
            data[f"v_{f}"], types[f"v_{f}"] = pa.array(list(vals), ARROW_TYPES[kind]), SQL_TYPES[kind]
            sets.append(f"{f} = CASE WHEN m.s_{f} THEN m.v_{f} ELSE {ent}.{f} END")
        sets.append("updated_at = :now")
        if ent == "household":
            sets.append("version = household.version + 1")
        tmp = job.temp(types, pa.table(data))
        conn.execute(text(f"UPDATE {ent} SET {', '.join(sets)} FROM {tmp} m WHERE {ent}.id = m.id"),
                     {"now": job.now})
        job.drop(tmp)

    # events: household.changed per household whose current state moved; member.deceased per death
    topics, aggs, payloads = [], [], []
    if apply.any():
        names = np.where(np.equal(entity[apply], "individual"), "member." + fname[apply].astype(str),
                         fname[apply].astype(str)).astype(object)
        grouped = (pa.table({"household_id": pa.array(hid[apply], pa.int64()), "field": pa.array(names.tolist())})
                   .group_by("household_id").aggregate([("field", "distinct")]))
        fields_json = pc.binary_join(grouped["field_distinct"], '", "')
        topics.append(np.full(grouped.num_rows, events.HOUSEHOLD_CHANGED, dtype=object))
        aggs.append(np_of(grouped["household_id"]).astype(np.int64))
        payloads.append(np_of(pc.binary_join_element_wise(
            f'{{"batch_id": {job.batch_id}, "feed": "{job.feed.name}", "fields": ["', fields_json, '"]}', "")).astype(object))
        died = apply & np.equal(fname, "date_of_death") & np.not_equal(new_text, None)
        if died.any():
            topics.append(np.full(int(died.sum()), events.MEMBER_DECEASED, dtype=object))
            aggs.append(hid[died])
            payloads.append((f'{{"batch_id": {job.batch_id}, "feed": "{job.feed.name}", "individual_id": '
                             + eid[died].astype(str).astype(object) + ', "date_of_death": "'
                             + new_text[died].astype(str).astype(object) + '"}').astype(object))
    job._event_parts = (topics, aggs, payloads)


BURST = 1_000  # events in one delivery above which the outbox statistics are refreshed


def _write_events(job: Job) -> None:
    topics, aggs, payloads = getattr(job, "_event_parts", ([], [], []))
    for topic, hids, pl in job.extra_events:
        topics.append(np.full(len(hids), topic, dtype=object))
        aggs.append(hids)
        payloads.append(pl)
    if not topics:
        return
    topic = np.concatenate(topics)
    insert_arrow(job.conn, "outbox_event", pa.table({
        "topic": pa.array(topic.tolist(), pa.string()),
        "aggregate": pa.array(["household"] * len(topic), pa.string()),
        "aggregate_id": pa.array(np.concatenate(aggs), pa.int64()),
        "payload": pa.array(np.concatenate(payloads).tolist(), pa.string()),
        "recorded_at": pa.array([job.now] * len(topic), pa.timestamp("us")),
    }))
    job.report.events += len(topic)
    if job.conn.dialect.name == "postgresql" and len(topic) > BURST:
        # a burst of events into an outbox the planner last saw small: the consumers' statements
        # (PMT re-scoring joins households to the events past its cursor) are planned from these
        # statistics, and with an empty outbox in mind they re-aggregate the members per event
        # (a 15,639-household re-score after a labour upload took 298 s instead of 1.8 s)
        job.conn.execute(text("ANALYZE outbox_event"))


def write_changes(job: Job) -> None:
    """Apply the field changes a job proposed and write their outbox events: the one set-based path
    by which a door other than a feed (the labour registries, :mod:`isps.labour`) changes the
    registry, with the feeds' rules for precedence, late news, history and events."""
    _apply_changes(job)
    _write_events(job)


# ---------------------------------------------------------------- the entry point

def _parse(feed: Feed, t: pa.Table) -> tuple[dict[str, np.ndarray], list[tuple[np.ndarray, str, object]]]:
    values: dict[str, np.ndarray] = {}
    problems = []
    cols = set(t.column_names)
    for spec in (RECORD_REF, *feed.columns):
        if spec.name not in cols:
            values[spec.name] = np.full(t.num_rows, None, dtype=object)
            continue
        if spec.kind == "cnic":
            vals, reasons = _parse_cnic(t[spec.name], np.full(t.num_rows, None, dtype=object))
            empty = np_of(pc.equal(as_text(t[spec.name]), "")).astype(bool)
            if spec.required:
                reasons = np.where(empty & np.equal(reasons, None), "is required", reasons)
        else:
            vals, reasons = parse_column(spec, t[spec.name])
        values[spec.name] = vals
        bad = np.not_equal(reasons, None)
        if bad.any():
            problems.append((bad, spec.name, reasons))
    return values, problems


@contextmanager
def _clash_explained(engine: Engine, spec: Feed, reference: str, refs: np.ndarray) -> Iterator[None]:
    """Around a delivery's transaction: when a unique key refuses it because another delivery committed
    the same reference or records meanwhile (the transaction is rolled back: nothing doubled, nothing of
    this one applied), raise a :class:`DeliveryConflict` naming the delivery that holds them."""
    with transaction(engine) as s:  # only a delivery committed after this one began can have clashed
        since = s.scalar(select(func.max(FeedDelivery.id))) or 0
    try:
        yield
    except Exception as exc:
        if not _unique_violation(exc):
            raise
        sample = [str(r) for r in refs[:500].tolist() if r]
        with transaction(engine) as s:
            holder = s.execute(select(FeedDelivery.id, FeedDelivery.reference).where(
                FeedDelivery.feed == spec.name, FeedDelivery.reference == reference)).first()
            if holder is None and sample:
                holder = s.execute(text("SELECT delivery_id, source_ref FROM feed_record WHERE feed = :f "
                                        "AND delivery_id > :since AND source_ref IN :refs ORDER BY delivery_id LIMIT 1")
                                   .bindparams(bindparam("refs", expanding=True)),
                                   {"f": spec.name, "since": since, "refs": sample}).first()
        if holder is None:  # not a clash of this delivery's keys: not ours to explain
            raise
        raise DeliveryConflict(
            f"{spec.name} {reference}: this delivery's content was already received as delivery {holder[0]} "
            f"({'the same reference' if holder[1] == reference else 'record ' + str(holder[1]) + ' and others'}) "
            f"while this one was being applied; nothing of this one was applied and nothing is doubled. "
            f"Send it again to apply any records delivery {holder[0]} did not carry.") from None


def apply_delivery(engine: Engine, feed: str, path_or_records, *, reference: str, actor: str) -> FeedReport:
    """Apply one delivery of ``feed`` (a CSV or Parquet path, an API batch dict, a list of record dicts
    or an Arrow table) in one transaction and return its row-by-row report. A delivery applied before
    (same feed and reference) changes nothing. Re-scoring is a separate step: :func:`after_delivery`."""
    spec = feed_named(feed)
    if not reference:
        raise FeedError("a delivery needs its reference (the sender's file name or batch id)")
    if not actor:
        raise FeedError("a delivery needs the actor: who is applying it")
    reference = reference[:200]
    report = FeedReport(spec.name, reference, actor)
    with transaction(engine) as s:
        prior = s.scalar(select(FeedDelivery).where(FeedDelivery.feed == spec.name,
                                                    FeedDelivery.reference == reference))
        if prior is not None:
            report.already_applied = True
            report.delivery_id, report.batch_id, report.records = prior.id, prior.batch_id, prior.records
            return report
    if isinstance(path_or_records, dict) and path_or_records.get("feed") not in (None, spec.name):
        raise FeedError(f"this batch is for the feed '{path_or_records.get('feed')}', not '{spec.name}'")
    inp = _read(path_or_records)
    t = _header(inp.table)
    missing = [c for c in spec.required() if c not in t.column_names]
    if missing:
        raise FeedError(f"{spec.name} {reference}: the columns {', '.join(missing)} are missing; "
                        f"a {spec.name} delivery has {', '.join(['record_ref', *(c.name for c in spec.columns)])}")
    n = t.num_rows
    values, problems = _parse(spec, t)
    refs = np.where(np.equal(values["record_ref"], None), "", values["record_ref"]).astype(object)
    report.records = n + len(inp.broken)
    live = np.ones(n, dtype=bool)
    for mask, _, _ in problems:
        live &= ~mask
    # a record_ref once in the delivery
    if n:
        order = np.argsort(refs.astype(str), kind="stable")
        sr = refs[order].astype(str)
        again = np.zeros(n, dtype=bool)
        again[order[1:]] = (sr[1:] == sr[:-1]) & (sr[1:] != "")
        first = np.zeros(n, dtype=np.int64)
        starts = np.r_[True, sr[1:] != sr[:-1]]
        first[order] = inp.rows[order][np.maximum.accumulate(np.where(starts, np.arange(n), 0))]
        again &= live
        if again.any():
            problems.append((again, "record_ref", _say(again, "repeats the record_ref of row ", first)))
            live &= ~again
    eff = values.get(spec.effective)
    effective_date = max([d for d in eff[live].tolist() if d is not None], default=date.today()) \
        if eff is not None and live.any() else date.today()

    with _clash_explained(engine, spec, reference, refs), transaction(engine) as s:
        conn = s.connection()
        if conn.dialect.name == "postgresql":
            # the delivery's keys are probed by index (CNIC, ids): tell the planner that random reads
            # cost what they do on SSD-class storage, or it scans million-row tables to hash-join them
            conn.execute(text("SET LOCAL random_page_cost = 1.1"))
        batch_id = conn.execute(insert(IngestBatch.__table__).values(
            source=spec.source, reference=f"feed {spec.name}: {reference}"[:200], effective_date=effective_date,
            actor=actor).returning(IngestBatch.__table__.c.id)).scalar_one()
        delivery_id = conn.execute(insert(FeedDelivery.__table__).values(
            feed=spec.name, reference=reference, actor=actor, batch_id=batch_id, records=report.records)
            .returning(FeedDelivery.__table__.c.id)).scalar_one()
        report.delivery_id, report.batch_id = delivery_id, batch_id
        job = Job(spec, conn, values, refs, inp.rows, live, report, batch_id, delivery_id, actor, reference)
        # records applied before, by their own reference
        pos = np.flatnonzero(job.live)
        if len(pos):
            tmp = job.temp({"pos": "BIGINT", "k": "TEXT"},
                           pa.table({"pos": pa.array(pos, pa.int64()), "k": pa.array(refs[pos].tolist(), pa.string())}))
            done = [r[0] for r in conn.execute(text(
                f"SELECT t.pos FROM {tmp} t JOIN feed_record r ON r.feed = :feed AND r.source_ref = t.k"),
                {"feed": spec.name})]
            job.drop(tmp)
            if done:
                job.live[np.asarray(done, dtype=np.int64)] = False
                report.repeated = len(done)
        spec.apply(job)
        _apply_changes(job)
        _write_events(job)
        accepted = np.flatnonzero(job.live)
        insert_arrow(conn, "feed_record", pa.table({
            "feed": pa.array([spec.name] * len(accepted), pa.string()),
            "source_ref": pa.array(refs[accepted].tolist(), pa.string()),
            "delivery_id": pa.array(np.full(len(accepted), delivery_id), pa.int64())}))
        report.accepted = len(accepted)
        problems.extend(job.problems)
        rejected = np.zeros(n, dtype=bool)
        for mask, _, _ in problems:
            rejected |= mask
        report.rejected = int(rejected.sum()) + len(inp.broken)
        summary = report.counts()
        conn.execute(FeedDelivery.__table__.update().where(FeedDelivery.__table__.c.id == delivery_id).values(
            accepted=report.accepted, rejected=report.rejected, summary=summary))
        conn.execute(IngestBatch.__table__.update().where(IngestBatch.__table__.c.id == batch_id).values(
            summary=summary))
        errors = []
        for mask, fname, reason in problems:  # the error path: only rejected rows are visited
            idx = np.flatnonzero(mask)
            texts = reason[idx] if isinstance(reason, np.ndarray) else [reason] * len(idx)
            errors.extend(FeedRowError(int(inp.rows[i]), str(refs[i]), fname, str(r)) for i, r in zip(idx, texts))
        errors += [FeedRowError(r, "", "row", why) for r, why in inp.broken]
        report.errors = sorted(errors, key=lambda e: e.row)
        _keep_rejections(conn, delivery_id, report.errors)
    return report


def _keep_rejections(conn: Connection, delivery_id: int, errors: list[FeedRowError]) -> None:
    """The report's refused rows, in the delivery's transaction (COPY on PostgreSQL)."""
    if not errors:
        return
    insert_arrow(conn, "feed_rejection", pa.table({
        "delivery_id": pa.array([delivery_id] * len(errors), pa.int64()),
        "seq": pa.array(range(1, len(errors) + 1), pa.int32()),
        "row": pa.array([e.row for e in errors], pa.int32()),
        "record_ref": pa.array([e.record_ref[:80] for e in errors], pa.string()),
        "field": pa.array([e.field[:40] for e in errors], pa.string()),
        "reason": pa.array([e.reason[:300] for e in errors], pa.string())}))


HOUSEHOLD_CROSSED_CUTOFF = "household.crossed_cutoff"
DEFAULT_CUTOFF = 32.0  # BISP Kafaalat: PMT score at or below 32 (DOMAIN.md, 003 L299)


def after_delivery(engine: Engine, on: date | None = None, cutoff: float = DEFAULT_CUTOFF) -> int:
    """The separate step after deliveries: re-score the households their events named
    (``pmt.process_events``), in one transaction, and record ``household.crossed_cutoff`` for each
    household whose active score moved across ``cutoff`` (payload: old and new score, cut-off,
    direction ``below`` or ``above``), for programs to act on. Returns the households re-scored."""
    from isps.targeting import pmt

    with transaction(engine) as s:
        model = pmt.active_model(s)
        start = events.cursor(s, pmt.CONSUMER)
        old: dict = {}
        if model is not None:
            topics = ", ".join(f"'{t}'" for t in (events.HOUSEHOLD_CHANGED, events.HOUSEHOLD_CREATED,
                                                  events.MEMBER_CHANGED, events.MEMBER_DECEASED))
            named = f"SELECT aggregate_id FROM outbox_event WHERE id > {int(start)} AND topic IN ({topics})"
            old = dict(s.execute(text(f"SELECT household_id, score FROM pmt_score WHERE model_id = :m "
                                      f"AND household_id IN ({named})"), {"m": model.id}).all())
        n = pmt.process_events(s, on)
        if not old or not n:
            return n
        ids = np.fromiter(old.keys(), dtype=np.int64, count=len(old))
        before = np.fromiter(old.values(), dtype=float, count=len(old))
        conn = s.connection()
        tmp = "feed_tmp_scores"
        conn.execute(text(f"DROP TABLE IF EXISTS {tmp}"))
        conn.execute(text(f"CREATE TEMPORARY TABLE {tmp} (id BIGINT)"))
        insert_arrow(conn, tmp, pa.table({"id": pa.array(ids)}))
        new = dict(conn.execute(text(f"SELECT p.household_id, p.score FROM pmt_score p JOIN {tmp} t "
                                     f"ON t.id = p.household_id WHERE p.model_id = :m"), {"m": model.id}).all())
        conn.execute(text(f"DROP TABLE IF EXISTS {tmp}"))
        after = _lookup(ids, new)
        known = ~np.isnan(after)
        crossed = known & ((before <= cutoff) != (after <= cutoff))
        if crossed.any():
            k = int(crossed.sum())
            way = np.where(after[crossed] <= cutoff, "below", "above").astype(object)
            payload = ('{"old_score": ' + np.char.mod("%.2f", before[crossed]).astype(object) + ', "new_score": '
                       + np.char.mod("%.2f", after[crossed]).astype(object) + f', "cutoff": {cutoff:g}, "model_id": '
                       + f"{model.id}" + ', "direction": "' + way + '"}')
            insert_arrow(conn, "outbox_event", pa.table({
                "topic": pa.array([HOUSEHOLD_CROSSED_CUTOFF] * k), "aggregate": pa.array(["household"] * k),
                "aggregate_id": pa.array(ids[crossed]), "payload": pa.array(payload.tolist(), pa.string()),
                "recorded_at": pa.array([datetime.now()] * k, pa.timestamp("us"))}))
        return n


def _lookup(ids: np.ndarray, values: dict) -> np.ndarray:
    """``values[id]`` for each id (NaN where absent), by sorting rather than a loop over ids."""
    out = np.full(len(ids), np.nan)
    if not values:
        return out
    keys = np.fromiter(values.keys(), dtype=np.int64, count=len(values))
    vals = np.fromiter(values.values(), dtype=float, count=len(values))
    order = np.argsort(keys)
    keys, vals = keys[order], vals[order]
    at = np.searchsorted(keys, ids)
    ok = (at < len(keys)) & (keys[np.minimum(at, len(keys) - 1)] == ids)
    out[ok] = vals[at[ok]]
    return out


# ---------------------------------------------------------------- conflicts for operators

@dataclass(frozen=True)
class ConflictView:
    id: int
    entity: str
    entity_id: int
    household_id: int
    district_id: int
    field: str
    kept_value: str | None
    kept_source: str
    kept_since: date | None
    offered_value: str | None
    offered_source: str
    offered_effective: date
    source_ref: str | None
    status: str
    recorded_at: datetime


def list_conflicts(session: Session, district_scope: int | None = None, status: str | None = "open",
                   household_id: int | None = None, after: int = 0, limit: int = 100) -> list[ConflictView]:
    """Conflicts between sources, oldest first, paged by keyset (``after`` = last id seen)."""
    q = select(SourceConflict).where(SourceConflict.id > after)
    if district_scope is not None:
        q = q.where(SourceConflict.district_id == district_scope)
    if status:
        q = q.where(SourceConflict.status == status)
    if household_id is not None:
        q = q.where(SourceConflict.household_id == household_id)
    rows = session.scalars(q.order_by(SourceConflict.id).limit(limit))
    return [ConflictView(r.id, r.entity, r.entity_id, r.household_id, r.district_id, r.field,
                         cnic_rules.mask(r.kept_value) if r.field == "cnic" else r.kept_value, r.kept_source,
                         r.kept_since,
                         cnic_rules.mask(r.offered_value) if r.field == "cnic" else r.offered_value,
                         r.offered_source, r.offered_effective, r.source_ref, r.status, r.recorded_at) for r in rows]


def resolve_conflict(session: Session, conflict_id: int, actor: str, resolution: str,
                     district_scope: int | None = None) -> SourceConflict:
    """Close a conflict with the operator's note (to take the offered value, correct the household
    with the delivery as the reference).
    A district officer may close only the conflicts of their district."""
    row = session.get(SourceConflict, conflict_id)
    if row is None:
        raise FeedError(f"no conflict {conflict_id}")
    if district_scope is not None and row.district_id != district_scope:
        raise FeedError(f"conflict {conflict_id} is outside your district")
    if row.status != "open":
        raise FeedError(f"conflict {conflict_id} is {row.status} already")
    if not resolution or not resolution.strip():
        raise FeedError(f"conflict {conflict_id}: say how it was resolved")
    row.status, row.resolved_by, row.resolution = "resolved", actor, resolution[:400]
    session.flush()
    return row


def deliveries(session: Session, feed: str | None = None, limit: int = 50) -> list[FeedDelivery]:
    q = select(FeedDelivery)
    if feed:
        q = q.where(FeedDelivery.feed == feed)
    return list(session.scalars(q.order_by(FeedDelivery.id.desc()).limit(limit)))


def count_records(session: Session, feed: str) -> int:
    from isps.interop.models import FeedRecord

    return session.scalar(select(func.count()).select_from(FeedRecord).where(FeedRecord.feed == feed)) or 0


def to_json_batch(feed: str, reference: str, data: pa.Table) -> dict:
    """An Arrow table as the API JSON batch shape (documented in docs/feeds.md)."""
    return {"feed": feed, "reference": reference,
            "records": json.loads(json.dumps(data.to_pylist(), default=str))}
