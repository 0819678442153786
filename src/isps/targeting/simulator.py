"""Policy simulator: what a program would cost and whom it would reach under a proposed rule.

For a program and a scenario (its parameters changed, e.g. Kafaalat's cut-off 30, 32
or 35; criteria replaced; an annual budget), it answers per district: eligible
households and beneficiaries, annual cost, and inclusion and exclusion error against
true welfare (``household_consumption``: the poor are the households below the
consumption line that leaves ``poor_share`` of households under it), and the overlap
with other programs' latest eligibility runs. Everything is one SQL statement over
the rule's compiled decisions; nothing is stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from isps.registry.models import District, HouseholdConsumption
from isps.targeting.eligibility import rules
from isps.targeting.eligibility.models import EligibilityRule, EligibilityRun

PAYMENTS_A_YEAR = {"monthly": 12, "quarterly": 4, "semester": 2, "yearly": 1, "annual": 1, "once": 1}


@dataclass
class Scenario:
    label: str
    parameters: dict[str, float] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    annual_budget: float | None = None  # PKR; covers the poorest (lowest PMT) first when short


@dataclass
class DistrictResult:
    district_id: int
    district: str
    eligible_households: int
    beneficiaries: int
    annual_cost: float
    poor_households: int
    included_non_poor: int
    excluded_poor: int

    @property
    def inclusion_error(self) -> float | None:
        return self.included_non_poor / self.eligible_households if self.eligible_households else None

    @property
    def exclusion_error(self) -> float | None:
        return self.excluded_poor / self.poor_households if self.poor_households else None


@dataclass
class Result:
    program: str
    program_name: str
    scenario: Scenario
    poverty_line: float | None
    districts: list[DistrictResult]
    overlap: dict[str, int]
    budget_covered: int | None = None
    budget_marginal_pmt: float | None = None

    @property
    def total(self) -> DistrictResult:
        agg = DistrictResult(0, "Punjab", 0, 0, 0.0, 0, 0, 0)
        for d in self.districts:
            agg.eligible_households += d.eligible_households
            agg.beneficiaries += d.beneficiaries
            agg.annual_cost += d.annual_cost
            agg.poor_households += d.poor_households
            agg.included_non_poor += d.included_non_poor
            agg.excluded_poor += d.excluded_poor
        return agg

    def to_dict(self) -> dict:
        def row(d: DistrictResult) -> dict:
            return {"district_id": d.district_id, "district": d.district, "eligible_households": d.eligible_households,
                    "beneficiaries": d.beneficiaries, "annual_cost": round(d.annual_cost),
                    "poor_households": d.poor_households, "inclusion_error": d.inclusion_error,
                    "exclusion_error": d.exclusion_error}
        return {"program": self.program, "program_name": self.program_name, "scenario": vars(self.scenario),
                "poverty_line": self.poverty_line, "total": row(self.total),
                "districts": [row(d) for d in self.districts], "overlap": self.overlap,
                "budget_covered": self.budget_covered, "budget_marginal_pmt": self.budget_marginal_pmt}


def poverty_line(session: Session, poor_share: float) -> float | None:
    """The consumption below which ``poor_share`` of households fall (set-based: one ordered offset)."""
    n = session.scalar(select(func.count()).select_from(HouseholdConsumption))
    if not n:
        return None
    k = max(0, int(n * poor_share) - 1)
    return session.scalar(select(HouseholdConsumption.consumption_pae)
                          .order_by(HouseholdConsumption.consumption_pae).offset(k).limit(1))


def annual_amount(rule: rules.Rule) -> float:
    benefit = rule.benefit or {}
    return float(benefit.get("amount", 0)) * PAYMENTS_A_YEAR.get(benefit.get("frequency", "yearly"), 1)


def simulate(session: Session, program_code: str, scenario: Scenario, *, poor_share: float = 0.2,
             on: date | None = None, district_scope: int | None = None) -> Result:
    _, rule = rules.active_rule(session, program_code)
    compiled = rules.compile_rule(session, rule, district_id=district_scope, overrides=scenario.overrides,
                                  parameters=scenario.parameters, on=on)
    params = rules._params(session, compiled, on or date.today(), None)
    line = poverty_line(session, poor_share)
    params["line"] = line if line is not None else -1.0
    per_unit = annual_amount(rule)
    decisions = f"""SELECT household_id, district_id, SUM(CASE WHEN failed = 0 THEN 1 ELSE 0 END) AS benef,
                           MIN(pmt) AS pmt
                    FROM ({compiled.select_sql}) x GROUP BY household_id, district_id"""
    covered = marginal = None
    budget_condition = "1 = 1"
    if scenario.annual_budget is not None and per_unit > 0:
        # the budget reaches eligible households poorest first (lowest PMT) until it runs out:
        # a running sum of beneficiaries, computed by the database
        params["max_units"] = int(scenario.annual_budget // per_unit)
        covered, marginal = session.execute(text(f"""
            SELECT COUNT(*), MAX(pmt) FROM (
                SELECT pmt, SUM(benef) OVER (ORDER BY pmt, household_id ROWS UNBOUNDED PRECEDING) AS running
                FROM ({decisions}) d WHERE benef > 0) r
            WHERE running <= :max_units"""), params).one()
        budget_condition = "d.pmt <= :budget_pmt"
        params["budget_pmt"] = marginal if marginal is not None else -1.0
    district_filter = "WHERE h.district_id = :did" if district_scope is not None else ""
    if district_scope is not None:
        params["did"] = district_scope
    sql = f"""
        WITH d AS ({decisions}),
             e AS (SELECT d.household_id, d.benef,
                          CASE WHEN d.benef > 0 AND {budget_condition} THEN 1 ELSE 0 END AS covered FROM d)
        SELECT h.district_id,
               SUM(COALESCE(e.covered, 0)) AS eligible_households,
               SUM(CASE WHEN e.covered = 1 THEN e.benef ELSE 0 END) AS beneficiaries,
               SUM(CASE WHEN c.consumption_pae <= :line THEN 1 ELSE 0 END) AS poor,
               SUM(CASE WHEN e.covered = 1 AND c.consumption_pae > :line THEN 1 ELSE 0 END) AS inc,
               SUM(CASE WHEN COALESCE(e.covered, 0) = 0 AND c.consumption_pae <= :line THEN 1 ELSE 0 END) AS exc
        FROM household h
        LEFT JOIN household_consumption c ON c.household_id = h.id
        LEFT JOIN e ON e.household_id = h.id
        {district_filter}
        GROUP BY h.district_id"""
    names = {d.id: d.name for d in session.scalars(select(District))}
    out = []
    for did, elig, benef, poor, inc, exc in session.execute(text(sql), params):
        out.append(DistrictResult(int(did), names[int(did)], int(elig or 0), int(benef or 0),
                                  float(benef or 0) * per_unit, int(poor or 0), int(inc or 0), int(exc or 0)))
    out.sort(key=lambda d: d.district)
    return Result(program_code, rule.name, scenario, line, out, _overlap(session, decisions, params, program_code),
                  int(covered) if covered is not None else None, marginal)


def _overlap(session: Session, decisions: str, params: dict, program_code: str) -> dict[str, int]:
    """Households eligible in this scenario that are also eligible in another program's latest run."""
    latest = {}
    for run in session.scalars(select(EligibilityRun).order_by(EligibilityRun.id)):
        code = session.get(EligibilityRule, run.rule_id).program_code
        if code != program_code:
            latest[code] = run.id
    out = {}
    for code, run_id in sorted(latest.items()):
        out[code] = int(session.scalar(text(f"""
            SELECT COUNT(*) FROM ({decisions}) d WHERE d.benef > 0 AND EXISTS (
                SELECT 1 FROM eligibility_result r WHERE r.run_id = :run AND r.household_id = d.household_id
                AND r.eligible = TRUE)"""), {**params, "run": run_id}) or 0)
    return out


def compare(session: Session, program_code: str, scenarios: list[Scenario], **kw) -> list[Result]:
    return [simulate(session, program_code, s, **kw) for s in scenarios]


CUTOFF_LOW, CUTOFF_HIGH = 0.0, 100.0  # PMT scores are on a 0-100 scale
MAX_SCENARIOS = 6


class ScenarioError(ValueError):
    """A scenario the simulator cannot run; the message names the field, the value and what is allowed."""


def check_cutoffs(values: list[float]) -> list[float]:
    """The one check of proposed cut-offs, for the API, the web page and the CLI alike: each a finite
    score from 0 to 100, at most six scenarios."""
    if len(values) > MAX_SCENARIOS:
        raise ScenarioError(f"cutoff: at most {MAX_SCENARIOS} cut-offs can be compared at once, not {len(values)}")
    for v in values:
        if not CUTOFF_LOW <= v <= CUTOFF_HIGH:  # also refuses inf and nan
            raise ScenarioError(f"cutoff {v:g} is not a PMT score: a cut-off must be from {CUTOFF_LOW:g} to "
                                f"{CUTOFF_HIGH:g}")
    return [float(v) for v in values]


def parse_cutoffs(raw: str) -> list[float]:
    """Cut-offs typed as one list ("30, 32, 35"; the Urdu comma too), checked by :func:`check_cutoffs`.
    A word that is not a number is refused by name, never silently dropped."""
    values = []
    for part in raw.replace("،", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ScenarioError(f"cutoff '{part[:20]}' is not a number: a cut-off must be from {CUTOFF_LOW:g} to "
                                f"{CUTOFF_HIGH:g}")
        values.append(value)
    return check_cutoffs(values)


def cutoff_scenarios(program_code: str, cutoffs: list[float], session: Session) -> list[Scenario]:
    """'What if the cut-off were 30, 32 or 35': the disability cut-off keeps its distance."""
    cutoffs = check_cutoffs(list(cutoffs))
    _, rule = rules.active_rule(session, program_code)
    if "cutoff" not in rule.parameters:
        raise rules.RuleError(f"{program_code} has no 'cutoff' parameter")
    gap = rule.parameters.get("cutoff_disability", rule.parameters["cutoff"]) - rule.parameters["cutoff"]
    out = []
    for c in cutoffs:
        params = {"cutoff": c}
        if "cutoff_disability" in rule.parameters:
            params["cutoff_disability"] = c + gap
        out.append(Scenario(f"cut-off {c:g}", params))
    return out
