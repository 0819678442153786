"""The employers' and contractors' doors: one file of workers' months, received whole or not at all.

Three prescribed formats (columns documented in ``docs/labour.md``), one per door:

* ``formal``: PESSI / EOBI contributions, by the employer: ``employer_ref, employer_name, scheme,
  cnic, worker_name, month, wage, contribution``;
* ``contractor``: ADP contractor labour, by the contractor: ``employer_ref, employer_name, scheme``
  (the ADP scheme code)``, cnic, worker_name, month, days_worked, wage``;
* ``sector``: domestic and home-based workers, auto-workshop, hotel and fuel-station workers, by the
  employer: ``employer_ref, employer_name, sector, cnic, worker_name, month, days_worked, wage``.

A file is CSV, Parquet or Excel (first sheet). It is read and checked with the registry's file
doors (:mod:`isps.registry.transfer`: the readers, the column-wise field rules, formula-like text
refused, an exported quote taken off) and every problem is reported with the row the sender sees,
the field and the reason (CNICs masked). Unlike a household import, an employer's file is refused
whole when any row is wrong: a contribution file is a statement of account, and half of it would
be a wrong one; nothing of a refused file is stored, and the sender corrects and sends it again.

An accepted file lands in one transaction: the upload, one ``labour_record`` per line, the workers
on their register, their ``labour_person`` row, and their labour status in the registry
(:mod:`isps.labour.status`, effective the newest month of each worker).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from isps.db import transaction
from isps.interop.feeds.framework import FeedReport, Job, month_start
from isps.labour import status as status_writer
from isps.labour.models import LabourUpload
from isps.labour.vocab import SCHEMES, SECTORS, STATUS_OF_REGISTER
from isps.registry.bulk import insert_arrow
from isps.registry.fields import Field, as_text, parse_column
from isps.registry.transfer import TransferError, _parse_cnic, _read_csv, _read_parquet
from isps.registry.transfer.arrays import _np, _say
from isps.registry.transfer.cells import unescape, write_report_csv
from isps.registry.transfer.readers import _prepare, _read_sheet
from isps.registry.transfer.report import RowErrors


@dataclass(frozen=True)
class Door:
    name: str
    title: str
    columns: tuple[Field, ...]
    register: str | None          # the register every line goes to; None: the line's ``sector``

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def optional(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if not c.required)


_EMPLOYER = (Field("employer_ref", "text", max_len=40, words=True), Field("employer_name", "text", max_len=120, words=True))
_WORKER = (Field("cnic", "cnic"), Field("worker_name", "text", max_len=80, words=True), Field("month", "date"))
_DAYS = Field("days_worked", "int", low=0, high=31)
_WAGE = Field("wage", "float", low=0, high=10_000_000)

DOORS: dict[str, Door] = {d.name: d for d in (
    Door("formal", "Formal workers: PESSI / EOBI contributions",
         (*_EMPLOYER, Field("scheme", "choice", choices=SCHEMES), *_WORKER, _WAGE,
          Field("contribution", "float", low=0, high=1_000_000)), "formal_worker"),
    Door("contractor", "ADP contractor labour",
         (*_EMPLOYER, Field("scheme", "text", max_len=40, words=True), *_WORKER, _DAYS, _WAGE), "contractor_labour"),
    Door("sector", "Domestic, home-based, auto-workshop, hotel and fuel-station workers",
         (*_EMPLOYER, Field("sector", "choice", choices=SECTORS), *_WORKER, _DAYS, _WAGE), None),
)}


@dataclass(frozen=True)
class UploadRowError:
    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.field}: {self.reason}"


@dataclass
class UploadReport(RowErrors):
    door: str
    reference: str
    employer: str
    actor: str
    rows: int = 0
    upload_id: int | None = None        # None: nothing stored
    already_received: bool = False
    workers: int = 0
    registry: dict = field(default_factory=dict)   # what the registry took: applied, late, unchanged, conflicts, events
    errors: list[UploadRowError] = field(default_factory=list)

    def summary(self) -> str:
        if self.already_received:
            return f"{self.door} {self.reference}: received before as upload {self.upload_id}; nothing changed"
        if not self.ok:
            rows = len({e.row for e in self.errors})
            return (f"{self.door} {self.reference}: refused, nothing stored: {len(self.errors)} problems on {rows} "
                    f"of {self.rows} rows; correct them and send the whole file again")
        r = self.registry
        return (f"{self.door} {self.reference}: upload {self.upload_id} by {self.actor}: {self.rows} rows, "
                f"{self.workers} workers; registry labour status: {r.get('applied', 0)} changed, "
                f"{r.get('late', 0)} late (history only), {r.get('unchanged', 0)} unchanged, "
                f"{r.get('conflicts', 0)} outranked; events {r.get('events', 0)}")

    def write_csv(self, path: Path | str) -> Path:
        return write_report_csv(path, ["row", "field", "reason"], ((e.row, e.field, e.reason) for e in self.errors))


class UploadError(ValueError):
    """A file that cannot be read at all (unknown door, unreadable, columns missing)."""


def door_named(name: str) -> Door:
    found = DOORS.get(name)
    if found is None:
        raise UploadError(f"unknown door '{name}'; doors: {', '.join(DOORS)}")
    return found


def _read(path: Path, door: Door):
    suffix = path.suffix.lower()
    if not path.exists():
        raise UploadError(f"{path.name}: no such file")
    try:
        if suffix == ".csv":
            sheet = _read_csv(path, door.name)
        elif suffix in (".parquet", ".pq"):
            sheet = _read_parquet(path, door.name)
        elif suffix == ".xlsx":
            from openpyxl import load_workbook

            try:
                wb = load_workbook(path, read_only=True, data_only=True)
            except Exception as exc:  # noqa: BLE001 - any unreadable workbook is the sender's problem to fix
                raise TransferError(f"{path.name}: cannot be read as an Excel workbook (.xlsx): "
                                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
            try:
                sheet = _read_sheet(wb.worksheets[0], path.name, door.name)
            finally:
                wb.close()
        else:
            raise UploadError(f"{path.name}: an upload is a .csv, .parquet or .xlsx file")
        if suffix != ".parquet":
            sheet.table = pa.table({n: unescape(sheet.table[n].combine_chunks()) for n in sheet.table.column_names})
        sheet = _prepare(sheet, door.names, door.optional)
    except TransferError as exc:
        raise UploadError(str(exc)) from None
    if sheet.table.num_rows == 0 and not sheet.broken:
        raise UploadError(f"{path.name}: there are no rows below the header")
    return sheet


def _parse(door: Door, t: pa.Table) -> tuple[dict[str, np.ndarray], list[tuple[np.ndarray, str, object]]]:
    values, problems = {}, []
    for spec in door.columns:
        if spec.name not in t.column_names:
            values[spec.name] = np.full(t.num_rows, None, dtype=object)
            continue
        if spec.kind == "cnic":
            vals, reasons = _parse_cnic(t[spec.name], np.full(t.num_rows, None, dtype=object))
            empty = _np(pc.equal(as_text(t[spec.name]), "")).astype(bool)
            reasons = np.where(empty & np.equal(reasons, None), "is required", reasons)
        else:
            vals, reasons = parse_column(spec, t[spec.name])
        values[spec.name] = vals
        bad = np.not_equal(reasons, None)
        if bad.any():
            problems.append((bad, spec.name, reasons))
    return values, problems


def upload(engine: Engine, door_name: str, path: Path | str, *, actor: str, reference: str | None = None,
           district_scope: int | None = None, today: date | None = None) -> UploadReport:
    """Receive one file through a door; see the module's docstring. Returns the row-by-row report
    (``report.ok`` false: refused, nothing stored)."""
    door = door_named(door_name)
    path = Path(path)
    reference = (reference or path.name)[:200]
    if not actor:
        raise UploadError("an upload needs the actor: who is receiving it")
    today = today or date.today()
    with transaction(engine) as s:
        prior = s.scalar(select(LabourUpload).where(LabourUpload.door == door.name,
                                                    LabourUpload.reference == reference))
        if prior is not None:
            return UploadReport(door.name, reference, prior.employer, actor, prior.rows, prior.id, True)
    sheet = _read(path, door)
    t, rows = sheet.table, sheet.rows
    n = t.num_rows
    values, problems = _parse(door, t)
    employer = next((str(v) for v in values["employer_name"] if v), "")[:120]
    report = UploadReport(door.name, reference, employer, actor, n + len(sheet.broken))
    live = np.ones(n, dtype=bool)
    for mask, _, _ in problems:
        live &= ~mask
    months = values["month"]
    known = np.where(np.equal(months, None), today, months)
    future = live & _np(pc.greater(pa.array(list(known), pa.date32()), pa.scalar(today, pa.date32()))).astype(bool)
    if future.any():
        problems.append((future, "month", _say(future, "is after today (", str(today), "): a month not yet worked")))
        live &= ~future
    if live.any():
        month1 = np.full(n, None, dtype=object)
        month1[live] = np.asarray(month_start(months[live]).to_pylist(), dtype=object)
        values["month"] = month1
        key = (values["employer_ref"].astype(str) + "|" + values["cnic"].astype(str) + "|"
               + month1.astype(str)).astype(str)
        order = np.argsort(key, kind="stable")
        ks = key[order]
        again = np.zeros(n, dtype=bool)
        again[order[1:]] = ks[1:] == ks[:-1]
        first = np.zeros(n, dtype=np.int64)
        starts = np.r_[True, ks[1:] != ks[:-1]]
        first[order] = rows[order][np.maximum.accumulate(np.where(starts, np.arange(n), 0))]
        again &= live
        if again.any():
            problems.append((again, "cnic", _say(again, "the same worker, employer and month as row ", first)))
            live &= ~again

    try:
        return _check_and_store(engine, door, values, rows, live, problems, sheet.broken, report, district_scope, actor)
    except _Refused:
        return report
    except Exception as exc:  # the same file or lines committed by another upload while this one was checked
        if not (isinstance(exc, IntegrityError) or getattr(exc, "sqlstate", None) == "23505"):
            raise  # (a unique key refusing a COPY on PostgreSQL is the driver's error, not SQLAlchemy's)
        raise UploadError(f"{door.name} {reference}: this file or its lines were received by another upload "
                          "while this one was being checked; nothing of this one was stored. Send it again to "
                          "see which lines are already in.") from None


class _Refused(Exception):
    """Raised inside the transaction so that it rolls back: nothing of a refused file is stored."""


def _check_and_store(engine, door, values, rows, live, problems, broken, report, district_scope, actor):
    n = len(rows)
    with transaction(engine) as s:
        conn = s.connection()
        feed_report = FeedReport(door.name, report.reference, actor)
        job = Job(status_writer.DOOR, conn, values, np.full(n, "", dtype=object), rows, live.copy(), feed_report,
                  0, 0, actor, report.reference)
        p = job.people_by_cnic("cnic", what="worker")
        if district_scope is not None:
            away = job.live & np.not_equal(p["district_id"], district_scope)
            job.reject(away, "cnic", "the worker is registered outside your district")
        register = (np.full(n, door.register, dtype=object) if door.register
                    else values["sector"].astype(object))
        pos = np.flatnonzero(job.live)
        if len(pos):  # a line already received in another upload
            tmp = job.temp({"pos": "BIGINT", "door": "TEXT", "employer_ref": "TEXT", "individual_id": "BIGINT",
                            "month": "DATE"},
                           pa.table({"pos": pa.array(pos, pa.int64()), "door": pa.array([door.name] * len(pos)),
                                     "employer_ref": pa.array(values["employer_ref"][pos].tolist(), pa.string()),
                                     "individual_id": pa.array(p["individual_id"][pos].astype(np.int64)),
                                     "month": pa.array(list(values["month"][pos]), pa.date32())}))
            held = conn.execute(text(
                f"SELECT t.pos, r.upload_id FROM {tmp} t JOIN labour_record r ON r.door = t.door AND "
                "r.employer_ref = t.employer_ref AND r.individual_id = t.individual_id AND r.month = t.month")).all()
            job.drop(tmp)
            if held:
                at = np.asarray([h[0] for h in held], dtype=np.int64)
                mask = np.zeros(n, dtype=bool)
                mask[at] = True
                by = np.full(n, "", dtype=object)
                by[at] = [str(h[1]) for h in held]
                job.reject(mask, "month", _say(mask, "this worker's month with this employer was received already "
                                                     "(upload ", by, ")"))
        problems.extend(job.problems)
        if problems or broken:
            errors = []
            for mask, fname, reason in problems:
                idx = np.flatnonzero(mask)
                texts = reason[idx] if isinstance(reason, np.ndarray) else [reason] * len(idx)
                errors.extend(UploadRowError(int(rows[i]), fname, str(r)) for i, r in zip(idx, texts))
            errors += [UploadRowError(r, "row", why) for r, why in broken]
            report.errors = sorted(errors, key=lambda e: (e.row, e.field))
            raise _Refused()
        report.registry = _store(conn, door, values, rows, p, register, report, district_scope, actor)
        return report


def _store(conn, door: Door, values: dict, rows: np.ndarray, p: dict, register: np.ndarray, report: UploadReport,
           district_scope: int | None, actor: str) -> dict:
    n = len(rows)
    iid = p["individual_id"].astype(np.int64)
    hid = p["household_id"].astype(np.int64)
    did = p["district_id"].astype(np.int64)
    month = values["month"]
    newest = max(month)
    batch_id = status_writer.new_batch(conn, f"{door.name}: {report.reference}", newest, actor)
    upload_id = conn.execute(LabourUpload.__table__.insert().values(
        door=door.name, reference=report.reference, employer=report.employer, actor=actor, district_id=district_scope,
        batch_id=batch_id, rows=n).returning(LabourUpload.__table__.c.id)).scalar_one()
    report.upload_id = upload_id

    def col(name, kind):
        return pa.array(list(values[name]) if name in values else [None] * n, kind)

    insert_arrow(conn, "labour_record", pa.table({
        "upload_id": pa.array(np.full(n, upload_id, dtype=np.int64)), "door": pa.array([door.name] * n),
        "register": pa.array(register.tolist(), pa.string()), "individual_id": pa.array(iid),
        "household_id": pa.array(hid), "district_id": pa.array(did),
        "employer_ref": col("employer_ref", pa.string()), "employer_name": col("employer_name", pa.string()),
        "scheme": col("scheme", pa.string()) if "scheme" in values else pa.array([None] * n, pa.string()),
        "month": pa.array(list(month), pa.date32()),
        "days_worked": col("days_worked", pa.int64()), "wage": col("wage", pa.float64()),
        "contribution": col("contribution", pa.float64()), "row": pa.array(rows.astype(np.int64))}))
    # each worker on their register once, since their first month
    conn.execute(text("DROP TABLE IF EXISTS labour_tmp_workers"))
    conn.execute(text("CREATE TEMPORARY TABLE labour_tmp_workers (register TEXT, individual_id BIGINT, "
                      "household_id BIGINT, district_id BIGINT, since DATE, source_ref TEXT)"))
    insert_arrow(conn, "labour_tmp_workers", pa.table({
        "register": pa.array(register.tolist(), pa.string()), "individual_id": pa.array(iid),
        "household_id": pa.array(hid), "district_id": pa.array(did), "since": pa.array(list(month), pa.date32()),
        "source_ref": pa.array([f"labour {door.name} upload {upload_id}"] * n)}))
    conn.execute(text("""
        INSERT INTO labour_worker (register, individual_id, household_id, district_id, since, source_ref,
                                   recorded_by, active, recorded_at)
        SELECT register, individual_id, MIN(household_id), MIN(district_id), MIN(since), MIN(source_ref), :actor,
               :yes, CURRENT_TIMESTAMP
        FROM labour_tmp_workers GROUP BY register, individual_id
        ON CONFLICT (register, individual_id) DO UPDATE SET active = excluded.active"""),
                 {"actor": actor, "yes": True})
    conn.execute(text("DROP TABLE IF EXISTS labour_tmp_workers"))
    status = np.asarray([STATUS_OF_REGISTER[r] for r in np.unique(register)], dtype=object)[
        np.searchsorted(np.unique(register), register)]
    report.workers = len(np.unique(iid))
    status_writer.note_people(conn, individual_id=iid, household_id=hid, district_id=did, status=status,
                              status_on=month, source="upload", moves_due=False)
    fr = status_writer.write_statuses(conn, individual_id=iid, household_id=hid, district_id=did, status=status,
                                      effective=month, refs=[f"row {r}" for r in rows.tolist()],
                                      reference=f"{door.name} upload {upload_id}", actor=actor, batch_id=batch_id)
    return {k: v for k, v in asdict(fr).items() if k in ("applied", "late", "unchanged", "conflicts", "events",
                                                          "value_changes")}


def _received(door: str | None):
    from sqlalchemy import select as _select

    q = _select(LabourUpload)
    return q.where(LabourUpload.door == door) if door else q


def received(session, door: str | None = None, after: int | None = None, limit: int = 50) -> list[LabourUpload]:
    """Uploads received, newest first, by keyset (``after``: the last id seen; ids fall)."""
    q = _received(door)
    if after:
        q = q.where(LabourUpload.id < after)
    return list(session.scalars(q.order_by(LabourUpload.id.desc()).limit(limit)))


def count_received(session, door: str | None = None) -> int:
    from sqlalchemy import func as _func, select as _select

    return session.scalar(_select(_func.count()).select_from(_received(door).subquery())) or 0
