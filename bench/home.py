"""Benchmark: the home page at scale (issue 12: "everything counted must be fast on 1M households").

``python -m bench.home --scale 1000000`` loads a registry with the loader of :mod:`bench.run`, fills the
long tables set-based (:func:`bench.web_lists.populate`: half the households enrolled, half waiting, an
audit record per household, a review pair per tenth person) and one paid cycle (a payment instruction per
enrolment, a mix of paid, failed and unclaimed), then times the home page through the app in process
(FastAPI's TestClient) for a Lahore district officer and for an administrator (all Punjab), and each of its
counting functions on its own. Rows ``{"name": "web.home", "backend", "n", "scope", "p50_ms", "p99_ms",
"figures_ms", "queues_ms"}`` go to ``bench/results/web.home.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import text

from bench.run import fresh_database, record
from bench.web_lists import PROGRAM, populate
from isps.access.service import Principal, create_user
from isps.db import make_engine, transaction
from isps.migrate import upgrade
from isps.services import home
from isps.synth.load import load_synthetic
from isps.targeting import pmt

KEYS = ("scope",)


def pay_once(engine) -> int:
    """One approved cycle with a payroll whose instructions are 80% paid today, 10% failed, 10% unclaimed."""
    today = date.today()
    with transaction(engine) as s:
        cid = s.execute(text("""INSERT INTO benefit_cycle (program_code, period, starts_on, ends_on, status, entitlements,
                total, created_by) VALUES (:c, '2026-Q4', :d, :d, 'approved', 0, 0, 'bench') RETURNING id"""),
                        {"c": PROGRAM, "d": today}).scalar()
        pid = s.execute(text("""INSERT INTO payroll (cycle_id, program_code, status, instructions, total, made_by,
                exported_upto) VALUES (:cy, :c, 'exported', 0, 0, 'bench', 0) RETURNING id"""),
                        {"cy": cid, "c": PROGRAM}).scalar()
        s.execute(text("""INSERT INTO payment_instruction (payroll_id, entitlement_id, attempt, enrolment_id,
                program_code, district_id, channel, biometric, amount, status, status_on)
            SELECT :p, e.id, 1, e.id, e.program_code, e.district_id, 'bank', :no, 8500,
                   CASE WHEN e.id % 10 = 0 THEN 'failed' WHEN e.id % 10 = 1 THEN 'unclaimed' ELSE 'paid' END, :d
            FROM enrolment e WHERE e.status = 'enrolled'"""), {"p": pid, "d": today, "no": False})
        return int(s.execute(text("SELECT COUNT(*) FROM payment_instruction")).scalar())


def _ms(fn, samples: int) -> tuple[float, float]:
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return round(statistics.median(times), 1), round(times[max(0, int(len(times) * 0.99) - 1)], 1)


def time_home(engine, backend: str, n: int, samples: int) -> None:
    from fastapi.testclient import TestClient

    from isps.api.app import create_app

    with transaction(engine) as s:
        if not s.execute(text("SELECT 1 FROM app_user WHERE username = 'bench_lahore'")).first():
            create_user(s, "bench_lahore", "bench-pass", "district_officer", district_id=1)
    users = {"lahore": ("bench_lahore", Principal("bench_lahore", "district_officer", 1)),
             "punjab": ("bench", Principal("bench", "administrator", None))}
    for scope, (username, who) in users.items():
        with engine.connect() as conn:
            from sqlalchemy.orm import Session

            with Session(conn) as s:
                figures_ms = _ms(lambda: home.figures(s, who.scope), max(3, samples // 5))[0]
                queues_ms = _ms(lambda: home.queues(s, who), max(3, samples // 5))[0]
        with TestClient(create_app(engine, secret="bench")) as client:
            r = client.post("/login", data={"username": username, "password": "bench-pass"}, follow_redirects=False)
            assert r.status_code == 303, r.text

            def page() -> None:
                assert client.get("/").status_code == 200

            for _ in range(2):  # warm-up
                page()
            p50, p99 = _ms(page, samples)
        record("web.home", {"backend": backend, "n": n, "scope": scope, "p50_ms": p50, "p99_ms": p99,
                            "figures_ms": figures_ms, "queues_ms": queues_ms, "requests": samples,
                            "load_1min": round(os.getloadavg()[0], 2)}, keys=KEYS)
        print(f"{backend} {n:,} {scope}: page p50 {p50} ms p99 {p99} ms (figures {figures_ms} ms, queues {queues_ms} ms)")


def run(backend: str, n: int, workdir: Path, samples: int) -> None:
    url = fresh_database(backend, workdir, "isps_bench_home")
    engine = make_engine(url)
    upgrade(engine)
    t = time.perf_counter()
    load_synthetic(engine, n, seed=1)
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s))
    counts = populate(engine)
    counts["instructions"] = pay_once(engine)
    if backend == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    print(f"{backend} {n:,} households ready in {time.perf_counter() - t:.0f} s: {counts}")
    time_home(engine, backend, n, samples)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true",
                        help="time again on the PostgreSQL database the last run left (after a schema change)")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    if args.reuse:
        from bench.run import PG_ADMIN

        engine = make_engine(PG_ADMIN.rsplit("/", 1)[0] + "/isps_bench_home")
        upgrade(engine)
        n = int(engine.connect().execute(text("SELECT COUNT(*) FROM household")).scalar())
        time_home(engine, "postgresql", n, args.samples)
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("ISPS_BENCH_DIR")) as tmp:
        for backend in args.backends.split(","):
            run(backend, args.scale, Path(tmp), args.samples)


if __name__ == "__main__":
    main()
