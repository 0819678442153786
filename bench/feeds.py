"""Benchmark: applying a million mixed feed records to a registry, with re-scoring.

``python -m bench.feeds --households 1000000 --records 1000000`` loads a synthetic registry into a
fresh PostgreSQL database of its own (``isps_bench_feeds``), scores it, generates one seeded
delivery per feed (the mix below, about ``--records`` records in all), then times applying every
delivery (each in its own transaction, as they would arrive) and the re-scoring step
(``pmt.process_events``) after them. Writes a ``feeds.apply`` row to ``bench/results``.
"""

from __future__ import annotations

import argparse
import os
import time

from sqlalchemy import create_engine, text

from bench.run import PG_ADMIN, record
from isps.db import make_engine, transaction
from isps.interop import feeds
from isps.migrate import upgrade
from isps.synth.load import load_synthetic
from isps.targeting import pmt

MIX = {"electricity": 0.30, "telecom": 0.15, "nadra": 0.10, "vehicles": 0.10, "land": 0.10, "ngo": 0.10,
       "accounts": 0.10, "payroll": 0.05}
DATABASE = "isps_bench_feeds"


def fresh_pg() -> str:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{DATABASE}'"))
        conn.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
        conn.execute(text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + DATABASE


def run(households: int, records: int, seed: int = 11) -> dict:
    url = fresh_pg()
    engine = make_engine(url)
    upgrade(engine)
    t = time.perf_counter()
    load_synthetic(engine, households, seed=1)
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    print(f"registry of {households} households ready in {time.perf_counter() - t:.1f}s", flush=True)

    t = time.perf_counter()
    samples = {name: feeds.generate_sample(engine, name, int(records * share), seed) for name, share in MIX.items()}
    generate_s = time.perf_counter() - t
    total = sum(x.num_rows for x in samples.values())
    print(f"generated {total} records in {generate_s:.1f}s", flush=True)

    per_feed = {}
    t0 = time.perf_counter()
    reports = {}
    for name, data in samples.items():
        t = time.perf_counter()
        reports[name] = feeds.apply_delivery(engine, name, data, reference=f"bench-{name}-{seed}", actor="bench")
        per_feed[name] = {"records": data.num_rows, "seconds": round(time.perf_counter() - t, 2),
                          "accepted": reports[name].accepted, "rejected": reports[name].rejected,
                          "applied": reports[name].applied}
        print(name, per_feed[name], flush=True)
    apply_s = time.perf_counter() - t0
    t = time.perf_counter()
    rescored = feeds.after_delivery(engine)
    rescore_s = time.perf_counter() - t
    print(f"applied in {apply_s:.1f}s, re-scored {rescored} households in {rescore_s:.1f}s", flush=True)
    # re-delivering changes nothing, and costs little
    t = time.perf_counter()
    again = feeds.apply_delivery(engine, "electricity", samples["electricity"],
                                 reference=f"bench-electricity-{seed}-again", actor="bench")
    again_s = time.perf_counter() - t
    engine.dispose()
    row = {"backend": "postgresql", "n": total, "seconds": round(apply_s + rescore_s, 2),
           "apply_seconds": round(apply_s, 2), "rescore_seconds": round(rescore_s, 2), "rescored": rescored,
           "records_per_s": round(total / (apply_s + rescore_s)), "registry_households": households,
           "generate_seconds": round(generate_s, 2), "redelivery_seconds": round(again_s, 2),
           "redelivery_repeated": again.repeated,
           "value_changes": sum(r.value_changes for r in reports.values()),
           "events": sum(r.events for r in reports.values()), "per_feed": per_feed}
    record("feeds.apply", row)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    run(args.households, args.records, args.seed)


if __name__ == "__main__":
    main()
