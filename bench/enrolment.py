"""Enrolment filter benchmark: a whole-registry eligibility run of BISP Kafaalat enrolled against
partner lists (Zakat, Bait-ul-Mal, BISP's own, provincial programs) resolved to registry persons.

Not timed: building the registry, scoring it, the eligibility run, and the partner lines (written in
SQL straight from the registry, already resolved: this measures the filter, not the linkage; see
``bench/linkage.py`` for that). Timed: ``programs.enrolment.enrol_from_run`` (the duplicate and
incompatibility filter against ISPS enrolments and every partner line by person and household, the
household ceiling, the stored refusals, the waiting list and filling it) on an open capacity.

``python -m bench.enrolment --n 1000000`` writes rows ``enrolment.filter`` into
bench/results/enrolment.filter.json. ``bench.run`` calls :func:`measure` on the registry it built.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from bench.run import fresh_database, record
from isps.db import make_engine, transaction
from isps.migrate import upgrade
from isps.synth.load import load_synthetic
from isps.targeting import pmt

# partner programs the lines are spread over: some the filter must refuse Kafaalat for
# (same kind, incompatible), most it must let through
PARTNER_PROGRAMS = ("zakat_guzara_allowance", "pbm_financial_assistance", "punjab_bait_ul_maal_assistance",
                    "zakat_educational_stipend", "pbm_child_support", "bisp_taleemi_wazaif", "bisp_nashonuma",
                    "zakat_health_care", "pbm_medical_assistance", "ppaf_interest_free_loans")


def partner_lines(engine, n_lines: int) -> int:
    """``n_lines`` partner lines over the registry's people, resolved (individual, household, person),
    spread over :data:`PARTNER_PROGRAMS`, one batch per program: set-based SQL."""
    with transaction(engine) as s:
        people = s.execute(text("SELECT COUNT(*) FROM individual")).scalar_one()
        step = max(1, people // n_lines)
        k = len(PARTNER_PROGRAMS)
        for j, code in enumerate(PARTNER_PROGRAMS):
            s.execute(text("""INSERT INTO beneficiary_batch (program_code, partner, reference, channel, actor)
                VALUES (:c, 'bench', :r, 'file', 'bench')"""), {"c": code, "r": f"bench-{code}"})
        batches = dict(s.execute(text("SELECT program_code, id FROM beneficiary_batch")).all())
        case = " ".join(f"WHEN {j} THEN '{c}'" for j, c in enumerate(PARTNER_PROGRAMS))
        bcase = " ".join(f"WHEN {j} THEN {batches[c]}" for j, c in enumerate(PARTNER_PROGRAMS))
        picked = (f"SELECT i.id, i.household_id, i.cnic, i.full_name, i.father_husband_name, i.sex, i.date_of_birth, "
                  f"i.district_id, i.phone, MOD(i.id / {step}, {k}) AS j FROM individual i "
                  f"WHERE MOD(i.id, {step}) = 0 LIMIT {n_lines}")
        s.execute(text(f"""INSERT INTO beneficiary (program_code, partner_ref, batch_id, cnic, full_name,
                father_husband_name, sex, date_of_birth, district_id, phone, individual_id, household_id,
                link_method, run_id)
            SELECT CASE x.j {case} END, 'B' || CAST(x.id AS VARCHAR(20)), CASE x.j {bcase} END, x.cnic, x.full_name,
                x.father_husband_name, x.sex, x.date_of_birth, x.district_id, x.phone, x.id, x.household_id,
                'cnic', 0 FROM ({picked}) x"""))
        s.execute(text("""INSERT INTO person (individual_id, cnic)
            SELECT DISTINCT b.individual_id, b.cnic FROM beneficiary b"""))
        s.execute(text("""UPDATE beneficiary SET person_id = p.id FROM person p
            WHERE p.individual_id = beneficiary.individual_id"""))
        lines = s.execute(text("SELECT COUNT(*) FROM beneficiary")).scalar_one()
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    return int(lines)


def measure(engine, backend: str, n: int, lines: int) -> dict:
    """Time one enrolment of Kafaalat's whole-registry run through the filter."""
    from isps.programs import enrolment as en
    from isps.targeting.eligibility import rules

    with transaction(engine) as s:
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "bench")
        run_id, evaluated = run.id, run.evaluated
    with transaction(engine) as s:
        t = time.perf_counter()
        out = en.enrol_from_run(s, "bisp_kafaalat", run_id, "bench")
    seconds = time.perf_counter() - t
    result = {"backend": backend, "n": n, "partner_lines": lines, "seconds": round(seconds, 2),
              "decisions": evaluated, "eligible": out["eligible"], "listed": out["listed"],
              "enrolled": out["enrolled"], "duplicates": out["duplicates"], "refused": out["refused"]}
    record("enrolment.filter", result, keys=())
    return result


def run(backend: str, n: int, lines: int, workdir: Path) -> dict:
    engine = make_engine(fresh_database(backend, workdir, "isps_bench_enrolment"))
    upgrade(engine)
    load_synthetic(engine, n, seed=3)
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s))
    got = partner_lines(engine, lines)
    out = measure(engine, backend, n, got)
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000, help="households in the registry")
    ap.add_argument("--lines", type=int, help="partner lines (default: as many as households)")
    ap.add_argument("--backend", default="postgresql", choices=["postgresql", "sqlite"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(args.backend, args.n, args.lines or args.n, Path(tmp))


if __name__ == "__main__":
    main()
