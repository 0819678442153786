"""``isps eligibility`` and ``isps simulate``: program rules from the command line."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from isps.cli.common import Table
from isps.db import transaction

eligibility_app = typer.Typer(help="Program eligibility: counts, runs and explanations.", no_args_is_help=True)


def _rule(s, code: str):
    from isps.targeting.eligibility import rules

    try:
        return rules.active_rule(s, code)
    except rules.RuleError as exc:
        from isps.cli.common import _fail
        _fail(str(exc))


@eligibility_app.command("programs")
def programs() -> None:
    """List the programs with an eligibility rule."""
    from isps.cli.common import _engine, console
    from isps.targeting.eligibility import rules

    table = Table("code", "program", "unit", "version", "criteria")
    with transaction(_engine()) as s:
        for row, rule in rules.active_rules(s):
            table.add_row(rule.code, rule.name, rule.unit, str(row.version), "; ".join(c.when for c in rule.criteria))
    console.print(table)


@eligibility_app.command("count")
def count(code: str) -> None:
    """How many are eligible now, by district (nothing stored)."""
    from isps.cli.common import _engine, console
    from isps.registry.geography import districts
    from isps.targeting.eligibility import rules

    names = {d.id: d.name for d in districts()}
    with transaction(_engine()) as s, console.status("counting"):
        _, rule = _rule(s, code)
        by_district = rules.count_by_district(s, rule)
    table = Table("district", "eligible")
    for did, n in sorted(by_district.items(), key=lambda kv: names[kv[0]]):
        table.add_row(names[did], f"{n:,}")
    table.add_row("[bold]Punjab", f"[bold]{sum(by_district.values()):,}")
    console.print(table)


@eligibility_app.command("run")
def run(code: str, actor: Annotated[str, typer.Option()] = "cli") -> None:
    """Evaluate a program's rule over the registry and keep every decision with its reasons."""
    from isps.cli.common import _engine, console
    from isps.targeting.eligibility import rules

    with transaction(_engine()) as s, console.status(f"evaluating {code} over the registry"):
        row, _ = _rule(s, code)
        result = rules.run(s, row, actor)
    console.print(f"run {result.id}: {result.eligible:,} of {result.evaluated:,} eligible in {result.seconds:.1f}s")


@eligibility_app.command("explain")
def explain(code: str, household_id: int) -> None:
    """Why a household (or each of its members) is or is not eligible, in plain words."""
    from isps.cli.common import _engine, _fail, console
    from isps.registry.models import Household
    from isps.targeting.eligibility import rules

    with transaction(_engine()) as s:
        _, rule = _rule(s, code)
        decisions = rules.explain(s, rule, household_id)
        exists = bool(decisions) or s.get(Household, household_id) is not None
    if not decisions:
        if not exists:
            _fail(f"there is no household {household_id}")
        console.print(f"household {household_id} has no one {rule.name} considers")
    for d in decisions:
        console.print(f"{d.person or 'household ' + str(d.household_id)}: {d.summary}")


def simulate(code: str,
             cutoff: Annotated[Optional[list[float]], typer.Option(help="one scenario per cut-off")] = None,
             budget: Annotated[Optional[float], typer.Option(help="annual budget in PKR")] = None,
             poor_share: Annotated[float, typer.Option(
                 help="percent of households counted as poor (20 = 20%), as on the web simulator",
                 min=1, max=99)] = 20,
             by_district: Annotated[bool, typer.Option(help="a row per district")] = False) -> None:
    """What if: eligible households, annual cost and targeting errors for proposed cut-offs."""
    from isps.cli.common import _engine, _fail, console
    from isps.targeting import simulator
    from isps.targeting.eligibility import rules

    with transaction(_engine()) as s, console.status("simulating"):
        _rule(s, code)
        try:
            scenarios = simulator.cutoff_scenarios(code, cutoff, s) if cutoff else [simulator.Scenario("today's rule")]
        except (rules.RuleError, simulator.ScenarioError) as exc:
            _fail(str(exc))
        for sc in scenarios:
            sc.annual_budget = budget
        results = simulator.compare(s, code, scenarios, poor_share=poor_share / 100)
        names = {row.program_code: rule.name for row, rule in rules.active_rules(s)}
    table = Table("scenario", "district", "eligible households", "beneficiaries", "annual cost (PKR m)",
                  "inclusion error", "exclusion error")
    for r in results:
        rows = (r.districts if by_district else []) + [r.total]
        for d in rows:
            table.add_row(r.scenario.label, d.district, f"{d.eligible_households:,}", f"{d.beneficiaries:,}",
                          f"{d.annual_cost / 1e6:,.1f}", _pct(d.inclusion_error), _pct(d.exclusion_error))
    console.print(table)
    console.print(f"errors measured against the poorest {poor_share:g}% of households by consumption")
    if results and results[0].overlap:
        shared = {names.get(k, k): n for k, n in results[-1].overlap.items() if n}  # zeros say nothing
        if shared:
            console.print("also eligible under other programs' latest runs: " +
                          ", ".join(f"{k} {v:,}" for k, v in shared.items()))
        else:
            console.print("no household eligible here is eligible under another program's latest run")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


pmt_app = typer.Typer(help="PMT models: evaluate, fit, approve, activate.", no_args_is_help=True)


@pmt_app.command("models")
def pmt_models() -> None:
    """PMT model versions, their status, who made and approved them."""
    from sqlalchemy import select

    from isps.cli.common import _engine, console
    from isps.targeting.models import PmtModel

    table = Table("id", "model", "version", "status", "estimator", "created by", "approved by")
    with transaction(_engine()) as s:
        for m in s.scalars(select(PmtModel).order_by(PmtModel.id)):
            table.add_row(str(m.id), m.name, str(m.version), m.status, m.estimator or "-", m.created_by,
                          m.approved_by or "-")
    console.print(table)


@pmt_app.command("evaluate")
def pmt_evaluate(coverage: Annotated[float, typer.Option(help="share of households targeted")] = 0.2) -> None:
    """Fit OLS and quantile PMTs on survey households and compare them with the model in force on
    held-out households (nothing stored)."""
    from isps.cli.common import _engine, _fail, console
    from isps.targeting import estimation

    with transaction(_engine()) as s, console.status("fitting and evaluating on held-out households"):
        try:
            result = estimation.compare(s, coverage=coverage)
        except estimation.EstimationError as exc:
            _fail(str(exc))
    console.print(result.report.to_text())


@pmt_app.command("fit")
def pmt_fit(estimator: Annotated[str, typer.Option(help="ols or quantile")] = "ols",
            actor: Annotated[str, typer.Option(help="who fits it (the maker)")] = "cli") -> None:
    """Fit a PMT and store it as a draft with its evaluation; a second person must approve it."""
    from isps.cli.common import _engine, _fail, console
    from isps.targeting import estimation

    with transaction(_engine()) as s, console.status(f"fitting {estimator}"):
        try:
            fitted = estimation.fit_and_store(s, estimator, actor)
        except estimation.EstimationError as exc:
            _fail(str(exc))
    console.print(fitted.report.to_text())
    console.print(f"stored as draft model {fitted.model.id} ({fitted.model.name} v{fitted.model.version}); "
                  f"approve with: isps pmt approve {fitted.model.id} --approver <another person>")


@pmt_app.command("approve")
def pmt_approve(model_id: int, approver: Annotated[str, typer.Option(help="the checker; not the maker")]) -> None:
    """Approve a draft PMT model (maker-checker)."""
    from isps.cli.common import _engine, _fail, console
    from isps.targeting import pmt

    try:
        with transaction(_engine()) as s:
            model = pmt.approve(s, model_id, approver)
    except pmt.PmtModelError as exc:
        _fail(str(exc))
    console.print(f"{model.name} v{model.version} approved by {approver}; activate with: isps pmt activate {model_id}")


@pmt_app.command("activate")
def pmt_activate(model_id: int) -> None:
    """Make an approved PMT model the active one and re-score every household with it."""
    activate_model(model_id)


def activate_model(model_id: int) -> None:
    """The one way the CLI activates a model (``isps pmt activate`` and ``isps score --activate``)."""
    import time

    from isps.cli.common import _engine, _fail, console
    from isps.targeting import pmt
    from isps.targeting.models import PmtModel

    started = time.perf_counter()
    try:
        with transaction(_engine()) as s:
            model = s.get(PmtModel, model_id)
            if model is None:
                _fail(f"there is no PMT model {model_id}")
            n = pmt.activate(s, model)
            name, version = model.name, model.version
    except pmt.PmtModelError as exc:
        _fail(str(exc))
    console.print(f"activated '{name}' v{version}; scored {n:,} households in {time.perf_counter() - started:.1f}s")


vulnerability_app = typer.Typer(help="Vulnerability to shocks: scores and the district risk map.", no_args_is_help=True)
alt_app = typer.Typer(help="Alternative targeting: administrative means tests.", no_args_is_help=True)


def _month(text: str) -> "date":
    from datetime import date

    from isps.cli.common import _fail

    try:
        return date.fromisoformat(text + "-01" if len(text) == 7 else text)
    except ValueError:
        _fail(f"'{text}' must be a month written YYYY-MM")


@vulnerability_app.command("compute")
def vulnerability_compute() -> None:
    """Score every household's vulnerability to flood, drought, earthquake, epidemic and landslide."""
    from isps.cli.common import _engine, console
    from isps.targeting import vulnerability

    with transaction(_engine()) as s, console.status("scoring vulnerability"):
        n = vulnerability.compute_all(s)
    console.print(f"{n:,} vulnerability scores")


@vulnerability_app.command("risk")
def vulnerability_risk(shock: Annotated[str, typer.Option()] = "flood") -> None:
    """The district risk map for one shock, most at risk first."""
    from isps.cli.common import _engine, _fail, console
    from isps.targeting import vulnerability

    with transaction(_engine()) as s:
        try:
            rows = vulnerability.district_risk(s, shock)
        except vulnerability.VulnerabilityError as exc:
            _fail(str(exc))
    table = Table("district", "exposure", "households", "mean score", "highly vulnerable", "share")
    for r in rows:
        table.add_row(r.district, f"{r.exposure:.2f}", f"{r.households:,}",
                      "-" if r.mean_score is None else f"{r.mean_score:.1f}", f"{r.highly_vulnerable:,}",
                      _pct(r.share_high))
    console.print(table)


@alt_app.command("generate")
def alt_generate(through: Annotated[str, typer.Option(help="last month, YYYY-MM")],
                 months: Annotated[int, typer.Option()] = 6, seed: Annotated[int, typer.Option()] = 0) -> None:
    """Synthetic DISCO readings and telecom billing consistent with each household's assets."""
    from isps.cli.common import _engine, console
    from isps.targeting import alternative

    end = _month(through)
    with transaction(_engine()) as s, console.status("generating readings and billing"):
        e = alternative.generate_electricity(s, end, months, seed)
        t = alternative.generate_telecom(s, end, months, seed)
    console.print(f"{e:,} electricity readings and {t:,} telecom bills")


@alt_app.command("means-test")
def alt_means_test(method: Annotated[str, typer.Option(help="electricity or telecom")],
                   through: Annotated[str, typer.Option(help="last month, YYYY-MM")],
                   threshold: Annotated[Optional[float], typer.Option()] = None,
                   months: Annotated[int, typer.Option()] = 3) -> None:
    """Decide every household by an administrative means test and keep the run."""
    from isps.cli.common import _engine, _fail, console
    from isps.targeting import alternative

    methods = {"electricity": alternative.ELECTRICITY, "telecom": alternative.TELECOM}
    if method not in methods:
        _fail("--method must be electricity or telecom")
    with transaction(_engine()) as s:
        try:
            run = alternative.run_means_test(s, methods[method], _month(through), threshold, months, "cli")
        except alternative.AlternativeTargetingError as exc:
            _fail(str(exc))
        summary = {m.method: m.total for m in alternative.selection_summary(s)}
    console.print(f"run {run.id}: {summary.get(methods[method], 0):,} households at or below {run.threshold:g} "
                  f"over {run.months} months to {run.through_month:%b %Y}")


@alt_app.command("evaluate")
def alt_evaluate(through: Annotated[str, typer.Option(help="last month, YYYY-MM")]) -> None:
    """Inclusion and exclusion error of each alternative test against true welfare, beside PMT."""
    from isps.cli.common import _engine, console
    from isps.targeting import alternative

    with transaction(_engine()) as s, console.status("evaluating"):
        rows = alternative.evaluate(s, _month(through))
    table = Table("method", "rule", "coverage", "inclusion error", "exclusion error", "insufficient data")
    for e in rows:
        table.add_row(e.method, e.rule, _pct(e.coverage), _pct(e.inclusion_error), _pct(e.exclusion_error),
                      f"{e.insufficient_data:,}")
    console.print(table)
