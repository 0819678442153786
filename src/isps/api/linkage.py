"""/api/v1/sbr: the Single Beneficiary Registry. Partners send beneficiary lists (batches of records,
idempotent by their own reference, or files); managers resolve identities, work the clerical review
queue, merge and unmerge persons, and read the duplication and concentration reports (JSON or CSV).
Every call is audited (channel ``api``)."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from isps.access.service import Principal, audit
from isps.api.deps import DB, require
from isps.api.errors import CONFLICT
from isps.api.params import BODY_CONFIG, MAX_ID, After, Id, Limit, QueryId, Record
from isps.linkage import ingest, persons, reports, resolve
from isps import catalogue
from isps.services.events import drain

router = APIRouter(prefix="/api/v1/sbr", tags=["single beneficiary registry"])
Reader = Annotated[Principal, Depends(require("registry.read"))]
Importer = Annotated[Principal, Depends(require("registry.import"))]


class Batch(BaseModel):
    model_config = BODY_CONFIG
    program_code: str = Field(max_length=40)
    partner: str = Field(max_length=80)
    reference: str = Field(min_length=1, max_length=200, description="the partner's own reference for this list; sending it again changes nothing")
    records: list[Record] = Field(description="lines with " + ", ".join(ingest.COLUMNS))


class Decision(BaseModel):
    accept: bool


class MergeRequest(BaseModel):
    person_a: int = Field(ge=1, le=MAX_ID)
    person_b: int = Field(ge=1, le=MAX_ID)
    reason: str = Field("", max_length=400)


def _engine(session: Session):
    return session.get_bind()


@router.get("/catalogue")
def programs(session: DB, who: Reader, pillar: Annotated[str | None, Query(max_length=40)] = None) -> list[dict]:
    return [{c.name: getattr(p, c.name) for c in catalogue.Program.__table__.columns} | {"yearly_value": p.yearly_value}
            for p in catalogue.programs(session, pillar=pillar)]


@router.post("/batches")
def post_batch(batch: Batch, session: DB, who: Importer, background: BackgroundTasks) -> dict:
    try:
        rep = ingest.ingest_records(_engine(session), batch.program_code, batch.records, partner=batch.partner,
                                    reference=batch.reference, actor=who.username)
    except ingest.IngestError as exc:
        raise HTTPException(422, str(exc)) from None
    audit(session, who, "api", "ingest", "beneficiary_batch", rep.batch_id, detail=rep.summary())
    session.commit()  # the audit record first: the background step writes in a transaction of its own
    background.add_task(drain, _engine(session))  # programs flag the duplicates a new list reveals
    return rep.to_dict()


@router.post("/files")
def post_file(session: DB, who: Importer, program_code: Annotated[str, Form()], partner: Annotated[str, Form()],
              file: Annotated[UploadFile, File()], background: BackgroundTasks,
              reference: Annotated[str | None, Form()] = None) -> dict:
    name = Path(file.filename or "list.csv").name
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(file.file.read())
        try:
            rep = ingest.ingest_file(_engine(session), program_code, path, partner=partner, actor=who.username,
                                     reference=reference)
        except ingest.IngestError as exc:
            raise HTTPException(422, str(exc)) from None
    audit(session, who, "api", "ingest", "beneficiary_batch", rep.batch_id, detail=rep.summary())
    session.commit()  # the audit record first: the background step writes in a transaction of its own
    background.add_task(drain, _engine(session))  # programs flag the duplicates a new list reveals
    return rep.to_dict()


@router.post("/resolve")
def run_resolve(session: DB, who: Importer, background: BackgroundTasks) -> dict:
    session.commit()
    rep = resolve.resolve(_engine(session), actor=who.username)
    audit(session, who, "api", "resolve", "linkage_run", rep.run_id, detail=rep.summary())
    session.commit()
    background.add_task(drain, _engine(session))
    return asdict(rep)


@router.get("/review")
def review(session: DB, who: Reader, after: After = None, limit: Limit(200) = 50) -> list[dict]:
    items = persons.review_queue(session, district_id=who.scope, after=after, limit=limit)
    audit(session, who, "api", "read", "match_candidate", None, district_id=who.scope)
    return [{"candidate_id": i.candidate.id, "match_weight": i.candidate.match_weight,
             "match_probability": i.candidate.match_probability, "explanation": i.candidate.explanation,
             "beneficiary": {"id": i.beneficiary.id, "program": i.beneficiary.program_code,
                             "full_name": i.beneficiary.full_name,
                             "father_husband_name": i.beneficiary.father_husband_name,
                             "date_of_birth": str(i.beneficiary.date_of_birth or ""),
                             "district_id": i.beneficiary.district_id},
             "individual": None if i.individual is None else {
                 "id": i.individual.id, "full_name": i.individual.full_name,
                 "father_husband_name": i.individual.father_husband_name,
                 "date_of_birth": str(i.individual.date_of_birth), "district_id": i.individual.district_id}}
            for i in items]


@router.post("/review/{candidate_id}", responses=CONFLICT)
def decide(candidate_id: Id, decision: Decision, session: DB, who: Importer) -> dict:
    try:
        c = persons.decide(session, candidate_id, decision.accept, who.username)
    except persons.LinkageError as exc:
        raise HTTPException(409, str(exc)) from None
    audit(session, who, "api", "decide", "match_candidate", candidate_id, detail=c.status)
    return {"candidate_id": c.id, "status": c.status}


@router.post("/persons/merge", responses=CONFLICT)
def merge(req: MergeRequest, session: DB, who: Importer) -> dict:
    try:
        h = persons.merge(session, req.person_a, req.person_b, who.username, req.reason)
    except persons.LinkageError as exc:
        raise HTTPException(409, str(exc)) from None
    audit(session, who, "api", "merge", "person", h.person_id, detail=f"{h.other_person_id} into {h.person_id}")
    return {"history_id": h.id, "person_id": h.person_id, "merged": h.other_person_id}


@router.post("/history/{history_id}/unmerge", responses=CONFLICT)
def unmerge(history_id: Id, session: DB, who: Importer) -> dict:
    try:
        h = persons.unmerge(session, history_id, who.username)
    except persons.LinkageError as exc:
        raise HTTPException(409, str(exc)) from None
    audit(session, who, "api", "unmerge", "person", h.person_id)
    return {"history_id": h.id, "person_id": h.person_id}


@router.get("/persons/{person_id}")
def person(person_id: Id, session: DB, who: Reader) -> dict:
    try:
        lines = persons.person_lines(session, person_id)
    except persons.LinkageError as exc:
        raise HTTPException(404, str(exc)) from None
    if who.scope is not None and any(b.district_id not in (None, who.scope) for b in lines):
        audit(session, who, "api", "read", "person", person_id, outcome="denied")
        session.commit()
        raise HTTPException(403, "this person has lines outside your district")
    audit(session, who, "api", "read", "person", person_id)
    return {"person_id": persons.root(session, person_id),
            "lines": [{"id": b.id, "program": b.program_code, "partner_ref": b.partner_ref, "link": b.link_method,
                       "individual_id": b.individual_id, "match_weight": b.match_weight} for b in lines],
            "history": [{"id": h.id, "action": h.action, "person_id": h.person_id, "other": h.other_person_id,
                         "actor": h.actor, "at": str(h.at)} for h in persons.history(session, person_id)]}


@router.get("/reports/{name}")
def report(name: str, session: DB, who: Reader, program: Annotated[str | None, Query(max_length=40)] = None,
           district_id: QueryId = None,
           ceiling: Annotated[float, Query(ge=0, le=1e13, allow_inf_nan=False)] = reports.CEILING,
           format: Annotated[str, Query(pattern="^(json|csv)$")] = "json"):
    if name not in reports.REPORTS:
        raise HTTPException(404, f"no report '{name}'; reports: {', '.join(reports.REPORTS)}")
    district = who.scope if who.scope is not None else district_id
    rows = reports.run_report(session, name, district_id=district, program=program, ceiling=ceiling)
    audit(session, who, "api", "report", "report", None, district_id=district, detail=name)
    if format == "csv":
        return Response(reports.to_csv(rows, name), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return [asdict(r) for r in rows]
