"""Benchmark: the labour registries' batch paths on a synthetic registry.

``python -m bench.labour --households 100000 --rows 50000 --wagers 2000 --backend postgresql``

* ``labour.upload``: one employer file of ``--rows`` workers' months (formal door, CSV) received
  whole: read, column-wise checks, CNIC look-up, the records, registers, ``labour_person`` and the
  registry's ``labour_status`` with history and events; then the events re-scored.
* ``labour.rotation``: ``--wagers`` daily wagers at one booth, a month of daily offers of a tenth of
  them, each offer one ranked ``INSERT ... SELECT`` and the day recorded as worked; the time per offer
  at the end of the month (the most history to rank over) is the figure that matters.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
from sqlalchemy import select, text

from bench.run import fresh_database, record
from isps.db import make_engine, transaction
from isps.labour import uploads, wagers
from isps.migrate import upgrade
from isps.registry.bulk import insert_arrow
from isps.registry.cnic import formatted
from isps.registry.models import Individual
from isps.synth.load import load_synthetic
from isps.targeting import pmt


def _people(engine, k: int) -> list[tuple[int, int, int, str]]:
    with transaction(engine) as s:
        return [tuple(r) for r in s.execute(
            select(Individual.id, Individual.household_id, Individual.district_id, Individual.cnic)
            .where(Individual.cnic.is_not(None), Individual.date_of_death.is_(None),
                   Individual.date_of_birth <= date(2000, 1, 1))
            .order_by(Individual.id).limit(k * 2)).all()]


def run(backend: str, households: int, rows: int, n_wagers: int, workdir: Path) -> None:
    engine = make_engine(fresh_database(backend, workdir, "isps_bench_labour"))
    upgrade(engine)
    load_synthetic(engine, households, seed=1)
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s))
    if backend == "postgresql":  # as after any bulk load (bench.feeds does the same)
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    people = _people(engine, max(rows, n_wagers))
    seen, unique = set(), []
    for p in people:  # a CNIC held once
        if p[3] not in seen:
            seen.add(p[3])
            unique.append(p)
    workers = unique[:rows]
    path = workdir / "eobi_bench.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(uploads.DOORS["formal"].names)
        for i, (_, _, _, cnic) in enumerate(workers):
            w.writerow([f"EOBI-{i % 500:04d}", f"Employer {i % 500}", "eobi", formatted(cnic), "Worker",
                        "2026-10-01", "37000", "370"])
    t = time.perf_counter()
    rep = uploads.upload(engine, "formal", path, actor="bench", today=date(2026, 12, 7))
    upload_s = time.perf_counter() - t
    assert rep.ok, rep.lines()[:5]
    t = time.perf_counter()
    with transaction(engine) as s:
        rescored = pmt.process_events(s)
    rescore_s = time.perf_counter() - t
    record("labour.upload", {"backend": backend, "n": len(workers), "seconds": round(upload_s, 2),
                             "rows_per_s": round(len(workers) / upload_s), "rescore_seconds": round(rescore_s, 2),
                             "rescored": rescored, "registry_households": households,
                             "status_changed": rep.registry.get("applied", 0)}, keys=())

    # the booth: wagers registered set-based (the bench's own setup), then a month of offers
    crowd = unique[:n_wagers]
    with transaction(engine) as s:
        district = crowd[0][2]
        insert_arrow(s.connection(), "labour_worker", pa.table({
            "register": pa.array(["daily_wager"] * len(crowd)), "individual_id": pa.array([p[0] for p in crowd]),
            "household_id": pa.array([p[1] for p in crowd]), "district_id": pa.array([district] * len(crowd)),
            "since": pa.array([date(2026, 10, 1) + timedelta(days=i % 30) for i in range(len(crowd))], pa.date32()),
            "booth": pa.array(["Bench Chowk"] * len(crowd)), "source_ref": pa.array(["bench"] * len(crowd)),
            "recorded_by": pa.array(["bench"] * len(crowd)), "active": pa.array([True] * len(crowd))}))
    slots = max(1, n_wagers // 10)
    times = []
    for d in range(30):
        t = time.perf_counter()
        with transaction(engine) as s:
            offer = wagers.offer_work(s, district, "Bench Chowk", date(2026, 11, 1) + timedelta(days=d), slots,
                                      "Bench Builders", "Shuttering", "bench")
            wagers.take_offer(s, offer.id)
        times.append(time.perf_counter() - t)
    with engine.connect() as conn:
        days = [r[0] for r in conn.execute(text("SELECT COUNT(*) FROM labour_wager_day GROUP BY individual_id"))]
    record("labour.rotation", {"backend": backend, "n": n_wagers, "slots_per_day": slots, "days": 30,
                               "month_seconds": round(sum(times), 2), "last_offer_ms": round(1000 * times[-1], 1),
                               "max_offer_ms": round(1000 * max(times), 1),
                               "days_worked_min": min(days), "days_worked_max": max(days)}, keys=())
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    ap.add_argument("--households", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--wagers", type=int, default=2_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(args.backend, args.households, args.rows, args.wagers, Path(tmp))


if __name__ == "__main__":
    main()
