"""/api/v1 for NSER Plus: partners' feed deliveries, conflicts between sources, change requests
(maker-checker) and re-certification."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from isps.access.service import Principal, audit
from isps.api.deps import DB, require
from isps.api.errors import CONFLICT
from isps.api.params import BODY_CONFIG, MAX_ID, After, Days, Id, Limit, Record
from isps.interop import feeds
from isps.interop.feeds import changes
from isps.services.events import drain

router = APIRouter(prefix="/api/v1", tags=["feeds"])
Reader = Annotated[Principal, Depends(require("registry.read"))]
Writer = Annotated[Principal, Depends(require("registry.write"))]
Importer = Annotated[Principal, Depends(require("registry.import"))]


class Delivery(BaseModel):
    model_config = BODY_CONFIG
    reference: str = Field(min_length=1, max_length=200, description="the delivery's own reference; a delivery is applied once")
    records: list[Record] = Field(description="records in the feed's format (docs/feeds.md)")


@router.post("/feeds/{feed}/deliveries", responses=CONFLICT)
def deliver(feed: str, body: Delivery, request: Request, background: BackgroundTasks, who: Importer) -> dict:
    """Apply a delivery in one transaction with a row-by-row report; re-scoring, the programs' and the
    payments' response to its events (a death ends enrolments and stops unsent payments) follow in the
    background."""
    engine = request.app.state.engine
    try:
        report = feeds.apply_delivery(engine, feed, {"feed": feed, "reference": body.reference,
                                                     "records": body.records},
                                      reference=body.reference, actor=who.username)
    except feeds.DeliveryConflict as exc:  # the same content is being or was applied under another name
        raise HTTPException(409, str(exc)) from None
    except feeds.FeedError as exc:
        raise HTTPException(422, str(exc)) from None
    if not report.already_applied:  # re-scoring, enrolments and payments act on the events afterwards
        background.add_task(drain, engine)
    return {**report.counts(), "errors": report.to_rows()}


@router.get("/feeds/conflicts")
def conflicts(session: DB, who: Reader, after: After = 0, limit: Limit(1000) = 100) -> list[dict]:
    """Open conflicts between sources (a lower-ranked source offered a value over a higher one's). Audited."""
    rows = [asdict(c) for c in feeds.list_conflicts(session, district_scope=who.scope, after=after, limit=limit)]
    audit(session, who, "api", "read", "source_conflict", None, who.scope, detail=f"listed {len(rows)} source conflicts")
    return rows


class ChangeRequestBody(BaseModel):
    model_config = BODY_CONFIG
    entity: str = Field(max_length=20, description="household or individual")
    entity_id: int = Field(ge=1, le=MAX_ID)
    changes: dict[str, str | int | float | bool | None]
    source: str = Field("operator", max_length=40)
    evidence: str = Field(max_length=400)
    evidence_ref: str | None = Field(None, max_length=200)
    effective_date: date | None = Field(None, description="when the change took effect: from 1900-01-01 to tomorrow")


@router.post("/change-requests", status_code=201)
def request_change(body: ChangeRequestBody, session: DB, who: Writer) -> dict:
    """An operator's or citizen's change with its evidence; applied only when a second person approves."""
    try:
        row = changes.request_change(session, entity=body.entity, entity_id=body.entity_id, changes=body.changes,
                                     source=body.source, evidence=body.evidence, requested_by=who.username,
                                     evidence_ref=body.evidence_ref, effective_date=body.effective_date,
                                     district_scope=who.scope)
    except PermissionError as exc:
        session.rollback()
        audit(session, who, "api", "create", body.entity, body.entity_id, outcome="denied",
              detail=f"refused: a change request for {body.entity} {body.entity_id} outside the user's district")
        session.commit()  # keep the audit record of the refusal, nothing else
        raise HTTPException(403, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    audit(session, who, "api", "create", body.entity, body.entity_id, row.district_id)
    return {"id": row.id, "status": row.status}


@router.post("/change-requests/{request_id}/approve", responses=CONFLICT)
def approve(request_id: Id, session: DB, who: Writer) -> dict:
    """The checker's approval: refused to the person who asked for the change."""
    try:
        row = changes.approve_change(session, request_id, who.username, district_scope=who.scope)
    except PermissionError as exc:
        session.rollback()
        audit(session, who, "api", "approve", "change_request", request_id, outcome="denied",
              detail=f"refused: approving change request {request_id}, outside the user's district")
        session.commit()  # keep the audit record of the refusal, nothing else
        raise HTTPException(403, str(exc)) from None
    except changes.SamePersonError as exc:
        raise HTTPException(409, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    audit(session, who, "api", "approve", row.entity, row.entity_id, row.district_id)
    return {"id": row.id, "status": row.status}


@router.get("/change-requests")
def pending(session: DB, who: Reader, status: Annotated[str, Query(max_length=20)] = "pending") -> list[dict]:
    """Change requests in a status, within the user's district; CNICs in them masked. Audited."""
    rows = [{"id": r.id, "entity": r.entity, "entity_id": r.entity_id, "changes": changes.shown(r.changes),
             "source": r.source, "evidence": r.evidence, "requested_by": r.requested_by, "status": r.status}
            for r in changes.list_change_requests(session, status, who.scope)]
    audit(session, who, "api", "read", "change_request", None, who.scope, detail=f"listed {len(rows)} {status} change requests")
    return rows


@router.get("/recertification")
def recertification(session: DB, who: Reader, older_than_days: Days = changes.DEFAULT_RECERTIFY_DAYS,
                    limit: Limit(1000) = 100) -> list[dict]:
    """Households not verified for the given period, oldest first, within the user's district."""
    due = changes.recertification_due(session, older_than_days, who.scope, limit=limit)
    audit(session, who, "api", "read", "household", None, who.scope,
          detail=f"read the re-certification list (older than {older_than_days} days): {len(due)} households")
    return [asdict(d) for d in due]
