"""Every program of the catalogue and every agency it names has a real Urdu name, and Urdu pages
show it wherever a program or an agency is named (issue 12: "program names stay in English in Urdu")."""

from __future__ import annotations

import re

from isps import catalogue
from isps.db import transaction
from isps.web import lang
from tests.test_web import sign_in, text_of

URDU = re.compile(r"^[\u0600-\u06FF\u0750-\u077F\u200c\u200f\s0-9()/،,.\-]+$")


def _programs() -> list[dict]:
    return catalogue._shipped_file()["programs"]


def test_every_program_and_agency_has_an_urdu_name_in_arabic_script():
    programs = _programs()
    assert len(programs) == 112
    for p in programs:
        for field in ("name_ur", "agency_ur"):
            value = p.get(field, "")
            assert value.strip() and URDU.match(value), f"{p['code']}: {field} {value!r} is not Urdu"
            assert re.search(r"[\u0600-\u06FF]{2}", value), f"{p['code']}: {field} has no Urdu word"
        assert p["name_ur"] != p["name"] and p["agency_ur"] != p["agency"]
    # one Urdu name per agency, and no two programs with the same Urdu name
    by_agency: dict[str, set[str]] = {}
    for p in programs:
        by_agency.setdefault(p["agency"], set()).add(p["agency_ur"])
    assert all(len(v) == 1 for v in by_agency.values()), {k: v for k, v in by_agency.items() if len(v) > 1}
    assert len({p["name_ur"] for p in programs}) == len(programs)


def test_the_names_are_read_in_the_readers_language():
    assert catalogue.display_name("bisp_kafaalat", "ur") == "بینظیر کفالت"
    assert catalogue.display_name("bisp_kafaalat", "en") == "BISP Kafaalat"
    assert catalogue.display_name("no_such_program", "ur") == "no_such_program"
    assert catalogue.agency_name("Punjab Zakat and Ushr Department", "ur") == "زکوٰۃ و عشر ڈیپارٹمنٹ پنجاب"
    assert catalogue.agency_name("Punjab Zakat and Ushr Department", "en") == "Punjab Zakat and Ushr Department"
    assert catalogue.agency_name("Some Partner NGO", "ur") == "Some Partner NGO"  # unknown: as written
    # the Urdu words are display data, not columns of the program table
    assert not {"name_ur", "agency_ur"} & set(catalogue.shipped()[0])


def test_the_catalogue_page_in_urdu_names_every_program_and_agency_in_urdu(client, province):
    sign_in(client, "manager")
    client.cookies.set("lang", "ur")
    page = text_of(client.get("/programs").text)
    programs = _programs()
    for p in programs:
        assert p["name_ur"] in page, p["code"]
        assert p["agency_ur"] in page, p["agency"]
    english = [p["name"] for p in programs if p["name"] in page] + \
        [p["agency"] for p in programs if p["agency"] in page]
    assert not english, english
    client.cookies.set("lang", "en")
    page = text_of(client.get("/programs").text)
    assert "BISP Kafaalat" in page and "Punjab Social Protection Authority" in page and "بینظیر کفالت" not in page


def test_an_urdu_household_page_names_programs_in_urdu(client, province):
    from tests.test_web import first_household

    hh = first_household(province, 1, high=30)
    sign_in(client, "lahore_officer")
    client.cookies.set("lang", "ur")
    page = text_of(client.get(f"/households/{hh.id}").text)
    assert "بینظیر کفالت" in page and "پاکستان بیت المال انفرادی مالی امداد" in page
    assert not [p["name"] for p in _programs() if p["name"] in page]


def test_a_refusal_names_the_other_program_and_its_agency_in_urdu():
    from isps.web.refusals import refusal_text

    row = {"source": "list", "partner_ref": "ZG-1", "list_reference": "guzara-2026-q2", "partner": "Zakat Committee Kasur",
           "list_received": "2026-11-01", "other_ref": None, "other_program": "zakat_guzara_allowance",
           "other_agency": "Punjab Zakat and Ushr Department", "rule": "same_kind",
           "other_kind": "unconditional_cash_transfer"}
    ur = refusal_text(lang.translator("ur"), row)
    assert "زکوٰۃ گزارہ الاؤنس (زکوٰۃ و عشر ڈیپارٹمنٹ پنجاب)" in ur
    assert "Zakat Guzara" not in ur and "Ushr" not in ur and "Zakat Committee Kasur" in ur  # the partner as written
    en = refusal_text(lang.translator("en"), row)
    assert "Zakat Guzara Allowance (Punjab Zakat and Ushr Department)" in en


def test_the_duplicate_benefit_reports_name_programs_in_urdu(client, province):
    from isps.linkage.reports import Duplicate, Overlap
    from isps.web.linkage import _report_rows

    ur = lang.translator("ur")
    with transaction(province) as s:
        dup = _report_rows(s, ur, "same_kind", [Duplicate(1, "unconditional_cash_transfer",
                                                          "bisp_kafaalat, zakat_guzara_allowance", 2, 1, 42000.0)])
        pair = _report_rows(s, ur, "overlap_matrix", [Overlap("bisp_kafaalat", "pspa_ba_himmat_buzurg", 3)])
    assert dup[0]["programs"] == "بینظیر کفالت, زکوٰۃ گزارہ الاؤنس"
    assert (pair[0]["program_a"], pair[0]["program_b"]) == ("بینظیر کفالت", "باہمت بزرگ بڑھاپا الاؤنس")
    sign_in(client, "manager")
    client.cookies.set("lang", "ur")
    page = client.get("/sbr/reports?report=same_kind").text
    assert '<option value="bisp_kafaalat">بینظیر کفالت</option>' in page and ">BISP Kafaalat<" not in page
