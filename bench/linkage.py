"""Linkage benchmark with known truth: partner lists drawn from a synthetic registry and corrupted
(30% without a valid CNIC, spelling variants and slips, father's name for husband's, day and month
swapped, other district, 10% people not in the registry), ingested and resolved against the
registry. Timed: ingestion (COPY) plus resolution (CNIC join, Splink training, prediction, writing
links, candidates and persons). Not timed: building the registry.

``python -m bench.linkage --n 100000 --n 1000000 [--backend postgresql]`` writes rows
``linkage.resolve`` with precision, recall, f1 and seconds into bench/results/linkage.resolve.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from bench.run import PG_ADMIN, record
from isps.db import make_engine
from isps.linkage import ingest, resolve, synthetic
from isps.migrate import upgrade
from isps.synth.generator import generate
from isps.synth.load import load_synthetic


def fresh_database(backend: str, workdir: Path) -> str:
    """A database of this benchmark's own (never another benchmark's)."""
    if backend == "sqlite":
        db = workdir / "linkage.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{db}"
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'isps_bench_linkage'"))
        conn.execute(text("DROP DATABASE IF EXISTS isps_bench_linkage"))
        conn.execute(text("CREATE DATABASE isps_bench_linkage"))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + "/isps_bench_linkage"


def registry_people(engine) -> pa.Table:
    with engine.connect() as conn:
        reg = resolve.read_arrow(conn, "SELECT id, household_id, cnic, full_name, father_husband_name, sex, "
                                       "date_of_birth, district_id, phone FROM individual")
        marital = dict(conn.exec_driver_sql("SELECT id, marital_status FROM individual").fetchall())
    return reg.append_column("marital_status", pa.array([marital[i] for i in reg["id"].to_pylist()], pa.string()))


def run(backend: str, n: int, workdir: Path) -> dict:
    engine = make_engine(fresh_database(backend, workdir))
    upgrade(engine)
    households = max(2000, int(n * 1.0 / 6.4 * 1.15))  # the registry holds everyone on the list and more
    t = time.perf_counter()
    load_synthetic(engine, households, seed=21)
    load_s = time.perf_counter() - t
    people = registry_people(engine)
    outsiders = next(generate(max(2000, n // 50), seed=777)).individuals
    marital_out = outsiders["marital_status"]
    outsiders = outsiders.select(["id", "household_id", "cnic", "full_name", "father_husband_name", "sex",
                                  "date_of_birth", "district_id", "phone"]).append_column("marital_status", marital_out)
    outsiders = outsiders.set_column(0, "id", pa.array(range(-1, -outsiders.num_rows - 1, -1), pa.int64()))
    lst = synthetic.partner_list(people, n, seed=5, outsiders=outsiders, outsider_share=0.1)
    truth = dict(zip(lst["partner_ref"].to_pylist(), lst["true_individual_id"].to_pylist()))
    no_cnic = sum(1 for c in lst["cnic"].to_pylist() if not c or len(c) != 13) / lst.num_rows
    t = time.perf_counter()
    rep_in = ingest.ingest_table(engine, "bisp_kafaalat", lst.drop(["true_individual_id"]), partner="BISP",
                                 reference=f"bench-{n}", actor="bench", resolve=True)
    total_s = time.perf_counter() - t
    rep = rep_in.resolution
    with engine.connect() as conn:
        got = dict(conn.exec_driver_sql("SELECT partner_ref, individual_id FROM beneficiary").fetchall())
    refs = list(truth)
    quality = synthetic.evaluate([got.get(r) for r in refs], [truth[r] for r in refs])
    row = {"backend": backend, "n": n, "registry_individuals": people.num_rows, "seconds": round(total_s, 2),
           "resolve_seconds": rep.seconds, "timings": rep.timings, "ingest_timings": rep_in.timings,
           "share_without_valid_cnic": round(no_cnic, 3), **quality, "by_cnic": rep.by_cnic,
           "by_splink": rep.by_splink, "to_review": rep.to_review, "registry_load_seconds": round(load_s, 1),
           "rejected": rep_in.rejected}
    record("linkage.resolve", row)
    engine.dispose()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, action="append", help="partner records (repeatable)")
    ap.add_argument("--backend", default="postgresql", choices=["postgresql", "sqlite"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n or [100_000]:
            run(args.backend, n, Path(tmp))


if __name__ == "__main__":
    main()
