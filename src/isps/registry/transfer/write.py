"""Applying checked rows to the registry: new records, changes with their history, events; one transaction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, bindparam, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from isps.registry import events, vocab
from isps.registry import current
from isps.registry.bulk import insert_arrow
from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS
from isps.registry.ids import HOUSEHOLD_RANGE, INDIVIDUAL_RANGE
from isps.registry.models import Household, IngestBatch, Individual, ValueChange
from isps.registry.transfer.arrays import _ARROW_TYPES, _as_text_values, _index, _isin, _join, _np, _objects, _say
from isps.registry.transfer.layout import (HOUSEHOLD_COLUMNS, HOUSEHOLDS, MEMBER_COLUMNS, MEMBERS, _IN_CHUNK,
                                           _KEY)
from isps.registry.transfer.readers import _read_input
from isps.registry.transfer.report import ImportReport, RowError, SheetCounts, TransferError
from isps.registry.transfer.validate import (_adult_on, _duplicates, _geo, _mask_cnics, _Parsed,
                                             _parse_households, _parse_members)


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
        self.inserting = np.zeros(0, dtype=object)

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
            _one_person_per_cnic(conn, mem, m_reg, reg)
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

        self.inserting = hh.ref[new_rows]  # named if another import stores them first (a race)
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

        vc_parts = [p for p in vc_parts if p.num_rows]  # pyarrow's CSV writer garbles an empty first chunk
        if vc_parts:
            data = pa.concat_tables(vc_parts).combine_chunks()
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


def _one_person_per_cnic(conn, mem: _Parsed, m_reg: np.ndarray, reg: dict) -> None:
    """A CNIC identifies one living person: refuse a row that gives a CNIC to a second person, in
    this file (two living people, one number) or against the registry (a living holder who is not
    the row's own person). A holder whom the same file gives another number or a date of death
    releases it, so a correction that swaps or frees a number goes through. All set-based: one
    query per chunk of distinct numbers, Arrow joins."""
    if "cnic" not in mem.values:
        return
    cnic = mem.values["cnic"]
    line = mem.values["roster_line"]
    dead = np.not_equal(mem.values["date_of_death"], None) if "date_of_death" in mem.values \
        else np.zeros(mem.n, dtype=bool)
    ok = ~mem.errors.bad()
    living = ok & np.not_equal(cnic, None) & ~dead
    if not living.any():
        return
    number = np.where(living, cnic, "").astype(object)
    masked = np.full(mem.n, "", dtype=object)
    masked[living] = _np(_mask_cnics(pa.array(number[living].tolist(), pa.string()))).astype(object)

    twice, rows = _duplicates(number, living, mem.sheet.rows)
    mem.errors.add(twice, "cnic", _say(twice, "CNIC ", masked, " is given to more than one person in this file (rows ",
                                       rows, ")"))

    # the row's own person, where its household is in the registry: household id * _KEY + roster line
    reg_ids = reg["id"].astype(np.int64) if len(reg["id"]) else np.zeros(1, dtype=np.int64)
    own_hh = np.where(m_reg >= 0, reg_ids[np.maximum(m_reg, 0)], -1)
    line_known = np.not_equal(line, None)
    own = np.where((own_hh >= 0) & line_known, own_hh * _KEY + np.where(line_known, line, 0).astype(np.int64), -1)
    I, H = Individual.__table__, Household.__table__
    found: list[list] = [[], [], [], []]
    uniq = sorted(set(number[living].tolist()))
    for lo in range(0, len(uniq), _IN_CHUNK):
        for row in conn.execute(select(I.c.cnic, I.c.household_id, I.c.roster_line, H.c.ref)
                                .join(H, H.c.id == I.c.household_id)
                                .where(I.c.cnic.in_(uniq[lo:lo + _IN_CHUNK]), current.clause(I))):
            for part, value in zip(found, row):
                part.append(value)
    if not found[0]:
        return
    holders = pa.table({"cnic": pa.array(found[0], pa.string()),
                        "holder": pa.array(np.asarray(found[1], dtype=np.int64) * _KEY
                                           + np.asarray(found[2], dtype=np.int64), pa.int64()),
                        "holder_hh": pa.array(found[1], pa.int64()), "holder_line": pa.array(found[2], pa.int64()),
                        "holder_ref": pa.array(found[3], pa.string())})
    # a holder released by this file: its own row (valid) gives it another number or a death
    in_file = ok & (own >= 0)
    releases = pa.table({"holder": pa.array(own[in_file], pa.int64()),
                         "now": pa.array(np.where(dead[in_file], "", number[in_file]).tolist(), pa.string())})
    holders = holders.join(releases, "holder", join_type="left outer")
    kept = pc.or_(pc.is_null(holders["now"]), pc.equal(holders["now"], holders["cnic"]))
    holders = holders.filter(pc.fill_null(kept, True))
    idx = np.flatnonzero(living)
    claims = pa.table({"i": pa.array(idx, pa.int64()), "cnic": pa.array(number[idx].tolist(), pa.string()),
                       "own": pa.array(own[idx], pa.int64())})
    pairs = claims.join(holders, "cnic", join_type="inner")
    # a row whose own person already holds the number is no new claim, even if the registry has others
    mine = pairs.filter(pc.equal(pairs["own"], pairs["holder"]))
    pairs = pairs.filter(pc.and_(pc.not_equal(pairs["own"], pairs["holder"]),
                                 pc.invert(pc.is_in(pairs["i"], value_set=mine["i"]))))
    if pairs.num_rows == 0:
        return
    pairs = pairs.sort_by([("i", "ascending"), ("holder", "ascending")])
    i = _np(pairs["i"]).astype(np.int64)
    first = np.unique(i, return_index=True)[1]
    taken = np.zeros(mem.n, dtype=bool)
    taken[i[first]] = True
    where = {name: np.full(mem.n, "", dtype=object) for name in ("holder_ref", "holder_hh", "holder_line")}
    for name, arr in where.items():
        arr[i[first]] = _np(pairs[name]).astype(object)[first]
    mem.errors.add(taken, "cnic", _say(taken, "CNIC ", masked, " is already held by a living member of household ",
                                       where["holder_ref"], " (", where["holder_hh"], "), roster line ",
                                       where["holder_line"], ": a CNIC identifies one person"))


def _already_imported(engine: Engine, reference: str, refs: np.ndarray, exc: Exception) -> None:
    """After a unique-key refusal: if another import stored this file's new households first (two
    imports of one content at once), say which batch holds them; nothing of this one was stored."""
    if len(refs) == 0:
        return
    H = Household.__table__
    with engine.connect() as conn:
        held = conn.execute(select(H.c.batch_id, H.c.ref).where(H.c.ref.in_(list(refs[:_IN_CHUNK])))
                            .order_by(H.c.batch_id, H.c.ref)).all()
    if not held:
        return
    batches = sorted({int(b) for b, _ in held})
    which = f"batch {batches[0]}" if len(batches) == 1 else "batches " + ", ".join(map(str, batches))
    names = [r for _, r in held]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    raise TransferError(f"{reference}: this file's content was already imported as {which} (households {shown} "
                        f"are in the registry); nothing from this file was stored. Import it again to apply any "
                        f"differences.") from exc


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
    driver = engine.dialect.dbapi  # COPY and executemany raise the driver's own errors, unwrapped
    job = None
    try:
        with engine.begin() as conn:
            job = _Import(conn, hh, mem, report)
            job.run()
    except (DBAPIError, driver.Error) as exc:
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        if isinstance(exc, IntegrityError) or isinstance(orig, driver.IntegrityError):
            _already_imported(engine, reference, job.inserting if job is not None else np.zeros(0), exc)
        first = str(orig).splitlines()[0] if orig is not None else type(exc).__name__
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
