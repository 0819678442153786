"""Web pages for the program manager's payment job: the payments home (per program: the fund, the
cycles and payrolls, and what waits for the signed-in user), and every step from a fund release to
a returned unclaimed payment, each through :mod:`isps.programs.cycles` or :mod:`isps.payments.payroll`.

Who may do what mirrors the API (``api/programs.py``'s ``Manager``): program managers and
administrators act (``pmt.manage``); auditors read; district roles see no money (a 403 page). Every
refusal, of the role or of a payment rule (maker-checker, an empty fund, a file imported already),
is audited and shown as a readable message, never a 500.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Callable
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.access.service import AccessError, Principal, audit
from isps.api.params import Id
from isps.config import var_dir
from isps.payments import payroll as pr
from isps.programs import cycles, enrolment as en
from isps.programs.models import BenefitCycle
from isps.web import common as r
from isps.web.common import DB, User

router = APIRouter(include_in_schema=False)
ACT = "pmt.manage"  # the API's Manager: program managers and administrators
STATUS_FILE_MAX = 64 * 1024 * 1024  # a bank's status file for a million payments is well below this
REJECTED_SHOWN = 200
SHOWN = 12  # newest cycles and payrolls per program on the home page
# the notices a redirect may ask the page to show (anything else in the address is ignored)
NOTICES = ("released", "opened", "entitlements", "cycle_approved", "payroll_approved", "exported", "retried",
           "returned")
Failure = (cycles.CycleError, pr.PaymentError, en.EnrolmentError)


def folder() -> Path:
    """Where payment files are written: the server's payments folder, as the API's export route."""
    return var_dir() / "payments"


def _may_view(who: Principal) -> bool:
    return who.can(ACT) or who.can("audit.read")


def _refused(request: Request, session: Session, who: Principal, action: str, entity: str,
             entity_id: int | None, detail: str) -> Response:
    """A role refused: audited (outcome denied), answered with the 403 page."""
    tr = r._tr(request)
    audit(session, who, r.CHANNEL, action, entity, entity_id, who.scope, outcome="denied",
          detail=f"refused: a {who.role.replace('_', ' ')} may not {detail}")
    return r.error_page(request, session, who, 403, tr("payments.forbidden", role=tr(f"role.{who.role}")))


def _viewer(request: Request, session: Session, who: Principal, entity: str, entity_id: int | None) -> Response | None:
    if _may_view(who):
        return None
    return _refused(request, session, who, "read", entity, entity_id, f"read the payments ({entity})")


def _actor(request: Request, session: Session, who: Principal, action: str, entity: str,
           entity_id: int | None, what: str) -> Response | None:
    """The API's ``Manager`` check on the web's signed-in user: None when allowed, else the 403 page."""
    try:
        who.require(ACT)
    except AccessError:
        return _refused(request, session, who, action, entity, entity_id, what)
    return None


def _status_of(exc: Exception) -> int:
    """The API's answer to a payment rule's refusal (``api/programs.py`` ``_guard``)."""
    if isinstance(exc, cycles.CycleNotFound):
        return 404
    if isinstance(exc, (pr.PaymentConflict, cycles.CycleConflict)):
        return 409
    return 422


def _attempt(session: Session, who: Principal, action: str, entity: str, entity_id: int | None,
             fn: Callable[[], object]) -> tuple[object, Exception | None]:
    """Run one domain step; a refusal of its rules is rolled back and audited (outcome denied)."""
    try:
        return fn(), None
    except Failure as exc:
        session.rollback()
        audit(session, who, r.CHANNEL, action, entity, entity_id, who.scope, outcome="denied",
              detail=f"refused: {str(exc)[:400]}")
        return None, exc


# ---------------------------------------------------------------- the payments home

def _program_codes(session: Session) -> list[str]:
    """Programs that can pay: those with an enrolment policy, enrolments or cycles."""
    codes = set(en.DEFAULT_POLICIES) | set(en.overview(session))
    codes |= set(session.scalars(select(BenefitCycle.program_code).distinct()))
    return sorted(codes)


def _home(request: Request, session: Session, who: Principal, *, error: str | None = None, status: int = 200,
          form: dict | None = None) -> Response:
    tr = r._tr(request)
    me = who.username
    can_act = who.can(ACT)
    counts = en.overview(session)
    programs, waiting = [], []
    for code in _program_codes(session):
        cycle_rows = cycles.cycles(session, code)[:SHOWN]
        payrolls = pr.payrolls(session, code, limit=SHOWN)
        by_cycle = {p["cycle_id"]: p for p in payrolls}
        for c in cycle_rows:
            c["payroll"] = by_cycle.get(c["id"])
            c["mine"] = c["created_by"] == me
            c["period_name"] = f"{code} {c['period']}"
        for c in cycle_rows if can_act else ():
            if c["status"] == "draft" and not c["mine"] and c["entitlements"]:
                waiting.append({"kind": "approve_cycle", "program": code, "id": c["id"], "period": c["period"],
                                "total": c["total"], "by": c["created_by"]})
            elif c["status"] == "approved" and c["payroll"] is None:
                waiting.append({"kind": "make_payroll", "program": code, "id": c["id"], "period": c["period"],
                                "total": c["total"], "by": c["approved_by"]})
        period = {c["id"]: c["period"] for c in cycle_rows}
        for p in payrolls:
            p["period"] = period.get(p["cycle_id"], "")
            if not can_act:
                continue
            if p["status"] == "draft" and p["made_by"] != me:
                waiting.append({"kind": "approve_payroll", "program": code, "id": p["id"], "period": p["period"],
                                "total": p["total"], "by": p["made_by"]})
            elif p["status"] == "approved":
                waiting.append({"kind": "export", "program": code, "id": p["id"], "period": p["period"],
                                "total": p["total"], "by": p["approved_by"]})
        enrolled, fund = counts.get(code, {}).get("enrolled", 0), pr.fund(session, code)
        programs.append({"code": code, "name": r.program_name(tr, code), "enrolled": enrolled,
                         "fund": fund, "cycles": cycle_rows, "payrolls": payrolls,
                         "active": bool(enrolled or cycle_rows or fund["released"])})
    done = request.query_params.get("done", "")
    notice = tr(f"payments.done.{done}", n=request.query_params.get("n", "")[:20],
                program=request.query_params.get("program", "")[:40]) if done in NOTICES else None
    audit(session, who, r.CHANNEL, "read", "payroll", None, who.scope, detail="read the payments home")
    return r.render(request, "payments.html", {
        "programs": programs, "waiting": waiting, "can_act": can_act, "notice": notice, "error": error,
        "form": form or {}, "today": date.today().isoformat()}, who=who, session=session, status=status)


@router.get("/payments")
def home(request: Request, session: DB, who: User) -> Response:
    """Per program: the fund, the cycles and payrolls, and what waits for the signed-in user."""
    return _viewer(request, session, who, "payroll", None) or _home(request, session, who)


def _back(path: str, **query: object) -> RedirectResponse:
    q = urlencode({k: v for k, v in query.items() if v is not None})
    return RedirectResponse(path + (f"?{q}" if q else ""), status_code=303)


def _home_step(request: Request, session: Session, who: Principal, action: str, entity: str, entity_id: int | None,
               fn: Callable[[], object], then: Callable[[object], Response], what: str,
               form: dict | None = None) -> Response:
    """A step started from the payments home: the role checked first (403 page), a refusal of the
    rules shown on the home with the reason, else ``then`` (a redirect with a notice)."""
    refused = _actor(request, session, who, action, entity, entity_id, what)
    if refused:
        return refused
    out, exc = _attempt(session, who, action, entity, entity_id, fn)
    if exc is not None:
        return _home(request, session, who, error=str(exc), status=_status_of(exc), form=form)
    return then(out)


@router.post("/payments/programs/{code}/fund-releases")
def release(request: Request, code: str, session: DB, who: User, amount: Annotated[str, Form()] = "",
            reference: Annotated[str, Form()] = "") -> Response:
    """Money released from the treasury into a program's fund (the release order's reference)."""
    code = code[:40]

    def step() -> dict:
        try:
            value = float(amount.replace(",", "").strip())
        except ValueError:
            raise pr.PaymentError(f"fund release to {code}: 'amount' must be a number of rupees, "
                                  f"not {amount[:20]!r}") from None
        return pr.release_funds(session, code, value, reference, who.username)

    def done(out) -> Response:
        audit(session, who, r.CHANNEL, "release", "fund_release", out["release_id"],
              detail=f"Rs {out['amount']:,.2f} released to {code} (reference {reference.strip()[:80]})")
        return _back("/payments", done="released", n=f"{out['amount']:,.0f}", program=code)

    return _home_step(request, session, who, "release", "fund_release", None, step, done,
                      f"release funds to {code}", {"program": code, "amount": amount[:20], "reference": reference[:80]})


@router.post("/payments/programs/{code}/cycles")
def open_cycle(request: Request, code: str, session: DB, who: User,
               starts_on: Annotated[str, Form()] = "") -> Response:
    """Open (or find) the program's cycle containing the date, as a draft."""
    code = code[:40]

    def step():
        try:
            day = date.fromisoformat(starts_on.strip())
            if not 1900 <= day.year <= 2100:
                raise ValueError
        except ValueError:
            raise cycles.CycleError(f"new cycle of {code}: 'starts on' must be a date written YYYY-MM-DD "
                                    f"(1900 to 2100), not {starts_on[:20]!r}") from None
        return cycles.open_cycle(session, code, day, who.username)

    def done(c) -> Response:
        audit(session, who, r.CHANNEL, "create", "benefit_cycle", c.id, detail=f"{code} {c.period} opened")
        return _back("/payments", done="opened", n=c.period, program=code)

    return _home_step(request, session, who, "create", "benefit_cycle", None, step, done,
                      f"open a cycle of {code}", {"program": code, "starts_on": starts_on[:20]})


@router.post("/payments/cycles/{cycle_id}/entitlements")
def entitlements(request: Request, cycle_id: Id, session: DB, who: User) -> Response:
    """(Re)compute a draft cycle's entitlements."""
    def done(out) -> Response:
        audit(session, who, r.CHANNEL, "edit", "benefit_cycle", cycle_id,
              detail=f"{out['entitlements']} entitlements, Rs {out['total']:,.2f}")
        return _back("/payments", done="entitlements", n=f"{out['entitlements']:,}")

    return _home_step(request, session, who, "edit", "benefit_cycle", cycle_id,
                      lambda: cycles.generate_entitlements(session, cycle_id), done, f"compute cycle {cycle_id}")


@router.post("/payments/cycles/{cycle_id}/approve")
def approve_cycle(request: Request, cycle_id: Id, session: DB, who: User) -> Response:
    """A second person approves a draft cycle: its entitlements are frozen."""
    def done(c) -> Response:
        audit(session, who, r.CHANNEL, "approve", "benefit_cycle", cycle_id, detail=c.checksum)
        return _back("/payments", done="cycle_approved", n=c.period, program=c.program_code)

    return _home_step(request, session, who, "approve", "benefit_cycle", cycle_id,
                      lambda: cycles.approve_cycle(session, cycle_id, who.username), done, f"approve cycle {cycle_id}")


@router.post("/payments/cycles/{cycle_id}/payroll")
def make_payroll(request: Request, cycle_id: Id, session: DB, who: User) -> Response:
    """The approved cycle's payroll (the same one if it exists already): its page."""
    def done(p) -> Response:
        audit(session, who, r.CHANNEL, "create", "payroll", p.id,
              detail=f"payroll of cycle {cycle_id}: {p.instructions} instructions, Rs {p.total:,.2f}")
        return _back(f"/payments/payrolls/{p.id}")

    return _home_step(request, session, who, "create", "payroll", None,
                      lambda: pr.generate(session, cycle_id, who.username), done,
                      f"make the payroll of cycle {cycle_id}")


# ---------------------------------------------------------------- a payroll

FILE_NAME = re.compile(r"payroll-(\d+)-[a-z0-9_]{1,40}-a\d{1,5}-\d{1,20}\.(xml|csv)")


def _files(payroll_id: int) -> list[dict]:
    """The payroll's files in the payments folder (written whole: never a ``.part``)."""
    base = folder()
    if not base.is_dir():
        return []
    out = []
    for path in sorted(base.glob(f"payroll-{payroll_id}-*")):
        m = FILE_NAME.fullmatch(path.name)
        if m and int(m.group(1)) == payroll_id:
            out.append({"name": path.name, "kind": "pain.001" if m.group(2) == "xml" else "CSV",
                        "bytes": path.stat().st_size})
    return out


def _payroll(request: Request, session: Session, who: Principal, payroll_id: int, *, error: str | None = None,
             status: int = 200, result: dict | None = None) -> Response:
    tr = r._tr(request)
    try:
        summary = pr.payroll_summary(session, payroll_id)
    except pr.PaymentError:
        return r.error_page(request, session, who, 404, tr("payments.no_payroll"))
    can_act = who.can(ACT)
    cycle = session.get(BenefitCycle, summary["cycle_id"])
    done = request.query_params.get("done", "")
    notice = tr(f"payments.done.{done}", n=request.query_params.get("n", "")[:20], program=summary["program"]) \
        if done in NOTICES else None
    retryable = sum(summary["by_status"].get(s, {}).get("n", 0) for s in ("failed", "reversed"))
    pending = summary["by_status"].get("pending", {}).get("n", 0)
    audit(session, who, r.CHANNEL, "read", "payroll", payroll_id)
    return r.render(request, "payments_payroll.html", {
        "p": summary, "ledger": pr.ledger_check(session, summary["program"]),
        "recall": pr.payments_to_recall(session, payroll_id), "period": cycle.period if cycle else "",
        "can_act": can_act, "mine": summary["made_by"] == who.username, "files": _files(payroll_id) if can_act else [],
        "retryable": retryable, "pending": pending, "notice": notice, "error": error, "result": result},
        who=who, session=session, status=status)


@router.get("/payments/payrolls/{payroll_id}")
def payroll_page(request: Request, payroll_id: Id, session: DB, who: User) -> Response:
    """A payroll by status and channel, the program's fund and ledger, its files, and the steps left."""
    return _viewer(request, session, who, "payroll", payroll_id) or _payroll(request, session, who, payroll_id)


def _payroll_step(request: Request, session: Session, who: Principal, payroll_id: int, action: str,
                  fn: Callable[[], object], what: str, notice: str,
                  said: Callable[[object], tuple[str | None, str | None]] = lambda out: (None, None)) -> Response:
    """A step on a payroll: the role checked first (403 page), a refusal of the rules shown on the
    payroll's page with the reason, else audited (``said``: the audit detail and the notice's number)
    and back to the payroll's page with the notice."""
    refused = _actor(request, session, who, action, "payroll", payroll_id, what)
    if refused:
        return refused
    out, exc = _attempt(session, who, action, "payroll", payroll_id, fn)
    if exc is not None:
        return _payroll(request, session, who, payroll_id, error=str(exc), status=_status_of(exc))
    detail, n = said(out)
    audit(session, who, r.CHANNEL, action, "payroll", payroll_id, detail=detail)
    return _back(f"/payments/payrolls/{payroll_id}", done=notice, n=n)


@router.post("/payments/payrolls/{payroll_id}/approve")
def approve_payroll(request: Request, payroll_id: Id, session: DB, who: User) -> Response:
    """Maker-checker: a second person approves; refused while the fund cannot cover the payroll."""
    return _payroll_step(request, session, who, payroll_id, "approve",
                         lambda: pr.approve(session, payroll_id, who.username), f"approve payroll {payroll_id}",
                         "payroll_approved")


@router.post("/payments/payrolls/{payroll_id}/export")
def export(request: Request, payroll_id: Id, session: DB, who: User) -> Response:
    """Write the unsent instructions as pain.001 and CSV into the payments folder, offered as downloads."""
    return _payroll_step(request, session, who, payroll_id, "export",
                         lambda: pr.export(session, payroll_id, folder()), f"export payroll {payroll_id}", "exported",
                         lambda out: (f"{out['instructions']} instructions", f"{out['instructions']:,}"))


@router.get("/payments/payrolls/{payroll_id}/files/{name}")
def download(request: Request, payroll_id: Id, name: str, session: DB, who: User) -> Response:
    """One of this payroll's files from the payments folder, and nothing else (audited as an export)."""
    tr = r._tr(request)
    refused = _actor(request, session, who, "export", "payroll", payroll_id, f"download a file of payroll {payroll_id}")
    if refused:
        return refused
    m = FILE_NAME.fullmatch(name)
    path = folder() / name
    if not m or int(m.group(1)) != payroll_id or not path.is_file():
        audit(session, who, r.CHANNEL, "export", "payroll", payroll_id, outcome="not_found",
              detail=f"no file {name[:120]!r} of payroll {payroll_id}")
        return r.error_page(request, session, who, 404, tr("payments.no_file"))
    audit(session, who, r.CHANNEL, "export", "payroll", payroll_id, detail=f"downloaded {name}")
    return FileResponse(path, media_type="application/xml" if m.group(2) == "xml" else "text/csv",
                        filename=name)  # no-store and the rest: the security headers middleware


@router.post("/payments/payrolls/{payroll_id}/status-file")
def status_file(request: Request, payroll_id: Id, session: DB, who: User,
                file: Annotated[UploadFile | None, File()] = None) -> Response:
    """A bank's status file (CSV, pain.002 or camt.054), applied once: the page shows what was applied,
    what was a duplicate, and each rejected line with its reason."""
    refused = _actor(request, session, who, "reconcile", "status_import", None,
                     f"upload a status file for payroll {payroll_id}")
    if refused:
        return refused
    tr = r._tr(request)
    data = file.file.read(STATUS_FILE_MAX + 1) if file is not None else b""
    name = Path(file.filename or "status").name[:120] if file is not None else "status"
    if not data:
        return _payroll(request, session, who, payroll_id, error=tr("payments.status_file.empty"), status=422)
    if len(data) > STATUS_FILE_MAX:
        return _payroll(request, session, who, payroll_id, error=tr("payments.status_file.too_big"), status=413)
    out, exc = _attempt(session, who, "reconcile", "status_import", None,
                        lambda: pr.reconcile(session, data, name, who.username))
    if exc is not None:
        message = str(exc)
        if isinstance(exc, pr.PaymentConflict):
            message = tr("payments.status_file.again", reason=message)
        return _payroll(request, session, who, payroll_id, error=message, status=_status_of(exc))
    audit(session, who, r.CHANNEL, "reconcile", "status_import", out["import_id"],
          detail=f"{out['lines']} lines of {name} ({out['format']}): {out['applied']} applied, "
                 f"{out['duplicates']} duplicates, {out['rejected']} rejected")
    out["rejected_lines"] = out["rejected_lines"][:REJECTED_SHOWN]
    out["file_name"] = name
    return _payroll(request, session, who, payroll_id, result=out)


@router.post("/payments/payrolls/{payroll_id}/retry")
def retry(request: Request, payroll_id: Id, session: DB, who: User) -> Response:
    """A new instruction on the next channel for every failed or reversed payment of the payroll."""
    return _payroll_step(request, session, who, payroll_id, "create",
                         lambda: pr.retry_failed(session, payroll_id), f"retry payroll {payroll_id}", "retried",
                         lambda n: (f"{n} failed payments retried", f"{n:,}"))


@router.post("/payments/payrolls/{payroll_id}/return-unclaimed")
def return_unclaimed(request: Request, payroll_id: Id, session: DB, who: User,
                     days: Annotated[str, Form()] = "90") -> Response:
    """Payments unclaimed for ``days`` go back to their programs' funds (every program: the domain step
    is not per payroll); the page it was asked from is shown again."""
    def step() -> int:
        try:
            n = int(days.strip())
        except ValueError:
            raise pr.PaymentError(f"'days' must be a whole number of days from 1 to 36,500, not {days[:20]!r}") from None
        return pr.return_unclaimed(session, None, n)

    return _payroll_step(request, session, who, payroll_id, "edit", step,
                         f"return unclaimed payments (payroll {payroll_id})", "returned",
                         lambda n: (f"{n} payments unclaimed for {days.strip()[:6]} days returned to the funds", f"{n:,}"))
