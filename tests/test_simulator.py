"""The policy simulator answers 'what if Kafaalat's cut-off were 30, 32 or 35'."""

from __future__ import annotations

import pytest

from isps.db import transaction
from isps.targeting import simulator
from isps.targeting.eligibility import rules


def test_raising_the_cut_off_reaches_more_households_at_more_cost(province):
    with transaction(province) as s:
        results = simulator.compare(s, "bisp_kafaalat", simulator.cutoff_scenarios("bisp_kafaalat", [30, 32, 35], s))
        baseline = rules.count_eligible(s, rules.active_rule(s, "bisp_kafaalat")[1])
    totals = [r.total for r in results]
    assert [t.eligible_households for t in totals] == sorted(t.eligible_households for t in totals)
    assert totals[0].eligible_households < totals[2].eligible_households
    assert totals[1].eligible_households == baseline  # 32 is today's rule
    assert totals[1].annual_cost == totals[1].eligible_households * 8500 * 4
    assert totals[0].exclusion_error >= totals[2].exclusion_error  # a wider net misses fewer of the poor
    for t in totals:
        assert 0 <= t.inclusion_error <= 1 and 0 <= t.exclusion_error <= 1
    by_district = results[1].districts
    assert sum(d.eligible_households for d in by_district) == totals[1].eligible_households
    from isps.registry.geography import districts
    assert {d.district for d in by_district} <= {d.name for d in districts()}
    assert len(by_district) > 20


def test_errors_are_measured_against_true_welfare(province):
    with transaction(province) as s:
        r = simulator.simulate(s, "bisp_kafaalat", simulator.Scenario("today"), poor_share=0.2)
    t = r.total
    assert t.poor_households == pytest.approx(120, abs=2)  # the poorest fifth of 600 households
    assert t.included_non_poor + (t.poor_households - t.excluded_poor) == t.eligible_households


def test_a_budget_covers_the_lowest_scores_first(province):
    with transaction(province) as s:
        full = simulator.simulate(s, "bisp_kafaalat", simulator.Scenario("no limit")).total
        budget = 50 * 8500 * 4
        r = simulator.simulate(s, "bisp_kafaalat", simulator.Scenario("Rs 1.7m", annual_budget=budget))
    assert r.budget_covered == 50 and r.total.eligible_households == 50
    assert r.total.annual_cost <= budget
    assert r.budget_marginal_pmt < 32
    assert full.eligible_households > 50


def test_overlap_with_other_programs_latest_runs(province):
    with transaction(province) as s:
        row, _ = rules.active_rule(s, "bisp_nashonuma")
        nashonuma = rules.run(s, row, actor="manager")
        r = simulator.simulate(s, "bisp_kafaalat", simulator.Scenario("today"))
    assert "bisp_nashonuma" in r.overlap and 0 < r.overlap["bisp_nashonuma"] <= r.total.eligible_households
    assert nashonuma.eligible >= r.overlap["bisp_nashonuma"]


def test_unknown_parameter_is_named(province):
    with transaction(province) as s, pytest.raises(rules.RuleError, match="has no parameter wealth"):
        simulator.simulate(s, "bisp_kafaalat", simulator.Scenario("x", {"wealth": 3}))
