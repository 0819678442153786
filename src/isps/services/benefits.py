"""Everything the state gives a household, for the citizen screen: per member, every program they
are in, ISPS enrolments (status, since, channel) and partners' lists (linkage's resolved beneficiary
lines: program, agency, yearly amount, list date), and per enrolment its newest payments (cycle,
amount, status and the day it took that status, channel).

A few set-based reads for the whole household, whatever its size: the enrolments (by household),
the newest :data:`PAYMENTS_SHOWN` payments of each (one windowed query over the household's
enrolments, with each enrolment's count), and the partner lines (by household). The caller opens
the household through :mod:`isps.services.household_file` (scope and audit) first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from isps.linkage.models import Beneficiary, BeneficiaryBatch
from isps.payments.models import PaymentInstruction
from isps.programs.models import BenefitCycle, Enrolment, Entitlement

PAYMENTS_SHOWN = 12
PAYMENT_PAGE = 50


@dataclass
class Payment:
    id: int
    period: str
    amount: float
    status: str
    status_on: date | None
    channel: str
    attempt: int


@dataclass
class ProgramLine:
    source: str                       # isps | partner
    program_code: str
    individual_id: int                # 0: the household as a whole
    status: str | None = None
    since: date | None = None
    channel: str | None = None
    enrolment_id: int | None = None
    payments: list[Payment] = field(default_factory=list)
    payments_total: int = 0
    partner: str | None = None
    amount: float | None = None
    list_date: date | None = None
    list_reference: str | None = None
    recipient_id: int | None = None   # who collects an enrolment's payments


def _payments(session: Session, enrolment_ids: list[int], limit: int) -> tuple[dict[int, list[Payment]], dict[int, int]]:
    if not enrolment_ids:
        return {}, {}
    rank = func.row_number().over(partition_by=PaymentInstruction.enrolment_id,
                                  order_by=PaymentInstruction.id.desc()).label("rank")
    total = func.count().over(partition_by=PaymentInstruction.enrolment_id).label("total")
    inner = (select(PaymentInstruction.id, PaymentInstruction.enrolment_id, PaymentInstruction.amount,
                    PaymentInstruction.status, PaymentInstruction.status_on, PaymentInstruction.channel,
                    PaymentInstruction.attempt, BenefitCycle.period, rank, total)
             .join(Entitlement, Entitlement.id == PaymentInstruction.entitlement_id)
             .join(BenefitCycle, BenefitCycle.id == Entitlement.cycle_id)
             .where(PaymentInstruction.enrolment_id.in_(enrolment_ids))).subquery()
    rows = session.execute(select(inner).where(inner.c.rank <= limit)
                           .order_by(inner.c.enrolment_id, inner.c.rank)).all()
    out: dict[int, list[Payment]] = {}
    counts: dict[int, int] = {}
    for r in rows:
        out.setdefault(r.enrolment_id, []).append(Payment(r.id, r.period, float(r.amount), r.status, r.status_on,
                                                          r.channel, r.attempt))
        counts[r.enrolment_id] = int(r.total)
    return out, counts


def household_benefits(session: Session, household_id: int, payments_shown: int = PAYMENTS_SHOWN) -> list[ProgramLine]:
    """Every program line of the household (ISPS enrolments first, then partner lists), each with the
    member it is for (0: the household) and, for an enrolment, its newest payments."""
    lines = []
    enrolments = session.scalars(select(Enrolment).where(Enrolment.household_id == household_id)
                                 .order_by(Enrolment.id)).all()
    payments, counts = _payments(session, [e.id for e in enrolments], payments_shown)
    for e in enrolments:
        lines.append(ProgramLine("isps", e.program_code, e.individual_id or 0, e.status,
                                 e.enrolled_on or e.listed_on, e.channel, e.id, payments.get(e.id, []),
                                 counts.get(e.id, 0), recipient_id=e.recipient_id))
    partner = session.execute(
        select(Beneficiary.program_code, Beneficiary.individual_id, Beneficiary.yearly_value,
               BeneficiaryBatch.partner, BeneficiaryBatch.received_at, BeneficiaryBatch.reference)
        .join(BeneficiaryBatch, BeneficiaryBatch.id == Beneficiary.batch_id)
        .where(Beneficiary.household_id == household_id).order_by(Beneficiary.id)).all()
    for p in partner:
        lines.append(ProgramLine("partner", p.program_code, p.individual_id or 0, partner=p.partner,
                                 amount=p.yearly_value, list_date=p.received_at.date() if p.received_at else None,
                                 list_reference=p.reference))
    return lines


def enrolment_payments(session: Session, enrolment_id: int, after: int | None = None,
                       limit: int = PAYMENT_PAGE) -> tuple[list[Payment], int | None, int]:
    """All the payments of one enrolment, newest first, a page at a time (keyset: before the last id
    shown), with their total."""
    q = (select(PaymentInstruction.id, PaymentInstruction.amount, PaymentInstruction.status,
                PaymentInstruction.status_on, PaymentInstruction.channel, PaymentInstruction.attempt,
                BenefitCycle.period)
         .join(Entitlement, Entitlement.id == PaymentInstruction.entitlement_id)
         .join(BenefitCycle, BenefitCycle.id == Entitlement.cycle_id)
         .where(PaymentInstruction.enrolment_id == enrolment_id))
    if after is not None:
        q = q.where(PaymentInstruction.id < after)
    rows = session.execute(q.order_by(PaymentInstruction.id.desc()).limit(limit + 1)).all()
    page = [Payment(r.id, r.period, float(r.amount), r.status, r.status_on, r.channel, r.attempt) for r in rows[:limit]]
    total = session.scalar(select(func.count()).select_from(PaymentInstruction)
                           .where(PaymentInstruction.enrolment_id == enrolment_id)) or 0
    return page, (page[-1].id if len(rows) > limit else None), total
