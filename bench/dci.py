"""DCI sync search by CNIC under load: 200 concurrent clients against a real uvicorn server on
127.0.0.1, each a partner system sending signed envelopes with a bearer JWT.

``python -m bench.dci --backend postgresql --n 100000`` loads a synthetic registry, registers a
partner (Ed25519 key, data-sharing agreement), starts uvicorn, pre-signs every request (so the
load generator spends its CPU on HTTP, not signing: each body has its own message_id, as the
server refuses a message_id it has seen), then drives ``--concurrency`` clients, each with its own
keep-alive connection, and stops.

Two load generators:

* ``wrk`` (Debian's ``wrk``, the default when it is installed): a C generator that costs the
  shared 2 cores little. A Lua script posts the pre-signed bodies round robin from a file, pauses
  ``delay()`` between a connection's requests when there is a think time, and checks every
  response (HTTP 200 and a record found, else it is counted and the run fails). It runs for
  ``--duration`` seconds after a warm-up pass.
* ``python``: an asyncio httpx client (``--requests`` requests), which itself eats much of the
  2 cores; used when wrk is missing (said so on stderr) or asked for.

Shapes: closed loop (``--think-ms 0``: every client sends its next request as soon as the last
one is answered; the offered load is whatever the server sustains) and think time (each client
pauses a random 0..2x``--think-ms`` between requests, 200 partner systems at about
200/(think + latency) requests per second). After the run a sample of fresh requests is checked
with httpx (status, the envelope's signature header, the record found).

Writes ``dci.sync_search`` rows (p50/p99 ms, concurrency, throughput, offered load, CPU per request
of the server, PostgreSQL and the generator) through :func:`bench.run.record`. The load
generator runs on the same machine as the server and the database; say so when quoting the
figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
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
from sqlalchemy import func, select, text

from bench.run import PG_ADMIN, free_port, record
from isps.db import make_engine, transaction
from isps.interop.dci import partners, signing
from isps.migrate import upgrade
from isps.registry.models import Household, Individual
from isps.synth.load import load_synthetic

PATH = "/dci/registry/sync/search"
DB_NAME = "isps_bench_dci"

LUA = r"""
-- bench.dci: post pre-signed DCI envelopes (one JSON per line of BODIES) round robin, each thread
-- its own share; check every response; optional think time (uniform 0..2x THINK_MS ms).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  thread:set("nthreads", NTHREADS)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  bad_status, not_found, sent = 0, 0, 0
  local path, auth, think = args[1], args[2], tonumber(args[3])
  think_ms = think
  reqs = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == tid then
      table.insert(reqs, wrk.format("POST", "/dci/registry/sync/search",
        {["Authorization"] = "Bearer " .. auth, ["Content-Type"] = "application/json"}, line))
    end
    i = i + 1
  end
  n = #reqs
  idx = 0
  math.randomseed(tid + 1)
end

function delay()
  if think_ms > 0 then return math.random(0, 2 * think_ms) end
  return 0
end

function request()
  idx = idx + 1
  sent = sent + 1
  return reqs[((idx - 1) % n) + 1]
end

function response(status, headers, body)
  if status ~= 200 then
    bad_status = bad_status + 1
    if bad_status <= 3 then io.stderr:write("bench.dci: HTTP " .. status .. " " .. string.sub(body, 1, 300) .. "\n") end
  elseif not string.find(body, '"reg_records":[{', 1, true) then
    not_found = not_found + 1
  end
end

function done(summary, latency, requests)
  local bad, nf, s, cap = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("bad_status")
    nf = nf + t:get("not_found")
    s = s + t:get("sent")
    cap = cap + t:get("n")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_DCI {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %.1f, "bad_status": %d, "not_found": %d, "sent": %d, "bodies": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, bad, nf, s, cap, e.connect, e.read, e.write, e.timeout))
end
"""


# ---------------------------------------------------------------- registry and partner

def database(backend: str, workdir: Path, n: int, reuse: bool) -> tuple[str, bool]:
    """The benchmark's own database (not bench.run's: both may run at once); with ``reuse`` an
    existing one holding ``n`` households is kept. Returns its URL and whether it must be loaded."""
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'bench_dci.db'}", True
    from sqlalchemy import create_engine
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + DB_NAME
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": DB_NAME})
    if reuse and exists:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                if conn.scalar(select(func.count()).select_from(Household)) == n:
                    admin.dispose()
                    return url, False
        except Exception:  # noqa: BLE001 - not a usable registry: build a new one
            pass
        finally:
            engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{DB_NAME}'"))
        conn.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME}"))
        conn.execute(text(f"CREATE DATABASE {DB_NAME}"))
    admin.dispose()
    return url, True


def prepare(url: str, n: int, load: bool, sample: int, sender: str) -> tuple[str, str, ed25519.Ed25519PrivateKey, list[str]]:
    engine = make_engine(url)
    if load:
        upgrade(engine)
        load_synthetic(engine, n, seed=1)
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(text("ANALYZE"))
    key = ed25519.Ed25519PrivateKey.generate()
    with transaction(engine) as s:
        row, secret = partners.register_partner(s, sender, "Bench SPMIS", "http://127.0.0.1:9/dci")
        partners.add_key(s, row.id, "bench-1", "ed25519", signing.public_pem(key))
        partners.set_agreement(s, row.id, "DSA-BENCH", "bench", ["identifier", "name", "sex", "birth_date",
                                                                  "relationship_head", "registration_date"], False, "bench")
        client_id = row.client_id
        cnics = list(s.scalars(select(Individual.cnic).where(Individual.cnic.is_not(None),
                                                            Individual.id_document == "cnic").limit(50_000)))
    engine.dispose()
    rng = random.Random(1)
    return client_id, secret, key, [rng.choice(cnics) for _ in range(sample)]


def envelope(key, cnic: str, sender: str) -> bytes:
    ts = datetime.now(timezone.utc).isoformat(timespec="seconds")
    message = {"transaction_id": uuid.uuid4().hex[:20], "search_request": [{
        "reference_id": "r1", "timestamp": ts, "search_criteria": {
            "query_type": "idtype-value", "query": {"type": "CNIC", "value": cnic},
            "pagination": {"page_size": 10, "page_number": 1}}}]}
    header = {"version": "1.0.0", "message_id": uuid.uuid4().hex, "message_ts": ts, "action": "search",
              "sender_id": sender, "receiver_id": "isps.punjab.gov.pk", "total_count": 1}
    sig = signing.sign(key, sender, "bench-1", header, message, ttl_s=3600)
    return json.dumps({"signature": sig, "header": header, "message": message}, separators=(",", ":")).encode()


# ---------------------------------------------------------------- CPU accounting (Linux /proc)

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[str, int, float, float, float] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2:].split()
    # ppid, utime + stime, cutime + cstime (children that exited, e.g. closed backends), stime; in seconds
    return (comm, int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK, (int(rest[13]) + int(rest[14])) / _TICK,
            int(rest[12]) / _TICK)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the uvicorn server (master and workers) and by the PostgreSQL
    backends serving the benchmark's database (others' queries on the shared server not counted;
    the server keeps its pooled connections, so no backend of ours exits during a run)."""
    out = {"server": 0.0, "server_sys": 0.0, "postgres": 0.0}
    if not Path("/proc").is_dir():
        return out
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = _stat(int(entry))
            if s:
                stats[int(entry)] = s
    for pid, (comm, ppid, cpu, _children, system) in stats.items():
        if pid == server_pid or ppid == server_pid:
            out["server"] += cpu
            out["server_sys"] += system
        elif comm.startswith("postgres") and f" {DB_NAME} " in _cmdline(pid):
            out["postgres"] += cpu
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0, 1.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return float(sum(fields) - idle), float(sum(fields))


# ---------------------------------------------------------------- generators

def run_wrk(wrk: str, base: str, token: str, bodies: list[bytes], concurrency: int, think_ms: float,
            duration_s: float, threads: int, workdir: Path) -> dict:
    """One wrk run; returns its summary (as printed by the Lua ``done``)."""
    body_file = workdir / f"bodies-{uuid.uuid4().hex[:8]}.jsonl"
    body_file.write_bytes(b"\n".join(bodies) + b"\n")
    script = workdir / "dci.lua"
    script.write_text(f"NTHREADS = {threads}\n" + LUA)
    cmd = [wrk, f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s", "--timeout", "10s",
           "-s", str(script), base, "--", str(body_file), token, str(int(think_ms))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=duration_s + 120)
    lines = [ln for ln in out.splitlines() if ln.startswith("BENCH_DCI ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"bench.dci: wrk failed (exit {proc.returncode}):\n{out[-2000:]}\n{err[-2000:]}")
    if err.strip():
        print(err.strip(), file=sys.stderr)
    body_file.unlink(missing_ok=True)
    return json.loads(lines[-1][len("BENCH_DCI "):])


def check_wrk(summary: dict, label: str) -> None:
    problems = {k: summary[k] for k in ("bad_status", "not_found", "connect_errors", "read_errors", "write_errors",
                                        "timeouts") if summary[k]}
    if summary["sent"] > summary["bodies"]:
        problems["bodies_reused"] = summary["sent"] - summary["bodies"]
    if problems or not summary["requests"]:
        raise SystemExit(f"bench.dci: the {label} run had failures {problems} in {summary['requests']} responses "
                         "(each must be HTTP 200 with a record found); nothing recorded")


async def python_load(base: str, token: str, warm: list[bytes], bodies: list[bytes], concurrency: int,
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
        r = await c.post(PATH, content=body, headers=headers)
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


def spot_check(base: str, token: str, bodies: list[bytes], sender: str) -> None:
    """Fresh requests, one at a time, read fully: status, a signed on-search envelope, a record."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=base, timeout=10) as c:
        for body in bodies:
            r = c.post(PATH, content=body, headers=headers)
            if r.status_code != 200:
                raise SystemExit(f"bench.dci: spot check got HTTP {r.status_code}: {r.text[:300]}")
            out = r.json()
            item = out["message"]["search_response"][0]
            if (out["header"]["action"] != "on-search" or out["header"]["receiver_id"] != sender
                    or not out["signature"].startswith("Signature:") or item["status"] != "succ"
                    or not item["data"]["reg_records"]):
                raise SystemExit(f"bench.dci: spot check got an unexpected answer: {r.text[:300]}")


# ---------------------------------------------------------------- main

def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="postgresql", choices=("postgresql", "sqlite"))
    p.add_argument("--n", type=int, default=100_000, help="households in the registry")
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--think-ms", type=float, default=0.0, help="mean pause between a client's requests (0: closed loop)")
    p.add_argument("--generator", default="auto", choices=("auto", "wrk", "python"),
                   help="auto: wrk when installed, else the Python client (with a warning)")
    p.add_argument("--duration", type=float, default=20.0, help="wrk: seconds measured (after --warmup-s)")
    p.add_argument("--warmup-s", type=float, default=5.0, help="wrk: seconds of warm-up, not measured")
    p.add_argument("--max-rps", type=float, default=2500.0, help="wrk: rate the pre-signed bodies must cover")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--requests", type=int, default=4000, help="python generator: requests measured")
    p.add_argument("--warmup", type=int, default=400, help="python generator: warm-up requests")
    p.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1))
    p.add_argument("--reuse-db", action="store_true",
                   help="PostgreSQL: keep an existing benchmark registry of --n households (for quick iterations)")
    p.add_argument("--no-record", action="store_true", help="print the row, do not write bench/results")
    args = p.parse_args()

    wrk = shutil.which("wrk")
    generator = args.generator
    if generator == "wrk" and wrk is None:
        raise SystemExit("bench.dci: wrk is not installed (Debian: apt-get install -y wrk); "
                         "use --generator python for the (CPU-hungry) Python client")
    if generator == "auto":
        generator = "wrk" if wrk else "python"
        if wrk is None:
            print("bench.dci: wrk is not installed (apt-get install -y wrk); falling back to the Python httpx "
                  "client, which itself takes much of the machine's CPU: figures are pessimistic", file=sys.stderr)

    sender = f"bench-{uuid.uuid4().hex[:8]}.spmis.gov.pk"
    if generator == "wrk":
        rate = args.max_rps if not args.think_ms else min(args.max_rps, 2.0 * args.concurrency * 1000 / args.think_ms)
        warm_n = int(rate * args.warmup_s) + args.concurrency
        main_n = int(rate * args.duration) + args.concurrency
    else:
        warm_n, main_n = args.warmup, args.requests
    check_n = 20
    with tempfile.TemporaryDirectory(dir=os.environ.get("ISPS_BENCH_DIR")) as tmp:
        url, load = database(args.backend, Path(tmp), args.n, args.reuse_db)
        client_id, secret, key, cnics = prepare(url, args.n, load, min(warm_n + main_n + check_n, 200_000), sender)
        cnics = (cnics * ((warm_n + main_n + check_n) // len(cnics) + 1))[:warm_n + main_n + check_n]
        bodies = [envelope(key, c, sender) for c in cnics]
        warm, main_bodies, check = bodies[:warm_n], bodies[warm_n:warm_n + main_n], bodies[warm_n + main_n:]
        port = free_port()
        env = {**os.environ, "ISPS_DATABASE_URL": url, "ISPS_SECRET_KEY": "bench-dci"}
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "isps.api.asgi:app", "--host", "127.0.0.1",
                                   "--port", str(port), "--workers", str(args.workers), "--log-level", "warning",
                                   "--backlog", "4096", "--timeout-keep-alive", "60", "--no-access-log"], env=env)
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
            extra: dict = {}
            if generator == "wrk":
                summary = run_wrk(wrk, base, token, warm, args.concurrency, args.think_ms, args.warmup_s,
                                     args.threads, Path(tmp))
                check_wrk(summary, "warm-up")
                cpu0, busy0, wall0 = cpu_seconds(server.pid), machine_busy(), time.perf_counter()
                t_children0 = os.times()
                summary = run_wrk(wrk, base, token, main_bodies, args.concurrency, args.think_ms, args.duration,
                                     args.threads, Path(tmp))
                t_children1 = os.times()
                cpu1, busy1 = cpu_seconds(server.pid), machine_busy()
                check_wrk(summary, "measured")
                n_req = summary["requests"]
                elapsed = summary["duration_us"] / 1e6
                p50, p99, mx = summary["p50_us"] / 1000, summary["p99_us"] / 1000, summary["max_us"] / 1000
                gen_cpu = (t_children1.children_user + t_children1.children_system
                           - t_children0.children_user - t_children0.children_system)
                extra = {"p90_ms": round(summary["p90_us"] / 1000, 2), "mean_ms": round(summary["mean_us"] / 1000, 2),
                         "server_cpu_ms_per_req": round((cpu1["server"] - cpu0["server"]) * 1000 / n_req, 2),
                         "server_kernel_share": round((cpu1["server_sys"] - cpu0["server_sys"])
                                                      / max(1e-9, cpu1["server"] - cpu0["server"]), 2),
                         "postgres_cpu_ms_per_req": round((cpu1["postgres"] - cpu0["postgres"]) * 1000 / n_req, 2),
                         "generator_cpu_ms_per_req": round(gen_cpu * 1000 / n_req, 3),
                         "machine_cpu_busy": round((busy1[0] - busy0[0]) / max(1.0, busy1[1] - busy0[1]), 3),
                         "wall_s": round(time.perf_counter() - wall0, 1)}
            else:
                times, elapsed = asyncio.run(python_load(base, token, warm, main_bodies, args.concurrency,
                                                         args.think_ms))
                times.sort()
                n_req = len(times)
                p50, p99, mx = statistics.median(times), times[int(n_req * 0.99) - 1], times[-1]
            spot_check(base, token, check, sender)
        finally:
            server.terminate()
            server.wait(20)
    # rows are kept per backend, n and load shape ("program" is bench.run's third key)
    shape = "closed loop" if not args.think_ms else f"think {args.think_ms:g} ms"
    throughput = n_req / elapsed
    offered = throughput if not args.think_ms else args.concurrency * 1000 / (args.think_ms + p50)
    row = {
        "backend": args.backend, "n": args.n, "program": f"c{args.concurrency} {shape}",
        "concurrency": args.concurrency, "requests": n_req, "generator": generator,
        "p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "max_ms": round(mx, 2),
        "throughput_rps": round(throughput, 1),
        "offered_rps": round(offered, 1),
        "server_workers": args.workers, "think_ms": args.think_ms, **extra,
        "seconds": round(p99 / 1000, 4),
        "load_average_1m": round(os.getloadavg()[0], 2)}
    if args.no_record:
        print(json.dumps(row))
    else:
        record("dci.sync_search", row)


if __name__ == "__main__":
    main()
