"""Surveys and re-surveys applied as one set-based batch of registry value changes.

A batch of ``isps_survey`` submissions becomes what a feed delivery becomes: the parsed values of
every household and roster line are checked column-wise against the registry's field rules
(:func:`isps.registry.fields.parse_column`), the households and members they name are looked up with
one join each, and what survives is proposed to the feed framework's change writer
(:func:`isps.interop.feeds.framework.write_changes`) with the source ``survey``, the enumerator as
the actor, a source reference naming the device and the instanceID, and the date the form was
*collected* as the effective date. The framework then keeps late news as history without
overwriting a newer value, respects the declared source precedence (NADRA's identity fields outrank a
survey: a ``source_conflict`` row instead) and writes one ``household.changed`` event per household
whose state moved, which the events drain re-scores.

A bad value refuses that submission only (its reason names the household, the member and the field);
the rest of the batch applies. A new household (blank ``household_id``) is registered through
:func:`isps.registry.service.register_household` and a new person on a known household's roster
(blank ``individual_id``) joins through :func:`isps.registry.service.add_member`: few, one savepoint
each. A current member the enumerator did not list is never removed: the submission's result names
them for an officer (``not_on_roster``).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from isps.interop.feeds.framework import BURST, Feed, FeedReport, Job, write_changes
from isps.registry import cnic as cnic_rules
from isps.registry import current
from isps.registry.bulk import insert_arrow
from isps.registry.fields import EARLIEST_EFFECTIVE, EFFECTIVE_GRACE_DAYS, HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS, \
    parse_column
from isps.registry.models import IngestBatch
from isps.registry.service import Provenance, RegistryError, add_member, register_household
from isps.registry.transfer.arrays import _say as say
from isps.registry.transfer.validate import _parse_cnic

SOURCE = "survey"
DOOR = Feed("field", "Field survey (ODK Collect)", SOURCE, (), "effective", apply=lambda job: None,
            generate=lambda *a: None, doc=__doc__ or "")
MEMBER_KEYS = (*INDIVIDUAL_FIELDS, "cnic", "id_document")
# a blank answer in a re-survey leaves the value as it is: the field rules without "is required"
_OPTIONAL = {name: dataclasses.replace(spec, required=False) for name, spec in
             (*HOUSEHOLD_FIELDS.items(), *INDIVIDUAL_FIELDS.items())}


@dataclasses.dataclass
class SurveyItem:
    """One survey submission of the batch: what it said and, once decided, what it became."""
    submission_id: int
    username: str
    district_id: int
    effective: date
    source_ref: str
    values: dict[str, str]
    members: list[dict[str, str]]
    refused: str | None = None
    result: dict = dataclasses.field(default_factory=dict)
    added: list[int] = dataclasses.field(default_factory=list)   # people who joined the roster by this survey


class _Batch:
    """Per-submission state as columns: which are still live, and why the others were refused."""

    def __init__(self, items: list[SurveyItem]) -> None:
        self.items = items
        self.n = len(items)
        self.live = np.array([it.refused is None for it in items], dtype=bool)

    def refuse(self, mask: np.ndarray, reasons: np.ndarray | str) -> None:
        mask = np.asarray(mask, dtype=bool) & self.live
        for i in np.flatnonzero(mask):  # the error path: only refused submissions are visited
            self.items[i].refused = str(reasons if isinstance(reasons, str) else reasons[i])[:400]
        self.live &= ~mask


def _column(rows: list[dict], name: str) -> pa.Array:
    """One answer of every row as a column of trimmed text, null where blank."""
    arr = pc.utf8_trim_whitespace(pa.array([r.get(name) for r in rows], pa.string()))
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _ids(raw: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(id as int64 or 0, blank?, malformed?) for a column of id texts."""
    txt = np.asarray(raw.to_pylist(), dtype=object)
    blank = np.equal(txt, None)
    digits = np.array([bool(t) and t.isdigit() and len(t) <= 18 for t in txt.tolist()], dtype=bool)
    out = np.zeros(len(txt), dtype=np.int64)
    if digits.any():
        out[digits] = np.asarray(txt[digits].tolist(), dtype=np.int64)
    return out, blank, ~blank & ~digits


def _lookup(session: Session, ids: np.ndarray, sql: str) -> list[tuple]:
    """Rows of ``sql`` (which joins ``field_tmp_ids t``) for a column of ids, through a temporary table."""
    conn = session.connection()
    conn.execute(text("DROP TABLE IF EXISTS field_tmp_ids"))
    conn.execute(text("CREATE TEMPORARY TABLE field_tmp_ids (id BIGINT PRIMARY KEY)"))
    insert_arrow(conn, "field_tmp_ids", pa.table({"id": pa.array(np.unique(ids), pa.int64())}))
    rows = [tuple(r) for r in conn.execute(text(sql))]
    conn.execute(text("DROP TABLE IF EXISTS field_tmp_ids"))
    return rows


def _records(session: Session, table: str, keys: np.ndarray, mask: np.ndarray, columns: list[str]
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The registry rows whose ids are ``keys[mask]``, as one column per name aligned to ``keys``
    (None where not found), and whether each key was found: one join through a temporary table."""
    found = _lookup(session, keys[mask], f"SELECT r.id, {', '.join('r.' + c for c in columns)} FROM {table} r "
                                         "JOIN field_tmp_ids t ON t.id = r.id")
    out = {c: np.full(len(keys), None, dtype=object) for c in columns}
    hit = np.zeros(len(keys), dtype=bool)
    if not found or not len(keys):
        return hit, out
    got = np.asarray([r[0] for r in found], dtype=np.int64)
    order = np.argsort(got)
    got = got[order]
    at = np.minimum(np.searchsorted(got, keys), len(got) - 1)
    hit = mask & (got[at] == keys)
    for k, c in enumerate(columns, start=1):
        vals = np.empty(len(found), dtype=object)
        vals[:] = [r[k] for r in found]
        out[c][hit] = vals[order][at[hit]]
    return hit, out


def apply_surveys(session: Session, items: list[SurveyItem]) -> None:
    """Apply a batch of survey submissions (see the module's docstring); each item ends with either
    ``refused`` set or ``result`` filled."""
    if not items:
        return
    b = _Batch(items)
    latest = date.today() + timedelta(days=EFFECTIVE_GRACE_DAYS)
    eff = np.array([it.effective for it in items], dtype=object)
    bad_date = np.array([not EARLIEST_EFFECTIVE <= d <= latest for d in eff.tolist()], dtype=bool)
    b.refuse(bad_date, say(bad_date, "collected_at: the form says it was filled on ", eff,
                           f", which is not a date from {EARLIEST_EFFECTIVE.isoformat()} to {latest.isoformat()}"))
    values = [it.values for it in items]
    consent = np.asarray(pc_lower(_column(values, "consent")), dtype=object)
    no = np.not_equal(consent, "yes")
    b.refuse(no, "consent: the household did not consent to the survey; nothing was recorded")

    hid, blank, malformed = _ids(_column(values, "household_id"))
    b.refuse(malformed, say(malformed, "household_id: '", np.asarray(_column(values, "household_id").to_pylist(),
                                                                  dtype=object), "' is not a household id"))
    district = np.array([it.district_id for it in items], dtype=np.int64)
    known = b.live & ~blank
    hit, hh_now = _records(session, "household", hid, known, ["district_id", *HOUSEHOLD_FIELDS])
    home = hh_now["district_id"]
    missing = known & ~hit
    b.refuse(missing, say(missing, "household_id: household ", hid, " is not in the registry"))
    elsewhere = known & hit & np.not_equal(home, district)
    b.refuse(elsewhere, say(elsewhere, "household_id: household ", hid, " is in district ", home,
                            ", not in district ", district, " of this device and its user"))

    # household values, column by column
    hh_values: dict[str, np.ndarray] = {}
    for name in HOUSEHOLD_FIELDS:
        raw = _column(values, name)
        if raw.null_count == len(raw):
            continue
        parsed, why = parse_column(_OPTIONAL[name], raw)
        bad = np.not_equal(why, None) & ~blank
        b.refuse(bad, say(bad, "household ", hid, ": ", name, " ", why))
        hh_values[name] = parsed

    # the roster: every member line of every submission as one table
    owner = np.array([i for i, it in enumerate(items) for _ in it.members], dtype=np.int64)
    lines = np.array([k for it in items for k in range(1, len(it.members) + 1)], dtype=np.int64)
    rows = [m for it in items for m in it.members]
    pid, new_person, bad_pid = _ids(_column(rows, "individual_id"))
    m_hid = hid[owner] if len(owner) else np.zeros(0, dtype=np.int64)
    label = say(np.ones(len(rows), dtype=bool), "household ", m_hid, ": member ", lines) if len(rows) else \
        np.zeros(0, dtype=object)

    def refuse_lines(mask: np.ndarray, reasons: np.ndarray) -> None:
        if mask.any():  # the first refused line of a submission names its reason
            per_item = np.zeros(b.n, dtype=bool)
            why = np.full(b.n, None, dtype=object)
            idx = np.flatnonzero(mask)[::-1]
            per_item[owner[idx]] = True
            why[owner[idx]] = reasons[idx]
            b.refuse(per_item, why)

    refuse_lines(bad_pid, say(bad_pid, label, ": individual_id '", np.asarray(_column(rows, "individual_id")
                                                                             .to_pylist(), dtype=object),
                              "' is not a person id"))
    existing = ~new_person & ~bad_pid
    p_hit, p_now = _records(session, "individual", pid, existing, ["household_id", "cnic", *INDIVIDUAL_FIELDS])
    p_home, old_sex, old_cnic = p_now["household_id"], p_now["sex"], p_now["cnic"]
    stranger = existing & ~(p_hit & np.equal(p_home, m_hid))
    refuse_lines(stranger & b.live[owner] if len(rows) else stranger,
                 say(stranger, label, ": individual_id ", pid, " is not a member of household ", m_hid))
    new_in_new = new_person & blank[owner] if len(rows) else new_person
    m_values: dict[str, np.ndarray] = {}
    for name in INDIVIDUAL_FIELDS:
        raw = _column(rows, name)
        if len(rows) == 0 or raw.null_count == len(raw):
            continue
        parsed, why = parse_column(_OPTIONAL[name], raw)
        bad = np.not_equal(why, None) & ~new_in_new
        refuse_lines(bad, say(bad, label, ": ", name, " ", why))
        m_values[name] = parsed
    if len(rows):
        sex = m_values.get("sex", np.full(len(rows), None, dtype=object))
        sex = np.where(np.equal(sex, None), old_sex, sex)
        cnic, why = _parse_cnic(_column(rows, "cnic"), sex)
        bad = np.not_equal(why, None) & ~new_in_new
        refuse_lines(bad, say(bad, label, ": cnic: ", why))
        changed = existing & np.not_equal(cnic, None) & np.not_equal(cnic, old_cnic) & b.live[owner]
        if changed.any():
            _cnic_holders(session, b, owner, changed, pid, cnic, label, refuse_lines)
        m_values["cnic"] = cnic

    # new households and new members, one savepoint each (few)
    for i in np.flatnonzero(b.live & blank):
        _register(session, items[i])
    b.live &= np.array([it.refused is None for it in items], dtype=bool)
    joining = new_person & b.live[owner] & ~blank[owner] if len(rows) else new_person
    for i in np.unique(owner[joining]):
        _add_members(session, items[i], int(hid[i]), [rows[k] | {"_line": int(lines[k])}
                                                       for k in np.flatnonzero(joining & (owner == i))])
    b.live &= np.array([it.refused is None for it in items], dtype=bool)

    upd = b.live & ~blank
    if upd.any():
        _write(session, b, hid, district, eff, _news(hh_values, hh_now), owner, pid, existing, _news(m_values, p_now))
        _not_on_roster(session, b, hid, upd, owner, pid, existing)
        if session.connection().dialect.name == "postgresql" and upd.sum() > BURST:
            # a burst of household.changed events: the re-scoring that follows is planned from the
            # outbox's statistics (see interop.feeds.framework._write_events); a batch's jobs are each
            # below its threshold, together above it
            session.execute(text("ANALYZE outbox_event"))
    for i in np.flatnonzero(upd):
        items[i].result.setdefault("household_id", int(hid[i]))


def _news(proposed: dict[str, np.ndarray], now: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The answers that differ from the registry's current values (None elsewhere). A re-survey sends
    every answer and most repeat what is known: the change writer is given what is news, which it
    would otherwise read back and find unchanged, one history lookup per answer."""
    out = {}
    for name, values in proposed.items():
        differs = np.not_equal(values, None).astype(bool) & np.not_equal(values, now[name]).astype(bool)
        if differs.any():
            out[name] = np.where(differs, values, None)
    return out


def pc_lower(arr: pa.Array) -> list:
    return pc.utf8_lower(arr).to_pylist()


def _cnic_holders(session, b: _Batch, owner, changed, pid, cnic, label, refuse_lines) -> None:
    """A CNIC identifies one living person: a new number already held by another current member (or
    given to two people in this batch) refuses the submission, naming where it is (masked)."""
    idx = np.flatnonzero(changed)
    conn = session.connection()
    conn.execute(text("DROP TABLE IF EXISTS field_tmp_cnic"))
    conn.execute(text("CREATE TEMPORARY TABLE field_tmp_cnic (pos BIGINT, id BIGINT, cnic TEXT)"))
    insert_arrow(conn, "field_tmp_cnic", pa.table({"pos": pa.array(idx, pa.int64()), "id": pa.array(pid[idx], pa.int64()),
                                                   "cnic": pa.array(cnic[idx].tolist(), pa.string())}))
    held = conn.execute(text(f"""SELECT t.pos, h.ref, i.household_id FROM field_tmp_cnic t
        JOIN individual i ON i.cnic = t.cnic AND i.id <> t.id AND {current.sql('i')}
        JOIN household h ON h.id = i.household_id""")).all()
    conn.execute(text("DROP TABLE IF EXISTS field_tmp_cnic"))
    taken = np.zeros(len(changed), dtype=bool)
    where = np.full(len(changed), None, dtype=object)
    for pos, ref, household in held:  # the error path
        taken[pos], where[pos] = True, f"household {ref} ({household})"
    shown = np.full(len(changed), "", dtype=object)
    shown[idx] = [cnic_rules.mask(c) for c in cnic[idx].tolist()]
    refuse_lines(taken, say(taken, label, ": cnic: CNIC ", shown, " is already held by a living member of ", where))
    # the same new number for two people of this batch: the later is refused
    numbers = cnic[idx].astype(str)
    order = np.argsort(numbers, kind="stable")
    again = np.zeros(len(changed), dtype=bool)
    again[idx[order[1:]]] = numbers[order[1:]] == numbers[order[:-1]]
    refuse_lines(again, say(again, label, ": cnic: CNIC ", shown, " is given to another person in this batch"))


def _member_raw(m: dict) -> dict:
    """A roster line as the registry's one-record doors take it (the form's id document "none": no number)."""
    raw = {k: (m.get(k) or "").strip() or None for k in MEMBER_KEYS}
    if raw["id_document"] == "none":
        raw["id_document"] = raw["cnic"] = None
    return raw


def _register(session: Session, item: SurveyItem) -> None:
    """A household not yet in the registry, surveyed: registered with source ``survey``."""
    v = item.values
    if str(v.get("district_id") or item.district_id).strip() != str(item.district_id):
        item.refused = (f"district_id: the new household is said to be in district {v.get('district_id')}, "
                        f"not in district {item.district_id} of this device and its user")
        return
    uc = (v.get("union_council") or "").strip()
    household = {"district_id": item.district_id, "tehsil_id": v.get("tehsil_id"),
                 "uc_id": uc if uc.isdigit() else None, **{k: v.get(k) for k in HOUSEHOLD_FIELDS}}
    members = sorted((_member_raw(m) for m in item.members), key=lambda m: m.get("relation_to_head") != "head")
    prov = Provenance(SOURCE, item.username, item.effective, item.source_ref)
    try:
        with session.begin_nested():
            record = register_household(session, household, members, prov)
    except (RegistryError, ValueError, TypeError) as exc:
        item.refused = f"new household: {exc}"[:400]
        return
    item.result.update(household_id=record.id, registered=record.ref, members_added=len(members), changes=0)


def _add_members(session: Session, item: SurveyItem, household_id: int, lines: list[dict]) -> None:
    prov = Provenance(SOURCE, item.username, item.effective, item.source_ref)
    added = []
    try:
        with session.begin_nested():
            for m in lines:
                try:
                    added.append(add_member(session, household_id, _member_raw(m), prov).id)
                except RegistryError as exc:
                    raise RegistryError(f"household {household_id}: member {m['_line']} (new): "
                                        f"{str(exc).split(': ', 1)[-1]}") from None
    except (RegistryError, ValueError) as exc:
        item.refused = str(exc)[:400]
        return
    item.result["members_added"] = len(added)
    item.added = added


def _write(session: Session, b: _Batch, hid, district, eff, hh_values, owner, pid, existing, m_values) -> None:
    """The value changes of the live, known households: one framework job per enumerator (the actor of
    a history row), each a set-based write of every field of every household and member."""
    items = b.items
    users = np.array([it.username for it in items], dtype=object)
    refs_all = np.array([it.source_ref for it in items], dtype=object)
    conn = session.connection()
    n_hh, n_m = b.n, len(owner)
    batches = []
    for user in sorted(set(users[b.live].tolist())):  # one job per enumerator: a handful
        mine = b.live & np.equal(users, user) & (hid > 0)
        if not mine.any():
            continue
        m_mine = existing & mine[owner] if n_m else np.zeros(0, dtype=bool)
        refs = np.concatenate([refs_all, refs_all[owner] if n_m else np.zeros(0, dtype=object)])
        effective = np.concatenate([eff, eff[owner] if n_m else np.zeros(0, dtype=object)])
        reference = f"field survey by {user}: {int(mine.sum())} submissions"
        batch_id = conn.execute(insert(IngestBatch.__table__).values(
            source=SOURCE, reference=reference[:200], effective_date=max(eff[mine].tolist()), actor=user[:80])
            .returning(IngestBatch.__table__.c.id)).scalar_one()
        batches.append(batch_id)
        report = FeedReport(DOOR.name, reference, user)
        job = _SurveyJob(DOOR, conn, {"effective": effective}, refs, np.arange(1, n_hh + n_m + 1),
                         np.ones(n_hh + n_m, dtype=bool), report, batch_id, 0, user, reference)
        hh_mask = np.concatenate([mine, np.zeros(n_m, dtype=bool)])
        hh_ids = np.concatenate([hid, np.zeros(n_m, dtype=np.int64)])
        hh_district = np.concatenate([district, np.zeros(n_m, dtype=np.int64)])
        for name, vals in hh_values.items():
            given = np.concatenate([np.not_equal(vals, None), np.zeros(n_m, dtype=bool)])
            job.change(hh_mask & given, "household", hh_ids, hh_ids, hh_district, name,
                       np.concatenate([vals, np.full(n_m, None, dtype=object)]), effective)
        if n_m:
            p_mask = np.concatenate([np.zeros(n_hh, dtype=bool), m_mine])
            p_ids = np.concatenate([np.zeros(n_hh, dtype=np.int64), pid])
            p_hh = np.concatenate([np.zeros(n_hh, dtype=np.int64), hid[owner]])
            p_district = np.concatenate([np.zeros(n_hh, dtype=np.int64), district[owner]])
            for name, vals in m_values.items():
                given = np.concatenate([np.zeros(n_hh, dtype=bool), np.not_equal(vals, None)])
                job.change(p_mask & given, "individual", p_ids, p_hh, p_district, name,
                           np.concatenate([np.full(n_hh, None, dtype=object), vals]), effective)
        write_changes(job)
        conn.execute(IngestBatch.__table__.update().where(IngestBatch.__table__.c.id == batch_id)
                     .values(summary=report.counts()))
    # what each submission wrote (history rows, conflicts), by its source reference
    counts: dict[str, dict] = defaultdict(dict)
    if batches:
        ids = ", ".join(str(x) for x in batches)
        for ref, n in conn.execute(text(f"SELECT source_ref, COUNT(*) FROM value_change WHERE batch_id IN ({ids}) "
                                        "GROUP BY source_ref")):
            counts[ref]["changes"] = int(n)
        refs = [it.source_ref for i, it in enumerate(items) if b.live[i]]
        for ref, n in _conflicts(conn, refs):
            counts[ref]["conflicts"] = int(n)
    # a survey verifies the household on the day it was collected (as an edit with source survey does)
    live = np.flatnonzero(b.live & (hid > 0))
    t = pa.table({"id": pa.array(hid[live], pa.int64()), "eff": pa.array(eff[live].tolist(), pa.date32())})
    agg = t.group_by("id").aggregate([("eff", "max")])
    t = pa.table({"id": agg["id"], "eff": agg["eff_max"]})
    conn.execute(text("DROP TABLE IF EXISTS field_tmp_verified"))
    conn.execute(text("CREATE TEMPORARY TABLE field_tmp_verified (id BIGINT, eff DATE)"))
    insert_arrow(conn, "field_tmp_verified", t)
    conn.execute(text("UPDATE household SET verified_on = m.eff FROM field_tmp_verified m "
                      "WHERE household.id = m.id AND household.verified_on < m.eff"))
    conn.execute(text("DROP TABLE IF EXISTS field_tmp_verified"))
    for i in live:
        got = counts.get(items[i].source_ref, {})
        items[i].result.update(changes=got.get("changes", 0), **({"conflicts": got["conflicts"]} if got.get("conflicts")
                                                                  else {}))


def _conflicts(conn, refs: list[str]) -> list[tuple]:
    if not refs:
        return []
    conn.execute(text("DROP TABLE IF EXISTS field_tmp_refs"))
    conn.execute(text("CREATE TEMPORARY TABLE field_tmp_refs (ref TEXT)"))
    insert_arrow(conn, "field_tmp_refs", pa.table({"ref": pa.array(refs, pa.string())}))
    rows = conn.execute(text("SELECT c.source_ref, COUNT(*) FROM source_conflict c JOIN field_tmp_refs t "
                             "ON t.ref = c.source_ref GROUP BY c.source_ref")).all()
    conn.execute(text("DROP TABLE IF EXISTS field_tmp_refs"))
    return rows


def _not_on_roster(session: Session, b: _Batch, hid, upd, owner, pid, existing) -> None:
    """Current members of the surveyed households the enumerator did not list: kept, named for an officer."""
    targets = np.flatnonzero(upd & b.live)
    if not len(targets):
        return
    rows = _lookup(session, hid[targets], f"SELECT i.household_id, i.id FROM individual i JOIN field_tmp_ids t "
                                          f"ON t.id = i.household_id WHERE {current.sql('i')}")
    if not rows:
        return
    households = np.asarray([r[0] for r in rows], dtype=np.int64)
    persons = np.asarray([r[1] for r in rows], dtype=np.int64)
    listed = pid[existing & b.live[owner]] if len(owner) else np.zeros(0, dtype=np.int64)
    listed = np.concatenate([listed, np.asarray([p for i in targets for p in b.items[i].added], dtype=np.int64)])
    unlisted = ~np.isin(persons, listed)
    if not unlisted.any():
        return
    by_household: dict[int, list[int]] = defaultdict(list)
    for h, p in zip(households[unlisted].tolist(), persons[unlisted].tolist()):  # the exceptions only
        by_household[h].append(p)
    for i in targets:
        missing = by_household.get(int(hid[i]))
        if missing:
            b.items[i].result["not_on_roster"] = sorted(missing)


class _SurveyJob(Job):
    """The framework's job, with each row's source reference given whole (device and instanceID)."""

    def source_ref(self, pos: np.ndarray) -> np.ndarray:
        return self.refs[pos]
