"""Crash drill: the payment pipeline runs in a real subprocess killed with SIGKILL at random moments,
then restarts; after each round the ledger balances and no entitlement is paid twice or lost.
``bench/payroll.py`` runs the same drill with 50 and more kill points."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from datetime import date

from sqlalchemy import text

from isps.db import transaction
from isps.payments import drill
from isps.programs import enrolment as en
from isps.targeting.eligibility import rules

TRIALS = 4


def subprocess_url(engine) -> str:
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    return url


def test_kill_nine_mid_payroll_and_reconciliation(province, tmp_path):
    with transaction(province) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test", on=date(2026, 6, 1))
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "test", date(2026, 6, 1))
        en.set_policy(s, "bisp_kafaalat", "test", frequency="monthly")
    url = subprocess_url(province)
    # a clean run measures how long the work takes once the worker is ready
    cycle = drill.prepare_cycle(province, "bisp_kafaalat", 0)
    proc = subprocess.Popen([sys.executable, "-m", "isps.payments.drill", url, str(cycle), str(tmp_path / "c0")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()  # ready
    started = time.perf_counter()
    proc.stdout.readline()  # done: the work, without the interpreter's exit
    work = time.perf_counter() - started
    assert proc.wait() == 0, proc.stderr.read()
    clean = drill.check(province, cycle)
    assert clean == {"double_paid": 0, "lost": 0, "awaiting_retry": 0, "balanced": True}
    rng = random.Random(5)
    results = []
    for k in range(1, TRIALS + 1):
        cycle = drill.prepare_cycle(province, "bisp_kafaalat", k)
        results.append(drill.trial(url, cycle, tmp_path / f"c{k}", rng, work))
    assert any(r["killed"] for r in results)
    assert all(r["stage"] for r in results)
    for r in results:
        assert r["balanced_after_crash"] and r["balanced"], r
        assert r["double_paid"] == 0 and r["lost"] == 0, r
