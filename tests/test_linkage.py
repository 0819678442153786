"""Single Beneficiary Registry: catalogue, ingestion, identity resolution, persons, reports."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import select, text

from isps.db import transaction
from isps.linkage import ingest, persons, reports, resolve, synthetic
from isps.linkage.models import Beneficiary, MatchCandidate
from isps import catalogue
from isps.synth.generator import generate
from isps.synth.load import load_synthetic


def _registry(engine) -> pa.Table:
    with engine.connect() as conn:
        reg = resolve.read_arrow(conn, "SELECT id, household_id, cnic, full_name, father_husband_name, sex, "
                                       "date_of_birth, district_id, phone FROM individual")
        marital = dict(conn.exec_driver_sql("SELECT id, marital_status FROM individual").fetchall())
    return reg.append_column("marital_status", pa.array([marital[i] for i in reg["id"].to_pylist()]))


def _outsiders() -> pa.Table:
    t = next(generate(300, seed=4242)).individuals
    t = t.select(["id", "household_id", "cnic", "full_name", "father_husband_name", "sex", "date_of_birth",
                  "district_id", "phone", "marital_status"])
    return t.set_column(0, "id", pa.array(range(-1, -t.num_rows - 1, -1), pa.int64()))


def _links(engine) -> dict:
    with engine.connect() as conn:
        return {r[0]: (r[1], r[2]) for r in conn.exec_driver_sql(
            "SELECT partner_ref, individual_id, person_id FROM beneficiary")}


def test_catalogue_seeded(engine):
    with transaction(engine) as s:
        progs = catalogue.programs(s)
        assert len(progs) >= 100
        assert len({p.agency for p in progs}) >= 25
        assert {p.pillar for p in progs} == set(catalogue.PILLARS)
        codes = {p.code for p in progs}
        for code in ("bisp_kafaalat", "bisp_taleemi_wazaif", "bisp_nashonuma", "undergraduate_scholarship",
                     "pbm_financial_assistance", "zakat_guzara_allowance", "eobi_old_age_pension",
                     "sehat_sahulat", "pspa_khidmat_card", "akhuwat_interest_free_loans", "ppaf_interest_free_loans"):
            assert code in codes
        assert catalogue.get(s, "bisp_kafaalat").yearly_value == 34_000
        assert catalogue.install_catalogue(s) == 0  # seeding again writes nothing


def test_ingest_reports_rows_and_is_idempotent(engine, tmp_path):
    records = [
        {"partner_ref": "A1", "cnic": "35202-1234567-2", "full_name": "Nasreen Bibi", "sex": "female",
         "date_of_birth": "1980-03-04", "district": "Lahore", "phone": "0300-1234567"},
        {"partner_ref": "A2", "cnic": "12345", "full_name": "Mohammad Ali", "date_of_birth": "31/12/1975",
         "district": "Atlantis"},
        {"partner_ref": "A3", "full_name": ""},
        {"partner_ref": "A1", "full_name": "Again"},
    ]
    r = ingest.ingest_records(engine, "bisp_kafaalat", records, partner="BISP", reference="2026-Q1", actor="t")
    assert (r.rows, r.inserted, r.rejected) == (4, 2, 2)
    fields = {(p.row, p.field, p.severity) for p in r.problems}
    assert (2, "cnic", "warning") in fields and (2, "district", "warning") in fields
    assert (3, "full_name", "rejected") in fields and (4, "partner_ref", "rejected") in fields
    again = ingest.ingest_records(engine, "bisp_kafaalat", records, partner="BISP", reference="2026-Q1", actor="t")
    assert again.replayed and again.inserted == 0 and again.batch_id == r.batch_id
    # the same lines under a new reference: unchanged
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("partner_ref,cnic,full_name,sex,date_of_birth,district,phone\n"
                        "A1,35202-1234567-2,Nasreen Bibi,female,1980-03-04,Lahore,0300-1234567\n"
                        "A2,12345,Mohammad Ali,,31/12/1975,Atlantis,\n")
    f = ingest.ingest_file(engine, "bisp_kafaalat", csv_path, partner="BISP", actor="t")
    assert (f.inserted, f.updated, f.unchanged) == (0, 0, 2), f.summary()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM beneficiary")).scalar_one() == 2
        dob = conn.execute(text("SELECT date_of_birth FROM beneficiary WHERE partner_ref = 'A2'")).scalar_one()
        assert str(dob)[:10] == "1975-12-31"


@pytest.fixture
def linked(engine):
    load_synthetic(engine, 400, seed=3)
    reg = _registry(engine)
    lst = synthetic.partner_list(reg, 900, seed=9, outsiders=_outsiders(), outsider_share=0.1)
    ingest.ingest_table(engine, "bisp_kafaalat", lst.drop(["true_individual_id"]), partner="BISP",
                        reference="L1", actor="t")
    rep = resolve.resolve(engine, actor="t")
    return engine, reg, lst, rep


def test_resolve_on_arrival_matches_resolve_later(engine):
    load_synthetic(engine, 300, seed=5)
    lst = synthetic.partner_list(_registry(engine), 500, seed=8, outsiders=_outsiders())
    rep = ingest.ingest_table(engine, "bisp_nashonuma", lst.drop(["true_individual_id"]), partner="BISP",
                              reference="N1", actor="t", resolve=True)
    assert rep.resolution.records == 500 and rep.resolution.by_splink > 0
    got = _links(engine)
    refs = lst["partner_ref"].to_pylist()
    q = synthetic.evaluate([got[r][0] for r in refs], lst["true_individual_id"].to_pylist())
    assert q["precision"] >= 0.99 and q["recall"] >= 0.95, q
    assert all(got[r][1] is not None for r in refs)  # every line has a person
    assert resolve.resolve(engine, actor="t").records == 0  # nothing left to resolve
    # the next line gets the next id (the sequence moved past the reserved block)
    more = ingest.ingest_records(engine, "bisp_nashonuma", [{"partner_ref": "X", "full_name": "Test Bibi"}],
                                 partner="BISP", reference="N2", actor="t")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT max(id) FROM beneficiary")).scalar_one() == 501
        assert more.inserted == 1


def test_large_list_is_written_with_indexes_rebuilt_after(engine, monkeypatch):
    """A list that at least doubles the linkage tables is written as pg_restore would (secondary
    indexes and foreign keys rebuilt after the COPY): same links, and every index and foreign key
    is back and valid afterwards."""
    monkeypatch.setattr(resolve, "BULK_MIN_ROWS", 1)
    bulk, deferred = [], resolve.deferred_constraints
    monkeypatch.setattr(resolve, "deferred_constraints",
                        lambda conn, tables: bulk.append(tables[0]) or deferred(conn, tables))
    load_synthetic(engine, 300, seed=5)
    lst = synthetic.partner_list(_registry(engine), 500, seed=8, outsiders=_outsiders())
    rep = ingest.ingest_table(engine, "bisp_nashonuma", lst.drop(["true_individual_id"]), partner="BISP",
                              reference="B1", actor="t", resolve=True)
    assert rep.inserted == 500 and rep.resolution.by_splink > 0
    got = _links(engine)
    refs = lst["partner_ref"].to_pylist()
    q = synthetic.evaluate([got[r][0] for r in refs], lst["true_individual_id"].to_pylist())
    assert q["precision"] >= 0.99 and q["recall"] >= 0.95, q
    assert all(got[r][1] is not None for r in refs)
    if engine.dialect.name == "postgresql":
        assert sorted(bulk) == ["beneficiary", "match_candidate", "person"]
        with engine.connect() as conn:
            indexes = {r[0] for r in conn.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename IN ('beneficiary', 'person', 'match_candidate')")}
            assert {"ix_beneficiary_cnic", "ix_beneficiary_individual_id", "ix_beneficiary_household_id",
                    "ix_beneficiary_person_id", "ix_beneficiary_pending", "uq_beneficiary_partner_ref",
                    "ix_person_cnic", "uq_person_individual_id", "ix_match_candidate_status",
                    "ix_match_candidate_beneficiary_id"} <= indexes
            fks = {r[0] for r in conn.exec_driver_sql(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'beneficiary'::regclass AND contype = 'f' "
                "AND convalidated")}
            assert fks == {"fk_beneficiary_program_code_program", "fk_beneficiary_batch_id_beneficiary_batch"}
    # a smaller list into the now larger tables is written row by row, and resolves the same way
    more = synthetic.partner_list(_outsiders(), 50, seed=3, prefix="Z")
    rep2 = ingest.ingest_table(engine, "bisp_nashonuma", more.drop(["true_individual_id"]), partner="BISP",
                               reference="B2", actor="t", resolve=True)
    assert rep2.inserted == 50 and all(v[1] is not None for v in _links(engine).values())
    assert len(bulk) == (3 if engine.dialect.name == "postgresql" else 0)


def test_resolution_quality_and_stability(linked):
    engine, reg, lst, rep = linked
    got = _links(engine)
    refs = lst["partner_ref"].to_pylist()
    q = synthetic.evaluate([got[r][0] for r in refs], lst["true_individual_id"].to_pylist())
    assert q["precision"] >= 0.99 and q["recall"] >= 0.95, q
    assert rep.by_cnic > 0 and rep.by_splink > 0
    # every probabilistic link is explained field by field, and the weights add up
    with transaction(engine) as s:
        c = s.scalars(select(MatchCandidate).where(MatchCandidate.status == "linked")).first()
        fields = [e["field"] for e in c.explanation]
        assert fields[0] == "prior" and "name" in fields and "date_of_birth" in fields
        assert abs(sum(e["weight"] for e in c.explanation) - c.match_weight) < 0.1
    # the same list again changes nothing; resolving again changes nothing
    again = ingest.ingest_table(engine, "bisp_kafaalat", lst.drop(["true_individual_id"]), partner="BISP",
                                reference="L1", actor="t")
    assert again.replayed
    before = _links(engine)
    assert resolve.resolve(engine, actor="t").records == 0
    # unrelated lines arrive (another program, other people): person ids stay as they were
    other = synthetic.partner_list(_outsiders(), 100, seed=2, prefix="Z")
    ingest.ingest_table(engine, "pspa_khidmat_card", other.drop(["true_individual_id"]), partner="PSPA",
                        reference="K1", actor="t")
    resolve.resolve(engine, actor="t")
    after = _links(engine)
    assert all(after[k] == v for k, v in before.items())


def test_duplication_report_finds_planted_duplicates(linked):
    engine, reg, lst, _ = linked
    # plant: the same people in a second program of the same kind (unconditional cash transfer)
    rng = np.random.default_rng(1)
    planted = lst.filter(pa.compute.is_valid(lst["true_individual_id"])).take(pa.array(rng.choice(700, 25, replace=False)))
    dup = synthetic.corrupt(planted.rename_columns(
        ["partner_ref", "cnic", "full_name", "father_husband_name", "sex", "date_of_birth", "district", "phone",
         "id"]).select(["id"]).join(reg, "id"), rng) if False else None
    people = reg.filter(pa.compute.is_in(reg["id"], planted["true_individual_id"]))
    second = synthetic.corrupt(people, rng).add_column(0, "partner_ref", pa.array([f"Z{i}" for i in range(people.num_rows)]))
    ingest.ingest_table(engine, "zakat_guzara_allowance", second, partner="Zakat", reference="Z1", actor="t")
    resolve.resolve(engine, actor="t")
    with transaction(engine) as s:
        found = reports.same_kind(s)
        person_of = {b.individual_id: b.person_id for b in s.scalars(select(Beneficiary).where(
            Beneficiary.program_code == "bisp_kafaalat"))}
        want = {person_of[i] for i in people["id"].to_pylist()}
        flagged = {d.person_id for d in found if "zakat_guzara_allowance" in d.programs}
        assert want <= flagged, (len(want - flagged), len(want))
        matrix = {(o.program_a, o.program_b): o.persons for o in reports.overlap_matrix(s)}
        assert matrix[("bisp_kafaalat", "zakat_guzara_allowance")] >= len(want)
        table = reports.by_district_program(s)
        assert sum(r.duplicated_lines for r in table if r.program_code == "zakat_guzara_allowance") >= len(want)
        assert reports.household_ceiling(s, ceiling=30_000)  # Kafaalat alone is 34,000 a year
        assert reports.household_overlaps(s) is not None
        header = reports.to_csv(found, "same_kind").splitlines()[0]
        assert header == "Person,Kind of benefit,Programs,List lines,District,Yearly value (PKR)"
        # an empty report still carries its header row
        assert reports.to_csv([], "household_ceiling").splitlines() == [
            "Household,Yearly value (PKR),Programs,Persons,District"]


def test_review_merge_unmerge_history(linked):
    engine, *_ = linked
    with transaction(engine) as s:
        bens = list(s.scalars(select(Beneficiary).order_by(Beneficiary.id).limit(2)))
        a, b = bens[0].person_id, bens[1].person_id
        h = persons.merge(s, a, b, actor="officer", reason="same widow")
        keep = min(a, b)
        assert {x.person_id for x in bens} == {keep}
        with pytest.raises(persons.LinkageError):
            persons.merge(s, a, b, actor="officer")
        persons.unmerge(s, h.id, actor="officer")
        s.refresh(bens[0]); s.refresh(bens[1])
        assert {bens[0].person_id, bens[1].person_id} == {a, b}
        assert [x.action for x in persons.history(s, max(a, b))] == ["merge", "unmerge"]
        with pytest.raises(persons.LinkageError):
            persons.unmerge(s, h.id, actor="officer")
