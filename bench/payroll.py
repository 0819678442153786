"""Payroll benchmarks: generation and export, reconciliation, and the crash drill.

``python -m bench.payroll`` measures a payroll of 100k entitlements on PostgreSQL (generate +
pain.001 and CSV export; then a status file of 100k lines reconciled), and runs the crash drill
(``--trials``, 50 by default: the pipeline in a subprocess killed with SIGKILL at a random moment,
then restarted) on SQLite and PostgreSQL. ``--scale 1000000`` adds a payroll of 1M entitlements
and records how cost grows. Rows: ``payroll.generate``, ``payroll.reconcile``, ``payroll.faults``.

The entitlements belong to a benchmark program with one enrolment per registered person (the
registry is loaded with enough households for ``n`` people), paid by every channel in the mix the
enrolment path assigns; the bank's status file is a deterministic mix of 90% paid, 5% failed and
5% unclaimed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import text

from sqlalchemy import create_engine

from bench.run import PG_ADMIN, RESULTS, record
from isps.db import make_engine, transaction
from isps.migrate import upgrade
from isps.synth.load import load_synthetic

CODE = "bench_payroll"


def fresh_database(backend: str, workdir: Path, name: str = "isps_bench_payroll") -> str:
    """An empty database of this benchmark's own (never the one bench.run uses)."""
    if backend == "sqlite":
        db = workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{db}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def _enrol_everyone(engine, n: int) -> None:
    """n enrolments of a benchmark program (fixed Rs 8,500), set-based over the registry's people.
    Four in ten hold a bank account and two in ten a mobile wallet, as the accounts feed would have
    reported them; every enrolment's channel is chosen by the production rule
    (:func:`isps.programs.enrolment.channel_sql`), so the payroll's channel refresh finds the
    steady state (nothing to change) rather than rewriting every enrolment."""
    from isps.programs.enrolment import best_accounts, channel_sql
    from isps.programs.models import EnrolmentPolicy

    with transaction(engine) as s:
        s.add(EnrolmentPolicy(program_code=CODE, unit="member", frequency="monthly", updated_by="bench",
                              spec={"amount": {"kind": "fixed", "amount": 8500}, "top_ups": [], "quotas": [],
                                    "incompatible": [], "rank_by": "pmt"}))
        s.flush()
        m = "(i.id % 10)"
        people = "SELECT id FROM individual ORDER BY id LIMIT :n"
        s.execute(text(f"""INSERT INTO financial_account (kind, provider, account_number, individual_id, household_id,
                district_id, opened_on, status, source_ref)
            SELECT CASE WHEN {m} < 4 THEN 'bank' ELSE 'wallet' END, CASE WHEN {m} < 4 THEN 'BOP' ELSE 'JazzCash' END,
                   CASE WHEN {m} < 4 THEN 'PK36BPUN' || CAST(i.id AS VARCHAR(20)) ELSE 'W' || CAST(i.id AS VARCHAR(20)) END,
                   i.id, i.household_id, i.district_id, :on, 'active', 'bench'
            FROM individual i WHERE {m} < 6 AND i.id IN ({people})"""), {"on": date(2025, 1, 1), "n": n})
        channel, account = channel_sql("h.urban", "i.phone")
        s.execute(text(f"""INSERT INTO enrolment (program_code, household_id, individual_id, recipient_id, district_id,
                tehsil_id, status, rank_value, female, disabled, channel, account, phone, run_id, warnings, listed_on,
                enrolled_on, reason)
            SELECT :code, i.household_id, i.id, i.id, i.district_id, h.tehsil_id, 'enrolled', NULL,
                   i.sex = 'female', i.disability <> 'none', {channel}, {account},
                   i.phone, NULL, 0, :on, :on, 'benchmark'
            FROM individual i JOIN household h ON h.id = i.household_id
            LEFT JOIN ({best_accounts(people)}) a ON a.individual_id = i.id
            WHERE i.id IN ({people})"""), {"code": CODE, "on": date(2026, 1, 1), "n": n, "yes": True})
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()


def payroll_once(engine, backend: str, n: int, workdir: Path) -> dict:
    from isps.payments import payroll as pr
    from isps.programs import cycles

    with transaction(engine) as s:
        c = cycles.open_cycle(s, CODE, date(2026, 7, 1), "maker")
        t = time.perf_counter()
        cycles.generate_entitlements(s, c.id)
        ent_s = time.perf_counter() - t
    with transaction(engine) as s:
        cycles.approve_cycle(s, c.id, "checker")
    t = time.perf_counter()
    with transaction(engine) as s:
        p = pr.generate(s, c.id, "maker")
    gen_s = time.perf_counter() - t
    with transaction(engine) as s:
        pr.release_funds(s, CODE, p.total, f"bench-{c.id}", "treasury")
        pr.approve(s, p.id, "checker")
    t = time.perf_counter()
    with transaction(engine) as s:
        out = pr.export(s, p.id, workdir / "files", on=date(2026, 7, 5))
    exp_s = time.perf_counter() - t
    sizes = {k: round(os.path.getsize(v) / 1e6, 1) for k, v in out["files"].items()}
    assert out["instructions"] == n, (out["instructions"], n)
    record("payroll.generate", {"backend": backend, "n": n, "seconds": round(gen_s + exp_s, 2),
                                "generate_s": round(gen_s, 2), "export_s": round(exp_s, 2),
                                "entitlements_s": round(ent_s, 2), "file_mb": sizes,
                                "per_s": round(n / (gen_s + exp_s))})
    with transaction(engine) as s:
        status = pr.bank_status_csv(s, p.id, paid=0.9, failed=0.05, unclaimed=0.05, on=date(2026, 7, 10))
    t = time.perf_counter()
    with transaction(engine) as s:
        res = pr.reconcile(s, status, "bench-status.csv", "bench", on=date(2026, 7, 10))
    rec_s = time.perf_counter() - t
    t = time.perf_counter()
    with transaction(engine) as s:  # the same lines in another file (the same file is refused outright)
        again = pr.reconcile(s, status + b"\n", "bench-status-again.csv", "bench", on=date(2026, 7, 10))
    again_s = time.perf_counter() - t
    with transaction(engine) as s:
        state = pr.exactly_once(s, c.id)
        ledger = pr.ledger_check(s, CODE)
    assert res["applied"] == n and again["applied"] == 0 and ledger["balanced"] and state["double_paid"] == 0
    record("payroll.reconcile", {"backend": backend, "n": n, "seconds": round(rec_s, 2), "applied": res["applied"],
                                 "reimport_s": round(again_s, 2), "reimport_applied": again["applied"],
                                 "ledger_balanced": ledger["balanced"], "double_paid": state["double_paid"],
                                 "lost": state["lost"], "per_s": round(n / rec_s)})
    return {"generate": gen_s + exp_s, "reconcile": rec_s}


def payroll_at(backend: str, n: int, workdir: Path) -> dict:
    url = fresh_database(backend, workdir)
    engine = make_engine(url)
    upgrade(engine)
    households = int(n / 6.3) + 1000  # about 6.3 people per synthetic household
    load_synthetic(engine, households, seed=3)
    _enrol_everyone(engine, n)
    try:
        return payroll_once(engine, backend, n, workdir)
    finally:
        engine.dispose()


def faults(backend: str, trials: int, workdir: Path, households: int = 3000) -> None:
    """The crash drill: ``trials`` random SIGKILLs during payroll and reconciliation, each followed by a
    restart; counts entitlements paid twice and lost, and checks the ledger after crash and restart."""
    from isps.payments import drill
    from isps.programs import enrolment as en
    from isps.targeting import pmt
    from isps.targeting.eligibility import rules

    url = fresh_database(backend, workdir, "isps_bench_faults")
    engine = make_engine(url)
    upgrade(engine)
    load_synthetic(engine, households, seed=5)
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s))
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "bench", on=date(2026, 6, 1))
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "bench", date(2026, 6, 1))
        en.set_policy(s, "bisp_kafaalat", "bench", frequency="monthly")
    import subprocess
    import sys
    cycle = drill.prepare_cycle(engine, "bisp_kafaalat", 0)
    proc = subprocess.Popen([sys.executable, "-m", "isps.payments.drill", url, str(cycle), str(workdir / "f0")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proc.stdout.readline()  # ready
    t = time.perf_counter()
    proc.stdout.readline()  # done: the work, without the interpreter's exit
    work = time.perf_counter() - t
    proc.wait()
    with transaction(engine) as s:
        per_trial = s.execute(text("SELECT COUNT(*) FROM entitlement WHERE cycle_id = :c"), {"c": cycle}).scalar_one()
    rng = random.Random(2026)
    results = []
    started = time.perf_counter()
    for k in range(1, trials + 1):
        cycle = drill.prepare_cycle(engine, "bisp_kafaalat", k)
        results.append(drill.trial(url, cycle, workdir / f"f{k}", rng, work))
    engine.dispose()
    record("payroll.faults", {
        "backend": backend, "n": int(per_trial), "seconds": round(time.perf_counter() - started, 1),
        "trials": trials, "killed": sum(r["killed"] for r in results),
        "double_paid": sum(r["double_paid"] for r in results), "lost": sum(r["lost"] for r in results),
        "unbalanced_after_crash": sum(not r["balanced_after_crash"] for r in results),
        "unbalanced_after_restart": sum(not r["balanced"] for r in results),
        "pipeline_s": round(work, 2),
        "killed_during": {k: sum(r["stage"] == k for r in results) for k in sorted({r["stage"] for r in results})}, "kill_points_s": sorted(r["at"] for r in results)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,postgresql", help="for the crash drill")
    parser.add_argument("--skip-faults", action="store_true")
    parser.add_argument("--skip-payroll", action="store_true")
    args = parser.parse_args()
    sizes = [100_000, args.scale] if args.scale > 100_000 else [args.scale]
    with tempfile.TemporaryDirectory(dir=os.environ.get("ISPS_BENCH_DIR")) as tmp:
        if not args.skip_payroll:
            costs = {n: payroll_at("postgresql", n, Path(tmp)) for n in sizes}
            if len(sizes) == 2:
                factor = sizes[1] / sizes[0]
                for name, key in (("payroll.generate", "generate"), ("payroll.reconcile", "reconcile")):
                    growth = costs[sizes[1]][key] / costs[sizes[0]][key]
                    path = RESULTS / f"{name}.json"
                    rows = json.loads(path.read_text())
                    for r in rows:
                        if r["backend"] == "postgresql" and r["n"] == sizes[1]:
                            r["growth_vs_100k"] = round(growth, 2)
                            r["linear_would_be"] = factor
                    path.write_text(json.dumps(rows, indent=1) + "\n")
                    print(f"{name}: {growth:.1f}x the cost for {factor:.0f}x the entitlements")
        if not args.skip_faults:
            for backend in args.backends.split(","):
                faults(backend, args.trials, Path(tmp))


if __name__ == "__main__":
    main()
