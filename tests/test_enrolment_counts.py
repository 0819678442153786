"""The kept enrolment counts (``enrolment_count``) equal a fresh COUNT after every kind of change:
listing and enrolment from a run, an exit and the fill it triggers, a death read from the registry,
graduation, a larger capacity, a raw bulk statement; and rebuild repairs a table that drifted."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from isps.db import transaction
from isps.programs import counts, enrolment as en, graduation
from isps.registry import service as registry
from isps.targeting.eligibility import rules

ON = date(2026, 6, 1)


def fresh(s, code: str, district_id: int | None = None) -> dict[str, int]:
    sql = "SELECT status, COUNT(*) FROM enrolment WHERE program_code = :c"
    if district_id is not None:
        sql += " AND district_id = :d"
    return {k: int(v) for k, v in s.execute(text(sql + " GROUP BY status"), {"c": code, "d": district_id})}


def run_of(s, code: str) -> int:
    rules.install_shipped_rules(s)
    row, _ = rules.active_rule(s, code)
    return rules.run(s, row, "test", on=ON).id


def test_counts_follow_every_change(province):
    code = "undergraduate_scholarship"
    with transaction(province) as s:
        assert counts.check(s) == []
        en.set_capacity(s, code, "test", slots=6)
        en.enrol_from_run(s, code, run_of(s, code), "test", ON)  # listing, then the fill
        en.process_events(s, ON)  # the cursor starts past the load's events
        assert counts.check(s) == [] and counts.by_status(s, code) == fresh(s, code)
        assert counts.by_status(s, code)["enrolled"] == 6 and counts.by_status(s, code)["waiting"] > 0
        first, victim = en.listing(s, code, "enrolled", limit=2)
        en.end(s, first["id"], "exited", "moved abroad", "officer", ON)  # the ORM path, and its fill
        assert counts.check(s) == [] and counts.by_status(s, code)["exited"] == 1
        district = first["district_id"]
        assert counts.by_status(s, code, district) == fresh(s, code, district)
        assert en.count_listing(s, code, "waiting", district_id=district) == fresh(s, code, district).get("waiting", 0)
    with transaction(province) as s:
        registry.change_individual(s, victim["individual_id"], {"date_of_death": "2026-06-10"},
                                   registry.Provenance(source="nadra", source_ref="death-1",
                                                       effective_date=date(2026, 6, 10), actor="nadra-feed"))
    with transaction(province) as s:
        assert en.process_events(s, ON)["ended"] == 1  # a death ends one and fills its place
        assert counts.check(s) == [] and counts.by_status(s, code) == fresh(s, code)
        assert counts.by_status(s, code)["deceased"] == 1 and counts.by_status(s, code)["enrolled"] == 6
        en.set_capacity(s, code, "test", slots=9)  # more places: three more from the waiting list
        assert counts.by_status(s, code)["enrolled"] == 9 and counts.check(s) == []
        en.set_policy(s, code, "test", spec={"graduation": {"cycles": 0}})
        en.set_capacity(s, "bisp_kafaalat", "test", slots=4)
        en.enrol_from_run(s, "bisp_kafaalat", run_of(s, "bisp_kafaalat"), "test", ON)
        en.set_policy(s, "bisp_kafaalat", "test", spec={"graduation": {"pmt_above": -1,
                                                                      "refer_to": "ppaf_interest_free_loans"}})
        graduation.graduate(s, "bisp_kafaalat", "test", ON)  # a set-based UPDATE, referrals into a second program
        assert counts.check(s) == []
        assert counts.by_status(s, "bisp_kafaalat") == fresh(s, "bisp_kafaalat")
        assert counts.by_program(s)["ppaf_interest_free_loans"] == fresh(s, "ppaf_interest_free_loans")
        s.execute(text("DELETE FROM enrolment WHERE program_code = 'ppaf_interest_free_loans'"))  # any statement
        assert counts.check(s) == [] and "ppaf_interest_free_loans" not in counts.by_program(s)


def test_check_finds_drift_and_rebuild_repairs_it(province):
    code = "bisp_kafaalat"
    with transaction(province) as s:
        en.set_capacity(s, code, "test", slots=3)
        en.enrol_from_run(s, code, run_of(s, code), "test", ON)
        bumped = s.execute(text("UPDATE enrolment_count SET n = n + 5 WHERE program_code = :c "
                                "AND status = 'enrolled'"), {"c": code}).rowcount
        drift = counts.check(s)
        assert drift and all(d["kept"] != d["counted"] for d in drift)
        assert sum(d["kept"] - d["counted"] for d in drift) == 5 * bumped
        assert counts.rebuild(s) > 0
        assert counts.check(s) == [] and counts.by_status(s, code) == fresh(s, code)
