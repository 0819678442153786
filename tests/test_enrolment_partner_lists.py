"""The enrolment filter against every program a person or household receives: partner lists
(resolved to registry persons) as well as ISPS's own enrolments; rules from the catalogue; each
refusal stored with a reason naming the other program, its agency and its list; a list arriving
later flags running enrolments for review, never ends them."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from sqlalchemy import text

from isps import catalogue
from isps.db import transaction
from isps.linkage import ingest
from isps.programs import duplicates, enrolment as en, reassessment
from isps.services.events import drain
from isps.targeting.eligibility import rules
from isps.web import lang

ON = date(2026, 6, 1)
ZAKAT = "Punjab Zakat and Ushr Department"


def run_of(s, code: str) -> int:
    row, _ = rules.active_rule(s, code)
    return rules.run(s, row, "test", on=ON).id


def people(engine, sql: str, n: int) -> list[int]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text(sql + f" LIMIT {n}"))]


def send_list(engine, program: str, partner: str, reference: str, individuals: list[int], prefix: str):
    """A clean partner list of these registry people (exact CNICs), ingested and resolved."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"""SELECT cnic, full_name, father_husband_name, sex, date_of_birth, district_id
            FROM individual WHERE id IN ({', '.join(str(i) for i in individuals)}) ORDER BY id""")).all()
    table = pa.table({
        "partner_ref": [f"{prefix}-{k}" for k in range(1, len(rows) + 1)], "cnic": [r[0] for r in rows],
        "full_name": [r[1] for r in rows], "father_husband_name": [r[2] for r in rows], "sex": [r[3] for r in rows],
        "date_of_birth": [str(r[4]) for r in rows], "district": [str(r[5]) for r in rows]})
    return ingest.ingest_table(engine, program, table, partner=partner, reference=reference, actor="test",
                               resolve=True)


def eligible_women(engine, code: str, n: int) -> list[int]:
    """Adult women with a CNIC in households the program's rule takes (the Kafaalat recipients)."""
    with transaction(engine) as s:
        run = run_of(s, code)
    return people(engine, f"""SELECT MIN(w.id) FROM eligibility_result r JOIN individual w
        ON w.household_id = r.household_id AND w.sex = 'female' AND w.cnic IS NOT NULL
        AND w.date_of_birth <= '2008-01-01' AND w.date_of_death IS NULL
        WHERE r.run_id = {run} AND r.eligible = TRUE GROUP BY r.household_id ORDER BY r.household_id""", n)


def test_the_catalogue_holds_the_rules_of_combination(province):
    with transaction(province) as s:
        kinds = {c.program: c for c in catalogue.conflicts(s, "bisp_kafaalat")}
        assert kinds["zakat_guzara_allowance"].rule == "same_kind"  # both regular cash transfers
        assert kinds["pbm_financial_assistance"].rule == "incompatible" and "Bait-ul-Mal" in kinds[
            "pbm_financial_assistance"].why
        pbm = {c.program: c for c in catalogue.conflicts(s, "pbm_financial_assistance")}
        assert pbm["zakat_guzara_allowance"].why_ur  # the reason in Urdu too
        assert "bisp_kafaalat" in pbm  # read both ways
        assert catalogue.household_ceiling(s) == 150_000
        assert "ppaf_interest_free_loans" in {p.code for p in catalogue.programs(s)}
        assert "ppaf_interest_free_loans" in en.DEFAULT_POLICIES  # one code for PPAF's loans everywhere


def test_a_household_on_a_zakat_list_is_refused_with_the_list_named(province):
    women = eligible_women(province, "bisp_kafaalat", 6)
    rep = send_list(province, "zakat_guzara_allowance", "Zakat Committee Kasur", "guzara-2026-q2", women, "ZG")
    assert rep.resolution.by_cnic == len(women)
    with transaction(province) as s:
        run = run_of(s, "bisp_kafaalat")
        out = en.enrol_from_run(s, "bisp_kafaalat", run, "test", ON)
        assert out["refused"]["same_kind"] == len(women)
        assert out["listed"] == out["eligible"] - len(women)
        homes = set(s.execute(text(f"SELECT household_id FROM individual WHERE id IN ({', '.join(map(str, women))})"))
                    .scalars())
        on_program = set(s.execute(text("SELECT household_id FROM enrolment WHERE program_code = 'bisp_kafaalat'"))
                         .scalars())
        assert not homes & on_program
        rows = en.refusals(s, program="bisp_kafaalat")
        assert {r["household_id"] for r in rows} == homes and en.count_refusals(s, program="bisp_kafaalat") == 6
        r = rows[0]
        assert r["source"] == "list" and r["other_agency"] == ZAKAT and r["list_reference"] == "guzara-2026-q2"
        assert "Zakat Guzara Allowance" in r["reason"] and ZAKAT in r["reason"] and "guzara-2026-q2" in r["reason"]
        assert "Zakat Committee Kasur" in r["reason"] and r["partner_ref"].startswith("ZG-")
        # the page words it in Urdu from the same fields
        from isps.web.enrol import refusal_text
        ur = refusal_text(lang.translator("ur"), r)
        assert "guzara-2026-q2" in ur and "پہلے ہی" in ur


def test_a_person_on_a_zakat_list_cannot_take_bait_ul_mal_assistance(province):
    """Incompatible pair (Bait-ul-Mal assists those who do not receive Zakat), a member program,
    found through the person; enrol_one (the counter) answers with the stored refusal."""
    with transaction(province) as s:
        hh, person = s.execute(text("""SELECT household_id, id FROM individual WHERE cnic IS NOT NULL
            AND date_of_birth <= '1990-01-01' AND date_of_death IS NULL ORDER BY id LIMIT 1""")).one()
    send_list(province, "zakat_guzara_allowance", "Zakat Committee Lahore", "guzara-lhr-7", [person], "ZL")
    with transaction(province) as s:
        outcome, eid = en.enrol_one(s, "pbm_financial_assistance", hh, person, "counter", "applied", ON)
        assert (outcome, eid) == ("incompatible", None)
        refusal = en.last_refusal(s, "pbm_financial_assistance", hh, person)
        assert refusal["rule"] == "incompatible" and refusal["other_program"] == "zakat_guzara_allowance"
        assert "do not receive Zakat" in refusal["reason"] and "guzara-lhr-7" in refusal["reason"]
        # Guzara is paid to the household, so another member is kept off through the household
        other = s.execute(text("""SELECT id FROM individual WHERE household_id = :h AND id <> :p
            AND date_of_death IS NULL LIMIT 1"""), {"h": hh, "p": person}).scalar()
        if other is not None:
            assert en.enrol_one(s, "pbm_financial_assistance", hh, other, "counter", "applied", ON)[0] == "incompatible"
        # a person-level program (Bait-ul-Mal's child support, an education stipend like Zakat's) of
        # someone else in another household is not touched
        assert en.enrol_one(s, "pbm_financial_assistance", hh + 1, 0, "counter", "applied", ON)[0] != "incompatible" \
            if s.execute(text("SELECT 1 FROM household WHERE id = :h"), {"h": hh + 1}).first() else True


def test_a_line_under_another_record_of_the_same_person_is_found_through_the_person(province):
    """A duplicate registration: the list linked to record B, and B's person was merged into A's.
    The check is by person, so A is refused although no line names A's record or CNIC."""
    women = eligible_women(province, "bisp_kafaalat", 1)
    with transaction(province) as s:
        a = women[0]
        b = s.execute(text("SELECT MIN(id) FROM individual WHERE household_id <> (SELECT household_id FROM individual "
                           "WHERE id = :a) AND cnic IS NOT NULL"), {"a": a}).scalar()
    send_list(province, "zakat_guzara_allowance", "Zakat Committee", "guzara-dup", [b], "ZD")
    with transaction(province) as s:
        pa_ = s.execute(text("INSERT INTO person (individual_id) VALUES (:a) RETURNING id"), {"a": a}).scalar()
        pb = s.execute(text("SELECT person_id FROM beneficiary WHERE partner_ref = 'ZD-1'")).scalar()
        s.execute(text("UPDATE person SET merged_into = :pa WHERE id = :pb"), {"pa": pa_, "pb": pb})
        s.execute(text("UPDATE beneficiary SET person_id = :pa WHERE person_id = :pb"), {"pa": pa_, "pb": pb})
        hh_a = s.execute(text("SELECT household_id FROM individual WHERE id = :a"), {"a": a}).scalar()
        hh_b = s.execute(text("SELECT household_id FROM individual WHERE id = :b"), {"b": b}).scalar()
        run = run_of(s, "bisp_kafaalat")
        en.enrol_from_run(s, "bisp_kafaalat", run, "test", ON)
        refused = {r["household_id"] for r in en.refusals(s, program="bisp_kafaalat")}
        assert hh_a in refused
        assert hh_b in refused or not s.execute(text(f"SELECT 1 FROM eligibility_result WHERE run_id = {run} "
                                                     f"AND household_id = {hh_b} AND eligible = TRUE")).first()


def test_the_household_ceiling_counts_every_program(province):
    women = eligible_women(province, "bisp_kafaalat", 2)
    send_list(province, "pbm_medical_assistance", "Pakistan Bait-ul-Mal", "medical-2026", women, "MA")
    with transaction(province) as s:
        run = run_of(s, "bisp_kafaalat")
        out = en.enrol_from_run(s, "bisp_kafaalat", run, "test", ON)
        assert out["refused"]["ceiling"] == 2
        r = en.refusals(s, program="bisp_kafaalat", rule="ceiling")[0]
        assert r["household_yearly_value"] == 300_000 + 34_000 and "above the ceiling of PKR 150,000" in r["reason"]
        assert "Medical" in r["reason"] and "medical-2026" in r["reason"]


def test_a_later_list_flags_running_enrolments_for_review_and_ends_none(province):
    with transaction(province) as s:
        run = run_of(s, "bisp_kafaalat")
        en.enrol_from_run(s, "bisp_kafaalat", run, "test", ON)
        enrolled = s.execute(text("""SELECT e.id, e.recipient_id FROM enrolment e WHERE e.program_code = 'bisp_kafaalat'
            AND e.status = 'enrolled' AND e.recipient_id IS NOT NULL ORDER BY e.id LIMIT 3""")).all()
    drain(province)  # nothing pending before the list
    send_list(province, "zakat_guzara_allowance", "Zakat Committee Kasur", "guzara-2026-q3",
              [r.recipient_id for r in enrolled], "ZQ")
    out = drain(province)
    assert out["duplicates_flagged"] == 3
    with transaction(province) as s:
        flagged = reassessment.reviews(s, "bisp_kafaalat")
        assert {f["enrolment_id"] for f in flagged} == {r.id for r in enrolled}
        assert all("Zakat Guzara Allowance" in f["reason"] and "guzara-2026-q3" in f["reason"] for f in flagged)
        statuses = s.execute(text(f"SELECT DISTINCT status FROM enrolment WHERE id IN "
                                  f"({', '.join(str(r.id) for r in enrolled)})")).scalars().all()
        assert statuses == ["enrolled"]  # never ended by a list
        assert duplicates.process_events(s, ON)["flagged"] == 0  # acted on once


@pytest.mark.parametrize("rule", ["same_kind"])
def test_refusals_page_by_keyset(province, rule):
    women = eligible_women(province, "bisp_kafaalat", 5)
    send_list(province, "zakat_guzara_allowance", "Zakat Committee", "guzara-keyset", women, "ZK")
    with transaction(province) as s:
        en.enrol_from_run(s, "bisp_kafaalat", run_of(s, "bisp_kafaalat"), "test", ON)
        first = en.refusals(s, rule=rule, limit=3)
        rest = en.refusals(s, rule=rule, after=first[-1]["id"], limit=3)
        assert len(first) == 3 and len(rest) == 2 and not {r["id"] for r in first} & {r["id"] for r in rest}
