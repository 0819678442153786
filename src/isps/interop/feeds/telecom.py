"""Monthly telecom spending from mobile operators (through PTA): what the SIMs registered to a CNIC
spent in a month. Summed per household, month and operator into ``telecom_spend`` (the table the
telecom means test reads); a delivery carries an operator's whole month, so its sum replaces the
household's amount for that month and operator."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from sqlalchemy.orm import Session

from isps.registry.fields import Field
from isps.interop.feeds import samples
from isps.interop.feeds.framework import Feed, Job, index_of, month_start, register

OPERATORS = ("Jazz", "Zong", "Telenor", "Ufone")
COLUMNS = (
    Field("cnic", "cnic"),
    Field("operator", "choice", choices=tuple(o.lower() for o in OPERATORS)),
    Field("billing_month", "date"),
    Field("amount_pkr", "float", low=0, high=10_000_000),
)


def apply(job: Job) -> None:
    p = job.people_by_cnic("cnic", what="SIM owner")
    pos = np.flatnonzero(p["found"] & job.live)
    if len(pos) == 0:
        return
    grouped = pa.table({
        "household_id": pa.array(p["household_id"][pos].astype(np.int64)),
        "month": month_start(job.col("billing_month")[pos]),
        "operator": pa.array(job.col("operator")[pos].tolist(), pa.string()),
        "district_id": pa.array(p["district_id"][pos].astype(np.int64)),
        "amount_pkr": pa.array(job.col("amount_pkr")[pos].astype(float)),
    }).group_by(["household_id", "month", "operator"]).aggregate([("district_id", "max"), ("amount_pkr", "sum")])
    op = np.asarray(OPERATORS, dtype=object)[index_of(grouped["operator"].combine_chunks(),
                                                      [o.lower() for o in OPERATORS])]
    job.upsert("telecom_spend", pa.table({
        "household_id": grouped["household_id"], "month": grouped["month"],
        "operator": pa.array(list(op), pa.string()), "district_id": grouped["district_id_max"],
        "amount_pkr": grouped["amount_pkr_sum"], "source": pa.array(["operator"] * grouped.num_rows)}),
        key=["household_id", "month", "operator"], update=["amount_pkr", "source"],
        types={"household_id": "BIGINT", "month": "DATE", "operator": "TEXT", "district_id": "BIGINT",
               "amount_pkr": "FLOAT", "source": "TEXT"})


def generate(session: Session, n: int, seed: int) -> pa.Table:
    """Three months (April-June 2026) for n/3 SIM owners on one operator each."""
    rng = samples.rng_for(seed, "telecom")
    p = samples.people(session, max(n // 3, 1), rng, where="i.phone IS NOT NULL")
    k = len(p["id"])
    idx = np.repeat(np.arange(k), 3)[:n]
    months = np.array(["2026-04-01", "2026-05-01", "2026-06-01"], dtype="datetime64[D]")
    operator = rng.choice(np.array(OPERATORS, dtype=object), k, p=[0.37, 0.27, 0.23, 0.13])
    per = 300 * np.exp(rng.normal(0, 0.6, k))
    return pa.table({
        "record_ref": samples.refs("PTA", seed, len(idx)), "cnic": samples.written_cnic(p["cnic"][idx]),
        "operator": pa.array(operator[idx].tolist(), pa.string()),
        "billing_month": pa.array(months[np.tile(np.arange(3), k)[:n]]),
        "amount_pkr": pa.array(np.round(per[idx] * np.exp(rng.normal(0, 0.2, len(idx))))),
    })


FEED = register(Feed("telecom", "Monthly telecom spending", "partner", COLUMNS, "billing_month", apply, generate,
                     __doc__))
