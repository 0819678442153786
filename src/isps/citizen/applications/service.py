"""An application's life, from its receipt to its final disposal.

Every kind has its steps as data (``citizen/data/application_steps.json``: name, owning role,
service-level days). Opening an application records it and its first step (``receive``, done by
the person who took it), and opens the next. Each later step is done by a second person (never the
one who took the application) with the permission ``application.decide`` in the application's
district. A step past its due time is escalated one level up (:func:`escalate_late`, set-based, run
by the worker): its owner moves from the counter or the district officer to the program manager and
then the administrator, an event records it, and the step gets a new due time. Everything that
happens is an ``application_event`` row, never updated.

Kinds: ``registration`` (a never-surveyed household: staged, verified by a second person or a
survey visit, written to the registry, scored through the events, disposed "registered"),
``program`` and ``referral`` (decided through the one enrolment path, disposed enrolled, waiting or
refused with the enrolment's reason), ``change`` (wraps a change request of the NSER Plus updates;
disposed when that request is decided, through the ``change_request.decided`` event).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session

from isps.access.service import Principal
from isps.citizen import receipts
from isps.citizen.applications import registration
from isps.citizen.applications.models import Application, ApplicationEvent, ApplicationStep
from isps.registry import cnic as cnic_rules
from isps.registry import events
from isps.registry.models import District, Household, Individual

KINDS = ("registration", "program", "change", "referral")
CHANNELS = ("counter", "web", "sms", "survey")
STATUSES = ("open", "disposed")
DISPOSALS = ("registered", "enrolled", "waiting", "refused", "approved", "rejected", "withdrawn")
# the hierarchy a late step climbs, one level at a time
ESCALATION = {"system": "district_officer", "counter_operator": "district_officer",
              "grievance_officer": "district_officer", "district_officer": "program_manager",
              "program_manager": "administrator"}
TOP = "administrator"
CONSUMER = "citizen.applications"
DECIDED = "change_request.decided"  # recorded by interop.feeds.changes when a request is approved or rejected
APPEALS = ("pmt_score", "exclusion", "data")
MAX_KEY = 2**63 - 1
STEPS_FILE = Path(__file__).resolve().parent.parent / "data" / "application_steps.json"


class ApplicationError(ValueError):
    """An application that cannot be opened or acted on; the message names the field and is safe to show."""


class OutOfScope(PermissionError):
    """The application lies outside the user's district."""


class NotAllowed(PermissionError):
    """The user's role may not do this step."""


@lru_cache(maxsize=1)
def steps_of() -> dict[str, list[dict]]:
    data = json.loads(STEPS_FILE.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if k in KINDS}


def _sla_days() -> dict[str, int]:
    """Service-level days per step name (at least one day after an escalation)."""
    out: dict[str, int] = {}
    for steps in steps_of().values():
        for s in steps:
            out[s["name"]] = max(out.get(s["name"], 1), int(s["days"]), 1)
    return out


def _actor(who: Principal | None, actor: str | None) -> str:
    if who is not None:
        return who.username
    if not actor:
        raise ApplicationError("actor: an application from a citizen's own channel names it (sms:… or web:…)")
    return actor[:80]


def _event(session: Session, application_id: int, at: datetime, actor: str, what: str, step: str | None = None,
           detail: str | None = None) -> None:
    session.add(ApplicationEvent(application_id=application_id, at=at, actor=actor[:80], what=what, step=step,
                                 detail=(detail or None) and detail[:400]))


def _open_step(session: Session, app: Application, seq: int, now: datetime) -> ApplicationStep | None:
    steps = steps_of()[app.kind]
    if seq >= len(steps):
        app.step = None
        return None
    spec = steps[seq]
    row = ApplicationStep(application_id=app.id, district_id=app.district_id, seq=seq, name=spec["name"],
                          owner_role=spec["role"], due_at=now + timedelta(days=int(spec["days"])),
                          escalation_level=0)
    session.add(row)
    app.step = spec["name"]
    return row


def current_step(session: Session, application_id: int) -> ApplicationStep | None:
    return session.scalar(select(ApplicationStep).where(ApplicationStep.application_id == application_id,
                                                        ApplicationStep.done_at.is_(None))
                          .order_by(ApplicationStep.seq).limit(1))


def _finish_step(session: Session, app: Application, step: ApplicationStep, actor: str, outcome: str,
                 note: str | None, now: datetime, open_next: bool = True) -> ApplicationStep | None:
    step.done_at, step.done_by, step.outcome = now, actor[:80], outcome
    if note:
        step.note = note[:400]
    _event(session, app.id, now, actor, "step_done", step.name, f"{outcome}" + (f": {note}" if note else ""))
    session.flush()
    return _open_step(session, app, step.seq + 1, now) if open_next else None


def _dispose(session: Session, app: Application, disposal: str, reason: str, actor: str, now: datetime) -> None:
    if disposal not in DISPOSALS:
        raise ApplicationError(f"disposal must be one of {', '.join(DISPOSALS)}")
    session.execute(update(ApplicationStep).where(ApplicationStep.application_id == app.id,
                                                  ApplicationStep.done_at.is_(None))
                    .values(done_at=now, done_by=actor[:80], outcome="closed"))
    app.status, app.step, app.disposal, app.disposal_reason = "disposed", None, disposal, reason[:400]
    app.disposed_by, app.disposed_at = actor[:80], now
    _event(session, app.id, now, actor, "disposed", None, f"{disposal}: {reason}")


# ---------------------------------------------------------------- opening

def _check_phone(phone: str | None) -> str | None:
    """A mobile number in any usual writing (``messaging.phones``), kept as ``03XXXXXXXXX`` (as the registry)."""
    from isps.messaging.phones import PhoneError, normalise

    if phone is None or not phone.strip():
        return None
    try:
        return "0" + normalise(phone)[2:]
    except PhoneError:
        raise ApplicationError("phone must be a Pakistani mobile number written 03XXXXXXXXX") from None


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("applicant_name is required")
    if len(name) > 80 or name[:1] in "=+-@" or any(ord(c) < 32 for c in name):
        raise ApplicationError("applicant_name must be a name of at most 80 characters")
    return name


def open_application(session: Session, who: Principal | None, *, kind: str, channel: str, district_id: int,
                     applicant_name: str, phone: str | None = None, household_id: int | None = None,
                     individual_id: int | None = None, program_code: str | None = None,
                     details: dict | None = None, evidence: list[dict] | None = None,
                     actor: str | None = None, now: datetime | None = None) -> Application:
    """Record an application and its first step (received, by ``who`` or the citizen's channel).

    ``registration``: ``details = {"household": {...}, "members": [{...}, ...]}`` staged after the
    registry's field rules; ``program``/``referral``: a household (and member) and ``program_code``
    (``details["referred_by"]`` for a referral: the service or person who referred); ``change``:
    ``details = {"entity": "household"|"individual", "entity_id": ..., "changes": {...},
    "appeal": "pmt_score"|"exclusion"|"data", "note": ...}`` with evidence, wrapping a change request."""
    now = now or datetime.now()
    by = _actor(who, actor)
    if kind not in KINDS:
        raise ApplicationError(f"kind must be one of {', '.join(KINDS)}")
    if channel not in CHANNELS:
        raise ApplicationError(f"channel must be one of {', '.join(CHANNELS)}")
    if who is not None:
        if not who.can("application.take"):
            raise NotAllowed(f"a {who.role.replace('_', ' ')} may not take an application")
        if who.scope is not None and who.scope != district_id:
            raise OutOfScope(f"district {district_id} is outside your district")
    for name, value in (("household_id", household_id), ("individual_id", individual_id)):
        if value is not None and not 0 < value < MAX_KEY:
            raise ApplicationError(f"{name}: {value} is not a record id")
    if not 0 < district_id < 100 or session.get(District, district_id) is None:
        raise ApplicationError(f"district_id {district_id} is not a district of Punjab")
    name = _check_name(applicant_name)
    phone = _check_phone(phone)
    try:
        evidence = registration.check_evidence(evidence)
    except registration.RegistrationError as exc:
        raise ApplicationError(str(exc)) from None
    details = dict(details or {})
    referred_by = None
    change_request_id = None
    if kind == "registration":
        if household_id is not None:
            raise ApplicationError("household_id: a registration is for a household not yet in the registry; "
                                   "apply for a change of a registered one")
        try:
            staged = {"household": registration.check_household(session, district_id, details.get("household") or {}),
                      "members": registration.check_members(session, list(details.get("members") or []))}
        except registration.RegistrationError as exc:
            raise ApplicationError(str(exc)) from None
        details = staged
        if channel in ("counter", "survey") and not evidence:
            raise ApplicationError("evidence: a registration at the counter records at least one document seen "
                                   "(its kind and reference), e.g. the head's CNIC")
    else:
        household = session.get(Household, household_id) if household_id is not None else None
        if household is None:
            raise ApplicationError(f"household_id: household {household_id} is not in the registry")
        if household.district_id != district_id:
            raise ApplicationError(f"household_id: household {household.ref} is in district {household.district_id}, "
                                   f"not {district_id}")
        if individual_id is not None:
            person = session.get(Individual, individual_id)
            if person is None or person.household_id != household_id or person.date_of_death is not None:
                raise ApplicationError(f"individual_id: {individual_id} is not a living member of household "
                                       f"{household.ref}")
    if kind in ("program", "referral"):
        from isps.programs import enrolment as en
        if not program_code or program_code not in _enrolling_programs(session):
            raise ApplicationError(f"program_code: '{(program_code or '')[:40]}' is not a program ISPS enrols into")
        unit = en.policy(session, program_code).unit
        if unit == "member" and individual_id is None:
            raise ApplicationError(f"individual_id: {program_code} enrols a person: choose the member it is for")
        if kind == "referral":
            referred_by = str(details.get("referred_by") or by).strip()[:80]
    if kind == "change":
        change_request_id = _request_change(session, by, channel, household_id, details, evidence, now)
    app = Application(kind=kind, channel=channel, status="open", district_id=district_id, household_id=household_id,
                      individual_id=individual_id, program_code=program_code if kind in ("program", "referral") else None,
                      applicant_name=name, phone=phone, details=details or None, evidence=evidence or None,
                      referred_by=referred_by, opened_by=by, opened_at=now, change_request_id=change_request_id)
    session.add(app)
    session.flush()
    _event(session, app.id, now, by, "opened", None,
           f"{kind} by {channel}" + (f" for {program_code}" if app.program_code else "")
           + (f", referred by {referred_by}" if referred_by else ""))
    first = _open_step(session, app, 0, now)
    _finish_step(session, app, first, by, "received", None, now)
    session.flush()
    _queue_receipt(session, app)
    return app


def _enrolling_programs(session: Session) -> set[str]:
    from isps.programs import enrolment as en
    from isps.programs.models import EnrolmentPolicy

    return set(en.DEFAULT_POLICIES) | set(session.scalars(select(EnrolmentPolicy.program_code)))


def _request_change(session: Session, by: str, channel: str, household_id: int, details: dict,
                    evidence: list[dict], now: datetime) -> int:
    from isps.interop.feeds import changes
    from isps.registry.service import OutOfScope as RegistryScope

    entity = details.get("entity") or "household"
    appeal = details.get("appeal") or "data"
    if appeal not in APPEALS:
        raise ApplicationError(f"appeal must be one of {', '.join(APPEALS)}")
    if entity not in ("household", "individual"):
        raise ApplicationError("entity: a change is about the household or one of its members")
    try:
        entity_id = int(details.get("entity_id") or household_id)
    except (TypeError, ValueError):
        raise ApplicationError("entity_id: choose the member the change is about") from None
    if not 0 < entity_id < MAX_KEY:
        raise ApplicationError("entity_id: choose the member the change is about")
    if entity == "individual":
        owner = session.execute(text("SELECT household_id FROM individual WHERE id = :i"), {"i": entity_id}).scalar()
        if owner != household_id:
            raise ApplicationError(f"entity_id: {entity_id} is not a member of household {household_id}")
    elif entity_id != household_id:
        raise ApplicationError("entity_id: a household change is about the application's household")
    wanted = {str(k): v for k, v in (details.get("changes") or {}).items() if str(v).strip() != ""}
    if not wanted:
        raise ApplicationError("changes: name at least one field and its new value")
    if not evidence:
        raise ApplicationError("evidence: a change or an appeal needs at least one document seen (kind and reference)")
    said = "; ".join(f"{e['kind']} {e['reference']}" for e in evidence)
    note = str(details.get("note") or "").strip()
    try:
        row = changes.request_change(session, entity=entity, entity_id=entity_id, changes=wanted,
                                     source="operator" if channel in ("counter", "survey") else "self_report",
                                     evidence=(f"{appeal} appeal: " if appeal != "data" else "") + (note or said),
                                     requested_by=by, evidence_ref=said[:200], effective_date=now.date())
    except RegistryScope as exc:
        raise ApplicationError(str(exc)) from None
    except changes.ChangeRequestError as exc:
        raise ApplicationError(f"changes: {exc}") from None
    details.update(entity=entity, entity_id=entity_id, changes={k: str(v) for k, v in wanted.items()}, appeal=appeal)
    if entity == "individual" and "cnic" in details["changes"]:
        details["changes"]["cnic"] = cnic_rules.mask(cnic_rules.normalise(details["changes"]["cnic"])) \
            if len("".join(c for c in details["changes"]["cnic"] if c.isdigit())) == 13 else "*****"
    return row.id


def _queue_receipt(session: Session, app: Application, lang: str = "ur") -> bool:
    """The receipt by SMS, through the one outbound queue (``isps.messaging.queue``), once per
    application (its key ``receipt:OW…``). Without a phone, nothing is sent. Returns whether a
    message was queued (or was already)."""
    from isps.messaging.gateways import SHORT_CODE
    from isps.messaging.queue import enqueue

    if not app.phone:
        return False
    number = receipts.make("application", app.id)
    kind = {"registration": ("رجسٹریشن", "registration"), "program": ("پروگرام", "program"),
            "referral": ("ریفرل", "referral"), "change": ("تبدیلی", "change")}[app.kind]
    if lang == "ur":
        body = (f"ISPS ون ونڈو: آپ کی درخواست ({kind[0]}) موصول ہو گئی۔ رسید نمبر {number}۔ "
                f"حالت جاننے کے لیے یہ نمبر {SHORT_CODE} پر بھیجیں۔")
    else:
        body = (f"ISPS One Window: your {kind[1]} application is received. Receipt {number}. "
                f"Text this number to {SHORT_CODE} to know its status.")
    enqueue(session, kind="receipt", phone=app.phone, text=body, key=f"receipt:{number}", lang=lang,
            individual_id=app.individual_id, household_id=app.household_id, district_id=app.district_id)
    return True


# ---------------------------------------------------------------- reading

def get(session: Session, who: Principal, application_id: int) -> Application | None:
    """One application for a signed-in user: ``OutOfScope`` outside their district."""
    app = session.get(Application, application_id)
    if app is not None and who.scope is not None and app.district_id != who.scope:
        raise OutOfScope(f"application {application_id} is outside your district")
    return app


def steps(session: Session, application_id: int) -> list[ApplicationStep]:
    return list(session.scalars(select(ApplicationStep).where(ApplicationStep.application_id == application_id)
                                .order_by(ApplicationStep.seq)))


def history(session: Session, application_id: int) -> list[ApplicationEvent]:
    return list(session.scalars(select(ApplicationEvent).where(ApplicationEvent.application_id == application_id)
                                .order_by(ApplicationEvent.id)))


def _public(app: Application, step: ApplicationStep | None) -> dict:
    return {"receipt": receipts.make("application", app.id), "kind": app.kind, "program": app.program_code,
            "status": app.status, "step": step.name if step else None,
            "step_due": step.due_at.isoformat(timespec="minutes") if step else None,
            "disposal": app.disposal, "disposal_reason": app.disposal_reason,
            "opened_at": app.opened_at.isoformat(timespec="minutes"),
            "disposed_at": app.disposed_at.isoformat(timespec="minutes") if app.disposed_at else None}


def status_of(session: Session, application_id: int) -> dict | None:
    """What anyone holding the receipt may know: no name, no CNIC, no phone, no household."""
    app = session.get(Application, application_id)
    if app is None:
        return None
    return _public(app, current_step(session, application_id) if app.status == "open" else None)


def applications_of(session: Session, *, household_id: int | None = None, phone: str | None = None,
                    limit: int = 50) -> list[dict]:
    """A household's (or a phone's) applications, newest first, each as :func:`status_of` with its id."""
    if household_id is None and not phone:
        return []
    q = select(Application)
    if household_id is not None:
        q = q.where(Application.household_id == household_id)
    if phone:
        try:
            q = q.where(Application.phone == _check_phone(phone))
        except ApplicationError:
            return []
    apps = list(session.scalars(q.order_by(Application.id.desc()).limit(limit)))
    if not apps:
        return []
    open_steps = {s.application_id: s for s in session.scalars(
        select(ApplicationStep).where(ApplicationStep.application_id.in_([a.id for a in apps]),
                                      ApplicationStep.done_at.is_(None)).order_by(ApplicationStep.seq.desc()))}
    return [{"id": a.id, **_public(a, open_steps.get(a.id))} for a in apps]


# ---------------------------------------------------------------- acting on a step

def _checker(session: Session, who: Principal, application_id: int, step_name: str | tuple[str, ...],
             visitor: bool = False) -> tuple[Application, ApplicationStep]:
    """The application, its open step (which must be ``step_name``), for a second person who may decide
    or, with ``visitor``, for the field worker the step's visit is scheduled for (``step.owner``, who
    records the visit from the field with ``field.collect`` but decides nothing else)."""
    app = session.get(Application, application_id, with_for_update=True)
    if app is None:
        raise ApplicationError(f"application {application_id} does not exist")
    if who.scope is not None and app.district_id != who.scope:
        raise OutOfScope(f"application {application_id} is outside your district")
    deciding = who.can("application.decide")
    if not deciding and not (visitor and who.can("field.collect")):
        raise NotAllowed(f"a {who.role.replace('_', ' ')} may not decide an application's step")
    if app.status != "open":
        raise ApplicationError(f"application {receipts.make('application', app.id)} is already disposed "
                               f"({app.disposal})")
    step = current_step(session, app.id)
    names = (step_name,) if isinstance(step_name, str) else step_name
    if step is None or step.name not in names:
        raise ApplicationError(f"application {receipts.make('application', app.id)} is at step "
                               f"'{step.name if step else '—'}', not {' or '.join(names)}")
    if not deciding and (step.visit_on is None or step.owner != who.username):
        raise NotAllowed(f"application {receipts.make('application', app.id)}: the visit is scheduled for "
                         f"{step.owner or 'nobody'}, not {who.username}")
    if who.username == app.opened_by:
        raise ApplicationError(f"a second person must {step.name}: application "
                               f"{receipts.make('application', app.id)} was taken by {app.opened_by}, who cannot "
                               f"{step.name} it")
    return app, step


def verify(session: Session, who: Principal, application_id: int, note: str | None = None,
           now: datetime | None = None) -> Household:
    """A second person verifies a staged registration at the desk (documents checked): the household
    is written to the registry (source ``counter``, or ``self_report`` from the citizen's web
    channel), with its ``household.created`` event; the ``score`` step opens (done when the events
    are drained and the household is scored)."""
    app, step = _checker(session, who, application_id, "verify")
    return _register(session, app, step, who.username, "verified", note, now or datetime.now())


def _register(session: Session, app: Application, step: ApplicationStep, by: str, outcome: str,
              note: str | None, now: datetime) -> Household:
    from isps.registry.service import Provenance, RegistryError, register_household

    household, members = registration.as_registry(app.details or {}, app.district_id)
    source = "self_report" if app.channel == "web" else "counter"
    prov = Provenance(source, f"{app.opened_by} (verified by {by})", now.date(),
                      f"application {receipts.make('application', app.id)}")
    try:
        record = register_household(session, household, members, prov)
    except RegistryError as exc:
        raise ApplicationError(str(exc)) from None
    app.household_id = record.id
    app.individual_id = session.scalar(select(Individual.id).where(Individual.household_id == record.id,
                                                                   Individual.roster_line == 1))
    _event(session, app.id, now, by, "registered", step.name, f"household {record.ref}")
    _finish_step(session, app, step, by, outcome, note, now)
    return record


def schedule_visit(session: Session, who: Principal, application_id: int, visit_on: date, assignee: str,
                   note: str | None = None, now: datetime | None = None) -> ApplicationStep:
    """Instead of a desk check, a survey visit: its date and who goes; the step is then due the day after."""
    from isps.access.models import User

    now = now or datetime.now()
    app, step = _checker(session, who, application_id, "verify")
    if visit_on < now.date() or visit_on > now.date() + timedelta(days=90):
        raise ApplicationError("visit_on: a visit is scheduled from today to 90 days ahead")
    user = session.scalar(select(User).where(User.username == (assignee or "").strip()))
    if user is None or not user.active or (user.district_id not in (None, app.district_id)):
        raise ApplicationError(f"assignee: '{(assignee or '')[:40]}' is not an active user of this district")
    if user.username == app.opened_by:
        raise ApplicationError(f"assignee: {user.username} took the application; another person visits")
    step.owner, step.visit_on = user.username, visit_on
    step.due_at = datetime.combine(visit_on + timedelta(days=1), datetime.min.time())
    if note:
        step.note = note[:400]
    _event(session, app.id, now, who.username, "visit_scheduled", step.name,
           f"{visit_on.isoformat()} by {user.username}" + (f": {note}" if note else ""))
    return step


VISIT_OUTCOMES = ("confirmed", "not_found", "different")


def record_visit(session: Session, who: Principal, application_id: int, outcome: str, note: str | None = None,
                 now: datetime | None = None) -> Household | None:
    """The visit's outcome: ``confirmed`` registers the household as a desk verification would;
    ``not_found`` or ``different`` (the household is not as declared) disposes the application
    rejected with the note as its reason. Recorded by a second person who may decide, or by the
    visitor it was scheduled for (an enumerator, from the field: :mod:`isps.fieldwork.apply`)."""
    now = now or datetime.now()
    if outcome not in VISIT_OUTCOMES:
        raise ApplicationError(f"outcome must be one of {', '.join(VISIT_OUTCOMES)}")
    app, step = _checker(session, who, application_id, "verify", visitor=True)
    if step.visit_on is None:
        raise ApplicationError("no visit is scheduled for this application; schedule one or verify at the desk")
    _event(session, app.id, now, who.username, "visit_recorded", step.name, f"{outcome}" + (f": {note}" if note else ""))
    if outcome == "confirmed":
        return _register(session, app, step, who.username, "visit confirmed", note, now)
    if not note or not note.strip():
        raise ApplicationError("note: say what the visit found")
    _finish_step(session, app, step, who.username, outcome, note, now, open_next=False)
    _dispose(session, app, "rejected", f"survey visit: {outcome.replace('_', ' ')}: {note.strip()}", who.username, now)
    return None


def decide(session: Session, who: Principal, application_id: int, now: datetime | None = None) -> dict:
    """A program application or referral decided through the one enrolment path
    (``programs.enrolment.enrol_one``): disposed ``enrolled`` or ``waiting`` (the waiting list), or
    ``refused`` with the enrolment's reason (the other program, its agency, the list)."""
    from isps.programs import enrolment as en

    now = now or datetime.now()
    app, step = _checker(session, who, application_id, "decide")
    individual = app.individual_id or 0
    reason = (f"referred by {app.referred_by}; " if app.kind == "referral" else "") + \
        f"One Window application {receipts.make('application', app.id)}, decided by {who.username}"
    try:
        result, enrolment_id = en.enrol_one(session, app.program_code, app.household_id, individual, who.username,
                                            reason, on=now.date())
    except en.EnrolmentError as exc:
        raise ApplicationError(str(exc)) from None
    refusal = None
    if enrolment_id is not None:
        status = session.execute(text("SELECT status FROM enrolment WHERE id = :i"), {"i": enrolment_id}).scalar()
        disposal = "enrolled" if status == "enrolled" else "waiting"
        why = f"enrolment {enrolment_id}: {status}"
    elif result == "duplicate":
        disposal, why = "refused", f"already listed or enrolled in {app.program_code}"
    else:
        refusal = en.last_refusal(session, app.program_code, app.household_id, individual)
        disposal, why = "refused", (en.refusal_reason(refusal) if refusal else "kept off by another program")
    _finish_step(session, app, step, who.username, disposal, None, now, open_next=False)
    _dispose(session, app, disposal, why, who.username, now)
    return {"result": result, "disposal": disposal, "reason": why, "enrolment_id": enrolment_id, "refusal": refusal}


def dispose(session: Session, who: Principal, application_id: int, disposal: str, reason: str,
            now: datetime | None = None) -> Application:
    """Close an open application by hand: ``withdrawn`` (the citizen withdrew; the taker may record
    it) or ``rejected`` (a second person with ``application.decide``), always with a reason."""
    now = now or datetime.now()
    if disposal not in ("withdrawn", "rejected"):
        raise ApplicationError("disposal: by hand an application is withdrawn or rejected")
    if not reason or not reason.strip():
        raise ApplicationError("reason: a disposal needs its reason")
    if disposal == "withdrawn":
        app = session.get(Application, application_id, with_for_update=True)
        if app is None:
            raise ApplicationError(f"application {application_id} does not exist")
        if who.scope is not None and app.district_id != who.scope:
            raise OutOfScope(f"application {application_id} is outside your district")
        if not (who.can("application.take") or who.can("application.decide")):
            raise NotAllowed(f"a {who.role.replace('_', ' ')} may not withdraw an application")
        if app.status != "open":
            raise ApplicationError(f"application {receipts.make('application', app.id)} is already disposed")
    else:
        app, _ = _checker(session, who, application_id, ("verify", "decide", "review", "score"))
    if app.change_request_id is not None:
        raise ApplicationError("a change application is decided with its change request (Registry updates)")
    _dispose(session, app, disposal, reason.strip(), who.username, now)
    return app


def note(session: Session, who: Principal, application_id: int, text_: str, now: datetime | None = None) -> None:
    """A note in the application's history (a call made, a document asked for)."""
    app = get(session, who, application_id)
    if app is None:
        raise ApplicationError(f"application {application_id} does not exist")
    if not text_ or not text_.strip():
        raise ApplicationError("note: write the note")
    _event(session, app.id, now or datetime.now(), who.username, "note", app.step, text_.strip())


# ---------------------------------------------------------------- the worker's and the events' side

def escalate_late(session: Session, now: datetime) -> int:
    """Every open step past its due time moves one level up (owner role, the person cleared), with
    an event, and a new due time (its service-level days from now): set-based, two statements.
    Running it again at the same time does nothing more; a step owned by the administrator stays."""
    chain = " ".join(f"WHEN '{a}' THEN '{b}'" for a, b in ESCALATION.items())
    sla = _sla_days()
    due = " ".join(f"WHEN '{n}' THEN :due_{i}" for i, n in enumerate(sla))
    p = {"now": now, "top": TOP, "one_day": now + timedelta(days=1),
         **{f"due_{i}": now + timedelta(days=d) for i, d in enumerate(sla.values())}}
    late = ("done_at IS NULL AND due_at < :now AND owner_role <> :top AND EXISTS (SELECT 1 FROM application a "
            "WHERE a.id = application_step.application_id AND a.status = 'open')")
    session.execute(text(f"""INSERT INTO application_event (application_id, at, actor, what, step, detail)
        SELECT application_id, :now, 'system', 'escalated', name,
               'late since ' || SUBSTR(CAST(due_at AS VARCHAR), 1, 16) || ': ' || owner_role
               || COALESCE(' (' || owner || ')', '') || ' -> ' || CASE owner_role {chain} ELSE :top END
        FROM application_step WHERE {late}"""), p)
    moved = session.execute(text(f"""UPDATE application_step SET
            owner_role = CASE owner_role {chain} ELSE :top END, owner = NULL,
            escalation_level = escalation_level + 1,
            due_at = CASE name {due} ELSE :one_day END
        WHERE {late}"""), p).rowcount
    return int(moved or 0)


def process_events(session: Session, now: datetime | None = None) -> dict:
    """Dispose what the layers below decided: a change application whose change request was approved
    or rejected (``change_request.decided`` past this consumer's cursor), and a registration whose
    household is now scored by the active PMT model. Set-based; run by ``services.events.drain``."""
    from isps.targeting import pmt

    now = now or datetime.now()
    last = events.cursor(session, CONSUMER)
    upto = events.latest_event_id(session)
    decided = 0
    if upto > last:
        rows = session.execute(text("""SELECT aggregate_id FROM outbox_event WHERE id > :a AND id <= :b
            AND topic = :t"""), {"a": last, "b": upto, "t": DECIDED}).scalars().all()
        if rows:
            decided = _dispose_changes(session, [int(r) for r in rows], now)
        events.advance(session, CONSUMER, upto)
    registered = 0
    model = pmt.active_model(session)
    if model is not None:
        registered = _dispose_scored(session, model.id, now)
    return {"changes_disposed": decided, "registrations_disposed": registered}


def _ids(session: Session, sql: str, params: dict) -> list[int]:
    return [int(x) for x in session.execute(text(sql), params).scalars().all()]


def _close_set(session: Session, ids: list[int], now: datetime, outcome_sql: str, what_detail_sql: str,
               disposal_sql: str, reason_sql: str, params: dict) -> None:
    """Close the open steps of the applications ``ids``, record the step and the disposal in their
    history and dispose them: four statements for the whole set."""
    p = {"ids": ids, "now": now, **params}
    exp = bindparam("ids", expanding=True)
    session.execute(text(f"""INSERT INTO application_event (application_id, at, actor, what, step, detail)
        SELECT s.application_id, :now, 'system', 'step_done', s.name, {what_detail_sql}
        FROM application_step s JOIN application a ON a.id = s.application_id
        WHERE s.application_id IN :ids AND s.done_at IS NULL""").bindparams(exp), p)
    session.execute(text(f"""UPDATE application_step SET done_at = :now, done_by = 'system',
        outcome = {outcome_sql} WHERE application_id IN :ids AND done_at IS NULL""").bindparams(exp), p)
    session.execute(text(f"""UPDATE application SET status = 'disposed', step = NULL, disposal = {disposal_sql},
        disposal_reason = SUBSTR({reason_sql}, 1, 400), disposed_by = 'system', disposed_at = :now
        WHERE id IN :ids AND status = 'open'""").bindparams(exp), p)
    session.execute(text("""INSERT INTO application_event (application_id, at, actor, what, step, detail)
        SELECT a.id, :now, 'system', 'disposed', NULL, SUBSTR(a.disposal || ': ' || COALESCE(a.disposal_reason, ''), 1, 400)
        FROM application a WHERE a.id IN :ids""").bindparams(exp), p)


def _dispose_changes(session: Session, request_ids: list[int], now: datetime) -> int:
    exp = bindparam("r", expanding=True)
    ids = [int(x) for x in session.execute(text("""SELECT a.id FROM application a JOIN change_request c
        ON c.id = a.change_request_id WHERE a.status = 'open' AND a.change_request_id IN :r
        AND c.status IN ('applied', 'rejected')""").bindparams(exp), {"r": request_ids}).scalars()]
    if not ids:
        return 0
    status = "(SELECT c.status FROM change_request c WHERE c.id = application.change_request_id)"
    note = "(SELECT c.decision_note FROM change_request c WHERE c.id = application.change_request_id)"
    by = "(SELECT c.decided_by FROM change_request c WHERE c.id = application.change_request_id)"
    _close_set(session, ids, now,
               outcome_sql=("(SELECT CASE c.status WHEN 'applied' THEN 'approved' ELSE 'rejected' END FROM application a "
                            "JOIN change_request c ON c.id = a.change_request_id WHERE a.id = application_step.application_id)"),
               what_detail_sql="'change request ' || CAST(a.change_request_id AS VARCHAR) || ' decided'",
               disposal_sql=f"CASE {status} WHEN 'applied' THEN 'approved' ELSE 'rejected' END",
               reason_sql=(f"'change request ' || CAST(change_request_id AS VARCHAR) || ' ' || {status} || ' by ' || "
                           f"COALESCE({by}, '') || COALESCE(': ' || {note}, '')"), params={})
    return len(ids)


def _dispose_scored(session: Session, model_id: int, now: datetime) -> int:
    ids = _ids(session, """SELECT a.id FROM application a
        JOIN application_step s ON s.application_id = a.id AND s.name = 'score' AND s.done_at IS NULL
        JOIN pmt_score p ON p.household_id = a.household_id AND p.model_id = :m
        WHERE a.status = 'open' AND a.kind = 'registration'""", {"m": model_id})
    if not ids:
        return 0
    _close_set(session, ids, now, outcome_sql="'scored'",
               what_detail_sql="'scored by PMT model ' || CAST(:m AS VARCHAR)",
               disposal_sql="'registered'",
               reason_sql="'household ' || (SELECT h.ref FROM household h WHERE h.id = application.household_id)",
               params={"m": model_id})
    return len(ids)


# ---------------------------------------------------------------- the list (keyset, filters, sorts)

SORTS = {"id": Application.id, "opened": Application.opened_at, "kind": Application.kind,
         "district": Application.district_id, "step": Application.step, "status": Application.status}
MAX_PAGE = 10_000


def _listed(*, district_id: int | None, kind: str | None, status: str | None, step: str | None,
            late: bool, program: str | None, household_id: int | None, now: datetime):
    q = select(Application)
    if district_id is not None:
        q = q.where(Application.district_id == district_id)
    if kind:
        q = q.where(Application.kind == kind)
    if status:
        q = q.where(Application.status == status)
    if step:
        q = q.where(Application.step == step)
    if program:
        q = q.where(Application.program_code == program)
    if household_id is not None:
        q = q.where(Application.household_id == household_id)
    if late:
        q = q.where(select(ApplicationStep.id).where(ApplicationStep.application_id == Application.id,
                                                     ApplicationStep.done_at.is_(None),
                                                     ApplicationStep.due_at < now).exists())
    return q


def listing(session: Session, *, district_id: int | None = None, kind: str | None = None, status: str | None = None,
            step: str | None = None, late: bool = False, program: str | None = None,
            household_id: int | None = None, after: int | None = None, limit: int = 50,
            sort=None, now: datetime | None = None) -> list[Application]:
    """A page of applications in the chosen order (:data:`SORTS`), by keyset ``after`` the last id shown."""
    from isps import keyset

    if not 1 <= limit <= MAX_PAGE:
        raise ApplicationError(f"limit must be from 1 to {MAX_PAGE}")
    sort = sort or keyset.Sort("id", True)
    if sort.key not in SORTS:
        raise keyset.SortError(f"sort must be one of {', '.join(SORTS)}, not {sort.key!r}")
    stmt = _listed(district_id=district_id, kind=kind, status=status, step=step, late=late, program=program,
                   household_id=household_id, now=now or datetime.now())
    rows = keyset.page(session, stmt, SORTS[sort.key], Application.id, after=after, limit=limit, desc=sort.desc)
    return [r[0] for r in rows]


def count_listing(session: Session, *, district_id: int | None = None, kind: str | None = None,
                  status: str | None = None, step: str | None = None, late: bool = False, program: str | None = None,
                  household_id: int | None = None, now: datetime | None = None) -> int:
    stmt = _listed(district_id=district_id, kind=kind, status=status, step=step, late=late, program=program,
                   household_id=household_id, now=now or datetime.now())
    return session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def open_steps_of(session: Session, ids: list[int]) -> dict[int, ApplicationStep]:
    """The open step of each application named (one query)."""
    if not ids:
        return {}
    return {s.application_id: s for s in session.scalars(
        select(ApplicationStep).where(ApplicationStep.application_id.in_(ids), ApplicationStep.done_at.is_(None))
        .order_by(ApplicationStep.seq.desc()))}


def awaiting(session: Session, role: str, district_id: int | None, now: datetime | None = None) -> dict[str, int]:
    """How many open steps wait for this role (in the district, or everywhere), and how many are late."""
    now = now or datetime.now()
    base = select(func.count()).select_from(ApplicationStep).where(ApplicationStep.done_at.is_(None))
    if district_id is not None:
        base = base.where(ApplicationStep.district_id == district_id)
    mine = base.where(ApplicationStep.owner_role == role)
    return {"awaiting": session.scalar(mine) or 0,
            "late": session.scalar(base.where(ApplicationStep.due_at < now)) or 0}
