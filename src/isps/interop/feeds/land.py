"""Land records (Punjab Land Records Authority, fard): each record is one owner's total holding in
acres; a household's ``land_acres`` becomes the sum of its members' holdings in the delivery."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from sqlalchemy.orm import Session

from isps.registry.fields import Field
from isps.interop.feeds import samples
from isps.interop.feeds.framework import Feed, Job, register

COLUMNS = (
    Field("cnic", "cnic"),
    Field("mauza", "text", required=False, max_len=60),
    Field("area_acres", "float", low=0, high=10_000),
    Field("recorded_on", "date"),
)


def apply(job: Job) -> None:
    p = job.people_by_cnic("cnic", what="owner")
    pos = np.flatnonzero(p["found"] & job.live)
    if len(pos) == 0:
        return
    hh = p["household_id"][pos].astype(np.int64)
    uniq, inv = np.unique(hh, return_inverse=True)
    total = np.bincount(inv, weights=job.col("area_acres")[pos].astype(float))
    value = np.full(job.n, None, dtype=object)
    value[pos] = np.round(total[inv], 2).astype(object)
    job.change(p["found"], "household", p["household_id"], p["household_id"], p["district_id"], "land_acres", value)


def generate(session: Session, n: int, seed: int) -> pa.Table:
    rng = samples.rng_for(seed, "land")
    p = samples.people(session, n, rng, where="i.relation_to_head IN ('head', 'father', 'son')")
    k = len(p["id"])
    acres = np.round(np.where(rng.random(k) < 0.6, rng.gamma(1.2, 2.0, k), 0.0), 2)
    return pa.table({
        "record_ref": samples.refs("PLRA", seed, k), "cnic": samples.written_cnic(p["cnic"]),
        "mauza": pa.array(("Mauza " + rng.integers(1, 400, k).astype(str).astype(object)).tolist(), pa.string()),
        "area_acres": pa.array(acres), "recorded_on": samples.dates(rng, k),
    })


FEED = register(Feed("land", "Land records", "partner", COLUMNS, "recorded_on", apply, generate, __doc__))
