"""Web pages for the policy staff's targeting work: PMT models (fit, evaluation, approval,
activation), the administrative means tests, and the policy simulator.

Who may do what mirrors the API (``api/targeting.py``'s ``Manager``) and the CLI: program
managers and administrators act (``pmt.manage``), a model is approved by someone other than its
maker (:func:`isps.targeting.pmt.approve`), auditors read; district roles get a 403 page, audited.
Long work (fitting, re-scoring every household on activation, a means test run) goes to
:mod:`isps.services.jobs` and the page polls its state with htmx; the simulator page opens at
once and asks for its results after it has loaded. The numbers all come from
:mod:`isps.targeting` (estimation, pmt, alternative, simulator); this module only reads forms
and shows what those return.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from isps.access.service import AccessError, Principal, audit
from isps.api.params import Id
from isps.registry.models import Household
from isps.services import jobs
from isps.targeting import alternative, estimation, pmt, simulator
from isps.targeting.alternative_models import MeansTestRun
from isps.targeting.eligibility import rules as eligibility
from isps.targeting.models import PmtModel
from isps.web import common as r
from isps.web import listing
from isps.web.common import DB, User

router = APIRouter(include_in_schema=False)
ACT = "pmt.manage"       # program managers and administrators, as the API's Manager
PMT_JOBS = ("pmt.fit", "pmt.activate", "pmt.evaluate")
MEANS_JOB = "means_test"
METHODS = {"electricity": alternative.ELECTRICITY, "telecom": alternative.TELECOM}
MAX_MONTHS = 12
NOTICES = ("fitted", "approved", "activated", "ran")


# ---------------------------------------------------------------- who may see and act

def _may_view(who: Principal) -> bool:
    return who.can(ACT) or who.can("audit.read")


def _refused(request: Request, session: Session, who: Principal, action: str, entity: str, entity_id: int | None,
             what: str) -> Response:
    """A role refused: audited (outcome denied), answered with the 403 page."""
    tr = r._tr(request)
    audit(session, who, r.CHANNEL, action, entity, entity_id, who.scope, outcome="denied",
          detail=f"refused: a {who.role.replace('_', ' ')} may not {what}")
    return r.error_page(request, session, who, 403, tr("tg.forbidden", role=tr(f"role.{who.role}")))


def _viewer(request: Request, session: Session, who: Principal, entity: str, entity_id: int | None = None
            ) -> Response | None:
    return None if _may_view(who) else _refused(request, session, who, "read", entity, entity_id,
                                                f"read the targeting pages ({entity})")


def _actor(request: Request, session: Session, who: Principal, action: str, entity: str, entity_id: int | None,
           what: str) -> Response | None:
    try:
        who.require(ACT)
    except AccessError:
        return _refused(request, session, who, action, entity, entity_id, what)
    return None


def _model_to_act_on(request: Request, session: Session, who: Principal, action: str, model_id: int,
                     what: str) -> PmtModel | Response:
    """The model a maker or checker acts on, or the page that says why not: 403 (audited) for a role
    that may not act, 404 for a model that does not exist."""
    refused = _actor(request, session, who, action, "pmt_model", model_id, what)
    if refused:
        return refused
    model = _model(session, model_id)
    if model is None:
        return r.error_page(request, session, who, 404, r._tr(request)("pmt.not_found", id=model_id))
    return model


def _notice(request: Request) -> str | None:
    done = request.query_params.get("done", "")
    return r._tr(request)(f"tg.done.{done}") if done in NOTICES else None


def _percent(raw: str, low: float, high: float) -> float | None:
    """A percentage typed in a form as a share (20 -> 0.2), or None when it is not a number from low to high."""
    try:
        value = float(raw.strip().rstrip("%"))
    except ValueError:
        return None
    return value / 100 if math.isfinite(value) and low <= value <= high else None


# ---------------------------------------------------------------- PMT models: the list and the fit form

def _pmt_home(request: Request, session: Session, who: Principal, *, errors: dict | None = None,
              form: dict | None = None, message: str | None = None, status: int = 200) -> Response:
    tr = r._tr(request)
    status_filter = request.query_params.get("status", "")
    status_filter = status_filter if status_filter in ("draft", "active", "retired") else ""
    before = _cursor(request.query_params.get("before", ""))
    rows = pmt.models(session, before=before, limit=listing.PAGE + 1, status=status_filter or None)
    shown = rows[:listing.PAGE]
    fmt = listing.wants_export(request, "models")
    if fmt:
        return listing.export(request, session, who, fmt, name="pmt_models", entity="pmt_model",
                              columns=[(k, tr(f"pmt.col.{k}")) for k in _MODEL_COLUMNS],
                              chunks=listing.keyset_chunks(
                                  lambda after, n: [_model_row(m) for m in pmt.models(
                                      session, before=after, limit=n, status=status_filter or None)],
                                  lambda row: row["id"]),
                              detail=f"PMT models{' ' + status_filter if status_filter else ''}")
    pager = listing.pager(request, total=pmt.count_models(session, status=status_filter or None), shown=len(shown),
                          next_after=shown[-1].id if len(rows) > listing.PAGE else None, cursor="before",
                          id="models")
    active = pmt.active_model(session)
    return r.render(request, "pmt.html", {
        "models": [_model_row(m, who) for m in shown], "pager": pager, "status_filter": status_filter,
        "active": active, "can_act": who.can(ACT), "estimators": estimation.ESTIMATORS,
        "form": form or {"estimator": "ols", "coverage": "20", "holdout": "30"}, "errors": errors or {},
        "message": message, "notice": _notice(request), "jobs": jobs.recent(PMT_JOBS),
    }, who=who, session=session, status=status)


_MODEL_COLUMNS = ("id", "name", "version", "status", "estimator", "created_by", "created_at", "approved_by",
                  "activated_at")


def _model_row(m: PmtModel, who: Principal | None = None) -> dict:
    row = {"id": m.id, "name": m.name, "version": m.version, "status": m.status, "estimator": m.estimator or "",
           "created_by": m.created_by, "created_at": m.created_at.strftime("%Y-%m-%d %H:%M") if m.created_at else "",
           "approved_by": m.approved_by or "", "activated_at":
           m.activated_at.strftime("%Y-%m-%d %H:%M") if m.activated_at else ""}
    if who is not None:
        row["waits_for_me"] = (m.status == "draft" and not m.approved_by and m.created_by != "system"
                               and m.created_by != who.username and who.can(ACT))
        row["ready"] = m.status == "draft" and bool(m.approved_by)
    return row


def _cursor(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


@router.get("/pmt")
def pmt_home(request: Request, session: DB, who: User) -> Response:
    """PMT model versions with their status, maker and checker; the form to fit a new one."""
    return _viewer(request, session, who, "pmt_model") or _pmt_home(request, session, who)


def _subject(tr, job: jobs.Job) -> str:
    """What a job works on, in the reader's language when it was given as a label key."""
    return tr(job.subject) if tr.has(job.subject) else job.subject


def _another_job(kinds: tuple[str, ...]) -> jobs.Job | None:
    return next((j for k in kinds if (j := jobs.running(k)) is not None), None)


@router.post("/pmt/fit")
def pmt_fit(request: Request, session: DB, who: User, estimator: Annotated[str, Form()] = "",
            coverage: Annotated[str, Form()] = "", holdout: Annotated[str, Form()] = "") -> Response:
    """Fit a model in the background; the maker then follows the job's page to the draft."""
    refused = _actor(request, session, who, "fit", "pmt_model", None, "fit a PMT model")
    if refused:
        return refused
    form, share, held, problem = _fit_form(request, session, who, estimator, coverage, holdout)
    if problem is not None:
        return problem

    def work(s: Session, progress: jobs.Progress) -> dict:
        fitted = estimation.fit_and_store(s, estimator, who.username, coverage=share, holdout=held, progress=progress)
        audit(s, who, r.CHANNEL, "fit", "pmt_model", fitted.model.id,
              detail=f"{estimator}, coverage {share:g}, holdout {held:g}: draft v{fitted.model.version}")
        return {"next": f"/pmt/models/{fitted.model.id}?done=fitted", "model_id": fitted.model.id}

    job = jobs.start(request.app.state.engine, "pmt.fit", who.username,
                     f"{estimation.ESTIMATOR_LABELS[estimator]} PMT", work,
                     refusals=(estimation.EstimationError, pmt.PmtModelError),
                     on_failure=_audit_failure(who, "fit", "pmt_model", None))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def _fit_form(request: Request, session: Session, who: Principal, estimator: str, coverage: str, holdout: str,
              *, any_estimator: bool = False) -> tuple[dict, float, float, Response | None]:
    """The fit form read and checked: (form, share targeted, share held out, the page refusing it or None)."""
    tr = r._tr(request)
    form = {"estimator": estimator, "coverage": coverage, "holdout": holdout}
    errors = {}
    if estimator not in estimation.ESTIMATORS and not any_estimator:
        errors["estimator"] = tr("pmt.error.estimator")
    share = _percent(coverage, 100 * estimation.MIN_COVERAGE, 100 * estimation.MAX_COVERAGE)
    if share is None:
        errors["coverage"] = tr("pmt.error.coverage")
    held = _percent(holdout, 10, 50)
    if held is None:
        errors["holdout"] = tr("pmt.error.holdout")
    if errors:
        return form, 0.0, 0.0, _pmt_home(request, session, who, errors=errors, form=form, status=422)
    busy = _another_job(PMT_JOBS)
    if busy is not None:
        return form, 0.0, 0.0, _pmt_home(request, session, who, form=form, status=409,
                                         message=tr("pmt.error.busy", who=busy.owner, what=_subject(tr, busy)))
    return form, share, held, None


@router.post("/pmt/evaluate")
def pmt_evaluate(request: Request, session: DB, who: User, estimator: Annotated[str, Form()] = "",
                 coverage: Annotated[str, Form()] = "", holdout: Annotated[str, Form()] = "") -> Response:
    """OLS and quantile fitted and judged beside the model in force, nothing stored (``isps pmt
    evaluate``): in the background, the report shown on the job's page when it is done."""
    refused = _actor(request, session, who, "fit", "pmt_model", None, "evaluate PMT estimators")
    if refused:
        return refused
    _, share, held, problem = _fit_form(request, session, who, estimator, coverage, holdout, any_estimator=True)
    if problem is not None:
        return problem

    def work(s: Session, progress: jobs.Progress) -> dict:
        return {"report": estimation.compare(s, coverage=share, holdout=held, progress=progress).report.to_dict()}

    job = jobs.start(request.app.state.engine, "pmt.evaluate", who.username, "pmt.compare_subject", work,
                     refusals=(estimation.EstimationError,))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def _audit_failure(who: Principal, action: str, entity: str, entity_id: int | None):
    def record(s: Session, job: jobs.Job) -> None:
        audit(s, who, r.CHANNEL, action, entity, entity_id, who.scope, outcome="denied",
              detail=f"refused: {(job.error or '')[:400]}")
    return record


# ---------------------------------------------------------------- one model: evaluation, approval, activation

def _bars(report: estimation.Report | None) -> list[dict]:
    """The accuracy curve as rows of bars (exclusion error per model at each coverage), in % of the row's scale."""
    if report is None or not report.models:
        return []
    top = max((p["exclusion_error"] for m in report.models for p in m.curve), default=0) or 1
    rows = []
    for i, c in enumerate(estimation.CURVE_COVERAGES):
        rows.append({"coverage": round(100 * c), "bars": [
            {"key": m.key, "value": round(100 * m.curve[i]["exclusion_error"], 1),
             "width": round(100 * m.curve[i]["exclusion_error"] / top, 1)} for m in report.models]})
    return rows


def _model_page(request: Request, session: Session, who: Principal, model: PmtModel, *, message: str | None = None,
                status: int = 200) -> Response:
    report = estimation.stored_report(model)
    active = pmt.active_model(session)
    coefs = pmt.coefficients(session, model.id)
    households = session.scalar(select(func.count()).select_from(Household)) or 0
    mine = model.created_by == who.username
    return r.render(request, "pmt_model.html", {
        "m": _model_row(model, who), "model": model, "report": report, "bars": _bars(report), "active": active,
        "coefficients": coefs, "households": households, "can_act": who.can(ACT), "mine": mine,
        "may_approve": who.can(ACT) and model.status == "draft" and not model.approved_by
        and model.created_by != "system" and not mine,
        "may_activate": who.can(ACT) and model.status != "active" and _approval_problem(model) is None,
        "approval_problem": _approval_problem(model), "message": message, "notice": _notice(request),
        "running": _another_job(PMT_JOBS),
    }, who=who, session=session, status=status)


def _approval_problem(model: PmtModel) -> str | None:
    try:
        pmt.check_approval(model)
    except pmt.PmtApprovalError as exc:
        return str(exc)
    return None


def _model(session: Session, model_id: int) -> PmtModel | None:
    return session.get(PmtModel, model_id)


@router.get("/pmt/models/{model_id}")
def pmt_model(request: Request, model_id: Id, session: DB, who: User) -> Response:
    """A model's evaluation on held-out households, its weights, and what may be done with it next."""
    refused = _viewer(request, session, who, "pmt_model", model_id)
    if refused:
        return refused
    model = _model(session, model_id)
    if model is None:
        return r.error_page(request, session, who, 404, r._tr(request)("pmt.not_found", id=model_id))
    return _model_page(request, session, who, model)


@router.post("/pmt/models/{model_id}/approve")
def pmt_approve(request: Request, model_id: Id, session: DB, who: User) -> Response:
    """The checker's approval: refused to the person who made the model (maker-checker), with a 409."""
    tr = r._tr(request)
    model = _model_to_act_on(request, session, who, "approve", model_id, "approve a PMT model")
    if isinstance(model, Response):
        return model
    try:
        pmt.approve(session, model_id, who.username)
    except pmt.PmtApprovalError as exc:
        session.rollback()
        audit(session, who, r.CHANNEL, "approve", "pmt_model", model_id, outcome="denied",
              detail=f"refused: {str(exc)[:400]}")
        model = _model(session, model_id)
        words = (tr("pmt.error.same_person", maker=model.created_by) if model.created_by == who.username
                 else str(exc))
        return _model_page(request, session, who, model, message=words, status=409)
    audit(session, who, r.CHANNEL, "approve", "pmt_model", model_id, detail=f"approved v{model.version}")
    return RedirectResponse(f"/pmt/models/{model_id}?done=approved", status_code=303)


@router.post("/pmt/models/{model_id}/activate")
def pmt_activate(request: Request, model_id: Id, session: DB, who: User) -> Response:
    """Make an approved model the one in force: every household is re-scored, in the background."""
    tr = r._tr(request)
    model = _model_to_act_on(request, session, who, "activate", model_id, "activate a PMT model")
    if isinstance(model, Response):
        return model
    problem = (tr("pmt.error.active") if model.status == "active" else _approval_problem(model))
    busy = _another_job(PMT_JOBS)
    if problem is None and busy is not None:
        problem = tr("pmt.error.busy", who=busy.owner, what=_subject(tr, busy))
    if problem is not None:
        audit(session, who, r.CHANNEL, "activate", "pmt_model", model_id, outcome="denied",
              detail=f"refused: {problem[:400]}")
        return _model_page(request, session, who, model, message=problem, status=409)
    label = f"{model.name} v{model.version}"

    def work(s: Session, progress: jobs.Progress) -> dict:
        m = s.get(PmtModel, model_id)
        households = s.scalar(select(func.count()).select_from(Household)) or 0
        progress(f"re-scoring {households:,} households with {label}")
        n = pmt.activate(s, m)
        audit(s, who, r.CHANNEL, "activate", "pmt_model", model_id, detail=f"{label}: {n} households re-scored")
        return {"next": f"/pmt/models/{model_id}?done=activated", "scored": n}

    job = jobs.start(request.app.state.engine, "pmt.activate", who.username, label, work,
                     refusals=(pmt.PmtModelError,), on_failure=_audit_failure(who, "activate", "pmt_model", model_id))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


# ---------------------------------------------------------------- background jobs: the page that polls

def _job_view(request: Request, job: jobs.Job | None) -> dict:
    """The job, where its list is, and a comparison's report (which is kept nowhere else)."""
    report = (estimation.Report.from_dict(job.result["report"])
              if job is not None and job.state == "done" and "report" in job.result else None)
    return {"job": job, "back": "/means-tests" if job and job.kind == MEANS_JOB else "/pmt", "report": report,
            "bars": _bars(report)}


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, session: DB, who: User) -> Response:
    """A job's progress; the status block below polls itself every second until the job is over."""
    refused = _viewer(request, session, who, "job")
    if refused:
        return refused
    job = jobs.get(job_id[:40])
    if job is not None and job.state == "done" and job.result.get("next"):
        return RedirectResponse(job.result["next"], status_code=303)  # over before the page was asked for
    return r.render(request, "job.html", _job_view(request, job), who=who, session=session,
                    status=200 if job else 404)


@router.get("/jobs/{job_id}/status")
def job_status(request: Request, job_id: str, session: DB, who: User) -> Response:
    """The status block; once the job is done, htmx is sent on to its result."""
    refused = _viewer(request, session, who, "job")
    if refused:
        return refused
    job = jobs.get(job_id[:40])
    headers = {}
    if job is not None and job.state == "done" and job.result.get("next") and r._is_htmx(request):
        headers["HX-Redirect"] = job.result["next"]
    return r.render(request, "_job.html", _job_view(request, job), headers=headers,
                    status=_swappable(request, 200 if job else 404))


# ---------------------------------------------------------------- means tests

def _month(raw: str) -> date | None:
    raw = raw.strip()
    try:
        return date.fromisoformat(raw + "-01" if len(raw) == 7 else raw).replace(day=1)
    except ValueError:
        return None


def _default_through() -> str:
    today = date.today()
    last = date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)  # last month: the latest bills
    return last.strftime("%Y-%m")


def _means_home(request: Request, session: Session, who: Principal, *, errors: dict | None = None,
                form: dict | None = None, message: str | None = None, status: int = 200) -> Response:
    tr = r._tr(request)
    method = request.query_params.get("method", "")
    method = method if method in METHODS else ""
    before = _cursor(request.query_params.get("before", ""))
    rows = alternative.runs(session, before=before, limit=listing.PAGE + 1, method=METHODS.get(method))
    shown = rows[:listing.PAGE]
    fmt = listing.wants_export(request, "runs")
    if fmt:
        return listing.export(request, session, who, fmt, name="means_test_runs", entity="means_test_run",
                              columns=[(k, tr(f"mt.col.{k}")) for k in _RUN_COLUMNS],
                              chunks=listing.keyset_chunks(
                                  lambda after, n: [_run_row(x) for x in alternative.runs(
                                      session, before=after, limit=n, method=METHODS.get(method))],
                                  lambda row: row["id"]),
                              detail=f"means test runs{' ' + method if method else ''}")
    pager = listing.pager(request, total=alternative.count_runs(session, method=METHODS.get(method)),
                          shown=len(shown), next_after=shown[-1].id if len(rows) > listing.PAGE else None,
                          cursor="before", id="runs")
    selection = alternative.selection_summary(session)
    return r.render(request, "means_tests.html", {
        "runs": [_run_row(x) for x in shown], "pager": pager, "method": method, "methods": METHODS,
        "selection": selection, "can_act": who.can(ACT), "errors": errors or {}, "message": message,
        "form": form or {"method": "electricity", "through": _default_through(), "threshold": "", "months": "3"},
        "defaults": {"electricity": alternative.DEFAULT_ELECTRICITY_UNITS, "telecom": alternative.DEFAULT_TELECOM_PKR},
        "notice": _notice(request), "jobs": jobs.recent((MEANS_JOB,)),
        "evaluate_through": (form or {}).get("through") or _default_through(),
    }, who=who, session=session, status=status)


_RUN_COLUMNS = ("id", "method", "through", "months", "threshold", "actor", "started_at", "evaluated", "eligible",
                "insufficient")


def _run_row(x: MeansTestRun) -> dict:
    key = next((k for k, v in METHODS.items() if v == x.targeting_method), x.targeting_method)
    return {"id": x.id, "method": key, "through": x.through_month.strftime("%Y-%m"), "months": x.months,
            "threshold": f"{x.threshold:g}", "actor": x.actor,
            "started_at": x.started_at.strftime("%Y-%m-%d %H:%M") if x.started_at else "",
            "evaluated": x.evaluated, "eligible": x.eligible, "insufficient": x.insufficient}


@router.get("/means-tests")
def means_home(request: Request, session: DB, who: User) -> Response:
    """The runs of the electricity and telecom means tests, the selection by method, and the form to run one."""
    return _viewer(request, session, who, "means_test_run") or _means_home(request, session, who)


@router.post("/means-tests/run")
def means_run(request: Request, session: DB, who: User, method: Annotated[str, Form()] = "",
              through: Annotated[str, Form()] = "", threshold: Annotated[str, Form()] = "",
              months: Annotated[str, Form()] = "") -> Response:
    """Decide every household by a means test, in the background; the run is kept with its decisions."""
    refused = _actor(request, session, who, "create", "means_test_run", None, "run a means test")
    if refused:
        return refused
    tr = r._tr(request)
    form = {"method": method, "through": through, "threshold": threshold, "months": months}
    errors = {}
    if method not in METHODS:
        errors["method"] = tr("mt.error.method")
    end = _month(through)
    if end is None or not date(2000, 1, 1) <= end <= date.today():
        errors["through"] = tr("mt.error.through")
    limit = None
    if threshold.strip():
        try:
            limit = float(threshold.replace(",", ""))
        except ValueError:
            limit = -1.0
        if not (math.isfinite(limit) and 0 <= limit <= 1e9):
            errors["threshold"] = tr("mt.error.threshold")
    n = int(months) if months.strip().isdigit() and len(months.strip()) < 3 else 0
    if not 1 <= n <= MAX_MONTHS:
        errors["months"] = tr("mt.error.months", max=MAX_MONTHS)
    if errors:
        return _means_home(request, session, who, errors=errors, form=form, status=422)
    busy = jobs.running(MEANS_JOB)
    if busy is not None:
        return _means_home(request, session, who, form=form, status=409,
                           message=tr("pmt.error.busy", who=busy.owner, what=_subject(tr, busy)))

    def work(s: Session, progress: jobs.Progress) -> dict:
        progress(f"deciding every household by the {method} test")
        run = alternative.run_means_test(s, METHODS[method], end, limit, n, who.username)
        audit(s, who, r.CHANNEL, "create", "means_test_run", run.id,
              detail=f"{method} through {end:%Y-%m}, {n} months, at most {run.threshold:g}: {run.eligible} eligible")
        return {"next": f"/means-tests/runs/{run.id}?done=ran", "run_id": run.id}

    job = jobs.start(request.app.state.engine, MEANS_JOB, who.username, f"mt.method.{method}", work,
                     refusals=(alternative.AlternativeTargetingError,),
                     on_failure=_audit_failure(who, "create", "means_test_run", None))
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/means-tests/runs/{run_id}")
def means_run_page(request: Request, run_id: Id, session: DB, who: User) -> Response:
    """One run: its rule, its totals and its decisions counted by district."""
    refused = _viewer(request, session, who, "means_test_run", run_id)
    if refused:
        return refused
    tr = r._tr(request)
    run = session.get(MeansTestRun, run_id)
    if run is None:
        return r.error_page(request, session, who, 404, tr("mt.not_found", id=run_id))
    geo = r.Geography.load(session)
    districts = [{"name": r._district_name(tr, geo.district_by_id.get(d.district_id)), "eligible": d.eligible,
                  "not_eligible": d.not_eligible, "insufficient": d.insufficient_data}
                 for d in alternative.run_by_district(session, run_id)]
    districts.sort(key=lambda d: d["name"])
    return r.render(request, "means_test_run.html", {"run": _run_row(run), "districts": districts,
                                                     "notice": _notice(request)}, who=who, session=session)


@router.get("/means-tests/evaluation")
def means_evaluation(request: Request, session: DB, who: User, through: str = "", share: str = "20") -> Response:
    """Each test beside PMT against true welfare (the htmx block of the means tests page)."""
    refused = _viewer(request, session, who, "means_test_run")
    if refused:
        return refused
    tr = r._tr(request)
    end = _month(through)
    poorest = _percent(share, 1, 99)
    if end is None or poorest is None:
        return r.render(request, "_means_evaluation.html", {"rows": [], "error": tr("mt.error.evaluation")},
                        status=_swappable(request, 422))
    rows = alternative.evaluate(session, end, poorest)
    return r.render(request, "_means_evaluation.html", {"rows": rows, "error": None, "share": round(100 * poorest)})


# ---------------------------------------------------------------- the policy simulator

def _sim_form(request: Request, session: Session, program: str, cutoffs: str, budget: str, poor_share: str) -> dict:
    """The simulator's form read and checked (cheap: no simulation), shared by the page and its results."""
    tr = r._tr(request)
    programs = [(row.program_code, r.program_name(tr, row.program_code), "cutoff" in rule.parameters)
                for row, rule in eligibility.active_rules(session)]
    out = {"programs": programs, "form": {"program": program, "cutoffs": cutoffs, "budget": budget,
                                          "poor_share": poor_share},
           "error": None, "values": None, "share": 0.2, "budget": None,
           "has_cutoff": next((p[2] for p in programs if p[0] == program), False)}
    try:
        out["values"] = simulator.parse_cutoffs(cutoffs)
    except simulator.ScenarioError as exc:
        out["error"] = f"{tr('sim.error.cutoffs')} ({exc})"
        return out
    try:
        out["share"] = float(poor_share) / 100
        out["budget"] = float(budget.replace(",", "")) if budget.strip() else None
    except ValueError:
        out["error"] = tr("sim.error.number")
        return out
    if not 0 < out["share"] < 1:
        out["error"] = tr("sim.error.share")
    elif out["budget"] is not None and not (math.isfinite(out["budget"]) and out["budget"] >= 0):
        out["error"] = tr("sim.error.number")
    elif program not in {p[0] for p in programs}:
        out["error"] = tr("sim.error.program")
    return out


def _scenario_name(tr, scenario: simulator.Scenario) -> str:
    """A cut-off scenario in the reader's language ("cut-off 32", "حد 32"); any other as the simulator named it."""
    if "cutoff" in scenario.parameters and scenario.label.startswith("cut-off") and not scenario.overrides:
        return tr("sim.scenario_cutoff", cutoff=f"{scenario.parameters['cutoff']:g}")
    return scenario.label


def _chart(results: list[simulator.Result], tr) -> list[dict]:
    """Bars for the chart: eligible households, and both errors, per scenario (widths in %)."""
    top = max((x.total.eligible_households for x in results), default=0) or 1
    return [{"label": _scenario_name(tr, x.scenario), "eligible": x.total.eligible_households,
             "width": round(100 * x.total.eligible_households / top, 1),
             "inclusion": round(100 * (x.total.inclusion_error or 0), 1),
             "exclusion": round(100 * (x.total.exclusion_error or 0), 1)} for x in results]


def _sim_guard(request: Request, session: Session, who: Principal) -> Response | None:
    if who.can(ACT):
        return None
    tr = r._tr(request)
    return r.error_page(request, session, who, 403, tr("sim.forbidden", role=tr(f"role.{who.role}")))


@router.get("/simulator")
def simulator_page(request: Request, session: DB, who: User, program: str = "bisp_kafaalat",
                   cutoffs: str = "30, 32, 35", budget: str = "", poor_share: str = "20") -> Response:
    """What if: the form opens at once; the results are asked for after the page has loaded."""
    refused = _sim_guard(request, session, who)
    if refused:
        return refused
    ctx = _sim_form(request, session, program, cutoffs, budget, poor_share)
    ctx["query"] = urlencode(ctx["form"])
    return r.render(request, "simulator.html", ctx, who=who, session=session, status=422 if ctx["error"] else 200)


@router.get("/simulator/results")
def simulator_results(request: Request, session: DB, who: User, program: str = "bisp_kafaalat",
                      cutoffs: str = "30, 32, 35", budget: str = "", poor_share: str = "20") -> Response:
    """The simulation itself (a plain ``def``: it runs in the thread pool, never on the event loop)."""
    refused = _sim_guard(request, session, who)
    if refused:
        return refused
    tr = r._tr(request)
    ctx = _sim_form(request, session, program, cutoffs, budget, poor_share)
    results = []
    if ctx["error"] is None:
        try:
            scenarios = (simulator.cutoff_scenarios(program, ctx["values"], session)
                         if ctx["values"] and ctx["has_cutoff"] else [simulator.Scenario(tr("sim.today"))])
            for sc in scenarios:
                sc.annual_budget = ctx["budget"]
            results = simulator.compare(session, program, scenarios, poor_share=ctx["share"])
        except eligibility.RuleError as exc:
            ctx["error"] = str(exc)
    geo = r.Geography.load(session)
    districts = []
    if results:
        for i, d in enumerate(results[0].districts):
            districts.append({"name": r._district_name(tr, geo.district_by_id.get(d.district_id)),
                              "cells": [x.districts[i] for x in results]})
    from_form = r._is_htmx(request) and request.headers.get("HX-Trigger") == "sim-form"
    headers = {"HX-Push-Url": "/simulator?" + urlencode(ctx["form"])} if from_form else {}
    return r.render(request, "_simulator_results.html", {**ctx, "results": results, "districts": districts,
                                                         "chart": _chart(results, tr),
                                                         "scenario_name": lambda sc: _scenario_name(tr, sc)},
                    status=_swappable(request, 422 if ctx["error"] else 200), headers=headers)


def _swappable(request: Request, status: int) -> int:
    """htmx swaps only 2xx answers: a refusal meant for a block of the page is sent as 200 to htmx
    (the block says what is wrong), with its real status to anything else."""
    return 200 if r._is_htmx(request) else status
