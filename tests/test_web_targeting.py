"""The web pages of targeting: each program's decision on the household page, and the simulator."""

from __future__ import annotations

import re

from isps.targeting.eligibility import rules
from isps.db import transaction
from tests.test_web import first_household, sign_in, text_of


def test_the_household_page_explains_every_program(client, province):
    hh = first_household(province, 1, high=30)
    sign_in(client, "lahore_officer")
    page = client.get(f"/households/{hh.id}").text
    rows = re.findall(r'<tr data-program="([a-z_]+)" data-eligible="(yes|no)">', page)
    assert {code for code, _ in rows} >= {"bisp_kafaalat", "pbm_financial_assistance"}
    with transaction(province) as s:
        decision = rules.explain(s, rules.active_rule(s, "bisp_kafaalat")[1], hh.id)[0]
    assert ("bisp_kafaalat", "yes" if decision.eligible else "no") in rows
    assert len(rows) == len({code for code, _ in rows}), "one row per program, not one per member"


def test_a_member_program_says_each_reason_once_with_the_members_it_concerns(client, province):
    """A reason every considered member shares is written once; one that concerns some members names them."""
    from sqlalchemy import select

    from isps.registry.models import Household

    with transaction(province) as s:
        rule = rules.active_rule(s, "bisp_taleemi_wazaif")[1]
        for hid in s.scalars(select(Household.id).where(Household.district_id == 1).order_by(Household.id)):
            decisions = rules.explain(s, rule, hid)
            if len(decisions) >= 3 and not any(d.eligible for d in decisions):
                break
        else:
            raise AssertionError("the test province has no Lahore household with three children all refused")
    sign_in(client, "lahore_officer")
    page = client.get(f"/households/{hid}").text
    cells = text_of(re.search(r'<tr data-program="bisp_taleemi_wazaif" data-eligible="no">(.*?)</tr>', page,
                              re.S).group(1))
    assert f"none of the {len(decisions)} members considered" in cells
    everyone = {o.sentence for o in decisions[0].outcomes if not o.met and o.sentence}
    for d in decisions[1:]:
        everyone &= {o.sentence for o in d.outcomes if not o.met and o.sentence}
    assert everyone, "no reason shared by all: the test shows nothing"
    for sentence in everyone:
        assert cells.count(sentence) == 1, sentence


def test_the_household_page_gives_reasons_in_urdu(client, province):
    hh = first_household(province, 1, low=45)
    sign_in(client, "lahore_officer")
    client.cookies.set("lang", "ur")
    page = client.get(f"/households/{hh.id}").text
    assert "پی ایم ٹی اسکور" in page and "حد 32 سے زیادہ ہے" in page


def test_the_simulator_compares_kafaalat_cut_offs_by_district(client):
    sign_in(client, "manager")
    params = {"program": "bisp_kafaalat", "cutoffs": "30, 32, 35"}
    shell = client.get("/simulator", params=params).text  # opens at once: the results are asked for after load
    assert 'hx-trigger="load"' in shell and "data-eligible" not in shell
    page = client.get("/simulator/results", params=params).text
    totals = [int(n) for n in re.findall(r'data-eligible="(\d+)"', page)]
    assert len(totals) == 3 and totals == sorted(totals) and totals[0] < totals[2]
    text = text_of(page)
    for label in ("cut-off 30", "cut-off 32", "cut-off 35", "Inclusion error", "Exclusion error", "Lahore", "Kasur"):
        assert label in text
    assert 'id="sim-districts"' in page


def test_the_simulator_refuses_bad_input_and_other_roles(client):
    sign_in(client, "manager")
    bad = client.get("/simulator", params={"cutoffs": "30, lots"})
    assert bad.status_code == 422 and "Cut-offs must be up to six numbers" in bad.text
    sign_in(client, "lahore_officer")
    assert client.get("/simulator").status_code == 403


def test_the_household_page_shows_vulnerability_per_shock(client, province):
    hh = first_household(province, 1)
    sign_in(client, "lahore_officer")
    page = client.get(f"/households/{hh.id}").text
    shocks = re.findall(r'<tr data-shock="(\w+)" data-score="([\d.]+)">', page)
    assert {s for s, _ in shocks} == {"flood", "drought", "earthquake", "epidemic", "landslide"}
    assert all(0 <= float(v) <= 100 for _, v in shocks)


def test_the_district_risk_map(client, province):
    from isps.targeting import vulnerability
    with transaction(province) as s:
        vulnerability.compute_all(s)
    sign_in(client, "kasur_counter")
    page = client.get("/risk", params={"shock": "flood"}).text
    districts = re.findall(r'<tr data-district="([^"]+)"', page)
    assert len(districts) == 36 and districts.index("Rajanpur") < districts.index("Lahore")
    client.cookies.set("lang", "ur")
    assert "سیلاب" in client.get("/risk").text


def test_programs_are_named_from_the_catalogue_and_badges_differ(client, province):
    hh = first_household(province, 1, low=45)  # not eligible for Kafaalat
    sign_in(client, "lahore_officer")
    page = client.get(f"/households/{hh.id}").text
    row = page[page.index('<tr data-program="bisp_kafaalat"'):]
    row = row[:row.index("</tr>")]
    assert 'class="tag no"' in row and 'class="tag ok"' not in row
    assert "BISP Benazir Nashonuma" in page and "BISP Nashonuma" not in page
    assert "; ;" not in text_of(page) and "; </td>" not in page
    title = client.get("/programs/bisp_kafaalat/enrolment").text
    assert "Enrolment: BISP Kafaalat</h1>" in title and "bisp_kafaalat</h1>" not in title
    assert "· BISP Kafaalat" in title and "· bisp_kafaalat" not in title
    client.cookies.set("lang", "ur")
    page = client.get(f"/households/{hh.id}").text
    assert "بینظیر کفالت" in page and ">BISP Kafaalat<" not in page


def test_the_simulator_names_overlapping_programs_and_skips_zeros(client, province):
    with transaction(province) as s:
        _, rule = rules.active_rule(s, "bisp_nashonuma")
        rules.run(s, rules.active_rule(s, "bisp_nashonuma")[0], "test")
    sign_in(client, "manager")
    page = client.get("/simulator/results", params={"program": "bisp_kafaalat", "cutoffs": "32"}).text
    text = text_of(page)
    assert "bisp_nashonuma" not in text and ": 0 " not in text + " "
    assert "BISP Benazir Nashonuma:" in text or "No household eligible here is eligible" in text
