"""What a role's home page counts: the work waiting for the signed-in user (queues) and the key
figures of their scope (their district, or all Punjab for province-wide roles).

Every number is one set-based query over the tables of the module that owns it (linkage review
pairs, NSER Plus change requests and conflicts, households due for re-certification, feed
deliveries, cycles, payrolls, payment instructions, PMT models and scores, enrolments), filtered
by the district in SQL. Nothing is cached: the home page is read at the start of a shift and must
say what is true now. Aggregates only: no person's data leaves here, so reading them is not an
audited read of personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.orm import Session, aliased

from isps.access.models import AuditRecord
from isps.access.service import Principal
from isps.interop.feeds import changes
from isps.interop.feeds.changes import DEFAULT_RECERTIFY_DAYS
from isps.interop.models import ChangeRequest, FeedDelivery, SourceConflict
from isps.linkage import persons
from isps.payments.models import Payroll, PaymentInstruction
from isps.programs import counts as enrolment_counts
from isps.programs.models import BenefitCycle
from isps.registry.models import Household, Individual
from isps.registry import current
from isps.targeting import pmt
from isps.targeting.eligibility import rules as eligibility
from isps.targeting.models import PmtModel, PmtScore

LATE_DAYS = 7         # a change request or a source conflict open longer than this is late
RECENT_DAYS = 30      # feed deliveries with refused rows, counted over this many days
AUDIT_DAYS = 7        # the auditor's refused accesses, counted over this many days
CYCLES_SHOWN = 6      # payment outcomes of the newest cycles
POOR_PROGRAM = "bisp_kafaalat"  # "poor" = at or below this program's PMT cut-off

# the work each role does, in the order it is shown (administrators see every queue)
ROLE_QUEUES: dict[str, tuple[str, ...]] = {
    "district_officer": ("change_requests", "late_change_requests", "conflicts", "late_conflicts", "review",
                         "recertification", "applications", "late_applications", "my_grievances", "late_grievances"),
    "counter_operator": ("change_requests", "late_change_requests", "conflicts", "recertification",
                         "late_applications"),
    "grievance_officer": ("my_grievances", "late_grievances"),
    "program_manager": ("cycles", "payrolls", "pmt_models", "failed_payments", "unclaimed_payments", "review",
                        "refused_deliveries", "late_change_requests", "applications"),
    "field_supervisor": ("field_refused", "field_late"),
    "enumerator": ("my_assignments",),
    "auditor": ("refused_access", "late_change_requests", "late_conflicts", "failed_payments", "unclaimed_payments",
                "refused_deliveries"),
}
ALL_QUEUES = ("change_requests", "late_change_requests", "conflicts", "late_conflicts", "review", "recertification",
              "cycles", "payrolls", "pmt_models", "failed_payments", "unclaimed_payments", "refused_deliveries",
              "refused_access", "applications", "late_applications", "my_grievances", "late_grievances",
              "field_refused", "field_late")
LATE = {"late_change_requests", "late_conflicts", "late_applications", "late_grievances", "field_late"}


@dataclass(frozen=True)
class Queue:
    """One kind of work: how many items wait, and the list behind them."""

    key: str
    count: int
    hrefs: tuple[str, ...]  # the list behind it, best first (an adapter shows the first page it serves)
    late: bool = False


@dataclass
class Figures:
    """The key figures of a scope."""

    households: int
    people: int
    scored: int
    poor: int
    poor_cutoff: float
    verified_recently: int              # households verified within the re-certification period
    enrolment: list[dict]               # per program: code, enrolled, waiting
    pmt_bands: list[dict]               # per band of 10 points: low, high, households
    paid_quarter: float
    paid_quarter_count: int
    quarter: str                        # 2026-Q4
    payments_by_cycle: list[dict]       # newest cycles: program, period, counts by status
    last_delivery: datetime | None
    statuses: tuple[str, ...] = field(default=("paid", "pending", "unclaimed", "failed", "reversed", "returned",
                                              "stopped"))

    @property
    def poor_share(self) -> float | None:
        """Percent of scored households at or below the cut-off (percent, as everywhere in the app)."""
        return round(100 * self.poor / self.scored, 1) if self.scored else None

    @property
    def fresh_share(self) -> float | None:
        return round(100 * self.verified_recently / self.households, 1) if self.households else None


def fresh_since(day: date) -> date:
    """Households verified on or after this day are not due for re-certification."""
    return day - timedelta(days=DEFAULT_RECERTIFY_DAYS)


def quarter_of(day: date) -> tuple[date, str]:
    first_month = 3 * ((day.month - 1) // 3) + 1
    return date(day.year, first_month, 1), f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _in(column, scope: int | None) -> tuple:
    """The district condition, or none at all for all Punjab (no "1 = 1": a constant term can keep
    a planner from a partial index)."""
    return (column == scope,) if scope is not None else ()


def _count(session: Session, model, *where) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# ---------------------------------------------------------------- queues

def _failed_to_retry(scope: int | None):
    later = aliased(PaymentInstruction)
    return (PaymentInstruction.status.in_(("failed", "reversed")), *_in(PaymentInstruction.district_id, scope),
            ~select(later.id).where(later.entitlement_id == PaymentInstruction.entitlement_id,
                                    later.attempt > PaymentInstruction.attempt).exists())


def count_queue(session: Session, key: str, who: Principal, today: date) -> int:
    """How many items wait in one queue for this user (their district for scoped roles)."""
    scope = who.scope
    late = datetime.combine(today - timedelta(days=LATE_DAYS), datetime.min.time())
    if key == "change_requests":
        return _count(session, ChangeRequest, ChangeRequest.status == "pending", *_in(ChangeRequest.district_id, scope))
    if key == "late_change_requests":
        return _count(session, ChangeRequest, ChangeRequest.status == "pending", *_in(ChangeRequest.district_id, scope),
                      ChangeRequest.requested_at < late)
    if key == "conflicts":
        return _count(session, SourceConflict, SourceConflict.status == "open", *_in(SourceConflict.district_id, scope))
    if key == "late_conflicts":
        return _count(session, SourceConflict, SourceConflict.status == "open", *_in(SourceConflict.district_id, scope),
                      SourceConflict.recorded_at < late)
    if key == "review":
        return persons.count_queue(session, district_id=scope)
    if key == "recertification":
        return sum(changes.count_recertification_due(session, DEFAULT_RECERTIFY_DAYS, scope, on=today).values())
    if key == "cycles":  # computed, waiting for a second person
        return _count(session, BenefitCycle, BenefitCycle.status == "draft", BenefitCycle.entitlements > 0)
    if key == "payrolls":
        return _count(session, Payroll, Payroll.status == "draft")
    if key == "pmt_models":  # estimated and evaluated, not yet approved by a second person
        return _count(session, PmtModel, PmtModel.status == "draft", PmtModel.estimator.is_not(None),
                      PmtModel.approved_by.is_(None))
    if key == "failed_payments":
        return _count(session, PaymentInstruction, *_failed_to_retry(scope))
    if key == "unclaimed_payments":
        return _count(session, PaymentInstruction, PaymentInstruction.status == "unclaimed",
                      *_in(PaymentInstruction.district_id, scope))
    if key == "refused_deliveries":
        since = datetime.combine(today - timedelta(days=RECENT_DAYS), datetime.min.time())
        return _count(session, FeedDelivery, FeedDelivery.rejected > 0, FeedDelivery.received_at >= since)
    if key == "refused_access":
        return _count(session, AuditRecord, AuditRecord.outcome == "denied",
                      AuditRecord.at >= datetime.combine(today - timedelta(days=AUDIT_DAYS), datetime.min.time()),
                      *_in(AuditRecord.district_id, scope))
    if key in ("applications", "late_applications"):  # One Window steps: the role's own, or any late one
        from isps.citizen.applications.models import ApplicationStep as Step
        open_steps = (Step.done_at.is_(None), *_in(Step.district_id, scope))
        if key == "applications":
            return _count(session, Step, *open_steps, Step.owner_role == who.role)
        now = datetime.now() if today == date.today() else datetime.combine(today, datetime.min.time())
        return _count(session, Step, *open_steps, Step.due_at < now)
    if key in ("my_grievances", "late_grievances"):  # grievance redress (citizen.grievances)
        from isps.citizen.grievances import service as grievances

        if key == "my_grievances":
            return grievances.count_owned(session, who.username)
        return grievances.count_grievances(session, scope, late=True)
    if key in ("field_refused", "field_late", "my_assignments"):  # field work (fieldwork.lists)
        from isps.fieldwork import lists as field

        if key == "field_refused":
            return field.count_submissions(session, district_id=scope, status="refused", unreviewed=True)
        if key == "field_late":
            return field.count_assignments(session, district_id=scope, late_on=today)
        return field.count_assignments(session, enumerator=who.username, status="open")
    raise ValueError(f"no queue {key!r}")


def _hrefs(key: str, today: date) -> tuple[str, ...]:
    one = {
        "change_requests": "/updates#upd-requests", "late_change_requests": "/updates#upd-requests",
        "conflicts": "/updates#upd-conflicts", "late_conflicts": "/updates#upd-conflicts", "review": "/sbr/review",
        "recertification": "/updates#upd-recert", "cycles": "/payments", "payrolls": "/payments", "pmt_models": "/pmt",
        "failed_payments": "/payments", "unclaimed_payments": "/payments", "refused_deliveries": "/updates#upd-deliveries",
        "refused_access": f"/audit?outcome=denied&since={(today - timedelta(days=AUDIT_DAYS)).isoformat()}",
        "applications": "/applications?status=open", "late_applications": "/applications?status=open&late=1",
        "my_grievances": "/grievances?mine=1&status=pending", "late_grievances": "/grievances?late=1",
        "field_refused": "/field/submissions?status=refused&unreviewed=1", "field_late": "/field/assignments?late=1",
        "my_assignments": "/field/assignments?mine=1&status=open",
    }[key]
    better = {"refused_deliveries": "/feeds/deliveries"}  # the deliveries' own list, where it exists
    return (better[key], one) if key in better else (one,)


def queues(session: Session, who: Principal, today: date | None = None) -> list[Queue]:
    """The signed-in user's work: each queue of their role with its count and the list behind it."""
    today = today or date.today()
    keys = ROLE_QUEUES.get(who.role, ALL_QUEUES)
    return [Queue(k, count_queue(session, k, who, today), _hrefs(k, today), k in LATE) for k in keys]


# ---------------------------------------------------------------- key figures

def poor_cutoff(session: Session) -> float:
    """The PMT cut-off that counts a household as poor: the running BISP Kafaalat rule's (32 as shipped)."""
    try:
        _, rule = eligibility.active_rule(session, POOR_PROGRAM)
    except eligibility.RuleError:
        rule = next(r for r in eligibility.shipped_rules() if r.code == POOR_PROGRAM)
    return float(rule.parameters["cutoff"])


def figures(session: Session, scope: int | None, today: date | None = None) -> Figures:
    """The key figures of a district (``scope``) or of all Punjab (None): one query each."""
    today = today or date.today()
    households, fresh = session.execute(
        select(func.count(), func.coalesce(func.sum(case(
            (Household.verified_on >= fresh_since(today), 1), else_=0)), 0))
        .select_from(Household).where(*_in(Household.district_id, scope))).one()
    people = _count(session, Individual, current.clause(), *_in(Individual.district_id, scope))

    model = pmt.active_model(session)
    cutoff = poor_cutoff(session)
    scored = poor = 0
    bands: dict[int, int] = {}
    if model is not None:
        if session.bind.dialect.name == "postgresql":  # CAST rounds there; SQLite's truncates (scores are >= 0)
            bucket = func.least(cast(func.floor(PmtScore.score / 10), Integer), 9)
        else:
            bucket = func.min(cast(PmtScore.score / 10, Integer), 9)
        for b, n, p in session.execute(
                select(bucket, func.count(), func.sum(case((PmtScore.score <= cutoff, 1), else_=0)))
                .where(PmtScore.model_id == model.id, *_in(PmtScore.district_id, scope)).group_by(bucket)):
            bands[int(b)] = int(n)
            scored += int(n)
            poor += int(p or 0)
    pmt_bands = [{"low": 10 * b, "high": 10 * b + 10, "households": bands.get(b, 0)} for b in range(10)]

    # the maintained counts (programs.counts), not a COUNT over a million enrolments
    enrolment = {code: {"code": code, "enrolled": by.get("enrolled", 0), "waiting": by.get("waiting", 0)}
                 for code, by in enrolment_counts.by_program(session, scope).items()
                 if by.get("enrolled") or by.get("waiting")}

    start, quarter = quarter_of(today)
    paid, paid_n = session.execute(
        select(func.coalesce(func.sum(PaymentInstruction.amount), 0), func.count())
        .where(PaymentInstruction.status == "paid", PaymentInstruction.status_on >= start,
               PaymentInstruction.status_on <= today, *_in(PaymentInstruction.district_id, scope))).one()

    newest = (select(BenefitCycle.id).join(Payroll, Payroll.cycle_id == BenefitCycle.id)
              .order_by(BenefitCycle.starts_on.desc(), BenefitCycle.id.desc()).limit(CYCLES_SHOWN).subquery())
    by_cycle: dict[int, dict] = {}
    for cid, code, period, starts, status, n in session.execute(
            select(BenefitCycle.id, BenefitCycle.program_code, BenefitCycle.period, BenefitCycle.starts_on,
                   PaymentInstruction.status, func.count())
            .join(Payroll, Payroll.cycle_id == BenefitCycle.id)
            .join(PaymentInstruction, PaymentInstruction.payroll_id == Payroll.id)
            .where(BenefitCycle.id.in_(select(newest.c.id)), *_in(PaymentInstruction.district_id, scope))
            .group_by(BenefitCycle.id, BenefitCycle.program_code, BenefitCycle.period, BenefitCycle.starts_on,
                      PaymentInstruction.status)):
        row = by_cycle.setdefault(cid, {"cycle_id": cid, "program": code, "period": period, "starts_on": starts,
                                        "counts": {}})
        row["counts"][status] = int(n)
    cycles = sorted(by_cycle.values(), key=lambda r: (r["starts_on"], r["cycle_id"]))

    last_delivery = session.scalar(select(func.max(FeedDelivery.received_at)))
    return Figures(households=int(households), people=people, scored=scored, poor=poor, poor_cutoff=cutoff,
                   verified_recently=int(fresh), enrolment=sorted(enrolment.values(), key=lambda r: r["code"]),
                   pmt_bands=pmt_bands, paid_quarter=float(paid), paid_quarter_count=int(paid_n), quarter=quarter,
                   payments_by_cycle=cycles, last_delivery=last_delivery)


__all__ = ["Queue", "Figures", "queues", "count_queue", "figures", "poor_cutoff", "quarter_of", "LATE_DAYS",
           "ROLE_QUEUES"]
