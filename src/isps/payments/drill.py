"""The crash drill: run a cycle's whole payment pipeline in a subprocess, kill it with SIGKILL at a
random moment, run it again to the end, and check that nothing was paid twice or lost.

``python -m isps.payments.drill <database url> <cycle id> <folder>`` runs the pipeline; every step
is idempotent, so running it again after a crash finishes the work::

    generate → approve (second person) → export → bank status file → reconcile → retry failed on
    another channel → export → status file → reconcile → return unclaimed

The status files stand in for the bank's: written whole then renamed, and re-read after a crash.
:func:`trial` is one kill-and-restart round; tests and ``bench/payroll.py`` call it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

MAKER, CHECKER = "drill_maker", "drill_checker"


def _write_once(path: Path, make) -> bytes:
    if path.exists():
        return path.read_bytes()
    data = make()
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return data


def _reconcile_once(engine, data: bytes, name: str, on: date) -> None:
    """Import a status file unless it was imported before the crash (then it is refused: nothing to do)."""
    from isps.db import transaction
    from isps.payments import payroll as pr

    try:
        with transaction(engine) as s:
            pr.reconcile(s, data, name, "drill", on=on)
    except pr.PaymentConflict:
        pass


def pipeline(engine, cycle_id: int, folder: Path, on: date = date(2026, 7, 10)) -> dict:
    from isps.db import transaction
    from isps.payments import payroll as pr
    from isps.payments.models import Payroll

    folder.mkdir(parents=True, exist_ok=True)
    with transaction(engine) as s:
        pid = pr.generate(s, cycle_id, MAKER).id
    with transaction(engine) as s:
        payroll = s.get(Payroll, pid)
        if payroll.status == "draft":
            short = pr.fund(s, payroll.program_code)["shortfall"]  # the treasury releases what it needs
            if short > 0:
                pr.release_funds(s, payroll.program_code, short, f"drill-payroll-{pid}", CHECKER)
            pr.approve(s, pid, CHECKER)
    with transaction(engine) as s:
        pr.export(s, pid, folder, on=on)
    with transaction(engine) as s:
        first = _write_once(folder / f"status-{pid}-1.csv",
                            lambda: pr.bank_status_csv(s, pid, seed=cycle_id, paid=0.8, failed=0.1, unclaimed=0.1, on=on))
    _reconcile_once(engine, first, f"status-{pid}-1.csv", on)
    with transaction(engine) as s:
        pr.retry_failed(s, pid)
    with transaction(engine) as s:
        pr.export(s, pid, folder, on=on)
    with transaction(engine) as s:
        second = _write_once(folder / f"status-{pid}-2.csv",
                             lambda: pr.bank_status_csv(s, pid, seed=cycle_id + 1, paid=1.0, failed=0, unclaimed=0,
                                                        on=on))
    _reconcile_once(engine, second, f"status-{pid}-2.csv", on)
    with transaction(engine) as s:
        pr.return_unclaimed(s, date(on.year + 1, 1, 1), 90)
    return {"payroll_id": pid}


def check(engine, cycle_id: int) -> dict:
    from isps.db import transaction
    from isps.payments import payroll as pr

    with transaction(engine) as s:
        return {**pr.exactly_once(s, cycle_id), "balanced": pr.ledger_check(s)["balanced"]}


def progress(engine, cycle_id: int) -> str:
    """How far the pipeline got (from what is committed): where a kill landed."""
    from sqlalchemy import text

    from isps.db import transaction

    with transaction(engine) as s:
        row = s.execute(text("SELECT id, status, exported_upto FROM payroll WHERE cycle_id = :c"),
                        {"c": cycle_id}).one_or_none()
        if row is None:
            return "generate"
        if row.status == "draft":
            return "approve"
        if row.status == "approved":
            return "export"
        attempts = s.execute(text("SELECT MAX(attempt) FROM payment_instruction WHERE payroll_id = :p"),
                             {"p": row.id}).scalar_one()
        settled = s.execute(text("SELECT COUNT(*) FROM payment_instruction WHERE payroll_id = :p "
                                 "AND status <> 'pending'"), {"p": row.id}).scalar_one()
        if attempts == 1:
            return "reconcile 1" if settled == 0 else "retry"
        pending = s.execute(text("SELECT COUNT(*) FROM payment_instruction WHERE payroll_id = :p "
                                 "AND status = 'pending'"), {"p": row.id}).scalar_one()
        returned = s.execute(text("SELECT COUNT(*) FROM payment_instruction WHERE payroll_id = :p "
                                  "AND status = 'returned'"), {"p": row.id}).scalar_one()
        if pending:
            return "export 2" if row.exported_upto < s.execute(text(
                "SELECT MAX(id) FROM payment_instruction WHERE payroll_id = :p"), {"p": row.id}).scalar_one() \
                else "reconcile 2"
        return "return unclaimed" if not returned else "finished"


def trial(url: str, cycle_id: int, folder: Path, rng: random.Random, work_seconds: float,
          env: dict | None = None) -> dict:
    """One round: start the pipeline, kill -9 it at a random moment of its work, check the ledger,
    run it again to the end, check that every entitlement is paid once and none is lost."""
    from isps.db import make_engine

    cmd = [sys.executable, "-m", "isps.payments.drill", url, str(cycle_id), str(folder)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    proc.stdout.readline()  # "ready": imports done, the work starts now
    delay = rng.uniform(0, work_seconds)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    engine = make_engine(url)
    try:
        after_crash = check(engine, cycle_id)
        stage = progress(engine, cycle_id)
        rerun = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if rerun.returncode != 0:
            raise RuntimeError(f"the restarted pipeline failed: {rerun.stderr[-2000:]}")
        final = check(engine, cycle_id)
    finally:
        engine.dispose()
    return {"killed": killed, "at": round(delay, 3), "stage": stage if killed else "finished", "balanced_after_crash": after_crash["balanced"],
            "balanced": final["balanced"], "double_paid": final["double_paid"] + after_crash["double_paid"],
            "lost": final["lost"] + final["awaiting_retry"]}


def prepare_cycle(engine, code: str, k: int) -> int:
    """An approved cycle number ``k`` of ``code`` (one per trial), over everyone enrolled."""
    from isps.db import transaction
    from isps.programs import cycles

    with transaction(engine) as s:
        c = cycles.open_cycle(s, code, date(2030 + k // 12, k % 12 + 1, 1), MAKER)
        cycles.generate_entitlements(s, c.id)
        cycles.approve_cycle(s, c.id, CHECKER)
        return c.id


def main(argv: list[str]) -> int:
    from isps.db import make_engine

    url, cycle_id, folder = argv[0], int(argv[1]), Path(argv[2])
    engine = make_engine(url)
    from isps.payments import payroll as _pr  # noqa: F401 - imports and a connection before "ready",
    with engine.connect():  # so that the kill points fall in the work itself
        pass
    print("ready", flush=True)
    pipeline(engine, cycle_id, folder)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
