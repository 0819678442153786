"""What a field submission becomes, by its job.

The inbox keeps every submission whole with the status ``received`` and calls
:func:`apply_submissions` in the same transaction; :func:`apply_pending` (the worker's ``field_apply``
task, ``isps field apply``, the benchmark) applies whatever was left ``received`` (a crash between
storing and applying), in batches.

* ``survey`` (``isps_survey``): a set of registry value changes, the whole batch at once
  (:mod:`isps.fieldwork.survey`): source ``survey``, the enumerator, the device and the instanceID,
  effective on the day collected, late news kept as history; re-scoring follows through the events.
* ``visit`` (``isps_visit``): the application's ``verify`` step completed by the visit its scheduled
  visitor made (:func:`isps.citizen.applications.service.record_visit`): ``confirmed`` registers the
  household, ``not_found``/``different`` dispose the application.
* ``receipt`` (``isps_receipt``): the hand-over marked once on the site's list
  (:func:`isps.fieldwork.distribution.hand_over`); a second receipt for the line is refused.
* ``grievance`` (``isps_grievance``): a grievance filed by the enumerator, channel ``field``
  (:func:`isps.citizen.grievances.service.file_grievance`).

A refusal is kept: ``status = 'refused'`` and a reason naming the record and the field, for an officer
(and the device is told by the inbox). A bad submission refuses itself only, never its batch: the
single-record jobs run each in a savepoint, the surveys are checked column-wise before anything is
written. A submission already applied is never applied again (only ``received`` rows are read, locked,
skipping those another process holds), so applying twice changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from isps.access.models import User
from isps.access.service import AccessError, Principal
from isps.db import transaction
from isps.fieldwork import forms
from isps.fieldwork.models import FieldDevice, FieldSubmission
from isps.fieldwork.survey import SurveyItem, apply_surveys
from isps.registry import cnic as cnic_rules
from isps.registry.bulk import insert_arrow

BATCH = 2_000   # submissions read and applied per transaction by apply_pending


@dataclass
class Outcome:
    status: str                        # accepted | refused
    reason: str | None = None          # why refused, naming the record and field
    result: dict = field(default_factory=dict)


class Refused(ValueError):
    """A submission the registry, the application or the site refuses; the message names the record and field."""


# the errors a domain refuses with (each a ValueError, PermissionError or LookupError with a message to show)
REFUSALS = (ValueError, PermissionError, LookupError, AccessError)


@dataclass
class _Item:
    id: int
    instance_id: str
    form_id: str
    form_version: str
    job: str
    username: str
    district_id: int
    collected_at: datetime
    channel: str
    device: str | None
    xml: str
    instance: forms.Instance | None = None

    @property
    def source_ref(self) -> str:
        """What the registry's history says a value came from: the device (or the browser) and the instance."""
        return f"field {self.device or self.channel} {self.instance_id}"[:200]


def apply_submissions(session: Session, ids: list[int], now: datetime | None = None) -> dict[int, Outcome]:
    """Apply the ``received`` submissions among ``ids`` (others are left alone) and record what each
    became: status, reason, result, ``applied_at``; completes the enumerators' assignments. Returns
    the outcome of each submission applied now."""
    now = now or datetime.now()
    ids = sorted({int(i) for i in ids})
    if not ids:
        return {}
    S, D = FieldSubmission, FieldDevice
    stmt = (select(S.id, S.instance_id, S.form_id, S.form_version, S.job, S.username, S.district_id, S.collected_at,
                   S.channel, D.code, S.xml)
            .outerjoin(D, D.id == S.device_id).where(S.id.in_(ids), S.status == "received").order_by(S.id)
            .with_for_update(of=S, skip_locked=True))
    items = [_Item(*row) for row in session.execute(stmt)]
    outcomes: dict[int, Outcome] = {}
    for item in items:  # reading each instance's XML (the one per-row step: a document each)
        try:
            item.instance = _read(item)
        except Refused as exc:
            outcomes[item.id] = Outcome("refused", str(exc))
    surveys = [it for it in items if it.id not in outcomes and it.job == "survey"]
    outcomes.update(_surveys(session, surveys))
    for item in items:
        if item.id in outcomes:
            continue
        one = {"visit": _visit, "receipt": _receipt, "grievance": _grievance}.get(item.job)
        if one is None:
            outcomes[item.id] = Outcome("refused", f"submission {item.instance_id}: job: '{item.job}' is not a field job")
            continue
        try:
            with session.begin_nested():
                outcomes[item.id] = Outcome("accepted", None, one(session, item))
        except REFUSALS as exc:
            outcomes[item.id] = Outcome("refused", _named(item, exc))
    _complete(session, items, outcomes)
    _record(session, outcomes, now)
    return outcomes


def apply_pending(engine: Engine, *, limit: int | None = None, now: datetime | None = None) -> dict:
    """Apply every ``received`` submission, oldest first, :data:`BATCH` per transaction (the worker's
    ``field_apply`` task and the benchmark). Returns how many were accepted and refused."""
    done = {"accepted": 0, "refused": 0}
    last = 0
    while limit is None or sum(done.values()) < limit:
        size = BATCH if limit is None else min(BATCH, limit - sum(done.values()))
        with transaction(engine) as s:
            ids = list(s.scalars(select(FieldSubmission.id).where(FieldSubmission.status == "received",
                                                                  FieldSubmission.id > last)
                                 .order_by(FieldSubmission.id).limit(size)))
            if not ids:
                break
            last = ids[-1]
            for outcome in apply_submissions(s, ids, now).values():
                done[outcome.status] += 1
    return {k: v for k, v in done.items() if v}


# ---------------------------------------------------------------- reading and recording

def _read(item: _Item) -> forms.Instance:
    try:
        instance = forms.read_instance(item.xml.encode("utf-8"))
    except forms.InstanceError as exc:
        raise Refused(f"submission {item.instance_id}: {exc}") from None
    spec = forms.form(instance.form_id)
    if spec is None or instance.form_id != item.form_id:
        raise Refused(f"submission {item.instance_id}: form: '{instance.form_id}' is not a form of ISPS")
    if instance.version not in spec.accepted_versions:
        raise Refused(f"submission {item.instance_id}: version: form {spec.form_id} version {instance.version} no "
                      f"longer exists (the current one is {spec.version}); download the form again")
    return instance


def _named(item: _Item, exc: BaseException) -> str:
    """The reason as an officer reads it: the domain's message names the field; say which submission."""
    return f"{item.job} {item.instance_id}: {exc}"[:400]


def _record(session: Session, outcomes: dict[int, Outcome], now: datetime) -> None:
    """Every outcome written in one statement (a temporary table joined by id), only over rows still
    ``received``."""
    if not outcomes:
        return
    ids = list(outcomes)
    conn = session.connection()
    household = [o.result.get("household_id") if o.status == "accepted" else None for o in outcomes.values()]
    conn.execute(text("DROP TABLE IF EXISTS field_tmp_outcome"))
    conn.execute(text("CREATE TEMPORARY TABLE field_tmp_outcome (id BIGINT PRIMARY KEY, status TEXT, reason TEXT, "
                      "result TEXT, household_id BIGINT)"))
    insert_arrow(conn, "field_tmp_outcome", pa.table({
        "id": pa.array(ids, pa.int64()),
        "status": pa.array([o.status for o in outcomes.values()], pa.string()),
        "reason": pa.array([(o.reason or None) and o.reason[:400] for o in outcomes.values()], pa.string()),
        "result": pa.array([json.dumps(o.result, default=str) for o in outcomes.values()], pa.string()),
        "household_id": pa.array(household, pa.int64())}))
    result = "CAST(m.result AS JSON)" if conn.dialect.name == "postgresql" else "m.result"
    conn.execute(text(f"""UPDATE field_submission SET status = m.status, reason = m.reason, result = {result},
            applied_at = :now, household_id = COALESCE(m.household_id, field_submission.household_id)
        FROM field_tmp_outcome m WHERE field_submission.id = m.id AND field_submission.status = 'received'"""),
                 {"now": now})
    conn.execute(text("DROP TABLE IF EXISTS field_tmp_outcome"))
    for obj in list(session.identity_map.values()):  # rows written in SQL: loaded ones are read again
        if isinstance(obj, FieldSubmission) and obj.id in outcomes:
            session.expire(obj)


def _complete(session: Session, items: list[_Item], outcomes: dict[int, Outcome]) -> None:
    """The enumerator's assignment that an accepted submission did
    (:func:`isps.fieldwork.assignments.complete`): the household's survey, the application's visit, a
    site's assignment once nothing is left to hand over."""
    from isps.fieldwork import assignments

    surveyed = [(item.id, outcomes[item.id].result["household_id"], item.collected_at) for item in items
                if item.job == "survey" and outcomes[item.id].status == "accepted"]
    if surveyed:  # a batch of surveys: the households' open survey assignments closed in one statement
        conn = session.connection()
        conn.execute(text("DROP TABLE IF EXISTS field_tmp_done"))
        conn.execute(text("CREATE TEMPORARY TABLE field_tmp_done (household_id BIGINT PRIMARY KEY, "
                          "submission_id BIGINT, at TIMESTAMP)"))
        last = {h: (i, at) for i, h, at in surveyed}  # a household surveyed twice: the later submission did it
        insert_arrow(conn, "field_tmp_done", pa.table({
            "household_id": pa.array(list(last), pa.int64()),
            "submission_id": pa.array([v[0] for v in last.values()], pa.int64()),
            "at": pa.array([v[1] for v in last.values()], pa.timestamp("us"))}))
        # what assignments.complete(kind="survey") does for one household, for the whole batch
        conn.execute(text("""UPDATE field_assignment SET status = 'done', done_at = m.at, submission_id = m.submission_id
            FROM field_tmp_done m WHERE field_assignment.household_id = m.household_id
            AND field_assignment.kind = 'survey' AND field_assignment.status = 'open'"""))
        conn.execute(text("DROP TABLE IF EXISTS field_tmp_done"))
    for item in items:
        o = outcomes.get(item.id)
        if o is None or o.status != "accepted":
            continue
        if item.job == "visit":
            assignments.complete(session, kind="visit", submission_id=item.id, at=item.collected_at,
                                 application_id=o.result["application_id"])
        elif item.job == "receipt":
            assignments.complete(session, kind="site", submission_id=item.id, at=item.collected_at,
                                 site_id=o.result["site_id"])


# ---------------------------------------------------------------- the jobs

def _surveys(session: Session, items: list[_Item]) -> dict[int, Outcome]:
    batch = [SurveyItem(it.id, it.username, it.district_id, it.collected_at.date(), it.source_ref,
                        it.instance.values, list(it.instance.repeats.get("member", []))) for it in items]
    apply_surveys(session, batch)
    return {s.submission_id: Outcome("refused", f"survey {it.instance_id}: {s.refused}") if s.refused
            else Outcome("accepted", None, s.result) for it, s in zip(items, batch)}


def _principal(session: Session, username: str) -> Principal:
    row = session.execute(select(User.username, User.role, User.district_id, User.active)
                          .where(User.username == username)).first()
    if row is None or not row.active:
        raise Refused(f"user: {username} is not an active user of ISPS")
    return Principal(row.username, row.role, row.district_id)


def _int(values: dict, name: str, required: bool = True) -> int | None:
    raw = (values.get(name) or "").strip()
    if not raw:
        if required:
            raise Refused(f"{name}: is required")
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise Refused(f"{name}: '{raw[:20]}' is not a record id")
    return int(raw)


def _visit(session: Session, item: _Item) -> dict:
    """The verification visit's outcome, recorded by the visitor the step was scheduled for."""
    from isps.citizen import receipts
    from isps.citizen.applications import service as applications

    v = item.instance.values
    application_id = _int(v, "application_id")
    who = _principal(session, item.username)
    app = session.get(applications.Application, application_id)
    if app is None:
        raise Refused(f"application_id: application {application_id} does not exist")
    if app.district_id != item.district_id:
        raise Refused(f"application_id: application {receipts.make('application', app.id)} is in district "
                      f"{app.district_id}, not in district {item.district_id} of this device")
    step = applications.current_step(session, app.id) if app.status == "open" else None
    if step is None or step.name != "verify" or step.visit_on is None or step.owner != item.username:
        raise Refused(f"application_id: application {receipts.make('application', app.id)} is not awaiting a visit "
                      f"by {item.username}" + (f" (it is {app.status}" + (f", at step '{step.name}'" if step else "")
                                               + (f", visit by {step.owner}" if step and step.owner else "") + ")"))
    outcome = (v.get("outcome") or "").strip()
    household = applications.record_visit(session, who, app.id, outcome, (v.get("note") or "").strip() or None,
                                          now=item.collected_at)
    return {"application_id": app.id, "outcome": outcome,
            **({"household_id": household.id} if household is not None else {})}


def _receipt(session: Session, item: _Item) -> dict:
    """A hand-over at a distribution site, marked once."""
    from isps.fieldwork import distribution

    v = item.instance.values
    site_id, entry_id = _int(v, "site_id"), _int(v, "entry_id")
    site = session.execute(text("SELECT district_id FROM distribution_site WHERE id = :s"), {"s": site_id}).first()
    if site is None:
        raise Refused(f"site_id: there is no distribution site {site_id}")
    if site.district_id != item.district_id:
        raise Refused(f"site_id: site {site_id} is in district {site.district_id}, not in district "
                      f"{item.district_id} of this device")
    household_id = _int(v, "household_id", required=False)
    if household_id is not None:
        on_list = session.execute(text("SELECT household_id FROM distribution_entry WHERE id = :e AND site_id = :s"),
                                  {"e": entry_id, "s": site_id}).scalar()
        if on_list is not None and on_list != household_id:
            raise Refused(f"household_id: entry {entry_id} of site {site_id} is for household {on_list}, "
                          f"not {household_id}")
    evidence = (v.get("evidence") or "").strip()
    seen = (v.get("cnic_seen") or "").strip() or None
    entry = distribution.hand_over(session, site_id=site_id, entry_id=entry_id, by=item.username, evidence=evidence,
                                   cnic_seen=seen, received_by=_int(v, "received_by", required=False),
                                   at=item.collected_at, submission_id=item.id)
    photo = (v.get("photo") or "").strip()
    return {"entry_id": entry.id, "site_id": site_id, "household_id": entry.household_id,
            **({"photo": photo} if photo else {})}


def _grievance(session: Session, item: _Item) -> dict:
    """A complaint taken in the field, filed by the enumerator (channel ``field``)."""
    from isps.citizen import receipts
    from isps.citizen.grievances import service as grievances
    from isps.registry.service import find_by_cnic

    v = item.instance.values
    who = _principal(session, item.username)
    district_id = _int(v, "district_id", required=False) or item.district_id
    household_id = _int(v, "household_id", required=False)
    individual_id = None
    raw = (v.get("cnic") or "").strip()
    if raw:
        try:
            number = cnic_rules.validate(raw)
        except cnic_rules.CnicError as exc:
            raise Refused(f"cnic: {exc}") from None
        living = [p for p in find_by_cnic(session, number) if p.date_of_death is None and p.left_on is None]
        if len(living) == 1 and household_id in (None, living[0].household_id):
            individual_id = living[0].id
    g = grievances.file_grievance(session, who, channel="field", category=(v.get("category") or "").strip(),
                                  description=v.get("description") or "", district_id=district_id,
                                  phone=v.get("phone") or None, complainant_name=v.get("name") or None,
                                  household_id=household_id, individual_id=individual_id,
                                  program_code=(v.get("program_code") or "").strip() or None, now=item.collected_at)
    return {"grievance_id": g.id, "receipt": receipts.make("grievance", g.id),
            **({"household_id": g.household_id} if g.household_id else {})}


__all__ = ["Outcome", "Refused", "apply_submissions", "apply_pending", "BATCH"]
