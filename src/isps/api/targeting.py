"""/api/v1 for targeting: program rules, eligibility counts, runs and explanations, the simulator."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from isps.access.service import Principal, audit
from isps.api.deps import DB, require
from isps.api.errors import CONFLICT
from isps.api.params import BODY_CONFIG, MAX_ID, After, Day, Id, Limit, Money
from isps.registry.service import OutOfScope
from isps.services import household_file as files
from isps.targeting import estimation, pmt, simulator
from isps.targeting.models import PmtModel
from isps.targeting.eligibility import rules
from isps.targeting.eligibility.models import EligibilityRun

router = APIRouter(prefix="/api/v1", tags=["targeting"])
Reader = Annotated[Principal, Depends(require("registry.read"))]
Manager = Annotated[Principal, Depends(require("pmt.manage"))]


def _rule(session: Session, code: str):
    try:
        return rules.active_rule(session, code)
    except rules.RuleError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/programs")
def programs(session: DB, who: Reader) -> list[dict]:
    """Every program's active eligibility rule: criteria, parameters and benefit."""
    return [{"version": row.version, "created_by": row.created_by, **rule.to_spec()}
            for row, rule in rules.active_rules(session)]


class RuleSpec(BaseModel):
    model_config = BODY_CONFIG
    spec: dict = Field(description="a rule in the format of GET /programs (code, name, unit, criteria ...)")


@router.post("/programs/rules", status_code=201)
def save_rule(body: RuleSpec, session: DB, who: Manager) -> dict:
    """Store a new version of a program's rule (checked by compiling it first) and make it active."""
    try:
        row = rules.save_rule(session, body.spec, who.username)
    except rules.RuleError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"program_code": row.program_code, "version": row.version}


@router.get("/programs/{code}/eligibility/count")
def eligibility_count(code: str, session: DB, who: Reader, on: Day = None) -> dict:
    """How many households (or members) are eligible, by district: the quick preview."""
    _, rule = _rule(session, code)
    counts = rules.count_by_district(session, rule, on, district_id=who.scope)
    return {"program": code, "total": sum(counts.values()),
            "by_district": {str(k): v for k, v in sorted(counts.items())}}


@router.post("/programs/{code}/eligibility/runs", status_code=201)
def eligibility_run(code: str, session: DB, who: Manager, on: Day = None) -> dict:
    """Evaluate the rule over the registry and keep every decision with its reasons."""
    row, _ = _rule(session, code)
    run = rules.run(session, row, who.username, on)
    return {"run_id": run.id, "program": code, "rule_version": row.version, "evaluated": run.evaluated,
            "eligible": run.eligible, "seconds": run.seconds, "on": run.on_date}


@router.get("/eligibility/runs/{run_id}/results")
def eligibility_results(run_id: Id, session: DB, who: Reader, eligible: bool | None = None,
                        after_household: After = None, after_individual: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                        limit: Limit(1000) = 100) -> dict:
    """A page of a run's decisions with the reasons in plain words; scoped users see their district."""
    run = session.get(EligibilityRun, run_id)
    if run is None:
        raise HTTPException(404, f"there is no eligibility run {run_id}")
    after = (after_household, after_individual) if after_household is not None else None
    page = rules.results_page(session, run, eligible=eligible, district_id=who.scope, after=after, limit=limit)
    audit(session, who, "api", "read", "eligibility_run", run_id, who.scope, detail=f"read {len(page)} decisions of the eligibility run")
    nxt = {"after_household": page[-1]["household_id"], "after_individual": page[-1]["individual_id"] or 0} \
        if len(page) == limit else None
    return {"run_id": run_id, "items": page, "next": nxt}


@router.get("/households/{household_id}/eligibility")
def household_eligibility(household_id: Id, session: DB, who: Reader, on: Day = None) -> list[dict]:
    """Every program's decision for a household, explained in plain words. Audited."""
    try:
        files.open_household(session, who, household_id, "api")
    except OutOfScope as exc:
        session.commit()
        raise HTTPException(403, str(exc)) from None
    except files.NotFound as exc:
        session.commit()
        raise HTTPException(404, str(exc)) from None
    out = []
    for _, rule in rules.active_rules(session):
        for d in rules.explain(session, rule, household_id, on):
            out.append({"program": rule.code, "program_name": rule.name, "individual_id": d.individual_id,
                        "person": d.person, "eligible": d.eligible, "summary": d.summary,
                        "criteria": [vars(o) for o in d.outcomes]})
    return out


@router.get("/programs/{code}/simulate")
def simulate(code: str, session: DB, who: Manager,
             cutoff: Annotated[list[float] | None, Query(description="one scenario per cut-off (0-100)")] = None,
             cutoffs: Annotated[str | None, Query(max_length=200, description="cut-offs as one list: 30,32,35")] = None,
             budget: Money = None,
             poor_share: Annotated[float, Query(gt=0, lt=1, allow_inf_nan=False)] = 0.2) -> list[dict]:
    """What if: eligible households, annual cost, inclusion and exclusion error by district, and
    overlap with other programs, for each proposed cut-off (or today's rule, or a budget). Cut-offs are
    checked by the simulator itself (0 to 100, at most 6), as for the web page and the CLI."""
    _rule(session, code)
    try:
        values = simulator.check_cutoffs([*(cutoff or []), *simulator.parse_cutoffs(cutoffs or "")])
        scenarios = simulator.cutoff_scenarios(code, values, session) if values else [simulator.Scenario("today's rule")]
        if budget is not None:
            for s in scenarios:
                s.annual_budget = budget
        return [r.to_dict() for r in simulator.compare(session, code, scenarios, poor_share=poor_share)]
    except (rules.RuleError, simulator.ScenarioError) as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/pmt/evaluation")
def pmt_evaluation(session: DB, who: Manager, coverage: Annotated[float, Query(
        ge=estimation.MIN_COVERAGE, le=estimation.MAX_COVERAGE, allow_inf_nan=False,
        description="the share of households targeted")] = 0.2) -> dict:
    """OLS and quantile PMTs fitted on survey households and compared with the model in force on
    held-out households: R², inclusion and exclusion error, accuracy curve. Nothing is stored."""
    try:
        return estimation.compare(session, coverage=coverage).report.to_dict()
    except estimation.EstimationError as exc:
        raise HTTPException(422, str(exc)) from None


class FitRequest(BaseModel):
    model_config = BODY_CONFIG
    estimator: str = Field("ols", description="ols or quantile")


@router.post("/pmt/models/fit", status_code=201)
def pmt_fit(body: FitRequest, session: DB, who: Manager) -> dict:
    """Fit a PMT and keep it as a draft with its evaluation; another person must approve it."""
    try:
        fitted = estimation.fit_and_store(session, body.estimator, who.username)
    except estimation.EstimationError as exc:
        raise HTTPException(422, str(exc)) from None
    audit(session, who, "api", "fit", "pmt_model", fitted.model.id, detail=body.estimator)
    return {"id": fitted.model.id, "version": fitted.model.version, "status": fitted.model.status,
            "evaluation": fitted.report.to_dict()}


@router.post("/pmt/models/{model_id}/approve", responses=CONFLICT)
def pmt_approve(model_id: Id, session: DB, who: Manager) -> dict:
    """The checker's approval of a draft model: refused to the person who made it."""
    try:
        model = pmt.approve(session, model_id, who.username)
    except pmt.PmtApprovalError as exc:
        raise HTTPException(409, str(exc)) from None
    except pmt.PmtModelError as exc:
        raise HTTPException(404, str(exc)) from None
    audit(session, who, "api", "approve", "pmt_model", model_id)
    return {"id": model.id, "version": model.version, "approved_by": model.approved_by}


@router.post("/pmt/models/{model_id}/activate", responses=CONFLICT)
def pmt_activate(model_id: Id, session: DB, who: Manager) -> dict:
    """Make an approved model the one in force and re-score every household with it."""
    model = session.get(PmtModel, model_id)
    if model is None:
        raise HTTPException(404, f"there is no PMT model {model_id}")
    try:
        n = pmt.activate(session, model)
    except pmt.PmtApprovalError as exc:
        raise HTTPException(409, str(exc)) from None
    audit(session, who, "api", "activate", "pmt_model", model_id, detail=f"{n} households re-scored")
    return {"id": model.id, "version": model.version, "status": model.status, "households_scored": n}
