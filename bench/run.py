"""Benchmarks: registry load, full PMT re-scoring, eligibility (count and materialised list), the
enrolment filter against partner lists (``bench/enrolment.py``), CNIC look-up through the API and
10,000 field survey submissions applied and re-scored on a 10,000-household province
(``bench/openrosa_submit.py``).

``python -m bench.run --scale 100000`` measures 100k households on SQLite and
PostgreSQL; ``--scale 1000000`` measures 100k and 1M and records how cost grows.
Rows are merged into ``bench/results/<name>.json`` (one list per benchmark), so runs
on different days and machines can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select, text

from isps.access.service import create_user
from isps.db import make_engine, transaction
from isps.migrate import upgrade
from isps.registry.models import Individual
from isps.synth.load import load_synthetic
from isps.targeting import pmt

RESULTS = Path(__file__).parent / "results"
PG_ADMIN = os.environ.get("ISPS_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def record(name: str, row: dict, keys: tuple[str, ...] = ("program",)) -> None:
    """Merge one measurement into ``bench/results/<name>.json``: it replaces the row of the same
    backend, size and ``keys`` (e.g. the program, or a list page and its page number)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    rows = [r for r in rows if not (r["backend"] == row["backend"] and r["n"] == row["n"]
                                    and all(r.get(k) == row.get(k) for k in keys))]
    row = {"name": name, **row, "machine": f"{platform.machine()} {os.cpu_count()} cores",
           "measured_at": datetime.now().isoformat(timespec="seconds")}
    rows.append(row)
    rows.sort(key=lambda r: (r["backend"], r["n"], *(str(r.get(k, "")) for k in keys)))
    path.write_text(json.dumps(rows, indent=1) + "\n")
    print(json.dumps(row))


def fresh_database(backend: str, workdir: Path, name: str = "isps_bench_registry") -> str:
    """An empty database of the benchmark's own (each benchmark names its own, so that two
    benchmarks running at once never drop each other's)."""
    if backend == "sqlite":
        db = workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{db}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cnic_latency(url: str, engine, samples: int = 2000) -> dict:
    """Sequential look-ups by one client with keep-alive against a real uvicorn server."""
    with transaction(engine) as s:
        create_user(s, "bench", "bench-pass", "administrator")
        cnics = list(s.scalars(select(Individual.cnic).where(Individual.cnic.is_not(None)).limit(50_000)))
    port = free_port()
    env = {**os.environ, "ISPS_DATABASE_URL": url, "ISPS_SECRET_KEY": "bench"}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "isps.api.asgi:app", "--port", str(port),
                               "--log-level", "warning"], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(100):
                try:
                    client.get("/api/v1/openapi.json")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            token = client.post("/api/v1/auth/token", data={"username": "bench", "password": "bench-pass"}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            rng = random.Random(1)
            for c in rng.sample(cnics, 100):  # warm-up
                client.get(f"/api/v1/individuals/by-cnic/{c}", headers=headers)
            times = []
            for c in (rng.choice(cnics) for _ in range(samples)):
                t = time.perf_counter()
                r = client.get(f"/api/v1/individuals/by-cnic/{c}", headers=headers)
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
    finally:
        server.terminate()
        server.wait(10)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(times[int(len(times) * 0.99) - 1], 2),
            "requests": len(times)}


def eligibility(engine, backend: str, n: int) -> None:
    """A program's eligibility over the whole registry: the count (preview) and the full list of
    decisions with reasons materialised, for a household program and a member program."""
    from isps.targeting.eligibility import rules

    for code in ("bisp_kafaalat", "bisp_taleemi_wazaif"):
        with transaction(engine) as s:
            row, rule = rules.active_rule(s, code)
            t = time.perf_counter()
            eligible = rules.count_eligible(s, rule)
            count_s = time.perf_counter() - t
        record("eligibility.count", {"backend": backend, "n": n, "program": code, "seconds": round(count_s, 2),
                                     "eligible": eligible})
        with transaction(engine) as s:
            row, rule = rules.active_rule(s, code)
            t = time.perf_counter()
            result = rules.run(s, row, "bench")
        list_s = time.perf_counter() - t
        record("eligibility.list", {"backend": backend, "n": n, "program": code, "seconds": round(list_s, 2),
                                    "decisions": result.evaluated, "eligible": result.eligible})


def run(backend: str, n: int, workdir: Path) -> dict:
    url = fresh_database(backend, workdir)
    engine = make_engine(url)
    upgrade(engine)
    t = time.perf_counter()
    report = load_synthetic(engine, n, seed=1)
    load_s = time.perf_counter() - t
    record("registry.load", {"backend": backend, "n": n, "seconds": round(load_s, 2),
                             "individuals": report.individuals,
                             "households_per_s": round(n / load_s)})
    with transaction(engine) as s:
        model = pmt.active_model(s)
        t = time.perf_counter()
        pmt.rescore_all(s, model)
    rescore_s = time.perf_counter() - t
    record("pmt.rescore", {"backend": backend, "n": n, "seconds": round(rescore_s, 2)})
    if backend == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
    eligibility(engine, backend, n)
    from bench import enrolment  # the enrolment filter against as many partner lines as households

    enrolment.measure(engine, backend, n, enrolment.partner_lines(engine, n))
    latency = cnic_latency(url, engine)
    record("api.cnic_lookup", {"backend": backend, "n": n, "seconds": round(latency["p99_ms"] / 1000, 4), **latency})
    engine.dispose()
    return {"load": load_s, "rescore": rescore_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    sizes = [100_000, args.scale] if args.scale > 100_000 else [args.scale]
    with tempfile.TemporaryDirectory(dir=os.environ.get("ISPS_BENCH_DIR")) as tmp:
        for backend in args.backends.split(","):
            costs = {n: run(backend, n, Path(tmp)) for n in sizes}
            from bench import openrosa_submit  # its own province: 10,000 households, 10,000 re-surveys

            openrosa_submit.run(backend, 10_000, 10_000, Path(tmp))
            if len(sizes) == 2:
                small, large = costs[sizes[0]], costs[sizes[1]]
                factor = sizes[1] / sizes[0]
                for name, key in (("registry.load", "load"), ("pmt.rescore", "rescore")):
                    growth = large[key] / small[key]
                    path = RESULTS / f"{name}.json"
                    rows = json.loads(path.read_text())
                    for r in rows:
                        if r["backend"] == backend and r["n"] == sizes[1]:
                            r["growth_vs_100k"] = round(growth, 2)
                            r["linear_would_be"] = factor
                    path.write_text(json.dumps(rows, indent=1) + "\n")
                    print(f"{backend} {name}: {growth:.1f}x the cost for {factor:.0f}x the households")


if __name__ == "__main__":
    main()
