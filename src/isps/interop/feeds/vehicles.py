"""Vehicle registration (Excise & Taxation): a car, jeep or motorcycle registered to a member's
CNIC sets the household's ``car`` or ``motorcycle`` (a tractor sets ``tractor``)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from sqlalchemy.orm import Session

from isps.registry.fields import Field
from isps.interop.feeds import samples
from isps.interop.feeds.framework import Feed, Job, register

CLASSES = ("car", "jeep", "motorcycle", "tractor")
FIELD_OF = {"car": "car", "jeep": "car", "motorcycle": "motorcycle", "tractor": "tractor"}
COLUMNS = (
    Field("cnic", "cnic"),
    Field("registration_no", "text", max_len=20),
    Field("vehicle_class", "choice", choices=CLASSES),
    Field("registered_on", "date"),
)


def apply(job: Job) -> None:
    p = job.people_by_cnic("cnic", what="owner")
    cls = job.col("vehicle_class")
    yes = np.ones(job.n, dtype=bool).astype(object)
    for field_name in sorted(set(FIELD_OF.values())):
        mask = p["found"] & np.isin(cls.astype(str), [c for c, f in FIELD_OF.items() if f == field_name])
        job.change(mask, "household", p["household_id"], p["household_id"], p["district_id"], field_name, yes)


def generate(session: Session, n: int, seed: int) -> pa.Table:
    rng = samples.rng_for(seed, "vehicles")
    p = samples.people(session, n, rng, where="i.relation_to_head IN ('head', 'son', 'spouse')")
    k = len(p["id"])
    cls = rng.choice(np.array(CLASSES, dtype=object), k, p=[0.2, 0.03, 0.72, 0.05])
    letters = np.array(list("ABCDEFGHJKLMNPRSTUVWXYZ"), dtype=object)
    reg = (np.array(["LE", "LEB", "RIK", "FDA", "MNA", "GAA"], dtype=object)[rng.integers(0, 6, k)]
           + letters[rng.integers(0, len(letters), k)] + "-" + rng.integers(100, 9999, k).astype(str).astype(object))
    return pa.table({
        "record_ref": samples.refs("ET", seed, k), "cnic": samples.written_cnic(p["cnic"]),
        "registration_no": pa.array(reg.tolist(), pa.string()),
        "vehicle_class": pa.array(cls.tolist(), pa.string()), "registered_on": samples.dates(rng, k),
    })


FEED = register(Feed("vehicles", "Vehicle registration (Excise)", "partner", COLUMNS, "registered_on", apply,
                     generate, __doc__))
