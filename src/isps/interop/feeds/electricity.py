"""Monthly electricity consumption from the distribution companies (LESCO, FESCO, ...): units
billed to a household's meter in a month, stored in ``electricity_reading`` (the table the
electricity means test reads). A household billed for units has a connection: ``electricity``
becomes yes where the registry said no."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from sqlalchemy.orm import Session

from isps.registry.fields import Field
from isps.interop.feeds import samples
from isps.interop.feeds.framework import Feed, Job, month_start, register

COLUMNS = (
    Field("household_ref", "text", max_len=40),
    Field("disco", "text", required=False, max_len=20),
    Field("billing_month", "date"),
    Field("units", "float", low=0, high=100_000),
)


def apply(job: Job) -> None:
    h = job.households_by_ref("household_ref")
    pos = np.flatnonzero(h["found"] & job.live)
    if len(pos) == 0:
        return
    month = month_start(job.col("billing_month")[pos])
    hid = h["household_id"][pos].astype(np.int64)
    # one reading per household and month: the last row of the delivery wins
    key = hid * 100_000 + (np.asarray(month.to_numpy(zero_copy_only=False), dtype="datetime64[D]").astype(np.int64))
    last = np.unique(key[::-1], return_index=True)[1]
    keep = len(key) - 1 - last
    disco = job.col("disco")[pos][keep]
    ref = np.where(np.equal(disco, None), job.reference[:60], disco).astype(object)
    job.upsert("electricity_reading", pa.table({
        "household_id": pa.array(hid[keep]), "month": month.take(pa.array(keep)),
        "district_id": pa.array(h["district_id"][pos][keep].astype(np.int64)),
        "units": pa.array(job.col("units")[pos][keep].astype(float)),
        "source": pa.array(["disco"] * len(keep)), "reference": pa.array([r[:60] for r in ref.tolist()])}),
        key=["household_id", "month"], update=["units", "source", "reference"],
        types={"household_id": "BIGINT", "month": "DATE", "district_id": "BIGINT", "units": "FLOAT",
               "source": "TEXT", "reference": "TEXT"})
    billed = np.zeros(job.n, dtype=bool)
    billed[pos] = job.col("units")[pos].astype(float) > 0
    job.change(billed, "household", h["household_id"], h["household_id"], h["district_id"], "electricity",
               np.ones(job.n, dtype=bool).astype(object))


def generate(session: Session, n: int, seed: int) -> pa.Table:
    """Three months of bills per household (April-June 2026) for n/3 households with a connection."""
    rng = samples.rng_for(seed, "electricity")
    h = samples.households(session, max(n // 3, 1), rng, "h.rooms, h.air_conditioner, h.fridge",
                           where="h.electricity = " + ("true" if session.bind.dialect.name == "postgresql" else "1"))
    k = len(h["id"])
    months = np.array(["2026-04-01", "2026-05-01", "2026-06-01"], dtype="datetime64[D]")
    idx = np.repeat(np.arange(k), 3)[:n]
    m = months[np.tile(np.arange(3), k)[:n]]
    base = 30 + 12 * h["rooms"].astype(float) + 60 * h["fridge"].astype(float) + 250 * h["air_conditioner"].astype(float)
    units = np.rint(base[idx] * np.exp(rng.normal(0, 0.25, len(idx))))
    return pa.table({
        "record_ref": samples.refs("BILL", seed, len(idx)),
        "household_ref": pa.array(h["ref"][idx].tolist(), pa.string()),
        "disco": pa.array(["LESCO"] * len(idx), pa.string()),
        "billing_month": pa.array(m), "units": pa.array(units),
    })


FEED = register(Feed("electricity", "Monthly electricity consumption", "partner", COLUMNS, "billing_month", apply,
                     generate, __doc__))
