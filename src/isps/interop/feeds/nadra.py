"""NADRA vital events: births, deaths, changes of marital status and CNICs issued.

One record per event, keyed by NADRA's transaction number (``record_ref``):

* ``birth``: ``cnic`` is a parent's; the child (``child_bform``, ``child_name``, ``child_sex``, born on
  ``event_date``) is added to the parent's household with a B-form;
* ``death``: ``cnic`` is the deceased's; ``date_of_death = event_date`` (→ ``member.deceased``);
* ``marital_status``: ``cnic`` is the person's; ``marital_status`` is the new status;
* ``cnic_issued``: ``cnic`` is the holder's B-form number; ``new_cnic`` is the CNIC issued.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import column, func, select, table
from sqlalchemy.orm import Session

from isps.registry import events, vocab
from isps.registry.fields import Field
from isps.registry.ids import INDIVIDUAL_RANGE
from isps.registry.models import Individual
from isps.registry.transfer import _allocate
from isps.interop.feeds import samples
from isps.interop.feeds.framework import Feed, Job, masked, np_of, register, say

EVENTS = ("birth", "death", "marital_status", "cnic_issued")

COLUMNS = (
    Field("event", "choice", choices=EVENTS),
    Field("event_date", "date"),
    Field("cnic", "cnic"),
    Field("marital_status", "choice", required=False, choices=vocab.MARITAL),
    Field("child_bform", "cnic", required=False),
    Field("child_name", "text", required=False, max_len=80),
    Field("child_sex", "choice", required=False, choices=vocab.SEX),
    Field("new_cnic", "cnic", required=False),
)


def _registered(job: Job, name: str) -> np.ndarray:
    """Rows whose number in column ``name`` is already someone's in the registry."""
    keys = job.col(name)
    pos = np.flatnonzero(job.live & np.not_equal(keys, None))
    out = np.zeros(job.n, dtype=bool)
    if len(pos):
        tmp = job.temp({"pos": "BIGINT", "k": "TEXT"},
                       pa.table({"pos": pa.array(pos, pa.int64()), "k": pa.array(keys[pos].tolist(), pa.string())}))
        t = table(tmp, column("pos"), column("k"))
        I = Individual.__table__
        hit = [r[0] for r in job.conn.execute(select(t.c.pos).select_from(t.join(I, I.c.cnic == t.c.k)).distinct())]
        job.drop(tmp)
        out[np.asarray(hit, dtype=np.int64)] = True
    return out


def _before(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.zeros(len(a), dtype=bool)
    both = mask & np.not_equal(a, None) & np.not_equal(b, None)
    if both.any():
        out[both] = np_of(pc.less(pa.array(list(a[both]), pa.date32()), pa.array(list(b[both]), pa.date32())))
    return out


def apply(job: Job) -> None:
    ev = job.col("event")
    is_ = {e: np.equal(ev, e) for e in EVENTS}
    # what each kind of event needs
    job.reject(is_["marital_status"] & np.equal(job.col("marital_status"), None), "marital_status",
               "a marital_status event needs the new marital_status")
    for name in ("child_bform", "child_name", "child_sex"):
        job.reject(is_["birth"] & np.equal(job.col(name), None), name, f"a birth needs the {name}")
    job.reject(is_["cnic_issued"] & np.equal(job.col("new_cnic"), None), "new_cnic",
               "a cnic_issued event needs the new_cnic")
    born = is_["birth"] & _registered(job, "child_bform")
    job.reject(born, "child_bform", say(born, "B-form ", masked(job.col("child_bform")),
                                        " is already in the registry"))
    taken = is_["cnic_issued"] & _registered(job, "new_cnic") & np.not_equal(job.col("new_cnic"), job.col("cnic"))
    job.reject(taken, "new_cnic", say(taken, "CNIC ", masked(job.col("new_cnic")), " is already in the registry"))

    p = job.people_by_cnic("cnic", alive=False)
    dead = ~is_["death"] & np.not_equal(p["date_of_death"], None)
    job.reject(dead, "cnic", say(dead, "the person with CNIC ", masked(job.col("cnic")), " is recorded as deceased"))
    eff = job.col("event_date")
    early = _before(eff, p["date_of_birth"], job.live & (is_["death"] | is_["marital_status"]))
    job.reject(early, "event_date", "is before the person's date of birth")
    not_bform = is_["cnic_issued"] & job.live & np.not_equal(p["id_document"], "bform")
    job.reject(not_bform, "cnic", "a CNIC is issued to the holder of a B-form; this number is not a B-form")
    ok = p["found"] & job.live
    iid, hid, did = p["individual_id"], p["household_id"], p["district_id"]
    job.change(ok & is_["death"], "individual", iid, hid, did, "date_of_death", eff)
    job.change(ok & is_["marital_status"], "individual", iid, hid, did, "marital_status", job.col("marital_status"))
    job.change(ok & is_["cnic_issued"], "individual", iid, hid, did, "cnic", job.col("new_cnic"))
    job.change(ok & is_["cnic_issued"], "individual", iid, hid, did, "id_document",
               np.full(job.n, "cnic", dtype=object))
    _births(job, ok & is_["birth"] & job.live, p)


def _next_in_districts(job: Job, district: np.ndarray) -> dict[int, int]:
    """How far each district's individual-id range is used: one primary-key probe per district."""
    I = Individual.__table__
    out = {}
    for d in np.unique(district).tolist():  # at most one per district
        lo = int(d) * INDIVIDUAL_RANGE
        top = job.conn.execute(select(func.max(I.c.id)).where(I.c.id >= lo, I.c.id < lo + INDIVIDUAL_RANGE)).scalar()
        out[int(d)] = int(top) - lo if top else 0
    return out


def _births(job: Job, mask: np.ndarray, parent: dict) -> None:
    pos = np.flatnonzero(mask)
    if len(pos) == 0:
        return
    hh = parent["household_id"][pos].astype(np.int64)
    district = parent["district_id"][pos].astype(np.int64)
    I = Individual.__table__
    # next roster line per household: the household's highest plus the child's rank in this delivery
    tmp = job.temp({"id": "BIGINT"}, pa.table({"id": pa.array(np.unique(hh), pa.int64())}))
    t = table(tmp, column("id"))
    top = dict(job.conn.execute(select(I.c.household_id, func.max(I.c.roster_line))
                                .select_from(t.join(I, I.c.household_id == t.c.id)).group_by(I.c.household_id)).all())
    job.drop(tmp)
    order = np.argsort(hh, kind="stable")
    sorted_h = hh[order]
    rank = np.empty(len(hh), dtype=np.int64)
    rank[order] = np.arange(len(hh)) - np.searchsorted(sorted_h, sorted_h, side="left")
    uniq, inv = np.unique(hh, return_inverse=True)
    top_arr = np.array([int(top.get(int(h), 0)) for h in uniq], dtype=np.int64)  # one per household
    roster = top_arr[inv] + rank + 1
    ids = _allocate(_next_in_districts(job, district), district, INDIVIDUAL_RANGE)
    rel_parent = parent["relation_to_head"][pos]
    relation_child = np.where(np.isin(rel_parent.astype(str), ["head", "spouse"]),
                              np.where(np.equal(job.col("child_sex")[pos], "female"), "daughter", "son"),
                              np.where(np.isin(rel_parent.astype(str), ["son", "daughter", "daughter_in_law",
                                                                         "son_in_law"]), "grandchild", "other"))
    dob = job.col("event_date")[pos]
    n = len(pos)
    job.insert("individual", pa.table({
        "id": pa.array(ids, pa.int64()), "household_id": pa.array(hh, pa.int64()),
        "district_id": pa.array(district, pa.int64()), "roster_line": pa.array(roster, pa.int64()),
        "cnic": pa.array(job.col("child_bform")[pos].tolist(), pa.string()),
        "id_document": pa.array(["bform"] * n, pa.string()),
        "full_name": pa.array(job.col("child_name")[pos].tolist(), pa.string()),
        "father_husband_name": pa.array([None] * n, pa.string()),
        "sex": pa.array(job.col("child_sex")[pos].tolist(), pa.string()),
        "date_of_birth": pa.array(list(dob), pa.date32()),
        "relation_to_head": pa.array(relation_child.tolist(), pa.string()),
        "marital_status": pa.array(["never_married"] * n, pa.string()),
        "disability": pa.array(["none"] * n, pa.string()), "education": pa.array(["none"] * n, pa.string()),
        "enrolled_in_school": pa.array(np.zeros(n, dtype=bool)), "occupation": pa.array([None] * n, pa.string()),
        "labour_status": pa.array(["child"] * n, pa.string()), "maternal_status": pa.array([None] * n, pa.string()),
        "phone": pa.array([None] * n, pa.string()), "date_of_death": pa.array([None] * n, pa.date32()),
        "member_since": pa.array(list(dob), pa.date32()), "batch_id": pa.array(np.full(n, job.batch_id), pa.int64()),
    }))
    # the birth in the household's history, with its source
    srcref = job.source_ref(pos)
    job.insert("value_change", pa.table({
        "entity": pa.array(["individual"] * n), "entity_id": pa.array(ids, pa.int64()),
        "household_id": pa.array(hh, pa.int64()), "district_id": pa.array(district, pa.int64()),
        "field": pa.array(["member_added"] * n), "old_value": pa.array([None] * n, pa.string()),
        "new_value": pa.array(("birth: " + job.col("child_name")[pos].astype(str).astype(object)).tolist()),
        "source": pa.array([job.feed.source] * n), "source_ref": pa.array([s[:200] for s in srcref.tolist()]),
        "effective_date": pa.array(list(dob), pa.date32()), "actor": pa.array([job.actor] * n),
        "batch_id": pa.array(np.full(n, job.batch_id), pa.int64()),
    }))
    job.report.value_changes += n
    job.event(events.HOUSEHOLD_CHANGED, hh,
              (f'{{"batch_id": {job.batch_id}, "feed": "nadra", "fields": ["member.added"], "individual_id": '
               + ids.astype(str).astype(object) + "}").astype(object))


def generate(session: Session, n: int, seed: int) -> pa.Table:
    """Deaths (30%), marital-status changes (30%), births (25%) and CNICs issued (15%) about real
    registry members; event dates in 2025-26."""
    rng = samples.rng_for(seed, "nadra")
    k_birth, k_cnic = int(n * 0.25), int(n * 0.15)
    k_death = int(n * 0.30)
    k_mar = n - k_birth - k_cnic - k_death
    adults = samples.people(session, k_death + k_mar + k_birth, rng)
    m = len(adults["id"])
    k_death, k_mar = min(k_death, m), min(k_mar, max(m - k_death, 0))
    k_birth = min(k_birth, max(m - k_death - k_mar, 0))
    kids = samples.people(session, k_cnic, rng, adults=False)
    k_cnic = len(kids["id"])
    cn = adults["cnic"]
    # deaths and marital changes
    d_idx = np.arange(k_death)
    mar_idx = np.arange(k_death, k_death + k_mar)
    b_idx = np.arange(k_death + k_mar, k_death + k_mar + k_birth)
    new_status = np.where(np.equal(adults["marital_status"][mar_idx], "married"),
                          rng.choice(["widowed", "divorced"], len(mar_idx)), "married")
    kinds = np.concatenate([np.full(k_death, "death"), np.full(k_mar, "marital_status"), np.full(k_birth, "birth"),
                            np.full(k_cnic, "cnic_issued")]).astype(object)
    total = len(kinds)
    subject = np.concatenate([cn[d_idx], cn[mar_idx], cn[b_idx], kids["cnic"]]).astype(object)
    marital = np.concatenate([np.full(k_death, None), new_status.astype(object), np.full(k_birth + k_cnic, None)])
    # B-forms of the newborn: the parent's locality, a fresh serial, parity by sex
    child_sex = rng.choice(["male", "female"], k_birth)
    # a locality code next to the parent's (the synthetic registry uses every 20th), so no clash
    prefix = (np_of(pc.cast(pc.utf8_slice_codeunits(pa.array(cn[b_idx].astype(str).tolist(), pa.string()), 0, 5),
                            pa.int64())) + 1 + seed % 19).astype(str).astype(object) \
        if k_birth else np.zeros(0, dtype=object)
    serial = (seed // 19) * 1_000_000 % 10_000_000 + np.arange(k_birth)
    last = np.where(child_sex == "male", rng.choice([1, 3, 5, 7, 9], k_birth), rng.choice([2, 4, 6, 8], k_birth))
    bform = (prefix.astype(str).astype(object) + np.char.zfill(serial.astype(str), 7).astype(object)
             + last.astype(str).astype(object)) if k_birth else np.zeros(0, dtype=object)
    names = np.where(child_sex == "male", rng.choice(["Muhammad Ali", "Ahmed Raza", "Hamza", "Bilal", "Usman"], k_birth),
                     rng.choice(["Ayesha", "Fatima", "Zainab", "Maryam", "Hira"], k_birth)).astype(object)
    # the CNIC a B-form holder receives: the same number (NADRA keeps it)
    new_cnic = kids["cnic"]
    none = lambda k: np.full(k, None, dtype=object)  # noqa: E731
    dates = samples.dates(rng, total)
    table_ = pa.table({
        "record_ref": samples.refs("NADRA", seed, total),
        "event": pa.array(kinds.tolist(), pa.string()),
        "event_date": dates,
        "cnic": samples.written_cnic(subject),
        "marital_status": pa.array(marital.tolist(), pa.string()),
        "child_bform": pa.array(np.concatenate([none(k_death + k_mar), bform, none(k_cnic)]).tolist(), pa.string()),
        "child_name": pa.array(np.concatenate([none(k_death + k_mar), names, none(k_cnic)]).tolist(), pa.string()),
        "child_sex": pa.array(np.concatenate([none(k_death + k_mar), child_sex.astype(object), none(k_cnic)]).tolist(),
                              pa.string()),
        "new_cnic": pa.array(np.concatenate([none(k_death + k_mar + k_birth), new_cnic]).tolist(), pa.string()),
    })
    return table_


FEED = register(Feed("nadra", "NADRA vital events", "nadra", COLUMNS, "event_date", apply, generate, __doc__))
