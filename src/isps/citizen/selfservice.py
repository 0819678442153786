"""What a signed-in citizen sees and does on their own pages (``/my``): their household's standing
with the reasons, their applications and grievances with their steps, recent messages; filing a
grievance, confirming or reopening a resolved one, the quarterly employment report, applying for a
program, and opting out of (or back into) messages.

Every function takes the :class:`isps.citizen.signin.Citizen` of the session: what it reads and
changes is that person's household only, and every read and action is audited with the actor
``citizen:<masked CNIC>`` on channel ``web``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.access.service import audit
from isps.citizen import applications, grievances, receipts, standing as standing_of
from isps.citizen.grievances.models import Grievance
from isps.citizen.signin import CHANNEL, Citizen
from isps.labour import reports as labour_reports
from isps.labour.models import LabourPerson
from isps.labour.status import LabourError
from isps.labour.vocab import REPORTABLE
from isps.messaging import optout, queue
from isps.registry import current
from isps.registry.models import Individual


class SelfServiceError(ValueError):
    """A citizen's request refused; the message names the field and is safe to show."""


@dataclass
class Overview:
    citizen: Citizen
    standing: standing_of.Standing
    members: list[dict]
    applications: list[dict] = field(default_factory=list)
    grievances: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    on_labour_register: bool = False
    report_due: date | None = None
    opted_out: bool | None = None


def overview(session: Session, citizen: Citizen, lang: str = "en") -> Overview:
    s = standing_of.standing(session, citizen.household_id, lang=lang, reasons=True)
    members = [{"name": m.full_name, "relation": m.relation_to_head, "me": m.id == citizen.individual_id}
               for m in session.scalars(select(Individual).where(Individual.household_id == citizen.household_id,
                                                                 current.clause())
                                        .order_by(Individual.roster_line))]
    out = Overview(citizen, s, members)
    out.grievances = grievances.grievances_of(session, household_id=citizen.household_id, limit=20)
    mine = {x["id"] for x in out.grievances}
    out.grievances += [x for x in grievances.grievances_of(session, phone=citizen.phone, limit=20)
                       if x["id"] not in mine]
    out.applications = list(applications.applications_of(session, household_id=citizen.household_id))
    seen: dict[int, dict] = {}
    for row in (queue.messages_of(session, household_id=citizen.household_id, limit=10)
                + queue.messages_of(session, phone=citizen.phone, limit=10)):
        seen.setdefault(row["id"], row)
    out.messages = sorted(seen.values(), key=lambda r: r["id"], reverse=True)[:10]
    out.opted_out = optout.is_opted_out(session, citizen.phone)
    person = session.get(LabourPerson, citizen.individual_id)
    out.on_labour_register = person is not None
    out.report_due = person.report_due if person else None
    audit(session, citizen.principal, CHANNEL, "read", "household", citizen.household_id, citizen.district_id,
          detail="the citizen's own page")
    return out


def file_grievance(session: Session, citizen: Citizen, category: str, description: str, now: datetime,
                   lang: str = "en") -> str:
    """File a grievance for the citizen's household; returns its receipt."""
    g = grievances
    words = (description or "").strip()
    if len(words) < 5:
        raise SelfServiceError("description: say in a few words what went wrong")
    if category not in g.CATEGORIES:
        raise SelfServiceError(f"category: choose one of the list ({category[:30]!r} is not one)")
    outlet = None
    if category in g.service.AGENT_CATEGORIES:  # the agent is the household's last pickup outlet
        outlet = standing_of.last_outlet(session, citizen.household_id)
        if outlet is None:  # no agent known: what happened, without naming one
            category = "payment_partial" if category == "agent_deduction" else "other"
    try:
        row = g.file_grievance(session, None, channel="web", category=category, description=words[:2000],
                               district_id=citizen.district_id, phone=citizen.phone, complainant_name=citizen.name,
                               household_id=citizen.household_id, individual_id=citizen.individual_id,
                               outlet_id=outlet, actor=citizen.principal.username, now=now, lang=lang)
    except g.GrievanceError as exc:
        raise SelfServiceError(str(exc)) from None
    audit(session, citizen.principal, CHANNEL, "file", "grievance", row.id, citizen.district_id,
          detail=f"grievance {category} filed on the citizen's page")
    return receipts.make("grievance", row.id)


def confirm_grievance(session: Session, citizen: Citizen, grievance_id: int, satisfied: bool, note: str,
                      now: datetime) -> None:
    """The citizen's word on a resolved grievance of their own household: closed or reopened."""
    g = grievances
    row = session.get(Grievance, grievance_id)
    if row is None or (row.household_id != citizen.household_id and row.phone != citizen.phone):
        audit(session, citizen.principal, CHANNEL, "confirm", "grievance", grievance_id, citizen.district_id,
              outcome="denied", detail="not a grievance of the citizen's household")
        raise SelfServiceError(f"grievance {grievance_id}: not one of yours")
    try:
        g.confirm(session, grievance_id, citizen.principal.username, satisfied, note or None, now=now)
    except g.GrievanceError as exc:
        raise SelfServiceError(str(exc)) from None
    audit(session, citizen.principal, CHANNEL, "confirm" if satisfied else "reopen", "grievance", grievance_id,
          citizen.district_id, detail="the citizen is satisfied" if satisfied else "the citizen reopened it")


def report_work(session: Session, citizen: Citizen, status: str, on: date) -> date | None:
    """The quarterly employment self-report; returns when the next one is due."""
    if status not in REPORTABLE:
        raise SelfServiceError(f"status: choose one of the list ({status[:30]!r} is not one)")
    if session.get(LabourPerson, citizen.individual_id) is None:
        raise SelfServiceError("you are not on a labour register: visit a One Window counter to register")
    try:
        with session.begin_nested():
            labour_reports.report_status(session, citizen.individual_id, status, on, citizen.principal.username,
                                         channel="web")
    except LabourError as exc:
        raise SelfServiceError(str(exc)) from None
    audit(session, citizen.principal, CHANNEL, "record", "individual", citizen.individual_id, citizen.district_id,
          detail=f"quarterly work report on the citizen's page: {status}")
    return labour_reports.next_due(session, citizen.individual_id)


def receipt_status(session: Session, kind: str, record_id: int) -> dict | None:
    """A receipt's public status (no personal data), from the service that owns the record."""
    owner = applications if kind == "application" else grievances
    return owner.status_of(session, record_id)


def local_phone(phone: str) -> str:
    """``923001234567`` as the One Window writes it, ``03001234567``."""
    return "0" + phone[2:] if phone.startswith("92") and len(phone) == 12 else phone


def programs_to_apply(session: Session, citizen: Citizen) -> list[str]:
    """The programs ISPS enrols into that the household is not already in (or waiting for)."""
    from isps.programs import enrolment as en
    from isps.programs.models import EnrolmentPolicy

    codes = set(en.DEFAULT_POLICIES) | set(session.scalars(select(EnrolmentPolicy.program_code)))
    s = standing_of.standing(session, citizen.household_id)
    have = {p.code for p in s.enrolled if p.status != "listed"}
    return sorted(codes - have)


def apply(session: Session, citizen: Citizen, program_code: str, now: datetime) -> str:
    """An application for a program (kind ``program``, channel ``web``); returns its receipt."""
    a = applications
    if program_code not in programs_to_apply(session, citizen):
        raise SelfServiceError(f"program: choose one of the list ({program_code[:40]!r} is not one)")
    try:
        with session.begin_nested():
            app = a.open_application(session, None, kind="program", channel="web", district_id=citizen.district_id,
                                     applicant_name=citizen.name, phone=local_phone(citizen.phone),
                                     household_id=citizen.household_id, individual_id=citizen.individual_id,
                                     program_code=program_code, actor=citizen.principal.username, now=now)
    except a.ApplicationError as exc:
        raise SelfServiceError(str(exc)) from None
    audit(session, citizen.principal, CHANNEL, "create", "application", app.id, citizen.district_id,
          detail=f"application for {program_code} on the citizen's page")
    return receipts.make("application", app.id)


def register(session: Session, *, phone: str, district_id: int, household: dict, members: list[dict],
             address: str | None, now: datetime) -> str:
    """A household's own request to be registered: a registration application (channel ``web``,
    the registry's source ``self_report`` once verified) awaiting a district officer's verification.
    Limited like the sign-in codes (per phone and per address); returns the receipt."""
    from isps.citizen import signin

    a = applications
    key = signin.address_key(address)
    since = now - signin.WINDOW
    if (signin._count(session, signin.CitizenCode.phone, phone, since) >= signin.PHONE_LIMIT
            or signin._count(session, signin.CitizenCode.address, key, since) >= signin.ADDRESS_LIMIT):
        raise SelfServiceError("too many requests from this phone or connection: wait a quarter of an hour")
    head = members[0] if members else {}
    name = str(head.get("full_name") or "").strip()
    actor = f"web:{local_phone(phone)[:4]}*****{phone[-2:]}"
    try:
        with session.begin_nested():
            app = a.open_application(session, None, kind="registration", channel="web", district_id=district_id,
                                     applicant_name=name or "-", phone=local_phone(phone),
                                     details={"household": household, "members": members}, actor=actor, now=now)
    except a.ApplicationError as exc:
        raise SelfServiceError(str(exc)) from None
    session.add(signin.CitizenCode(phone=phone, cnic=(head.get("cnic") or "").replace("-", "")[:13] or "-",
                                   address=key, individual_id=None, sent=False, created_at=now, expires_at=now,
                                   tries=0, used_at=now))
    from isps.access.service import Principal

    audit(session, Principal(actor, signin.ROLE, district_id), CHANNEL, "register", "application", app.id,
          district_id, detail="a household's own registration request on the web")
    return receipts.make("application", app.id)


def set_messages(session: Session, citizen: Citizen, wanted: bool) -> bool:
    """Opt the citizen's phone out of messages (``wanted`` False) or back in; returns whether it changed."""
    via = f"web:{citizen.principal.username}"
    changed = (optout.opt_in if wanted else optout.opt_out)(session, citizen.phone, via)
    audit(session, citizen.principal, CHANNEL, "opt_in" if wanted else "opt_out", "individual",
          citizen.individual_id, citizen.district_id,
          detail=("messages wanted again" if wanted else "no more messages") + ("" if changed else " (no change)"))
    return changed
