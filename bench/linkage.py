"""Linkage benchmark with known truth: partner lists drawn from a synthetic registry and corrupted
(30% without a valid CNIC, spelling variants and slips, father's name for husband's, day and month
swapped, other district, 10% people not in the registry), ingested and resolved against the
registry. Timed: ingestion (COPY) plus resolution (CNIC join, Splink training, prediction, writing
links, candidates and persons). Not timed: building the registry.

``python -m bench.linkage --n 100000 --n 1000000 [--backend postgresql] [--profile hard]`` writes rows
``linkage.resolve`` with precision, recall (overall and ``recall_no_cnic`` on lines without a usable
CNIC), f1 and seconds into bench/results/linkage.resolve.json, one row per backend, size and
profile. Profile ``standard`` is the list corrupter the resolver grew up with; ``hard`` is an error
model of its own (:func:`isps.linkage.synthetic.corrupt_hard`: several errors per line, about half
without a usable CNIC, names spelt outside the variant table, district aliases and misspellings,
placeholder dates, CNIC slips that hit another person). ``--blocking`` also counts the pairs each
blocking rule adds (Splink's blocking analysis, exact counts) and records them in the row.
"""

from __future__ import annotations

import argparse
import json
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


def blocking_counts(engine, lst: pa.Table) -> list[dict]:
    """Pairs each blocking rule adds (marginal) and the running total, for the list's lines against
    the registry, from Splink's blocking analysis over the features the resolver compares."""
    import duckdb
    from splink import DuckDBAPI
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    from isps.linkage.ingest import check

    clean, _, _ = check(lst.drop(["true_individual_id"]), None, None)
    left = clean.select(["cnic", "full_name", "father_husband_name", "sex", "date_of_birth", "district_id", "phone"])
    left = left.add_column(0, "id", pa.array(range(1, left.num_rows + 1), pa.int64()))
    left = left.set_column(left.column_names.index("district_id"), "district_id", left["district_id"].cast(pa.int64()))
    with engine.connect() as conn:
        right = resolve.read_arrow(conn, resolve._IND_SQL)
    db = DuckDBAPI(duckdb.connect())
    frames = [db.register(resolve.features(left), dataset_display_name="partner"),
              db.register(resolve.features(right), dataset_display_name="registry")]
    records = count_comparisons_from_blocking_rules(frames, blocking_rules=resolve.BLOCKING_RULES,
                                                    link_type="link_only", record_sample_proportion=1.0)
    return [{"rule": r, "marginal": int(c["marginal_comparison_count"]),
             "cumulative": int(c["cumulative_comparison_count"])} for r, c in zip(resolve.BLOCKING_RULES, records)]


def run(backend: str, n: int, workdir: Path, profile: str = "standard", blocking: bool = False) -> dict:
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
    lst = synthetic.partner_list(people, n, seed=5, outsiders=outsiders, outsider_share=0.1, profile=profile)
    truth = dict(zip(lst["partner_ref"].to_pylist(), lst["true_individual_id"].to_pylist()))
    no_cnic_line = dict(zip(lst["partner_ref"].to_pylist(),
                            [not u for u in synthetic.usable_cnic(lst["cnic"].to_pylist())]))
    no_cnic = sum(no_cnic_line.values()) / lst.num_rows
    pairs = blocking_counts(engine, lst) if blocking else None
    if pairs:
        print(json.dumps(pairs, indent=1), flush=True)
    t = time.perf_counter()
    rep_in = ingest.ingest_table(engine, "bisp_kafaalat", lst.drop(["true_individual_id"]), partner="BISP",
                                 reference=f"bench-{n}", actor="bench", resolve=True)
    total_s = time.perf_counter() - t
    rep = rep_in.resolution
    with engine.connect() as conn:
        got = dict(conn.exec_driver_sql("SELECT partner_ref, individual_id FROM beneficiary").fetchall())
    refs = list(truth)
    quality = synthetic.evaluate([got.get(r) for r in refs], [truth[r] for r in refs], [no_cnic_line[r] for r in refs])
    row = {"backend": backend, "n": n, "profile": profile, "registry_individuals": people.num_rows,
           "seconds": round(total_s, 2),
           "resolve_seconds": rep.seconds, "timings": rep.timings, "ingest_timings": rep_in.timings,
           "share_without_valid_cnic": round(no_cnic, 3), **quality, "by_cnic": rep.by_cnic,
           "by_splink": rep.by_splink, "to_review": rep.to_review, "registry_load_seconds": round(load_s, 1),
           "rejected": rep_in.rejected, "cnic_held": rep.cnic_held}
    if pairs:
        row["blocking"] = pairs
        row["comparisons"] = pairs[-1]["cumulative"]
    record("linkage.resolve", row, keys=("profile",))
    engine.dispose()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, action="append", help="partner records (repeatable)")
    ap.add_argument("--backend", default="postgresql", choices=["postgresql", "sqlite"])
    ap.add_argument("--profile", default="standard", choices=["standard", "hard"])
    ap.add_argument("--blocking", action="store_true", help="count the pairs each blocking rule adds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n or [100_000]:
            run(args.backend, n, Path(tmp), args.profile, args.blocking)


if __name__ == "__main__":
    main()
