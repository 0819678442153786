"""NGO, RSP and MFI household records in the prescribed format: a partner organisation that visited a
registered household (by its ``household_ref``) reports any of the Poverty Score Card's household
indicators it observed; empty cells say nothing. Source ``partner``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
from sqlalchemy.orm import Session

from isps.registry import vocab
from isps.registry.fields import HOUSEHOLD_FIELDS, Field
from isps.interop.feeds import samples
from isps.interop.feeds.framework import Feed, Job, register

INDICATORS = ("rooms", "roof", "wall", "toilet", "drinking_water", "cooking_fuel", "electricity", *vocab.DURABLES,
              "land_acres", "cattle", "goats_sheep", "tractor")
COLUMNS = (
    Field("household_ref", "text", max_len=40),
    Field("organisation", "text", max_len=80),
    Field("visited_on", "date"),
    *(dataclasses.replace(HOUSEHOLD_FIELDS[name], required=False) for name in INDICATORS),
)


def apply(job: Job) -> None:
    h = job.households_by_ref("household_ref")
    nothing = h["found"] & np.logical_and.reduce([np.equal(job.col(n), None) for n in INDICATORS])
    job.reject(nothing, "household_ref", "the record reports no indicator")
    for name in INDICATORS:
        given = h["found"] & np.not_equal(job.col(name), None)
        job.change(given, "household", h["household_id"], h["household_id"], h["district_id"], name, job.col(name))


def generate(session: Session, n: int, seed: int) -> pa.Table:
    """A visit per household reporting rooms, roof, toilet, cattle and goats (some cells empty)."""
    rng = samples.rng_for(seed, "ngo")
    h = samples.households(session, n, rng, "h.rooms, h.roof, h.toilet, h.cattle, h.goats_sheep")
    k = len(h["id"])

    def some(values: np.ndarray, p_empty: float = 0.2) -> list:
        return np.where(rng.random(k) < p_empty, None, values).tolist()

    rooms = np.maximum(h["rooms"].astype(int) + rng.choice([-1, 0, 0, 0, 1], k), 1)
    cattle = np.maximum(h["cattle"].astype(int) + rng.choice([-1, 0, 0, 1], k), 0)
    goats = np.maximum(h["goats_sheep"].astype(int) + rng.choice([-2, 0, 0, 2], k), 0)
    roof = np.where(rng.random(k) < 0.1, "rcc", h["roof"]).astype(object)
    orgs = np.array(["PRSP", "NRSP", "Akhuwat", "Kashf Foundation", "SRSO"], dtype=object)
    return pa.table({
        "record_ref": samples.refs("NGO", seed, k), "household_ref": pa.array(h["ref"].tolist(), pa.string()),
        "organisation": pa.array(orgs[rng.integers(0, len(orgs), k)].tolist(), pa.string()),
        "visited_on": samples.dates(rng, k),
        "rooms": pa.array(some(rooms), pa.int64()), "roof": pa.array(some(roof), pa.string()),
        "toilet": pa.array(some(h["toilet"]), pa.string()), "cattle": pa.array(some(cattle), pa.int64()),
        "goats_sheep": pa.array(some(goats), pa.int64()),
    })


FEED = register(Feed("ngo", "NGO/RSP/MFI household records", "partner", COLUMNS, "visited_on", apply, generate,
                     __doc__))
