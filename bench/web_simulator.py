"""Benchmark: the policy simulator opens at once and computes after it has loaded (issue 12: "takes
16-18 s to open ... it must open at once and compute on demand, with progress").

``python -m bench.web_simulator --scale 100000 --backend sqlite`` loads a registry with the shipped
rules and one Kafaalat eligibility run (for the overlap), serves the app with uvicorn and, signed in
as a program manager, times to the first byte: the page (``/simulator``: the form and a spinner,
what opens) and its results (``/simulator/results``: three cut-offs, by district, which is what the
page used to compute before its first byte). Rows ``{"name": "web.simulator", "backend", "n",
"request", "ttfb_p50_ms", "ttfb_max_ms"}`` go to ``bench/results/web.simulator.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.run import free_port, fresh_database, record
from isps.access.service import create_user
from isps.db import make_engine, transaction
from isps.migrate import upgrade
from isps.synth.load import load_synthetic
from isps.targeting.eligibility import rules

QUERY = "program=bisp_kafaalat&cutoffs=30%2C+32%2C+35&budget=&poor_share=20"
PASSWORD = "bench-password-1"


def build(backend: str, n: int, workdir: Path):
    engine = make_engine(fresh_database(backend, workdir, "isps_bench_simulator"))
    upgrade(engine)
    load_synthetic(engine, n, seed=1)
    with transaction(engine) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        rules.run(s, row, "bench")
        create_user(s, "manager", PASSWORD, "program_manager")
    return engine


def measure(engine, backend: str, n: int, rounds: int) -> None:
    import httpx
    import uvicorn

    from isps.api.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine, secret="bench-secret"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=600) as client:
            r = client.post("/login", data={"username": "manager", "password": PASSWORD, "next": "/"},
                            headers={"Origin": base})
            assert r.status_code == 303, r.status_code
            for request, path in (("page", "/simulator?" + QUERY), ("results", "/simulator/results?" + QUERY)):
                times = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    with client.stream("GET", path) as resp:
                        times.append(1000 * (time.perf_counter() - started))
                        resp.read()
                        assert resp.status_code == 200, resp.status_code
                record("web.simulator", {"backend": backend, "n": n, "request": request,
                                         "ttfb_p50_ms": round(statistics.median(times), 1),
                                         "ttfb_max_ms": round(max(times), 1), "requests": rounds,
                                         "load_1min": round(os.getloadavg()[0], 2)}, keys=("request",))
    finally:
        server.should_exit = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        engine = build(args.backend, args.scale, Path(workdir))
        try:
            measure(engine, args.backend, args.scale, args.rounds)
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
