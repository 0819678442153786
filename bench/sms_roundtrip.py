"""Benchmark: the short code's round trip over SMPP on loopback (issue 11: "p99 <= 1,000 ms at 50
concurrent senders").

``python -m bench.sms_roundtrip --scale 10000`` loads a synthetic province (``--scale`` households,
scored), starts the loopback SMSC (:mod:`isps.messaging.smsc`) and the SMPP gateway bound to it,
wired as ``isps worker`` wires it (``messaging.dispatch.callbacks``: the inbound store and rate
limit, :func:`isps.citizen.shortcode.answer` on the database, the reply sent at once). Then 50
simulated phones, each a thread, text their own CNIC (a person whose phone is registered for the
household, so every answer is a full status: PMT band, eligibility for every running program,
enrolments, next payment) and wait for the reply before texting again after a pause of
``--think-ms`` (a person reading a reply, drawn from 0.5 to 1.5 times it; 0 for a closed loop), the
first text within one such pause of the start. The round trip is timed from the
mobile-originated ``deliver_sm`` leaving the SMSC to the reply's ``submit_sm`` arriving there.
Each phone sends ``--per-phone`` texts (at most the inbound rate limit, so none is refused).
Rows ``{"name": "sms.roundtrip", "backend", "n", "concurrency", "messages", "p50_ms", "p99_ms",
"load"}`` go to ``bench/results/sms.roundtrip.json``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from sqlalchemy import func, select, text

from bench.run import fresh_database, record
from isps.citizen.shortcode import answer
from isps.db import make_engine, transaction
from isps.messaging import dispatch, inbound
from isps.messaging.gateways.smpp import SmppGateway
from isps.messaging.smsc import LoopbackSMSC
from isps.migrate import upgrade
from isps.registry.models import Individual
from isps.synth.load import load_synthetic
from isps.targeting import pmt

KEYS = ("concurrency",)


def senders(engine, count: int, seed: int = 11) -> list[tuple[str, str]]:
    """``count`` (phone, CNIC) pairs: living people with a CNIC and a phone nobody else holds."""
    with transaction(engine) as s:
        shared = select(Individual.phone).group_by(Individual.phone).having(func.count() == 1)
        rows = s.execute(select(Individual.phone, Individual.cnic).where(
            Individual.cnic.is_not(None), Individual.phone.is_not(None), Individual.date_of_death.is_(None),
            Individual.phone.in_(shared)).order_by(Individual.id).limit(count * 20)).all()
    picked = random.Random(seed).sample(rows, count)
    return [("92" + phone[1:], cnic) for phone, cnic in picked]


def measure(engine, backend: str, n: int, concurrency: int, per_phone: int, think_ms: float,
            callback_threads: int) -> dict:
    phones = senders(engine, concurrency)
    times: list[float] = []
    lost: list[str] = []
    lock = threading.Lock()
    with LoopbackSMSC() as smsc:
        gateway = SmppGateway("127.0.0.1", smsc.port, smsc.system_id, smsc.password,
                              callback_threads=callback_threads)
        gateway.start(*dispatch.callbacks(engine, gateway, answer))
        try:
            assert smsc.wait_bound(10), "the gateway did not bind to the loopback SMSC"
            # warm-up: one text from a phone outside the measured ones
            smsc.inject("923559999999", "HELP")
            smsc.wait_for("923559999999", 1, timeout=30)
            start = threading.Barrier(len(phones))

            def phone(number: str, cnic: str) -> None:
                rng = random.Random(number)
                start.wait()
                # phones do not press "send" at the same instant: each starts within one pause
                time.sleep(rng.uniform(0, think_ms / 1000))
                for i in range(per_phone):
                    t = time.monotonic()
                    smsc.inject(number, cnic)
                    got = smsc.wait_for(number, i + 1, timeout=60)
                    if len(got) <= i:
                        with lock:
                            lost.append(number)
                        return
                    with lock:
                        times.append((got[i].at - t) * 1000)
                    if think_ms:
                        time.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)

            threads = [threading.Thread(target=phone, args=p) for p in phones]
            wall = time.monotonic()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            wall = time.monotonic() - wall
            load = round(os.getloadavg()[0], 2)
        finally:
            gateway.close()
    times.sort()
    row = {"backend": backend, "n": n, "concurrency": concurrency, "messages": len(times),
           "p50_ms": round(statistics.median(times), 1), "p99_ms": round(times[max(0, int(len(times) * 0.99) - 1)], 1),
           "max_ms": round(times[-1], 1), "per_second": round(len(times) / wall, 1), "think_ms": think_ms,
           "callback_threads": callback_threads, "lost": len(lost), "load": load}
    record("sms.roundtrip", row, keys=KEYS)
    return row


def run(backend: str, n: int, workdir: Path, args) -> None:
    url = fresh_database(backend, workdir, "isps_bench_sms")
    engine = make_engine(url)
    upgrade(engine)
    t = time.perf_counter()
    load_synthetic(engine, n, seed=5)
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s), on=date.today())
    if backend == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    print(f"{backend} {n:,} households ready in {time.perf_counter() - t:.0f} s")
    row = measure(engine, backend, n, args.concurrency, args.per_phone, args.think_ms, args.callback_threads)
    print(f"{backend} {n:,}: {row['messages']} round trips from {row['concurrency']} phones, "
          f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms (load {row['load']})")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=10_000)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--per-phone", type=int, default=inbound.RATE_LIMIT)
    parser.add_argument("--think-ms", type=float, default=1000.0)
    parser.add_argument("--callback-threads", type=int, default=8)
    args = parser.parse_args()
    if args.per_phone > inbound.RATE_LIMIT:
        parser.error(f"--per-phone: at most {inbound.RATE_LIMIT} (the inbound rate limit per phone and hour)")
    with tempfile.TemporaryDirectory(dir=os.environ.get("ISPS_BENCH_DIR")) as tmp:
        for backend in args.backends.split(","):
            run(backend, args.scale, Path(tmp), args)


if __name__ == "__main__":
    main()
