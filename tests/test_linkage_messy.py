"""Messy partner lists (issue 10 §3): district aliases, year-only and placeholder dates, honorifics and
name order, father's names with and without "Muhammad", CNIC slips that hit another person. Small
lists, both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from isps.linkage import ingest, names, resolve
from isps.registry import geography


def _district(name: str) -> int:
    return geography.district_by_name(name).id


@pytest.mark.parametrize("written, meant", [
    ("D.G. Khan", "Dera Ghazi Khan"), ("R.Y. Khan", "Rahim Yar Khan"), ("T.T. Singh", "Toba Tek Singh"),
    ("M.B. Din", "Mandi Bahauddin"), ("Pindi", "Rawalpindi"), ("Lyallpur", "Faisalabad"),
    ("Campbellpur", "Attock"), ("Montgomery", "Sahiwal"), ("dg khan", "Dera Ghazi Khan"),
    ("Jaranwala", "Faisalabad"), ("لاہور", "Lahore")])
def test_district_aliases_are_read(written, meant):
    assert geography.read_district(written) == (_district(meant), None)


def test_district_misspelling_is_read_and_noted_and_nonsense_is_reported():
    found, note = geography.read_district("Faislabad")
    assert found == _district("Faisalabad") and "read as Faisalabad" in note
    assert geography.read_district("Atlantis")[0] is None


def test_ingest_reads_aliases_and_reports_every_changed_field(engine):
    records = [
        {"partner_ref": "D1", "full_name": "Ali Raza", "district": "D.G. Khan", "date_of_birth": "1980"},
        {"partner_ref": "D2", "full_name": "Bushra Bibi", "district": "Lyallpur", "date_of_birth": "00/00/1975"},
        {"partner_ref": "D3", "full_name": "Asif", "district": "Faislabad", "date_of_birth": "1981-02-03"},
        {"partner_ref": "D4", "full_name": "Kamran " + "x" * 90, "district": "Atlantis"},
    ]
    r = ingest.ingest_records(engine, "bisp_kafaalat", records, partner="BISP", reference="aliases", actor="t")
    assert (r.inserted, r.rejected) == (4, 0)
    with engine.connect() as conn:
        got = {ref: (d, str(dob)[:10] if dob else None) for ref, d, dob in conn.execute(text(
            "SELECT partner_ref, district_id, date_of_birth FROM beneficiary"))}
    assert got["D1"] == (_district("Dera Ghazi Khan"), "1980-01-01")
    assert got["D2"] == (_district("Faisalabad"), "1975-01-01")
    assert got["D3"][0] == _district("Faisalabad") and got["D4"][0] is None
    problems = {(p.partner_ref, p.field): p.reason for p in r.problems}
    assert "year only" in problems[("D1", "date_of_birth")] and "year only" in problems[("D2", "date_of_birth")]
    assert "read as Faisalabad" in problems[("D3", "district")]
    assert "kept without it" in problems[("D4", "district")]
    assert "cut to 80" in problems[("D4", "full_name")]
    assert ("D1", "district") not in problems and ("D2", "district") not in problems  # an alias is no problem
