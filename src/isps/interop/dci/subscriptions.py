"""Subscriptions and notifications driven by the registry's outbox.

A partner subscribes to an event type with a filter (a person's identifier, or a predicate or
expression over Group/Member attributes its agreement grants). :func:`process_events` reads the
outbox past its own cursor (consumer ``dci.notify``), finds for each live subscription the
records the events touched that pass its filter (one query per subscription, consent inside the
query), and sends one signed ``notify`` message per subscription to the partner's
``<callback URI>/registry/notify``. Every record sent is audited.

Event types: ``REGISTER`` (household.created) and ``NewHouseHoldMember`` (a ``household.changed`` whose fields name ``member.added``, as the
NADRA feed reports a birth; or a ``member.added`` topic) are the
spec's; ``UPDATE`` (household.changed, member.changed) and ``DEATH`` (member.deceased) are ISPS
extensions, carried as ``data.isps_event_type`` since the spec's notify enum has only the first two.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import date, datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.interop.dci import partners, search
from isps.interop.dci.envelope import callback_header, new_id, now_ts
from isps.interop.dci.models import DciPartner, DciSubscription
from isps.registry import events
from isps.registry.models import Household, Individual, OutboxEvent

CONSUMER = "dci.notify"
EVENT_TOPICS = {
    "REGISTER": (events.HOUSEHOLD_CREATED,),
    "NewHouseHoldMember": ("member.added", "member.born"),
    "UPDATE": (events.HOUSEHOLD_CHANGED, events.MEMBER_CHANGED),
    "DEATH": (events.MEMBER_DECEASED,),
}
SPEC_EVENT_TYPES = ("REGISTER", "NewHouseHoldMember")


def _event_type(raw: str) -> str | None:
    name = str(raw).split(":")[-1]
    return next((k for k in EVENT_TOPICS if k.lower() == name.lower()), None)


def _record_type(raw: str) -> str | None:
    name = str(raw).split(":")[-1]
    return {"member": "Member", "group": "Group", "household": "Group", "person": "Member"}.get(name.lower())


def _condition(partner: partners.Partner, entity: str, filter_type: str, filt):
    """A SQL condition for a subscription's filter (raises search.QueryError)."""
    if filter_type == "idtype-value":
        kind, number = search.normalise_identifier(filt)
        if entity == "Member":
            return Individual.cnic == number
        return Household.id.in_(select(Individual.household_id).where(Individual.cnic == number))
    if filter_type == "predicate":
        return search.compile_predicate(entity, partner, filt if isinstance(filt, list) else [])
    if filter_type == "expression":
        expr = ((filt or {}).get("value") or {}).get("expression") if isinstance(filt, dict) else None
        if not isinstance(expr, dict) or "query" not in expr:
            raise search.QueryError("rjct.notify_details.invalid", "expression needs value.expression.query")
        return search.compile_expression(entity, partner, expr["query"])
    raise search.QueryError("rjct.notify_details.invalid", f"filter_type {filter_type} is not supported")


def create(session: Session, partner: partners.Partner, message: dict, correlation_id: str) -> dict:
    """Register the subscriptions of a SubscribeRequest; returns the SubscribeResponse."""
    out = []
    for item in message["subscribe_request"]:
        crit = item["subscribe_criteria"]
        ref = str(item["reference_id"])
        base = {"reference_id": ref, "timestamp": now_ts()}
        event_type = _event_type(crit["reg_event_type"])
        record_type = _record_type(crit["notify_record_type"])
        filter_type = crit.get("filter_type") or ("idtype-value" if isinstance(crit["filter"], dict)
                                                  and "type" in crit["filter"] and "value" in crit["filter"]
                                                  and not isinstance(crit["filter"]["value"], dict) else "expression")
        try:
            if event_type is None or record_type is None:
                raise search.QueryError("rjct.notify_types.invalid",
                                        f"reg_event_type must be one of {', '.join(EVENT_TOPICS)}; "
                                        "notify_record_type Group or Member")
            _condition(partner, record_type, filter_type, crit["filter"])
        except search.QueryError as exc:
            code = exc.code if exc.code.startswith("rjct.notify") else ("rjct.person_id.invalid" if filter_type == "idtype-value"
                                                                         else "rjct.notify_details.invalid")
            out.append({**base, "status": "rjct", "status_reason_code": code, "status_reason_message": str(exc)[:999]})
            continue
        existing = session.scalars(select(DciSubscription).where(
            DciSubscription.partner_id == partner.id, DciSubscription.status == "subscribe",
            DciSubscription.reg_event_type == event_type, DciSubscription.notify_record_type == record_type,
            DciSubscription.filter_type == filter_type))
        if any(e.filter == crit["filter"] for e in existing):
            out.append({**base, "status": "rjct", "status_reason_code": "rjct.event.already_subscribed",
                        "status_reason_message": "you already hold this subscription"})
            continue
        sub = DciSubscription(code=f"sub-{uuid.uuid4().hex}", partner_id=partner.id,
                              transaction_id=str(message["transaction_id"])[:99], reference_id=ref[:100],
                              reg_event_type=event_type, filter_type=filter_type, filter=crit["filter"],
                              notify_record_type=record_type, frequency=crit.get("frequency"), status="subscribe")
        session.add(sub)
        session.flush()
        info = {"code": sub.code, "status": "subscribe", "timestamp": now_ts(), "reg_event_type": event_type,
                "filter_type": filter_type, "filter": crit["filter"], "notify_record_type": record_type}
        if crit.get("frequency"):
            info["frequency"] = crit["frequency"]
        if item.get("locale"):
            info["locale"] = item["locale"]
        out.append({**base, "status": "succ", "subscriptions": [info]})
    return {"transaction_id": message["transaction_id"], "correlation_id": correlation_id, "subscribe_response": out}


def cancel(session: Session, partner: partners.Partner, message: dict, correlation_id: str) -> dict:
    """End subscriptions by code; all-or-nothing when a code is not the partner's."""
    codes = [str(c) for c in message["subscription_codes"]]
    rows = {s.code: s for s in session.scalars(select(DciSubscription).where(
        DciSubscription.code.in_(codes), DciSubscription.partner_id == partner.id))}
    base = {"transaction_id": message["transaction_id"], "correlation_id": correlation_id, "timestamp": now_ts()}
    if not codes or any(c not in rows for c in codes):
        return {**base, "status": "rjct", "status_reason_code": "rjct.subscription_code.invalid",
                "status_reason_message": "a subscription code is unknown or not yours"}
    live = [rows[c] for c in codes if rows[c].status == "subscribe"]
    if not live:
        return {**base, "status": "rjct", "status_reason_code": "rjct.event.already_unsubscribed",
                "status_reason_message": "these subscriptions were already ended",
                "subscription_status": [{"code": c, "status": "unsubscribe"} for c in codes]}
    for s in live:
        s.status, s.ended_at = "unsubscribe", datetime.now()
    return {**base, "status": "succ", "subscription_status": [{"code": c, "status": rows[c].status} for c in codes]}


def _payload(raw) -> dict:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def _matches(event_type: str, topic: str, payload: dict) -> bool:
    """Births from the NADRA feed arrive as ``household.changed`` with ``member.added`` among the fields."""
    added = "member.added" in (payload.get("fields") or [])
    if event_type == "NewHouseHoldMember":
        return topic in EVENT_TOPICS[event_type] or (topic == events.HOUSEHOLD_CHANGED and added)
    if event_type == "UPDATE" and added:
        return False
    return topic in EVENT_TOPICS[event_type]


def _in_window(frequency: dict | None, now: datetime) -> bool:
    if not frequency:
        return True
    try:
        start = datetime.fromisoformat(str(frequency["start_time"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(frequency["end_time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return True
    return start <= now <= end


def process_events(session: Session, rt, limit: int = 50_000) -> dict:
    """Notify subscribers of the outbox events past the ``dci.notify`` cursor; returns counts."""
    from isps.interop.dci.service import audit_rows, deliver

    start = events.cursor(session, CONSUMER)
    rows = session.execute(select(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.aggregate_id, OutboxEvent.payload)
                           .where(OutboxEvent.id > start).order_by(OutboxEvent.id).limit(limit)).all()
    if not rows:
        return {"events": 0, "messages": 0, "records": 0}
    upto = rows[-1][0]
    parsed = [(eid, topic, hid, _payload(payload)) for eid, topic, hid, payload in rows]
    live = list(session.execute(select(DciSubscription, DciPartner.sender_id).join(
        DciPartner, DciPartner.id == DciSubscription.partner_id).where(
        DciSubscription.status == "subscribe", DciPartner.active)))
    now = datetime.now(timezone.utc)
    messages = records_sent = 0
    for sub, sender_id in live:
        if not _in_window(sub.frequency, now):
            continue
        partner = partners.partner_by_sender(session, sender_id)
        if partner is None or partner.agreement is None:
            continue
        touched = [(eid, hid, payload) for eid, topic, hid, payload in parsed if _matches(sub.reg_event_type, topic, payload)]
        if not touched:
            continue
        household_ids = sorted({hid for _, hid, _ in touched})
        person_ids = sorted({p["individual_id"] for _, _, p in touched if "individual_id" in p})
        condition = _condition(partner, sub.notify_record_type, sub.filter_type, sub.filter)
        builder = search.RecordBuilder(session, partner)
        today = date.today()
        if sub.notify_record_type == "Group":
            stmt = select(Household.id).where(Household.id.in_(household_ids), condition)
            if partner.agreement.consent_required:
                stmt = stmt.where(search.group_consent(partner, today))
            ids = list(session.scalars(stmt))
            recs, people_ids, hh_ids = builder.build("Group", household_ids=ids)
        else:
            scope = Individual.id.in_(person_ids) if person_ids and sub.reg_event_type != "REGISTER" \
                else Individual.household_id.in_(household_ids)
            stmt = select(Individual).where(scope, condition)
            if partner.agreement.consent_required:
                stmt = stmt.where(search.member_consent(partner, today))
            people = list(session.scalars(stmt))
            recs, people_ids, hh_ids = builder.build("Member", people=people)
        if not recs:
            continue
        data_event = {"version": "1.0.0", "reg_type": "ns:isps:RegistryType:Social",
                      "reg_record_type": sub.notify_record_type, "isps_event_type": sub.reg_event_type}
        if sub.reg_event_type in SPEC_EVENT_TYPES:
            data_event["reg_event_type"] = sub.reg_event_type
        message = {"transaction_id": sub.transaction_id, "notify_event": [
            {"reference_id": new_id(), "timestamp": now_ts(), "data": {**data_event, "reg_records": r}} for r in recs]}
        header = callback_header(rt.isps_id, partner.sender_id, "notify", "succ", len(recs), len(recs))
        header["meta"] = {"subscription_code": sub.code}
        url = f"{(partner.callback_uri or '').rstrip('/')}/registry/notify"
        deliver(session, rt, partner, "notify", url, rt.envelope(header, message))
        detail = f"subscription {sub.code}"
        audit_rows(session, partner, "dci.notify", [("individual", i, i // 10**11, "ok", detail) for i in people_ids]
                   + [("household", h, h // 10**10, "ok", detail) for h in hh_ids])
        messages += 1
        records_sent += len(recs)
    events.advance(session, CONSUMER, upto)
    return {"events": len(rows), "messages": messages, "records": records_sent}


def run_notifier(session_factory, rt, stop: threading.Event, interval_s: float = 5.0) -> None:
    """A loop for a worker process: notify, retry failed deliveries, sleep, until ``stop`` is set."""
    from isps.interop.dci.service import retry_failed

    while not stop.is_set():
        with session_factory() as s:
            with s.begin():
                process_events(s, rt)
                retry_failed(s, rt)
        stop.wait(interval_s)


__all__ = ["create", "cancel", "process_events", "run_notifier", "EVENT_TOPICS", "CONSUMER"]
