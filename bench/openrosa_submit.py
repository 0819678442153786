"""Benchmark: field survey submissions applied to the registry with its history, then re-scored.

``python -m bench.openrosa_submit --households 10000 --submissions 10000 --backend postgresql``

A synthetic province of ``--households`` households; one enumerator and one registered device per
district; ``--submissions`` re-surveys of as many households, each the full instance ODK Collect
sends (built with :func:`isps.fieldwork.forms.build_instance`: every household field and every
member's line, a few answers different from the registry: rooms, an appliance, a member's schooling),
stored as ``received`` submissions with one set-based insert (what the inbox stores, without the HTTP),
each household assigned to its district's enumerator.
Timed: :func:`isps.fieldwork.apply.apply_pending` (read and check every instance, the value changes with
history and events, the outcomes, the assignments) and :func:`isps.services.events.drain` (the PMT
re-scores the households whose values moved, and every other consumer runs). The row
``openrosa.submit`` goes to ``bench/results/openrosa.submit.json`` with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
from sqlalchemy import select, text

from bench.run import fresh_database, record
from isps.db import make_engine, transaction
from isps.fieldwork import forms
from isps.fieldwork.apply import apply_pending
from isps.migrate import upgrade
from isps.registry import current
from isps.registry.bulk import insert_arrow
from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS
from isps.registry.models import Household, Individual
from isps.services.events import drain
from isps.synth.load import load_synthetic
from isps.targeting import pmt


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _devices(engine) -> dict[int, tuple[int, str]]:
    """One enumerator and one device per district (set-based setup rows): district -> (device id, user)."""
    with transaction(engine) as s:
        districts = [d for (d,) in s.execute(text("SELECT id FROM district ORDER BY id"))]
        conn = s.connection()
        insert_arrow(conn, "app_user", pa.table({
            "username": pa.array([f"bench_enum_{d}" for d in districts]),
            "full_name": pa.array([f"Bench enumerator {d}" for d in districts]),
            "role": pa.array(["enumerator"] * len(districts)), "district_id": pa.array(districts, pa.int64()),
            "password_hash": pa.array(["!"] * len(districts)), "active": pa.array([True] * len(districts))}))
        insert_arrow(conn, "field_device", pa.table({
            "code": pa.array([f"bench-{d}" for d in districts]), "label": pa.array(["bench"] * len(districts)),
            "username": pa.array([f"bench_enum_{d}" for d in districts]),
            "district_id": pa.array(districts, pa.int64()),
            "token_hash": pa.array([f"{d:064d}" for d in districts]), "digest_ha1": pa.array(["0" * 32] * len(districts)),
            "active": pa.array([True] * len(districts)), "registered_by": pa.array(["bench"] * len(districts)),
            "registered_at": pa.array([datetime.now()] * len(districts), pa.timestamp("us"))}))
        return {d: (i, u) for i, u, d in s.execute(text("SELECT id, username, district_id FROM field_device"))}


def _instances(engine, k: int, devices: dict, collected: datetime) -> pa.Table:
    """``k`` re-surveys as the inbox stores them: the instance XML and its columns."""
    spec = forms.form(forms.FORM_IDS["survey"])
    rng = random.Random(7)
    with transaction(engine) as s:
        households = list(s.execute(select(Household).order_by(Household.id).limit(k)).scalars())
        ids = [h.id for h in households]
        people: dict[int, list[Individual]] = {}
        for p in s.scalars(select(Individual).where(Individual.household_id.in_(ids), current.clause())
                           .order_by(Individual.household_id, Individual.roster_line)):
            people.setdefault(p.household_id, []).append(p)
    cols: dict[str, list] = {c: [] for c in ("instance_id", "device_id", "username", "district_id", "household_id",
                                             "collected_at", "xml")}
    for h in households:  # the bench's own setup: a form filled per household
        values = {name: _text(getattr(h, name)) for name in HOUSEHOLD_FIELDS}
        values.update(household_id=str(h.id), district_id=str(h.district_id), tehsil_id=str(h.tehsil_id),
                      union_council=str(h.uc_id or ""), consent="yes",
                      rooms=str(min(40, h.rooms + rng.choice((0, 1, 1, 2)))), fridge=rng.choice(("yes", "no")))
        members = []
        for p in people.get(h.id, []):
            line = {name: _text(getattr(p, name)) for name in INDIVIDUAL_FIELDS}
            line.update(individual_id=str(p.id), cnic=p.cnic or "")
            if p.enrolled_in_school is False and 5 <= (collected.year - p.date_of_birth.year) <= 15:
                line["enrolled_in_school"] = "yes"
            members.append(line)
        device, user = devices[h.district_id]
        instance_id = f"uuid:{uuid.UUID(int=rng.getrandbits(128))}"
        at = collected - timedelta(minutes=rng.randrange(0, 60 * 24 * 5))
        xml = forms.build_instance(spec.form_id, values, {"member": members}, instance_id=instance_id,
                                   device_id=f"collect:bench{h.district_id}", collected_at=at)
        for name, value in (("instance_id", instance_id), ("device_id", device), ("username", user),
                            ("district_id", h.district_id), ("household_id", h.id), ("collected_at", at),
                            ("xml", xml.decode("utf-8"))):
            cols[name].append(value)
    n = len(households)
    return pa.table({
        "instance_id": pa.array(cols["instance_id"]), "form_id": pa.array([spec.form_id] * n),
        "form_version": pa.array([spec.version] * n), "job": pa.array(["survey"] * n),
        "device_id": pa.array(cols["device_id"], pa.int64()), "channel": pa.array(["odk"] * n),
        "username": pa.array(cols["username"]), "district_id": pa.array(cols["district_id"], pa.int64()),
        "household_id": pa.array(cols["household_id"], pa.int64()),
        "collected_at": pa.array(cols["collected_at"], pa.timestamp("us")),
        "received_at": pa.array([datetime.now()] * n, pa.timestamp("us")), "xml": pa.array(cols["xml"]),
        "status": pa.array(["received"] * n)})


def run(backend: str, households: int, submissions: int, workdir: Path) -> dict:
    engine = make_engine(fresh_database(backend, workdir, "isps_bench_openrosa"))
    upgrade(engine)
    load_synthetic(engine, households, seed=1)
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s))
    devices = _devices(engine)
    collected = datetime.now().replace(microsecond=0) - timedelta(days=1)
    t = time.perf_counter()
    rows = _instances(engine, submissions, devices, collected)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    with transaction(engine) as s:
        insert_arrow(s.connection(), "field_submission", rows)
    store_s = time.perf_counter() - t
    with transaction(engine) as s:  # each household was assigned to its district's enumerator (closed by the apply)
        s.execute(text("""INSERT INTO field_assignment (kind, enumerator, district_id, tehsil_id, household_id, status,
                assigned_by, assigned_at)
            SELECT 'survey', f.username, h.district_id, h.tehsil_id, h.id, 'open', 'bench', :now
            FROM field_submission f JOIN household h ON h.id = f.household_id"""), {"now": datetime.now()})
    if backend == "postgresql":  # as after any bulk load (bench.feeds and bench.labour do the same)
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    t = time.perf_counter()
    applied = apply_pending(engine)
    apply_s = time.perf_counter() - t
    t = time.perf_counter()
    drained = drain(engine)
    drain_s = time.perf_counter() - t
    with engine.connect() as conn:
        history = conn.execute(text("SELECT COUNT(*) FROM value_change WHERE source = 'survey'")).scalar()
        statuses = dict(conn.execute(text("SELECT status, COUNT(*) FROM field_submission GROUP BY status")).all())
        still_open = conn.execute(text("SELECT COUNT(*) FROM field_assignment WHERE status = 'open'")).scalar()
    assert statuses.get("accepted") == rows.num_rows and still_open == 0, (statuses, still_open)
    row = {"backend": backend, "n": rows.num_rows, "seconds": round(apply_s + drain_s, 2),
           "apply_seconds": round(apply_s, 2), "drain_seconds": round(drain_s, 2),
           "per_second": round(rows.num_rows / (apply_s + drain_s)), "registry_households": households,
           "accepted": applied.get("accepted", 0), "refused": applied.get("refused", 0), "history_rows": history,
           "rescored": drained.get("rescored"), "build_seconds": round(build_s, 2),
           "store_seconds": round(store_s, 2), "load_1min": round(os.getloadavg()[0], 2)}
    record("openrosa.submit", row, keys=())
    engine.dispose()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", default="postgresql", help="sqlite, postgresql or both separated by a comma")
    ap.add_argument("--households", type=int, default=10_000)
    ap.add_argument("--submissions", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("ISPS_BENCH_DIR")) as tmp:
        for backend in args.backend.split(","):
            run(backend, args.households, args.submissions, Path(tmp))


if __name__ == "__main__":
    main()
