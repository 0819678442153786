"""Every shipped program rule, with households just inside and just outside each criterion,
and the plain-words reason a counter operator would read out."""

from __future__ import annotations

from datetime import date

import pytest

from isps.db import transaction
from isps.registry.ids import next_household_ids, next_individual_ids
from isps.registry.models import Household, IngestBatch, Individual
from isps.targeting import pmt
from isps.targeting.eligibility import rules
from isps.targeting.eligibility.language import RuleError
from isps.targeting.models import PmtScore

ON = date(2026, 6, 1)


def born(years: int, days_after: int = 0) -> date:
    """Date of birth of someone who turns ``years`` on ON (or ``days_after`` later)."""
    from datetime import timedelta
    return ON.replace(year=ON.year - years) + timedelta(days=days_after)


HEAD = dict(sex="male", dob=born(45), relation="head", marital="married")
WIFE = dict(sex="female", dob=born(40), relation="spouse", marital="married")


def make_household(s, score: float, members: list[dict], income: float | None = 30_000) -> int:
    batch = s.query(IngestBatch).first() or IngestBatch(source="operator", reference="test",
                                                         effective_date=ON, actor="test")
    s.add(batch)
    s.flush()
    hid = next_household_ids(s, 5)[0]
    s.add(Household(id=hid, ref=f"T-{hid}", district_id=5, tehsil_id=16, urban=False, address="Chak 12",
                    tenure="owned", rooms=2, roof="mud_thatch", wall="mud", toilet="pit", drinking_water="hand_pump",
                    electricity=True, cooking_fuel="wood", fridge=False, freezer=False, air_conditioner=False,
                    air_cooler=False, washing_machine=False, television=False, motorcycle=False, car=False,
                    computer=False, land_acres=0, cattle=0, goats_sheep=0, tractor=False, monthly_income=income,
                    batch_id=batch.id, surveyed_on=ON, verified_on=ON))
    ids = next_individual_ids(s, 5, len(members))
    for k, (pid, m) in enumerate(zip(ids, members), start=1):
        s.add(Individual(id=pid, household_id=hid, district_id=5, roster_line=k, cnic=None, id_document=None,
                         full_name=m.get("name", f"Person {k}"), father_husband_name=None, sex=m["sex"],
                         date_of_birth=m["dob"], relation_to_head=m["relation"],
                         marital_status=m.get("marital", "never_married"), disability=m.get("disability", "none"),
                         education=m.get("education", "none"), enrolled_in_school=m.get("enrolled", False),
                         occupation=None, labour_status="child", maternal_status=m.get("maternal"), phone=None,
                         member_since=ON, batch_id=batch.id))
    s.add(PmtScore(model_id=pmt.active_model(s).id, household_id=hid, district_id=5, score=score))
    s.flush()
    return hid


def decide(s, code: str, hid: int) -> list[rules.Decision]:
    _, rule = rules.active_rule(s, code)
    return rules.explain(s, rule, hid, on=ON)


def only(decisions, name=None) -> rules.Decision:
    pick = [d for d in decisions if name is None or d.person == name]
    assert len(pick) == 1, [(d.person, d.summary) for d in decisions]
    return pick[0]


# ---------------------------------------------------------------- BISP Kafaalat

@pytest.mark.parametrize("score, disabled, eligible", [
    (32.0, False, True), (32.01, False, False), (37.0, True, True), (37.01, True, False), (35.0, False, False),
])
def test_kafaalat_cut_off_32_or_37_with_disability(engine, score, disabled, eligible):
    with transaction(engine) as s:
        hid = make_household(s, score, [HEAD, {**WIFE, "disability": "physical" if disabled else "none"}])
        d = only(decide(s, "bisp_kafaalat", hid))
    assert d.eligible is eligible
    if not eligible:
        assert d.summary == (f"not eligible: PMT score {score:.2f} is above the cut-off 32 "
                             "(37 where a member has a disability)")


@pytest.mark.parametrize("woman, eligible", [
    (dict(sex="female", dob=born(18), relation="spouse", marital="married"), True),
    (dict(sex="female", dob=born(18, 1), relation="spouse", marital="married"), False),  # 18 tomorrow
    (dict(sex="female", dob=born(30), relation="daughter", marital="never_married"), False),
    (dict(sex="female", dob=born(50), relation="head", marital="widowed"), True),
])
def test_kafaalat_needs_an_ever_married_woman_of_18(engine, woman, eligible):
    with transaction(engine) as s:
        hid = make_household(s, 20.0, [HEAD, woman])
        d = only(decide(s, "bisp_kafaalat", hid))
    assert d.eligible is eligible
    if not eligible:
        assert "no ever-married woman aged 18 or over" in d.summary


# ---------------------------------------------------------------- Taleemi Wazaif

@pytest.mark.parametrize("age, days, education, eligible", [
    # education is the highest level completed: none = in primary, primary/middle = in secondary
    (4, 0, "none", True), (3, 0, "none", False),            # primary band starts at 4
    (12, 0, "none", True), (13, 0, "none", False),          # ... and ends at 12
    (8, 0, "primary", True), (7, 0, "primary", False),      # secondary 8-18
    (18, 0, "middle", True), (19, 0, "middle", False),
    (13, 0, "matric", True), (12, 0, "matric", False),      # higher secondary 13-22
    (22, 0, "matric", True), (22, 1, "matric", True),
])
def test_taleemi_wazaif_school_age_bands(engine, age, days, education, eligible):
    with transaction(engine) as s:
        hid = make_household(s, 30.0, [HEAD, WIFE, dict(name="Child", sex="female", dob=born(age, days),
                                                         relation="daughter", education=education, enrolled=True)])
        d = only(decide(s, "bisp_taleemi_wazaif", hid), "Child")
    assert d.eligible is eligible
    if not eligible:
        band = {"none": "primary band 4-12", "primary": "secondary band 8-18", "middle": "secondary band 8-18",
                "matric": "higher secondary band 13-22"}[education]
        assert f"age {age} is outside the {band}" in d.summary


@pytest.mark.parametrize("age, education, reason", [
    # ages inside some band, failing for another reason: the sentence names the band that applies
    (15, "none", "age 15 is outside the primary band 4-12"),
    (18, "none", "age 18 is outside the primary band 4-12"),
    (22, "middle", "age 22 is outside the secondary band 8-18"),
    (15, "intermediate", "has completed more than matric"),
])
def test_taleemi_wazaif_names_the_band_of_the_childs_level_not_all_bands(engine, age, education, reason):
    with transaction(engine) as s:
        hid = make_household(s, 30.0, [HEAD, WIFE, dict(name="Child", sex="female", dob=born(age),
                                                         relation="daughter", education=education, enrolled=True)])
        d = only(decide(s, "bisp_taleemi_wazaif", hid), "Child")
    assert not d.eligible
    assert reason in d.summary
    assert "outside the bands" not in d.summary
    if education == "intermediate":  # age 15 fits a band: the age is not what fails
        assert f"age {age}" not in d.summary


def test_taleemi_wazaif_needs_enrolment_and_a_poor_household(engine):
    with transaction(engine) as s:
        child = dict(name="Child", sex="male", dob=born(9), relation="son", education="none")
        out_of_school = make_household(s, 30.0, [HEAD, WIFE, {**child, "enrolled": False}])
        richer = make_household(s, 32.01, [HEAD, WIFE, {**child, "enrolled": True}])
        poor = make_household(s, 32.0, [HEAD, WIFE, {**child, "enrolled": True}])
        a = only(decide(s, "bisp_taleemi_wazaif", out_of_school), "Child")
        b = only(decide(s, "bisp_taleemi_wazaif", richer), "Child")
        c = only(decide(s, "bisp_taleemi_wazaif", poor), "Child")
    assert not a.eligible and a.summary == "not eligible: is not enrolled in school"
    assert not b.eligible and "PMT score 32.01 is above Kafaalat's cut-off 32" in b.summary
    assert c.eligible


# ---------------------------------------------------------------- Nashonuma

@pytest.mark.parametrize("person, eligible", [
    (dict(name="P", sex="female", dob=born(25), relation="spouse", marital="married", maternal="pregnant"), True),
    (dict(name="P", sex="female", dob=born(25), relation="spouse", marital="married", maternal="lactating"), True),
    (dict(name="P", sex="female", dob=born(25), relation="spouse", marital="married"), False),
    (dict(name="P", sex="male", dob=born(2, 1), relation="son"), True),   # one day short of 2
    (dict(name="P", sex="female", dob=born(2), relation="daughter"), False),  # 2 today
])
def test_nashonuma_mothers_and_children_under_two(engine, person, eligible):
    with transaction(engine) as s:
        hid = make_household(s, 25.0, [HEAD, person])
        d = only(decide(s, "bisp_nashonuma", hid), "P")
    assert d.eligible is eligible
    if not eligible:
        assert "is not pregnant or breastfeeding, and is not a child under 2" in d.summary


def test_nashonuma_needs_kafaalat_poverty(engine):
    infant = dict(name="P", sex="male", dob=born(1), relation="son")
    with transaction(engine) as s:
        inside = only(decide(s, "bisp_nashonuma", make_household(s, 32.0, [HEAD, infant])), "P")
        outside = only(decide(s, "bisp_nashonuma", make_household(s, 32.01, [HEAD, infant])), "P")
    assert inside.eligible and not outside.eligible


# ---------------------------------------------------------------- undergraduate scholarship

@pytest.mark.parametrize("income, eligible", [(45_000, True), (45_001, False), (None, False)])
def test_scholarship_income_ceiling(engine, income, eligible):
    student = dict(name="S", sex="female", dob=born(19), relation="daughter", education="intermediate")
    with transaction(engine) as s:
        d = only(decide(s, "undergraduate_scholarship", make_household(s, 60.0, [HEAD, student], income)), "S")
    assert d.eligible is eligible
    if income is None:
        assert "declared family income (not declared) is above Rs 45,000" in d.summary
    elif not eligible:
        assert "declared family income (Rs 45,001) is above Rs 45,000 a month" in d.summary


@pytest.mark.parametrize("age, education, eligible", [
    (17, "intermediate", True), (16, "intermediate", False), (25, "graduate", True), (26, "graduate", False),
    (20, "matric", False),
])
def test_scholarship_needs_intermediate_and_undergraduate_age(engine, age, education, eligible):
    student = dict(name="S", sex="male", dob=born(age), relation="son", education=education)
    with transaction(engine) as s:
        d = only(decide(s, "undergraduate_scholarship", make_household(s, 60.0, [HEAD, student], 40_000)), "S")
    assert d.eligible is eligible
    if not eligible:  # the reason names what fails, and only that
        assert ("has not passed intermediate" in d.summary) is (education == "matric")
        assert (f"age {age} is outside the undergraduate ages 17-25" in d.summary) is not (17 <= age <= 25)


def test_scholarship_at_24_without_intermediate_is_not_told_its_age_is_outside(engine):
    student = dict(name="S", sex="male", dob=born(24), relation="son", education="matric")
    with transaction(engine) as s:
        d = only(decide(s, "undergraduate_scholarship", make_household(s, 60.0, [HEAD, student], 40_000)), "S")
    assert d.summary == "not eligible: has not passed intermediate (12 years of schooling)"


# ---------------------------------------------------------------- Pakistan Bait-ul-Mal

@pytest.mark.parametrize("score, eligible", [(40.0, True), (40.01, False)])
def test_bait_ul_mal_need_threshold(engine, score, eligible):
    widow = dict(name="W", sex="female", dob=born(55), relation="head", marital="widowed")
    with transaction(engine) as s:
        d = only(decide(s, "pbm_financial_assistance", make_household(s, score, [widow])), "W")
    assert d.eligible is eligible


def test_bait_ul_mal_widows_orphans_under_14_and_disabled(engine):
    widow = dict(name="Widow", sex="female", dob=born(40), relation="head", marital="widowed")
    with transaction(engine) as s:
        hid = make_household(s, 30.0, [
            widow,
            dict(name="Orphan13", sex="male", dob=born(13), relation="son"),
            dict(name="Orphan14", sex="female", dob=born(14), relation="daughter"),
            dict(name="Disabled", sex="male", dob=born(30), relation="brother", disability="visual"),
        ])
        married = make_household(s, 30.0, [HEAD, dict(name="Wife", sex="female", dob=born(38), relation="spouse",
                                                      marital="married"),
                                           dict(name="Son9", sex="male", dob=born(9), relation="son")])
        got = {d.person: d for d in decide(s, "pbm_financial_assistance", hid) + decide(s, "pbm_financial_assistance", married)}
    assert got["Widow"].eligible and got["Orphan13"].eligible and got["Disabled"].eligible
    assert not got["Orphan14"].eligible and not got["Wife"].eligible and not got["Son9"].eligible
    assert "is not a widow, an orphan under 14, or a person with a disability" in got["Son9"].summary


# ---------------------------------------------------------------- the engine

def test_count_and_materialised_list_agree_and_carry_reasons(province):
    with transaction(province) as s:
        row, rule = rules.active_rule(s, "bisp_kafaalat")
        counts = rules.count_by_district(s, rule)
        run = rules.run(s, row, actor="manager")
        assert run.eligible == sum(counts.values()) and run.evaluated == 600
        refused = rules.results_page(s, run, eligible=False, limit=5)
        assert refused and all(r["reasons"] for r in refused)
        assert all("above the cut-off" in r["reasons"][0] or "woman" in r["reasons"][0] for r in refused)


def test_a_new_rule_version_is_checked_before_it_is_stored(province):
    with transaction(province) as s:
        _, rule = rules.active_rule(s, "bisp_kafaalat")
        spec = rule.to_spec()
        spec["criteria"][0]["when"] = "pmt <= 30 or wealth < 3"
        with pytest.raises(RuleError, match="criterion 'pmt': unknown variable 'wealth'"):
            rules.save_rule(s, spec, actor="manager")
        spec["criteria"][0]["when"] = "pmt <= 30"
        row = rules.save_rule(s, spec, actor="manager")
        assert row.version == 2
        assert rules.active_rule(s, "bisp_kafaalat")[0].id == row.id


@pytest.mark.parametrize("text, message", [
    ("pmt <= ", "position"),
    ("__import__('os')", "unknown function"),
    ("pmt <= 32; drop table household", "unexpected character ';'"),
    ("age >= 18", "describes a person"),
    ("any_member(pmt < 3)", "describes the household"),
    ("district = 'Gotham'", "no district 'Gotham'"),
    ("roof = 'gold'", "has no value 'gold'"),
    ("count_members(age < 5)", "gives a number"),
])
def test_the_language_refuses_what_it_does_not_know(engine, text, message):
    spec = {"code": "x", "name": "x", "criteria": [{"id": "c", "when": text, "fail": "no"}]}
    with transaction(engine) as s, pytest.raises(RuleError, match=message):
        rules.compile_rule(s, rules.Rule.from_spec(spec))


def _decisions(s, run_id: int) -> set[tuple]:
    from sqlalchemy import text
    return set(s.execute(text("SELECT household_id, individual_id, district_id, eligible, failed, pmt, age, "
                              "monthly_income FROM eligibility_result WHERE run_id = :r"), {"r": run_id}).all())


def test_every_shipped_rule_decides_the_same_whole_counted_or_narrowed(province):
    """A run over the whole registry (on PostgreSQL: a partition of its own, built in bulk), the
    count, and a run narrowed to named households (inserted row by row) agree decision by decision."""
    from sqlalchemy import text
    with transaction(province) as s:
        for row, rule in rules.active_rules(s):
            whole = rules.run(s, row, actor="manager", on=ON)
            named = rules.run(s, row, actor="manager", on=ON, households_sql="SELECT id FROM household WHERE id > :z",
                              households_params={"z": 0})
            assert whole.evaluated > 0 and (whole.evaluated, whole.eligible) == (named.evaluated, named.eligible)
            assert _decisions(s, whole.id) == _decisions(s, named.id), rule.code
            per_district = dict(s.execute(text("SELECT district_id, COUNT(*) FROM eligibility_result "
                                               "WHERE run_id = :r AND eligible GROUP BY district_id"),
                                          {"r": whole.id}).all())
            assert rules.count_by_district(s, rule, ON) == per_district, rule.code
            if s.bind.dialect.name == "postgresql":
                parent = s.scalar(text("SELECT inhparent::regclass::text FROM pg_inherits "
                                       "WHERE inhrelid = to_regclass(:p)"), {"p": rules.partition_name(whole.id)})
                assert parent == "eligibility_result"
                assert s.scalar(text("SELECT COUNT(*) FROM eligibility_result_default WHERE run_id = :r"),
                                {"r": named.id}) == named.evaluated


def test_member_conditions_of_a_rule_share_one_pass_over_the_members(engine):
    spec = {"code": "x", "name": "x", "criteria": [
        {"id": "disabled", "when": "any_member(disabled) or pmt <= 10", "fail": "no disabled member"},
        {"id": "no_elder", "when": "not any_member(sex = 'female' and age >= 60)", "fail": "an older woman"},
        {"id": "child", "when": "count_members(age < 5) >= 1", "fail": "no small child"}]}
    rule = rules.Rule.from_spec(spec)
    child = dict(sex="male", dob=born(3), relation="son")
    with transaction(engine) as s:
        compiled = rules.compile_rule(s, rule, on=ON)
        assert compiled.select_sql.count("FROM individual") == 1 and "h.id IN (SELECT" not in compiled.select_sql
        cases = {
            make_household(s, 30, [HEAD, WIFE, {**child, "disability": "physical"}]): 0,
            make_household(s, 30, [HEAD, WIFE, child]): 1,
            make_household(s, 5, [HEAD, WIFE, child]): 0,
            make_household(s, 30, [HEAD, dict(sex="female", dob=born(60), relation="mother", marital="widowed"),
                                   {**child, "disability": "visual"}]): 2,
            make_household(s, 30, [{**HEAD, "disability": "hearing"}, WIFE]): 4,
            make_household(s, 30, [HEAD, dict(sex="female", dob=born(60, 1), relation="mother", marital="widowed")]): 1 | 4,
        }
        for hid, failed in cases.items():
            (d,) = rules.explain(s, rule, hid, on=ON)
            got = sum(1 << k for k, o in enumerate(d.outcomes) if not o.met)
            assert got == failed, (hid, d.summary)
        assert rules.count_eligible(s, rule, ON) == sum(1 for f in cases.values() if f == 0)


def test_each_shipped_rule_is_named_as_in_the_program_catalogue():
    """One display name per program: pages, chips, the CLI and the simulator read the rule's name."""
    import json
    from importlib import resources

    catalogue = {p["code"]: p["name"] for p in json.loads(
        resources.files("isps.catalogue.data").joinpath("catalogue.json").read_text())["programs"]}
    for rule in rules.shipped_rules():
        assert rule.name == catalogue[rule.code], rule.code


@pytest.mark.parametrize("lang", ["en", "ur"])
def test_failure_sentences_read_the_same_in_sql_as_in_python(engine, lang):
    """The re-assessment stores the reasons rendered in SQL, the pages render them in Python:
    one template per criterion, so for any failure mask the two read the same words."""
    from sqlalchemy import text

    row = ("SELECT CAST(:failed AS INTEGER) AS failed, CAST(:pmt AS FLOAT) AS pmt, "
           "CAST(:age AS SMALLINT) AS age, CAST(:monthly_income AS FLOAT) AS monthly_income, "
           "CAST(0 AS BIGINT) AS household_id")  # no payroll exclusion: "not recorded" in both
    # incomes under Rs 1,000 or none: the SQL reads an income without thousands separators (kept)
    cases = [dict(pmt=31.456, age=17, monthly_income=950.0), dict(pmt=None, age=None, monthly_income=None),
             dict(pmt=40.0, age=3, monthly_income=0.0)]
    compared = 0
    with transaction(engine) as s:
        for rule in rules.shipped_rules():
            sql = rules.failure_sentences_sql(rule, s.bind.dialect.name, lang=lang)
            everything = (1 << len(rule.criteria)) - 1
            masks = {0, everything, *(1 << k for k in range(len(rule.criteria))), everything & 0b101}
            for values in cases:
                for mask in sorted(masks):
                    got = s.execute(text(f"SELECT {sql} FROM ({row}) r"), {**values, "failed": mask}).scalar_one()
                    want = "; ".join(o.sentence for o in rules.sentences(rule, mask, values, lang=lang)
                                     if not o.met)
                    assert got == want, (rule.code, mask, values)
                    compared += 1 if want else 0
    assert compared > 50
