"""Public-sector payroll (AGPR / provincial Accountant General): each employee on the payroll is
flagged for exclusion from targeted programs and their labour status becomes ``employed_formal``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from sqlalchemy.orm import Session

from isps.registry.fields import Field
from isps.interop.feeds import samples
from isps.interop.feeds.framework import Feed, Job, days, register

REASON = "public_sector_employee"
COLUMNS = (
    Field("cnic", "cnic"),
    Field("employer", "text", max_len=80),
    Field("bps_grade", "int", low=1, high=22),
    Field("monthly_pay", "float", low=0, high=10_000_000),
    Field("pay_month", "date"),
)


def apply(job: Job) -> None:
    p = job.people_by_cnic("cnic")
    ok = p["found"]
    iid, hid, did = p["individual_id"], p["household_id"], p["district_id"]
    job.change(ok, "individual", iid, hid, did, "labour_status", np.full(job.n, "employed_formal", dtype=object))
    pos = np.flatnonzero(ok & job.live)
    if len(pos) == 0:
        return
    # one flag per person: the newest pay month of this delivery
    order = np.lexsort((days(job.col("pay_month")[pos]), iid[pos].astype(np.int64)))
    ids = iid[pos][order].astype(np.int64)
    last = np.r_[ids[1:] != ids[:-1], True]
    pick = pos[order][last]
    n = len(pick)
    detail = (job.col("employer")[pick].astype(str).astype(object) + ", BPS "
              + job.col("bps_grade")[pick].astype(str).astype(object))
    job.upsert("exclusion_flag", pa.table({
        "individual_id": pa.array(iid[pick].astype(np.int64)), "reason": pa.array([REASON] * n),
        "household_id": pa.array(hid[pick].astype(np.int64)), "district_id": pa.array(did[pick].astype(np.int64)),
        "detail": pa.array([d[:200] for d in detail.tolist()]), "source": pa.array([job.feed.source] * n),
        "source_ref": pa.array([s[:200] for s in job.source_ref(pick).tolist()]),
        "effective_date": pa.array(list(job.col("pay_month")[pick]), pa.date32()),
        "active": pa.array(np.ones(n, dtype=bool))}),
        key=["individual_id", "reason"], update=["detail", "source_ref", "effective_date", "active"],
        types={"individual_id": "BIGINT", "reason": "TEXT", "household_id": "BIGINT", "district_id": "BIGINT",
               "detail": "TEXT", "source": "TEXT", "source_ref": "TEXT", "effective_date": "DATE",
               "active": "BOOLEAN"})


def generate(session: Session, n: int, seed: int) -> pa.Table:
    rng = samples.rng_for(seed, "payroll")
    p = samples.people(session, n, rng)
    k = len(p["id"])
    grade = rng.integers(1, 20, k)
    employers = np.array(["School Education Department", "Health Department", "Police Department",
                          "Revenue Department", "Local Government", "Irrigation Department"], dtype=object)
    months = np.array(["2026-04-01", "2026-05-01", "2026-06-01"], dtype="datetime64[D]")
    return pa.table({
        "record_ref": samples.refs("PAY", seed, k),
        "cnic": samples.written_cnic(p["cnic"]),
        "employer": pa.array(employers[rng.integers(0, len(employers), k)].tolist(), pa.string()),
        "bps_grade": pa.array(grade),
        "monthly_pay": pa.array(np.round(20_000 + grade * 6_500 * rng.uniform(0.9, 1.2, k), -1)),
        "pay_month": pa.array(months[rng.integers(0, 3, k)]),
    })


FEED = register(Feed("payroll", "Public-sector payroll", "partner", COLUMNS, "pay_month", apply, generate, __doc__))
