"""DCI sync search by CNIC under load: 200 concurrent clients against a real uvicorn server on
127.0.0.1, each a partner system sending signed envelopes with a bearer JWT.

``python -m bench.dci --backend postgresql --n 100000`` loads a synthetic registry, registers a
partner (Ed25519 key, data-sharing agreement), starts uvicorn, pre-signs every request (so the
load generator spends its CPU on HTTP, not signing), then runs ``--requests`` searches from
``--concurrency`` clients, each with its own keep-alive connection, and stops. Every response is
checked (HTTP 200, one record found). Writes ``dci.sync_search`` rows (p50/p99 ms, concurrency,
throughput) through :func:`bench.run.record`. The load generator runs on the same machine as
the server and the database; say so when quoting the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select, text

from bench.run import PG_ADMIN, free_port, record
from isps.db import make_engine, transaction
from isps.interop.dci import partners, signing
from isps.migrate import upgrade
from isps.registry.models import Individual
from isps.synth.load import load_synthetic

SENDER = "bench.spmis.gov.pk"


def fresh_database(backend: str, workdir: Path) -> str:
    """A database of this benchmark's own (not bench.run's ``isps_bench``: both may run at once)."""
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'bench_dci.db'}"
    from sqlalchemy import create_engine
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'isps_bench_dci'"))
        conn.execute(text("DROP DATABASE IF EXISTS isps_bench_dci"))
        conn.execute(text("CREATE DATABASE isps_bench_dci"))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + "/isps_bench_dci"


def prepare(url: str, n: int, sample: int) -> tuple[str, str, ed25519.Ed25519PrivateKey, list[str]]:
    engine = make_engine(url)
    upgrade(engine)
    load_synthetic(engine, n, seed=1)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
    key = ed25519.Ed25519PrivateKey.generate()
    with transaction(engine) as s:
        row, secret = partners.register_partner(s, SENDER, "Bench SPMIS", "http://127.0.0.1:9/dci")
        partners.add_key(s, row.id, "bench-1", "ed25519", signing.public_pem(key))
        partners.set_agreement(s, row.id, "DSA-BENCH", "bench", ["identifier", "name", "sex", "birth_date",
                                                                  "relationship_head", "registration_date"], False, "bench")
        client_id = row.client_id
        cnics = list(s.scalars(select(Individual.cnic).where(Individual.cnic.is_not(None),
                                                            Individual.id_document == "cnic").limit(50_000)))
    engine.dispose()
    rng = random.Random(1)
    return client_id, secret, key, [rng.choice(cnics) for _ in range(sample)]


def envelope(key, cnic: str) -> bytes:
    ts = datetime.now(timezone.utc).isoformat(timespec="seconds")
    message = {"transaction_id": uuid.uuid4().hex[:20], "search_request": [{
        "reference_id": "r1", "timestamp": ts, "search_criteria": {
            "query_type": "idtype-value", "query": {"type": "CNIC", "value": cnic},
            "pagination": {"page_size": 10, "page_number": 1}}}]}
    header = {"version": "1.0.0", "message_id": uuid.uuid4().hex, "message_ts": ts, "action": "search",
              "sender_id": SENDER, "receiver_id": "isps.punjab.gov.pk", "total_count": 1}
    sig = signing.sign(key, SENDER, "bench-1", header, message, ttl_s=3600)
    return json.dumps({"signature": sig, "header": header, "message": message}).encode()


async def load(base: str, token: str, warm: list[bytes], bodies: list[bytes], concurrency: int,
               think_ms: float) -> tuple[list[float], float]:
    """Every client opens its connection and sends its warm-up requests first; measuring starts
    when all are connected. With a think time, clients start staggered and pause between requests."""
    queue = list(reversed(bodies))
    warm_queue = list(warm)
    times: list[float] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    ready = asyncio.Event()
    connected = 0
    started = 0.0

    async def call(c: httpx.AsyncClient, body: bytes) -> None:
        r = await c.post("/dci/registry/sync/search", content=body, headers=headers)
        assert r.status_code == 200, r.text[:300]
        assert r.json()["message"]["search_response"][0]["data"]["reg_records"], "no record found"

    async def client() -> None:
        nonlocal connected, started
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=1)) as c:
            for _ in range(max(1, len(warm) // concurrency)):
                await call(c, warm_queue.pop() if warm_queue else warm[0])
            connected += 1
            if connected == concurrency:
                started = time.perf_counter()
                ready.set()
            await ready.wait()
            if think_ms:
                await asyncio.sleep(random.uniform(0, think_ms) / 1000)
            while queue:
                body = queue.pop()
                t = time.perf_counter()
                await call(c, body)
                times.append((time.perf_counter() - t) * 1000)
                if think_ms:
                    await asyncio.sleep(random.uniform(0, 2 * think_ms) / 1000)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return times, time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="postgresql", choices=("postgresql", "sqlite"))
    p.add_argument("--n", type=int, default=100_000, help="households in the registry")
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--warmup", type=int, default=400)
    p.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1))
    p.add_argument("--think-ms", type=float, default=0.0, help="mean pause between a client's requests (0: closed loop)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("ISPS_BENCH_DIR")) as tmp:
        url = fresh_database(args.backend, Path(tmp))
        client_id, secret, key, cnics = prepare(url, args.n, args.requests + args.warmup)
        bodies = [envelope(key, c) for c in cnics]
        port = free_port()
        env = {**os.environ, "ISPS_DATABASE_URL": url, "ISPS_SECRET_KEY": "bench-dci"}
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "isps.api.asgi:app", "--host", "127.0.0.1",
                                   "--port", str(port), "--workers", str(args.workers), "--log-level", "warning",
                                   "--backlog", "4096", "--timeout-keep-alive", "60"], env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=10) as c:
                for _ in range(150):
                    try:
                        c.get("/dci/.well-known/jwks.json")
                        break
                    except httpx.TransportError:
                        time.sleep(0.2)
                token = c.post("/dci/oauth2/client/token", data={"grant_type": "client_credentials",
                                                                 "client_id": client_id, "client_secret": secret})
                token.raise_for_status()
                token = token.json()["access_token"]
            times, elapsed = asyncio.run(load(base, token, bodies[:args.warmup], bodies[args.warmup:],
                                              args.concurrency, args.think_ms))
        finally:
            server.terminate()
            server.wait(20)
    times.sort()
    # rows are kept per backend, n and load shape ("program" is bench.run's third key)
    shape = "closed loop" if not args.think_ms else f"think {args.think_ms:g} ms"
    record("dci.sync_search", {
        "backend": args.backend, "n": args.n, "program": f"c{args.concurrency} {shape}",
        "concurrency": args.concurrency, "requests": len(times),
        "p50_ms": round(statistics.median(times), 2), "p99_ms": round(times[int(len(times) * 0.99) - 1], 2),
        "max_ms": round(times[-1], 2), "throughput_rps": round(len(times) / elapsed, 1),
        "server_workers": args.workers, "think_ms": args.think_ms,
        "seconds": round(times[int(len(times) * 0.99) - 1] / 1000, 4),
        "load_average_1m": round(os.getloadavg()[0], 2)})


if __name__ == "__main__":
    main()
