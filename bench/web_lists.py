"""Benchmark: every list page of the web app at page 1 and at page 1,000 (issue 12: "page 1,000
costs what page 1 does", p99 at most 300 ms for any list page at 1M households).

``python -m bench.web_lists --scale 100000`` loads a registry with the loader of :mod:`bench.run`,
enrols every household in a program set-based (half enrolled, half on the waiting list), writes
one audit record per household and one review pair per tenth registry person, then times each
list page through the app in process (FastAPI's TestClient, signed in as an administrator) at page
1 and at page 1,000, in its default order and in one other order a column header offers
(``enrolled.district``, ``waiting.listed_on``, ``audit.action``, ``review.weight``, ``search.pmt``).
The enrolment totals come from ``enrolment_count``, which the database's triggers keep through the
bulk INSERT below as through any other change. The page-1,000 cursor is picked once in SQL (the id
at OFFSET 999 pages) and
passed as the page's keyset cursor, exactly as the "next page" link would after 999 clicks.
Rows ``{"name": "web.list", "backend", "n", "page", "list", "p50_ms", "p99_ms"}`` go to
``bench/results/web.list.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import bindparam, text

from bench.run import fresh_database, record
from isps.access.service import create_user
from isps.db import make_engine, transaction
from isps.linkage.models import BeneficiaryBatch
from isps.migrate import upgrade
from isps.synth.load import load_synthetic
from isps.targeting import pmt

PROGRAM = "bisp_kafaalat"
DEEP = 1_000  # the deep page measured beside page 1
KEYS = ("list", "page")


def populate(engine) -> dict:
    """Long lists, set-based: enrolments, audit records and review pairs."""
    day = date(2026, 6, 1)
    dialect = engine.dialect.name
    json_empty = "CAST('[]' AS JSON)" if dialect == "postgresql" else "'[]'"
    with transaction(engine) as s:
        s.execute(text("""INSERT INTO enrolment (program_code, household_id, individual_id, recipient_id, district_id,
                tehsil_id, status, rank_value, female, disabled, channel, warnings, listed_on, enrolled_on)
            SELECT :code, h.id, 0, NULL, h.district_id, h.tehsil_id,
                   CASE WHEN h.id % 2 = 0 THEN 'enrolled' ELSE 'waiting' END, p.score, :no, :no, 'bank', 0, :day,
                   CASE WHEN h.id % 2 = 0 THEN :day END
            FROM household h LEFT JOIN pmt_score p ON p.household_id = h.id AND p.model_id = :model""")
                  .bindparams(bindparam("no", False)),
                  {"code": PROGRAM, "day": day, "model": pmt.active_model(s).id})
        s.execute(text("""INSERT INTO audit_log (at, actor, role, channel, action, entity, entity_id, district_id,
                outcome, detail)
            SELECT :at, 'officer', 'district_officer', 'web', 'read', 'household', h.id, h.district_id, 'ok', NULL
            FROM household h"""), {"at": day})
        batch = BeneficiaryBatch(program_code=PROGRAM, partner="BISP", reference="bench", channel="file", actor="bench")
        s.add(batch)
        s.flush()
        s.execute(text("""INSERT INTO beneficiary (program_code, partner_ref, batch_id, cnic, full_name, sex,
                date_of_birth, district_id, household_id, link_method, run_id)
            SELECT :code, 'B' || CAST(i.id AS VARCHAR(20)), :batch, i.cnic, i.full_name, i.sex, i.date_of_birth,
                   i.district_id, i.id, 'review', 1
            FROM individual i WHERE i.id % 10 = 0"""), {"code": PROGRAM, "batch": batch.id})
        # household_id held the person's id only to pair the line with it here; then it is cleared
        s.execute(text(f"""INSERT INTO match_candidate (beneficiary_id, individual_id, match_weight,
                match_probability, explanation, status, run_id)
            SELECT b.id, b.household_id, 5.0, 0.5, {json_empty}, 'review', 1 FROM beneficiary b
            WHERE b.batch_id = :batch"""), {"batch": batch.id})
        s.execute(text("UPDATE beneficiary SET household_id = NULL WHERE batch_id = :batch"), {"batch": batch.id})
        # one feed delivery per household, and one refused row per household in the first one's report
        s.execute(text("""INSERT INTO feed_delivery (feed, reference, actor, received_at, records, accepted, rejected)
            SELECT 'nadra', 'bench-' || CAST(h.id AS VARCHAR(20)), 'bench', :at, 10, 9, 1 FROM household h"""),
                  {"at": day})
        first = s.scalar(text("SELECT min(id) FROM feed_delivery"))
        s.execute(text("""INSERT INTO feed_rejection (delivery_id, seq, row, record_ref, field, reason)
            SELECT :d, ROW_NUMBER() OVER (ORDER BY h.id), 1, 'R' || CAST(h.id AS VARCHAR(20)), 'cnic',
                   'must be 13 digits' FROM household h"""), {"d": first})
        create_user(s, "bench", "bench-pass", "administrator")
        counts = {name: s.scalar(text(sql)) for name, sql in (
            ("enrolled", "SELECT count(*) FROM enrolment WHERE status = 'enrolled'"),
            ("waiting", "SELECT count(*) FROM enrolment WHERE status = 'waiting'"),
            ("audit", "SELECT count(*) FROM audit_log"),
            ("review", "SELECT count(*) FROM match_candidate WHERE status = 'review'"))}
    if dialect == "postgresql":  # what autovacuum does after a bulk load: statistics and visibility map
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return counts


def deep_cursors(engine, page: int) -> dict[str, tuple[int, str]]:
    """Each list's page ``page`` (or its last page, if it has fewer) and its address: the keyset
    cursor a reader reaches after page - 1 clicks on "next", read once with OFFSET (never by the
    page itself)."""
    def at(sql: str, size: int, url: str) -> tuple[int, str]:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT count(*) FROM ({sql}) AS q"), {"c": PROGRAM}).scalar()
            reached = max(2, min(page, (rows - 1) // size + 1))
            cursor = conn.execute(text(sql + " LIMIT 1 OFFSET :skip"),
                                  {"skip": (reached - 1) * size - 1, "c": PROGRAM}).scalar()
        return reached, url.format(cursor)

    return {
        "enrolled": at("SELECT id FROM enrolment WHERE program_code = :c AND status = 'enrolled' ORDER BY id", 50,
                       f"/programs/{PROGRAM}/enrolment?after={{}}"),
        "waiting": at("SELECT id FROM enrolment WHERE program_code = :c AND status = 'waiting' "
                      "ORDER BY CASE WHEN rank_value IS NULL THEN 1 ELSE 0 END, rank_value, id", 50,
                      f"/programs/{PROGRAM}/enrolment?wafter={{}}"),
        "audit": at("SELECT id FROM audit_log ORDER BY id DESC", 100, "/audit?before_id={}"),
        "review": at("SELECT id FROM match_candidate WHERE status = 'review' ORDER BY id", 20,
                     "/sbr/review?after={}"),
        "search": at("SELECT id FROM household ORDER BY id", 25, "/search?search=1&after={}"),
        "feed_deliveries": at("SELECT id FROM feed_delivery ORDER BY id DESC", 50, "/feeds/deliveries?before={}"),
        "feed_report": at("SELECT seq FROM feed_rejection WHERE delivery_id = (SELECT min(id) FROM feed_delivery) "
                          "ORDER BY seq", 50, f"/feeds/deliveries/{_first_delivery(engine)}?after={{}}"),
        # the same lists in another order a column header offers: the keyset (value, id)
        "enrolled.district": at("SELECT id FROM enrolment WHERE program_code = :c AND status = 'enrolled' "
                                "ORDER BY district_id DESC, id DESC", 50,
                                f"/programs/{PROGRAM}/enrolment?sort=-district&after={{}}"),
        "waiting.listed_on": at("SELECT id FROM enrolment WHERE program_code = :c AND status = 'waiting' "
                                "ORDER BY listed_on, id", 50,
                                f"/programs/{PROGRAM}/enrolment?wsort=listed_on&wafter={{}}"),
        "audit.action": at("SELECT id FROM audit_log ORDER BY action, id", 100, "/audit?sort=action&before_id={}"),
        "review.weight": at("SELECT id FROM match_candidate WHERE status = 'review' "
                            "ORDER BY match_weight DESC, id DESC", 20, "/sbr/review?sort=-weight&after={}"),
        "search.pmt": at("SELECT h.id FROM household h JOIN pmt_score p ON p.household_id = h.id "
                         "WHERE h.district_id = 1 ORDER BY p.score, h.id", 25,
                         "/search?search=1&district_id=1&sort=pmt&after={}"),
    }


def _first_delivery(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT min(id) FROM feed_delivery")).scalar()


FIRST = {"enrolled": f"/programs/{PROGRAM}/enrolment", "waiting": f"/programs/{PROGRAM}/enrolment",
         "audit": "/audit", "review": "/sbr/review", "search": "/search?search=1", "feed_deliveries": "/feeds/deliveries",
         "feed_report": "/feeds/deliveries/{first}",
         "enrolled.district": f"/programs/{PROGRAM}/enrolment?sort=-district",
         "waiting.listed_on": f"/programs/{PROGRAM}/enrolment?wsort=listed_on", "audit.action": "/audit?sort=action",
         "review.weight": "/sbr/review?sort=-weight", "search.pmt": "/search?search=1&district_id=1&sort=pmt"}


def time_pages(engine, backend: str, n: int, samples: int, deep: int = DEEP) -> None:
    from fastapi.testclient import TestClient

    from isps.api.app import create_app

    first = _first_delivery(engine)
    pages = [{name: (1, url.format(first=first)) for name, url in FIRST.items()}, deep_cursors(engine, deep)]
    with TestClient(create_app(engine, secret="bench")) as client:
        r = client.post("/login", data={"username": "bench", "password": "bench-pass"}, follow_redirects=False)
        assert r.status_code == 303, r.text
        for urls in pages:
            for name, (page, url) in urls.items():
                for _ in range(3):  # warm-up
                    assert client.get(url).status_code == 200, url
                times = []
                for _ in range(samples):
                    t = time.perf_counter()
                    r = client.get(url)
                    times.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, r.text[:300]
                times.sort()
                record("web.list", {"backend": backend, "n": n, "page": page, "list": name,
                                    "p50_ms": round(statistics.median(times), 1),
                                    "p99_ms": round(times[max(0, int(len(times) * 0.99) - 1)], 1),
                                    "requests": samples, "load_1min": round(os.getloadavg()[0], 2)}, keys=KEYS)


def run(backend: str, n: int, workdir: Path, samples: int, deep: int = DEEP) -> None:
    url = fresh_database(backend, workdir, "isps_bench_web_lists")
    engine = make_engine(url)
    upgrade(engine)
    t = time.perf_counter()
    load_synthetic(engine, n, seed=1)
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s))
    counts = populate(engine)
    print(f"{backend} {n:,} households loaded in {time.perf_counter() - t:.0f} s: {counts}")
    time_pages(engine, backend, n, samples, deep)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--deep", type=int, default=DEEP, help="the deep page measured beside page 1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("ISPS_BENCH_DIR")) as tmp:
        for backend in args.backends.split(","):
            run(backend, args.scale, Path(tmp), args.samples, args.deep)


if __name__ == "__main__":
    main()
